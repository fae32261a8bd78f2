/* test_generative.c: targets known by samples (wgf/samples.h) and the mmd
 * energy (doc/math.md 2.1): the CSV reader's rows and errors, the named
 * generators' shapes, held-out sets, MMD against a brute-force double sum,
 * the witness gradient against finite differences of the estimate, its
 * reverse pass, and independence of the thread count. */
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sf_bessel.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "testutil.h"

/* ------------------------------------------------------------- helpers */

typedef struct energy {
    wgf_registry *reg;
    wgf_config *cfg;
    wgf_section *sec;
    const wgf_energy_vt *vt;
    void *st;
} energy;

/* A typed [energy] section of plugin mmd from body, in dimension d; file
 * stands for the experiment file. */
static wgf_section *mmd_section(energy *e, const char *body, size_t d, const char *file)
{
    memset(e, 0, sizeof *e);
    e->reg = test_registry();
    const wgf_plugin *pl = NULL;
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_find(e->reg, WGF_ENERGY, "mmd", &pl, NULL, &err) == WGF_OK, "%s", err.msg);
    size_t len = strlen(body) + 32;
    char *text = malloc(len);
    ck_assert_ptr_nonnull(text);
    snprintf(text, len, "[energy]\n%s\n", body);
    wgf_diag diag;
    wgf_diag_init(&diag);
    ck_assert_msg(wgf_config_load_string(&e->cfg, text, file, &diag, &err) == WGF_OK, "%s",
                  diag.n ? diag.msg[0] : err.msg);
    free(text);
    const wgf_param *const schemas[] = {pl->params, NULL};
    e->sec = wgf_config_section(e->cfg, "energy", schemas, d, &diag);
    ck_assert_msg(e->sec != NULL && diag.n == 0, "%s", diag.n ? diag.msg[0] : "no section");
    wgf_diag_free(&diag);
    e->vt = pl->vtable;
    return e->sec;
}

static int energy_try(energy *e, const char *body, size_t d, wgf_error *err)
{
    mmd_section(e, body, d, "test.ini");
    wgf_problem_info info = {.dim = d, .samples = 7, .seed = 1, .initial = NULL};
    return e->vt->create(e->sec, &info, &e->st, err);
}

static void energy_open(energy *e, const char *body, size_t d)
{
    wgf_error err = {0};
    ck_assert_msg(energy_try(e, body, d, &err) == WGF_OK, "%s", err.msg);
}

static void energy_close(energy *e)
{
    if (e->st)
        e->vt->destroy(e->st);
    wgf_section_free(e->sec);
    wgf_config_free(e->cfg);
    wgf_registry_free(e->reg);
}

static void expect_error(const char *body, size_t d, const char *want)
{
    energy e;
    wgf_error err = {0};
    int rc = energy_try(&e, body, d, &err);
    ck_assert_msg(rc == WGF_EINVAL, "[%s]: expected an error, got %d", body, rc);
    ck_assert_msg(strstr(err.msg, want) != NULL, "message \"%s\" lacks \"%s\"", err.msg, want);
    ck_assert_msg(strncmp(err.msg, "test.ini:", 9) == 0, "message \"%s\" does not name the file", err.msg);
    ck_assert_ptr_null(e.st);
    energy_close(&e);
}

static void random_batch(wgf_batch *b, size_t N, size_t d, double sx, unsigned long seed)
{
    ck_assert_int_eq(wgf_batch_alloc(b, N, d, 1, 1), WGF_OK);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (size_t k = 0; k < N * d; k++)
        b->x[k] = sx * gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
}

static double F_of(const energy *e, const wgf_batch *b)
{
    double F = NAN;
    wgf_error err = {0};
    ck_assert_msg(e->vt->eval(e->st, b, &F, NULL, NULL, &err) == WGF_OK, "%s", err.msg);
    return F;
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/wgf-gen-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* ------------------------------------------------------------ CSV reader */

START_TEST(read_rows)
{
    make_tmpdir();
    write_file("a.csv", "# comment\nx1,x2,x3\n1,2,3\n\n 4 5\t6\r\n-7e-1,8,9.5\n");
    char path[256];
    snprintf(path, sizeof path, "%s/a.csv", tmpdir);
    double *x = (double *)1;
    size_t n = 0;
    wgf_error err = {0};
    ck_assert_msg(wgf_samples_read(path, 3, &x, &n, &err) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(n, 3);
    const double want[9] = {1, 2, 3, 4, 5, 6, -0.7, 8, 9.5};
    for (size_t k = 0; k < 9; k++)
        ck_assert_double_eq(x[k], want[k]);
    free(x);
    /* the dimension check: the same file read as 2-D is refused at its first row */
    ck_assert_int_eq(wgf_samples_read(path, 2, &x, &n, &err), WGF_EINVAL);
    ck_assert_ptr_null(x);
    ck_assert_msg(strstr(err.msg, "a.csv:3: expected 2 numbers") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "dim = 2") != NULL, "%s", err.msg);
    /* read as 4-D: too few */
    ck_assert_int_eq(wgf_samples_read(path, 4, &x, &n, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "a.csv:3: expected 4 finite numbers separated by commas or spaces, "
                                  "found 3") != NULL,
                  "%s", err.msg);
    remove(path);
    rmdir(tmpdir);
}
END_TEST

START_TEST(read_errors)
{
    make_tmpdir();
    static const struct {
        const char *csv, *want;
    } bad[] = {
        {"1,2\n3,x\n", "b.csv:2: expected 2 finite numbers separated by commas or spaces, found 1"},
        {"1,2\n3,nan\n", "b.csv:2: expected 2 finite"},
        {"1,2\nx1,x2\n", "b.csv:2: expected 2 finite"}, /* a header after data */
        {"\n\n1,2\n3,4,\n5,6,7\n", "b.csv:5: expected 2 numbers separated by commas or spaces, found more"},
        {"x1,x2\n", "b.csv: no samples"},
    };
    char path[256];
    snprintf(path, sizeof path, "%s/b.csv", tmpdir);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        write_file("b.csv", bad[k].csv);
        double *x;
        size_t n;
        wgf_error err = {0};
        ck_assert_int_eq(wgf_samples_read(path, 2, &x, &n, &err), WGF_EINVAL);
        ck_assert_ptr_null(x);
        ck_assert_msg(strstr(err.msg, bad[k].want) != NULL, "case %zu: %s", k, err.msg);
    }
    remove(path);
    double *x;
    size_t n;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_samples_read(path, 2, &x, &n, &err), WGF_EIO);
    ck_assert_msg(strstr(err.msg, "cannot open") && strstr(err.msg, "b.csv"), "%s", err.msg);
    rmdir(tmpdir);
}
END_TEST

/* ------------------------------------------------------------ generators */

#define NGEN 20000

static gsl_rng *rng_seeded(unsigned long s)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    ck_assert_ptr_nonnull(r);
    gsl_rng_set(r, s);
    return r;
}

/* Exact shapes: every checkerboard sample on a square of even i + j, and
 * both parities of columns hit; rings and 8 Gaussians without noise on
 * their circles, in the right proportions. */
START_TEST(generators_shapes)
{
    double *x = malloc(2 * NGEN * sizeof *x);
    ck_assert_ptr_nonnull(x);
    gsl_rng *r = rng_seeded(3);
    wgf_samples_checkerboard(r, NGEN, x);
    size_t cells[16] = {0};
    for (size_t k = 0; k < NGEN; k++) {
        double a = x[2 * k], b = x[2 * k + 1];
        ck_assert(a >= -2 && a < 2 && b >= -2 && b < 2);
        long i = (long)floor(a), j = (long)floor(b);
        ck_assert_msg(((i + j) % 2 + 2) % 2 == 0, "(%g, %g) on a white square", a, b);
        cells[(i + 2) * 4 + (j + 2)]++;
    }
    for (size_t c = 0; c < 16; c++) {
        long i = (long)(c / 4) - 2, j = (long)(c % 4) - 2;
        if (((i + j) % 2 + 2) % 2 == 0) /* 1/8 each: 2500 +- 5 sd */
            ck_assert_msg(fabs((double)cells[c] - NGEN / 8.0) < 5 * sqrt(NGEN / 8.0), "square %zu: %zu", c,
                          cells[c]);
    }
    wgf_samples_rings(r, NGEN, 0.0, x);
    size_t inner = 0;
    for (size_t k = 0; k < NGEN; k++) {
        double rad = hypot(x[2 * k], x[2 * k + 1]);
        ck_assert_msg(fabs(rad - 1) < 1e-12 || fabs(rad - 2) < 1e-12, "radius %g", rad);
        inner += rad < 1.5;
    }
    ck_assert_msg(fabs((double)inner / NGEN - 1.0 / 3.0) < 0.015, "inner fraction %g", (double)inner / NGEN);
    wgf_samples_8gaussians(r, NGEN, 0.0, x);
    for (size_t k = 0; k < NGEN; k++) {
        double ang = atan2(x[2 * k + 1], x[2 * k]) / (M_PI / 4);
        ck_assert_double_eq_tol(hypot(x[2 * k], x[2 * k + 1]), 2.0, 1e-12);
        ck_assert_double_eq_tol(ang, round(ang), 1e-9);
    }
    /* moons without noise: the two half circles, moved by 2 y - (1, 0.2) */
    wgf_samples_moons(r, NGEN, 0.0, x);
    size_t upper = 0;
    for (size_t k = 0; k < NGEN; k++) {
        double a = (x[2 * k] + 1) / 2, b = (x[2 * k + 1] + 0.2) / 2;
        double ru = hypot(a, b), rl = hypot(a - 1, b - 0.5);
        ck_assert_msg((fabs(ru - 1) < 1e-12 && b >= 0) || (fabs(rl - 1) < 1e-12 && b <= 0.5), "(%g, %g)",
                      a, b);
        upper += fabs(ru - 1) < 1e-12 && b >= 0;
    }
    ck_assert_msg(fabs((double)upper / NGEN - 0.5) < 0.02, "upper moon fraction %g", (double)upper / NGEN);
    gsl_rng_free(r);
    free(x);
}
END_TEST

/* A mixture in 3-D: weights recovered by nearest-mean assignment, the mean
 * and covariance of a component against what was given. */
START_TEST(gmm_moments)
{
    const size_t d = 3, k = 2;
    const double w[2] = {1, 3}, m[6] = {-4, 0, 0, 4, 1, 0};
    const double C[18] = {1, 0.5, 0, 0.5, 2, 0, 0, 0, 0.5, 0.25, 0, 0, 0, 0.25, 0, 0, 0, 0.25};
    wgf_gmm *g;
    wgf_error err = {0};
    ck_assert_msg(wgf_gmm_create(&g, d, k, w, m, k * d * d, C, &err) == WGF_OK, "%s", err.msg);
    ck_assert_double_eq(wgf_gmm_weights(g)[1], 0.75);
    double *x = malloc(NGEN * d * sizeof *x), frac[2];
    ck_assert_ptr_nonnull(x);
    gsl_rng *r = rng_seeded(5);
    wgf_gmm_sample(g, r, NGEN, x);
    wgf_gmm_assign(g, NGEN, x, frac);
    ck_assert_msg(fabs(frac[0] - 0.25) < 5 * sqrt(0.25 * 0.75 / NGEN), "weight %g", frac[0]);
    /* component 0's moments from the samples nearer its mean */
    double mean[3] = {0}, cov[9] = {0};
    size_t n0 = 0;
    for (size_t s = 0; s < NGEN; s++)
        if (x[s * d] < 0) {
            for (size_t i = 0; i < d; i++)
                mean[i] += x[s * d + i];
            n0++;
        }
    for (size_t i = 0; i < d; i++)
        mean[i] /= (double)n0;
    for (size_t s = 0; s < NGEN; s++)
        if (x[s * d] < 0)
            for (size_t i = 0; i < d; i++)
                for (size_t j = 0; j < d; j++)
                    cov[i * d + j] += (x[s * d + i] - mean[i]) * (x[s * d + j] - mean[j]) / (double)(n0 - 1);
    for (size_t i = 0; i < d; i++)
        ck_assert_msg(fabs(mean[i] - m[i]) < 0.06, "mean %zu: %g", i, mean[i]);
    for (size_t i = 0; i < d * d; i++)
        ck_assert_msg(fabs(cov[i] - C[i]) < 0.12, "cov %zu: %g, expected %g", i, cov[i], C[i]);
    wgf_gmm_free(g);
    /* bad mixtures */
    const double bad[9] = {1, 2, 0, 2, 1, 0, 0, 0, 1};
    ck_assert_int_eq(wgf_gmm_create(&g, d, 1, w, m, d * d, bad, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "covariance 1 is not positive definite"), "%s", err.msg);
    ck_assert_int_eq(wgf_gmm_create(&g, d, 2, w, m, 5, C, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "5 covariance numbers"), "%s", err.msg);
    gsl_rng_free(r);
    free(x);
}
END_TEST

/* ------------------------------------------------------------- targets */

static int shares_a_row(const double *a, size_t na, const double *b, size_t nb, size_t d)
{
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (memcmp(a + i * d, b + j * d, d * sizeof *a) == 0)
                return 1;
    return 0;
}

/* Training and held-out sets: disjoint, reproducible, of the asked sizes;
 * another target_seed gives other samples. */
START_TEST(target_sets)
{
    energy e;
    wgf_target *t, *t2;
    wgf_error err = {0};
    mmd_section(&e, "target = moons\ntarget_samples = 300", 2, "test.ini");
    ck_assert_msg(wgf_target_create(&t, e.sec, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(wgf_target_create(&t2, e.sec, &err) == WGF_OK, "%s", err.msg);
    const double *tr, *he, *tr2;
    size_t ntr, nhe, ntr2;
    ck_assert_int_eq(wgf_target_set(t, WGF_TARGET_TRAIN, 0, &tr, &ntr, &err), WGF_OK);
    ck_assert_int_eq(wgf_target_set(t, WGF_TARGET_HELDOUT, 500, &he, &nhe, &err), WGF_OK);
    ck_assert_int_eq(wgf_target_set(t2, WGF_TARGET_TRAIN, 0, &tr2, &ntr2, &err), WGF_OK);
    ck_assert_uint_eq(ntr, 300);
    ck_assert_uint_eq(nhe, 500);
    ck_assert(memcmp(tr, tr2, 300 * 2 * sizeof *tr) == 0);
    ck_assert(!shares_a_row(tr, ntr, he, nhe, 2));
    const double first[2] = {tr[0], tr[1]};
    wgf_target_free(t);
    wgf_target_free(t2);
    energy_close(&e);
    mmd_section(&e, "target = moons\ntarget_samples = 300\ntarget_seed = 2", 2, "test.ini");
    ck_assert_msg(wgf_target_create(&t, e.sec, &err) == WGF_OK, "%s", err.msg);
    ck_assert_int_eq(wgf_target_set(t, WGF_TARGET_TRAIN, 0, &tr, &ntr, &err), WGF_OK);
    ck_assert(tr[0] != first[0] && tr[1] != first[1]);
    wgf_target_free(t);
    energy_close(&e);

    /* a file, split by rows: 10 rows, 3 held out, none in both */
    make_tmpdir();
    char csv[512] = "x1,x2\n", ini[256];
    for (int k = 0; k < 10; k++) {
        size_t len = strlen(csv);
        snprintf(csv + len, sizeof csv - len, "%d,%d\n", k, -k);
    }
    write_file("target.csv", csv);
    snprintf(ini, sizeof ini, "%s/exp.ini", tmpdir);
    mmd_section(&e, "target = file\ntarget_file = target.csv\nheldout = 0.3", 2, ini);
    ck_assert_msg(wgf_target_create(&t, e.sec, &err) == WGF_OK, "%s", err.msg);
    ck_assert_int_eq(wgf_target_set(t, WGF_TARGET_TRAIN, 0, &tr, &ntr, &err), WGF_OK);
    ck_assert_int_eq(wgf_target_set(t, WGF_TARGET_HELDOUT, 1000, &he, &nhe, &err), WGF_OK);
    ck_assert_uint_eq(ntr, 7);
    ck_assert_uint_eq(nhe, 3);
    ck_assert(!shares_a_row(tr, ntr, he, nhe, 2));
    double sum = 0;
    for (size_t k = 0; k < 7; k++)
        sum += tr[2 * k];
    for (size_t k = 0; k < 3; k++)
        sum += he[2 * k];
    ck_assert_double_eq(sum, 45.0); /* every row once */
    wgf_target_free(t);
    energy_close(&e);
    /* a bad row: the file and its line */
    write_file("target.csv", "1,2\n3,4\n5\n");
    mmd_section(&e, "target = file\ntarget_file = target.csv", 2, ini);
    ck_assert_int_eq(wgf_target_create(&t, e.sec, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "target.csv:3: expected 2 finite"), "%s", err.msg);
    energy_close(&e);
    char path[256];
    snprintf(path, sizeof path, "%s/target.csv", tmpdir);
    remove(path);
    rmdir(tmpdir);
}
END_TEST

/* [target] and the older form (an energy's keys) give the same samples for the same keys: the
 * training sets, and the held-out sets as far as both go (a generator's first draws do not depend
 * on how many are drawn), for a 2-D generator, a mixture and a file. */
static wgf_target *target_from_section(const char *body, size_t d, const char *file)
{
    wgf_config *cfg = NULL;
    wgf_error err = {0};
    wgf_diag diag;
    wgf_diag_init(&diag);
    char text[1024];
    snprintf(text, sizeof text, "[target]\n%s\n", body);
    ck_assert_msg(wgf_config_load_string(&cfg, text, file, &diag, &err) == WGF_OK, "%s", err.msg);
    const wgf_param *const schemas[] = {wgf_target_schema(), NULL};
    wgf_section *sec = wgf_config_section(cfg, "target", schemas, d, &diag);
    ck_assert_msg(sec != NULL && diag.n == 0, "%s", diag.n ? diag.msg[0] : "no section");
    wgf_diag_free(&diag);
    wgf_target *t = NULL;
    ck_assert_msg(wgf_target_create_section(&t, sec, &err) == WGF_OK, "%s", err.msg);
    wgf_section_free(sec);
    wgf_config_free(cfg);
    return t;
}

static void same_target(const char *older, const char *section, size_t d, const char *file,
                        size_t ntrain, size_t nheld)
{
    energy e;
    wgf_target *a, *b;
    wgf_error err = {0};
    mmd_section(&e, older, d, file);
    ck_assert_msg(wgf_target_create(&a, e.sec, &err) == WGF_OK, "%s", err.msg);
    b = target_from_section(section, d, file);
    const double *ta, *tb, *ha, *hb;
    size_t na, nb, ma, mb;
    ck_assert_int_eq(wgf_target_set(a, WGF_TARGET_TRAIN, 0, &ta, &na, &err), WGF_OK);
    ck_assert_int_eq(wgf_target_set(b, WGF_TARGET_TRAIN, 0, &tb, &nb, &err), WGF_OK);
    ck_assert_uint_eq(na, ntrain);
    ck_assert_uint_eq(nb, ntrain);
    ck_assert_msg(memcmp(ta, tb, ntrain * d * sizeof *ta) == 0, "%s: other training samples", section);
    /* the older form draws a generator's held-out set as large as asked; [target] its heldout */
    ck_assert_int_eq(wgf_target_set(a, WGF_TARGET_HELDOUT, 300, &ha, &ma, &err), WGF_OK);
    ck_assert_int_eq(wgf_target_set(b, WGF_TARGET_HELDOUT, 300, &hb, &mb, &err), WGF_OK);
    ck_assert_uint_eq(mb, nheld);
    size_t n = ma < mb ? ma : mb;
    ck_assert(n >= 2);
    ck_assert_msg(memcmp(ha, hb, n * d * sizeof *ha) == 0, "%s: other held-out samples", section);
    ck_assert(!shares_a_row(tb, nb, hb, mb, d));
    wgf_target_free(a);
    wgf_target_free(b);
    energy_close(&e);
}

START_TEST(target_section_same_samples)
{
    same_target("target = moons\nnoise = 0.05\ntarget_samples = 200\ntarget_seed = 3",
                "generator = moons\nnoise = 0.05\nsamples = 200\nseed = 3\nheldout = 500", 2, "test.ini",
                200, 500);
    same_target("target = gmm\nweights = 1 3\nmeans = 1 0 0  -1 2 0\ncovs = 0.5 0.1\ntarget_samples = 150",
                "generator = mixture\nweights = 1 3\nmeans = 1 0 0  -1 2 0\ncovs = 0.5 0.1\nsamples = 150"
                "\nheldout = 100", 3, "test.ini", 150, 100);
    /* a file: 20 rows, a fifth held out in both forms */
    make_tmpdir();
    char csv[512] = "", ini[256];
    for (int k = 0; k < 20; k++) {
        size_t len = strlen(csv);
        snprintf(csv + len, sizeof csv - len, "%d %d\n", k, k * k);
    }
    write_file("target.csv", csv);
    snprintf(ini, sizeof ini, "%s/exp.ini", tmpdir);
    same_target("target = file\ntarget_file = target.csv\ntarget_seed = 5", "file = target.csv\nseed = 5",
                2, ini, 16, 4);
    /* the training rows asked for: the first of the same shuffle */
    wgf_target *t = target_from_section("file = target.csv\nseed = 5\nsamples = 10\nheldout = 5", 2, ini);
    const double *x;
    size_t n;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_target_set(t, WGF_TARGET_TRAIN, 0, &x, &n, &err), WGF_OK);
    ck_assert_uint_eq(n, 10);
    wgf_target_free(t);
    char path[256];
    snprintf(path, sizeof path, "%s/target.csv", tmpdir);
    remove(path);
    rmdir(tmpdir);
}
END_TEST

START_TEST(target_errors)
{
    expect_error("target = moons", 3, "energy.target: moons is a 2-D target and the run has dim = 3");
    expect_error("target = file", 2, "energy.target: target = file needs the key target_file");
    expect_error("target = file\ntarget_file = /nonexistent/t.csv", 2, "energy.target_file: cannot open");
    expect_error("weights = 1 2\nmeans = 1 2 3", 2, "energy.means: 3 numbers for 2 components");
    expect_error("weights = 1 2\ncovs = 1 2 3", 2, "energy.covs: 3 numbers for 2 components");
    expect_error("covs = 1 2 2 1", 2, "energy.covs: covariance 1 is not positive definite");
}
END_TEST

/* ------------------------------------------------------------------ mmd */

static double k_gauss(double r2, const double *s, size_t ns)
{
    double v = 0;
    for (size_t j = 0; j < ns; j++)
        v += exp(-r2 / (2 * s[j] * s[j]));
    return v;
}

/* The kernel of the test, written from doc/math.md 2.1 alone. */
static double kern(int energy_kernel, const double *s, size_t ns, size_t d, const double *a, const double *b)
{
    double r2 = 0;
    for (size_t i = 0; i < d; i++)
        r2 += (a[i] - b[i]) * (a[i] - b[i]);
    return energy_kernel ? -sqrt(r2) : k_gauss(r2, s, ns);
}

/* MMD^2, unbiased, by the double sums themselves. */
static double mmd_brute(int ek, const double *s, size_t ns, size_t d, const double *x, size_t N,
                        const double *y, size_t M)
{
    double xx = 0, xy = 0, yy = 0;
    for (size_t n = 0; n < N; n++)
        for (size_t k = 0; k < N; k++)
            if (k != n)
                xx += kern(ek, s, ns, d, x + n * d, x + k * d);
    for (size_t n = 0; n < N; n++)
        for (size_t m = 0; m < M; m++)
            xy += kern(ek, s, ns, d, x + n * d, y + m * d);
    for (size_t m = 0; m < M; m++)
        for (size_t k = 0; k < M; k++)
            if (k != m)
                yy += kern(ek, s, ns, d, y + m * d, y + k * d);
    return xx / (double)(N * (N - 1)) - 2 * xy / (double)(N * M) + yy / (double)(M * (M - 1));
}

/* The energy's own training samples: the same keys give the same target. */
static void target_of(const energy *e, wgf_target **t, const double **y, size_t *M)
{
    wgf_error err = {0};
    ck_assert_msg(wgf_target_create(t, e->sec, &err) == WGF_OK, "%s", err.msg);
    ck_assert_int_eq(wgf_target_set(*t, WGF_TARGET_TRAIN, 0, y, M, &err), WGF_OK);
}

static void check_brute(const char *body, int ek, const double *s, size_t ns, size_t d, size_t N,
                        double weight)
{
    energy e;
    energy_open(&e, body, d);
    wgf_target *t;
    const double *y;
    size_t M;
    target_of(&e, &t, &y, &M);
    wgf_batch b;
    random_batch(&b, N, d, 1.5, 11);
    double want = weight * mmd_brute(ek, s, ns, d, b.x, N, y, M);
    double F = F_of(&e, &b);
    ck_assert_msg(fabs(F - want) <= 1e-12 * fmax(1e-3, fabs(want)) + 1e-14, "[%s]: F = %.17g, brute %.17g",
                  body, F, want);
    /* F is the same whether or not a is wanted */
    double *a = malloc(N * d * sizeof *a), F2;
    wgf_error err = {0};
    ck_assert(a != NULL);
    ck_assert_int_eq(e.vt->eval(e.st, &b, &F2, a, NULL, &err), WGF_OK);
    ck_assert_double_eq(F, F2);
    free(a);
    wgf_batch_free(&b);
    wgf_target_free(t);
    energy_close(&e);
}

START_TEST(mmd_brute_force)
{
    const double s1[] = {1.0}, s3[] = {0.3, 1.0, 2.5};
    check_brute("target_samples = 50", 0, s1, 1, 3, 40, 1.0);
    check_brute("target_samples = 70\nbandwidth = 0.3 1 2.5\nweight = 2.5", 0, s3, 3, 2, 33, 2.5);
    check_brute("kernel = energy\ntarget = 8gaussians\ntarget_samples = 60\nnoise = 0.2", 1, s1, 1, 2, 45,
                1.0);
    /* a mixture in 5-D, N above one tile */
    check_brute("kernel = energy\nweights = 1 2\nmeans = 1\ncovs = 0.5 2\ntarget_samples = 30", 1, s1, 1, 5,
                700, 1.0);
}
END_TEST

/* The median heuristic: bandwidth times the median distance between the
 * target samples, computed here by brute force. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

START_TEST(mmd_median)
{
    energy e;
    energy_open(&e, "target = rings\ntarget_samples = 41\nmedian = true\nbandwidth = 0.5", 2);
    wgf_target *t;
    const double *y;
    size_t M;
    target_of(&e, &t, &y, &M);
    size_t np = M * (M - 1) / 2, k = 0;
    double *r = malloc(np * sizeof *r);
    ck_assert(r != NULL);
    for (size_t a = 0; a < M; a++)
        for (size_t c = a + 1; c < M; c++)
            r[k++] = hypot(y[2 * a] - y[2 * c], y[2 * a + 1] - y[2 * c + 1]);
    qsort(r, np, sizeof *r, cmp_double);
    double s = 0.5 * (np % 2 ? r[np / 2] : 0.5 * (r[np / 2 - 1] + r[np / 2]));
    free(r);
    wgf_batch b;
    random_batch(&b, 20, 2, 1.0, 4);
    double want = mmd_brute(0, &s, 1, 2, b.x, 20, y, M);
    ck_assert_msg(fabs(F_of(&e, &b) - want) < 1e-12, "F %.17g, brute %.17g", F_of(&e, &b), want);
    wgf_batch_free(&b);
    wgf_target_free(t);
    energy_close(&e);
}
END_TEST

/* The witness gradient g_n = N dFhat/dx_n (doc/math.md 2.1) against central
 * differences of the estimate, and a = dF/dx likewise; the reverse pass of
 * wgrad against central differences of <gbar, g>. */
static void check_fd(const char *body, size_t d, size_t N)
{
    energy e;
    energy_open(&e, body, d);
    wgf_batch b;
    random_batch(&b, N, d, 1.2, 17);
    double *a = malloc(N * d * sizeof *a), *g = malloc(N * d * sizeof *g), *gp = malloc(N * d * sizeof *gp),
           *gm = malloc(N * d * sizeof *gm), *gbar = malloc(N * d * sizeof *gbar),
           *xbar = calloc(N * d, sizeof *xbar), F;
    ck_assert(a && g && gp && gm && gbar && xbar);
    gsl_rng *r = rng_seeded(23);
    for (size_t k = 0; k < N * d; k++)
        gbar[k] = gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
    wgf_error err = {0};
    ck_assert_int_eq(e.vt->eval(e.st, &b, &F, a, NULL, &err), WGF_OK);
    ck_assert_int_eq(e.vt->wgrad(e.st, &b, g, &err), WGF_OK);
    ck_assert_int_eq(e.vt->wgrad_vjp(e.st, &b, gbar, xbar, NULL, NULL, &err), WGF_OK);
    double worst_g = 0, worst_a = 0, worst_v = 0, scale_g = 1e-3, scale_v = 1e-3;
    for (size_t k = 0; k < N * d; k++) {
        double x0 = b.x[k], h = 1e-5;
        b.x[k] = x0 + h;
        double Fp = F_of(&e, &b);
        ck_assert_int_eq(e.vt->wgrad(e.st, &b, gp, &err), WGF_OK);
        b.x[k] = x0 - h;
        double Fm = F_of(&e, &b);
        ck_assert_int_eq(e.vt->wgrad(e.st, &b, gm, &err), WGF_OK);
        b.x[k] = x0;
        double dF = (Fp - Fm) / (2 * h), dv = 0;
        for (size_t j = 0; j < N * d; j++)
            dv += gbar[j] * (gp[j] - gm[j]) / (2 * h);
        worst_a = fmax(worst_a, fabs(a[k] - dF));
        worst_g = fmax(worst_g, fabs(g[k] - (double)N * dF));
        worst_v = fmax(worst_v, fabs(xbar[k] - dv));
        scale_g = fmax(scale_g, fabs(g[k]));
        scale_v = fmax(scale_v, fabs(dv));
    }
    ck_assert_msg(worst_g / scale_g < 1e-6, "[%s]: g vs N dF/dx: %g (scale %g)", body, worst_g, scale_g);
    ck_assert_msg(worst_a * (double)N / scale_g < 1e-6, "[%s]: a vs dF/dx: %g", body, worst_a);
    ck_assert_msg(worst_v / scale_v < 1e-6, "[%s]: xbar vs FD of <gbar, g>: %g (scale %g)", body, worst_v,
                  scale_v);
    /* wgrad_vjp accumulates */
    double *x2 = malloc(N * d * sizeof *x2);
    ck_assert(x2 != NULL);
    for (size_t k = 0; k < N * d; k++)
        x2[k] = 1.0;
    ck_assert_int_eq(e.vt->wgrad_vjp(e.st, &b, gbar, x2, NULL, NULL, &err), WGF_OK);
    for (size_t k = 0; k < N * d; k++)
        ck_assert_double_eq_tol(x2[k], 1.0 + xbar[k], 1e-12);
    free(x2);
    free(a);
    free(g);
    free(gp);
    free(gm);
    free(gbar);
    free(xbar);
    wgf_batch_free(&b);
    energy_close(&e);
}

START_TEST(mmd_witness_fd)
{
    check_fd("target_samples = 40\nbandwidth = 0.7", 3, 9);
    check_fd("target = moons\ntarget_samples = 60\nbandwidth = 0.2 1 3\nweight = 0.5", 2, 12);
    check_fd("kernel = energy\ntarget = checkerboard\ntarget_samples = 50", 2, 10);
    check_fd("kernel = energy\nweights = 1 1 2\nmeans = 1 0 0 0 1 0 0 0 1\ncovs = 0.1", 3, 8);
}
END_TEST

/* The stiffness of a Gaussian kernel against its closed form: for nu =
 * N(0, v I) and one bandwidth s, E_y k(x, y) = c exp(-|x|^2/(2 t)) with
 * t = s^2 + v, c = (s^2/t)^(d/2), so V = -2w E_y k has its largest Hessian
 * eigenvalue 2 w c / t at x = 0; the estimate at target samples near 0
 * is at most a few percent below (and Monte Carlo in the M samples). The
 * energy-distance kernel states none. */
START_TEST(mmd_stiffness)
{
    energy e;
    energy_open(&e, "covs = 0.25\nbandwidth = 1\nweight = 1.5\ntarget_samples = 4000", 2);
    ck_assert(e.vt->stiffness != NULL);
    double t = 1.25, c = 1 / t, exact = 2 * 1.5 * c / t, l = e.vt->stiffness(e.st);
    ck_assert_msg(l > 0.9 * exact && l < 1.05 * exact, "stiffness %g, sup %g", l, exact);
    energy_close(&e);
    energy_open(&e, "kernel = energy", 2);
    ck_assert(isnan(e.vt->stiffness(e.st)));
    energy_close(&e);
}
END_TEST

/* Bit-identical results on 1 and 2 threads, above the parallel threshold. */
START_TEST(mmd_threads)
{
    const char *bodies[] = {"target = 8gaussians\ntarget_samples = 400\nbandwidth = 0.5 2",
                            "kernel = energy\ntarget = moons\ntarget_samples = 350"};
    for (size_t v = 0; v < 2; v++) {
        energy e;
        energy_open(&e, bodies[v], 2);
        size_t N = 333, d = 2;
        wgf_batch b;
        random_batch(&b, N, d, 1.0, 29);
        double F[2], *a[2], *g[2], *xb[2], *gbar = malloc(N * d * sizeof *gbar);
        ck_assert(gbar != NULL);
        for (size_t k = 0; k < N * d; k++)
            gbar[k] = sin((double)k);
        for (int t = 0; t < 2; t++) {
#ifdef _OPENMP
            omp_set_num_threads(t + 1);
#endif
            a[t] = malloc(N * d * sizeof(double));
            g[t] = malloc(N * d * sizeof(double));
            xb[t] = calloc(N * d, sizeof(double));
            ck_assert(a[t] && g[t] && xb[t]);
            wgf_error err = {0};
            ck_assert_int_eq(e.vt->eval(e.st, &b, &F[t], a[t], NULL, &err), WGF_OK);
            ck_assert_int_eq(e.vt->wgrad(e.st, &b, g[t], &err), WGF_OK);
            ck_assert_int_eq(e.vt->wgrad_vjp(e.st, &b, gbar, xb[t], NULL, NULL, &err), WGF_OK);
        }
        ck_assert(memcmp(&F[0], &F[1], sizeof F[0]) == 0);
        ck_assert(memcmp(a[0], a[1], N * d * sizeof(double)) == 0);
        ck_assert(memcmp(g[0], g[1], N * d * sizeof(double)) == 0);
        ck_assert(memcmp(xb[0], xb[1], N * d * sizeof(double)) == 0);
        for (int t = 0; t < 2; t++) {
            free(a[t]);
            free(g[t]);
            free(xb[t]);
        }
        free(gbar);
        wgf_batch_free(&b);
        energy_close(&e);
    }
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
}
END_TEST

/* An MMD of zero in expectation: the model's samples drawn from the target
 * itself give |Fhat| of the order of its standard error, and a shifted
 * model a clearly positive value. */
START_TEST(mmd_sign)
{
    energy e;
    energy_open(&e, "target = 8gaussians\ntarget_samples = 500\nnoise = 0.3\nbandwidth = 0.5 1 2", 2);
    wgf_batch b;
    ck_assert_int_eq(wgf_batch_alloc(&b, 500, 2, 0, 0), WGF_OK);
    gsl_rng *r = rng_seeded(77);
    wgf_samples_8gaussians(r, 500, 0.3, b.x);
    double same = F_of(&e, &b);
    for (size_t k = 0; k < 1000; k += 2)
        b.x[k] += 1.0;
    double shifted = F_of(&e, &b);
    ck_assert_msg(fabs(same) < 0.01 && shifted > 0.1, "same law %g, shifted %g", same, shifted);
    gsl_rng_free(r);
    wgf_batch_free(&b);
    energy_close(&e);
}
END_TEST

/* ------------------------------------------------------- ref_target */

static double figure(const wgf_run_result *res, const char *name)
{
    for (size_t i = 0; i < res->nfigures; i++)
        if (strcmp(res->figures[i].name, name) == 0)
            return res->figures[i].value;
    ck_abort_msg("no figure %s in the run's result", name);
    return NAN;
}

/* A run that does not move (weight 0): the model stays N(0, I) in 2-D, its
 * output samples moment-matched, toward the target given by `target`: keys
 * of the energy (the older form) or a [target] section after it. */
static void run_static(const char *target, wgf_run_result *res)
{
    char ini[1024];
    snprintf(ini, sizeof ini,
             "[run]\ndim = 2\nsamples = 50\nseed = 3\n[initial]\ntype = gaussian\n"
             "[energy]\nplugin = mmd\nweight = 0\n%s\n"
             "[map]\nplugin = affine\n[metric]\nplugin = lagrangian\ntikhonov = 1e-3\n"
             "[scheme]\nplugin = euler\nstep = 0.01\nt_end = 0.01\n"
             "[output]\nevery = 1\nsamples = 4000\nplots = false\nwrite_samples = false\n"
             "[reference]\nplugin = target\nsamples = 4000\nbandwidth = 1 2\n",
             target);
    char *file = test_write_ini(ini), *dir = test_temp_dir("tref");
    wgf_run_opts opts = {.file = file, .outdir = dir, .threads = 1, .quiet = 1};
    wgf_error err = {0};
    ck_assert_msg(test_run(&opts, res, &err) == WGF_OK, "%s", err.msg);
    /* reference.csv: the held-out samples as dashes over the samples plot */
    char path[4200], line[256];
    snprintf(path, sizeof path, "%s/reference.csv", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    ck_assert(fgets(line, sizeof line, f) && strcmp(line, "# curve\n") == 0);
    size_t points = 0, blank = 0;
    while (fgets(line, sizeof line, f)) {
        double a, b;
        if (line[0] == '\n')
            blank++;
        else if (sscanf(line, "%lf,%lf", &a, &b) == 2)
            points++;
    }
    fclose(f);
    ck_assert_msg(points == 8000 && blank == 4000, "%zu points, %zu blank lines", points, blank);
    test_remove_tree(dir);
    unlink(file);
    free(dir);
    free(file);
}

/* E|Z| for Z ~ N(mu, s^2 I) in 2-D (the Rice mean):
 * s sqrt(pi/2) L_1/2(-|mu|^2/(2 s^2)), L_1/2(-q) = e^(-q/2) ((1+q) I0(q/2) + q I1(q/2)). */
static double rice_mean(double mu, double s)
{
    double q = mu * mu / (2 * s * s);
    return s * sqrt(M_PI / 2) * exp(-q / 2) * ((1 + q) * gsl_sf_bessel_I0(q / 2) + q * gsl_sf_bessel_I1(q / 2));
}

/* The held-out distances of a shifted Gaussian against their closed forms:
 * target N((3, 0), I), model N(0, I). Sliced W2^2 = E_theta (3 theta_1)^2 =
 * 9/2 (over 64 random directions the mean of theta_1^2 has a standard
 * deviation of 0.044 about 1/2, hence the 12%); MMD^2 with Gaussian kernels of bandwidth s in 2-D:
 * sum_s 2 s^2/(s^2+2) (1 - exp(-9/(2(s^2+2)))); energy distance
 * 2 E|N(mu, 2I)| - 2 E|N(0, 2I)|. */
START_TEST(ref_target_closed_forms)
{
    wgf_run_result res;
    run_static("target_samples = 10\nmeans = 3 0\n", &res);
    double mmd = 0;
    for (double s = 1; s <= 2; s += 1)
        mmd += 2 * s * s / (s * s + 2) * (1 - exp(-9 / (2 * (s * s + 2))));
    double ed = 2 * rice_mean(3, sqrt(2)) - 2 * rice_mean(0, sqrt(2));
    ck_assert_msg(fabs(figure(&res, "sw2") - sqrt(4.5)) < 0.12 * sqrt(4.5), "sw2 %g, exact %g",
                  figure(&res, "sw2"), sqrt(4.5));
    ck_assert_msg(fabs(figure(&res, "mmd") - mmd) < 0.02 * mmd, "mmd %g, exact %g", figure(&res, "mmd"), mmd);
    ck_assert_msg(fabs(figure(&res, "edist") - ed) < 0.02 * ed, "edist %g, exact %g", figure(&res, "edist"),
                  ed);
    ck_assert_msg(fabs(figure(&res, "mode_w1") - 1.0) < 1e-12, "mode_w1 %g", figure(&res, "mode_w1"));
    /* the same target as a [target] section: the same held-out samples, the same figures */
    wgf_run_result sec;
    run_static("[target]\ngenerator = mixture\nsamples = 10\nheldout = 4000\nmeans = 3 0\n", &sec);
    const char *names[] = {"sw2", "mmd", "edist", "mode_err"};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(figure(&sec, names[i]) == figure(&res, names[i]), "[target]: %s %.17g, older form %.17g",
                      names[i], figure(&sec, names[i]), figure(&res, names[i]));
    /* the target itself: every distance near 0 */
    run_static("target_samples = 10\n", &res);
    ck_assert_msg(figure(&res, "sw2") < 0.05 && fabs(figure(&res, "mmd")) < 2e-3 &&
                      fabs(figure(&res, "edist")) < 5e-3,
                  "sw2 %g, mmd %g, edist %g", figure(&res, "sw2"), figure(&res, "mmd"), figure(&res, "edist"));
    /* mode weights: N(0, I) splits evenly between means at -3 and 3 */
    run_static("target_samples = 10\nweights = 0.3 0.7\nmeans = -3 0 3 0\n", &res);
    double w1 = figure(&res, "mode_w1"), w2 = figure(&res, "mode_w2");
    ck_assert_msg(fabs(w1 - 0.5) < 0.04 && fabs(w1 + w2 - 1) < 1e-12, "mode weights %g %g", w1, w2);
    ck_assert_msg(fabs(figure(&res, "mode_err") - fmax(fabs(w1 - 0.3), fabs(w2 - 0.7))) < 1e-12, "mode_err %g",
                  figure(&res, "mode_err"));
}
END_TEST

/* A problem without a target is refused, naming the reference's key. */
START_TEST(ref_target_refuses)
{
    const char *ini = "[run]\ndim = 2\nsamples = 50\n[energy]\nplugin = fpe\n[map]\nplugin = affine\n"
                      "[metric]\nplugin = lagrangian\n[scheme]\nplugin = euler\nt_end = 0.005\n"
                      "[reference]\nplugin = target\n";
    char *file = test_write_ini(ini), *dir = test_temp_dir("tref");
    wgf_run_opts opts = {.file = file, .outdir = dir, .threads = 1, .quiet = 1};
    wgf_run_result res;
    wgf_error err = {0};
    wgf_diag diag;
    wgf_diag_init(&diag);
    ck_assert_int_eq(wgf_run(&opts, &res, &diag, &err), WGF_EINVAL);
    const char *msg = diag.n ? diag.msg[0] : err.msg;
    ck_assert_msg(strstr(msg, ":14: reference.plugin: target needs a [target] section (or an energy "
                              "with a target"),
                  "%s", msg);
    wgf_diag_free(&diag);
    test_remove_tree(dir);
    unlink(file);
    free(dir);
    free(file);
}
END_TEST

/* ------------------------------------------------- the moons experiment */

/* experiments/generative_moons.ini, shortened: 200 training samples, 16
 * layers, t = 8 (80 Euler steps), 500 output and held-out samples; about
 * 0.4 s. From N(0, I) the held-out figures start at sw2 0.57-0.60, mmd
 * 0.24-0.26, edist 0.18-0.19 (seeds 1-3); at t = 8 they were sw2
 * 0.18-0.21, mmd 0.026-0.032, edist 0.004-0.008. The map-space JKO variant,
 * 4 steps of h = 1 (at most 50 L-BFGS iterations each): sw2 0.26-0.30, mmd
 * 0.054-0.063, edist 0.020-0.026 (seeds 1-2). A flow that went the wrong
 * way, or stood still, keeps the starting figures. */
static void run_moons(const char *const *extra, size_t nextra, wgf_run_result *res)
{
    char file[4096];
    test_srcpath("experiments/generative_moons.ini", file, sizeof file);
    const char *sets[16] = {"run.seed=1", "run.samples=200", "map.layers=16", "scheme.t_end=8",
                            "output.every=80", "output.samples=500", "reference.samples=500",
                            "output.plots=false", "output.write_samples=false"};
    size_t n = 9;
    for (size_t i = 0; i < nextra && n < 16; i++)
        sets[n++] = extra[i];
    char *dir = test_temp_dir("moons");
    wgf_run_opts opts = {.file = file, .outdir = dir, .sets = sets, .nsets = n, .threads = 1, .quiet = 1};
    wgf_error err = {0};
    ck_assert_msg(test_run(&opts, res, &err) == WGF_OK, "%s", err.msg);
    test_remove_tree(dir);
    free(dir);
}

START_TEST(moons_short)
{
    wgf_run_result res;
    run_moons(NULL, 0, &res);
    ck_assert_int_eq(res.steps, 80);
    ck_assert_msg(figure(&res, "sw2") < 0.3 && figure(&res, "mmd") < 0.05 && figure(&res, "edist") < 0.015,
                  "euler: sw2 %g, mmd %g, edist %g", figure(&res, "sw2"), figure(&res, "mmd"),
                  figure(&res, "edist"));
}
END_TEST

START_TEST(moons_short_jko)
{
    /* jko is built only with liblbfgs */
    wgf_registry *reg = test_registry();
    const wgf_plugin *pl = NULL;
    wgf_error err = {0};
    int have = wgf_registry_find(reg, WGF_SCHEME, "jko", &pl, NULL, &err) == WGF_OK;
    wgf_registry_free(reg);
    if (!have)
        return;
    wgf_run_result res;
    const char *jko[] = {"scheme.plugin=jko", "scheme.proximal=map", "scheme.step=1", "scheme.t_end=4",
                         "scheme.max_iterations=50", "output.every=4"};
    run_moons(jko, 6, &res);
    ck_assert_int_eq(res.steps, 4);
    ck_assert_msg(figure(&res, "sw2") < 0.4 && figure(&res, "mmd") < 0.1 && figure(&res, "edist") < 0.05,
                  "jko: sw2 %g, mmd %g, edist %g", figure(&res, "sw2"), figure(&res, "mmd"),
                  figure(&res, "edist"));
}
END_TEST

/* ------------------------------------------------------------------ fdiv */

/* The critic's divergences against the closed forms for two Gaussians in 1-D:
 * KL(N(0, 1) || N(1, 1.5^2)) = log 1.5 + (1 + 1)/(2 * 2.25) - 1/2. With the
 * quadratic features the optimal critic 1 + log(rho/nu) is in the family,
 * so the estimate is off by sampling alone (N = M = 20000: about 0.006);
 * random Fourier features approximate it. */
static double fdiv_kl(const char *features)
{
    char body[256];
    snprintf(body, sizeof body, "%s\nmeans = 1\ncovs = 2.25\ntarget_samples = 20000\nridge = 1e-8", features);
    energy e;
    memset(&e, 0, sizeof e);
    e.reg = test_registry();
    const wgf_plugin *pl = NULL;
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_find(e.reg, WGF_ENERGY, "fdiv", &pl, NULL, &err) == WGF_OK, "%s", err.msg);
    char text[512];
    snprintf(text, sizeof text, "[energy]\n%s\n", body);
    wgf_diag diag;
    wgf_diag_init(&diag);
    ck_assert(wgf_config_load_string(&e.cfg, text, "test.ini", &diag, &err) == WGF_OK);
    const wgf_param *const schemas[] = {pl->params, NULL};
    e.sec = wgf_config_section(e.cfg, "energy", schemas, 1, &diag);
    ck_assert_msg(e.sec != NULL && diag.n == 0, "%s", diag.n ? diag.msg[0] : "no section");
    wgf_diag_free(&diag);
    e.vt = pl->vtable;
    wgf_problem_info info = {.dim = 1, .samples = 20000, .seed = 1, .initial = NULL};
    ck_assert_msg(e.vt->create(e.sec, &info, &e.st, &err) == WGF_OK, "%s", err.msg);
    wgf_batch b;
    ck_assert_int_eq(wgf_batch_alloc(&b, 20000, 1, 0, 0), WGF_OK);
    gsl_rng *r = rng_seeded(99);
    for (size_t k = 0; k < 20000; k++)
        b.x[k] = gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
    double F = F_of(&e, &b);
    wgf_batch_free(&b);
    energy_close(&e);
    return F;
}

START_TEST(fdiv_kl_gaussians)
{
    double kl = log(1.5) + 2.0 / 4.5 - 0.5, q = fdiv_kl("features = quadratic"),
           f = fdiv_kl("features = fourier\ncount = 64\nbandwidth = 2"),
           dv = fdiv_kl("divergence = dv\nfeatures = quadratic");
    ck_assert_msg(fabs(q - kl) < 0.02, "quadratic critic: KL %g, exact %g", q, kl);
    ck_assert_msg(fabs(f - kl) < 0.05, "fourier critic: KL %g, exact %g", f, kl);
    /* the multi-scale set of the moons run: features of bandwidths 0.3 and 1 in turn (far finer
     * than these Gaussians), ridge 1e-8 as above */
    double fm = fdiv_kl("features = fourier\ncount = 128\nbandwidth = 0.3 1");
    ck_assert_msg(fabs(fm - kl) < 0.02, "multi-scale fourier critic: KL %g, exact %g", fm, kl);
    ck_assert_msg(fabs(dv - kl) < 0.02, "Donsker-Varadhan, quadratic critic: KL %g, exact %g", dv, kl);
    /* chi^2 = int rho^2/nu - 1 = 1.5/sqrt(2 pi) sqrt(pi/a) exp(b^2/(4a) + c) - 1 with
     * a = 1 - 1/4.5, b = -2/4.5, c = 1/4.5; its optimal critic 2 (rho/nu - 1) is in
     * neither family, so a looser tolerance */
    double a = 1 - 1 / 4.5, b = -2 / 4.5, c = 1 / 4.5;
    double chi2 = 1.5 / sqrt(2 * M_PI) * sqrt(M_PI / a) * exp(b * b / (4 * a) + c) - 1,
           fc = fdiv_kl("divergence = chi2\nfeatures = fourier\ncount = 64\nbandwidth = 2");
    ck_assert_msg(fabs(fc - chi2) < 0.1 * chi2, "fourier critic: chi^2 %g, exact %g", fc, chi2);
    /* JS in the f-GAN convention, int rho log(2 rho/(rho+nu)) + nu log(2 nu/(rho+nu)), by the
     * trapezoidal rule on [-20, 20] (the integrand is smooth and decays like a Gaussian) */
    double js = 0, hq = 1e-3;
    for (int k = 0; k <= 40000; k++) {
        double x = -20 + k * hq, r = exp(-x * x / 2) / sqrt(2 * M_PI),
               n = exp(-(x - 1) * (x - 1) / 4.5) / (1.5 * sqrt(2 * M_PI)), w = (k == 0 || k == 40000) ? 0.5 : 1;
        if (r > 0 && n > 0)
            js += w * hq * (r * log(2 * r / (r + n)) + n * log(2 * n / (r + n)));
    }
    double fj = fdiv_kl("divergence = js\nfeatures = fourier\ncount = 64\nbandwidth = 2");
    ck_assert_msg(fabs(fj - js) < 0.1 * js, "fourier critic: JS %g, quadrature %g", fj, js);
}
END_TEST

/* A tolerance below rounding: the fit stops where no Newton step raises
 * the objective, with the same critic, instead of failing (a run of the
 * eight-Gaussians KL flow stopped at step 31 with |grad| = 1.09e-11 against
 * an absolute tol of 1e-11). */
START_TEST(fdiv_rounding_floor)
{
    energy e[2];
    const char *bodies[2] = {"target = 8gaussians\nnoise = 0.2\ncount = 128\nridge = 1e-3",
                             "target = 8gaussians\nnoise = 0.2\ncount = 128\nridge = 1e-3\ntol = 1e-18"};
    double F[2];
    for (int k = 0; k < 2; k++) {
        memset(&e[k], 0, sizeof e[k]);
        e[k].reg = test_registry();
        const wgf_plugin *pl = NULL;
        wgf_error err = {0};
        ck_assert(wgf_registry_find(e[k].reg, WGF_ENERGY, "fdiv", &pl, NULL, &err) == WGF_OK);
        char text[512];
        snprintf(text, sizeof text, "[energy]\n%s\n", bodies[k]);
        wgf_diag diag;
        wgf_diag_init(&diag);
        ck_assert(wgf_config_load_string(&e[k].cfg, text, "test.ini", &diag, &err) == WGF_OK);
        const wgf_param *const schemas[] = {pl->params, NULL};
        e[k].sec = wgf_config_section(e[k].cfg, "energy", schemas, 2, &diag);
        ck_assert_msg(e[k].sec != NULL && diag.n == 0, "%s", diag.n ? diag.msg[0] : "no section");
        wgf_diag_free(&diag);
        e[k].vt = pl->vtable;
        wgf_problem_info info = {.dim = 2, .samples = 500, .seed = 1, .initial = NULL};
        ck_assert_msg(e[k].vt->create(e[k].sec, &info, &e[k].st, &err) == WGF_OK, "%s", err.msg);
        /* the model N(0, I) far from the modes: e^(h-1) up to e^25 */
        wgf_batch b;
        random_batch(&b, 500, 2, 1.0, 41);
        ck_assert_msg(e[k].vt->eval(e[k].st, &b, &F[k], NULL, NULL, &err) == WGF_OK, "tol %s: %s",
                      k ? "1e-18" : "default", err.msg);
        wgf_batch_free(&b);
        energy_close(&e[k]);
    }
    ck_assert_msg(fabs(F[0] - F[1]) <= 1e-9 * fabs(F[0]), "F %.15g and %.15g", F[0], F[1]);
}
END_TEST

static Suite *generative_suite(void)
{
    Suite *s = suite_create("generative");
    TCase *tc = tcase_create("samples");
    tcase_add_test(tc, read_rows);
    tcase_add_test(tc, read_errors);
    tcase_add_test(tc, generators_shapes);
    tcase_add_test(tc, gmm_moments);
    tcase_add_test(tc, target_sets);
    tcase_add_test(tc, target_errors);
    tcase_add_test(tc, target_section_same_samples);
    suite_add_tcase(s, tc);
    tc = tcase_create("mmd");
    tcase_add_test(tc, mmd_brute_force);
    tcase_add_test(tc, mmd_median);
    tcase_add_test(tc, mmd_witness_fd);
    tcase_add_test(tc, mmd_threads);
    tcase_add_test(tc, mmd_stiffness);
    tcase_add_test(tc, mmd_sign);
    suite_add_tcase(s, tc);
    tc = tcase_create("fdiv");
    tcase_add_test(tc, fdiv_kl_gaussians);
    tcase_add_test(tc, fdiv_rounding_floor);
    suite_add_tcase(s, tc);
    tc = tcase_create("reference");
    tcase_add_test(tc, ref_target_closed_forms);
    tcase_add_test(tc, ref_target_refuses);
    suite_add_tcase(s, tc);
    tc = tcase_create("experiment");
    tcase_add_test(tc, moons_short);
    tcase_add_test(tc, moons_short_jko);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(generative_suite());
}
