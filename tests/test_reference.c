/* test_reference.c: the reference solutions (MATH.md 6) and the diagnostics
 * (MATH.md 7) against closed forms, quadrature, finite differences and brute
 * force. */
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sf_gamma.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../core/internal.h" /* wgf_problem_reference */
#include "testutil.h"

static gsl_rng *make_rng(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    return r;
}

/* ================================================================ Ornstein-Uhlenbeck */

/* A 3-D case with a non-diagonal Sigma and C0. */
static const double ou_mu[3] = {1.0, -0.5, 2.0};
static const double ou_Sigma[9] = {2.0, 0.3, -0.2, 0.3, 1.0, 0.4, -0.2, 0.4, 0.7};
static const double ou_m0[3] = {-1.0, 2.0, 0.0};
static const double ou_C0[9] = {0.5, 0.1, 0.0, 0.1, 0.3, -0.05, 0.0, -0.05, 0.2};
static const double ou_D = 0.8;

static void ou_at(double t, double *m, double *C)
{
    wgf_error err = {0};
    ck_assert_msg(wgf_ou_moments(3, ou_mu, ou_Sigma, ou_D, ou_m0, ou_C0, t, m, C, &err) == WGF_OK, "%s",
                  err.msg);
}

START_TEST(ou_initial_and_limit)
{
    double m[3], C[9];
    ou_at(0.0, m, C);
    for (int i = 0; i < 3; i++)
        ck_assert_close(m[i], ou_m0[i], 1e-14);
    for (int i = 0; i < 9; i++)
        ck_assert_close(C[i], ou_C0[i], 1e-14);
    /* Slowest rate 1/lambda_max(Sigma) > 1/3: e^{-200/3} is far below rounding. */
    ou_at(200.0, m, C);
    for (int i = 0; i < 3; i++)
        ck_assert_close(m[i], ou_mu[i], 1e-13);
    for (int i = 0; i < 9; i++)
        ck_assert_close(C[i], ou_D * ou_Sigma[i], 1e-13);
}
END_TEST

/* m' = -A (m - mu), C' = -(AC + CA) + 2 D I with A = Sigma^{-1} from an
 * independent LU inverse, by central differences in t. */
START_TEST(ou_solves_the_moment_odes)
{
    double A[9];
    gsl_matrix *S = gsl_matrix_alloc(3, 3), *Ai = gsl_matrix_alloc(3, 3);
    gsl_permutation *perm = gsl_permutation_alloc(3);
    memcpy(S->data, ou_Sigma, sizeof ou_Sigma);
    int sgn;
    gsl_linalg_LU_decomp(S, perm, &sgn);
    gsl_linalg_LU_invert(S, perm, Ai);
    memcpy(A, Ai->data, sizeof A);
    gsl_matrix_free(S);
    gsl_matrix_free(Ai);
    gsl_permutation_free(perm);

    const double ts[] = {0.05, 0.7, 3.0};
    for (size_t q = 0; q < 3; q++) {
        double t = ts[q], h = 1e-4;
        double m[3], C[9], mp[3], Cp[9], mm[3], Cm[9];
        ou_at(t, m, C);
        ou_at(t + h, mp, Cp);
        ou_at(t - h, mm, Cm);
        for (int i = 0; i < 3; i++) {
            double rhs = 0.0;
            for (int j = 0; j < 3; j++)
                rhs -= A[i * 3 + j] * (m[j] - ou_mu[j]);
            ck_assert_close((mp[i] - mm[i]) / (2 * h), rhs, 1e-7);
        }
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                double rhs = i == j ? 2.0 * ou_D : 0.0;
                for (int k = 0; k < 3; k++)
                    rhs -= A[i * 3 + k] * C[k * 3 + j] + C[i * 3 + k] * A[k * 3 + j];
                ck_assert_close((Cp[i * 3 + j] - Cm[i * 3 + j]) / (2 * h), rhs, 1e-7);
            }
    }
}
END_TEST

START_TEST(ou_scalar_and_errors)
{
    const double mu = 0.5, s = 2.0, m0 = 3.0, c0 = 0.1, D = 0.3, t = 1.3;
    double m, C;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_ou_moments(1, &mu, &s, D, &m0, &c0, t, &m, &C, &err), WGF_OK);
    ck_assert_close(m, mu + exp(-t / s) * (m0 - mu), 1e-15);
    ck_assert_close(C, exp(-2 * t / s) * c0 + D * s * (1 - exp(-2 * t / s)), 1e-15);
    const double bad[4] = {1.0, 2.0, 2.0, 1.0}, z[2] = {0, 0}, c2[4] = {1, 0, 0, 1};
    double m2[2], C2[4];
    ck_assert_int_eq(wgf_ou_moments(2, z, bad, D, z, c2, t, m2, C2, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "positive definite") != NULL, "%s", err.msg);
}
END_TEST

/* ================================================================ Barenblatt */

typedef struct bq {
    const wgf_barenblatt *b;
    double t;
    int what; /* 0 density, 1 |x|^2 density, 2 density^m */
} bq;

/* Radial integrand: |S^{d-1}| r^{d-1} f(r) with f evaluated on the x_1 axis. */
static double bq_fn(double r, void *user)
{
    const bq *q = user;
    size_t d = q->b->d;
    double x[3] = {r, 0.0, 0.0};
    double rho = wgf_barenblatt_density(q->b, q->t, x);
    double f = q->what == 0 ? rho : q->what == 1 ? r * r * rho : pow(rho, q->b->m);
    double area = 2.0 * pow(M_PI, 0.5 * (double)d) / gsl_sf_gamma(0.5 * (double)d);
    return area * pow(r, (double)d - 1.0) * f;
}

/* int over R^d of f by QAGS on [0, R] (which copes with the algebraic
 * singularity of (R^2 - r^2)^p at the edge). */
static double bq_integrate(const wgf_barenblatt *b, double t, int what, double rmax)
{
    bq q = {b, t, what};
    gsl_function F = {bq_fn, &q};
    gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
    double res, abserr;
    ck_assert_int_eq(gsl_integration_qags(&F, 0.0, rmax, 0.0, 1e-12, 1000, w, &res, &abserr), 0);
    gsl_integration_workspace_free(w);
    return res;
}

START_TEST(barenblatt_mass_moment_energy_by_quadrature)
{
    const size_t ds[] = {1, 2, 2, 3, 1};
    const double ms[] = {2.0, 2.0, 3.0, 1.5, 1.3};
    for (size_t c = 0; c < sizeof ds / sizeof *ds; c++) {
        wgf_barenblatt b;
        wgf_error err = {0};
        ck_assert_int_eq(wgf_barenblatt_init(&b, ds[c], ms[c], &err), WGF_OK);
        /* The parameters of MATH.md 6. */
        double dd = (double)ds[c];
        ck_assert_close(b.p, 1.0 / (ms[c] - 1.0), 1e-15);
        ck_assert_close(b.alpha, dd / (dd * (ms[c] - 1.0) + 2.0), 1e-15);
        ck_assert_close(b.beta, b.alpha / dd, 1e-15);
        ck_assert_close(b.k, b.alpha * (ms[c] - 1.0) / (2.0 * ms[c] * dd), 1e-15);
        for (double t = 0.3; t < 5.0; t *= 4.0) {
            double R = wgf_barenblatt_radius(&b, t);
            /* The support ends at R. */
            double xin[3] = {0.999 * R, 0, 0}, xout[3] = {1.001 * R, 0, 0};
            ck_assert_double_gt(wgf_barenblatt_density(&b, t, xin), 0.0);
            ck_assert_double_eq(wgf_barenblatt_density(&b, t, xout), 0.0);
            ck_assert_close(bq_integrate(&b, t, 0, R), 1.0, 1e-10);
            ck_assert_close(bq_integrate(&b, t, 1, R), wgf_barenblatt_second_moment(&b, t), 1e-10);
            ck_assert_close(bq_integrate(&b, t, 2, R) / (ms[c] - 1.0), wgf_barenblatt_energy(&b, t),
                            1e-10);
        }
    }
    wgf_barenblatt b;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_barenblatt_init(&b, 2, 1.0, &err), WGF_EINVAL);
    ck_assert_int_eq(wgf_barenblatt_init(&b, 0, 2.0, &err), WGF_EINVAL);
}
END_TEST

/* Exact samples: moments and the mass inside R/2 within Monte Carlo error.
 * The tolerance is 5 standard errors, estimated from the samples themselves
 * (a correct sampler fails with probability below 1e-6 per check; the seed
 * is fixed, so the outcome is deterministic). */
START_TEST(barenblatt_samples)
{
    const size_t ds[] = {1, 2, 3};
    const double ms[] = {3.0, 2.0, 1.5};
    const size_t N = 100000;
    gsl_rng *r = make_rng(5);
    for (size_t c = 0; c < 3; c++) {
        size_t d = ds[c];
        wgf_barenblatt b;
        wgf_error err = {0};
        ck_assert_int_eq(wgf_barenblatt_init(&b, d, ms[c], &err), WGF_OK);
        double t = 0.7, R = wgf_barenblatt_radius(&b, t);
        double *x = malloc(N * d * sizeof *x), *lp = malloc(N * sizeof *lp);
        wgf_barenblatt_sample(&b, t, r, N, x);
        wgf_barenblatt_log_density(&b, t, N, x, lp);
        double s1 = 0.0, s2 = 0.0, inside = 0.0, mean0 = 0.0;
        for (size_t i = 0; i < N; i++) {
            double q = 0.0;
            for (size_t j = 0; j < d; j++)
                q += x[i * d + j] * x[i * d + j];
            ck_assert_double_lt(q, R * R);
            ck_assert(isfinite(lp[i]));
            s1 += q;
            s2 += q * q;
            inside += q < 0.25 * R * R;
            mean0 += x[i * d];
        }
        double mq = s1 / N, vq = (s2 / N - mq * mq) * N / (N - 1.0);
        double se = sqrt(vq / N);
        ck_assert_msg(fabs(mq - wgf_barenblatt_second_moment(&b, t)) < 5.0 * se,
                      "d = %zu: E|x|^2 = %g, exact %g, se %g", d, mq,
                      wgf_barenblatt_second_moment(&b, t), se);
        /* The first coordinate has mean 0 and variance E|x|^2 / d. */
        double sem = sqrt(wgf_barenblatt_second_moment(&b, t) / (double)d / N);
        ck_assert_msg(fabs(mean0 / N) < 5.0 * sem, "mean %g, se %g", mean0 / N, sem);
        /* Mass within R/2 from the density (quadrature) vs the sample fraction. */
        double pin = bq_integrate(&b, t, 0, 0.5 * R);
        double sep = sqrt(pin * (1.0 - pin) / N);
        ck_assert_msg(fabs(inside / N - pin) < 5.0 * sep, "d = %zu: P(|x| < R/2) = %g, exact %g", d,
                      inside / N, pin);
        free(x);
        free(lp);
    }
    gsl_rng_free(r);
}
END_TEST

START_TEST(barenblatt_score_and_log_density)
{
    wgf_barenblatt b;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_barenblatt_init(&b, 3, 1.7, &err), WGF_OK);
    const double t = 1.9, R = wgf_barenblatt_radius(&b, t);
    const double pts[4][3] = {{0.1, 0.2, -0.3}, {0.5, -0.4, 0.3}, {-0.7, 0.1, 0.2}, {0.0, 0.0, 0.0}};
    for (int p = 0; p < 4; p++) {
        double x[3], s[3], lp;
        for (int j = 0; j < 3; j++)
            x[j] = pts[p][j] * R;
        wgf_barenblatt_score(&b, t, 1, x, s);
        wgf_barenblatt_log_density(&b, t, 1, x, &lp);
        ck_assert_close(lp, log(wgf_barenblatt_density(&b, t, x)), 1e-14);
        for (int j = 0; j < 3; j++) {
            double h = 1e-6 * R, xp[3], xm[3], lpp, lpm;
            memcpy(xp, x, sizeof x);
            memcpy(xm, x, sizeof x);
            xp[j] += h;
            xm[j] -= h;
            wgf_barenblatt_log_density(&b, t, 1, xp, &lpp);
            wgf_barenblatt_log_density(&b, t, 1, xm, &lpm);
            ck_assert_close(s[j], (lpp - lpm) / (2 * h), 1e-6);
        }
    }
    /* Outside the support: log density -inf, score 0. */
    double xo[3] = {1.1 * R, 0, 0}, so[3], lo;
    wgf_barenblatt_log_density(&b, t, 1, xo, &lo);
    ck_assert(isinf(lo) && lo < 0);
    wgf_barenblatt_score(&b, t, 1, xo, so);
    ck_assert_double_eq(so[0], 0.0);
}
END_TEST

/* rho(t, x) = (t/t0)^{-d beta} rho(t0, x (t/t0)^{-beta}) (alpha = d beta):
 * the law at t is the law at t0 scaled by (t/t0)^beta. */
START_TEST(barenblatt_self_similar)
{
    wgf_barenblatt b;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_barenblatt_init(&b, 2, 2.5, &err), WGF_OK);
    const double t0 = 0.2, t = 3.7, s = pow(t / t0, b.beta);
    ck_assert_close(wgf_barenblatt_radius(&b, t), s * wgf_barenblatt_radius(&b, t0), 1e-14);
    ck_assert_close(wgf_barenblatt_second_moment(&b, t), s * s * wgf_barenblatt_second_moment(&b, t0),
                    1e-14);
    double R = wgf_barenblatt_radius(&b, t);
    for (int i = 0; i < 20; i++) {
        double x[2] = {R * 0.05 * i * cos(i), R * 0.05 * i * sin(i)}, y[2] = {x[0] / s, x[1] / s};
        ck_assert_close(wgf_barenblatt_density(&b, t, x),
                        pow(t / t0, -2.0 * b.beta) * wgf_barenblatt_density(&b, t0, y), 1e-13);
    }
    /* Samples scale the same way: same rng state, same draws. */
    gsl_rng *r1 = make_rng(9), *r2 = make_rng(9);
    double xa[20], xb[20];
    wgf_barenblatt_sample(&b, t, r1, 10, xa);
    wgf_barenblatt_sample(&b, t0, r2, 10, xb);
    for (int i = 0; i < 20; i++)
        ck_assert_close(xa[i], s * xb[i], 1e-13);
    gsl_rng_free(r1);
    gsl_rng_free(r2);
}
END_TEST

/* d_t rho = Lap rho^m at interior points, by finite differences. */
START_TEST(barenblatt_solves_pme)
{
    const size_t ds[] = {1, 2, 3};
    const double ms[] = {3.0, 2.0, 1.6};
    for (size_t c = 0; c < 3; c++) {
        size_t d = ds[c];
        wgf_barenblatt b;
        wgf_error err = {0};
        ck_assert_int_eq(wgf_barenblatt_init(&b, d, ms[c], &err), WGF_OK);
        const double t = 1.3, R = wgf_barenblatt_radius(&b, t);
        double x[3] = {0.3 * R, d > 1 ? -0.25 * R : 0.0, d > 2 ? 0.2 * R : 0.0};
        double ht = 1e-4 * t, hx = 1e-3 * R;
        double dt = (wgf_barenblatt_density(&b, t + ht, x) - wgf_barenblatt_density(&b, t - ht, x)) /
                    (2 * ht);
        double lap = 0.0, um = pow(wgf_barenblatt_density(&b, t, x), b.m);
        for (size_t j = 0; j < d; j++) {
            double xp[3], xm[3];
            memcpy(xp, x, sizeof x);
            memcpy(xm, x, sizeof x);
            xp[j] += hx;
            xm[j] -= hx;
            lap += (pow(wgf_barenblatt_density(&b, t, xp), b.m) - 2 * um +
                    pow(wgf_barenblatt_density(&b, t, xm), b.m)) /
                   (hx * hx);
        }
        ck_assert_msg(fabs(dt - lap) <= 1e-5 * fabs(dt), "d = %zu: rho_t = %.10g, Lap rho^m = %.10g", d,
                      dt, lap);
    }
}
END_TEST

/* ================================================================ aggregation */

static double W(double r2)
{
    return r2 * r2 / 4.0 - r2 / 2.0;
}

/* Energy of the uniform measure on the circle of radius R (2-D): 1/2 E W(x-y),
 * |x - y|^2 = 2 R^2 (1 - cos phi), by the (spectrally accurate) periodic
 * trapezoid rule. */
static double ring_energy_2d(double R)
{
    const int K = 1000;
    double s = 0.0;
    for (int i = 0; i < K; i++)
        s += W(2.0 * R * R * (1.0 - cos(2.0 * M_PI * i / K)));
    return 0.5 * s / K;
}

typedef struct gq {
    double s2;
    int d;
} gq;

/* 1/2 E W(Y), Y ~ N(0, 2 s2 I_d), in radial form for d = 1, 2. */
static double gq_fn(double r, void *user)
{
    const gq *q = user;
    double v = 2.0 * q->s2;
    double dens = q->d == 1 ? 2.0 * exp(-r * r / (2 * v)) / sqrt(2 * M_PI * v)
                            : 2.0 * M_PI * r * exp(-r * r / (2 * v)) / (2 * M_PI * v);
    return 0.5 * W(r * r) * dens;
}

START_TEST(aggregation_formulas)
{
    ck_assert_close(wgf_aggregation_ring_radius(1), 0.5, 1e-15);
    ck_assert_close(wgf_aggregation_ring_radius(2), 1.0 / sqrt(3.0), 1e-15);
    ck_assert_close(wgf_aggregation_ring_energy(1), -1.0 / 16.0, 1e-15);
    ck_assert_close(wgf_aggregation_ring_energy(2), -1.0 / 12.0, 1e-15);
    /* 2-D: quadrature of the ring's energy, which is least at the radius. */
    double R = wgf_aggregation_ring_radius(2);
    ck_assert_close(ring_energy_2d(R), wgf_aggregation_ring_energy(2), 1e-13);
    ck_assert_double_gt(ring_energy_2d(1.01 * R), ring_energy_2d(R));
    ck_assert_double_gt(ring_energy_2d(0.99 * R), ring_energy_2d(R));
    /* 1-D: the two-point "sphere" {c - 1/2, c + 1/2}: 1/2 (W(0) + W(1))/2. */
    ck_assert_close(0.25 * W(1.0), wgf_aggregation_ring_energy(1), 1e-15);
    /* Gaussian by hand: d = 1, s^2 = 1: (3 - 1)/2; d = 2, s^2 = 1/2: (2 - 1)/2. */
    ck_assert_close(wgf_aggregation_gaussian_energy(1, 1.0), 1.0, 1e-15);
    ck_assert_close(wgf_aggregation_gaussian_energy(2, 0.5), 0.5, 1e-15);
    /* ... and by quadrature. */
    gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
    for (int d = 1; d <= 2; d++) {
        gq q = {0.37, d};
        gsl_function F = {gq_fn, &q};
        double res, abserr;
        ck_assert_int_eq(gsl_integration_qagiu(&F, 0.0, 0.0, 1e-12, 1000, w, &res, &abserr), 0);
        ck_assert_close(res, wgf_aggregation_gaussian_energy((size_t)d, 0.37), 1e-10);
    }
    gsl_integration_workspace_free(w);
}
END_TEST

/* ================================================================ finite volumes */

static double V_doublewell(double x, void *user)
{
    (void)user;
    return x * x * x * x / 4.0 - x * x / 2.0;
}

static double V_quadratic(double x, void *user)
{
    (void)user;
    return 0.5 * x * x;
}

static double V_zero(double x, void *user)
{
    (void)x;
    (void)user;
    return 0.0;
}

static double rho_box(double x, void *user)
{
    (void)user;
    return x > 0.5 && x < 1.5 ? 1.0 : 0.0;
}

static double rho_negative(double x, void *user)
{
    (void)user;
    return x - 2.0;
}

static double rho_one(double x, void *user)
{
    (void)x;
    (void)user;
    return 1.0;
}

/* N(mean, var) unnormalised (the solver normalises). */
static double rho_gauss(double x, void *user)
{
    const double *mv = user;
    return exp(-(x - mv[0]) * (x - mv[0]) / (2 * mv[1]));
}

static double fv_min(const wgf_fv1d *fv)
{
    const double *rho = wgf_fv1d_density(fv);
    double m = rho[0];
    for (size_t i = 1; i < wgf_fv1d_cells(fv); i++)
        m = fmin(m, rho[i]);
    return m;
}

START_TEST(fv_mass_and_positivity)
{
    wgf_fv1d *fv;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_fv1d_create(&fv, -3.0, 3.0, 300, 0.3, V_doublewell, NULL, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_set(fv, rho_box, NULL, &err), WGF_OK);
    ck_assert_close(wgf_fv1d_mass(fv), 1.0, 1e-14);
    ck_assert_double_eq(wgf_fv1d_time(fv), 0.0);
    const double ts[] = {0.01, 0.1, 1.0, 5.0};
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(wgf_fv1d_advance(fv, ts[k], 0.01, &err), WGF_OK);
        ck_assert_double_eq(wgf_fv1d_time(fv), ts[k]);
        ck_assert_msg(fabs(wgf_fv1d_mass(fv) - 1.0) <= 1e-12, "t = %g: mass - 1 = %g", ts[k],
                      wgf_fv1d_mass(fv) - 1.0);
        ck_assert_double_ge(fv_min(fv), 0.0);
    }
    /* Large steps (backward Euler is unconditionally stable): still positive. */
    ck_assert_int_eq(wgf_fv1d_set(fv, rho_box, NULL, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_advance(fv, 50.0, 10.0, &err), WGF_OK);
    ck_assert_double_ge(fv_min(fv), 0.0);
    ck_assert_msg(fabs(wgf_fv1d_mass(fv) - 1.0) <= 1e-12, "mass - 1 = %g", wgf_fv1d_mass(fv) - 1.0);
    /* Errors; a rejected initial density leaves the state alone. */
    ck_assert_int_eq(wgf_fv1d_set(fv, rho_negative, NULL, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "negative") != NULL, "%s", err.msg);
    ck_assert_double_eq(wgf_fv1d_time(fv), 50.0);
    ck_assert_double_ge(fv_min(fv), 0.0);
    ck_assert_int_eq(wgf_fv1d_advance(fv, 10.0, 0.1, &err), WGF_EINVAL); /* backwards */
    ck_assert_int_eq(wgf_fv1d_advance(fv, 60.0, 0.0, &err), WGF_EINVAL);
    wgf_fv1d_free(fv);
    ck_assert_int_eq(wgf_fv1d_create(&fv, 1.0, -1.0, 300, 0.3, V_doublewell, NULL, &err), WGF_EINVAL);
    ck_assert_int_eq(wgf_fv1d_create(&fv, -1.0, 1.0, 300, 0.0, V_doublewell, NULL, &err), WGF_EINVAL);
    ck_assert_int_eq(wgf_fv1d_create(&fv, -1.0, 1.0, 1, 1.0, V_doublewell, NULL, &err), WGF_EINVAL);
}
END_TEST

typedef struct gibbs {
    double D, Z;
} gibbs;

static double gibbs_fn(double x, void *user)
{
    const gibbs *g = user;
    return exp(-V_doublewell(x, NULL) / g->D);
}

/* The Scharfetter-Gummel flux vanishes exactly on e^{-V_i/D}: the discrete
 * steady state is the Gibbs density sampled at the centres, and it is
 * within O(h^2) of the continuous one. */
START_TEST(fv_converges_to_gibbs)
{
    const double D = 0.5, a = -3.0, b = 3.0;
    const size_t n = 300;
    wgf_fv1d *fv;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_fv1d_create(&fv, a, b, n, D, V_doublewell, NULL, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_set(fv, rho_box, NULL, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_advance(fv, 200.0, 0.5, &err), WGF_OK);
    gibbs g = {D, 0.0};
    gsl_function F = {gibbs_fn, &g};
    gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
    double abserr;
    ck_assert_int_eq(gsl_integration_qags(&F, a, b, 0.0, 1e-13, 1000, w, &g.Z, &abserr), 0);
    gsl_integration_workspace_free(w);
    const double *x = wgf_fv1d_centres(fv), *rho = wgf_fv1d_density(fv), h = (b - a) / n;
    double zd = 0.0;
    for (size_t i = 0; i < n; i++)
        zd += h * gibbs_fn(x[i], &g);
    double ed = 0.0, ec = 0.0;
    for (size_t i = 0; i < n; i++) {
        ed = fmax(ed, fabs(rho[i] - gibbs_fn(x[i], &g) / zd));
        ec = fmax(ec, fabs(rho[i] - gibbs_fn(x[i], &g) / g.Z));
    }
    ck_assert_msg(ed <= 1e-10, "discrete Gibbs: max error %g", ed);
    ck_assert_msg(ec <= 1e-3, "Gibbs density: max error %g", ec);
    wgf_fv1d_free(fv);
}
END_TEST

/* V = x^2/2, D = 1 (OU): from N(1, 1/4) the law at t = 1 is
 * N(e^{-1}, e^{-2}/4 + 1 - e^{-2}). The error is c1 dt + c2 h^2 (backward
 * Euler, second-order fluxes; for the variance c1 and c2 have opposite
 * signs, about -0.068 and 0.067 here), so halving h and dt together should
 * tend to halve it: require a factor 0.7 per level. */
static void fv_ou_errors(size_t n, double dt, double *em, double *ev, double *eq)
{
    wgf_fv1d *fv;
    wgf_error err = {0};
    double mv[2] = {1.0, 0.25};
    ck_assert_int_eq(wgf_fv1d_create(&fv, -8.0, 8.0, n, 1.0, V_quadratic, NULL, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_set(fv, rho_gauss, mv, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_advance(fv, 1.0, dt, &err), WGF_OK);
    const double *x = wgf_fv1d_centres(fv), *rho = wgf_fv1d_density(fv), h = 16.0 / n;
    double mean = wgf_fv1d_mean(fv), var = 0.0;
    for (size_t i = 0; i < n; i++)
        var += h * rho[i] * (x[i] - mean) * (x[i] - mean);
    var += h * h / 12.0; /* the spread inside the cells of the piecewise-constant density */
    const double me = exp(-1.0), ve = 0.25 * exp(-2.0) + 1.0 - exp(-2.0);
    *em = fabs(mean - me);
    *ev = fabs(var - ve);
    /* Quantiles against the exact Gaussian's. */
    *eq = 0.0;
    for (double u = 0.05; u < 1.0; u += 0.1)
        *eq = fmax(*eq, fabs(wgf_fv1d_quantile(fv, u) - (me + sqrt(ve) * gsl_cdf_ugaussian_Pinv(u))));
    wgf_fv1d_free(fv);
}

START_TEST(fv_ou_moments_converge)
{
    double em[3], ev[3], eq[3];
    fv_ou_errors(200, 0.02, &em[0], &ev[0], &eq[0]);
    fv_ou_errors(400, 0.01, &em[1], &ev[1], &eq[1]);
    fv_ou_errors(800, 0.005, &em[2], &ev[2], &eq[2]);
    for (int k = 1; k < 3; k++) {
        ck_assert_msg(em[k] < 0.7 * em[k - 1], "mean errors %g %g %g", em[0], em[1], em[2]);
        ck_assert_msg(ev[k] < 0.7 * ev[k - 1], "variance errors %.10g %.10g %.10g", ev[0], ev[1], ev[2]);
        ck_assert_msg(eq[k] < 0.7 * eq[k - 1], "quantile errors %g %g %g", eq[0], eq[1], eq[2]);
    }
    ck_assert_msg(em[2] < 2e-3 && ev[2] < 2e-3 && eq[2] < 2e-3, "errors %g %g %g", em[2], ev[2], eq[2]);
}
END_TEST

/* W2 against samples, by hand on the uniform density and against an
 * independent quadrature of (F^-1(u) - Q_n(u))^2 on a Gaussian-like one. */
START_TEST(fv_quantile_and_w2)
{
    wgf_fv1d *fv;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_fv1d_create(&fv, 0.0, 1.0, 10, 1.0, V_zero, NULL, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_set(fv, rho_one, NULL, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_advance(fv, 1.0, 0.1, &err), WGF_OK); /* stays uniform */
    for (double u = 0.013; u < 1.0; u += 0.07)
        ck_assert_close(wgf_fv1d_quantile(fv, u), u, 1e-13);
    ck_assert_close(wgf_fv1d_mean(fv), 0.5, 1e-14);
    /* All samples at 1/2: W2^2 = int (u - 1/2)^2 = 1/12. */
    double xs[7] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    ck_assert_close(wgf_fv1d_w2_samples(fv, 7, xs), sqrt(1.0 / 12.0), 1e-14);
    /* Samples at the midpoints (j - 1/2)/n: W2^2 = 1/(12 n^2). */
    for (int j = 0; j < 7; j++)
        xs[j] = (j + 0.5) / 7.0;
    ck_assert_close(wgf_fv1d_w2_samples(fv, 7, xs), sqrt(1.0 / 12.0) / 7.0, 1e-13);
    wgf_fv1d_free(fv);

    double mv[2] = {0.3, 0.5};
    ck_assert_int_eq(wgf_fv1d_create(&fv, -5.0, 5.0, 137, 0.7, V_quadratic, NULL, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_set(fv, rho_gauss, mv, &err), WGF_OK);
    ck_assert_int_eq(wgf_fv1d_advance(fv, 0.4, 0.01, &err), WGF_OK);
    const size_t n = 50;
    double s[50];
    gsl_rng *r = make_rng(3);
    for (size_t j = 0; j < n; j++)
        s[j] = 0.2 + gsl_ran_gaussian(r, 0.8);
    gsl_rng_free(r);
    double w2 = wgf_fv1d_w2_samples(fv, n, s);
    /* Independent, in x rather than u: W2^2 = int (x - s(F(x)))^2 rho(x) dx
     * with s(F) the sorted sample j on ((j-1)/n, j/n]; rho is constant on
     * each cell and F linear, so cut each cell where F crosses j/n and
     * integrate the cubic exactly. */
    double sorted[50];
    memcpy(sorted, s, sizeof s);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double tmp = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = tmp;
        }
    const double *rho = wgf_fv1d_density(fv), h = 10.0 / 137;
    double total = 0.0, acc = 0.0, F = 0.0;
    for (size_t i = 0; i < 137; i++)
        total += rho[i];
    size_t js = 0;
    for (size_t i = 0; i < 137; i++) {
        double dens = rho[i] / (total * h), xl = -5.0 + i * h, xr = xl + h, x0 = xl;
        double Fr = F + rho[i] / total;
        while (x0 < xr) {
            /* the part of the cell that maps to sample js ends where F = (js+1)/n */
            double x1 = xr;
            if (js + 1 < n && Fr > (js + 1.0) / n)
                x1 = fmin(xr, xl + ((js + 1.0) / n - F) / dens);
            double e0 = x0 - sorted[js], e1 = x1 - sorted[js];
            acc += dens * (e1 * e1 * e1 - e0 * e0 * e0) / 3.0;
            if (x1 < xr)
                js++;
            x0 = x1;
        }
        F = Fr;
    }
    ck_assert_close(w2, sqrt(acc), 1e-12);
    /* Order does not matter. */
    for (size_t j = 0; j < n / 2; j++) {
        double tmp = s[j];
        s[j] = s[n - 1 - j];
        s[n - 1 - j] = tmp;
    }
    ck_assert_double_eq(wgf_fv1d_w2_samples(fv, n, s), w2);
    wgf_fv1d_free(fv);
}
END_TEST

/* ================================================================ particles */

typedef struct quad2 {
    double a[2];
} quad2;

static void grad_quad2(size_t d, const double *x, double *g, void *user)
{
    const quad2 *q = user;
    for (size_t j = 0; j < d; j++)
        g[j] = q->a[j] * x[j];
}

/* Euler-Maruyama on V = (a1 x1^2 + a2 x2^2)/2 from a point: each coordinate is
 * an AR(1), x_{k+1} = (1 - a h) x_k + sqrt(2 D h) xi, with mean (1 - a h)^K x0
 * and variance 2 D h (1 - (1 - a h)^{2K}) / (1 - (1 - a h)^2) exactly. */
START_TEST(particles_fpe_moments)
{
    const size_t n = 20000, d = 2;
    const double D = 0.5, t = 1.0, dt = 0.01, x0[2] = {1.5, -1.0};
    quad2 q = {{1.0, 2.0}};
    double *x = malloc(n * d * sizeof *x), *y = malloc(n * d * sizeof *y);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = x0[j];
    memcpy(y, x, n * d * sizeof *x);
    gsl_rng *r = make_rng(17);
    wgf_error err = {0};
    ck_assert_int_eq(wgf_particles_fpe(n, d, x, grad_quad2, &q, D, t, dt, r, &err), WGF_OK);
    double mean[2], cov[4];
    wgf_moments(n, d, x, mean, cov);
    for (size_t j = 0; j < d; j++) {
        double c = 1.0 - q.a[j] * dt, K = t / dt;
        double me = pow(c, K) * x0[j];
        double ve = 2.0 * D * dt * (1.0 - pow(c, 2 * K)) / (1.0 - c * c);
        ck_assert_msg(fabs(mean[j] - me) < 5.0 * sqrt(ve / n), "mean %g, expected %g", mean[j], me);
        ck_assert_msg(fabs(cov[j * d + j] - ve) < 5.0 * ve * sqrt(2.0 / n), "var %g, expected %g",
                      cov[j * d + j], ve);
    }
    ck_assert_msg(fabs(cov[1]) < 5.0 * sqrt(cov[0] * cov[3] / n), "cov %g", cov[1]);
    /* Reproducible from the rng state. */
    gsl_rng_set(r, 17);
    ck_assert_int_eq(wgf_particles_fpe(n, d, y, grad_quad2, &q, D, t, dt, r, &err), WGF_OK);
    ck_assert_int_eq(memcmp(x, y, n * d * sizeof *x), 0);
    gsl_rng_free(r);
    free(x);
    free(y);
}
END_TEST

/* A reference observed at t1, then at t0 < t1 (a path's stage time moving
 * back between outputs): the second observation equals that of a fresh
 * reference at t0, bit for bit (it starts again from the initial law);
 * before, fpe1d and particles refused it (they went forward only). */
static void check_time_goes_back(const char *ref, double t1, double t0)
{
    char ini[1024];
    snprintf(ini, sizeof ini,
             "[run]\ndim = 2\nsamples = 100\nseed = 1\n"
             "[initial]\ntype = gaussian\nmean = 0\ncov = identity\n"
             "[energy]\nplugin = fpe\npotential = quartic\nscale = 0.02\n"
             "[map]\nplugin = affine\n"
             "[scheme]\nplugin = euler\nstep = 0.01\nt_end = 1\n"
             "[reference]\nplugin = %s\n%s", ref,
             strcmp(ref, "particles") == 0 ? "particles = 200\nw2_samples = 200\n" : "");
    wgf_problem *p = test_make_problem(ini, NULL, 0);
    wgf_error err = {0};
    const wgf_plugin *pl;
    const wgf_section *sec;
    ck_assert(wgf_problem_reference(p, &pl, &sec));
    const wgf_reference_vt *vt = pl->vtable;
    enum { NOUT = 500 };
    double *x = malloc(NOUT * 2 * sizeof *x);
    ck_assert(x != NULL);
    for (size_t k = 0; k < NOUT * 2; k++) /* any samples: the figures compare them with the solution */
        x[k] = 2.0 * sin(0.37 * (double)k + 0.1);
    wgf_batch b = {.n = NOUT, .d = 2, .x = x};
    wgf_reference_setup setup = {.problem = p, .nout = NOUT, .z = x};
    void *back, *fresh;
    ck_assert_msg(vt->create(sec, &setup, &back, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(vt->create(sec, &setup, &fresh, &err) == WGF_OK, "%s", err.msg);
    size_t nc = vt->ncolumns(back);
    ck_assert(nc > 0 && nc <= 8);
    double v1[8], vb[8], vf[8];
    wgf_reference_obs o = {.t = t1, .energy = NAN, .samples = &b};
    ck_assert_msg(vt->eval(back, &o, 1, v1, &err) == WGF_OK, "%s: %s", ref, err.msg);
    o.t = t0;
    ck_assert_msg(vt->eval(back, &o, 1, vb, &err) == WGF_OK, "%s: %s", ref, err.msg);
    ck_assert_msg(vt->eval(fresh, &o, 1, vf, &err) == WGF_OK, "%s: %s", ref, err.msg);
    ck_assert_msg(memcmp(vb, vf, nc * sizeof *vb) == 0, "%s: not the fresh reference's figures", ref);
    ck_assert(memcmp(v1, vf, nc * sizeof *vb) != 0); /* and t1 was another state */
    vt->destroy(back);
    vt->destroy(fresh);
    free(x);
    wgf_problem_free(p);
}

START_TEST(time_goes_back)
{
    check_time_goes_back("fpe1d", 1.0, 0.5);
    check_time_goes_back("particles", 0.02, 0.01);
}
END_TEST

/* The particles reference on the 1-D OU problem V = x^2 / (2 sigma), sigma = 1/2 (drift -a x,
 * a = 2), from N(1, 1/4), observed at t = 0 and at t against output samples all at 0: then
 * mean_err is |mean of the particles| and the sliced W2 (in 1-D the W2 of the sorted values)
 * their root mean square. integrator NULL: the key left at its default. */
enum { OU_A = 2 };

static void particles_ou(const char *integrator, double dt, double D, size_t np, double t, double v0[2],
                         double v1[2])
{
    char ini[1024], key[64] = "";
    if (integrator)
        snprintf(key, sizeof key, "integrator = %s\n", integrator);
    snprintf(ini, sizeof ini,
             "[run]\ndim = 1\nsamples = 100\nseed = 5\n"
             "[initial]\ntype = gaussian\nmean = 1\ncov = 0.25\n"
             "[energy]\nplugin = fpe\npotential = quadratic\nsigma = 0.5\ndiffusion = %.17g\n"
             "[map]\nplugin = affine\n"
             "[scheme]\nplugin = euler\nstep = 0.01\nt_end = 1\n"
             "[reference]\nplugin = particles\nparticles = %zu\nparticle_dt = %.17g\n%s",
             D, np, dt, key);
    wgf_problem *p = test_make_problem(ini, NULL, 0);
    wgf_error err = {0};
    const wgf_plugin *pl;
    const wgf_section *sec;
    ck_assert(wgf_problem_reference(p, &pl, &sec));
    const wgf_reference_vt *vt = pl->vtable;
    double *zero = calloc(np, sizeof *zero), v[3];
    ck_assert(zero != NULL);
    wgf_batch b = {.n = np, .d = 1, .x = zero};
    wgf_reference_setup setup = {.problem = p, .nout = np, .z = zero};
    void *st;
    ck_assert_msg(vt->create(sec, &setup, &st, &err) == WGF_OK, "%s", err.msg);
    wgf_reference_obs o = {.t = 0, .energy = NAN, .samples = &b};
    ck_assert_msg(vt->eval(st, &o, 0, v, &err) == WGF_OK, "%s", err.msg);
    v0[0] = v[0];
    v0[1] = v[1];
    o.t = t;
    ck_assert_msg(vt->eval(st, &o, 0, v, &err) == WGF_OK, "%s", err.msg);
    v1[0] = v[0];
    v1[1] = v[1];
    vt->destroy(st);
    free(zero);
    wgf_problem_free(p);
}

/* Without noise the particles' mean follows the drift exactly, m_K = c^K m_0 with c = 1 - a h
 * (Euler) or 1 - a h + (a h)^2 / 2 (Heun), to rounding; against the flow's e^{-a t} m_0 the
 * error halves with h for Euler and quarters for Heun (observed orders 1.00 and 2.00 here). */
START_TEST(particles_integrator_order)
{
    const double t = 1.0, hs[3] = {0.02, 0.01, 0.005};
    const char *const names[2] = {"euler", "heun"};
    for (int s = 0; s < 2; s++) {
        double e[3];
        for (int i = 0; i < 3; i++) {
            double v0[2], vt[2], h = hs[i], ah = OU_A * h;
            particles_ou(names[s], h, 0.0, 200, t, v0, vt);
            double c = s == 0 ? 1 - ah : 1 - ah + ah * ah / 2, ratio = vt[0] / v0[0];
            ck_assert_msg(fabs(ratio - pow(c, t / h)) < 1e-12 * ratio, "%s, h = %g: mean ratio %.17g, "
                          "the scheme's %.17g", names[s], h, ratio, pow(c, t / h));
            e[i] = fabs(ratio - exp(-OU_A * t));
        }
        for (int i = 0; i < 2; i++) {
            double order = log2(e[i] / e[i + 1]);
            ck_assert_msg(fabs(order - (s + 1)) < 0.05, "%s: observed order %g from h = %g to %g "
                          "(errors %g, %g)", names[s], order, hs[i], hs[i + 1], e[i], e[i + 1]);
        }
    }
}
END_TEST

/* With noise (D = 1/2) each particle is an AR(1) of the scheme's own: x' = c x + k sqrt(2 D h) xi,
 * k = 1 (Euler) or 1 - a h / 2 (stochastic Heun, the same xi in both stages), so at t = K h it is
 * N(c^K m0, c^{2K} v0 + 2 D h k^2 (1 - c^{2K}) / (1 - c^2)) exactly. h = 0.1 makes the schemes'
 * variances 0.278 and 0.247 (a Heun with independent increments in its stages: 0.308), 12 and 24
 * standard errors apart with 20000 particles. */
START_TEST(particles_integrator_noise)
{
    const size_t np = 20000;
    const double D = 0.5, h = 0.1, t = 1.0, m0 = 1.0, var0 = 0.25, ah = OU_A * h, K = t / h;
    const char *const names[2] = {"euler", "heun"};
    for (int s = 0; s < 2; s++) {
        double v0[2], vt[2];
        particles_ou(names[s], h, D, np, t, v0, vt);
        double c = s == 0 ? 1 - ah : 1 - ah + ah * ah / 2, k = s == 0 ? 1 : 1 - ah / 2;
        double me = pow(c, K) * m0,
               ve = pow(c, 2 * K) * var0 + 2 * D * h * k * k * (1 - pow(c, 2 * K)) / (1 - c * c);
        double mean = vt[0], var = vt[1] * vt[1] - mean * mean; /* mean > 0: 0.107 or 0.137, standard error 3.5e-3 */
        ck_assert_msg(fabs(mean - me) < 5 * sqrt(ve / np), "%s: mean %g, the scheme's %g", names[s], mean, me);
        ck_assert_msg(fabs(var - ve) < 5 * ve * sqrt(2.0 / np), "%s: variance %g, the scheme's %g", names[s],
                      var, ve);
    }
}
END_TEST

/* integrator = euler is the default: the same figures to the bit, with and without noise. */
START_TEST(particles_integrator_default)
{
    for (int noisy = 0; noisy < 2; noisy++) {
        double d0[2], dt_[2], e0[2], et[2];
        particles_ou(NULL, 0.01, noisy ? 0.5 : 0.0, 500, 0.3, d0, dt_);
        particles_ou("euler", 0.01, noisy ? 0.5 : 0.0, 500, 0.3, e0, et);
        ck_assert(memcmp(d0, e0, sizeof d0) == 0 && memcmp(dt_, et, sizeof dt_) == 0);
    }
}
END_TEST

static double pair_energy(size_t n, size_t d, const double *x)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < n; k++) {
            if (k == i)
                continue;
            double r2 = 0.0;
            for (size_t j = 0; j < d; j++)
                r2 += (x[i * d + j] - x[k * d + j]) * (x[i * d + j] - x[k * d + j]);
            s += W(r2);
        }
    return s / (2.0 * n * (n - 1.0));
}

START_TEST(particles_aggregation)
{
    wgf_error err = {0};
    /* Two bodies in 1-D: y = x1 - x2 obeys y' = -2 (y^2 - 1) y, so z = y^2 is
     * logistic: z(t) = 1 / (1 + (1/z0 - 1) e^{-4t}). */
    double x2[2] = {0.3, 0.1};
    ck_assert_int_eq(wgf_particles_aggregation(2, 1, x2, 1.0, 0.01, &err), WGF_OK);
    double z0 = 0.04, z = 1.0 / (1.0 + (1.0 / z0 - 1.0) * exp(-4.0));
    ck_assert_close(x2[0] - x2[1], sqrt(z), 1e-8);
    ck_assert_close(x2[0] + x2[1], 0.4, 1e-14);

    /* 2-D from a Gaussian cloud: centre of mass kept, energy decreasing,
     * and at large t the ring of radius 1/sqrt(3) about the centre (for N
     * equally spaced points on a circle the force balance gives R^2 = 1/3
     * exactly, for any N >= 3). */
    const size_t n = 120, d = 2;
    double *x = malloc(n * d * sizeof *x), m0[2], m1[2];
    gsl_rng *r = make_rng(23);
    for (size_t i = 0; i < n * d; i++)
        x[i] = 0.2 + gsl_ran_gaussian(r, 0.3);
    gsl_rng_free(r);
    wgf_moments(n, d, x, m0, NULL);
    double e0 = pair_energy(n, d, x);
    ck_assert_int_eq(wgf_particles_aggregation(n, d, x, 1.0, 0.02, &err), WGF_OK);
    double e1 = pair_energy(n, d, x);
    ck_assert_double_lt(e1, e0);
    ck_assert_int_eq(wgf_particles_aggregation(n, d, x, 40.0, 0.05, &err), WGF_OK);
    wgf_moments(n, d, x, m1, NULL);
    ck_assert_close(m1[0], m0[0], 1e-12);
    ck_assert_close(m1[1], m0[1], 1e-12);
    double rm, rsd;
    wgf_radial_stats(n, d, x, m1, &rm, &rsd);
    ck_assert_close(rm, wgf_aggregation_ring_radius(2), 1e-3);
    ck_assert_double_lt(rsd, 1e-3);
    /* The discrete energy exceeds the ring's by O(1/N). */
    ck_assert_close(pair_energy(n, d, x), wgf_aggregation_ring_energy(2), 2.0 / n);
    free(x);
}
END_TEST

/* ================================================================ diagnostics */

START_TEST(moments_and_distances_by_hand)
{
    const double x[6] = {0, 0, 2, 0, 1, 3};
    double m[2], C[4];
    wgf_moments(3, 2, x, m, C);
    ck_assert_close(m[0], 1.0, 1e-15);
    ck_assert_close(m[1], 1.0, 1e-15);
    ck_assert_close(C[0], 1.0, 1e-15); /* (1 + 1 + 0)/2 */
    ck_assert_close(C[1], 0.0, 1e-15);
    ck_assert_close(C[2], 0.0, 1e-15);
    ck_assert_close(C[3], 3.0, 1e-15); /* (1 + 1 + 4)/2 */
    const double a[2] = {1, 2}, b[2] = {4, 6};
    ck_assert_close(wgf_dist_l2(2, a, b), 5.0, 1e-15);
    const double big[2] = {3e200, 4e200}, zero[2] = {0, 0};
    ck_assert_close(wgf_dist_l2(2, big, zero) / 1e200, 5.0, 1e-15);
    /* Radial stats: a square of half-diagonal 2 about (1, 1). */
    const double sq[8] = {3, 1, 1, 3, -1, 1, 1, -1}, c[2] = {1, 1};
    double rm, rsd;
    wgf_radial_stats(4, 2, sq, c, &rm, &rsd);
    ck_assert_close(rm, 2.0, 1e-15);
    ck_assert_close(rsd, 0.0, 1e-15);
    const double line[3] = {1, 2, 6};
    wgf_radial_stats(3, 1, line, NULL, &rm, &rsd);
    ck_assert_close(rm, 3.0, 1e-15);
    ck_assert_close(rsd, sqrt(7.0), 1e-15); /* (4 + 1 + 9)/2 */
}
END_TEST

START_TEST(w2_gaussian_cases)
{
    double w2;
    wgf_error err = {0};
    /* 1-D: W2^2 = (m1 - m2)^2 + (s1 - s2)^2. */
    const double m1 = 0.3, m2 = -1.2, v1 = 2.0, v2 = 0.5;
    ck_assert_int_eq(wgf_w2_gaussian(1, &m1, &v1, &m2, &v2, &w2, &err), WGF_OK);
    ck_assert_close(w2, hypot(m1 - m2, sqrt(v1) - sqrt(v2)), 1e-14);

    /* Commuting covariances Q diag(a) Q^T, Q diag(b) Q^T:
     * W2^2 = |dm|^2 + sum (sqrt a - sqrt b)^2. */
    const double c = cos(0.7), s = sin(0.7);
    const double Q[9] = {c, -s, 0, s, c, 0, 0, 0, 1};
    const double a[3] = {1.0, 4.0, 0.25}, bb[3] = {9.0, 1.0, 0.25};
    double C1[9], C2[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            C1[i * 3 + j] = C2[i * 3 + j] = 0.0;
            for (int k = 0; k < 3; k++) {
                C1[i * 3 + j] += Q[i * 3 + k] * a[k] * Q[j * 3 + k];
                C2[i * 3 + j] += Q[i * 3 + k] * bb[k] * Q[j * 3 + k];
            }
        }
    const double mu1[3] = {1, 2, 3}, mu2[3] = {0, 2, 5};
    ck_assert_int_eq(wgf_w2_gaussian(3, mu1, C1, mu2, C2, &w2, &err), WGF_OK);
    ck_assert_close(w2 * w2, 1.0 + 4.0 + 4.0 + 1.0 + 0.0, 1e-13);

    /* Non-commuting 2-D: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for 2 x 2
     * SPD M, and tr(C2^1/2 C1 C2^1/2) = tr(C1 C2), det = det C1 det C2. */
    const double A1[4] = {2.0, 0.7, 0.7, 1.0}, A2[4] = {0.5, -0.2, -0.2, 1.5}, z[2] = {0, 0};
    double trc = A1[0] * A2[0] + 2 * A1[1] * A2[1] + A1[3] * A2[3];
    double det = (A1[0] * A1[3] - A1[1] * A1[1]) * (A2[0] * A2[3] - A2[1] * A2[1]);
    double expect = A1[0] + A1[3] + A2[0] + A2[3] - 2.0 * sqrt(trc + 2.0 * sqrt(det));
    ck_assert_int_eq(wgf_w2_gaussian(2, z, A1, z, A2, &w2, &err), WGF_OK);
    ck_assert_close(w2 * w2, expect, 1e-13);
    double w2r;
    ck_assert_int_eq(wgf_w2_gaussian(2, z, A2, z, A1, &w2r, &err), WGF_OK);
    ck_assert_close(w2r, w2, 1e-13);

    /* Singular (rank one) and equal: zero up to the sqrt of rounding. */
    const double S[4] = {1.0, 1.0, 1.0, 1.0};
    ck_assert_int_eq(wgf_w2_gaussian(2, z, S, z, S, &w2, &err), WGF_OK);
    ck_assert_double_lt(w2, 1e-7);
    /* Not a covariance. */
    const double bad[4] = {1.0, 2.0, 2.0, 1.0};
    ck_assert_int_eq(wgf_w2_gaussian(2, z, bad, z, A1, &w2, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "semidefinite") != NULL, "%s", err.msg);
}
END_TEST

/* Symmetric KL: by hand in 1-D, as a sum over eigendirections for commuting
 * covariances, and the sample estimate on exact draws of q with their exact
 * log-densities against the closed form. */
START_TEST(skl_gaussian_cases)
{
    double skl;
    wgf_error err = {0};
    /* 1-D: (v1/v2 + v2/v1 - 2)/2 + dm^2 (1/v1 + 1/v2)/2 */
    const double m1 = 0.3, m2 = -1.2, v1 = 2.0, v2 = 0.5;
    ck_assert_int_eq(wgf_skl_gaussian(1, &m1, &v1, &m2, &v2, &skl, &err), WGF_OK);
    ck_assert_close(skl, (4.0 + 0.25 - 2.0) / 2 + 2.25 * (0.5 + 2.0) / 2, 1e-14);
    /* Q diag(a) Q^T against Q diag(b) Q^T: the 1-D terms along Q's columns, dm = Q e */
    const double c = cos(0.7), s = sin(0.7);
    const double Q[9] = {c, -s, 0, s, c, 0, 0, 0, 1};
    const double a[3] = {1.0, 4.0, 0.25}, bb[3] = {9.0, 1.0, 0.25}, e[3] = {0.5, -1.0, 2.0};
    double C1[9], C2[9], mu1[3], mu2[3] = {0, 0, 0}, expect = 0.0;
    for (int i = 0; i < 3; i++) {
        mu1[i] = 0.0;
        for (int j = 0; j < 3; j++) {
            mu1[i] += Q[i * 3 + j] * e[j];
            C1[i * 3 + j] = C2[i * 3 + j] = 0.0;
            for (int k = 0; k < 3; k++) {
                C1[i * 3 + j] += Q[i * 3 + k] * a[k] * Q[j * 3 + k];
                C2[i * 3 + j] += Q[i * 3 + k] * bb[k] * Q[j * 3 + k];
            }
        }
        expect += (a[i] / bb[i] + bb[i] / a[i] - 2.0) / 2 + e[i] * e[i] * (1 / a[i] + 1 / bb[i]) / 2;
    }
    ck_assert_int_eq(wgf_skl_gaussian(3, mu1, C1, mu2, C2, &skl, &err), WGF_OK);
    ck_assert_close(skl, expect, 1e-13);
    ck_assert_int_eq(wgf_skl_gaussian(3, mu1, C1, mu1, C1, &skl, &err), WGF_OK);
    ck_assert_double_lt(fabs(skl), 1e-13);

    /* The sample estimate: n draws x = m + L y of q = N(m, C1/4 + I) in 3-D, far (p = N(0, C/2),
     * skl ~ 1) and near (p = q with a small shift of its mean: skl ~ 1e-3), against the closed
     * form; the terms are ~ (log q/p)^2, so the relative error is ~ 1/sqrt(n) even when skl is
     * small. (The weights p/q have a finite variance when p's tails are not much heavier than
     * q's, as here; MATH.md 7.) */
    enum { N = 200000 };
    double *x = malloc(N * 3 * sizeof *x), *lq = malloc(N * sizeof *lq);
    ck_assert(x && lq);
    double Cq[9], L[9], mq[3] = {0.2, -0.1, 0.4};
    for (int i = 0; i < 9; i++)
        Cq[i] = C1[i] / 4 + (i % 4 == 0);
    ck_assert_int_eq(wgf_cholesky(3, Cq, L, &err), WGF_OK);
    double logdet = 2 * (log(L[0]) + log(L[4]) + log(L[8]));
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 11);
    for (size_t n = 0; n < N; n++) {
        double y[3], q2 = 0;
        for (int i = 0; i < 3; i++) {
            y[i] = gsl_ran_gaussian(r, 1.0);
            q2 += y[i] * y[i];
        }
        for (int i = 0; i < 3; i++) {
            x[n * 3 + i] = mq[i];
            for (int j = 0; j <= i; j++)
                x[n * 3 + i] += L[i * 3 + j] * y[j];
        }
        lq[n] = -0.5 * (3 * log(2 * M_PI) + logdet + q2);
    }
    gsl_rng_free(r);
    const double near[3] = {0.23, -0.1, 0.4};
    double Chalf[9];
    for (int i = 0; i < 9; i++)
        Chalf[i] = Cq[i] / 2;
    for (int k = 0; k < 2; k++) {
        const double *mp = k ? near : mu2, *Cp = k ? Cq : Chalf;
        double est, exact;
        ck_assert_int_eq(wgf_skl_gaussian(3, mq, Cq, mp, Cp, &exact, &err), WGF_OK);
        ck_assert_int_eq(wgf_skl_samples(N, 3, x, lq, mp, Cp, &est, &err), WGF_OK);
        ck_assert_msg(fabs(est - exact) < 0.03 * exact, "skl estimate %g, closed form %g", est, exact);
        ck_assert(k == 0 ? exact > 0.5 : exact < 1e-2);
    }
    free(x);
    free(lq);
}
END_TEST

/* Brute force over all n! permutations (Heap's algorithm). */
static double brute_w2(size_t n, size_t d, const double *x, const double *y)
{
    size_t perm[8], c[8] = {0};
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    double best = HUGE_VAL;
    size_t i = 0;
    for (;;) {
        double s = 0.0;
        for (size_t k = 0; k < n; k++)
            for (size_t j = 0; j < d; j++)
                s += (x[k * d + j] - y[perm[k] * d + j]) * (x[k * d + j] - y[perm[k] * d + j]);
        best = fmin(best, s);
        while (i < n && c[i] >= i) {
            c[i] = 0;
            i++;
        }
        if (i >= n)
            break;
        size_t sw = i % 2 ? c[i] : 0, tmp = perm[sw];
        perm[sw] = perm[i];
        perm[i] = tmp;
        c[i]++;
        i = 0;
    }
    return sqrt(best / n);
}

START_TEST(w2_assignment_exact)
{
    gsl_rng *r = make_rng(31);
    wgf_error err = {0};
    double x[7 * 3], y[7 * 3], w2;
    for (size_t n = 1; n <= 7; n++)
        for (size_t d = 1; d <= 3; d++)
            for (int rep = 0; rep < 4; rep++) {
                for (size_t i = 0; i < n * d; i++) {
                    x[i] = gsl_ran_gaussian(r, 1.0);
                    /* rep 3: integer grid, many ties */
                    y[i] = rep == 3 ? (double)(int)(3 * gsl_rng_uniform(r)) : gsl_ran_gaussian(r, 1.0) + 0.5;
                }
                ck_assert_int_eq(wgf_w2_assignment(n, d, x, y, &w2, &err), WGF_OK);
                ck_assert_close(w2, brute_w2(n, d, x, y), 1e-13);
            }

    /* 1-D: the sorted matching (which the assignment takes in 1-D) is
     * optimal: the same sets on a line in 2-D, by the Hungarian search. */
    const size_t n = 400;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    double *a2 = calloc(2 * n, sizeof *a2), *b2 = calloc(2 * n, sizeof *b2);
    for (size_t i = 0; i < n; i++) {
        a2[2 * i] = a[i] = gsl_ran_gaussian(r, 1.0);
        b2[2 * i] = b[i] = gsl_ran_exponential(r, 1.0);
    }
    ck_assert_int_eq(wgf_w2_assignment(n, 2, a2, b2, &w2, &err), WGF_OK);
    ck_assert_close(w2, wgf_w2_1d(n, a, b), 1e-13);
    double w1;
    ck_assert_int_eq(wgf_w2_assignment(n, 1, a, b, &w1, &err), WGF_OK);
    ck_assert_close(w1, w2, 1e-13);
    free(a);
    free(b);
    free(a2);
    free(b2);

    /* A translate: the identity matching is optimal, W2 = |c|. */
    const size_t m = 300, d = 3;
    double *p = malloc(m * d * sizeof *p), *q = malloc(m * d * sizeof *q);
    const double shift[3] = {0.3, -0.4, 1.2};
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < d; j++) {
            p[i * d + j] = gsl_ran_gaussian(r, 1.0);
            q[((i * 7) % m) * d + j] = p[i * d + j] + shift[j]; /* shuffled */
        }
    ck_assert_int_eq(wgf_w2_assignment(m, d, p, q, &w2, &err), WGF_OK);
    ck_assert_close(w2, 1.3, 1e-13);
    p[5] = NAN;
    ck_assert_int_eq(wgf_w2_assignment(m, d, p, q, &w2, &err), WGF_ENUMERIC);
    free(p);
    free(q);
    gsl_rng_free(r);
}
END_TEST

static int cmp_double_test(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* Both signs, zeros of both signs, ties, subnormals and magnitudes from
 * 1e-300 to 1e150: every byte of the sort keys varies. */
static double mixed_value(gsl_rng *r, size_t i)
{
    switch (i % 7) {
    case 0: return gsl_ran_gaussian(r, 1.0);
    case 1: return (i % 2 ? -1.0 : 1.0) * 0.0;
    case 2: return (double)(int)(5 * gsl_rng_uniform(r)) - 2.0;
    case 3: return gsl_ran_gaussian(r, 1.0) * 1e-310;
    case 4: return gsl_ran_gaussian(r, 1.0) * pow(10.0, 300.0 * gsl_rng_uniform(r) - 300.0);
    case 5: return gsl_ran_gaussian(r, 1.0) * pow(10.0, 150.0 * gsl_rng_uniform(r));
    default: return -gsl_ran_exponential(r, 3.0);
    }
}

START_TEST(w2_1d_and_sliced)
{
    const double x[2] = {0.0, 1.0}, y[2] = {3.0, 1.0};
    ck_assert_close(wgf_w2_1d(2, x, y), sqrt(2.5), 1e-15); /* (0,1) vs (1,3) */

    /* The 1-D matching's sort against qsort's order, to the bit (the same
     * sum over the same sorted pairs), and a set against itself shuffled. */
    {
        gsl_rng *g = make_rng(43);
        const size_t m = 1001;
        double *u = malloc(4 * m * sizeof *u), *v = u + m, *su = v + m, *sv = su + m;
        for (size_t i = 0; i < m; i++) {
            u[i] = mixed_value(g, i);
            v[i] = mixed_value(g, 3 * i + 1);
        }
        memcpy(su, u, 2 * m * sizeof *u);
        qsort(su, m, sizeof *su, cmp_double_test);
        qsort(sv, m, sizeof *sv, cmp_double_test);
        double s = 0.0;
        for (size_t i = 0; i < m; i++)
            s += (su[i] - sv[i]) * (su[i] - sv[i]);
        ck_assert(isfinite(s) && s > 0.0);
        ck_assert_double_eq(wgf_w2_1d(m, u, v), sqrt(s / (double)m));
        for (size_t i = 0; i < m; i++)
            v[(i * 10) % m] = u[i]; /* 10 and 1001 are coprime: a permutation */
        ck_assert_double_eq(wgf_w2_1d(m, u, v), 0.0);
        free(u);
        gsl_rng_free(g);
    }

    gsl_rng *r = make_rng(41);
    wgf_error err = {0};
    const size_t n = 500, d = 3;
    double *p = malloc(n * d * sizeof *p), *q = malloc(n * d * sizeof *q), w2;
    for (size_t i = 0; i < n * d; i++)
        p[i] = gsl_ran_gaussian(r, 1.0);
    /* Identical sets (in another order): exactly zero. */
    for (size_t i = 0; i < n; i++)
        memcpy(q + ((i * 3) % n) * d, p + i * d, d * sizeof *p);
    ck_assert_int_eq(wgf_w2_sliced(n, d, p, q, 50, r, &w2, &err), WGF_OK);
    ck_assert_double_eq(w2, 0.0);
    /* 1-D: every direction is +-1, so sliced = 1-D. */
    ck_assert_int_eq(wgf_w2_sliced(n, 1, p, p + n, 5, r, &w2, &err), WGF_OK);
    ck_assert_close(w2, wgf_w2_1d(n, p, p + n), 1e-14);
    /* A translate by c: each slice gives (theta . c)^2, whose mean over the
     * sphere in 3-D is |c|^2/3 (theta . c / |c| is uniform on [-1, 1]) with
     * variance |c|^4 (1/5 - 1/9). Five standard errors. */
    const double c[3] = {1.0, -2.0, 0.5}, c2 = 5.25;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            q[i * d + j] = p[i * d + j] + c[j];
    const size_t K = 4000;
    ck_assert_int_eq(wgf_w2_sliced(n, d, p, q, K, r, &w2, &err), WGF_OK);
    double se = c2 * sqrt((1.0 / 5.0 - 1.0 / 9.0) / K);
    ck_assert_msg(fabs(w2 * w2 - c2 / 3.0) < 5.0 * se, "sliced^2 = %g, expected %g", w2 * w2, c2 / 3.0);
    ck_assert_int_eq(wgf_w2_sliced(n, d, p, q, 0, r, &w2, &err), WGF_EINVAL);
    free(p);
    free(q);
    gsl_rng_free(r);
}
END_TEST

/* In 1-D the sliced W2 sorts x and y once and reads them forwards or
 * backwards by the sign of each direction: against projecting and sorting
 * every direction as in d > 1 (qsort), from the same stream, to the bit, on
 * samples with ties, zeros of both signs, subnormals and wide magnitudes. */
START_TEST(sliced_1d_as_every_direction_sorted)
{
    const size_t n = 777, K = 40;
    gsl_rng *g = make_rng(47);
    double *x = malloc(4 * n * sizeof *x), *y = x + n, *a = y + n, *b = a + n;
    for (size_t i = 0; i < n; i++) {
        x[i] = mixed_value(g, i);
        y[i] = mixed_value(g, 3 * i + 1) * 0.5 + (i % 5 == 0 ? 1e100 : 0.0);
    }
    gsl_rng *r1 = make_rng(53), *r2 = make_rng(53);
    double w2, acc = 0.0, theta;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_w2_sliced(n, 1, x, y, K, r1, &w2, &err), WGF_OK);
    int signs[2] = {0, 0};
    for (size_t k = 0; k < K; k++) {
        gsl_ran_dir_nd(r2, 1, &theta);
        signs[theta > 0]++;
        for (size_t i = 0; i < n; i++) {
            a[i] = 0.0 + theta * x[i];
            b[i] = 0.0 + theta * y[i];
        }
        qsort(a, n, sizeof *a, cmp_double_test);
        qsort(b, n, sizeof *b, cmp_double_test);
        double s = 0.0;
        for (size_t i = 0; i < n; i++)
            s += (a[i] - b[i]) * (a[i] - b[i]);
        acc += s / (double)n;
    }
    ck_assert(signs[0] > 0 && signs[1] > 0); /* both readings taken */
    ck_assert(isfinite(w2) && w2 > 0.0);
    ck_assert_double_eq(w2, sqrt(acc / (double)K));
    /* the stream left where every direction's draw leaves it */
    ck_assert_double_eq(gsl_rng_uniform(r1), gsl_rng_uniform(r2));
    free(x);
    gsl_rng_free(g);
    gsl_rng_free(r1);
    gsl_rng_free(r2);
}
END_TEST

/* wgf_skl_samples computes the samples' terms on threads and adds them in
 * sample order: one thread and two give the same sum to the bit, and it is the
 * sum of the same terms formed one after another (to rounding: a build for the
 * host's processor may fuse a multiply and an add in one and not the other). */
START_TEST(skl_samples_in_sample_order)
{
    const size_t n = 2001, d = 3;
    const double m[3] = {0.5, -1.0, 0.2}, C[9] = {2.0, 0.3, 0.0, 0.3, 1.0, -0.2, 0.0, -0.2, 0.5};
    gsl_rng *g = make_rng(61);
    double *x = malloc((n * d + n) * sizeof *x), *lq = x + n * d, L[9], y[3], skl;
    for (size_t i = 0; i < n * d; i++)
        x[i] = gsl_ran_gaussian(g, 1.3);
    for (size_t k = 0; k < n; k++)
        lq[k] = -3.0 + 0.1 * gsl_ran_gaussian(g, 1.0);
    wgf_error err = {0};
#ifdef _OPENMP
    double skl1;
    omp_set_num_threads(1);
    ck_assert_int_eq(wgf_skl_samples(n, d, x, lq, m, C, &skl1, &err), WGF_OK);
    omp_set_num_threads(2);
#endif
    ck_assert_int_eq(wgf_skl_samples(n, d, x, lq, m, C, &skl, &err), WGF_OK);
#ifdef _OPENMP
    ck_assert(memcmp(&skl, &skl1, sizeof skl) == 0);
#endif
    ck_assert_int_eq(wgf_cholesky(d, C, L, &err), WGF_OK);
    double logdet = 0.0, s = 0.0;
    for (size_t i = 0; i < d; i++)
        logdet += 2.0 * log(L[i * d + i]);
    double c0 = -0.5 * ((double)d * log(2.0 * M_PI) + logdet);
    for (size_t k = 0; k < n; k++) {
        double q2 = 0.0;
        for (size_t i = 0; i < d; i++) {
            double acc = x[k * d + i] - m[i];
            for (size_t j = 0; j < i; j++)
                acc -= L[i * d + j] * y[j];
            y[i] = acc / L[i * d + i];
            q2 += y[i] * y[i];
        }
        double r = lq[k] - (c0 - 0.5 * q2);
        s += -expm1(-r) * r;
    }
    ck_assert(isfinite(skl) && skl > 0.0);
    ck_assert_double_eq_tol(skl, s / (double)n, 1e-13 * skl);
    free(x);
    gsl_rng_free(g);
}
END_TEST

/* wgf_moments keeps a sum per entry, and the covariance's rows go to threads:
 * one thread and two give the same moments to the bit, and they are the sums
 * of a pass over the samples per entry, term by term in sample order (to
 * rounding, as above). */
START_TEST(moments_in_sample_order)
{
    const size_t n = 3001, d = 7;
    gsl_rng *g = make_rng(59);
    double *x = malloc(n * d * sizeof *x), m[7], C[49], mr[7], Cr[49];
    for (size_t i = 0; i < n * d; i++)
        x[i] = gsl_ran_gaussian(g, 1.0) * pow(10.0, (double)(i % 5)) + (double)(i % d);
#ifdef _OPENMP
    double m1[7], C1[49];
    omp_set_num_threads(1);
    wgf_moments(n, d, x, m1, C1);
    omp_set_num_threads(2);
#endif
    wgf_moments(n, d, x, m, C);
#ifdef _OPENMP
    ck_assert(memcmp(m, m1, sizeof m) == 0);
    ck_assert(memcmp(C, C1, sizeof C) == 0);
#endif
    for (size_t j = 0; j < d; j++) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++)
            s += x[i * d + j];
        mr[j] = s / (double)n;
    }
    for (size_t j = 0; j < d; j++)
        for (size_t k = 0; k < d; k++) {
            double s = 0.0;
            size_t hi = j > k ? j : k, lo = j > k ? k : j;
            for (size_t i = 0; i < n; i++)
                s += (x[i * d + hi] - mr[hi]) * (x[i * d + lo] - mr[lo]);
            Cr[j * d + k] = s / (double)(n - 1);
        }
    for (size_t j = 0; j < d; j++)
        ck_assert_double_eq_tol(m[j], mr[j], 1e-14 * fabs(mr[j]) + 1e-15);
    for (size_t j = 0; j < d * d; j++)
        ck_assert_double_eq_tol(C[j], Cr[j], 1e-12 * sqrt(Cr[(j / d) * (d + 1)] * Cr[(j % d) * (d + 1)]));
    double m0[7];
    wgf_moments(n, d, x, m0, NULL); /* the mean alone: the same sums */
    ck_assert(memcmp(m0, m, sizeof m) == 0);
    wgf_moments(1, d, x, m, C); /* one sample: no covariance */
    ck_assert(m[0] == x[0] && isnan(C[0]) && isnan(C[d * d - 1]));
    free(x);
    gsl_rng_free(g);
}
END_TEST

/* ================================================================ reference plugins */

/* A run of ini with the test plugins on the path; its directory (remove
 * and free it) in *dir when dir is not NULL. */
static int run_ref(const char *ini, const char *const *sets, size_t nsets, int check_only, char **dir,
                   wgf_run_result *res, wgf_diag *diag, wgf_error *err)
{
    char *file = test_write_ini(ini);
    char *out = test_temp_dir("ref");
    wgf_run_opts opts = {.file = file, .outdir = out, .sets = sets, .nsets = nsets, .quiet = 1,
                         .check_only = check_only, .plugin_path = getenv("WGF_TEST_PLUGINS")};
    int rc = wgf_run(&opts, res, diag, err);
    unlink(file);
    free(file);
    if (dir)
        *dir = out;
    else {
        test_remove_tree(out);
        free(out);
    }
    return rc;
}

static double figure(const wgf_run_result *res, const char *name)
{
    for (size_t i = 0; i < res->nfigures; i++)
        if (strcmp(res->figures[i].name, name) == 0)
            return res->figures[i].value;
    ck_abort_msg("no figure %s", name);
    return NAN;
}

/* goodenergy's flow dx/dt = -x with an affine map and a fixed batch: the
 * natural gradient is the exact velocity, so every Euler step scales the
 * map by 1 - h and E|x|^2 = (1 - h)^(2K) E|X_0|^2, against the reference's
 * exp(-2t) E|X_0|^2: the gap is |(1 - h)^(2K) e^(2t) - 1| = 5.0e-3 for h =
 * 0.01, t = 1. */
static const char good_ini[] =
    "[run]\ndim = 2\nsamples = 500\nseed = 2\n"
    "[initial]\ntype = gaussian\nmean = 0.5 -1\ncov = diag 1 0.25\n"
    "[energy]\nplugin = goodenergy\n"
    "[map]\nplugin = affine\n"
    "[metric]\ntol = 1e-12\n"
    "[scheme]\nplugin = euler\nstep = 0.01\nt_end = 1\nsamples = fixed\n"
    "[output]\nevery = 50\nsamples = 1000\nplots = false\n"
    "[reference]\nplugin = goodref\n";

/* A reference written outside wgf, as one .so (tests/plugins/goodref.c),
 * given the problem's energy through the public API: its columns reach
 * history.csv, its figures summary.ini (with its own key for one). */
START_TEST(user_reference_plugin)
{
    wgf_run_result res;
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    char *dir;
    int rc = run_ref(good_ini, NULL, 0, 0, &dir, &res, &diag, &err);
    ck_assert_msg(rc == WGF_OK, "%s %s", diag.n ? diag.msg[0] : "", err.msg);
    double expect = fabs(pow(0.99, 200) * exp(2.0) - 1);
    ck_assert_close(figure(&res, "gap"), expect, 1e-6);
    ck_assert_close(figure(&res, "m2_ref"), exp(-2.0) * figure(&res, "m2") / pow(0.99, 200), 1e-6);
    char *h = test_read_file(dir, "history.csv", NULL);
    ck_assert_msg(strstr(h, ",wall_s,misfit,misfit_abs,bound,m2,m2_ref,m2_gap\n") != NULL, "header: %.120s", h);
    free(h);
    char *sum = test_read_file(dir, "summary.ini", NULL);
    ck_assert_msg(strstr(sum, "[error]\nreference = goodref\nm2 = ") != NULL, "%s", sum);
    ck_assert(strstr(sum, "\ngap = ") != NULL);
    free(sum);
    test_remove_tree(dir);
    free(dir);
    wgf_diag_free(&diag);
}
END_TEST

/* The reference refuses a problem it does not describe, naming the key. */
START_TEST(user_reference_refuses)
{
    const char *sets[] = {"energy.plugin=fpe", "energy.potential=quadratic", "energy.mu=0",
                          "energy.sigma=identity"};
    wgf_run_result res;
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    int rc = run_ref(good_ini, sets, 4, 0, NULL, &res, &diag, &err);
    ck_assert_int_eq(rc, WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, ":25: reference.plugin: goodref needs a single energy, goodenergy") != NULL,
                  "%s", err.msg);
    wgf_diag_free(&diag);
}
END_TEST

/* type = NAME (the older key) is plugin = NAME: the same figures. */
START_TEST(type_is_plugin)
{
    const char *by_type[] = {"reference.type=goodref", "scheme.t_end=0.2"};
    const char *by_plugin[] = {"scheme.t_end=0.2"};
    char *ini = strdup(good_ini);
    ck_assert(ini != NULL);
    *strstr(ini, "plugin = goodref") = ';'; /* the file names no reference */
    wgf_run_result r1, r2;
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    ck_assert_msg(run_ref(ini, by_type, 2, 0, NULL, &r1, &diag, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(run_ref(good_ini, by_plugin, 1, 0, NULL, &r2, &diag, &err) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(r1.nfigures, 3);
    ck_assert_uint_eq(r2.nfigures, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(r1.figures[i].name, r2.figures[i].name);
        ck_assert(memcmp(&r1.figures[i].value, &r2.figures[i].value, sizeof(double)) == 0);
    }
    free(ini);
    wgf_diag_free(&diag);
}
END_TEST

/* [reference] errors: both keys in the file and different; with none, keys
 * of the reference plugins on the path are accepted and a typo is not; a
 * plugin's own keys are checked against its schema. A --set of either key
 * overrides the file's. */
START_TEST(reference_section_errors)
{
    wgf_run_result res;
    wgf_error err = {0};
    wgf_diag diag;
    char *ini = malloc(sizeof good_ini + 32);
    ck_assert(ini != NULL);
    snprintf(ini, sizeof good_ini + 32, "%stype = ou\n", good_ini);
    wgf_diag_init(&diag);
    ck_assert_int_eq(run_ref(ini, NULL, 0, 1, NULL, &res, &diag, &err), WGF_EINVAL);
    ck_assert_uint_eq(diag.n, 1);
    ck_assert_msg(strstr(diag.msg[0], ":26: reference.type: 'ou' differs from reference.plugin = goodref "
                                      "(type is the older name of plugin: give one of them)") != NULL,
                  "%s", diag.msg[0]);
    wgf_diag_free(&diag);

    const char *override[] = {"reference.type=goodref"};
    wgf_diag_init(&diag);
    ck_assert_int_eq(run_ref(ini, override, 1, 1, NULL, &res, &diag, &err), WGF_OK);
    wgf_diag_free(&diag);

    const char *none_ok[] = {"reference.plugin=none", "reference.w2_samples=10", "reference.fv_cells=20"};
    wgf_diag_init(&diag);
    ck_assert_int_eq(run_ref(good_ini, none_ok, 3, 1, NULL, &res, &diag, &err), WGF_OK);
    wgf_diag_free(&diag);

    const char *none_typo[] = {"reference.plugin=none", "reference.w2_sample=10"};
    wgf_diag_init(&diag);
    ck_assert_int_eq(run_ref(good_ini, none_typo, 2, 1, NULL, &res, &diag, &err), WGF_EINVAL);
    ck_assert_uint_eq(diag.n, 1);
    ck_assert_msg(strstr(diag.msg[0], "reference.w2_sample: unknown key") != NULL, "%s", diag.msg[0]);
    wgf_diag_free(&diag);

    const char *foreign[] = {"reference.plugin=ou", "reference.fv_cells=20"};
    wgf_diag_init(&diag);
    ck_assert_int_eq(run_ref(good_ini, foreign, 2, 1, NULL, &res, &diag, &err), WGF_EINVAL);
    ck_assert_msg(diag.n == 1 && strstr(diag.msg[0], "reference.fv_cells: unknown key (allowed: plugin, type)"),
                  "%s", diag.n ? diag.msg[0] : err.msg);
    wgf_diag_free(&diag);
    free(ini);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reference");
    TCase *tc = tcase_create("ou");
    tcase_add_test(tc, ou_initial_and_limit);
    tcase_add_test(tc, ou_solves_the_moment_odes);
    tcase_add_test(tc, ou_scalar_and_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("barenblatt");
    tcase_add_test(tc, barenblatt_mass_moment_energy_by_quadrature);
    tcase_add_test(tc, barenblatt_samples);
    tcase_add_test(tc, barenblatt_score_and_log_density);
    tcase_add_test(tc, barenblatt_self_similar);
    tcase_add_test(tc, barenblatt_solves_pme);
    suite_add_tcase(s, tc);
    tc = tcase_create("aggregation");
    tcase_add_test(tc, aggregation_formulas);
    suite_add_tcase(s, tc);
    tc = tcase_create("fv1d");
    tcase_add_test(tc, fv_mass_and_positivity);
    tcase_add_test(tc, fv_converges_to_gibbs);
    tcase_add_test(tc, fv_ou_moments_converge);
    tcase_add_test(tc, fv_quantile_and_w2);
    suite_add_tcase(s, tc);
    tc = tcase_create("particles");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, particles_fpe_moments);
    tcase_add_test(tc, time_goes_back);
    tcase_add_test(tc, particles_aggregation);
    tcase_add_test(tc, particles_integrator_order);
    tcase_add_test(tc, particles_integrator_noise);
    tcase_add_test(tc, particles_integrator_default);
    suite_add_tcase(s, tc);
    tc = tcase_create("diagnostics");
    tcase_add_test(tc, moments_and_distances_by_hand);
    tcase_add_test(tc, w2_gaussian_cases);
    tcase_add_test(tc, skl_gaussian_cases);
    tcase_add_test(tc, w2_assignment_exact);
    tcase_add_test(tc, w2_1d_and_sliced);
    tcase_add_test(tc, sliced_1d_as_every_direction_sorted);
    tcase_add_test(tc, moments_in_sample_order);
    tcase_add_test(tc, skl_samples_in_sample_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("plugins");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, user_reference_plugin);
    tcase_add_test(tc, user_reference_refuses);
    tcase_add_test(tc, type_is_plugin);
    tcase_add_test(tc, reference_section_errors);
    suite_add_tcase(s, tc);
    return test_main(s);
}
