/* test_runs.c: whole runs against the closed-form Ornstein-Uhlenbeck solution,
 * reproducibility across thread counts, and the run's files. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char *temp_dir(void) { return test_temp_dir("run"); }

static int run(const char *ini_text, const char *outdir, const char *const *sets, size_t nsets,
               int threads, wgf_run_result *res, wgf_error *err)
{
    char *path = test_write_ini(ini_text);
    wgf_run_opts opts = {.file = path, .outdir = outdir, .sets = sets, .nsets = nsets,
                         .threads = threads, .quiet = 1};
    wgf_diag diag;
    wgf_diag_init(&diag);
    int rc = wgf_run(&opts, res, &diag, err);
    if (diag.n)
        wgf_diag_print(&diag, stderr, "diag: ");
    wgf_diag_free(&diag);
    unlink(path);
    free(path);
    return rc;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    ck_assert(fread(s, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    return s;
}

/* 2-D OU: mu = (1, -1), Sigma = [[1, 0.3], [0.3, 0.5]], D = 0.5, from
 * N(0, I) to t = 1. The affine map is exact in this family, so what remains
 * is the Euler error O(h) and the sampling error of the training batch:
 * N = 4000 fixed samples give a mean error of order sqrt(tr C / N) ~ 0.02
 * and a covariance error of the same order; 0.08 is four standard errors. */
static const char ou2_ini[] =
    "[run]\ndim = 2\nsamples = 4000\nseed = 3\n"
    "[initial]\ntype = gaussian\n"
    "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1 -1\nsigma = full 1 0.3 0.3 0.5\n"
    "diffusion = 0.5\n"
    "[map]\nplugin = affine\n"
    "[metric]\nplugin = lagrangian\ntol = 1e-10\nmaxiter = 100\n"
    "[scheme]\nplugin = euler\nstep = 0.01\nt_end = 1\nsamples = fixed\n"
    "[output]\nevery = 50\nsamples = 2000\nplots = false\n"
    "[reference]\ntype = ou\n";

START_TEST(test_affine_ou)
{
    char *dir = temp_dir();
    wgf_run_result res;
    wgf_error err = {0};
    ck_assert_msg(run(ou2_ini, dir, NULL, 0, 0, &res, &err) == WGF_OK, "%s", err.msg);
    ck_assert_int_eq(res.steps, 100);
    ck_assert_close(res.t, 1.0, 1e-12);
    /* initial errors are |mu - 0| ~ 1.4 for the mean: the run must have moved */
    ck_assert_msg(res.err_mean < 0.08, "mean error %g", res.err_mean);
    ck_assert_msg(res.err_cov < 0.08, "cov error %g", res.err_cov);
    ck_assert_msg(res.err_w2 < 0.1, "W2 %g", res.err_w2);
    test_remove_tree(dir);
    free(dir);
}
END_TEST

/* The same problem with a planar flow (8 layers, Tikhonov 1e-3 on G-hat).
 * Planar flows are not exact for Gaussians and the batch is fresh every
 * step; the bound is looser (0.05; runs give ~0.005) but far below the
 * initial errors (1.4 and 0.6), and far below what a wrong sign or a
 * dropped term in any derivative gives (O(1), or a blow-up). */
START_TEST(test_planar_ou)
{
    char *dir = temp_dir();
    const char *sets[] = {"map.plugin=planar", "map.layers=8", "run.samples=1000",
                          "scheme.samples=fresh", "scheme.t_end=0.5", "metric.tikhonov=1e-3"};
    wgf_run_result res;
    wgf_error err = {0};
    ck_assert_msg(run(ou2_ini, dir, sets, 6, 0, &res, &err) == WGF_OK, "%s", err.msg);
    ck_assert_int_eq(res.steps, 50);
    ck_assert_msg(res.err_mean < 0.05, "mean error %g", res.err_mean);
    ck_assert_msg(res.err_cov < 0.05, "cov error %g", res.err_cov);
    test_remove_tree(dir);
    free(dir);
}
END_TEST

/* Drop the wall_s column (the only one allowed to differ). */
static void strip_wall(char *csv)
{
    char *out = csv;
    for (char *line = csv; *line;) {
        char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) + 1 : strlen(line);
        int col = 0;
        for (size_t i = 0; i < len; i++) {
            if (line[i] == ',')
                col++;
            if (col == 8 && line[i] != ',' && line[i] != '\n')
                continue; /* wall_s is the 9th column */
            *out++ = line[i];
        }
        line += len;
    }
    *out = '\0';
}

START_TEST(test_threads_same_history)
{
    const char *sets[] = {"map.plugin=planar", "map.layers=3", "run.samples=700", "scheme.t_end=0.1",
                          "scheme.samples=fresh"};
    char *d1 = temp_dir(), *d2 = temp_dir();
    wgf_run_result r1, r2;
    wgf_error err = {0};
    ck_assert_msg(run(ou2_ini, d1, sets, 5, 1, &r1, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(run(ou2_ini, d2, sets, 5, 2, &r2, &err) == WGF_OK, "%s", err.msg);
    char p1[4200], p2[4200];
    snprintf(p1, sizeof p1, "%s/history.csv", d1);
    snprintf(p2, sizeof p2, "%s/history.csv", d2);
    char *h1 = slurp(p1), *h2 = slurp(p2);
    strip_wall(h1);
    strip_wall(h2);
    ck_assert_str_eq(h1, h2);
    ck_assert(strchr(h1, '\n') && strlen(h1) > 100);
    snprintf(p1, sizeof p1, "%s/samples/step-000010.csv", d1);
    snprintf(p2, sizeof p2, "%s/samples/step-000010.csv", d2);
    char *s1 = slurp(p1), *s2 = slurp(p2);
    ck_assert_str_eq(s1, s2);
    free(h1);
    free(h2);
    free(s1);
    free(s2);
    test_remove_tree(d1);
    free(d1);
    test_remove_tree(d2);
    free(d2);
}
END_TEST

/* The outputs a run promises, and the resolved configuration re-runs to the
 * same result. */
START_TEST(test_outputs)
{
    char *dir = temp_dir();
    const char *sets[] = {"scheme.t_end=0.2"};
    wgf_run_result res;
    wgf_error err = {0};
    ck_assert_msg(run(ou2_ini, dir, sets, 1, 0, &res, &err) == WGF_OK, "%s", err.msg);
    char path[4200];
    const char *files[] = {"config.ini", "history.csv", "summary.ini", "samples/step-000000.csv",
                           "samples/step-000020.csv", "theta/step-000020.bin"};
    struct stat st;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        ck_assert_msg(stat(path, &st) == 0 && st.st_size > 0, "missing %s", files[i]);
    }
    snprintf(path, sizeof path, "%s/theta/step-000020.bin", dir);
    stat(path, &st);
    ck_assert_int_eq(st.st_size, 6 * sizeof(double)); /* affine 2-D: P = 4 + 2 */
    snprintf(path, sizeof path, "%s/summary.ini", dir);
    char *sum = slurp(path);
    ck_assert(strstr(sum, "steps = 20\n") != NULL);
    ck_assert(strstr(sum, "[error]") != NULL);
    free(sum);
    /* re-run the resolved configuration */
    snprintf(path, sizeof path, "%s/config.ini", dir);
    char *cfg = slurp(path);
    char *dir2 = temp_dir();
    wgf_run_result res2;
    ck_assert_msg(run(cfg, dir2, NULL, 0, 0, &res2, &err) == WGF_OK, "%s", err.msg);
    ck_assert(memcmp(&res.err_mean, &res2.err_mean, sizeof(double)) == 0);
    ck_assert(memcmp(&res.energy, &res2.energy, sizeof(double)) == 0);
    free(cfg);
    test_remove_tree(dir);
    free(dir);
    test_remove_tree(dir2);
    free(dir2);
}
END_TEST

/* A planar flow forced through a huge step breaks invertibility: with
 * invertibility = check the run stops with a numerical failure naming the
 * layer, and what was computed so far is on disk. */
START_TEST(test_numerical_failure)
{
    char *dir = temp_dir();
    const char *sets[] = {"map.plugin=planar", "map.layers=2", "map.invertibility=check",
                          "scheme.step=50", "scheme.t_end=500", "run.samples=300"};
    wgf_run_result res;
    wgf_error err = {0};
    int rc = run(ou2_ini, dir, sets, 6, 0, &res, &err);
    ck_assert_msg(rc == WGF_ENUMERIC, "rc %d: %s", rc, err.msg);
    ck_assert_msg(strstr(err.msg, "layer") != NULL, "message: %s", err.msg);
    char path[4200];
    snprintf(path, sizeof path, "%s/history.csv", dir);
    char *h = slurp(path);
    ck_assert(strncmp(h, "step,t,energy", 13) == 0);
    free(h);
    test_remove_tree(dir);
    free(dir);
}
END_TEST

/* The particle reference against the affine OU run, which is exact up to
 * O(h) and the training batch: 4000 Euler-Maruyama particles (dt = 1e-3)
 * have a mean within sqrt(tr C / 4000) ~ 0.02 of the law's, so 0.1 (five
 * standard errors) bounds mean_err; a drift of the wrong sign or size puts
 * the particles O(1) away by t = 1. */
START_TEST(test_particles_reference)
{
    char *dir = temp_dir();
    const char *sets[] = {"reference.type=particles", "reference.particles=4000", "output.every=100"};
    wgf_run_result res;
    wgf_error err = {0};
    ck_assert_msg(run(ou2_ini, dir, sets, 3, 0, &res, &err) == WGF_OK, "%s", err.msg);
    double mean_err = NAN, sw2 = NAN;
    for (size_t i = 0; i < res.nfigures; i++) {
        if (strcmp(res.figures[i].name, "mean_err") == 0)
            mean_err = res.figures[i].value;
        if (strcmp(res.figures[i].name, "sw2") == 0)
            sw2 = res.figures[i].value;
    }
    ck_assert_msg(mean_err < 0.1, "mean_err %g", mean_err);
    ck_assert_msg(sw2 < 0.1, "sw2 %g", sw2);
    test_remove_tree(dir);
    free(dir);
}
END_TEST

static Suite *runs_suite(void)
{
    Suite *s = suite_create("runs");
    TCase *tc = tcase_create("runs");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_affine_ou);
    tcase_add_test(tc, test_planar_ou);
    tcase_add_test(tc, test_threads_same_history);
    tcase_add_test(tc, test_outputs);
    tcase_add_test(tc, test_numerical_failure);
    tcase_add_test(tc, test_particles_reference);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_main(runs_suite()); }
