/* test_genwgp.c: the GenWGP scheme (doc/math.md 5.3).
 *
 * The loss and its gradient are reached directly: this file includes the plugin's source, so
 * its static functions are in reach; everything else goes through the problem built from an
 * experiment, as a run would. */
#include <float.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "../plugins/schemes/genwgp.c"

/* A problem from an experiment's text (free it). */
static wgf_problem *make_problem(const char *ini, const char *const *sets, size_t nsets)
{
    char *path = test_write_ini(ini);
    wgf_run_opts opts = {.file = path, .sets = sets, .nsets = nsets};
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_problem *p = NULL;
    wgf_error err = {0};
    int rc = wgf_problem_create(&p, &opts, &diag, &err);
    if (diag.n)
        wgf_diag_print(&diag, stderr, "diag: ");
    ck_assert_msg(rc == WGF_OK, "problem: %s", err.msg);
    wgf_diag_free(&diag);
    unlink(path);
    free(path);
    return p;
}

/* 2-D, three stages of one planar layer each, 64 fixed samples: small enough for central
 * differences in all 15 parameters. */
#define SMALL_RUN "[run]\ndim = 2\nsamples = 64\nseed = 3\n"
#define SMALL_MAP "[map]\nplugin = planar\nlayers = 3\nblock = 1\ninvertibility = check\n" \
                  "[scheme]\nplugin = genwgp\n[output]\nplots = false\n"

static const char fpe_ini[] = SMALL_RUN "[initial]\ntype = gaussian\n"
                                        "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1 -0.5\n"
                                        "sigma = full 0.8 0.2 0.2 0.5\ndiffusion = 0.7\n" SMALL_MAP;
static const char pme_ini[] = SMALL_RUN "[initial]\ntype = gaussian\ncov = 0.5\n"
                                        "[energy]\nplugin = pme\nm = 2\n" SMALL_MAP;
static const char agg_ini[] = SMALL_RUN "[initial]\ntype = gaussian\nmean = 1.25 1.25\ncov = 0.36\n"
                                        "[energy]\nplugin = aggregation\nkernel = quartic\n" SMALL_MAP;

/* A generic admissible theta: per layer [u (2), w (2), b], sigma = u . w > -1, every layer
 * moving the samples (D_k != 0). */
static const double theta3[15] = {0.4,  -0.3, 0.8,  0.5,  0.2,   /* layer 1 */
                                  -0.2, 0.5,  0.3,  -0.6, -0.1,  /* layer 2 */
                                  0.3,  0.25, -0.4, 0.7,  0.15}; /* layer 3 */

static double loss_at(gw_loss *c, const double *theta)
{
    wgf_error err = {0};
    ck_assert_msg(gw_loss_eval(c, theta, NULL, &err) == WGF_OK, "%s", err.msg);
    return c->loss;
}

/* The gradient against central differences in every parameter, for one energy and action. */
static void gradient_case(const char *ini, int action, double mu_s, double mu_eq)
{
    wgf_problem *p = make_problem(ini, NULL, 0);
    genwgp gw = {.action = action, .t_end = 0.6, .mu_s = mu_s, .mu_eq = mu_eq};
    gw_loss c;
    wgf_error err = {0};
    ck_assert_msg(gw_loss_init(&c, p, &gw, 64, &err) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(c.S, 3);
    ck_assert_uint_eq(c.P, 15);
    ck_assert(wgf_eval_draw(c.ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    double grad[15], th[15], gmax = 0;
    ck_assert_msg(gw_loss_eval(&c, theta3, grad, &err) == WGF_OK, "%s", err.msg);
    /* every term is present, so each one's derivative is checked */
    ck_assert_msg(c.action != 0 && (mu_s == 0 || c.speed > 1e-4) && (mu_eq == 0 || c.equil > 1e-4),
                  "terms %g %g %g", c.action, c.speed, c.equil);
    for (size_t j = 0; j < 15; j++)
        gmax = fmax(gmax, fabs(grad[j]));
    ck_assert_msg(gmax > 1e-3, "gradient %g: the test would not see a wrong one", gmax);
    for (size_t j = 0; j < 15; j++) {
        const double h = 1e-5;
        memcpy(th, theta3, sizeof th);
        th[j] += h;
        double lp = loss_at(&c, th);
        th[j] -= 2 * h;
        double lm = loss_at(&c, th);
        double fd = (lp - lm) / (2 * h);
        ck_assert_msg(fabs(fd - grad[j]) <= 1e-6 * fmax(1.0, gmax),
                      "action %d, parameter %zu: gradient %.12g, central differences %.12g", action, j,
                      grad[j], fd);
    }
    gw_loss_free(&c);
    wgf_problem_free(p);
}

START_TEST(test_gradient_fpe)
{
    gradient_case(fpe_ini, GW_GEOMETRIC, 0.7, 0.3);
    gradient_case(fpe_ini, GW_FINITE_HORIZON, 0.7, 0.3);
}
END_TEST

START_TEST(test_gradient_pme)
{
    gradient_case(pme_ini, GW_GEOMETRIC, 0.7, 0.3);
    gradient_case(pme_ini, GW_FINITE_HORIZON, 0.7, 0.3);
}
END_TEST

START_TEST(test_gradient_aggregation)
{
    gradient_case(agg_ini, GW_GEOMETRIC, 0.7, 0.3);
    gradient_case(agg_ini, GW_FINITE_HORIZON, 0.7, 0.3);
}
END_TEST

/* The terms in closed form on the same batch: the geometric action from |D_k|, |g_k| and
 * <D_k, g_{k-1}> computed here from the stages' x and the energy's g; the finite-horizon action;
 * the penalties; and the trapezoid times. A term with a wrong factor or a wrong stage fails. */
START_TEST(test_terms_closed_form)
{
    wgf_problem *p = make_problem(fpe_ini, NULL, 0);
    const double mu_s = 0.7, mu_eq = 0.3, t_end = 0.6;
    genwgp geo = {.action = GW_GEOMETRIC, .t_end = t_end, .mu_s = mu_s, .mu_eq = mu_eq};
    genwgp fh = geo;
    fh.action = GW_FINITE_HORIZON;
    gw_loss c;
    wgf_error err = {0};
    ck_assert(gw_loss_init(&c, p, &geo, 64, &err) == WGF_OK);
    ck_assert(wgf_eval_draw(c.ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    ck_assert(gw_loss_eval(&c, theta3, NULL, &err) == WGF_OK);
    double L_geo = c.loss, A_geo = c.action, speed = c.speed, equil = c.equil;
    double t[4];
    gw_times(&c, t);
    c.gw = &fh;
    ck_assert(gw_loss_eval(&c, theta3, NULL, &err) == WGF_OK);
    double A_fh = c.action;

    /* from scratch: g_k by the fpe formula w (Sigma^-1 (x - mu) + D s) */
    const double mu[2] = {1, -0.5}, Si[4] = {0.5 / 0.36, -0.2 / 0.36, -0.2 / 0.36, 0.8 / 0.36}, D = 0.7;
    size_t N = 64;
    double Dn[4] = {0}, gn[4] = {0}, ip[4] = {0}, rr[4] = {0}, tau = t_end / 3;
    for (size_t k = 0; k <= 3; k++) {
        const wgf_batch *b = wgf_eval_batch(c.ev, k), *b0 = k ? wgf_eval_batch(c.ev, k - 1) : NULL;
        const double *x0 = b0 ? b0->x : NULL, *s0 = b0 ? b0->s : NULL;
        for (size_t n = 0; n < N; n++) {
            double g[2], gp[2] = {0, 0};
            for (int i = 0; i < 2; i++) {
                g[i] = Si[2 * i] * (b->x[2 * n] - mu[0]) + Si[2 * i + 1] * (b->x[2 * n + 1] - mu[1]) +
                       D * b->s[2 * n + i];
                if (b0)
                    gp[i] = Si[2 * i] * (x0[2 * n] - mu[0]) + Si[2 * i + 1] * (x0[2 * n + 1] - mu[1]) +
                            D * s0[2 * n + i];
            }
            gn[k] += (g[0] * g[0] + g[1] * g[1]) / (double)N;
            if (!b0)
                continue;
            for (int i = 0; i < 2; i++) {
                double Dk = b->x[2 * n + i] - x0[2 * n + i];
                Dn[k] += Dk * Dk / (double)N;
                ip[k] += Dk * gp[i] / (double)N;
                rr[k] += (Dk + tau * gp[i]) * (Dk + tau * gp[i]) / (double)N;
            }
        }
    }
    double a_geo = 0, a_fh = 0, m = 0, Q = 0, tk = 0;
    for (size_t k = 1; k <= 3; k++) {
        a_geo += sqrt(Dn[k]) * sqrt(gn[k - 1]) + ip[k];
        a_fh += rr[k] / (4 * tau);
        m += sqrt(Dn[k]) / 3;
    }
    for (size_t k = 1; k <= 3; k++) {
        Q += (sqrt(Dn[k]) - m) * (sqrt(Dn[k]) - m);
        tk += sqrt(Dn[k]) * (1 / sqrt(gn[k - 1]) + 1 / sqrt(gn[k])) / 2;
        ck_assert_close(t[k], tk, 1e-12);
    }
    ck_assert_close(A_geo, a_geo, 1e-12);
    ck_assert_close(A_fh, a_fh, 1e-12);
    ck_assert_close(speed, mu_s * Q / (m * m), 1e-12);
    ck_assert_close(equil, mu_eq * gn[3], 1e-12);
    ck_assert_close(L_geo, a_geo + mu_s * Q / (m * m) + mu_eq * gn[3], 1e-12);
    /* the geometric action is >= 0 (Cauchy-Schwarz) and here not zero */
    ck_assert_msg(A_geo > 1e-3, "geometric action %g", A_geo);
    gw_loss_free(&c);
    wgf_problem_free(p);
}
END_TEST

/* At the identity every D_k = 0: the loss is mu_eq |g_0|^2 and its gradient (subgradient 0 for
 * |D_k|, no speed penalty) is finite and moves the stages down the gradient. */
START_TEST(test_identity_start)
{
    wgf_problem *p = make_problem(fpe_ini, NULL, 0);
    genwgp gw = {.action = GW_GEOMETRIC, .t_end = 1, .mu_s = 1, .mu_eq = 0.5};
    gw_loss c;
    wgf_error err = {0};
    ck_assert(gw_loss_init(&c, p, &gw, 64, &err) == WGF_OK);
    ck_assert(wgf_eval_draw(c.ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    double grad[15], theta[15] = {0};
    for (size_t j = 0; j < 3; j++) {
        theta[5 * j + 2] = 0.1 * (double)(j + 1);
        theta[5 * j + 3] = -0.05;
    }
    ck_assert_msg(gw_loss_eval(&c, theta, grad, &err) == WGF_OK, "%s", err.msg);
    ck_assert_close(c.action, 0, 0);
    ck_assert_close(c.speed, 0, 0);
    ck_assert_close(c.equil, 0.5 * c.gn[0] * c.gn[0], 1e-14);
    double gg = 0;
    for (size_t j = 0; j < 15; j++) {
        ck_assert(isfinite(grad[j]));
        gg += grad[j] * grad[j];
    }
    ck_assert_msg(gg > 0, "no gradient at the identity");
    gw_loss_free(&c);
    wgf_problem_free(p);
}
END_TEST

/* doc/math.md 5.3: for a stage of one planar layer, <D_k, s^(k-1)> = -E[h'(a_k) sigma_k]
 * (integration by parts with the exact score of rho_{k-1}). Both sides are estimates of the same
 * expectation: on 2e5 samples they agree within 5 standard errors of their difference, and each
 * is far from zero, so a wrong score, a wrong stage or a wrong sign fails. */
START_TEST(test_score_identity)
{
    const size_t N = 200000;
    char nset[64];
    snprintf(nset, sizeof nset, "run.samples=%zu", N);
    const char *sets[] = {nset};
    wgf_problem *p = make_problem(fpe_ini, sets, 1);
    wgf_error err = {0};
    wgf_eval *ev = wgf_eval_create(p, N, WGF_EVAL_STAGES | WGF_EVAL_SCORE, &err);
    ck_assert_msg(ev != NULL, "%s", err.msg);
    ck_assert(wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    ck_assert(wgf_eval_forward(ev, theta3, &err) == WGF_OK);
    for (size_t k = 1; k <= 3; k++) {
        const double *u = theta3 + 5 * (k - 1), *w = u + 2, b = u[4];
        double sigma = u[0] * w[0] + u[1] * w[1];
        const wgf_batch *B = wgf_eval_batch(ev, k), *B0 = wgf_eval_batch(ev, k - 1);
        double lhs = 0, rhs = 0, m2 = 0;
        for (size_t n = 0; n < N; n++) {
            const double *x0 = B0->x + 2 * n, *s0 = B0->s + 2 * n, *x1 = B->x + 2 * n;
            double l = (x1[0] - x0[0]) * s0[0] + (x1[1] - x0[1]) * s0[1];
            double h = tanh(w[0] * x0[0] + w[1] * x0[1] + b), r = -(1 - h * h) * sigma;
            lhs += l / (double)N;
            rhs += r / (double)N;
            m2 += (l - r) * (l - r) / (double)N;
        }
        double se = sqrt(m2 / (double)N);
        ck_assert_msg(fabs(lhs - rhs) < 5 * se && fabs(rhs) > 20 * se,
                      "stage %zu: <D_k, s^(k-1)> = %.6g, -E[h' sigma] = %.6g, standard error %.3g", k, lhs,
                      rhs, se);
    }
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("genwgp");
    TCase *tc = tcase_create("loss");
    tcase_add_test(tc, test_gradient_fpe);
    tcase_add_test(tc, test_gradient_pme);
    tcase_add_test(tc, test_gradient_aggregation);
    tcase_add_test(tc, test_terms_closed_form);
    tcase_add_test(tc, test_identity_start);
    tcase_add_test(tc, test_score_identity);
    suite_add_tcase(s, tc);
    return test_main(s);
}
