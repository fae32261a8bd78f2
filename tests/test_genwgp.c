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
/* the stage rule of the gradient cases (GW_EXPLICIT_RULE unless a test sets it) */
static int gradient_rule = GW_EXPLICIT_RULE;

static void gradient_case(const char *ini, int action, double mu_s, double mu_eq, double mu_f)
{
    wgf_problem *p = test_make_problem(ini, NULL, 0);
    genwgp gw = {.action = action, .t_end = 0.6, .mu_s = mu_s, .mu_eq = mu_eq, .mu_f = mu_f,
                 .rule = gradient_rule};
    gw_loss c;
    wgf_error err = {0};
    ck_assert_msg(gw_loss_init(&c, p, &gw, 64, &err) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(c.S, 3);
    ck_assert_uint_eq(c.P, 15);
    ck_assert(wgf_eval_draw(c.ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    double grad[15], th[15], gmax = 0;
    ck_assert_msg(gw_loss_eval(&c, theta3, grad, &err) == WGF_OK, "%s", err.msg);
    /* every term is present, so each one's derivative is checked */
    ck_assert_msg(c.action != 0 && (mu_s == 0 || c.speed > 1e-4) && (mu_eq == 0 || c.equil > 1e-4) &&
                      (mu_f == 0 || fabs(c.equil - mu_eq * c.gn[3] * c.gn[3]) > 1e-3),
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
    gradient_case(fpe_ini, GW_GEOMETRIC, 0.7, 0.3, 0);
    gradient_case(fpe_ini, GW_FINITE_HORIZON, 0.7, 0.3, 0);
}
END_TEST

START_TEST(test_gradient_trapezoid)
{
    gradient_rule = GW_TRAPEZOID_RULE;
    gradient_case(fpe_ini, GW_GEOMETRIC, 0.7, 0.3, 0);
    gradient_case(fpe_ini, GW_FINITE_HORIZON, 0.7, 0.3, 0);
    gradient_case(agg_ini, GW_GEOMETRIC, 0.7, 0.3, 0.8);
    gradient_rule = GW_EXPLICIT_RULE;
}
END_TEST

START_TEST(test_gradient_pme)
{
    gradient_case(pme_ini, GW_GEOMETRIC, 0.7, 0.3, 0);
    gradient_case(pme_ini, GW_FINITE_HORIZON, 0.7, 0.3, 0);
}
END_TEST

START_TEST(test_gradient_aggregation)
{
    gradient_case(agg_ini, GW_GEOMETRIC, 0.7, 0.3, 0);
    gradient_case(agg_ini, GW_FINITE_HORIZON, 0.7, 0.3, 0);
    /* the terminal energy: its gradient g_S / N on x^(S) is exact for an interaction energy */
    gradient_case(agg_ini, GW_GEOMETRIC, 0.7, 0.3, 0.8);
    gradient_case(agg_ini, GW_FINITE_HORIZON, 0, 0, 0.8);
}
END_TEST

/* The last path reported (up to 3 stages and their times, |D_k|, |g_k|). */
typedef struct {
    size_t n;
    double t[4], Dn[4], gn[4], energy[4];
} seen_path;

static int record_path(void *ctx, const wgf_path_info *path, wgf_error *err)
{
    (void)err;
    seen_path *s = ctx;
    s->n++;
    for (size_t k = 0; k < path->nstages && k < 4; k++) {
        s->t[k] = path->t[k];
        s->Dn[k] = path->step_norm ? path->step_norm[k] : -1;
        s->gn[k] = path->grad_norm ? path->grad_norm[k] : -1;
        s->energy[k] = path->energy[k];
    }
    return WGF_OK;
}

/* The terms in closed form on the same batch: the geometric action from |D_k|, |g_k| and
 * <D_k, g_{k-1}> computed here from the stages' x and the energy's g; the finite-horizon action;
 * the penalties; the log-mean times; and the path as reported (times, |D_k|, |g_k|). A term
 * with a wrong factor or a wrong stage fails. */
START_TEST(test_terms_closed_form)
{
    wgf_problem *p = test_make_problem(fpe_ini, NULL, 0);
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
    /* the path as reported: its times, |D_k| and |g_k| */
    seen_path seen = {0};
    ck_assert(wgf_problem_path_monitor_add(p, record_path, &seen, NULL, &err) == WGF_OK);
    ck_assert_msg(gw_report_path(&c, 0, theta3, &err) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(seen.n, 1);
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
    ck_assert(isnan(seen.Dn[0]));
    ck_assert_close(seen.gn[0], sqrt(gn[0]), 1e-12);
    for (size_t k = 1; k <= 3; k++) {
        Q += (sqrt(Dn[k]) - m) * (sqrt(Dn[k]) - m);
        /* |D_k| over the logarithmic mean of |g_{k-1}| and |g_k| */
        double g0 = sqrt(gn[k - 1]), g1 = sqrt(gn[k]);
        tk += sqrt(Dn[k]) * log(g0 / g1) / (g0 - g1);
        ck_assert_close(t[k], tk, 1e-12);
        ck_assert_close(seen.t[k], tk, 1e-12);
        ck_assert_close(seen.Dn[k], sqrt(Dn[k]), 1e-12);
        ck_assert_close(seen.gn[k], sqrt(gn[k]), 1e-12);
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
    wgf_problem *p = test_make_problem(fpe_ini, NULL, 0);
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
    wgf_problem *p = test_make_problem(fpe_ini, sets, 1);
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


/* ------------------------------------------------------------ the OU path on the curve */

/* W2 from N(m, C) to the OU curve at t (d = 2). */
static double ou_w2_at(const double *mu, const double *Sigma, const double *m, const double *C, double t)
{
    const double m0[2] = {0, 0}, C0[4] = {1, 0, 0, 1};
    double mt[2], Ct[4], w2;
    wgf_error err = {0};
    ck_assert(wgf_ou_moments(2, mu, Sigma, 1.0, m0, C0, t, mt, Ct, &err) == WGF_OK);
    ck_assert(wgf_w2_gaussian(2, m, C, mt, Ct, &w2, &err) == WGF_OK);
    return w2;
}

/* The curve's nearest point to N(m, C): t* by a log-spaced grid on [0, 50] then golden
 * section in the bracket of the grid's best point; its W2 in *w2. */
static double ou_nearest(const double *mu, const double *Sigma, const double *m, const double *C, double *w2)
{
    enum { G = 400 };
    double ts[G + 1], best = INFINITY;
    size_t ib = 0;
    ts[0] = 0;
    for (size_t i = 1; i <= G; i++)
        ts[i] = 1e-4 * pow(50 / 1e-4, (double)(i - 1) / (G - 1));
    for (size_t i = 0; i <= G; i++) {
        double w = ou_w2_at(mu, Sigma, m, C, ts[i]);
        if (w < best) {
            best = w;
            ib = i;
        }
    }
    double a = ts[ib > 0 ? ib - 1 : 0], b = ts[ib < G ? ib + 1 : G];
    const double r = (sqrt(5.0) - 1) / 2;
    for (int it = 0; it < 60; it++) {
        double c1 = b - r * (b - a), c2 = a + r * (b - a);
        if (ou_w2_at(mu, Sigma, m, C, c1) < ou_w2_at(mu, Sigma, m, C, c2))
            b = c2;
        else
            a = c1;
    }
    double t = (a + b) / 2;
    *w2 = fmin(best, ou_w2_at(mu, Sigma, m, C, t));
    return *w2 < best ? t : ts[ib];
}

/* A short GenWGP run on the 2-D OU (6 stages of 2 planar layers, 400 fixed samples, Adam or
 * L-BFGS): every stage, judged on 20000 fresh samples, lies within W2 0.03 of the exact curve
 * (measured: at most 0.018, of which about 0.01 is the judging samples' own error), the nearest
 * curve times increase, the last stage is the equilibrium N(mu, Sigma) within 0.03, and the
 * recovered times t_k agree with the nearest points' within 0.002 + 3 % for 0 < k < S
 * (measured with the log-mean rule: 0.4 to 1.4 %; the trapezoid rule's were 2 to 5 %). A scheme that did not move the stages
 * (all at t = 0), or spread them off the curve, fails. */
static const char ou2_ini[] = "[run]\ndim = 2\nsamples = 400\nseed = 2\n"
                              "[initial]\ntype = gaussian\n"
                              "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1 1\n"
                              "sigma = full 0.625 -0.375 -0.375 0.625\ndiffusion = 1\n"
                              "[map]\nplugin = planar\nlayers = 12\nblock = 2\ninit_scale = 1\n"
                              "[scheme]\nplugin = genwgp\n[output]\nplots = false\n";

static void ou_path_case(int optimizer, long iterations)
{
    const double mu[2] = {1, 1}, Sigma[4] = {0.625, -0.375, -0.375, 0.625};
    wgf_problem *p = test_make_problem(ou2_ini, NULL, 0);
    genwgp gw = {.action = GW_GEOMETRIC, .t_end = 1, .mu_s = 1, .mu_eq = 0.05, .terminal_end = 1,
                 .optimizer = optimizer,
                 .fixed = 1, .iterations = iterations, .m = 10, .epsilon = 1e-7, .warmup = 100, .lr = 0.02, .lr_end = 0.002, .beta1 = 0.9, .beta2 = 0.999};
    gw_loss c;
    wgf_error err = {0};
    ck_assert(gw_loss_init(&c, p, &gw, 400, &err) == WGF_OK);
    double *theta = wgf_problem_theta(p);
    int rc = optimizer == GW_ADAM ? gw_adam(&gw, &c, theta, 0, &err) : gw_lbfgs_run(&gw, &c, theta, &err);
    ck_assert_msg(rc == WGF_OK, "%s", err.msg);
    double t[7];
    gw_times(&c, t);
    const size_t S = 6, M = 20000;
    wgf_eval *ev = wgf_eval_create(p, M, WGF_EVAL_STAGES, &err);
    ck_assert(ev != NULL);
    ck_assert(wgf_eval_draw(ev, WGF_STREAM_OUTPUT, 0, &err) == WGF_OK);
    ck_assert(wgf_eval_forward(ev, theta, &err) == WGF_OK);
    double tprev = -1;
    for (size_t k = 0; k <= S; k++) {
        double m[2], C[4], w2;
        wgf_moments(M, 2, wgf_eval_batch(ev, k)->x, m, C);
        double ts = ou_nearest(mu, Sigma, m, C, &w2);
        fprintf(stderr, "%s stage %zu: t_k %.4f, nearest t %.4f, W2 to the curve %.4f, at t_k %.4f\n",
                optimizer == GW_ADAM ? "adam" : "lbfgs", k, t[k],
                ts, w2, ou_w2_at(mu, Sigma, m, C, t[k]));
        ck_assert_msg(w2 < 0.03, "stage %zu is %g from the curve", k, w2);
        if (k > 0)
            ck_assert_msg(ts > tprev, "stage %zu: nearest time %g after %g", k, ts, tprev);
        tprev = ts;
        if (k > 0 && k < S)
            ck_assert_msg(fabs(t[k] - ts) < 0.002 + 0.03 * ts, "stage %zu: t_k %g, nearest %g", k, t[k], ts);
        if (k == S) {
            double w2eq;
            ck_assert(wgf_w2_gaussian(2, m, C, mu, Sigma, &w2eq, &err) == WGF_OK);
            ck_assert_msg(w2eq < 0.03, "last stage %g from the equilibrium", w2eq);
        }
    }
    wgf_eval_free(ev);
    gw_loss_free(&c);
    wgf_problem_free(p);
}

START_TEST(test_ou_path_on_curve)
{
    ou_path_case(GW_ADAM, 1500);
    ou_path_case(GW_LBFGS, 400);
}
END_TEST

/* ------------------------------------------------------------ reporting */

typedef struct {
    unsigned long n, last_step;
    double last_t;
    int sums; /* every row's energy = action + speed + equilibrium */
} seen_steps;

static int record_step(void *ctx, wgf_step_info *info, wgf_error *err)
{
    (void)err;
    seen_steps *s = ctx;
    if (s->n > 0 && info->step != s->last_step + 1)
        s->sums = 0;
    s->n++;
    s->last_step = info->step;
    s->last_t = info->t;
    if (info->energy != info->dissipation + info->step_norm + info->solve.residual)
        s->sums = 0;
    return WGF_OK;
}

/* One row of history per iteration with the loss and its terms; the path in path.csv at the
 * output cadence and at the end, the last stage's time there the last row's t. */
static void report_case(const char *const *sets, size_t nsets, unsigned long min_last, unsigned long max_last,
                        size_t npaths)
{
    char *dir = test_temp_dir("genwgp");
    char *path = test_write_ini(ou2_ini);
    seen_steps s = {.sums = 1};
    wgf_run_opts opts = {.file = path, .outdir = dir, .sets = sets, .nsets = nsets, .quiet = 1,
                         .monitor = record_step, .monitor_ctx = &s};
    wgf_run_result res;
    wgf_error err = {0};
    int rc = test_run(&opts, &res, &err);
    ck_assert_msg(rc == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(s.n, s.last_step + 1);
    ck_assert_msg(s.last_step >= min_last && s.last_step <= max_last, "last step %lu", s.last_step);
    ck_assert_msg(s.sums, "a row's energy is not the sum of its terms, or steps are not consecutive");
    ck_assert_msg(s.last_t > 0.01, "recovered time of the last stage %g", s.last_t);
    char file[4096];
    snprintf(file, sizeof file, "%s/path.csv", dir);
    FILE *f = fopen(file, "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    ck_assert(fgets(line, sizeof line, f) != NULL);
    ck_assert_msg(strncmp(line, "step,stage,t,energy,D_norm,g_norm,err_mean", 42) == 0, "%s", line);
    size_t rows = 0;
    unsigned long step = 0, stage = 0;
    double t = 0, energy = 0, Dn = 0, gn = 0, gprev = 0, tk = 0;
    char dstr[64];
    while (fgets(line, sizeof line, f)) {
        ck_assert_int_eq(sscanf(line, "%lu,%lu,%lf,%lf,%63[^,],%lf", &step, &stage, &t, &energy, dstr, &gn), 6);
        ck_assert_uint_eq(stage, rows % 7);
        /* the times are those of the printed |D_k| and |g_k| (log-mean rule) */
        if (stage == 0) {
            ck_assert_str_eq(dstr, "nan");
            tk = 0;
        } else {
            Dn = strtod(dstr, NULL);
            ck_assert_msg(Dn >= 0 && gn > 0, "stage %lu: |D| %g, |g| %g", stage, Dn, gn);
            tk += Dn == 0 ? 0 : gprev == gn ? Dn / gn : Dn * log(gprev / gn) / (gprev - gn);
        }
        ck_assert_close(t, tk, 1e-8);
        gprev = gn;
        rows++;
    }
    fclose(f);
    ck_assert_uint_eq(rows, 7 * npaths);
    ck_assert_uint_eq(step, s.last_step);
    ck_assert_close(t, s.last_t, 1e-9);
    ck_assert(isfinite(energy));
    unlink(path);
    free(path);
    test_remove_tree(dir);
    free(dir);
}

START_TEST(test_reporting)
{
    const char *adam[] = {"scheme.iterations=30", "output.every=10", "output.samples=500",
                          "reference.plugin=ou"};
    report_case(adam, 4, 0, 30, 4); /* paths at 0, 10, 20, 30 */
    const char *lbfgs[] = {"scheme.optimizer=lbfgs", "scheme.iterations=5", "scheme.warmup=20",
                           "output.every=1000", "output.samples=500", "reference.plugin=ou"};
    report_case(lbfgs, 6, 21, 25, 2); /* warm-up 0..19, L-BFGS from 20; paths at 0 and the end */
    const char *fresh[] = {"scheme.iterations=10", "scheme.samples=fresh", "output.every=5",
                           "output.samples=500", "reference.plugin=ou"};
    report_case(fresh, 5, 10, 10, 3); /* a new batch every iteration; paths at 0, 5, 10 */
}
END_TEST

/* From the identity the loss of the 2-D aggregation rises fifteenfold in two iterations (the speed
 * penalty jumps to O(1) as the stages move apart, from a small equilibrium penalty): an
 * optimiser's loss, which the divergence guard must let rise. It stopped the run as diverged. */
START_TEST(test_loss_may_rise)
{
    static const char agg_run_ini[] =
        "[run]\ndim = 2\nsamples = 200\nseed = 1\n"
        "[initial]\ntype = gaussian\nmean = 1.25 1.25\ncov = 0.36\n"
        "[energy]\nplugin = aggregation\nkernel = quartic\n"
        "[map]\nplugin = planar\nlayers = 12\nblock = 2\ninit_scale = 1\ninit_bias = 1\ndelta = 0\n"
        "[scheme]\nplugin = genwgp\nmu_eq = 0.05\niterations = 20\n"
        "[output]\nplots = false\nsamples = 200\n";
    char *dir = test_temp_dir("genwgp");
    char *path = test_write_ini(agg_run_ini);
    seen_steps s = {.sums = 1};
    double first = NAN, most = 0;
    wgf_run_opts opts = {.file = path, .outdir = dir, .quiet = 1, .monitor = record_step, .monitor_ctx = &s};
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_run_result res;
    wgf_error err = {0};
    ck_assert_msg(wgf_run(&opts, &res, &diag, &err) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(s.last_step, 20);
    /* the rise that the guard took for a divergence */
    char file[4096], line[4096];
    snprintf(file, sizeof file, "%s/history.csv", dir);
    FILE *f = fopen(file, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert(fgets(line, sizeof line, f) != NULL);
    while (fgets(line, sizeof line, f)) {
        unsigned long step;
        double t, e;
        ck_assert_int_eq(sscanf(line, "%lu,%lf,%lf", &step, &t, &e), 3);
        if (step == 0)
            first = e;
        most = fmax(most, e);
    }
    fclose(f);
    ck_assert_msg(most > 10 * first, "the loss rose from %g to %g only", first, most);
    wgf_diag_free(&diag);
    unlink(path);
    free(path);
    test_remove_tree(dir);
    free(dir);
}
END_TEST

/* Started at its own equilibrium (V = |x|^2/2, D = 1, rho_0 = N(0, I)) every g_k and every D_k is
 * zero at the identity: the stage times are 0, not 0 * infinity = NaN, which stopped a run at its
 * first history row (the reference refuses a NaN time). A stage with g = 0 after a move takes the
 * other end of the trapezoid. */
START_TEST(test_times_at_equilibrium)
{
    static const char eq_ini[] = SMALL_RUN "[initial]\ntype = gaussian\n"
                                           "[energy]\nplugin = fpe\npotential = quadratic\n" SMALL_MAP;
    wgf_problem *p = test_make_problem(eq_ini, NULL, 0);
    genwgp gw = {.action = GW_GEOMETRIC, .t_end = 1, .mu_s = 1, .mu_eq = 1};
    gw_loss c;
    wgf_error err = {0};
    ck_assert(gw_loss_init(&c, p, &gw, 64, &err) == WGF_OK);
    ck_assert(wgf_eval_draw(c.ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    double theta[15] = {0}, t[4];
    for (size_t j = 0; j < 3; j++)
        theta[5 * j + 2] = 0.1;
    ck_assert(gw_loss_eval(&c, theta, NULL, &err) == WGF_OK);
    /* the Monte Carlo g = x + s = x - z vanishes exactly at the identity */
    ck_assert_close(c.gn[0], 0, 0);
    gw_times(&c, t);
    for (size_t k = 0; k <= 3; k++)
        ck_assert_msg(t[k] == 0, "t_%zu = %g at the equilibrium", k, t[k]);
    /* a move out of the equilibrium takes |D_1| / |g_1| (the one end where g != 0) */
    c.Dn[1] = 0.3;
    c.gn[1] = 2;
    c.Dn[2] = c.Dn[3] = 0;
    gw_times(&c, t);
    ck_assert_close(t[1], 0.15, 1e-15);
    ck_assert_close(t[3], 0.15, 1e-15);
    gw_loss_free(&c);
    wgf_problem_free(p);
}
END_TEST

/* On an exponential approach to equilibrium, r(t) = r_0 e^{-lambda t} with |g| = lambda r (the 1-D
 * OU), t = int ds / |g| is ln(r_{k-1} / r_k) / lambda per stage: the log-mean rule recovers any
 * stage times exactly, steps of 0.01 to 1.5 relaxation times alike; the trapezoid rule runs ahead
 * by sinh(lambda h) / lambda - h per step (here checked to 1e-12). Equal |g| at both ends (a
 * constant-speed stretch) takes |D| / |g| without 0/0. */
START_TEST(test_times_exponential)
{
    static const char eq_ini[] = SMALL_RUN "[initial]\ntype = gaussian\n"
                                           "[energy]\nplugin = fpe\npotential = quadratic\n" SMALL_MAP;
    wgf_problem *p = test_make_problem(eq_ini, NULL, 0);
    genwgp gw = {.action = GW_GEOMETRIC, .times = GW_LOGMEAN};
    gw_loss c;
    wgf_error err = {0};
    ck_assert(gw_loss_init(&c, p, &gw, 64, &err) == WGF_OK);
    const double lambda = 2.5, r0 = 1.7, te[4] = {0, 0.004, 0.4, 1.0};
    for (size_t k = 0; k <= 3; k++) {
        c.gn[k] = lambda * r0 * exp(-lambda * te[k]);
        if (k > 0)
            c.Dn[k] = r0 * (exp(-lambda * te[k - 1]) - exp(-lambda * te[k]));
    }
    double t[4];
    gw_times(&c, t);
    for (size_t k = 1; k <= 3; k++)
        ck_assert_close(t[k], te[k], 1e-12);
    genwgp trap = gw;
    trap.times = GW_TRAPEZOID;
    c.gw = &trap;
    gw_times(&c, t);
    double tt = 0;
    for (size_t k = 1; k <= 3; k++) {
        tt += sinh(lambda * (te[k] - te[k - 1])) / lambda;
        ck_assert_close(t[k], tt, 1e-12);
    }
    ck_assert_msg(t[3] > te[3] + 0.1, "trapezoid %g against %g", t[3], te[3]);
    c.gw = &gw;
    c.gn[0] = c.gn[1] = c.gn[2] = c.gn[3] = 0.8;
    gw_times(&c, t);
    ck_assert_close(t[3], (c.Dn[1] + c.Dn[2] + c.Dn[3]) / 0.8, 1e-14);
    gw_loss_free(&c);
    wgf_problem_free(p);
}
END_TEST

/* The finite-horizon action's minimiser is D_k = -tau g_{k-1}: explicit Euler steps of size
 * tau = t_end/S in Lagrangian coordinates, first order in tau. The 2-D OU to t = 0.15 in 3 and in
 * 6 stages of 4 planar layers (no penalties): the last stage's W2 to the exact law at t = 0.15
 * halves with tau (measured 0.056 and 0.028 with 1000 samples; here 400). */
static double fh_error(size_t S, int rule)
{
    const double mu[2] = {1, 1}, Sigma[4] = {0.625, -0.375, -0.375, 0.625};
    char layers[64];
    snprintf(layers, sizeof layers, "map.layers=%zu", 4 * S);
    const char *sets[] = {layers, "map.block=4"};
    wgf_problem *p = test_make_problem(ou2_ini, sets, 2);
    ck_assert_uint_eq(wgf_problem_nstages(p), S);
    genwgp gw = {.action = GW_FINITE_HORIZON, .t_end = 0.15, .terminal_end = 1, .optimizer = GW_ADAM,
                 .fixed = 1,
                 .iterations = 1500, .lr = 0.02, .lr_end = 0.002, .beta1 = 0.9, .beta2 = 0.999,
                 .rule = rule};
    gw_loss c;
    wgf_error err = {0};
    ck_assert(gw_loss_init(&c, p, &gw, 400, &err) == WGF_OK);
    double *theta = wgf_problem_theta(p);
    ck_assert_msg(gw_adam(&gw, &c, theta, 0, &err) == WGF_OK, "%s", err.msg);
    double t[8];
    gw_times(&c, t);
    ck_assert_close(t[S], 0.15, 1e-15);
    const size_t M = 50000;
    wgf_eval *ev = wgf_eval_create(p, M, 0, &err);
    ck_assert(ev != NULL);
    ck_assert(wgf_eval_draw(ev, WGF_STREAM_OUTPUT, 0, &err) == WGF_OK);
    ck_assert(wgf_eval_forward(ev, theta, &err) == WGF_OK);
    double m[2], C[4];
    wgf_moments(M, 2, wgf_eval_batch(ev, S)->x, m, C);
    double w2 = ou_w2_at(mu, Sigma, m, C, 0.15);
    wgf_eval_free(ev);
    gw_loss_free(&c);
    wgf_problem_free(p);
    return w2;
}

START_TEST(test_finite_horizon_first_order)
{
    double e3 = fh_error(3, GW_EXPLICIT_RULE), e6 = fh_error(6, GW_EXPLICIT_RULE);
    fprintf(stderr, "finite horizon: W2 at t = 0.15 with tau = 0.05: %.4f, tau = 0.025: %.4f\n", e3, e6);
    ck_assert_msg(e3 / e6 > 1.5 && e3 / e6 < 2.7, "errors %g (tau 0.05), %g (tau 0.025): ratio %g, expected ~2",
                  e3, e6, e3 / e6);
}
END_TEST

/* rule = trapezoid holds stage k to (g_{k-1} + g_k) / 2: the trapezoidal rule, second order. On
 * the problem above its error at tau = 0.05 is a fraction of the explicit rule's. */
START_TEST(test_finite_horizon_trapezoid)
{
    double x3 = fh_error(3, GW_EXPLICIT_RULE), t3 = fh_error(3, GW_TRAPEZOID_RULE), t6 = fh_error(6, GW_TRAPEZOID_RULE);
    fprintf(stderr, "finite horizon, trapezoid: W2 at t = 0.15 with tau = 0.05: %.4f (explicit %.4f), "
                    "tau = 0.025: %.4f\n", t3, x3, t6);
    ck_assert_msg(t3 < x3 / 3, "trapezoid %g against explicit %g at tau = 0.05", t3, x3);
}
END_TEST

/* ------------------------------------------------------------ the terminal pull */

/* The terminal terms lean the stages: a stage pays only to second order for a step that leaves
 * -h g, and mu_f F(rho_S) gains to first order by moving mass down V, so every stage's mean moves
 * further than its gradient asks. On the 2-D double well (scale 0.06), 3 stages of 4 coordinatewise
 * planar layers, 400 fixed samples, mu_eq = 1, mu_f = 5, the explicit rule: lean = sum_k |E[D_k] +
 * h_k E[g_{k-1}]| / sum_k |h_k E[g_{k-1}]| on the training batch (h_k = |D_k| / |g_{k-1}|; 0 for a
 * zero-action stage) is measured 0.55 with the weights held (action 0.74) and 0.042 with
 * terminal_end = 0 (action 0.081). */
static const char well_ini[] = "[run]\ndim = 2\nsamples = 400\nseed = 4\n"
                               "[initial]\ntype = gaussian\n"
                               "[energy]\nplugin = fpe\npotential = quartic\nscale = 0.06\n"
                               "[map]\nplugin = planar\nlayers = 12\nblock = 4\ninit_scale = 1\ncoordinatewise = true\n"
                               "[scheme]\nplugin = genwgp\n[output]\nplots = false\n";

static double lean_case(double terminal_end)
{
    wgf_problem *p = test_make_problem(well_ini, NULL, 0);
    genwgp gw = {.action = GW_GEOMETRIC, .t_end = 1, .mu_s = 1, .mu_eq = 1, .mu_f = 5,
                 .terminal_end = terminal_end, .optimizer = GW_ADAM, .fixed = 1, .iterations = 1500,
                 .lr = 0.02, .lr_end = 0.002, .beta1 = 0.9, .beta2 = 0.999};
    gw_loss c;
    wgf_error err = {0};
    ck_assert(gw_loss_init(&c, p, &gw, 400, &err) == WGF_OK);
    double *theta = wgf_problem_theta(p);
    ck_assert_msg(gw_adam(&gw, &c, theta, 0, &err) == WGF_OK, "%s", err.msg);
    /* c holds the last evaluation, at the final theta */
    double num = 0, den = 0;
    for (size_t k = 1; k <= c.S; k++) {
        double h = c.Dn[k] / c.gm[k], md[2] = {0, 0}, mg[2] = {0, 0};
        for (size_t n = 0; n < c.N; n++)
            for (size_t j = 0; j < 2; j++) {
                md[j] += (c.xs[k][2 * n + j] - c.xs[k - 1][2 * n + j]) / (double)c.N;
                mg[j] += c.g[(k - 1) * 2 * c.N + 2 * n + j] / (double)c.N;
            }
        num += hypot(md[0] + h * mg[0], md[1] + h * mg[1]);
        den += h * hypot(mg[0], mg[1]);
    }
    fprintf(stderr, "terminal_end %g: lean %.4f, action %.3g\n", terminal_end, num / den, c.action);
    gw_loss_free(&c);
    wgf_problem_free(p);
    return num / den;
}

START_TEST(test_terminal_pull)
{
    double pull = lean_case(1), free_ = lean_case(0);
    ck_assert_msg(pull > 0.25, "held: lean %g", pull);
    ck_assert_msg(free_ < pull / 4, "terminal_end = 0: lean %g against %g held", free_, pull);
}
END_TEST

/* The fpe loss with mu_f = 0 reads no l: its batch has none, and the loss, its gradient, every
 * stage's x and s and the path's energies (from the batch with l at the reports) are those of a
 * batch with l to the bit, over a few steps on fresh samples. A batch without l refuses what
 * reads l: the energy, log-density cotangents, pme's Wasserstein gradient. */
START_TEST(test_without_l)
{
    wgf_problem *p = test_make_problem(fpe_ini, NULL, 0);
    genwgp gw = {.action = GW_GEOMETRIC, .rule = GW_TRAPEZOID_RULE, .mu_s = 0.7, .mu_eq = 0.3, .t_end = 1};
    ck_assert(!gw_loss_reads_l(p, &gw));
    gw_loss a, b;
    wgf_error err = {0};
    ck_assert(gw_loss_init(&a, p, &gw, 64, &err) == WGF_OK);
    ck_assert(gw_loss_setup(&b, p, &gw, 64, 1, &err) == WGF_OK);
    ck_assert_ptr_null(wgf_eval_batch(a.ev, 2)->l);
    ck_assert_ptr_nonnull(a.ev_l);
    ck_assert_ptr_null(b.ev_l);
    seen_path seen = {0};
    ck_assert(wgf_problem_path_monitor_add(p, record_path, &seen, NULL, &err) == WGF_OK);
    double theta[15], ga[15], gb[15], path_a[4];
    memcpy(theta, theta3, sizeof theta);
    for (unsigned long it = 0; it < 4; it++) {
        ck_assert(wgf_eval_draw(a.ev, WGF_STREAM_TRAIN, it, &err) == WGF_OK);
        ck_assert(wgf_eval_draw(b.ev, WGF_STREAM_TRAIN, it, &err) == WGF_OK);
        ck_assert_msg(gw_loss_eval(&a, theta, ga, &err) == WGF_OK, "%s", err.msg);
        ck_assert_msg(gw_loss_eval(&b, theta, gb, &err) == WGF_OK, "%s", err.msg);
        ck_assert(memcmp(&a.loss, &b.loss, sizeof a.loss) == 0);
        ck_assert(memcmp(ga, gb, sizeof ga) == 0);
        for (size_t k = 1; k <= 3; k++) {
            const wgf_batch *ba = wgf_eval_batch(a.ev, k), *bb = wgf_eval_batch(b.ev, k);
            ck_assert(memcmp(ba->x, bb->x, 64 * 2 * sizeof(double)) == 0);
            ck_assert(memcmp(ba->s, bb->s, 64 * 2 * sizeof(double)) == 0);
        }
        ck_assert_msg(gw_report_path(&a, it, theta, &err) == WGF_OK, "%s", err.msg);
        memcpy(path_a, seen.energy, sizeof path_a);
        ck_assert_msg(gw_report_path(&b, it, theta, &err) == WGF_OK, "%s", err.msg);
        ck_assert(memcmp(path_a, seen.energy, sizeof path_a) == 0);
        ck_assert(isfinite(path_a[3]) && path_a[3] != path_a[0]);
        for (size_t j = 0; j < 15; j++)
            theta[j] -= 0.05 * ga[j];
    }
    double F, g1[15];
    ck_assert_int_eq(wgf_problem_energy(p, a.ev, &F, NULL, &err), WGF_EINVAL);
    const double *lbar[4] = {NULL, NULL, NULL, a.g};
    ck_assert_int_eq(wgf_eval_path_vjp(a.ev, NULL, lbar, NULL, g1, &err), WGF_EINVAL);
    ck_assert_int_eq(wgf_eval_vjp_many(a.ev, 1, NULL, lbar + 3, NULL, (double *const[]){g1}, &err), WGF_EINVAL);
    gw.mu_f = 0.5; /* F(rho_S) reads l */
    ck_assert(gw_loss_reads_l(p, &gw));
    gw_loss_free(&a);
    gw_loss_free(&b);
    wgf_problem_free(p);

    p = test_make_problem(pme_ini, NULL, 0);
    gw.mu_f = 0;
    ck_assert(gw_loss_reads_l(p, &gw)); /* pme's Wasserstein gradient reads l */
    wgf_eval *ev = wgf_eval_create(p, 64, WGF_EVAL_STAGES | WGF_EVAL_NO_L, &err);
    ck_assert_ptr_nonnull(ev);
    ck_assert(wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    ck_assert(wgf_eval_forward(ev, theta3, &err) == WGF_OK);
    double g[128];
    ck_assert_int_eq(wgf_problem_wgrad(p, ev, 3, g, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "log-densities") != NULL, "%s", err.msg);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("genwgp");
    TCase *tc = tcase_create("loss");
    tcase_add_test(tc, test_gradient_fpe);
    tcase_add_test(tc, test_gradient_trapezoid);
    tcase_add_test(tc, test_gradient_pme);
    tcase_add_test(tc, test_gradient_aggregation);
    tcase_add_test(tc, test_terms_closed_form);
    tcase_add_test(tc, test_identity_start);
    tcase_add_test(tc, test_score_identity);
    tcase_add_test(tc, test_times_at_equilibrium);
    tcase_add_test(tc, test_times_exponential);
    tcase_add_test(tc, test_without_l);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("runs");
    tcase_add_test(tr, test_ou_path_on_curve);
    tcase_add_test(tr, test_reporting);
    tcase_add_test(tr, test_loss_may_rise);
    tcase_add_test(tr, test_finite_horizon_first_order);
    tcase_add_test(tr, test_finite_horizon_trapezoid);
    tcase_add_test(tr, test_terminal_pull);
    suite_add_tcase(s, tr);
    return test_main(s);
}
