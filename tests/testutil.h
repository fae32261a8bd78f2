/* testutil.h: shared helpers for the Check suites. */
#ifndef WGF_TESTUTIL_H
#define WGF_TESTUTIL_H

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wgf/wgf.h>

/* |a - b| <= tol * max(1, |b|), with both values in the message. */
#define ck_assert_close(a, b, tol)                                                                  \
    do {                                                                                            \
        double ck_a_ = (a), ck_b_ = (b), ck_t_ = (tol);                                             \
        ck_assert_msg(fabs(ck_a_ - ck_b_) <= ck_t_ * fmax(1.0, fabs(ck_b_)),                         \
                      "%s = %.15g, expected %s = %.15g (tol %g)", #a, ck_a_, #b, ck_b_, ck_t_);      \
    } while (0)

/* A registry on the build tree's plugins (WGF_PLUGIN_PATH, set by make check). */
static inline wgf_registry *test_registry(void)
{
    wgf_registry *reg = NULL;
    wgf_error err = {0};
    const char *path = getenv("WGF_PLUGIN_PATH");
    ck_assert_msg(path != NULL, "WGF_PLUGIN_PATH is not set (run through make check)");
    ck_assert_msg(wgf_registry_create_path(&reg, path, &err) == WGF_OK, "%s", err.msg);
    return reg;
}

/* Path of a file in the source tree. */
static inline const char *test_srcpath(const char *rel, char *buf, size_t size)
{
    const char *top = getenv("WGF_SRCDIR");
    snprintf(buf, size, "%s/%s", top ? top : WGF_TEST_SRCDIR, rel);
    return buf;
}

/* An experiment written to a temporary file (unlink and free it). */
static inline char *test_write_ini(const char *text)
{
    char *path = strdup("/tmp/wgf-test-XXXXXX");
    ck_assert(path != NULL);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(text);
    ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

/* A fresh directory /tmp/wgf-TAG-XXXXXX (free the name). */
static inline char *test_temp_dir(const char *tag)
{
    size_t n = strlen(tag) + 24;
    char *dir = malloc(n);
    ck_assert(dir != NULL);
    snprintf(dir, n, "/tmp/wgf-%s-XXXXXX", tag);
    ck_assert(mkdtemp(dir) != NULL);
    return dir;
}

/* Remove a run directory and everything in it. */
static inline void test_remove_tree(const char *dir)
{
    DIR *dp = opendir(dir);
    ck_assert_msg(dp != NULL, "cannot open %s", dir);
    struct dirent *e;
    struct stat st;
    while ((e = readdir(dp)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(n);
        ck_assert(path != NULL);
        memcpy(path, dir, strlen(dir));
        path[strlen(dir)] = '/';
        memcpy(path + strlen(dir) + 1, e->d_name, strlen(e->d_name) + 1);
        ck_assert(lstat(path, &st) == 0);
        if (S_ISDIR(st.st_mode))
            test_remove_tree(path);
        else
            ck_assert_msg(unlink(path) == 0, "cannot remove %s", path);
        free(path);
    }
    closedir(dp);
    ck_assert_msg(rmdir(dir) == 0, "cannot remove %s", dir);
}

/* wgf_problem_create on an experiment's text (written to a temporary file, whose name goes to
 * file when it is not NULL) with --set overrides. Returns its status; on a refusal *p is NULL and
 * err->msg holds the first mistake reported. */
static inline int test_try_problem(const char *text, const char *const *sets, size_t nsets, wgf_problem **p,
                                   wgf_error *err, char *file, size_t fsize)
{
    char *path = test_write_ini(text);
    if (file)
        snprintf(file, fsize, "%s", path);
    wgf_run_opts opts = {.file = path, .sets = sets, .nsets = nsets};
    wgf_diag diag;
    wgf_diag_init(&diag);
    memset(err, 0, sizeof *err);
    int rc = wgf_problem_create(p, &opts, &diag, err);
    if (diag.n)
        snprintf(err->msg, sizeof err->msg, "%s", diag.msg[0]);
    wgf_diag_free(&diag);
    unlink(path);
    free(path);
    return rc;
}

/* The problem of an experiment's text with --set overrides, which must be accepted (free it). */
static inline wgf_problem *test_make_problem(const char *text, const char *const *sets, size_t nsets)
{
    wgf_problem *p = NULL;
    wgf_error err;
    int rc = test_try_problem(text, sets, nsets, &p, &err, NULL, 0);
    ck_assert_msg(rc == WGF_OK, "problem: %s", err.msg);
    return p;
}

/* The [scheme] of an experiment's text (with the same overrides as the problem's) created and
 * run on p, as wgf_problem_run would but with no files; returns the scheme's status. */
static inline int test_run_scheme(const char *text, const char *const *sets, size_t nsets, wgf_problem *p,
                                  wgf_error *err)
{
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_config *cfg = NULL;
    ck_assert(wgf_config_load_string(&cfg, text, "scheme.ini", &diag, err) == WGF_OK);
    for (size_t i = 0; i < nsets; i++)
        ck_assert(wgf_config_set(cfg, sets[i], err) == WGF_OK);
    const char *name = wgf_config_get(cfg, "scheme", "plugin", NULL);
    ck_assert(name != NULL);
    wgf_registry *reg = test_registry();
    const wgf_plugin *pl = NULL;
    const char *where = NULL;
    ck_assert_msg(wgf_registry_find(reg, WGF_SCHEME, name, &pl, &where, err) == WGF_OK, "%s", err->msg);
    static const wgf_param plugin_key[] = {{"plugin", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL, "the plugin"},
                                           {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};
    const wgf_param *schemas[3] = {plugin_key, pl->params, NULL};
    wgf_section *sec = wgf_config_section(cfg, "scheme", schemas, wgf_problem_get_info(p)->dim, &diag);
    ck_assert_msg(sec != NULL && diag.n == 0, "scheme section");
    const wgf_scheme_vt *vt = pl->vtable;
    void *state = NULL;
    ck_assert_msg(vt->create(sec, wgf_problem_get_info(p), &state, err) == WGF_OK, "%s", err->msg);
    int rc = vt->run(state, p, err);
    vt->destroy(state);
    wgf_section_free(sec);
    wgf_registry_free(reg);
    wgf_config_free(cfg);
    wgf_diag_free(&diag);
    return rc;
}

/* Move theta away from the identity, deterministically (and back into the map's domain). */
static inline void test_perturb(wgf_problem *p, double scale)
{
    double *theta = wgf_problem_theta(p);
    size_t P = wgf_problem_nparams(p);
    for (size_t j = 0; j < P; j++)
        theta[j] += scale * sin(1.7 * (double)j + 0.3);
    wgf_error err;
    ck_assert_msg(wgf_problem_constrain(p, theta, &err) == WGF_OK, "%s", err.msg);
}

/* wgf_run; its mistakes are printed on stderr and the first goes to err->msg. */
static inline int test_run(const wgf_run_opts *opts, wgf_run_result *res, wgf_error *err)
{
    wgf_diag diag;
    wgf_diag_init(&diag);
    int rc = wgf_run(opts, res, &diag, err);
    if (diag.n) {
        wgf_diag_print(&diag, stderr, "diag: ");
        snprintf(err->msg, sizeof err->msg, "%s", diag.msg[0]);
    }
    wgf_diag_free(&diag);
    return rc;
}

/* The same with an experiment's text in place of opts.file. */
static inline int test_run_text(const char *text, wgf_run_opts opts, wgf_run_result *res, wgf_error *err)
{
    char *path = test_write_ini(text);
    opts.file = path;
    int rc = test_run(&opts, res, err);
    unlink(path);
    free(path);
    return rc;
}

/* The whole file dir/name (name alone when dir is NULL), with a '\0' after it; its length in
 * *len when len is not NULL (binary files hold '\0' too: compare those with memcmp). */
static inline char *test_read_file(const char *dir, const char *name, size_t *len)
{
    size_t n = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *path = malloc(n);
    ck_assert(path != NULL);
    snprintf(path, n, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert(fseek(f, 0, SEEK_END) == 0);
    long size = ftell(f);
    ck_assert(size >= 0 && fseek(f, 0, SEEK_SET) == 0);
    char *s = malloc((size_t)size + 1);
    ck_assert(s != NULL);
    ck_assert_msg(fread(s, 1, (size_t)size, f) == (size_t)size, "cannot read %s", path);
    s[size] = '\0';
    fclose(f);
    free(path);
    if (len)
        *len = (size_t)size;
    return s;
}

/* Index of the column named col in a CSV text's header line, -1 when it has none. */
static inline int test_csv_column(const char *csv, const char *col)
{
    size_t len = strlen(col);
    int i = 0;
    for (const char *h = csv; *h && *h != '\n'; i++) {
        const char *e = h + strcspn(h, ",\n");
        if ((size_t)(e - h) == len && strncmp(h, col, len) == 0)
            return i;
        h = *e == ',' ? e + 1 : e;
    }
    return -1;
}

/* Column named col of history.csv's text (NaN in empty cells), one entry per row (free it). */
static inline double *test_history_column(const char *hist, const char *col, size_t *nrows)
{
    const char *eol = strchr(hist, '\n');
    ck_assert(eol != NULL);
    int c = test_csv_column(hist, col);
    ck_assert_msg(c >= 0, "history.csv has no column %s", col);
    size_t n = 0, cap = 64;
    double *v = malloc(cap * sizeof *v);
    ck_assert(v != NULL);
    for (const char *r = eol + 1; *r; r = strchr(r, '\n') + 1) {
        const char *cell = r;
        for (int k = 0; k < c; k++)
            cell += strcspn(cell, ",\n") + 1;
        char *end;
        double x = strtod(cell, &end);
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            ck_assert(v != NULL);
        }
        v[n++] = end == cell ? NAN : x;
    }
    *nrows = n;
    return v;
}

/* history.csv's text without its wall_s column, the only one two runs of the same experiment may
 * differ in (a property of the machine and its load). */
static inline void test_strip_wall(char *csv)
{
    int wall = test_csv_column(csv, "wall_s");
    ck_assert_msg(wall > 0, "history.csv has no column wall_s after step");
    char *w = csv;
    int col = 0;
    for (const char *r = csv; *r; r++) {
        if (*r == '\n') {
            col = 0;
            *w++ = *r;
            continue;
        }
        if (*r == ',' && ++col == wall)
            continue; /* the comma before it */
        if (col != wall)
            *w++ = *r;
    }
    *w = '\0';
}

/* Drop the line of key ("wall_seconds = ", or "\nthreads = " for a key that ends another's name)
 * from an INI text: summary.ini's figures of the machine and its load, not of the run. */
static inline void test_strip_line(char *ini, const char *key)
{
    char *p = strstr(ini, key);
    ck_assert_msg(p != NULL, "no %s", key);
    if (*key == '\n')
        p++;
    char *e = strchr(p, '\n');
    ck_assert(e != NULL);
    memmove(p, e + 1, strlen(e + 1) + 1);
}

/* Run a suite; exit status for the test driver. */
static inline int test_main(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
