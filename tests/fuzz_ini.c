/* fuzz_ini: a mutation fuzzer of experiment files.
 *
 *     fuzz_ini [--cases N] [--seed S] [--run-every K] [--jobs J] [--timeout SEC]
 *              [--run-timeout SEC] [--mem MB] [--keep DIR] [--known TEXT]... [--verbose]
 *              WGF SEED.ini...
 *
 * Each case takes one of the seed files, applies one to three seeded mutations
 * (lines and keys deleted or duplicated, numbers made huge, negative, NaN, 0,
 * 1e308, 2^32, 2^63, strings made empty, long or hostile, sections renamed,
 * bytes flipped, the file truncated) and runs `WGF check` on it under a memory
 * cap (RLIMIT_AS, --mem MB; 0 for none) and a time limit. A case fails on a signal, a hang, an exit
 * status other than 0 or 2, or exit 2 without a line `wgf: FILE:LINE: ` (or
 * `wgf: FILE: [section]` for a section the file lacks). Every K-th case (of
 * dimension at most 100) is also run with tiny sizes (--set run.samples=...,
 * a few steps): check and run get the same --set options, and a run that
 * exits 2 after check said 0 is a disagreement; a run must exit 0 or 3 and
 * leave no temporary file.
 *
 * Cases depend only on (seed, case number, seed files), not on the number of
 * jobs (worker processes): a failure is reproduced with --keep DIR, which
 * keeps the failing files. Prints the counts and every distinct failure
 * signature (class and the first error line with the file name, numbers and
 * quoted text abstracted); exits 1 when a case failed. A signature containing
 * a --known TEXT is listed as known and does not fail the campaign (a defect
 * being fixed elsewhere). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ text buffer */

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_ini: %s: %s\n", what, strerror(errno));
    exit(99);
}

static void b_addn(buf *b, const char *s, size_t n)
{
    if (n > PTRDIFF_MAX / 4 || b->n > PTRDIFF_MAX / 4) { /* no text here is that long */
        errno = EOVERFLOW;
        die("buffer size");
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            die("realloc");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void b_add(buf *b, const char *s) { b_addn(b, s, strlen(s)); }

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf b = {0};
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        b_addn(&b, chunk, k);
    fclose(f);
    if (!b.p)
        b_addn(&b, "", 0);
    *len = b.n;
    return b.p;
}

/* ------------------------------------------------------------ random numbers */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t pick(uint64_t *s, size_t n) { return n ? (size_t)(splitmix(s) % n) : 0; }

/* ------------------------------------------------------------ lines */

typedef struct {
    char **v;
    size_t n, cap;
} lines;

static void l_insert(lines *L, size_t at, char *s)
{
    if (L->n + 1 > L->cap) {
        L->cap = L->cap ? 2 * L->cap : 64;
        L->v = realloc(L->v, L->cap * sizeof *L->v);
        if (!L->v)
            die("realloc");
    }
    memmove(L->v + at + 1, L->v + at, (L->n - at) * sizeof *L->v);
    L->v[at] = s;
    L->n++;
}

static void l_delete(lines *L, size_t at)
{
    free(L->v[at]);
    memmove(L->v + at, L->v + at + 1, (L->n - at - 1) * sizeof *L->v);
    L->n--;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        die("malloc");
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void l_split(lines *L, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        l_insert(L, L->n, dupn(text + i, e - i));
        i = e + 1;
    }
}

static void l_free(lines *L)
{
    for (size_t i = 0; i < L->n; i++)
        free(L->v[i]);
    free(L->v);
    memset(L, 0, sizeof *L);
}

static int is_key_line(const char *s)
{
    return s[0] && s[0] != ';' && s[0] != '#' && s[0] != '[' && !isspace((unsigned char)s[0]) &&
           strchr(s, '=') != NULL;
}

static int is_section_line(const char *s) { return s[0] == '['; }

/* A random line satisfying pred, or L->n when none. */
static size_t pick_line(uint64_t *s, const lines *L, int (*pred)(const char *))
{
    size_t cnt = 0;
    for (size_t i = 0; i < L->n; i++)
        cnt += pred(L->v[i]) != 0;
    if (!cnt)
        return L->n;
    size_t k = pick(s, cnt);
    for (size_t i = 0; i < L->n; i++)
        if (pred(L->v[i]) && k-- == 0)
            return i;
    return L->n;
}

/* ------------------------------------------------------------ mutations */

static const char *const numbers[] = {
    "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551616",
    "1e9", "1e12", "-1", "0", "1", "2", "-0", "nan", "NaN", "inf", "-inf", "1e308", "-1e308",
    "1e-320", "2147483648", "2147483647", "65536", "100000", "0x10", "3.5", "1e400", "-9223372036854775808",
    "1000000", "2000", "1e-300", "0.0"};

static const char *const plugin_names[] = {"fpe", "pme", "aggregation", "affine", "planar",
                                           "lagrangian", "euler", "", "nosuch", "../fpe", "fpe.so"};

static const char *const section_names[] = {
    "run", "initial", "energy", "energy.x", "map", "metric", "scheme", "output", "reference",
    "energy.", "", "ENERGY", "run.x", "map.y", "[x]", "energy.energy"};

static const char *const keys[] = {
    "dim", "samples", "seed", "threads", "plugin_path", "name", "type", "mean", "cov", "file",
    "plugin", "potential", "mu", "sigma", "diffusion", "expr", "layers", "tol", "maxiter",
    "tikhonov", "step", "t_end", "every", "write_count", "particles", "fv_cells", "m", "kernel",
    "scale", "radius", "width", "w2_samples", "diagnostics_every", "moment_match", "plots"};

static char *hostile_string(uint64_t *s)
{
    static const char *const fixed[] = {
        "", " ", "../../escaped", "x'; system(\"id\"); print '", "%s%s%s%n", "$(id)", "`id`",
        "a b c", "\xff\xfe\xfd", "\xef\xbb\xbf", "identity identity", "full", "diag", "blocks 0:",
        "blocks 4294967296: 1", "blocks 2:", "/dev/zero", "/dev/null", "/proc/self/mem", ".",
        "/", "x1 +", "exp(exp(exp(x1)))", "((((((x1))))))", "x1^", "-", "1/0", "sqrt(-1)",
        "log(0)", "x0", "x99999999999", "gaussian", "uniform", "file", "barenblatt", "quadratic",
        "quartic", "double_well", "expr", "none", "ou", "particles", "fpe1d", "aggregation"};
    size_t k = pick(s, sizeof fixed / sizeof *fixed + 4);
    if (k < sizeof fixed / sizeof *fixed)
        return dupn(fixed[k], strlen(fixed[k]));
    buf b = {0};
    size_t n;
    switch (k - sizeof fixed / sizeof *fixed) {
    case 0: /* long */
        n = 1 + pick(s, 20000);
        for (size_t i = 0; i < n; i++)
            b_add(&b, "a");
        break;
    case 1: /* deep exponent chain */
        n = 1 + pick(s, 200000);
        b_add(&b, "x1");
        for (size_t i = 0; i < n; i++)
            b_add(&b, "^x1");
        break;
    case 2: /* deep unary chain or parentheses */
        n = 1 + pick(s, 200000);
        for (size_t i = 0; i < n; i++)
            b_add(&b, pick(s, 2) ? "-" : "(");
        b_add(&b, "x1");
        break;
    default: /* many numbers */
        n = 1 + pick(s, 5000);
        for (size_t i = 0; i < n; i++)
            b_add(&b, numbers[pick(s, sizeof numbers / sizeof *numbers)]), b_add(&b, " ");
        break;
    }
    return b.p ? b.p : dupn("", 0);
}

/* Replace the value of key line i by v. */
static void set_value(lines *L, size_t i, const char *v)
{
    char *line = L->v[i];
    char *eq = strchr(line, '=');
    buf b = {0};
    b_addn(&b, line, (size_t)(eq - line) + 1);
    b_add(&b, " ");
    b_add(&b, v);
    free(line);
    L->v[i] = b.p;
}

/* Replace one number inside the value of key line i. */
static int mutate_number(uint64_t *s, lines *L, size_t i)
{
    char *line = L->v[i];
    char *val = strchr(line, '=') + 1;
    size_t cnt = 0;
    for (char *c = val; *c; c++)
        if (isdigit((unsigned char)*c) && (c == val || !isalnum((unsigned char)c[-1]) ))
            cnt++;
    if (!cnt)
        return 0;
    size_t k = pick(s, cnt);
    for (char *c = val; *c; c++)
        if (isdigit((unsigned char)*c) && (c == val || !isalnum((unsigned char)c[-1])) && k-- == 0) {
            char *e = c;
            while (*e && (isalnum((unsigned char)*e) || *e == '.' || *e == '-' || *e == '+'))
                e++;
            buf b = {0};
            b_addn(&b, line, (size_t)(c - line));
            b_add(&b, numbers[pick(s, sizeof numbers / sizeof *numbers)]);
            b_add(&b, e);
            free(line);
            L->v[i] = b.p;
            return 1;
        }
    return 0;
}

static void mutate(uint64_t *s, lines *L, buf *out)
{
    int nm = 1 + (int)pick(s, 3);
    int truncate = 0, flips = 0;
    for (int m = 0; m < nm; m++) {
        size_t i;
        char *v;
        switch (pick(s, 14)) {
        case 0: /* delete a line */
            if (L->n)
                l_delete(L, pick(s, L->n));
            break;
        case 1: /* duplicate a line, next to it or elsewhere */
            if (L->n) {
                i = pick(s, L->n);
                l_insert(L, pick(s, 2) ? i + 1 : pick(s, L->n + 1), dupn(L->v[i], strlen(L->v[i])));
            }
            break;
        case 2: case 3: /* a whole value becomes a special number */
            if ((i = pick_line(s, L, is_key_line)) < L->n)
                set_value(L, i, numbers[pick(s, sizeof numbers / sizeof *numbers)]);
            break;
        case 4: case 5: /* one number inside a value */
            if ((i = pick_line(s, L, is_key_line)) < L->n)
                mutate_number(s, L, i);
            break;
        case 6: /* a value becomes an empty, long or hostile string */
            if ((i = pick_line(s, L, is_key_line)) < L->n) {
                v = hostile_string(s);
                set_value(L, i, v);
                free(v);
            }
            break;
        case 7: /* a plugin changes */
            if ((i = pick_line(s, L, is_key_line)) < L->n) {
                free(L->v[i]);
                buf b = {0};
                b_add(&b, "plugin = ");
                b_add(&b, plugin_names[pick(s, sizeof plugin_names / sizeof *plugin_names)]);
                L->v[i] = b.p;
            }
            break;
        case 8: /* a section is renamed */
            if ((i = pick_line(s, L, is_section_line)) < L->n) {
                free(L->v[i]);
                buf b = {0};
                b_add(&b, "[");
                b_add(&b, section_names[pick(s, sizeof section_names / sizeof *section_names)]);
                b_add(&b, "]");
                L->v[i] = b.p;
            }
            break;
        case 9: /* a key is added, with a special value */
            {
                buf b = {0};
                b_add(&b, keys[pick(s, sizeof keys / sizeof *keys)]);
                b_add(&b, " = ");
                if (pick(s, 2)) {
                    b_add(&b, numbers[pick(s, sizeof numbers / sizeof *numbers)]);
                } else {
                    v = hostile_string(s);
                    b_add(&b, v);
                    free(v);
                }
                l_insert(L, pick(s, L->n + 1), b.p);
            }
            break;
        case 10: /* a key is renamed */
            if ((i = pick_line(s, L, is_key_line)) < L->n) {
                char *eq = strchr(L->v[i], '=');
                buf b = {0};
                b_add(&b, keys[pick(s, sizeof keys / sizeof *keys)]);
                b_add(&b, " ");
                b_add(&b, eq);
                free(L->v[i]);
                L->v[i] = b.p;
            }
            break;
        case 11: /* a whole section is duplicated or deleted */
            if ((i = pick_line(s, L, is_section_line)) < L->n) {
                size_t e = i + 1;
                while (e < L->n && !is_section_line(L->v[e]))
                    e++;
                if (pick(s, 2)) {
                    for (size_t k = i; k < e; k++)
                        l_insert(L, L->n, dupn(L->v[k], strlen(L->v[k])));
                } else {
                    for (size_t k = i; k < e; k++)
                        l_delete(L, i);
                }
            }
            break;
        case 12:
            flips++;
            break;
        default:
            truncate = 1;
            break;
        }
    }
    out->n = 0;
    for (size_t i = 0; i < L->n; i++) {
        b_add(out, L->v[i]);
        b_add(out, "\n");
    }
    for (int f = 0; f < flips && out->n; f++) {
        size_t at = pick(s, out->n);
        out->p[at] = (char)(out->p[at] ^ (1u << pick(s, 8)));
    }
    if (truncate && out->n) {
        out->n = pick(s, out->n);
        out->p[out->n] = '\0';
    }
}

/* ------------------------------------------------------------ running */

typedef struct {
    const char *wgf;
    double timeout, run_timeout;
    unsigned long mem_mb;
    const char *tmp;
} env;

typedef struct {
    int status;   /* wait status */
    int hung;     /* killed at the time limit */
    char *output; /* stdout and stderr */
} outcome;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_cmd(const env *E, char *const argv[], double limit, const char *outpath, outcome *o)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        setpgid(0, 0);
        if (E->mem_mb > 0) { /* 0: no cap (AddressSanitizer reserves terabytes of address space) */
            struct rlimit rl = {E->mem_mb << 20, E->mem_mb << 20};
            setrlimit(RLIMIT_AS, &rl);
        }
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
        int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0)
            _exit(98);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(97);
    }
    double t0 = now();
    o->hung = 0;
    struct timespec nap = {0, 2000000};
    for (;;) {
        pid_t w = waitpid(pid, &o->status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            die("waitpid");
        if (!o->hung && now() - t0 > limit) {
            o->hung = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
        nanosleep(&nap, NULL);
    }
    size_t len;
    o->output = read_file(outpath, &len);
    if (!o->output)
        o->output = dupn("", 0);
    else if (len > 65536)
        o->output[65536] = '\0';
}

/* The first line of out that starts with "wgf: ", abstracted: the case's
 * file name becomes FILE, digits N, quoted text '...'. */
static void abstract_line(const char *out, const char *file, char *sig, size_t size)
{
    const char *l = strstr(out, "wgf: ");
    if (!l)
        l = out;
    const char *e = strchr(l, '\n');
    size_t n = e ? (size_t)(e - l) : strlen(l);
    size_t flen = strlen(file), k = 0;
    for (size_t i = 0; i < n && k + 8 < size && k < 110;) {
        if (strncmp(l + i, file, flen) == 0) {
            k += (size_t)snprintf(sig + k, size - k, "FILE");
            i += flen;
        } else if (isdigit((unsigned char)l[i])) {
            sig[k++] = 'N';
            while (i < n && (isalnum((unsigned char)l[i]) || l[i] == '.' || l[i] == '+' || l[i] == '-'))
                i++;
        } else if (l[i] == '\'') {
            const char *q = memchr(l + i + 1, '\'', n - i - 1);
            k += (size_t)snprintf(sig + k, size - k, "'...'");
            i = q ? (size_t)(q - l) + 1 : n;
        } else {
            unsigned char c = (unsigned char)l[i++];
            sig[k++] = (char)(c < 32 || c > 126 ? '?' : c);
        }
    }
    sig[k] = '\0';
}

/* Exit 2 is well formed when a line names the file and a line in it (or a
 * section the file lacks), or the --set option at fault. */
static int located(const char *out, const char *file)
{
    size_t flen = strlen(file);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, "wgf: ", 5) != 0 || strncmp(l + 5, file, flen) != 0)
            continue;
        const char *r = l + 5 + flen;
        if (r[0] == ':' && isdigit((unsigned char)r[1])) {
            r++;
            while (isdigit((unsigned char)*r))
                r++;
            if (r[0] == ':' && r[1] == ' ')
                return 1;
        }
        if (strncmp(r, ": [", 3) == 0)
            return 1;
    }
    /* an error in a --set option of the command line names the option */
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, "wgf: --set ", 11) == 0)
            return 1;
    return 0;
}

/* Describe a failure of a check (run = 0) or a run (run = 1) in sig; 0 when
 * the outcome is acceptable. */
static int judge(const outcome *o, const char *file, int run, int check_status, char *sig, size_t size)
{
    char line[160];
    abstract_line(o->output, file, line, sizeof line);
    const char *what = run ? "run" : "check";
    if (o->hung) {
        snprintf(sig, size, "%s: hang", what);
        return 1;
    }
    if (WIFSIGNALED(o->status)) {
        snprintf(sig, size, "%s: signal %s: %s", what, strsignal(WTERMSIG(o->status)), line);
        return 1;
    }
    int st = WEXITSTATUS(o->status);
    if (!run) {
        if (st != 0 && st != 2) {
            snprintf(sig, size, "check: exit %d: %s", st, line);
            return 1;
        }
        if (st == 2 && !located(o->output, file)) {
            snprintf(sig, size, "check: exit 2 without FILE:LINE: %s", line);
            return 1;
        }
        return 0;
    }
    if (st == 2 && check_status == 0) {
        snprintf(sig, size, "run: exit 2 after check 0: %s", line);
        return 1;
    }
    if (st != 0 && st != 3) {
        snprintf(sig, size, "run: exit %d: %s", st, line);
        return 1;
    }
    return 0;
}

/* The largest `dim = N` in text (0 when none reads as a number): short runs
 * are for small problems, a dimension of thousands is a long run by nature
 * (d^3 diagnostics), not a hang. */
static unsigned long long largest_dim(const char *text)
{
    unsigned long long best = 0;
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, "dim", 3) != 0)
            continue;
        const char *r = l + 3;
        while (*r == ' ' || *r == '\t')
            r++;
        if (*r++ != '=')
            continue;
        unsigned long long v = strtoull(r, NULL, 10);
        if (v > best)
            best = v;
    }
    return best;
}

/* ------------------------------------------------------------ bookkeeping */

typedef struct {
    char *sig;
    unsigned long count, first_case;
} sigcount;

typedef struct {
    sigcount *v;
    size_t n, cap;
} sigtable;

static void note(sigtable *T, const char *sig, unsigned long c)
{
    for (size_t i = 0; i < T->n; i++)
        if (strcmp(T->v[i].sig, sig) == 0) {
            T->v[i].count++;
            return;
        }
    if (T->n == T->cap) {
        T->cap = T->cap ? 2 * T->cap : 16;
        T->v = realloc(T->v, T->cap * sizeof *T->v);
        if (!T->v)
            die("realloc");
    }
    T->v[T->n++] = (sigcount){dupn(sig, strlen(sig)), 1, c};
}

static int has_tmp_files(const char *dir)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.tmp.*' 2>/dev/null | grep -q .", dir);
    return system(cmd) == 0;
}

static void rm_rf(const char *dir)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_ini: could not remove %s\n", dir);
}

static void write_file(const char *path, const char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        die(path);
}

/* Keys of the core and of every scheme and metric used here; a reference's own keys
 * (particles, fv_cells, ...) exist only for that reference, so they are left alone. */
static const char *const tiny[] = {
    "--set", "run.samples=16", "--set", "output.samples=32", "--set", "output.plots=false",
    "--set", "output.write_count=8", "--set", "scheme.t_end=0.002", "--set", "scheme.step=0.001",
    "--set", "metric.maxiter=20"};
#define NTINY (sizeof tiny / sizeof *tiny)
#define MAX_RUN_DIM 100 /* short runs only below this dimension */

typedef struct {
    const env *E;
    char **seeds;
    size_t *seedlen, nseeds;
    unsigned long seed, run_every;
    const char *keep;
    int verbose;
} campaign;

/* One case: writes "CASE<TAB>CHECK<TAB>RAN<TAB>SIGNATURE" to res (CHECK: the
 * exit status of check, -1 for a signal, -2 for a hang; RAN: 1 when the case
 * was also run; SIGNATURE empty when it passed). */
static void one_case(const campaign *C, unsigned long c, int worker, FILE *res)
{
    const env *E = C->E;
    char file[1024], outp[1024], rundir[1024], sig[512];
    buf text = {0};
    uint64_t s = C->seed * 0x100000001b3ull + c;
    splitmix(&s);
    size_t k = pick(&s, C->nseeds);
    lines L = {0};
    l_split(&L, C->seeds[k], C->seedlen[k]);
    mutate(&s, &L, &text);
    l_free(&L);
    snprintf(file, sizeof file, "%s/case-%06lu.ini", E->tmp, c);
    snprintf(outp, sizeof outp, "%s/out-%d", E->tmp, worker);
    snprintf(rundir, sizeof rundir, "%s/run-%d", E->tmp, worker);
    write_file(file, text.p, text.n);

    int as_run = C->run_every && c % C->run_every == 0 && largest_dim(text.p) <= MAX_RUN_DIM;
    const char *args[12 + NTINY];
    size_t n = 0;
    args[n++] = E->wgf;
    args[n++] = "check";
    args[n++] = file;
    if (as_run)
        for (size_t i = 0; i < NTINY; i++)
            args[n++] = tiny[i];
    args[n] = NULL;
    outcome o;
    run_cmd(E, (char *const *)args, E->timeout, outp, &o);
    int failed = judge(&o, file, 0, 0, sig, sizeof sig);
    int check_status = o.hung ? -2 : WIFSIGNALED(o.status) ? -1 : WEXITSTATUS(o.status);
    if (C->verbose)
        fprintf(stderr, "case %lu (seed file %zu): check %d%s%s\n", c, k, check_status,
                failed ? " FAILED: " : "", failed ? sig : "");
    free(o.output);
    int ran = 0;
    if (!failed && as_run && check_status == 0) {
        ran = 1;
        n = 0;
        args[n++] = E->wgf;
        args[n++] = "run";
        args[n++] = file;
        args[n++] = "-o";
        args[n++] = rundir;
        args[n++] = "--quiet";
        args[n++] = "--threads";
        args[n++] = "1";
        for (size_t i = 0; i < NTINY; i++)
            args[n++] = tiny[i];
        args[n] = NULL;
        run_cmd(E, (char *const *)args, E->run_timeout, outp, &o);
        failed = judge(&o, file, 1, check_status, sig, sizeof sig);
        if (!failed && has_tmp_files(rundir)) {
            snprintf(sig, sizeof sig, "run: temporary files left");
            failed = 1;
        }
        if (C->verbose)
            fprintf(stderr, "case %lu: run %d%s%s\n", c,
                    o.hung ? -2 : WIFSIGNALED(o.status) ? -1 : WEXITSTATUS(o.status),
                    failed ? " FAILED: " : "", failed ? sig : "");
        free(o.output);
        rm_rf(rundir);
    }
    if (failed && C->keep) {
        char kept[2048];
        snprintf(kept, sizeof kept, "%s/case-%06lu.ini", C->keep, c);
        write_file(kept, text.p, text.n);
    }
    for (char *q = sig; *q; q++)
        if (*q == '\t' || *q == '\n')
            *q = ' ';
    fprintf(res, "%lu\t%d\t%d\t%s\n", c, check_status, ran, failed ? sig : "");
    fflush(res);
    unlink(file);
    free(text.p);
}

static void usage(void)
{
    fprintf(stderr, "usage: fuzz_ini [--cases N] [--seed S] [--run-every K] [--jobs J] [--timeout SEC] "
                    "[--run-timeout SEC] [--mem MB] [--keep DIR] [--known TEXT]... [--verbose] "
                    "WGF SEED.ini...\n");
    exit(99);
}

typedef struct {
    unsigned long c;
    int check, ran;
    char *sig;
} result;

static int by_case(const void *a, const void *b)
{
    const result *x = a, *y = b;
    return x->c < y->c ? -1 : x->c > y->c;
}

int main(int argc, char **argv)
{
    unsigned long cases = 1000, jobs = 2;
    env E = {NULL, 10.0, 30.0, 2048, NULL};
    campaign C = {&E, NULL, NULL, 0, 1, 0, NULL, 0};
    const char *known[32];
    size_t nknown = 0;
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        const char *o = argv[a];
        if (strcmp(o, "--verbose") == 0) {
            C.verbose = 1;
            continue;
        }
        if (a + 1 >= argc)
            usage();
        const char *v = argv[++a];
        if (strcmp(o, "--cases") == 0)
            cases = strtoul(v, NULL, 10);
        else if (strcmp(o, "--seed") == 0)
            C.seed = strtoul(v, NULL, 10);
        else if (strcmp(o, "--run-every") == 0)
            C.run_every = strtoul(v, NULL, 10);
        else if (strcmp(o, "--jobs") == 0)
            jobs = strtoul(v, NULL, 10);
        else if (strcmp(o, "--timeout") == 0)
            E.timeout = strtod(v, NULL);
        else if (strcmp(o, "--run-timeout") == 0)
            E.run_timeout = strtod(v, NULL);
        else if (strcmp(o, "--mem") == 0)
            E.mem_mb = strtoul(v, NULL, 10);
        else if (strcmp(o, "--keep") == 0)
            C.keep = v;
        else if (strcmp(o, "--known") == 0 && nknown < sizeof known / sizeof *known)
            known[nknown++] = v;
        else
            usage();
    }
    if (argc - a < 2 || jobs < 1 || jobs > 64)
        usage();
    E.wgf = argv[a++];
    C.nseeds = (size_t)(argc - a);
    C.seeds = calloc(C.nseeds, sizeof *C.seeds);
    C.seedlen = calloc(C.nseeds, sizeof *C.seedlen);
    if (!C.seeds || !C.seedlen)
        die("calloc");
    for (size_t i = 0; i < C.nseeds; i++)
        if (!(C.seeds[i] = read_file(argv[a + i], &C.seedlen[i])))
            die(argv[a + i]);
    char tmpl[] = "/tmp/wgf-fuzz-XXXXXX";
    if (!mkdtemp(tmpl))
        die("mkdtemp");
    E.tmp = tmpl;
    if (C.keep && mkdir(C.keep, 0700) != 0 && errno != EEXIST)
        die(C.keep);

    /* Workers take every jobs-th case; each writes its results to a file. */
    double t0 = now();
    char resname[1024];
    for (unsigned long j = 0; j < jobs; j++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            snprintf(resname, sizeof resname, "%s/results-%lu", E.tmp, j);
            FILE *res = fopen(resname, "w");
            if (!res)
                die(resname);
            for (unsigned long c = j; c < cases; c += jobs)
                one_case(&C, c, (int)j, res);
            fclose(res);
            _exit(0);
        }
    }
    int st, worker_failed = 0;
    while (wait(&st) > 0)
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            worker_failed = 1;
    if (worker_failed) {
        fprintf(stderr, "fuzz_ini: a worker failed\n");
        return 99;
    }

    result *R = calloc(cases ? cases : 1, sizeof *R);
    if (!R)
        die("calloc");
    size_t nr = 0;
    for (unsigned long j = 0; j < jobs; j++) {
        snprintf(resname, sizeof resname, "%s/results-%lu", E.tmp, j);
        size_t len;
        char *t = read_file(resname, &len);
        if (!t)
            die(resname);
        for (char *l = t; *l && nr < cases;) {
            char *e = strchr(l, '\n');
            if (e)
                *e = '\0';
            char *f1 = strchr(l, '\t'), *f2 = f1 ? strchr(f1 + 1, '\t') : NULL,
                 *f3 = f2 ? strchr(f2 + 1, '\t') : NULL;
            if (f3) {
                R[nr].c = strtoul(l, NULL, 10);
                R[nr].check = atoi(f1 + 1);
                R[nr].ran = atoi(f2 + 1);
                R[nr].sig = dupn(f3 + 1, strlen(f3 + 1));
                nr++;
            }
            if (!e)
                break;
            l = e + 1;
        }
        free(t);
        unlink(resname);
        snprintf(resname, sizeof resname, "%s/out-%lu", E.tmp, j);
        unlink(resname);
    }
    rmdir(E.tmp);
    qsort(R, nr, sizeof *R, by_case);

    sigtable T = {0}, K = {0};
    unsigned long nfail = 0, nknownfail = 0, nruns = 0, n0 = 0, n2 = 0, nsig = 0, nhang = 0;
    for (size_t i = 0; i < nr; i++) {
        n0 += R[i].check == 0;
        n2 += R[i].check == 2;
        nsig += R[i].check == -1;
        nhang += R[i].check == -2;
        nruns += (unsigned long)R[i].ran;
        if (R[i].sig[0]) {
            int is_known = 0;
            for (size_t k = 0; k < nknown; k++)
                is_known |= strstr(R[i].sig, known[k]) != NULL;
            if (is_known) {
                nknownfail++;
                note(&K, R[i].sig, R[i].c);
            } else {
                nfail++;
                note(&T, R[i].sig, R[i].c);
            }
        }
        free(R[i].sig);
    }
    free(R);
    printf("fuzz_ini: %zu cases (seed %lu, %zu seed files, %lu jobs) in %.1f s: check exit 0: %lu, "
           "exit 2: %lu, other exits: %lu, signals: %lu, hangs: %lu; %lu short runs\n",
           nr, C.seed, C.nseeds, jobs, now() - t0, n0, n2, (unsigned long)nr - n0 - n2 - nsig - nhang,
           nsig, nhang, nruns);
    printf("fuzz_ini: %lu failures in %zu distinct signatures\n", nfail, T.n);
    for (size_t i = 0; i < T.n; i++) {
        printf("  %5lu x (first: case %lu) %s\n", T.v[i].count, T.v[i].first_case, T.v[i].sig);
        free(T.v[i].sig);
    }
    free(T.v);
    if (nknownfail)
        printf("fuzz_ini: %lu known failures (--known) in %zu distinct signatures\n", nknownfail, K.n);
    for (size_t i = 0; i < K.n; i++) {
        printf("  %5lu x (first: case %lu) %s\n", K.v[i].count, K.v[i].first_case, K.v[i].sig);
        free(K.v[i].sig);
    }
    free(K.v);
    for (size_t i = 0; i < C.nseeds; i++)
        free(C.seeds[i]);
    free(C.seeds);
    free(C.seedlen);
    if (nr != cases) {
        fprintf(stderr, "fuzz_ini: %zu results for %lu cases\n", nr, cases);
        return 99;
    }
    return nfail ? 1 : 0;
}
