/* test_adaptive.c: the adaptive scheme (Heun with an embedded Euler error estimate in the metric
 * norm, step control) against a fixed-step Heun reference, on a stiff quadratic, and its stops.
 *
 * The scheme is driven directly: a problem built from an experiment, the scheme's plugin created
 * from the same file's [scheme] section and run on it, with a monitor that records every row the
 * scheme reports (no files are written). */
#include <float.h>
#include <string.h>

#include "testutil.h"

#define MAXROWS 20000

/* What the scheme reported: t of each row, the step sizes and the rejected tries. */
typedef struct {
    size_t rows;
    double t[MAXROWS];
    unsigned long rejected;
    double hmin, hmax;
} record;

static int watch(void *ctx, wgf_step_info *info, wgf_error *err)
{
    (void)err;
    record *r = ctx;
    if (r->rows > 0) {
        double h = info->t - r->t[r->rows - 1];
        r->hmin = fmin(r->hmin, h);
        r->hmax = fmax(r->hmax, h);
    }
    if (r->rows < MAXROWS)
        r->t[r->rows++] = info->t;
    r->rejected += info->solve.iterations;
    return WGF_OK;
}

/* Run the [scheme] of an experiment on its problem; theta (P) gets the parameters at the end,
 * theta0 (P, when not NULL) the ones at the start, rec (when not NULL) the rows reported.
 * Returns the scheme's status; the problem is returned in *pp when pp is not NULL (free it). */
static int drive(const char *ini, const char *const *sets, size_t nsets, double *theta0, double *theta,
                 size_t P, record *rec, wgf_problem **pp, wgf_error *err)
{
    wgf_problem *p = test_make_problem(ini, sets, nsets);
    ck_assert_uint_eq(wgf_problem_nparams(p), P);
    if (rec) {
        memset(rec, 0, sizeof *rec);
        rec->hmin = INFINITY;
        ck_assert(wgf_problem_monitor_add(p, watch, rec, NULL, err) == WGF_OK);
    }
    if (theta0)
        memcpy(theta0, wgf_problem_theta(p), P * sizeof(double));
    int rc = test_run_scheme(ini, sets, nsets, p, err);
    memcpy(theta, wgf_problem_theta(p), P * sizeof(double));
    if (pp)
        *pp = p;
    else
        wgf_problem_free(p);
    return rc;
}

/* Fixed-step Heun from theta (P, in place) to t = steps h on the fixed training batch (step 0). */
static void heun_reference(wgf_problem *p, double *theta, size_t P, double h, unsigned long steps)
{
    wgf_error err = {0};
    size_t N = wgf_problem_get_info(p)->samples;
    wgf_eval *ev = wgf_eval_create(p, N, 0, &err);
    double *w = calloc(4 * P, sizeof *w);
    ck_assert(ev && w);
    double *grad = w, *k1 = w + P, *k2 = w + 2 * P, *pred = w + 3 * P, F;
    wgf_solve_stats st;
    ck_assert(wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    for (unsigned long k = 0; k < steps; k++) {
        ck_assert(wgf_eval_forward(ev, theta, &err) == WGF_OK);
        ck_assert(wgf_problem_energy(p, ev, &F, grad, &err) == WGF_OK);
        ck_assert(wgf_problem_natgrad(p, ev, grad, k1, &st, &err) == WGF_OK);
        for (size_t j = 0; j < P; j++)
            pred[j] = theta[j] - h * k1[j];
        ck_assert(wgf_eval_forward(ev, pred, &err) == WGF_OK);
        ck_assert(wgf_problem_energy(p, ev, &F, grad, &err) == WGF_OK);
        ck_assert(wgf_problem_natgrad(p, ev, grad, k2, &st, &err) == WGF_OK);
        for (size_t j = 0; j < P; j++)
            theta[j] -= 0.5 * h * (k1[j] + k2[j]);
    }
    free(w);
    wgf_eval_free(ev);
}

static double dist(const double *a, const double *b, size_t P)
{
    double s = 0;
    for (size_t j = 0; j < P; j++)
        s += (a[j] - b[j]) * (a[j] - b[j]);
    return sqrt(s);
}

/* ------------------------------------------------------------ accuracy against tol */

/* 2-D OU, affine map, fixed samples: the flow in theta is a smooth ODE. */
static const char ou2_ini[] = "[run]\ndim = 2\nsamples = 400\nseed = 5\n"
                              "[initial]\ntype = gaussian\n"
                              "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1 -0.5\n"
                              "sigma = full 1 0.3 0.3 0.5\ndiffusion = 0.8\n"
                              "[map]\nplugin = affine\n"
                              "[metric]\nplugin = lagrangian\ntikhonov = 0\ntol = 1e-12\n"
                              "[scheme]\nplugin = adaptive\nstep = 0.1\nt_end = 1\nsamples = fixed\n"
                              "[output]\nplots = false\n";

/* The final parameters approach the reference as tol decreases: the error falls monotonically over
 * three tolerances, stays within a multiple of tol, and the step count grows. */
START_TEST(test_error_follows_tol)
{
    const size_t P = 6;
    const double tols[3] = {1e-2, 1e-3, 1e-4};
    double theta0[6], theta[6], ref[6], e[3];
    size_t rows[3];
    static record rec;
    wgf_problem *p = NULL;
    wgf_error err = {0};
    for (int i = 0; i < 3; i++) {
        char set[64];
        snprintf(set, sizeof set, "scheme.tol=%g", tols[i]);
        const char *sets[] = {set};
        ck_assert_msg(drive(ou2_ini, sets, 1, theta0, theta, P, &rec, i == 0 ? &p : NULL, &err) == WGF_OK,
                      "%s", err.msg);
        if (i == 0) {
            memcpy(ref, theta0, sizeof ref);
            heun_reference(p, ref, P, 1e-3, 1000);
            wgf_problem_free(p);
        }
        e[i] = dist(theta, ref, P);
        rows[i] = rec.rows;
        /* the last row is at t_end exactly */
        ck_assert_msg(rec.t[rec.rows - 1] == 1.0, "last row at t = %.17g", rec.t[rec.rows - 1]);
        fprintf(stderr, "tol %g: %zu rows, %lu rejected, |theta - ref| = %.3g\n", tols[i], rows[i],
                rec.rejected, e[i]);
        ck_assert_msg(e[i] < 10 * tols[i], "tol %g: error %g", tols[i], e[i]);
    }
    ck_assert_msg(e[0] > e[1] && e[1] > e[2], "errors %g %g %g", e[0], e[1], e[2]);
    ck_assert_msg(rows[0] < rows[1] && rows[1] < rows[2], "rows %zu %zu %zu", rows[0], rows[1], rows[2]);
}
END_TEST

/* every_t: rows land on every multiple of it exactly. */
START_TEST(test_output_times_exact)
{
    double theta[6];
    static record rec;
    wgf_error err = {0};
    const char *sets[] = {"scheme.every_t=0.25", "scheme.step=0.07"};
    ck_assert_msg(drive(ou2_ini, sets, 2, NULL, theta, 6, &rec, NULL, &err) == WGF_OK, "%s", err.msg);
    for (int j = 1; j <= 4; j++) {
        int found = 0;
        for (size_t r = 0; r < rec.rows; r++)
            found |= rec.t[r] == 0.25 * j;
        ck_assert_msg(found, "no row at t = %g", 0.25 * j);
    }
    for (size_t r = 1; r < rec.rows; r++)
        ck_assert(rec.t[r] > rec.t[r - 1]);
    fprintf(stderr, "every_t 0.25: %zu rows, %lu rejected, steps in [%g, %g]\n", rec.rows, rec.rejected,
            rec.hmin, rec.hmax);
    /* no sliver of a step before an output time: the steps that get there are at least half
     * of the one before (accepted steps do not shrink by more than safety otherwise) */
    for (size_t r = 2; r + 1 < rec.rows; r++) {
        double h = rec.t[r + 1] - rec.t[r], h0 = rec.t[r] - rec.t[r - 1];
        ck_assert_msg(h >= 0.45 * h0, "step %g at t = %g after %g", h, rec.t[r], h0);
    }
}
END_TEST

/* ------------------------------------------------------------ stiff: euler diverges, adaptive not */

/* 2-D OU with Sigma = diag(1, 1/90): lambda_max = 90. The first step 0.05 has h lambda = 4.5:
 * euler at it diverges. The adaptive scheme rejects it and keeps its steps near Heun's stability
 * limit 2 / 90 (on average below it), reaching the equilibrium N(mu, D Sigma). */
static const char stiff_ini[] = "[run]\ndim = 2\nsamples = 2000\nseed = 11\n"
                                "[initial]\ntype = gaussian\n"
                                "[energy]\nplugin = fpe\npotential = quadratic\nmu = 0.5 1\n"
                                "sigma = full 1 0 0 0.011111111111111112\ndiffusion = 1\n"
                                "[map]\nplugin = affine\n"
                                "[metric]\nplugin = lagrangian\ntikhonov = 0\ntol = 1e-10\n"
                                "[scheme]\nplugin = adaptive\nstep = 0.05\nt_end = 6\nsamples = fixed\n"
                                "[output]\nplots = false\n";

START_TEST(test_stiff)
{
    double theta[6];
    static record rec;
    wgf_error err = {0};
    wgf_problem *p = NULL;
    const char *euler[] = {"scheme.plugin=euler"};
    int rc = drive(stiff_ini, euler, 1, NULL, theta, 6, NULL, &p, &err);
    double F = NAN;
    if (rc == WGF_OK) {
        wgf_eval *ev = wgf_eval_create(p, 2000, 0, &err);
        ck_assert(ev && wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
        if (wgf_eval_forward(ev, theta, &err) == WGF_OK && wgf_problem_energy(p, ev, &F, NULL, &err) != WGF_OK)
            F = INFINITY;
        wgf_eval_free(ev);
    }
    wgf_problem_free(p);
    ck_assert_msg(rc == WGF_ENUMERIC || !(F < 1e6), "euler at h lambda = 4.5: rc %d, energy %g", rc, F);

    ck_assert_msg(drive(stiff_ini, NULL, 0, NULL, theta, 6, &rec, NULL, &err) == WGF_OK, "%s", err.msg);
    fprintf(stderr, "stiff: %zu rows, %lu rejected, steps in [%g, %g]\n", rec.rows, rec.rejected, rec.hmin,
            rec.hmax);
    ck_assert_msg(rec.rejected >= 1, "the first step h lambda = 4.5 was accepted");
    /* steps at the stability limit on average, none far beyond it (the last one is cut short) */
    ck_assert_msg(6.0 / (double)(rec.rows - 1) < 2.0 / 90, "mean step %g", 6.0 / (double)(rec.rows - 1));
    ck_assert_msg(rec.hmax < 3.0 / 90, "largest step %g", rec.hmax);
    /* small steps where needed: the fast initial transient of the stiff component */
    ck_assert_msg(rec.t[1] < 0.1 * rec.hmax, "first step %g, largest %g", rec.t[1], rec.hmax);
    ck_assert_msg(rec.t[rec.rows - 1] == 6.0, "last row at t = %.17g", rec.t[rec.rows - 1]);
    const double *A = theta, *b = theta + 4;
    double C[4] = {A[0] * A[0] + A[1] * A[1], A[0] * A[2] + A[1] * A[3], 0, A[2] * A[2] + A[3] * A[3]};
    ck_assert_msg(fabs(b[0] - 0.5) < 0.05 && fabs(b[1] - 1) < 0.01, "mean (%g, %g)", b[0], b[1]);
    ck_assert_msg(fabs(C[0] - 1) < 0.05 && fabs(C[3] - 1.0 / 90) < 0.002 && fabs(C[1]) < 0.02,
                  "cov (%g, %g, %g)", C[0], C[1], C[3]);
}
END_TEST

/* A step below step_min stops the run as a numerical failure naming the time. */
START_TEST(test_step_min)
{
    double theta[6];
    wgf_error err = {0};
    const char *sets[] = {"scheme.step_min=0.04"};
    ck_assert_int_eq(drive(stiff_ini, sets, 1, NULL, theta, 6, NULL, NULL, &err), WGF_ENUMERIC);
    ck_assert_msg(strstr(err.msg, "adaptive: step ") == err.msg, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "below step_min = 0.04 at t = 0 ") != NULL, "%s", err.msg);
}
END_TEST

static Suite *adaptive_suite(void)
{
    Suite *s = suite_create("adaptive");
    TCase *tc = tcase_create("adaptive");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_error_follows_tol);
    tcase_add_test(tc, test_output_times_exact);
    tcase_add_test(tc, test_stiff);
    tcase_add_test(tc, test_step_min);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_main(adaptive_suite()); }
