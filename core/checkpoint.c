/* checkpoint.c: the file a run continues from (`wgf run --resume DIR`).
 *
 * DIR/checkpoint is text, one item a line, numbers exact (doubles as C99
 * hexadecimal floats, "%a"), blobs length-prefixed:
 *
 *     wgf checkpoint 2
 *     step K                      the step computed next (its state: theta_K)
 *     t T  wall W  metric_products M  steps_seen S  first_energy F
 *     diag_failed N  diag_first K1  diag_msg TEXT
 *     guard SEEN F0 FMIN NORM_PREV NORM_START RISES E_PREV E_START  (or: guard none)
 *     theta P, then P lines       the parameters at the start of step K
 *     diag_times N, then N lines  the times the reference was evaluated at
 *     state N, then N lines       the scheme's own state at the start of step K
 *                                 (wgf_problem_save_state; version 1 has none)
 *     config BYTES, then BYTES    the resolved configuration (config.ini's sections)
 *     history BYTES, then BYTES   history.csv's header and rows before step K
 *     path BYTES, then BYTES      path.csv as it stood before step K (version 2)
 *     end
 *
 * It is written atomically (wgf_write_atomic), so a killed run leaves the
 * last complete one. Nothing else is needed: random streams are stateless,
 * seeded from (seed, family, step, block). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

void wgf_checkpoint_free(wgf_checkpoint *c)
{
    if (!c)
        return;
    free(c->theta);
    free(c->diag_times);
    free(c->config);
    free(c->history);
    free(c->path);
    free(c->state);
    c->theta = c->diag_times = c->state = NULL;
    c->config = c->history = c->path = NULL;
}

static void put_doubles(wgf_strbuf *b, const char *name, size_t n, const double *v)
{
    wgf_strbuf_printf(b, "%s %zu\n", name, n);
    for (size_t i = 0; i < n; i++)
        wgf_strbuf_printf(b, "%a\n", v[i]);
}

static void put_blob(wgf_strbuf *b, const char *name, const char *s, size_t n)
{
    wgf_strbuf_printf(b, "%s %zu\n", name, n);
    if (n > 0)
        wgf_strbuf_printf(b, "%.*s", (int)n, s);
    wgf_strbuf_printf(b, "\n");
}

int wgf_checkpoint_write(const char *dir, const wgf_checkpoint *c, wgf_error *err)
{
    if (c->config_len > INT_MAX || c->history_len > INT_MAX || c->path_len > INT_MAX)
        return wgf_error_set(err, WGF_ENOMEM, "checkpoint: the history is too long to save");
    wgf_strbuf b = {0};
    wgf_strbuf_printf(&b, "wgf checkpoint 2\nstep %lu\nt %a\nwall %a\nmetric_products %lu\nsteps_seen %lu\n",
                      c->step, c->t, c->wall, c->metric_products, c->steps_seen);
    wgf_strbuf_printf(&b, "first_energy %a\ndiag_failed %lu\ndiag_first %lu\ndiag_msg ", c->first_energy,
                      c->diag_failed, c->diag_first);
    for (const char *m = c->diag_msg; *m; m++) /* one line */
        wgf_strbuf_printf(&b, "%c", *m == '\n' || *m == '\r' ? ' ' : *m);
    wgf_strbuf_printf(&b, "\n");
    if (c->has_guard) {
        const wgf_guard *g = &c->guard;
        wgf_strbuf_printf(&b, "guard %lu %a %a %a %a %u %a %a\n", g->seen, g->f0, g->fmin, g->norm_prev,
                          g->norm_start, g->rises, g->e_prev, g->e_start);
    } else
        wgf_strbuf_printf(&b, "guard none\n");
    put_doubles(&b, "theta", c->nparams, c->theta);
    put_doubles(&b, "diag_times", c->ntimes, c->diag_times);
    put_doubles(&b, "state", c->nstate, c->state);
    put_blob(&b, "config", c->config, c->config_len);
    put_blob(&b, "history", c->history, c->history_len);
    put_blob(&b, "path", c->path, c->path_len);
    wgf_strbuf_printf(&b, "end\n");
    char *path = wgf_path_join(dir, "checkpoint");
    int rc = b.failed || !path ? wgf_error_set(err, WGF_ENOMEM, "out of memory for the checkpoint")
                               : wgf_write_atomic(path, b.s, b.len, err);
    free(path);
    wgf_strbuf_free(&b);
    return rc;
}

/* ---- reading: a cursor over the file's bytes ---- */

typedef struct {
    const char *s, *end, *path;
    int bad;
} cursor;

/* The next line (without its newline) as [*line, *line + *n). */
static int next_line(cursor *c, const char **line, size_t *n)
{
    if (c->bad || c->s >= c->end) {
        c->bad = 1;
        return 0;
    }
    const char *nl = memchr(c->s, '\n', (size_t)(c->end - c->s));
    if (!nl) {
        c->bad = 1;
        return 0;
    }
    *line = c->s;
    *n = (size_t)(nl - c->s);
    c->s = nl + 1;
    return 1;
}

/* "name VALUE" with the rest of the line copied to buf (size cap). */
static int field(cursor *c, const char *name, char *buf, size_t cap)
{
    const char *line;
    size_t n, k = strlen(name);
    if (!next_line(c, &line, &n) || n < k + 1 || memcmp(line, name, k) != 0 || line[k] != ' ' ||
        n - k - 1 >= cap) {
        c->bad = 1;
        return 0;
    }
    memcpy(buf, line + k + 1, n - k - 1);
    buf[n - k - 1] = '\0';
    return 1;
}

static unsigned long field_ulong(cursor *c, const char *name)
{
    char buf[64], *e;
    if (!field(c, name, buf, sizeof buf))
        return 0;
    errno = 0;
    unsigned long v = strtoul(buf, &e, 10);
    if (errno || e == buf || *e || buf[0] == '-')
        c->bad = 1;
    return v;
}

static double parse_double(cursor *c, const char *s, const char **rest)
{
    char *e;
    double v = strtod(s, &e);
    if (e == s)
        c->bad = 1;
    if (rest)
        *rest = e;
    else if (*e)
        c->bad = 1;
    return v;
}

static double field_double(cursor *c, const char *name)
{
    char buf[64];
    return field(c, name, buf, sizeof buf) ? parse_double(c, buf, NULL) : 0;
}

/* "name N" and N doubles, one a line; a count the file cannot hold is refused
 * before allocating. */
static double *field_doubles(cursor *c, const char *name, size_t *n)
{
    *n = field_ulong(c, name);
    if (c->bad || *n > (size_t)(c->end - c->s) / 2)
        return (c->bad = 1), NULL;
    double *v = malloc((*n ? *n : 1) * sizeof *v);
    if (!v)
        return NULL;
    char buf[64];
    for (size_t i = 0; i < *n && !c->bad; i++) {
        const char *line;
        size_t len;
        if (!next_line(c, &line, &len) || len >= sizeof buf)
            c->bad = 1;
        else {
            memcpy(buf, line, len);
            buf[len] = '\0';
            v[i] = parse_double(c, buf, NULL);
        }
    }
    return v;
}

static char *field_blob(cursor *c, const char *name, size_t *n)
{
    *n = field_ulong(c, name);
    if (c->bad || *n >= (size_t)(c->end - c->s) || c->s[*n] != '\n')
        return (c->bad = 1), NULL;
    char *s = malloc(*n + 1);
    if (!s)
        return NULL;
    memcpy(s, c->s, *n);
    s[*n] = '\0';
    c->s += *n + 1;
    return s;
}

static int read_all(const char *path, char **data, size_t *len, wgf_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? wgf_error_set(err, WGF_EINVAL, "%s: no checkpoint: nothing to resume", path)
                               : wgf_error_set(err, WGF_EIO, "%s: %s", path, strerror(errno));
    wgf_strbuf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        wgf_strbuf_printf(&b, "%.*s", (int)k, chunk);
    int bad = ferror(f);
    fclose(f);
    if (bad || b.failed) {
        wgf_strbuf_free(&b);
        return bad ? wgf_error_set(err, WGF_EIO, "%s: cannot read", path)
                   : wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    *data = b.s;
    *len = b.len;
    return WGF_OK;
}

int wgf_checkpoint_read(const char *dir, wgf_checkpoint *ck, wgf_error *err)
{
    memset(ck, 0, sizeof *ck);
    char *path = wgf_path_join(dir, "checkpoint");
    if (!path)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    char *data = NULL;
    size_t len = 0;
    int rc = read_all(path, &data, &len, err);
    if (rc != WGF_OK) {
        free(path);
        return rc;
    }
    if (memchr(data ? data : "", '\0', len)) { /* binary: not ours */
        free(data);
        rc = wgf_error_set(err, WGF_EINVAL, "%s: not a wgf checkpoint", path);
        free(path);
        return rc;
    }
    cursor c = {.s = data ? data : "", .end = (data ? data : "") + len, .path = path};
    const char *line;
    size_t n;
    int version = 0;
    if (!next_line(&c, &line, &n) || n != 16 || memcmp(line, "wgf checkpoint ", 15) != 0 ||
        (version = line[15] - '0') < 1 || version > 2)
        c.bad = 1;
    ck->step = field_ulong(&c, "step");
    ck->t = field_double(&c, "t");
    ck->wall = field_double(&c, "wall");
    ck->metric_products = field_ulong(&c, "metric_products");
    ck->steps_seen = field_ulong(&c, "steps_seen");
    ck->first_energy = field_double(&c, "first_energy");
    ck->diag_failed = field_ulong(&c, "diag_failed");
    ck->diag_first = field_ulong(&c, "diag_first");
    field(&c, "diag_msg", ck->diag_msg, sizeof ck->diag_msg);
    char g[1024];
    if (field(&c, "guard", g, sizeof g) && strcmp(g, "none") != 0) {
        wgf_guard *q = &ck->guard;
        wgf_guard_init(q, NULL);
        char *e;
        const char *s = g;
        errno = 0;
        q->seen = strtoul(s, &e, 10);
        if (e == s || errno)
            c.bad = 1;
        s = e;
        q->f0 = parse_double(&c, s, &s);
        q->fmin = parse_double(&c, s, &s);
        q->norm_prev = parse_double(&c, s, &s);
        q->norm_start = parse_double(&c, s, &s);
        unsigned long r = strtoul(s, &e, 10);
        if (e == s || r > UINT_MAX)
            c.bad = 1;
        q->rises = (unsigned)r;
        s = e;
        q->e_prev = parse_double(&c, s, &s);
        q->e_start = parse_double(&c, s, NULL);
        ck->has_guard = 1;
    }
    if (!c.bad)
        ck->theta = field_doubles(&c, "theta", &ck->nparams);
    if (!c.bad && ck->theta)
        ck->diag_times = field_doubles(&c, "diag_times", &ck->ntimes);
    if (!c.bad && ck->diag_times && version >= 2)
        ck->state = field_doubles(&c, "state", &ck->nstate);
    if (!c.bad && ck->diag_times && (version < 2 || ck->state))
        ck->config = field_blob(&c, "config", &ck->config_len);
    if (!c.bad && ck->config)
        ck->history = field_blob(&c, "history", &ck->history_len);
    if (!c.bad && ck->history && version >= 2)
        ck->path = field_blob(&c, "path", &ck->path_len);
    if (!c.bad && ck->history && (version < 2 || ck->path) && (!next_line(&c, &line, &n) || n != 3 || memcmp(line, "end", 3) != 0))
        c.bad = 1;
    free(data);
    if (c.bad)
        rc = wgf_error_set(err, WGF_EINVAL, "%s: not a complete wgf checkpoint (written by another version?)",
                           path);
    else if (!ck->history || (version >= 2 && !ck->path))
        rc = wgf_error_set(err, WGF_ENOMEM, "out of memory");
    if (rc != WGF_OK)
        wgf_checkpoint_free(ck);
    free(path);
    return rc;
}

/* ---- comparing configurations ---- */

/* The value of section.key in a resolved configuration ("[section]" lines,
 * then "key = value" lines), or NULL; *vlen its length. */
static const char *lookup(const char *s, size_t len, const char *sec, size_t seclen, const char *key,
                          size_t keylen, size_t *vlen)
{
    const char *end = s + len, *cur = NULL; /* the current section's name */
    size_t curlen = 0;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        if (*s == '[' && le > s + 1 && le[-1] == ']') {
            cur = s + 1;
            curlen = (size_t)(le - s - 2);
        } else if (cur && curlen == seclen && memcmp(cur, sec, seclen) == 0 && (size_t)(le - s) > keylen + 1 &&
                   memcmp(s, key, keylen) == 0 && s[keylen] == ' ' && s[keylen + 1] == '=') {
            const char *v = s + keylen + 2;
            if (v < le && *v == ' ')
                v++;
            *vlen = (size_t)(le - v);
            return v;
        }
        s = nl ? nl + 1 : end;
    }
    return NULL;
}

static char *dup_n(const char *s, size_t n) { return s ? strndup(s, n) : NULL; }

/* Every key of a against b: a key of a that b lacks or holds otherwise. */
static int diff_one_way(const char *a, size_t alen, const char *b, size_t blen, char **key, char **va,
                        char **vb)
{
    const char *s = a, *end = a + alen, *sec = NULL;
    size_t seclen = 0;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        const char *eq = memchr(s, '=', (size_t)(le - s));
        if (*s == '[' && le > s + 1 && le[-1] == ']') {
            sec = s + 1;
            seclen = (size_t)(le - s - 2);
        } else if (sec && eq && eq > s + 1 && eq[-1] == ' ') {
            size_t keylen = (size_t)(eq - 1 - s), la = 0, lb = 0;
            const char *x = lookup(a, alen, sec, seclen, s, keylen, &la);
            const char *y = lookup(b, blen, sec, seclen, s, keylen, &lb);
            if (!y || la != lb || memcmp(x, y, la) != 0) {
                size_t kl = seclen + 1 + keylen + 1;
                *key = malloc(kl);
                *va = dup_n(x, la);
                *vb = dup_n(y, lb);
                if (!*key || !*va || (y && !*vb)) {
                    free(*key), free(*va), free(*vb);
                    *key = *va = *vb = NULL;
                    return -1;
                }
                snprintf(*key, kl, "%.*s.%.*s", (int)seclen, sec, (int)keylen, s);
                return 1;
            }
        }
        s = nl ? nl + 1 : end;
    }
    return 0;
}

int wgf_checkpoint_config_diff(const char *a, size_t alen, const char *b, size_t blen, char **key,
                               char **va, char **vb)
{
    *key = *va = *vb = NULL;
    int d = diff_one_way(a, alen, b, blen, key, va, vb);
    if (d != 0)
        return d;
    d = diff_one_way(b, blen, a, alen, key, vb, va); /* a key only b has */
    return d;
}

/* ---- the directory of a resumed run ---- */

/* "step-NNNNNN" + ext: *step gets NNNNNN. */
static int step_file(const char *name, const char *ext, unsigned long *step)
{
    size_t n = strlen(name), e = strlen(ext);
    if (n <= 5 + e || strncmp(name, "step-", 5) != 0 || strcmp(name + n - e, ext) != 0)
        return 0;
    unsigned long v = 0;
    for (size_t i = 5; i < n - e; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (ULONG_MAX - 9) / 10)
            return 0;
        v = 10 * v + (unsigned long)(name[i] - '0');
    }
    *step = v;
    return 1;
}

/* NAME.tmp.PID: a write that a kill interrupted (wgf_write_atomic), of a
 * file whose name own() accepts. */
static int leftover(const char *name, int (*own)(const char *name))
{
    const char *tmp = strstr(name, ".tmp.");
    if (!tmp || tmp == name || strspn(tmp + 5, "0123456789") != strlen(tmp + 5) || !tmp[5])
        return 0;
    char *base = strndup(name, (size_t)(tmp - name));
    int yes = base && own(base);
    free(base);
    return yes;
}

static int top_own(const char *name)
{
    static const char *const own[] = {"summary.ini", "config.ini", "history.csv", "reference.csv", "checkpoint",
                                      "path.csv"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcmp(name, own[i]) == 0)
            return 1;
    return 0;
}

/* step-NNNNNN.csv, and a path scheme's stage-KK.csv */
static int samples_own(const char *name)
{
    unsigned long k;
    size_t n = strlen(name);
    if (n > 10 && strncmp(name, "stage-", 6) == 0 && strcmp(name + n - 4, ".csv") == 0 &&
        strspn(name + 6, "0123456789") == n - 10)
        return 1;
    return step_file(name, ".csv", &k);
}

static int theta_own(const char *name)
{
    unsigned long k;
    return step_file(name, ".bin", &k);
}

static int unlink_in(const char *dir, const char *name, wgf_error *err)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    snprintf(path, n, "%s/%s", dir, name);
    int rc = WGF_OK;
    if (unlink(path) != 0 && errno != ENOENT)
        rc = wgf_error_set(err, WGF_EIO, "cannot remove %s: %s", path, strerror(errno));
    free(path);
    return rc;
}

int wgf_checkpoint_clear_after(const char *dir, unsigned long from, unsigned long every, wgf_error *err)
{
    if (!wgf_mpi_writer()) /* rank 0 writes a run's files (mpi.c) */
        return WGF_OK;
    int rc = unlink_in(dir, "summary.ini", err); /* first: the directory claims no finished run */
    if (rc == WGF_OK)
        rc = unlink_in(dir, "reference.csv", err);
    static const char *const sub[3] = {"", "/samples", "/theta"}, *const ext[3] = {"", ".csv", ".bin"};
    int (*const own[3])(const char *) = {top_own, samples_own, theta_own};
    for (int i = 0; i < 3 && rc == WGF_OK; i++) {
        char *path = i == 0 ? strdup(dir) : wgf_path_join(dir, sub[i] + 1);
        if (!path) {
            rc = wgf_error_set(err, WGF_ENOMEM, "out of memory");
            break;
        }
        DIR *d = opendir(path);
        if (!d) {
            free(path);
            continue;
        }
        struct dirent *e;
        unsigned long k;
        while (rc == WGF_OK && (e = readdir(d)))
            if (leftover(e->d_name, own[i]) ||
                (i > 0 && step_file(e->d_name, ext[i], &k) && (k >= from || (every > 0 && k % every != 0))))
                rc = unlink_in(path, e->d_name, err);
        closedir(d);
        free(path);
    }
    return rc;
}

int wgf_outdir_finished(const char *dir)
{
    char line[256], *path = wgf_path_join(dir, "summary.ini");
    FILE *f = path ? fopen(path, "r") : NULL;
    free(path);
    if (!f)
        return 0;
    int yes = 0;
    while (!yes && fgets(line, sizeof line, f))
        yes = strcmp(line, "status = finished\n") == 0;
    fclose(f);
    return yes;
}

unsigned long wgf_problem_start_step(const wgf_problem *p) { return p->start_step; }

int wgf_problem_save_state(wgf_problem *p, const double *v, size_t n, wgf_error *err)
{
    if (n > p->step_capstate) {
        double *s = n <= SIZE_MAX / sizeof *s ? realloc(p->step_state, n * sizeof *s) : NULL;
        if (!s)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory for the scheme's state");
        p->step_state = s;
        p->step_capstate = n;
    }
    if (n > 0)
        memcpy(p->step_state, v, n * sizeof *v);
    p->step_nstate = n;
    return WGF_OK;
}

const double *wgf_problem_resume_state(const wgf_problem *p, size_t *n)
{
    *n = p->resume_nstate;
    return p->resume_nstate ? p->resume_state : NULL;
}
