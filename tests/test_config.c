/* test_config.c: experiment files: the INI syntax (also lines longer than
 * inih's 200-byte buffer), every value type and matrix form, line numbers,
 * --set, every error message, and the round trip through wgf_section_write. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "../core/internal.h" /* wgf_path_join, wgf_path_beside */

/* ------------------------------------------------------------ helpers */

static wgf_config *load_rc(const char *text, wgf_diag *diag, int expect_rc)
{
    wgf_config *cfg = NULL;
    wgf_error err = {0};
    wgf_diag_init(diag);
    int rc = wgf_config_load_string(&cfg, text, "exp.ini", diag, &err);
    if (rc != expect_rc)
        wgf_diag_print(diag, stderr, "diag: ");
    ck_assert_int_eq(rc, expect_rc);
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

/* A file that parses cleanly. */
static wgf_config *load(const char *text)
{
    wgf_diag diag;
    wgf_config *cfg = load_rc(text, &diag, WGF_OK);
    ck_assert_int_eq(diag.n, 0);
    wgf_diag_free(&diag);
    return cfg;
}

static wgf_section *section_ok(wgf_config *cfg, const char *name, const wgf_param *schema,
                               size_t dim)
{
    const wgf_param *schemas[2] = {schema, NULL};
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_section *s = wgf_config_section(cfg, name, schemas, dim, &diag);
    ck_assert_msg(s != NULL && diag.n == 0, "[%s]: %s", name, diag.n ? diag.msg[0] : "NULL");
    wgf_diag_free(&diag);
    return s;
}

/* text is fine as INI, but section name gets exactly the one error expected. */
static void one_error(const char *text, const char *name, const wgf_param *schema, size_t dim,
                      const char *expected)
{
    wgf_config *cfg = load(text);
    const wgf_param *schemas[2] = {schema, NULL};
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_section *s = wgf_config_section(cfg, name, schemas, dim, &diag);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(diag.n, 1);
    ck_assert_str_eq(diag.msg[0], expected);
    wgf_diag_free(&diag);
    wgf_config_free(cfg);
}

/* text has exactly the one syntax-level error expected. */
static void load_error(const char *text, const char *expected)
{
    wgf_diag diag;
    wgf_config *cfg = load_rc(text, &diag, WGF_EINVAL);
    ck_assert_int_eq(diag.n, 1);
    ck_assert_str_eq(diag.msg[0], expected);
    wgf_diag_free(&diag);
    wgf_config_free(cfg);
}

/* Everything written to f so far, as a string. */
static char *slurp(FILE *f)
{
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    rewind(f);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    return s;
}

/* A growing string for long test lines. */
typedef struct {
    char *s;
    size_t len, cap;
} text;

static void tx_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tx_add(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = 2 * (t->len + (size_t)n + 1);
        t->s = realloc(t->s, t->cap);
        ck_assert_ptr_nonnull(t->s);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* ------------------------------------------------------------ schemas */

static const wgf_param all_schema[] = {
    {"n", WGF_PARAM_INT, "3", WGF_P_MIN, 1, 0, NULL, "an int"},
    {"x", WGF_PARAM_DOUBLE, "0.5", 0, 0, 0, NULL, "a double"},
    {"flag", WGF_PARAM_BOOL, "false", 0, 0, 0, NULL, "a bool"},
    {"name", WGF_PARAM_STRING, "wgf", 0, 0, 0, NULL, "a string"},
    {"mode", WGF_PARAM_CHOICE, "check", 0, 0, 0, "check|project|reparam", "a choice"},
    {"mu", WGF_PARAM_VECTOR, "0", 0, 0, 0, NULL, "a vector"},
    {"w", WGF_PARAM_LIST, "1", 0, 0, 0, NULL, "a list"},
    {"sigma", WGF_PARAM_MATRIX, "identity", 0, 0, 0, NULL, "a matrix"},
    {"note", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL, "no default"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_param map_schema[] = {
    {"layers", WGF_PARAM_INT, "20", WGF_P_MIN, 1, 0, NULL, "number of layers"},
    {"block", WGF_PARAM_INT, "1", WGF_P_MIN, 1, 0, NULL, "layers per stage"},
    {"invertibility", WGF_PARAM_CHOICE, "check", 0, 0, 0, "check|project|reparam", "how"},
    {"delta", WGF_PARAM_DOUBLE, "0.1", WGF_P_MIN | WGF_P_MIN_OPEN | WGF_P_MAX, 0, 1, NULL, "margin"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_param run_schema[] = {
    {"dim", WGF_PARAM_INT, NULL, WGF_P_REQUIRED | WGF_P_MIN, 1, 0, NULL, "dimension d"},
    {"samples", WGF_PARAM_INT, "1000", WGF_P_MIN, 1, 0, NULL, "samples"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_param energy_schema[] = {
    {"potential", WGF_PARAM_STRING, NULL, WGF_P_REQUIRED, 0, 0, NULL, "which potential V"},
    {"mu", WGF_PARAM_VECTOR, "0", 0, 0, 0, NULL, "centre"},
    {"sigma", WGF_PARAM_MATRIX, "identity", 0, 0, 0, NULL, "covariance"},
    {"scale", WGF_PARAM_VECTOR, "1", WGF_P_MIN, 0, 0, NULL, "scales"},
    {"weights", WGF_PARAM_LIST, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "weights"},
    {"diffusion", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "D"},
    {"exact", WGF_PARAM_BOOL, "no", 0, 0, 0, NULL, "closed form"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

/* ------------------------------------------------------------ values */

START_TEST(test_every_type)
{
    wgf_config *cfg = load("[t]\n"
                           "n = 42\n"
                           "x = -1.25e-3\n"
                           "flag = yes\n"
                           "name = hello  world\n"
                           "mode = project\n"
                           "mu = 1 2.5 -3\n"
                           "w = 0.1 0.2 0.3 0.4 0.5\n"
                           "sigma = full 1 2 3 4 5 6 7 8 9\n");
    wgf_section *s = section_ok(cfg, "t", all_schema, 3);
    ck_assert_str_eq(wgf_section_name(s), "t");
    ck_assert_str_eq(wgf_section_file(s), "exp.ini");
    ck_assert_uint_eq(wgf_section_dim(s), 3);
    ck_assert_int_eq(wgf_section_int(s, "n"), 42);
    ck_assert(wgf_section_double(s, "x") == -1.25e-3);
    ck_assert_int_eq(wgf_section_bool(s, "flag"), 1);
    ck_assert_str_eq(wgf_section_string(s, "name"), "hello  world");
    ck_assert_str_eq(wgf_section_string(s, "mode"), "project");
    size_t len = 0;
    const double *mu = wgf_section_vector(s, "mu", &len);
    ck_assert_uint_eq(len, 3);
    ck_assert(mu[0] == 1 && mu[1] == 2.5 && mu[2] == -3);
    const double *w = wgf_section_vector(s, "w", &len);
    ck_assert_uint_eq(len, 5);
    const double wx[5] = {0.1, 0.2, 0.3, 0.4, 0.5};
    for (int i = 0; i < 5; i++)
        ck_assert(w[i] == wx[i]);
    const double *m = wgf_section_matrix(s, "sigma");
    for (int i = 0; i < 9; i++)
        ck_assert(m[i] == i + 1);
    ck_assert_str_eq(wgf_section_text(s, "x"), "-1.25e-3");
    ck_assert_str_eq(wgf_section_text(s, "sigma"), "full 1 2 3 4 5 6 7 8 9");
    ck_assert_int_eq(wgf_section_has(s, "note"), 0);
    ck_assert_ptr_null(wgf_section_text(s, "note"));
    wgf_section_free(s);
    wgf_config_free(cfg);
}
END_TEST

START_TEST(test_defaults)
{
    wgf_config *cfg = load("[other]\nk = 1\n");
    wgf_section *s = section_ok(cfg, "t", all_schema, 4);
    ck_assert_int_eq(wgf_section_int(s, "n"), 3);
    ck_assert(wgf_section_double(s, "x") == 0.5);
    ck_assert_int_eq(wgf_section_bool(s, "flag"), 0);
    ck_assert_str_eq(wgf_section_string(s, "name"), "wgf");
    ck_assert_str_eq(wgf_section_string(s, "mode"), "check");
    size_t len;
    const double *mu = wgf_section_vector(s, "mu", &len);
    ck_assert_uint_eq(len, 4);
    for (int i = 0; i < 4; i++)
        ck_assert(mu[i] == 0.0);
    const double *w = wgf_section_vector(s, "w", &len);
    ck_assert_uint_eq(len, 1);
    ck_assert(w[0] == 1.0);
    const double *m = wgf_section_matrix(s, "sigma");
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            ck_assert(m[i * 4 + j] == (i == j));
    ck_assert_int_eq(wgf_section_has(s, "n"), 1);
    ck_assert_int_eq(wgf_section_line(s, "n"), 0);
    ck_assert_str_eq(wgf_section_text(s, "n"), "3");
    wgf_section_free(s);
    wgf_config_free(cfg);
}
END_TEST

START_TEST(test_bool_words)
{
    const char *words[] = {"true", "false", "yes", "no", "on", "off", "1", "0", "TRUE", "No", "Off"};
    const int values[] = {1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "[t]\nflag = %s\n", words[i]);
        wgf_config *cfg = load(buf);
        wgf_section *s = section_ok(cfg, "t", all_schema, 1);
        ck_assert_int_eq(wgf_section_bool(s, "flag"), values[i]);
        wgf_section_free(s);
        wgf_config_free(cfg);
    }
}
END_TEST

START_TEST(test_vector_fill)
{
    wgf_config *cfg = load("[t]\nmu = -7.5\n");
    wgf_section *s = section_ok(cfg, "t", all_schema, 5);
    size_t len;
    const double *mu = wgf_section_vector(s, "mu", &len);
    ck_assert_uint_eq(len, 5);
    for (int i = 0; i < 5; i++)
        ck_assert(mu[i] == -7.5);
    wgf_section_free(s);
    wgf_config_free(cfg);
}
END_TEST

/* sigma written as text, for dim 4, against the expected matrix. */
static void check_matrix(const char *value, const double *expected)
{
    char buf[512];
    snprintf(buf, sizeof buf, "[t]\nsigma = %s\n", value);
    wgf_config *cfg = load(buf);
    wgf_section *s = section_ok(cfg, "t", all_schema, 4);
    const double *m = wgf_section_matrix(s, "sigma");
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < 16; i++)
        ck_assert_msg(m[i] == expected[i], "%s: entry %d is %.17g, expected %.17g", value, i, m[i],
                      expected[i]);
    wgf_section_free(s);
    wgf_config_free(cfg);
}

START_TEST(test_matrix_forms)
{
    const double id[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    const double sc[16] = {2.5, 0, 0, 0, 0, 2.5, 0, 0, 0, 0, 2.5, 0, 0, 0, 0, 2.5};
    const double dg[16] = {1, 0, 0, 0, 0, -2, 0, 0, 0, 0, 3e-3, 0, 0, 0, 0, 4};
    double full[16];
    for (int i = 0; i < 16; i++)
        full[i] = 0.1 * (i + 1);
    const double bl2[16] = {0.625, -0.375, 0, 0, -0.375, 0.625, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4};
    const double bl1[16] = {5, 0, 0, 0, 0, 6, 0, 0, 0, 0, 7, 0, 0, 0, 0, 8};
    check_matrix("identity", id);
    check_matrix("2.5", sc);
    check_matrix("diag 1 -2 3e-3 4", dg);
    check_matrix("full 0.1 0.2 0.30000000000000004 0.4 0.5 0.6000000000000001 0.7000000000000001 "
                 "0.8 0.9 1 1.1 1.2000000000000002 1.3 1.4000000000000001 1.5 1.6",
                 full);
    check_matrix("blocks 2: 0.625 -0.375 -0.375 0.625, 1 2 3 4", bl2);
    check_matrix("blocks 2 : 0.625 -0.375 -0.375 0.625 ,1 2 3 4,", bl2); /* trailing comma */
    check_matrix("blocks 1: 5, 6, 7, 8", bl1);
    check_matrix("blocks 4: 0.1 0.2 0.30000000000000004 0.4 0.5 0.6000000000000001 "
                 "0.7000000000000001 0.8 0.9 1 1.1 1.2000000000000002 1.3 1.4000000000000001 1.5 1.6",
                 full);

    /* blocks over continuation lines, as in the experiment files */
    wgf_config *cfg = load("[t]\n"
                           "sigma = blocks 2: 0.625 -0.375 -0.375 0.625,\n"
                           "        1 2\n"
                           "        3 4\n");
    wgf_section *s = section_ok(cfg, "t", all_schema, 4);
    const double *m = wgf_section_matrix(s, "sigma");
    for (int i = 0; i < 16; i++)
        ck_assert(m[i] == bl2[i]);
    wgf_section_free(s);
    wgf_config_free(cfg);
}
END_TEST

/* random SEED[: LO HI]: a matrix Q diag(e) Q^T with e in the range, exactly
 * symmetric, with the stated spectrum, the same numbers for the same text and
 * others for another seed; a vector uniform in its range. */
START_TEST(test_random_forms)
{
    enum { D = 5 };
    double first[D * D], eig[D];
    for (int k = 0; k < 3; k++) {
        const char *ini = k == 2 ? "[t]\nsigma = random 8: 0.25 4\nmu = random 8: 2 3\n"
                                  : "[t]\nsigma = random 7: 0.25 4\nmu = random 7\n";
        wgf_config *cfg = load(ini);
        wgf_section *s = section_ok(cfg, "t", all_schema, D);
        const double *m = wgf_section_matrix(s, "sigma");
        size_t len;
        const double *mu = wgf_section_vector(s, "mu", &len);
        ck_assert_uint_eq(len, D);
        double lo = k == 2 ? 2 : -1, hi = k == 2 ? 3 : 1;
        for (int i = 0; i < D; i++)
            ck_assert_msg(mu[i] >= lo && mu[i] <= hi, "mu[%d] = %g", i, mu[i]);
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++)
                ck_assert(m[i * D + j] == m[j * D + i]);
        wgf_error err = {0};
        double V[D * D];
        ck_assert_msg(wgf_sym_eigen(D, m, eig, V, &err) == WGF_OK, "%s", err.msg);
        for (int i = 0; i < D; i++)
            ck_assert_msg(eig[i] > 0.25 - 1e-12 && eig[i] < 4 + 1e-12, "eigenvalue %g", eig[i]);
        ck_assert_msg(eig[D - 1] - eig[0] > 0.1, "spectrum %g .. %g", eig[0], eig[D - 1]);
        /* not diagonal: the rotation is random */
        ck_assert_double_gt(fabs(m[1]) + fabs(m[2]) + fabs(m[D + 2]), 1e-3);
        if (k == 0)
            memcpy(first, m, sizeof first);
        else {
            int same = 1;
            for (int i = 0; i < D * D; i++)
                same &= m[i] == first[i];
            ck_assert_int_eq(same, k == 1);
        }
        wgf_section_free(s);
        wgf_config_free(cfg);
    }
}
END_TEST

START_TEST(test_getters_wrong_use)
{
    wgf_config *cfg = load("[t]\nx = 2\nmu = 1 2\n");
    wgf_section *s = section_ok(cfg, "t", all_schema, 2);
    ck_assert_int_eq(wgf_section_int(s, "x"), 0);        /* a double */
    ck_assert(wgf_section_double(s, "n") == 0.0);        /* an int */
    ck_assert_ptr_null(wgf_section_string(s, "x"));
    ck_assert_ptr_null(wgf_section_matrix(s, "mu"));
    size_t len = 99;
    ck_assert_ptr_null(wgf_section_vector(s, "sigma", &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(wgf_section_vector(s, "nokey", &len));
    ck_assert_int_eq(wgf_section_int(s, "nokey"), 0);
    ck_assert_int_eq(wgf_section_has(s, "nokey"), 0);
    ck_assert_ptr_null(wgf_section_string(s, "note")); /* no value */
    ck_assert_ptr_null(wgf_section_string(NULL, "name"));
    wgf_section_free(s);
    wgf_section_free(NULL);
    wgf_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------ syntax */

START_TEST(test_comments_and_forms)
{
    /* What the installed inih does, and wgf keeps: ';' after white space
     * starts a comment, '#' and ';' start comment lines, '#' after a value
     * is part of it, "key: value" is accepted, blank lines are ignored. */
    wgf_config *cfg = load("; a comment\n"
                           "# another\n"
                           "\n"
                           "[ t ]   ; the section\n"
                           "a = 1 2 ; inline comment\n"
                           "b = x;y\n"
                           "c = 1 # not a comment\n"
                           "d: 5\n"
                           "e =;z\n"
                           "f =\n"
                           "  ; indented comment\n"
                           "   # indented comment\n"
                           "g = a=b:c\n");
    ck_assert_uint_eq(wgf_config_nsections(cfg), 1);
    ck_assert_str_eq(wgf_config_section_name(cfg, 0), "t");
    ck_assert_ptr_null(wgf_config_section_name(cfg, 1));
    ck_assert_str_eq(wgf_config_get(cfg, "t", "a", NULL), "1 2");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "b", NULL), "x;y");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "c", NULL), "1 # not a comment");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "d", NULL), "5");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "e", NULL), ";z");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "f", NULL), "");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "g", NULL), "a=b:c");
    ck_assert_ptr_null(wgf_config_get(cfg, "t", "h", NULL));
    ck_assert_ptr_null(wgf_config_get(cfg, "u", "a", NULL));
    wgf_config_free(cfg);
}
END_TEST

START_TEST(test_line_numbers)
{
    wgf_config *cfg = load("; experiment\n"      /* 1 */
                           "[run]\n"             /* 2 */
                           "dim = 3\n"           /* 3 */
                           "\n"                  /* 4 */
                           "[energy]\n"          /* 5 */
                           "mu = 1\n"            /* 6 */
                           "     2\n"            /* 7 */
                           "\n"                  /* 8 */
                           "     3\n"            /* 9 */
                           "; c\n"               /* 10 */
                           "potential = q\n"     /* 11 */
                           "[run]\n"             /* 12 */
                           "samples = 7\n");     /* 13 */
    int line = -1;
    ck_assert_str_eq(wgf_config_get(cfg, "run", "dim", &line), "3");
    ck_assert_int_eq(line, 3);
    ck_assert_str_eq(wgf_config_get(cfg, "energy", "mu", &line), "1 2 3");
    ck_assert_int_eq(line, 6);
    wgf_config_get(cfg, "energy", "potential", &line);
    ck_assert_int_eq(line, 11);
    wgf_config_get(cfg, "run", "samples", &line);
    ck_assert_int_eq(line, 13);
    wgf_config_get(cfg, "run", "nokey", &line);
    ck_assert_int_eq(line, 0);
    /* a repeated header continues the section */
    ck_assert_uint_eq(wgf_config_nsections(cfg), 2);
    ck_assert_int_eq(wgf_config_section_line(cfg, "run"), 2);
    ck_assert_int_eq(wgf_config_section_line(cfg, "energy"), 5);
    ck_assert_int_eq(wgf_config_section_line(cfg, "map"), 0);
    wgf_section *s = section_ok(cfg, "energy", energy_schema, 3);
    ck_assert_int_eq(wgf_section_line(s, "mu"), 6);
    ck_assert_int_eq(wgf_section_line(s, "potential"), 11);
    ck_assert_int_eq(wgf_section_line(s, "sigma"), 0);
    wgf_section_free(s);
    wgf_config_free(cfg);
}
END_TEST

START_TEST(test_continuation)
{
    wgf_config *cfg = load("[t]\n"
                           "a = 1 2\n"
                           "\t3\n"
                           "\n"
                           "; comment between\n"
                           "   4   5\n"
                           "b =\n"
                           "    first words\n"
                           "  layers = 5\n"  /* an indented key is a key */
                           "    note: more\n" /* but `name: ...` continues */
                           "c = x\n");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "a", NULL), "1 2 3 4   5");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "b", NULL), "first words");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "layers", NULL), "5 note: more");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "c", NULL), "x");
    wgf_config_free(cfg);

    /* keys indented under their header, gitconfig style */
    cfg = load("[map]\n\tplugin = planar\n\tlayers = 20\n  [run]\n  dim = 2\n");
    ck_assert_str_eq(wgf_config_get(cfg, "map", "plugin", NULL), "planar");
    ck_assert_str_eq(wgf_config_get(cfg, "map", "layers", NULL), "20");
    ck_assert_str_eq(wgf_config_get(cfg, "run", "dim", NULL), "2");
    wgf_config_free(cfg);
}
END_TEST

START_TEST(test_crlf_bom_and_no_final_newline)
{
    wgf_config *cfg = load("\xEF\xBB\xBF[t]\r\nn = 5\r\nmu = 1\r\n  2 \r\nname = end");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "n", NULL), "5");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "mu", NULL), "1 2");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "name", NULL), "end");
    wgf_config_free(cfg);
    cfg = load("");
    ck_assert_uint_eq(wgf_config_nsections(cfg), 0);
    wgf_config_free(cfg);
    cfg = load("\n[t]\n\nk = 1\n\n");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "k", NULL), "1");
    wgf_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------ long lines */

START_TEST(test_long_vector_line)
{
    enum { D = 120 };
    double v[D];
    text t = {0};
    tx_add(&t, "[run]\ndim = %d\n[t]\nmu = ", D);
    size_t start = t.len;
    for (int i = 0; i < D; i++) {
        v[i] = (i % 2 ? -1.0 : 1.0) * (i + 1) / 7.0 * pow(10.0, i % 9 - 4);
        tx_add(&t, "%s%.17g", i ? " " : "", v[i]);
    }
    char *written = strdup(t.s + start);
    ck_assert_uint_ge(t.len - start, 2000);
    tx_add(&t, "\nn = 9\n");
    wgf_config *cfg = load(t.s);
    ck_assert_str_eq(wgf_config_get(cfg, "t", "mu", NULL), written);
    wgf_section *s = section_ok(cfg, "t", all_schema, D);
    size_t len;
    const double *mu = wgf_section_vector(s, "mu", &len);
    ck_assert_uint_eq(len, D);
    for (int i = 0; i < D; i++)
        ck_assert_msg(mu[i] == v[i], "mu[%d] = %.17g, expected %.17g", i, mu[i], v[i]);
    ck_assert_int_eq(wgf_section_line(s, "mu"), 4);
    ck_assert_int_eq(wgf_section_line(s, "n"), 5);
    ck_assert_int_eq(wgf_section_int(s, "n"), 9);
    wgf_section_free(s);
    wgf_config_free(cfg);
    free(written);
    free(t.s);
}
END_TEST

START_TEST(test_long_matrix_line)
{
    enum { D = 30 };
    static double a[D * D];
    text t = {0};
    tx_add(&t, "[t]\nsigma = full");
    for (int i = 0; i < D * D; i++) {
        a[i] = sin(1.0 + i) * pow(10.0, i % 5 - 2);
        tx_add(&t, " %.17g", a[i]);
    }
    tx_add(&t, "   ; the 30 x 30 matrix\nx = 2\n");
    wgf_config *cfg = load(t.s);
    wgf_section *s = section_ok(cfg, "t", all_schema, D);
    const double *m = wgf_section_matrix(s, "sigma");
    for (int i = 0; i < D * D; i++)
        ck_assert_msg(m[i] == a[i], "sigma[%d] = %.17g, expected %.17g", i, m[i], a[i]);
    ck_assert_int_eq(wgf_section_line(s, "x"), 3);
    ck_assert(wgf_section_double(s, "x") == 2.0);
    wgf_section_free(s);
    wgf_config_free(cfg);
    free(t.s);
}
END_TEST

START_TEST(test_long_strings)
{
    /* One token of 1500 characters, with ';', '#', '=' and ':' at every
     * offset, so that every cut falls inside a token and some pieces start
     * with a comment character. */
    text tok = {0};
    for (int i = 0; i < 1500; i++)
        tx_add(&tok, "%c", ";#=:ab.c"[i % 8]);
    /* Words separated by runs of one to three blanks, cut anywhere. */
    text words = {0};
    for (int i = 0; i < 300; i++)
        tx_add(&words, "%sw%d", i == 0 ? "" : i % 3 == 0 ? "   " : i % 3 == 1 ? " " : " \t", i);
    /* A key and a section name far longer than inih's 49 characters. */
    text key = {0}, sec = {0};
    for (int i = 0; i < 300; i++)
        tx_add(&key, "%c", 'a' + i % 26);
    for (int i = 0; i < 120; i++)
        tx_add(&sec, "%c", 'A' + i % 26);

    text t = {0};
    tx_add(&t, "[s]\n; %s\n", words.s); /* a long comment line */
    tx_add(&t, "tok = x%s\n", tok.s);
    tx_add(&t, "words = %s ; a comment after a long value\n", words.s);
    tx_add(&t, "cont = start\n    %s\n", words.s); /* a long continuation line */
    tx_add(&t, "[%s]\n%s = 1\n", sec.s, key.s);
    tx_add(&t, "%s =  v%s\n", key.s + 10, tok.s); /* long name and long value */
    wgf_config *cfg = load(t.s);

    text want = {0};
    tx_add(&want, "x%s", tok.s);
    ck_assert_str_eq(wgf_config_get(cfg, "s", "tok", NULL), want.s);
    ck_assert_str_eq(wgf_config_get(cfg, "s", "words", NULL), words.s);
    free(want.s);
    want = (text){0};
    tx_add(&want, "start %s", words.s);
    ck_assert_str_eq(wgf_config_get(cfg, "s", "cont", NULL), want.s);
    int line;
    ck_assert_str_eq(wgf_config_get(cfg, sec.s, key.s, &line), "1");
    ck_assert_int_eq(line, 8);
    free(want.s);
    want = (text){0};
    tx_add(&want, "v%s", tok.s);
    ck_assert_str_eq(wgf_config_get(cfg, sec.s, key.s + 10, &line), want.s);
    ck_assert_int_eq(line, 9);
    ck_assert_int_eq(wgf_config_section_line(cfg, sec.s), 7);
    ck_assert_uint_eq(wgf_config_nsections(cfg), 2);
    wgf_config_free(cfg);
    free(want.s);
    free(t.s);
    free(tok.s);
    free(words.s);
    free(key.s);
    free(sec.s);
}
END_TEST

/* What a value written after "k =" must read as, by the rules (not by the
 * parser's pieces): up to the first ';' after white space, trimmed. */
static char *expected_value(const char *v)
{
    size_t n = strlen(v);
    for (size_t i = 1; i < n; i++)
        if (v[i] == ';' && (v[i - 1] == ' ' || v[i - 1] == '\t')) {
            n = i;
            break;
        }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    size_t a = 0;
    while (a < n && (v[a] == ' ' || v[a] == '\t'))
        a++;
    char *r = malloc(n - a + 1);
    ck_assert_ptr_nonnull(r);
    memcpy(r, v + a, n - a);
    r[n - a] = '\0';
    return r;
}

START_TEST(test_long_values_random)
{
    /* Values of 1 to 2000 characters from an alphabet rich in blanks and
     * comment characters, so that inih's 200-byte pieces are cut at every
     * kind of place: inside a token, at a blank, before ';' or '#'. */
    const char alphabet[] = "ab1.;#=:[]  \t";
    unsigned long state = 12345;
    for (int trial = 0; trial < 300; trial++) {
        state = state * 6364136223846793005ul + 1442695040888963407ul;
        size_t len = 1 + (state >> 33) % 2000;
        char *v = malloc(len + 1);
        ck_assert_ptr_nonnull(v);
        for (size_t i = 0; i < len; i++) {
            state = state * 6364136223846793005ul + 1442695040888963407ul;
            v[i] = alphabet[(state >> 33) % (sizeof alphabet - 1)];
        }
        v[len] = '\0';
        text t = {0};
        tx_add(&t, "[s]\nk =%s\nafter = 1\n", v);
        wgf_config *cfg = load(t.s);
        char *want = expected_value(v);
        int line;
        ck_assert_str_eq(wgf_config_get(cfg, "s", "k", &line), want);
        ck_assert_int_eq(line, 2);
        ck_assert_str_eq(wgf_config_get(cfg, "s", "after", &line), "1");
        ck_assert_int_eq(line, 3);
        wgf_config_free(cfg);
        free(want);
        free(t.s);
        free(v);
    }
}
END_TEST

/* ------------------------------------------------------------ --set */

START_TEST(test_set)
{
    wgf_config *cfg = load("[run]\ndim = 3\nsamples = 10\n[energy.confine]\nplugin = fpe\n");
    wgf_error err = {0};
    ck_assert_int_eq(wgf_config_set(cfg, "run.samples=20", &err), WGF_OK);
    ck_assert_int_eq(wgf_config_set(cfg, " run.seed = 5 ; a comment", &err), WGF_OK);
    ck_assert_int_eq(wgf_config_set(cfg, "energy.confine.diffusion=0.5", &err), WGF_OK);
    ck_assert_int_eq(wgf_config_set(cfg, "map.plugin=planar", &err), WGF_OK);
    ck_assert_int_eq(wgf_config_set(cfg, "map.plugin=affine", &err), WGF_OK);
    ck_assert_int_eq(wgf_config_set(cfg, "map.note=;x", &err), WGF_OK);
    ck_assert_int_eq(wgf_config_set(cfg, "map.empty=", &err), WGF_OK);
    int line = -1;
    ck_assert_str_eq(wgf_config_get(cfg, "run", "samples", &line), "20");
    ck_assert_int_eq(line, 0);
    ck_assert_str_eq(wgf_config_get(cfg, "run", "seed", &line), "5");
    ck_assert_int_eq(line, 0);
    ck_assert_str_eq(wgf_config_get(cfg, "run", "dim", &line), "3");
    ck_assert_int_eq(line, 2);
    ck_assert_str_eq(wgf_config_get(cfg, "energy.confine", "diffusion", NULL), "0.5");
    ck_assert_str_eq(wgf_config_get(cfg, "map", "plugin", NULL), "affine");
    ck_assert_str_eq(wgf_config_get(cfg, "map", "note", NULL), ";x");
    ck_assert_str_eq(wgf_config_get(cfg, "map", "empty", NULL), "");
    ck_assert_uint_eq(wgf_config_nsections(cfg), 3);
    ck_assert_str_eq(wgf_config_section_name(cfg, 2), "map");
    ck_assert_int_eq(wgf_config_section_line(cfg, "map"), 0);

    const char *bad[] = {"xyz", "run.samples", "samples=3", ".samples=3", "run.=3", " . =3",
                         "run.samples\n=3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[128];
        snprintf(want, sizeof want, "--set '%s': expected section.key=value", bad[i]);
        ck_assert_int_eq(wgf_config_set(cfg, bad[i], &err), WGF_EINVAL);
        ck_assert_int_eq(err.code, WGF_EINVAL);
        ck_assert_str_eq(err.msg, want);
    }
    ck_assert_uint_eq(wgf_config_nsections(cfg), 3);

    /* a value from --set is reported as such */
    ck_assert_int_eq(wgf_config_set(cfg, "run.samples=abc", &err), WGF_OK);
    const wgf_param *schemas[2] = {run_schema, NULL};
    wgf_diag diag;
    wgf_diag_init(&diag);
    ck_assert_ptr_null(wgf_config_section(cfg, "run", schemas, 1, &diag));
    ck_assert_int_eq(diag.n, 2);
    ck_assert_str_eq(diag.msg[0], "--set run.samples: 'abc' is not an integer");
    ck_assert_str_eq(diag.msg[1], "--set run.seed: unknown key (allowed: dim, samples)");
    wgf_diag_free(&diag);
    wgf_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------ messages */

START_TEST(test_messages_examples)
{
    one_error("[map]\n; 1\n; 2\n; 3\n; 4\n; 5\n; 6\n; 7\n; 8\n; 9\n; 10\nlayrs = 3\n", "map",
              map_schema, 1,
              "exp.ini:12: map.layrs: unknown key (allowed: layers, block, invertibility, delta; "
              "did you mean 'layers'?)");
    one_error("; exp\n[run]\ndim = 2\nsamples = abc\n", "run", run_schema, 1,
              "exp.ini:4: run.samples: 'abc' is not an integer");
    one_error("; exp\n[run]\ndim = 2\nsamples = 0\n", "run", run_schema, 1,
              "exp.ini:4: run.samples: 0 is out of range (allowed: >= 1)");
    one_error("[map]\n\n\n\n\n\n\n\ninvertibility = foo\n", "map", map_schema, 1,
              "exp.ini:9: map.invertibility: 'foo' is not allowed (allowed: check, project, reparam)");
    text t = {0};
    tx_add(&t, "[energy]\npotential = q\n\n\n\n\nsigma = full");
    for (int i = 0; i < 99; i++)
        tx_add(&t, " %d", i);
    tx_add(&t, "\n");
    one_error(t.s, "energy", energy_schema, 10,
              "exp.ini:7: energy.sigma: 'full' needs 100 numbers (10 x 10), got 99");
    free(t.s);
    one_error("[energy]\npotential = q\n\n\n\n\nmu = 1 2 3\n", "energy", energy_schema, 10,
              "exp.ini:7: energy.mu: needs 10 numbers (dim) or one to fill the vector, got 3");
    one_error("; exp\n\n[energy]\nmu = 1\n", "energy", energy_schema, 10,
              "exp.ini:3: energy.potential: missing required key (potential: which potential V)");
}
END_TEST

START_TEST(test_messages_values)
{
    /* where: an absent section is what is missing (there is no line to name) */
    one_error("[run]\ndim = 1\n", "energy", energy_schema, 2,
              "exp.ini: [energy]: missing section (energy.potential is required: which potential V)");
#define E(value, dim, msg) one_error("[energy]\npotential = q\n" value "\n", "energy", energy_schema, dim, msg)
    E("diffusion = 1.5x", 2, "exp.ini:3: energy.diffusion: '1.5x' is not a number");
    E("diffusion = ", 2, "exp.ini:3: energy.diffusion: '' is not a number");
    E("diffusion = inf", 2, "exp.ini:3: energy.diffusion: 'inf' is not a finite number");
    E("diffusion = 1e999", 2, "exp.ini:3: energy.diffusion: '1e999' is not a finite number");
    E("diffusion = -0.5", 2, "exp.ini:3: energy.diffusion: -0.5 is out of range (allowed: > 0)");
    E("exact = maybe", 2,
      "exp.ini:3: energy.exact: 'maybe' is not a boolean (allowed: true, false, yes, no, on, off, "
      "1, 0)");
    E("mu = 1 x", 2, "exp.ini:3: energy.mu: element 2: 'x' is not a number");
    E("mu = 1 nan", 2, "exp.ini:3: energy.mu: element 2: 'nan' is not a finite number");
    E("mu =", 2, "exp.ini:3: energy.mu: needs 2 numbers (dim) or one to fill the vector, got 0");
    E("scale = 1 2 -1e-3", 3,
      "exp.ini:3: energy.scale: element 3: -1e-3 is out of range (allowed: >= 0)");
    E("scale = -2", 3, "exp.ini:3: energy.scale: element 1: -2 is out of range (allowed: >= 0)");
    E("weights = ", 3, "exp.ini:3: energy.weights: needs at least one number, got 0");
    E("weights = 1 2 3 4 0", 3,
      "exp.ini:3: energy.weights: element 5: 0 is out of range (allowed: > 0)");
    E("sigma = foo", 2,
      "exp.ini:3: energy.sigma: 'foo' is not a matrix (allowed: identity, a number (times I), "
      "diag v1 .. vd, full a11 a12 .. add, blocks K: b1, b2, ..., random SEED[: LO HI])");
    E("sigma = 1 2", 2,
      "exp.ini:3: energy.sigma: '1 2' is not a matrix (allowed: identity, a number (times I), "
      "diag v1 .. vd, full a11 a12 .. add, blocks K: b1, b2, ..., random SEED[: LO HI])");
    E("sigma = identity 2", 2,
      "exp.ini:3: energy.sigma: 'identity 2' is not a matrix (allowed: identity, a number (times "
      "I), diag v1 .. vd, full a11 a12 .. add, blocks K: b1, b2, ..., random SEED[: LO HI])");
    E("sigma = -inf", 2, "exp.ini:3: energy.sigma: '-inf' is not a finite number");
    E("sigma = diag 1 2 3", 4, "exp.ini:3: energy.sigma: 'diag' needs 4 numbers (dim), got 3");
    E("sigma = full 1 2 y 4", 2, "exp.ini:3: energy.sigma: element 3: 'y' is not a number");
    E("sigma = blocks 3: 1 0 0 0 1 0 0 0 1", 4,
      "exp.ini:3: energy.sigma: block size 3 does not divide the dimension 4");
    E("sigma = blocks 0: 1", 4, "exp.ini:3: energy.sigma: block size 0 is out of range (allowed: >= 1)");
    E("sigma = blocks 2: 1 0 0 1", 4,
      "exp.ini:3: energy.sigma: 'blocks 2' needs 2 blocks (4 / 2), got 1");
    E("sigma = blocks 2: 1 0 0 1, 1 0 0 1, 1 0 0 1", 4,
      "exp.ini:3: energy.sigma: 'blocks 2' needs 2 blocks (4 / 2), got 3");
    E("sigma = blocks 2: 1 0 0 1, 1 0 0", 4,
      "exp.ini:3: energy.sigma: block 2 needs 4 numbers (2 x 2), got 3");
    E("sigma = blocks 2: 1 0 0 1, 1 0 z 1", 4,
      "exp.ini:3: energy.sigma: block 2, element 3: 'z' is not a number");
    E("sigma = random", 3,
      "exp.ini:3: energy.sigma: 'random' needs a seed, a non-negative integer (allowed: random SEED or "
      "random SEED: LO HI)");
    E("sigma = random 2: 0 1", 3,
      "exp.ini:3: energy.sigma: 'random' range 0 1 is empty or not positive (allowed: LO <= HI, LO > 0)");
    E("sigma = random 2: 1", 3,
      "exp.ini:3: energy.sigma: 'random' needs two numbers after the colon, got 1 (allowed: random "
      "SEED or random SEED: LO HI)");
    E("mu = random 2 3", 3,
      "exp.ini:3: energy.mu: 'random 2' is followed by '3' (allowed: random SEED or random SEED: LO HI)");
    E("sigma = blocks 2 1 0 0 1, 1 0 0 1", 4,
      "exp.ini:3: energy.sigma: 'blocks' needs a block size and a colon (allowed: blocks K: b1, "
      "b2, ..., each block K*K numbers)");
#undef E
    one_error("[map]\ninvertibility = projct\n", "map", map_schema, 1,
              "exp.ini:2: map.invertibility: 'projct' is not allowed (allowed: check, project, "
              "reparam; did you mean 'project'?)");
    one_error("[map]\ndelta = 1.5\n", "map", map_schema, 1,
              "exp.ini:2: map.delta: 1.5 is out of range (allowed: > 0 and <= 1)");
    one_error("[map]\ndelta = 0\n", "map", map_schema, 1,
              "exp.ini:2: map.delta: 0 is out of range (allowed: > 0 and <= 1)");
    one_error("[map]\nlayers = 2.5\n", "map", map_schema, 1,
              "exp.ini:2: map.layers: '2.5' is not an integer");
    one_error("[map]\nlayers = 99999999999999999999\n", "map", map_schema, 1,
              "exp.ini:2: map.layers: '99999999999999999999' is out of range (allowed: "
              "-9223372036854775808 to 9223372036854775807)");
    one_error("[map]\nzzz = 1\n", "map", map_schema, 1,
              "exp.ini:2: map.zzz: unknown key (allowed: layers, block, invertibility, delta)");
    one_error("[map]\nLayers = 1\n", "map", map_schema, 1,
              "exp.ini:2: map.Layers: unknown key (allowed: layers, block, invertibility, delta; "
              "did you mean 'layers'?)");
    one_error("[map]\nblokc = 1\n", "map", map_schema, 1,
              "exp.ini:2: map.blokc: unknown key (allowed: layers, block, invertibility, delta; "
              "did you mean 'block'?)");
    const wgf_param tiny[] = {
        {"tol", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN | WGF_P_MAX | WGF_P_MAX_OPEN, 1e-8,
         2.5e+20, NULL, "tolerance"},
        {"third", WGF_PARAM_DOUBLE, "0.25", WGF_P_MAX, 0, 1.0 / 3, NULL, "a third"},
        {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};
    one_error("[x]\ntol = 1e-9\n", "x", tiny, 1,
              "exp.ini:2: x.tol: 1e-9 is out of range (allowed: > 1e-8 and < 2.5e20)");
    one_error("[x]\nthird = 0.33333333333333337\n", "x", tiny, 1,
              "exp.ini:2: x.third: 0.33333333333333337 is out of range (allowed: <= "
              "0.3333333333333333)");
    const wgf_param none[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};
    one_error("[x]\nk = 1\n", "x", none, 1, "exp.ini:2: x.k: unknown key (allowed: none)");

    /* A long value is shortened in messages. */
    text t = {0};
    tx_add(&t, "[map]\nlayers = ");
    for (int i = 0; i < 100; i++)
        tx_add(&t, "%c", 'a' + i % 26);
    tx_add(&t, "\n");
    one_error(t.s, "map", map_schema, 1,
              "exp.ini:2: map.layers: 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcde...' "
              "is not an integer");
    free(t.s);
}
END_TEST

START_TEST(test_messages_syntax)
{
    load_error("[t]\na = 1\nthis line has no equals sign\nb = 2\n",
               "exp.ini:3: syntax error (expected [section], key = value or a comment)");
    load_error("[t]\na = 1\n= 5\n  6\nb = 2\n",
               "exp.ini:3: syntax error (expected [section], key = value or a comment)");
    load_error("[t\na = 1\n", "exp.ini:1: syntax error (expected [section], key = value or a comment)");
    load_error("[]\na = 1\n", "exp.ini:1: syntax error (expected [section], key = value or a comment)");
    load_error("[t] x\na = 1\n",
               "exp.ini:1: syntax error (expected [section], key = value or a comment)");
    load_error("a = 1\n  2\n[t]\n",
               "exp.ini:1: a: key outside any section (put it under a [section] header)");
    load_error("[map]\nlayers = 1\n\nlayers = 2\n  3\n",
               "exp.ini:4: map.layers: duplicate key, first at line 2");
    /* a header repeated later merges; its keys still count as duplicates */
    load_error("[map]\nlayers = 1\n[run]\ndim = 1\n[map]\nlayers = 2\n",
               "exp.ini:6: map.layers: duplicate key, first at line 2");

    /* After a bad line its continuation lines are skipped; keys under a bad
     * header are skipped; the first value stays. */
    wgf_diag diag;
    wgf_config *cfg = load_rc("[t]\na = 1\nbad line\n  more\nb = 2\n[u\nc = 3\n[t]\na = 9\n  10\n",
                              &diag, WGF_EINVAL);
    ck_assert_int_eq(diag.n, 3);
    ck_assert_str_eq(diag.msg[0], "exp.ini:3: syntax error (expected [section], key = value or a comment)");
    ck_assert_str_eq(diag.msg[1], "exp.ini:6: syntax error (expected [section], key = value or a comment)");
    ck_assert_str_eq(diag.msg[2], "exp.ini:9: t.a: duplicate key, first at line 2");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "a", NULL), "1");
    ck_assert_str_eq(wgf_config_get(cfg, "t", "b", NULL), "2");
    ck_assert_uint_eq(wgf_config_nsections(cfg), 1);
    wgf_diag_free(&diag);
    wgf_config_free(cfg);
}
END_TEST

START_TEST(test_many_errors_at_once)
{
    wgf_diag diag;
    wgf_config *cfg = load_rc("[run]\n"                 /* 1 */
                              "dim = 2\n"               /* 2 */
                              "samples = -3\n"          /* 3 */
                              "oops\n"                  /* 4 */
                              "[map]\n"                 /* 5 */
                              "layrs = 3\n"             /* 6 */
                              "delta = big\n"           /* 7 */
                              "invertibility = none\n"  /* 8 */
                              "[energy]\n"              /* 9 */
                              "mu = 1 2 3\n"            /* 10 */
                              "sigma = diag 1\n",       /* 11 */
                              &diag, WGF_EINVAL);
    const wgf_param *rs[2] = {run_schema, NULL}, *ms[2] = {map_schema, NULL},
                    *es[2] = {energy_schema, NULL};
    ck_assert_ptr_null(wgf_config_section(cfg, "run", rs, 1, &diag));
    ck_assert_ptr_null(wgf_config_section(cfg, "map", ms, 2, &diag));
    ck_assert_ptr_null(wgf_config_section(cfg, "energy", es, 2, &diag));
    const char *want[] = {
        "exp.ini:4: syntax error (expected [section], key = value or a comment)",
        "exp.ini:3: run.samples: -3 is out of range (allowed: >= 1)",
        "exp.ini:6: map.layrs: unknown key (allowed: layers, block, invertibility, delta; did you "
        "mean 'layers'?)",
        "exp.ini:7: map.delta: 'big' is not a number",
        "exp.ini:8: map.invertibility: 'none' is not allowed (allowed: check, project, reparam)",
        "exp.ini:10: energy.mu: needs 2 numbers (dim) or one to fill the vector, got 3",
        "exp.ini:11: energy.sigma: 'diag' needs 2 numbers (dim), got 1",
        "exp.ini:9: energy.potential: missing required key (potential: which potential V)",
    };
    ck_assert_int_eq(diag.n, sizeof want / sizeof *want);
    for (size_t i = 0; i < diag.n; i++)
        ck_assert_str_eq(diag.msg[i], want[i]);

    /* printed one a line, with the prefix */
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    wgf_diag_print(&diag, f, "wgf: ");
    char *out = slurp(f);
    fclose(f);
    text t = {0};
    for (size_t i = 0; i < diag.n; i++)
        tx_add(&t, "wgf: %s\n", want[i]);
    ck_assert_str_eq(out, t.s);
    free(out);
    free(t.s);
    wgf_diag_free(&diag);
    ck_assert_int_eq(diag.n, 0);
    wgf_config_free(cfg);
}
END_TEST

static int allow_core(const char *name, void *user)
{
    (*(int *)user)++;
    return strcmp(name, "run") == 0 || strcmp(name, "map") == 0;
}

START_TEST(test_unknown_sections)
{
    wgf_config *cfg = load("[run]\ndim = 1\n[mapp]\nlayers = 1\n[map]\n[extra]\n");
    wgf_error err = {0};
    ck_assert_int_eq(wgf_config_set(cfg, "other.k=1", &err), WGF_OK);
    wgf_diag diag;
    wgf_diag_init(&diag);
    int calls = 0;
    wgf_config_check_sections(cfg, allow_core, &calls, &diag);
    ck_assert_int_eq(calls, 5);
    ck_assert_int_eq(diag.n, 3);
    ck_assert_str_eq(diag.msg[0], "exp.ini:3: [mapp]: unknown section");
    ck_assert_str_eq(diag.msg[1], "exp.ini:6: [extra]: unknown section");
    ck_assert_str_eq(diag.msg[2], "--set other.k: unknown section [other]");
    wgf_diag_free(&diag);
    wgf_config_free(cfg);
}
END_TEST

START_TEST(test_section_error)
{
    wgf_config *cfg = load("[energy]\npotential = q\nmu = 1 2\n");
    wgf_error err = {0};
    ck_assert_int_eq(wgf_config_set(cfg, "energy.diffusion=2", &err), WGF_OK);
    wgf_section *s = section_ok(cfg, "energy", energy_schema, 2);
    ck_assert_int_eq(wgf_section_error(s, "mu", &err, "mean %d is bad", 7), WGF_EINVAL);
    ck_assert_int_eq(err.code, WGF_EINVAL);
    ck_assert_str_eq(err.msg, "exp.ini:3: energy.mu: mean 7 is bad");
    wgf_section_error(s, "sigma", &err, "not SPD");
    ck_assert_str_eq(err.msg, "exp.ini:1: energy.sigma: not SPD"); /* a default: the section's line */
    wgf_section_error(s, "diffusion", &err, "too large");
    ck_assert_str_eq(err.msg, "--set energy.diffusion: too large");
    wgf_section_error(s, NULL, &err, "inconsistent");
    ck_assert_str_eq(err.msg, "exp.ini:1: energy: inconsistent");
    ck_assert_int_eq(wgf_section_error(s, "mu", NULL, "no record"), WGF_EINVAL);
    wgf_section_free(s);
    wgf_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------ files */

START_TEST(test_missing_file)
{
    wgf_config *cfg = (wgf_config *)&cfg;
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    char *path = test_write_ini("");
    unlink(path);
    ck_assert_int_eq(wgf_config_load(&cfg, path, &diag, &err), WGF_EIO);
    ck_assert_ptr_null(cfg);
    ck_assert_int_eq(diag.n, 0);
    char want[256];
    snprintf(want, sizeof want, "%s: cannot open: %s", path, strerror(ENOENT));
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(err.code, WGF_EIO);
    free(path);

    ck_assert_int_eq(wgf_config_load(&cfg, "/tmp", &diag, &err), WGF_EIO);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err.msg, "/tmp: not a regular file (an experiment is an INI file)");
}
END_TEST

/* The error record as components fill it, or leave it: a code without a
 * message is still a failure (wgf_error_prefix returned the record's code,
 * 0 when a plugin had not filled it, and the failure passed for success). */
START_TEST(test_error_record)
{
    wgf_error err = {0};
    ck_assert_int_eq(wgf_error_prefix(&err, "energy '%s'", "x"), WGF_EPLUGIN);
    ck_assert_str_eq(err.msg, "energy 'x': failed without a message");
    ck_assert_int_eq(wgf_error_prefix(NULL, "energy"), WGF_EPLUGIN);

    wgf_error_clear(&err);
    ck_assert_int_eq(wgf_error_forward(&err, WGF_ENUMERIC, "energy '%s'", "x"), WGF_ENUMERIC);
    ck_assert_int_eq(err.code, WGF_ENUMERIC);
    ck_assert_str_eq(err.msg, "energy 'x': failed without a message (numerical failure)");
    wgf_error_set(&err, WGF_EINVAL, "bad a");
    ck_assert_int_eq(wgf_error_forward(&err, WGF_EINVAL, "map"), WGF_EINVAL);
    ck_assert_str_eq(err.msg, "map: bad a");
    /* a stale record of another code is not the plugin's message */
    wgf_error_set(&err, WGF_EINVAL, "old");
    ck_assert_int_eq(wgf_error_forward(&err, WGF_ENOMEM, "map"), WGF_ENOMEM);
    ck_assert_str_eq(err.msg, "map: failed without a message (out of memory)");
    /* a code outside the list */
    wgf_error_clear(&err);
    ck_assert_int_eq(wgf_error_forward(&err, 42, "scheme"), WGF_EPLUGIN);
    ck_assert_str_eq(err.msg, "scheme: failed with an unknown status 42 and no message");
    ck_assert_int_eq(wgf_error_forward(&err, WGF_OK, "scheme"), WGF_OK);
    ck_assert_int_eq(wgf_error_forward(NULL, -1, "scheme"), WGF_EPLUGIN);

    /* several problems, one a line */
    wgf_error_clear(&err);
    ck_assert_int_eq(wgf_error_append(&err, WGF_EINVAL, "one"), WGF_EINVAL);
    wgf_error_append(&err, WGF_EINVAL, "two %d", 2);
    ck_assert_str_eq(err.msg, "one\ntwo 2");
    char big[WGF_ERROR_MSG_MAX];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    wgf_error_append(&err, WGF_EINVAL, "%s", big); /* does not fit: dropped whole */
    ck_assert_str_eq(err.msg, "one\ntwo 2");
}
END_TEST

/* A device is read forever: refused at once (the test would hang before). */
START_TEST(test_not_regular_file)
{
    wgf_config *cfg = (wgf_config *)&cfg;
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    ck_assert_int_eq(wgf_config_load(&cfg, "/dev/zero", &diag, &err), WGF_EIO);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err.msg, "/dev/zero: not a regular file (an experiment is an INI file)");
    ck_assert_int_eq(diag.n, 0);
}
END_TEST

/* Sizes from a file: dim x dim wraps for dim = 2^32 (the matrix parser
 * wrote an identity past a calloc of 0), and dim = 2^63 - 1 or 1e9 asks
 * for more than any machine has. Each is one error, at once. */
START_TEST(test_sizes_beyond_memory)
{
    static const wgf_param matrix[] = {
        {"cov", WGF_PARAM_MATRIX, "identity", 0, 0, 0, NULL, "covariance"},
        {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};
    static const wgf_param vector[] = {
        {"mean", WGF_PARAM_VECTOR, "0", 0, 0, 0, NULL, "mean"},
        {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};
    const size_t dims[] = {(size_t)1 << 32, (size_t)9223372036854775807ull, 1000000000};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        char want[256];
        snprintf(want, sizeof want,
                 "exp.ini:2: initial.cov: a dim x dim matrix (dim = %zu) does not fit in memory", dims[i]);
        one_error("[initial]\ncov = identity\n", "initial", matrix, dims[i], want);
        snprintf(want, sizeof want, "exp.ini:2: initial.mean: a vector of dim = %zu numbers does not fit "
                 "in memory", dims[i]);
        if (dims[i] > 2000000000)
            one_error("[initial]\nmean = 0\n", "initial", vector, dims[i], want);
    }
    ck_assert_uint_gt(wgf_mem_available(), 1u << 20);
}
END_TEST

START_TEST(test_load_file)
{
    char *path = test_write_ini("; exp\r\n[run]\r\ndim = 3\r\nsamples = 0\r\nsamples = 2\r\n");
    wgf_config *cfg = NULL;
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    ck_assert_int_eq(wgf_config_load(&cfg, path, &diag, &err), WGF_EINVAL);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(wgf_config_file(cfg), path);
    const wgf_param *rs[2] = {run_schema, NULL};
    ck_assert_ptr_null(wgf_config_section(cfg, "run", rs, 1, &diag));
    ck_assert_int_eq(diag.n, 2);
    char want[256];
    snprintf(want, sizeof want, "%s:5: run.samples: duplicate key, first at line 4", path);
    ck_assert_str_eq(diag.msg[0], want);
    snprintf(want, sizeof want, "%s:4: run.samples: 0 is out of range (allowed: >= 1)", path);
    ck_assert_str_eq(diag.msg[1], want);
    wgf_diag_free(&diag);
    wgf_config_free(cfg);
    unlink(path);
    free(path);
}
END_TEST

/* ------------------------------------------------------------ writing */

static void check_same_section(const wgf_section *a, const wgf_section *b, const wgf_param *schema)
{
    for (const wgf_param *p = schema; p->key; p++) {
        ck_assert_int_eq(wgf_section_has(a, p->key), wgf_section_has(b, p->key));
        if (!wgf_section_has(a, p->key))
            continue;
        ck_assert_str_eq(wgf_section_text(a, p->key), wgf_section_text(b, p->key));
        size_t la, lb;
        const double *va, *vb;
        switch (p->type) {
        case WGF_PARAM_INT:
            ck_assert_int_eq(wgf_section_int(a, p->key), wgf_section_int(b, p->key));
            break;
        case WGF_PARAM_DOUBLE:
            ck_assert(wgf_section_double(a, p->key) == wgf_section_double(b, p->key));
            break;
        case WGF_PARAM_BOOL:
            ck_assert_int_eq(wgf_section_bool(a, p->key), wgf_section_bool(b, p->key));
            break;
        case WGF_PARAM_STRING:
        case WGF_PARAM_CHOICE:
            ck_assert_str_eq(wgf_section_string(a, p->key), wgf_section_string(b, p->key));
            break;
        case WGF_PARAM_VECTOR:
        case WGF_PARAM_LIST:
            va = wgf_section_vector(a, p->key, &la);
            vb = wgf_section_vector(b, p->key, &lb);
            ck_assert_uint_eq(la, lb);
            ck_assert_mem_eq(va, vb, la * sizeof *va);
            break;
        case WGF_PARAM_MATRIX:
            va = wgf_section_matrix(a, p->key);
            vb = wgf_section_matrix(b, p->key);
            la = wgf_section_dim(a) * wgf_section_dim(a);
            ck_assert_mem_eq(va, vb, la * sizeof *va);
            break;
        }
    }
}

START_TEST(test_write_round_trip)
{
    enum { D = 12 };
    text t = {0};
    tx_add(&t, "[t]\nn = 17\nx = 0.1\nmode = reparam\nname = a # b;c\nmu =");
    for (int i = 0; i < D; i++)
        tx_add(&t, " %.17g", exp(-0.3 * i));
    tx_add(&t, "\nsigma = blocks 3: 1 2 3 4 5 6 7 8 9,\n  1 0 0 0 1 0 0 0 1,\n  2 3 4 5 6 7 8 9 10,\n"
               "  ; comment between\n");
    tx_add(&t, "   -1e-300 0 0 0 1 0 0 0 1\n");
    wgf_config *cfg = load(t.s);
    wgf_error err = {0};
    ck_assert_int_eq(wgf_config_set(cfg, "t.w=1e-3 2 3", &err), WGF_OK);
    ck_assert_int_eq(wgf_config_set(cfg, "t.note=;x y", &err), WGF_OK);
    wgf_section *a = section_ok(cfg, "t", all_schema, D);

    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(wgf_section_write(a, f), WGF_OK);
    char *written = slurp(f);
    fclose(f);
    wgf_config *cfg2 = load(written);
    wgf_section *b = section_ok(cfg2, "t", all_schema, D);
    check_same_section(a, b, all_schema);
    ck_assert_str_eq(wgf_section_text(b, "note"), ";x y");
    ck_assert_str_eq(wgf_section_text(b, "flag"), "false"); /* the default, written out */
    wgf_section_free(a);
    wgf_section_free(b);
    wgf_config_free(cfg);
    wgf_config_free(cfg2);
    free(written);
    free(t.s);

    /* the exact text: schema order, defaults filled in, keys without a value left out */
    cfg = load("[map]\ninvertibility = project\nlayers = 4\n");
    a = section_ok(cfg, "map", map_schema, 1);
    f = tmpfile();
    ck_assert_int_eq(wgf_section_write(a, f), WGF_OK);
    written = slurp(f);
    fclose(f);
    ck_assert_str_eq(written, "[map]\nlayers = 4\nblock = 1\ninvertibility = project\ndelta = 0.1\n");
    free(written);
    wgf_section_free(a);
    wgf_config_free(cfg);
}
END_TEST

START_TEST(test_param_print)
{
    const wgf_param schema[] = {
        {"layers", WGF_PARAM_INT, "20", WGF_P_MIN, 1, 0, NULL, "number of layers"},
        {"invertibility", WGF_PARAM_CHOICE, "check", 0, 0, 0, "check|project|reparam",
         "how invertibility is kept"},
        {"potential", WGF_PARAM_STRING, NULL, WGF_P_REQUIRED, 0, 0, NULL, "which potential V"},
        {"delta", WGF_PARAM_DOUBLE, "0.1", WGF_P_MIN | WGF_P_MIN_OPEN | WGF_P_MAX, 0, 1, NULL,
         "margin"},
        {"mu", WGF_PARAM_VECTOR, "0", 0, 0, 0, NULL, "mean"},
        {"sigma", WGF_PARAM_MATRIX, "identity", 0, 0, 0, NULL, "covariance"},
        {"flag", WGF_PARAM_BOOL, NULL, 0, 0, 0, NULL, "a switch"},
        {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    wgf_param_print(schema, f);
    char *out = slurp(f);
    fclose(f);
    ck_assert_str_eq(
        out,
        "  key            type    default     allowed                                    description\n"
        "  layers         int     20          >= 1                                       number of layers\n"
        "  invertibility  choice  check       check|project|reparam                      how invertibility is kept\n"
        "  potential      string  (required)  -                                          which potential V\n"
        "  delta          double  0.1         > 0 and <= 1                               margin\n"
        "  mu             vector  0           -                                          mean\n"
        "  sigma          matrix  identity    identity|<number>|diag|full|blocks|random  covariance\n"
        "  flag           bool    -           true|false                                 a switch\n");
    free(out);
}
END_TEST

START_TEST(test_schemas_concatenated)
{
    /* The core passes its keys (with `plugin`) and the plugin's. */
    const wgf_param core[] = {{"plugin", WGF_PARAM_STRING, NULL, WGF_P_REQUIRED, 0, 0, NULL, "the plugin"},
                              {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};
    const wgf_param *schemas[3] = {core, map_schema, NULL};
    wgf_config *cfg = load("[map]\nplugin = planar\nlayers = 3\n");
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_section *s = wgf_config_section(cfg, "map", schemas, 2, &diag);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(wgf_section_string(s, "plugin"), "planar");
    ck_assert_int_eq(wgf_section_int(s, "layers"), 3);
    ck_assert_int_eq(wgf_section_int(s, "block"), 1);
    wgf_section_free(s);
    ck_assert_int_eq(diag.n, 0);
    ck_assert_ptr_null(wgf_config_section(cfg, "energy", schemas, 2, &diag));
    ck_assert_int_eq(diag.n, 1);
    ck_assert_str_eq(diag.msg[0], "exp.ini: [energy]: missing section (energy.plugin is required: the plugin)");
    wgf_diag_free(&diag);
    wgf_config_free(cfg);
}
END_TEST

/* The one path resolver: a path in an experiment file is taken relative to
 * that file's directory, also for a file in "/" (plugin_path used to drop
 * the '/' there and look in the working directory), and an absolute path or
 * a file given without a directory leave the path as written. */
START_TEST(test_path_beside_and_join)
{
    const struct {
        const char *file, *path, *want;
    } c[] = {
        {"exp/a.ini", "data.csv", "exp/data.csv"}, {"/x.ini", "plugins", "/plugins"},
        {"a.ini", "data.csv", "data.csv"},         {"exp/a.ini", "/abs/p", "/abs/p"},
        {NULL, "data.csv", "data.csv"},            {"/d/e/a.ini", "../p", "/d/e/../p"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *got = wgf_path_beside(c[i].file, c[i].path, strlen(c[i].path));
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, c[i].want);
        free(got);
    }
    char *part = wgf_path_beside("exp/a.ini", "one:two", 3); /* an entry of a ':' list */
    ck_assert_str_eq(part, "exp/one");
    free(part);
    char *j = wgf_path_join("runs/x", "history.csv");
    ck_assert_str_eq(j, "runs/x/history.csv");
    free(j);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("values");
    tcase_add_test(tc, test_every_type);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_bool_words);
    tcase_add_test(tc, test_vector_fill);
    tcase_add_test(tc, test_matrix_forms);
    tcase_add_test(tc, test_random_forms);
    tcase_add_test(tc, test_getters_wrong_use);
    tcase_add_test(tc, test_schemas_concatenated);
    suite_add_tcase(s, tc);
    tc = tcase_create("syntax");
    tcase_add_test(tc, test_comments_and_forms);
    tcase_add_test(tc, test_line_numbers);
    tcase_add_test(tc, test_continuation);
    tcase_add_test(tc, test_crlf_bom_and_no_final_newline);
    tcase_add_test(tc, test_long_vector_line);
    tcase_add_test(tc, test_long_matrix_line);
    tcase_add_test(tc, test_long_strings);
    tcase_add_test(tc, test_long_values_random);
    tcase_add_test(tc, test_set);
    suite_add_tcase(s, tc);
    tc = tcase_create("messages");
    tcase_add_test(tc, test_messages_examples);
    tcase_add_test(tc, test_messages_values);
    tcase_add_test(tc, test_messages_syntax);
    tcase_add_test(tc, test_many_errors_at_once);
    tcase_add_test(tc, test_unknown_sections);
    tcase_add_test(tc, test_section_error);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_not_regular_file);
    tcase_add_test(tc, test_error_record);
    tcase_add_test(tc, test_sizes_beyond_memory);
    tcase_add_test(tc, test_load_file);
    suite_add_tcase(s, tc);
    tc = tcase_create("writing");
    tcase_add_test(tc, test_write_round_trip);
    tcase_add_test(tc, test_param_print);
    tcase_add_test(tc, test_path_beside_and_join);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_main(config_suite()); }
