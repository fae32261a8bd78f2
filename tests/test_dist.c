/* test_dist.c: the initial laws lambda (wgf/dist.h, MATH.md 1 and 6):
 * sampling against moments, log-densities against closed forms and
 * quadrature, scores against closed forms and finite differences of the
 * log-density, and the configuration errors of [initial]. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_rng.h>
#include <wgf/reference.h>

#include "testutil.h"

/* ------------------------------------------------------------ helpers */

/* A law from the text of an experiment ([initial] is read with the schema
 * of wgf_dist_schema for dimension dim; name stands for the file name, so
 * that relative data files resolve against its directory). Returns the
 * status of wgf_dist_create, or WGF_EINVAL with the diagnostics in err. */
static int make_dist(const char *text, size_t dim, const char *name, wgf_dist **dist, wgf_error *err)
{
    wgf_config *cfg = NULL;
    wgf_diag diag;
    wgf_diag_init(&diag);
    *dist = NULL;
    int rc = wgf_config_load_string(&cfg, text, name, &diag, err);
    ck_assert_msg(rc == WGF_OK && diag.n == 0, "cannot parse the test text");
    const wgf_param *schemas[2] = {wgf_dist_schema(), NULL};
    wgf_section *sec = wgf_config_section(cfg, "initial", schemas, dim, &diag);
    if (!sec) {
        ck_assert(diag.n > 0);
        wgf_error_set(err, WGF_EINVAL, "%s", diag.msg[0]);
        rc = WGF_EINVAL;
    } else
        rc = wgf_dist_create(dist, sec, err);
    wgf_section_free(sec);
    wgf_diag_free(&diag);
    wgf_config_free(cfg);
    return rc;
}

static wgf_dist *dist_ok(const char *text, size_t dim)
{
    wgf_dist *dist;
    wgf_error err = {0};
    ck_assert_msg(make_dist(text, dim, "test.ini", &dist, &err) == WGF_OK, "%s", err.msg);
    ck_assert_int_eq(wgf_dist_dim(dist), dim);
    return dist;
}

static gsl_rng *rng_seeded(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    ck_assert(r != NULL);
    gsl_rng_set(r, seed);
    return r;
}

static double *samples(const wgf_dist *dist, size_t n, unsigned long seed)
{
    size_t d = wgf_dist_dim(dist);
    double *z = malloc(n * d * sizeof *z);
    ck_assert(z != NULL);
    gsl_rng *r = rng_seeded(seed);
    wgf_error err = {0};
    ck_assert_msg(wgf_dist_sample(dist, r, n, z, &err) == WGF_OK, "%s", err.msg);
    gsl_rng_free(r);
    return z;
}

static double log_density1(const wgf_dist *dist, const double *z)
{
    double lp;
    wgf_error err = {0};
    ck_assert_msg(wgf_dist_log_density(dist, 1, z, &lp, &err) == WGF_OK, "%s", err.msg);
    return lp;
}

/* The score at z against central differences of the log-density: h = 1e-5
 * times the length scale; the truncation error is O(h^2) times the third
 * derivative, the rounding error 1e-16 |l| / h: both below 1e-7 here. */
static void check_score_fd(const wgf_dist *dist, const double *z, double scale, double tol)
{
    size_t d = wgf_dist_dim(dist);
    double s[8], zz[8], h = 1e-5 * scale;
    ck_assert(d <= 8);
    wgf_error err = {0};
    ck_assert_msg(wgf_dist_score(dist, 1, z, s, &err) == WGF_OK, "%s", err.msg);
    for (size_t i = 0; i < d; i++) {
        memcpy(zz, z, d * sizeof(double));
        zz[i] = z[i] + h;
        double lp = log_density1(dist, zz);
        zz[i] = z[i] - h;
        double lm = log_density1(dist, zz);
        double fd = (lp - lm) / (2 * h);
        ck_assert_msg(fabs(s[i] - fd) <= tol * fmax(1.0, fabs(fd)), "score %zu: %.12g, differences %.12g",
                      i, s[i], fd);
    }
}

/* ------------------------------------------------------------ gaussian */

static const char gauss3[] = "[initial]\ntype = gaussian\nmean = 1 -2 0.5\n"
                             "cov = full 2 0.6 -0.3 0.6 1 0.2 -0.3 0.2 0.5\n";
static const double g_mean[3] = {1, -2, 0.5};
static const double g_cov[9] = {2, 0.6, -0.3, 0.6, 1, 0.2, -0.3, 0.2, 0.5};

/* Inverse and determinant of a 3 x 3 matrix by cofactors (independent of
 * the Cholesky factor the law uses). */
static double inverse3(const double *a, double *inv)
{
    inv[0] = a[4] * a[8] - a[5] * a[7];
    inv[1] = a[2] * a[7] - a[1] * a[8];
    inv[2] = a[1] * a[5] - a[2] * a[4];
    inv[3] = a[5] * a[6] - a[3] * a[8];
    inv[4] = a[0] * a[8] - a[2] * a[6];
    inv[5] = a[2] * a[3] - a[0] * a[5];
    inv[6] = a[3] * a[7] - a[4] * a[6];
    inv[7] = a[1] * a[6] - a[0] * a[7];
    inv[8] = a[0] * a[4] - a[1] * a[3];
    double det = a[0] * inv[0] + a[1] * inv[3] + a[2] * inv[6];
    for (int i = 0; i < 9; i++)
        inv[i] /= det;
    return det;
}

/* n = 200000 samples: the standard error of mean_i is sqrt(C_ii / n) and
 * that of C_ij is sqrt((C_ii C_jj + C_ij^2) / n) (Gaussian fourth moments);
 * five of them. A wrong Cholesky factor (transposed, or the upper triangle)
 * moves C by O(0.1-1), hundreds of standard errors. */
START_TEST(test_gaussian_moments)
{
    wgf_dist *g = dist_ok(gauss3, 3);
    ck_assert_str_eq(wgf_dist_type(g), "gaussian");
    ck_assert_uint_eq(wgf_dist_provides(g), WGF_DIST_DENSITY | WGF_DIST_SCORE);
    const double *m, *C;
    ck_assert_int_eq(wgf_dist_gaussian(g, &m, &C), WGF_OK);
    for (int i = 0; i < 3; i++)
        ck_assert(m[i] == g_mean[i]);
    for (int i = 0; i < 9; i++)
        ck_assert(C[i] == g_cov[i]);
    const size_t n = 200000, d = 3;
    double *z = samples(g, n, 5);
    double mean[3], cov[9];
    wgf_moments(n, d, z, mean, cov);
    for (size_t i = 0; i < d; i++) {
        double se = sqrt(g_cov[i * d + i] / (double)n);
        ck_assert_msg(fabs(mean[i] - g_mean[i]) < 5 * se, "mean %zu: %g, expected %g", i, mean[i], g_mean[i]);
        for (size_t j = 0; j < d; j++) {
            double c = g_cov[i * d + j];
            double sec = sqrt((g_cov[i * d + i] * g_cov[j * d + j] + c * c) / (double)n);
            ck_assert_msg(fabs(cov[i * d + j] - c) < 5 * sec, "cov %zu %zu: %g, expected %g", i, j,
                          cov[i * d + j], c);
        }
    }
    /* another seed gives other samples */
    double *z2 = samples(g, 10, 6);
    ck_assert(memcmp(z, z2, 10 * d * sizeof(double)) != 0);
    free(z);
    free(z2);
    wgf_dist_free(g);
}
END_TEST

START_TEST(test_gaussian_density_score)
{
    wgf_dist *g = dist_ok(gauss3, 3);
    double inv[9], det = inverse3(g_cov, inv);
    const double pts[4][3] = {{1, -2, 0.5}, {0, 0, 0}, {3.1, -1.2, -0.7}, {-2, -4, 2}};
    double lp[4], s[12];
    wgf_error err = {0};
    ck_assert(wgf_dist_log_density(g, 4, &pts[0][0], lp, &err) == WGF_OK);
    ck_assert(wgf_dist_score(g, 4, &pts[0][0], s, &err) == WGF_OK);
    for (int k = 0; k < 4; k++) {
        double y[3], q = 0;
        for (int i = 0; i < 3; i++)
            y[i] = pts[k][i] - g_mean[i];
        for (int i = 0; i < 3; i++) {
            double ci = 0;
            for (int j = 0; j < 3; j++)
                ci += inv[i * 3 + j] * y[j];
            q += y[i] * ci;
            ck_assert_close(s[k * 3 + i], -ci, 1e-12);
        }
        double expect = -1.5 * log(2 * M_PI) - 0.5 * log(det) - 0.5 * q;
        ck_assert_close(lp[k], expect, 1e-12);
        check_score_fd(g, pts[k], 1.0, 1e-7);
    }
    /* one call on many points equals point-by-point calls */
    ck_assert_close(log_density1(g, pts[2]), lp[2], 0);
    wgf_dist_free(g);
}
END_TEST

/* d = 70 > 64: the log-density and the score use a heap buffer there. A
 * diagonal covariance has log p = sum_i (-log(2 pi v_i)/2 - (z_i-m_i)^2/(2 v_i)). */
START_TEST(test_gaussian_high_dim)
{
    enum { D = 70 };
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof text, "[initial]\ntype = gaussian\nmean = 0.5\ncov = diag");
    double v[D], z[2 * D];
    for (int i = 0; i < D; i++) {
        v[i] = 0.5 + 0.02 * i;
        len += (size_t)snprintf(text + len, sizeof text - len, " %g", v[i]);
        z[i] = sin(1.3 * i);
        z[D + i] = 0.5 + 0.1 * cos(0.7 * i);
    }
    snprintf(text + len, sizeof text - len, "\n");
    wgf_dist *g = dist_ok(text, D);
    double lp[2], s[2 * D];
    wgf_error err = {0};
    ck_assert(wgf_dist_log_density(g, 2, z, lp, &err) == WGF_OK);
    ck_assert(wgf_dist_score(g, 2, z, s, &err) == WGF_OK);
    for (int k = 0; k < 2; k++) {
        double expect = 0;
        for (int i = 0; i < D; i++) {
            double y = z[k * D + i] - 0.5;
            expect += -0.5 * log(2 * M_PI * v[i]) - 0.5 * y * y / v[i];
            ck_assert_close(s[k * D + i], -y / v[i], 1e-12);
        }
        ck_assert_close(lp[k], expect, 1e-12);
    }
    wgf_dist_free(g);
}
END_TEST

/* ------------------------------------------------------------ barenblatt */

static const struct {
    size_t d;
    double m;
} bb_cases[] = {{1, 2.0}, {1, 3.0}, {2, 2.0}, {2, 3.0}, {3, 2.0}, {1, 1.5}};

static wgf_dist *barenblatt_dist(size_t d, double m, double t0)
{
    char text[256];
    snprintf(text, sizeof text, "[initial]\ntype = barenblatt\nm = %g\nt0 = %g\n", m, t0);
    wgf_dist *b = dist_ok(text, d);
    ck_assert_str_eq(wgf_dist_type(b), "barenblatt");
    ck_assert_uint_eq(wgf_dist_provides(b), WGF_DIST_DENSITY | WGF_DIST_SCORE);
    ck_assert_int_eq(wgf_dist_gaussian(b, NULL, NULL), WGF_EUNSUP);
    return b;
}

/* n = 100000 samples. |x|^2 = R^2 u with u ~ Beta(d/2, p+1) (MATH.md 6), so
 * the standard error of the sample second moment is R^2 sqrt(var u / n),
 * var u = ab/((a+b)^2 (a+b+1)); five of them. Every sample lies inside the
 * support, and the largest |x| is within 3% of its edge: the chance that all
 * 100000 miss the outer 3% is below e^-60 for these laws. */
START_TEST(test_barenblatt_samples)
{
    size_t d = bb_cases[_i].d;
    double m = bb_cases[_i].m, t0 = 0.1;
    if (m < 1.8)
        return; /* p = 2: the edge is too thin for the 3% radius bound */
    wgf_dist *b = barenblatt_dist(d, m, t0);
    wgf_barenblatt bb;
    wgf_error err = {0};
    ck_assert(wgf_barenblatt_init(&bb, d, m, &err) == WGF_OK);
    const size_t n = 100000;
    double *z = samples(b, n, 9);
    double m2 = 0, rmax = 0, R = wgf_barenblatt_radius(&bb, t0);
    double mean[3] = {0, 0, 0};
    for (size_t k = 0; k < n; k++) {
        double r2 = 0;
        for (size_t i = 0; i < d; i++) {
            r2 += z[k * d + i] * z[k * d + i];
            mean[i] += z[k * d + i] / (double)n;
        }
        m2 += r2 / (double)n;
        rmax = fmax(rmax, sqrt(r2));
    }
    double a = 0.5 * (double)d, bp = bb.p + 1.0;
    double var_u = a * bp / ((a + bp) * (a + bp) * (a + bp + 1.0));
    double se = R * R * sqrt(var_u / (double)n);
    double m2_ref = wgf_barenblatt_second_moment(&bb, t0);
    ck_assert_msg(fabs(m2 - m2_ref) < 5 * se, "d = %zu, m = %g: E|x|^2 = %g, expected %g (se %g)", d, m, m2,
                  m2_ref, se);
    /* the closed form itself: E u = a/(a+b) */
    ck_assert_close(m2_ref, R * R * a / (a + bp), 1e-12);
    ck_assert_msg(rmax < R && rmax > 0.97 * R, "largest |x| %g, radius %g", rmax, R);
    /* symmetric about the origin: sd of a coordinate <= R */
    for (size_t i = 0; i < d; i++)
        ck_assert_msg(fabs(mean[i]) < 5 * R / sqrt((double)n), "mean %zu: %g", i, mean[i]);
    /* the samples have finite log-densities */
    double *lp = malloc(n * sizeof *lp);
    ck_assert(lp != NULL);
    ck_assert(wgf_dist_log_density(b, n, z, lp, &err) == WGF_OK);
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(isfinite(lp[k]), "sample %zu: log-density %g", k, lp[k]);
    free(lp);
    free(z);
    wgf_dist_free(b);
}
END_TEST

typedef struct radial {
    const wgf_dist *dist;
    size_t d;
} radial;

/* |S^(d-1)| r^(d-1) lambda(r e1): the radial density. */
static double radial_density(double r, void *user)
{
    const radial *rd = user;
    double x[3] = {r, 0, 0}, lp;
    wgf_error err;
    wgf_dist_log_density(rd->dist, 1, x, &lp, &err);
    double surf = rd->d == 1 ? 2.0 : rd->d == 2 ? 2 * M_PI : 4 * M_PI;
    return surf * pow(r, (double)rd->d - 1.0) * exp(lp);
}

/* The log-density is normalised: int lambda = 1, by adaptive quadrature
 * (QAGS copes with the (R - r)^p edge) on [0, R] along a ray (|S^0| = 2
 * gives the 1-D integral over [-R, R]). It is -inf outside the support, and
 * the density agrees with wgf_barenblatt_density (pow form) inside. */
START_TEST(test_barenblatt_density)
{
    size_t d = bb_cases[_i].d;
    double m = bb_cases[_i].m, t0 = 0.1;
    wgf_dist *b = barenblatt_dist(d, m, t0);
    wgf_barenblatt bb;
    wgf_error err = {0};
    ck_assert(wgf_barenblatt_init(&bb, d, m, &err) == WGF_OK);
    double R = wgf_barenblatt_radius(&bb, t0);
    radial rd = {b, d};
    gsl_function fn = {radial_density, &rd};
    gsl_set_error_handler_off(); /* a status to check, not an abort */
    gsl_integration_workspace *ws = gsl_integration_workspace_alloc(1000);
    ck_assert(ws != NULL);
    double mass, abserr;
    ck_assert_int_eq(gsl_integration_qags(&fn, 0.0, R, 1e-12, 1e-11, 1000, ws, &mass, &abserr), 0);
    gsl_integration_workspace_free(ws);
    ck_assert_msg(fabs(mass - 1.0) < 1e-8, "d = %zu, m = %g: mass %.12g", d, m, mass);

    double x[3] = {0, 0, 0};
    for (int k = 0; k < 5; k++) {
        x[0] = (0.2 * k - 0.3) * R;
        x[d - 1] += 0.1 * R;
        double lp = log_density1(b, x);
        ck_assert_close(lp, log(wgf_barenblatt_density(&bb, t0, x)), 1e-12);
    }
    double out[3] = {0, 0, 0};
    out[0] = 1.001 * R;
    ck_assert(log_density1(b, out) == -INFINITY);
    out[0] = -2 * R;
    ck_assert(log_density1(b, out) == -INFINITY);
    wgf_dist_free(b);
}
END_TEST

/* The score against central differences of the log-density, inside the
 * support (|x| <= 0.9 R, where the third derivative is moderate), and 0
 * outside it (rho vanishes there, so rho s = grad rho holds with s = 0). */
START_TEST(test_barenblatt_score)
{
    size_t d = bb_cases[_i].d;
    double m = bb_cases[_i].m, t0 = 0.1;
    wgf_dist *b = barenblatt_dist(d, m, t0);
    wgf_barenblatt bb;
    wgf_error err = {0};
    ck_assert(wgf_barenblatt_init(&bb, d, m, &err) == WGF_OK);
    double R = wgf_barenblatt_radius(&bb, t0);
    const double dirs[4][3] = {{1, 0, 0}, {-0.6, -0.8, 0}, {0.48, 0.64, -0.6}, {-1, 0.3, 0.2}};
    for (int k = 0; k < 4; k++)
        for (double r = 0.05; r <= 0.9; r += 0.17) {
            double x[3], nrm = 0;
            for (size_t i = 0; i < d; i++)
                nrm += dirs[k][i] * dirs[k][i];
            for (size_t i = 0; i < d; i++)
                x[i] = r * R * dirs[k][i] / sqrt(nrm);
            check_score_fd(b, x, R, 1e-6);
        }
    double out[3] = {0, 0, 0}, s[3] = {1, 1, 1};
    out[d - 1] = 1.5 * R;
    ck_assert(wgf_dist_score(b, 1, out, s, &err) == WGF_OK);
    for (size_t i = 0; i < d; i++)
        ck_assert(s[i] == 0.0);
    wgf_dist_free(b);
}
END_TEST

/* Near the support's edge the log-density tends to -inf and the score
 * grows like 1/(R - |x|), but the porous-medium estimator only sees
 * exp((m-1) l) = rho^(m-1), the pressure t0^(-alpha(m-1)) (C - k|x|^2
 * t0^(-2 beta)) (p (m-1) = 1): affine in |x|^2, bounded, and zero at the
 * edge. So exp((m-1) l)/exp((m-1) l(0)) = 1 - |x|^2/R^2, to rounding, also
 * 1e-9 R from the edge (where |x|^2 loses 1e-16/1e-9 to cancellation). */
START_TEST(test_barenblatt_edge)
{
    size_t d = bb_cases[_i].d;
    double m = bb_cases[_i].m, t0 = 0.1;
    wgf_dist *b = barenblatt_dist(d, m, t0);
    wgf_barenblatt bb;
    wgf_error err = {0};
    ck_assert(wgf_barenblatt_init(&bb, d, m, &err) == WGF_OK);
    double R = wgf_barenblatt_radius(&bb, t0), zero[3] = {0, 0, 0};
    double e0 = exp((m - 1.0) * log_density1(b, zero));
    ck_assert_close(e0, pow(t0, -bb.alpha * (m - 1.0)) * bb.C, 1e-12);
    const double gaps[] = {0.5, 0.1, 1e-3, 1e-6, 1e-9};
    for (size_t k = 0; k < sizeof gaps / sizeof gaps[0]; k++) {
        double x[3] = {0, 0, 0};
        x[0] = R * (1.0 - gaps[k]);
        double u = (1.0 - gaps[k]) * (1.0 - gaps[k]);
        double lp = log_density1(b, x);
        ck_assert_msg(isfinite(lp), "log-density %g at 1 - %g of the radius", lp, gaps[k]);
        double ratio = exp((m - 1.0) * lp) / e0;
        ck_assert_msg(fabs(ratio / (1.0 - u) - 1.0) < 1e-5, "gap %g: rho^(m-1) ratio %.12g, expected %.12g",
                      gaps[k], ratio, 1.0 - u);
        double s[3];
        ck_assert(wgf_dist_score(b, 1, x, s, &err) == WGF_OK);
        /* s = -2 p x / (R^2 - |x|^2) on the ray */
        ck_assert_close(s[0], -2.0 * bb.p * x[0] / (R * R * (1.0 - u)), 1e-5);
    }
    wgf_dist_free(b);
}
END_TEST

/* ------------------------------------------------------------ uniform */

static const char unif3[] = "[initial]\ntype = uniform\nlow = -1 0 2\nhigh = 1 0.5 5\n";

/* 100000 samples in the box [low, high); the mean within five standard
 * errors (high - low)/sqrt(12 n) of the centre. */
START_TEST(test_uniform)
{
    const double lo[3] = {-1, 0, 2}, hi[3] = {1, 0.5, 5};
    wgf_dist *u = dist_ok(unif3, 3);
    ck_assert_str_eq(wgf_dist_type(u), "uniform");
    ck_assert_uint_eq(wgf_dist_provides(u), WGF_DIST_DENSITY);
    const size_t n = 100000;
    double *z = samples(u, n, 3), mean[3] = {0, 0, 0};
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i < 3; i++) {
            double v = z[k * 3 + i];
            ck_assert_msg(v >= lo[i] && v < hi[i], "sample %zu, coordinate %d: %g", k, i, v);
            mean[i] += v / (double)n;
        }
    for (int i = 0; i < 3; i++)
        ck_assert_msg(fabs(mean[i] - 0.5 * (lo[i] + hi[i])) < 5 * (hi[i] - lo[i]) / sqrt(12.0 * (double)n),
                      "mean %d: %g", i, mean[i]);
    double *lp = malloc(n * sizeof *lp);
    ck_assert(lp != NULL);
    wgf_error err = {0};
    ck_assert(wgf_dist_log_density(u, n, z, lp, &err) == WGF_OK);
    for (size_t k = 0; k < n; k++)
        ck_assert_close(lp[k], -log(2.0 * 0.5 * 3.0), 1e-14);
    const double outside[3] = {0, 0.6, 3};
    ck_assert(log_density1(u, outside) == -INFINITY);
    double s[3];
    ck_assert_int_eq(wgf_dist_score(u, 1, z, s, &err), WGF_EUNSUP);
    ck_assert_msg(strstr(err.msg, "uniform") && strstr(err.msg, "score"), "%s", err.msg);
    ck_assert_int_eq(wgf_dist_gaussian(u, NULL, NULL), WGF_EUNSUP);
    free(lp);
    free(z);
    wgf_dist_free(u);
}
END_TEST

/* ------------------------------------------------------------ file */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/wgf-dist-XXXXXX");
    ck_assert(mkdtemp(tmpdir) != NULL);
}

static void remove_tmpdir(void)
{
    const char *names[] = {"data.csv", "exp.ini"};
    char path[256];
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    ck_assert_msg(rmdir(tmpdir) == 0, "cannot remove %s: %s", tmpdir, strerror(errno));
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert(fputs(text, f) >= 0);
    ck_assert(fclose(f) == 0);
}

/* The law of data.csv in 2-D, data.csv relative to the experiment's
 * directory (the file name given to the configuration). */
static int file_dist(const char *csv, wgf_dist **dist, wgf_error *err)
{
    char name[256];
    write_file("data.csv", csv);
    snprintf(name, sizeof name, "%s/exp.ini", tmpdir);
    return make_dist("[initial]\ntype = file\nfile = data.csv\n", 2, name, dist, err);
}

/* Sampling resamples the rows: every sample is a row, and each of the nrows
 * rows is drawn n/nrows times within five binomial standard errors. */
static void check_rows(const wgf_dist *f, const double *rows, size_t nrows)
{
    const size_t n = 30000;
    double *z = samples(f, n, 4);
    size_t count[8] = {0};
    ck_assert(nrows <= 8);
    for (size_t k = 0; k < n; k++) {
        size_t r = 0;
        while (r < nrows && !(z[2 * k] == rows[2 * r] && z[2 * k + 1] == rows[2 * r + 1]))
            r++;
        ck_assert_msg(r < nrows, "sample %zu (%g, %g) is not a row of the file", k, z[2 * k], z[2 * k + 1]);
        count[r]++;
    }
    double pr = 1.0 / (double)nrows, se = sqrt((double)n * pr * (1 - pr));
    for (size_t r = 0; r < nrows; r++)
        ck_assert_msg(fabs((double)count[r] - (double)n * pr) <= 5 * se, "row %zu drawn %zu times of %zu", r,
                      count[r], n);
    free(z);
}

START_TEST(test_file_rows)
{
    make_tmpdir();
    wgf_dist *f;
    wgf_error err = {0};
    /* as wgf writes samples: a header row, commas */
    ck_assert_msg(file_dist("x1,x2\n1,2\n3,4.5\n-5,6e-1\n", &f, &err) == WGF_OK, "%s", err.msg);
    ck_assert_str_eq(wgf_dist_type(f), "file");
    ck_assert_uint_eq(wgf_dist_provides(f), 0);
    const double rows3[] = {1, 2, 3, 4.5, -5, 0.6};
    check_rows(f, rows3, 3);
    double lp, s[2];
    ck_assert_int_eq(wgf_dist_log_density(f, 1, rows3, &lp, &err), WGF_EUNSUP);
    ck_assert_msg(strstr(err.msg, "density") != NULL, "%s", err.msg);
    ck_assert_int_eq(wgf_dist_score(f, 1, rows3, s, &err), WGF_EUNSUP);
    ck_assert_msg(strstr(err.msg, "score") != NULL, "%s", err.msg);
    ck_assert_int_eq(wgf_dist_gaussian(f, NULL, NULL), WGF_EUNSUP);
    wgf_dist_free(f);

    /* no header; spaces and tabs; comments, blank lines, CRLF line ends */
    ck_assert_msg(file_dist("# two samples\n\n 1 2\r\n\r\n3\t4\r\n", &f, &err) == WGF_OK, "%s", err.msg);
    const double rows2[] = {1, 2, 3, 4};
    check_rows(f, rows2, 2);
    wgf_dist_free(f);

    /* a header after comment lines */
    ck_assert_msg(file_dist("# from a run\nx1,x2\n7,8\n", &f, &err) == WGF_OK, "%s", err.msg);
    const double rows1[] = {7, 8};
    check_rows(f, rows1, 1);
    wgf_dist_free(f);

    /* an absolute path */
    char text[256];
    snprintf(text, sizeof text, "[initial]\ntype = file\nfile = %s/data.csv\n", tmpdir);
    ck_assert_msg(make_dist(text, 2, "elsewhere/exp.ini", &f, &err) == WGF_OK, "%s", err.msg);
    check_rows(f, rows1, 1);
    wgf_dist_free(f);
    remove_tmpdir();
}
END_TEST

/* Malformed files: the message names the file and the line. */
START_TEST(test_file_errors)
{
    make_tmpdir();
    static const struct {
        const char *csv, *where;
    } bad[] = {
        {"x1,x2\n1,2\n3,abc\n", "data.csv:3:"},       /* not a number */
        {"1,2\n3\n", "data.csv:2:"},                  /* too few columns */
        {"1,2\n3,4,5\n", "data.csv:2:"},              /* too many columns */
        {"1,2\nx1,x2\n", "data.csv:2:"},              /* a header after data */
        {"1,2\n3,inf\n", "data.csv:2:"},              /* not finite */
        {"x1,x2\n# nothing\n", "no samples"},         /* no rows */
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        wgf_dist *f = (wgf_dist *)1;
        wgf_error err = {0};
        ck_assert_int_eq(file_dist(bad[k].csv, &f, &err), WGF_EINVAL);
        ck_assert(f == NULL);
        ck_assert_msg(strstr(err.msg, bad[k].where) != NULL && strstr(err.msg, tmpdir) != NULL,
                      "case %zu: %s", k, err.msg);
    }
    /* a missing file, and a file law without a file */
    wgf_dist *f;
    wgf_error err = {0};
    char name[256];
    snprintf(name, sizeof name, "%s/exp.ini", tmpdir);
    ck_assert_int_eq(make_dist("[initial]\ntype = file\nfile = missing.csv\n", 2, name, &f, &err),
                     WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "initial.file") && strstr(err.msg, "missing.csv"), "%s", err.msg);
    ck_assert_int_eq(make_dist("[initial]\ntype = file\n", 2, name, &f, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "initial.type") && strstr(err.msg, "file"), "%s", err.msg);
    remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------ configuration */

START_TEST(test_config_errors)
{
    wgf_dist *g;
    wgf_error err = {0};
    /* not positive definite */
    ck_assert_int_eq(make_dist("[initial]\ntype = gaussian\ncov = full 1 2 2 1\n", 2, "e.ini", &g, &err),
                     WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "e.ini:3: initial.cov") && strstr(err.msg, "positive definite"), "%s",
                  err.msg);
    /* not symmetric (the lower triangle alone would pass) */
    ck_assert_int_eq(make_dist("[initial]\ntype = gaussian\ncov = full 1 0.5 0 1\n", 2, "e.ini", &g, &err),
                     WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "initial.cov") && strstr(err.msg, "not symmetric"), "%s", err.msg);
    /* an empty box */
    ck_assert_int_eq(make_dist("[initial]\ntype = uniform\nlow = 0 1\nhigh = 1 1\n", 2, "e.ini", &g, &err),
                     WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "initial.high") && strstr(err.msg, "coordinate 2"), "%s", err.msg);
    /* m <= 1 and t0 <= 0 are refused by the schema */
    ck_assert_int_eq(make_dist("[initial]\ntype = barenblatt\nm = 1\n", 1, "e.ini", &g, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "initial.m") != NULL, "%s", err.msg);
    ck_assert_int_eq(make_dist("[initial]\ntype = barenblatt\nt0 = 0\n", 1, "e.ini", &g, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "initial.t0") != NULL, "%s", err.msg);
    ck_assert_int_eq(make_dist("[initial]\ntype = cauchy\n", 1, "e.ini", &g, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "initial.type") != NULL, "%s", err.msg);
}
END_TEST

/* Through wgf_problem_create: the problem refuses a law that lacks what the
 * energy needs, and names the key. */
static int problem_from(const char *ini, char *msg, size_t size)
{
    char path[256];
    snprintf(path, sizeof path, "%s/exp.ini", tmpdir);
    write_file("exp.ini", ini);
    wgf_run_opts opts = {.file = path};
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    wgf_problem *p = NULL;
    int rc = wgf_problem_create(&p, &opts, &diag, &err);
    msg[0] = '\0';
    for (size_t i = 0; i < diag.n; i++)
        snprintf(msg + strlen(msg), size - strlen(msg), "%s\n", diag.msg[i]);
    if (rc != WGF_OK)
        snprintf(msg + strlen(msg), size - strlen(msg), "%s", err.msg);
    wgf_diag_free(&diag);
    wgf_problem_free(p);
    return rc;
}

START_TEST(test_problem_needs)
{
    ck_assert_msg(getenv("WGF_PLUGIN_PATH") != NULL, "WGF_PLUGIN_PATH is not set (run through make check)");
    make_tmpdir();
    write_file("data.csv", "x1,x2\n0,0\n1,0\n0,1\n");
    char msg[4096];
    /* pme needs the log-density: refused */
    int rc = problem_from("[run]\ndim = 2\n[initial]\ntype = file\nfile = data.csv\n"
                          "[energy]\nplugin = pme\nm = 2\n[map]\nplugin = affine\n",
                          msg, sizeof msg);
    ck_assert_int_eq(rc, WGF_EINVAL);
    ck_assert_msg(strstr(msg, "initial.type") && strstr(msg, "no density") && strstr(msg, "exp.ini"), "%s",
                  msg);
    /* so does the Fokker-Planck entropy */
    rc = problem_from("[run]\ndim = 2\n[initial]\ntype = file\nfile = data.csv\n"
                      "[energy]\nplugin = fpe\npotential = quadratic\n[map]\nplugin = affine\n",
                      msg, sizeof msg);
    ck_assert_int_eq(rc, WGF_EINVAL);
    ck_assert_msg(strstr(msg, "initial.type") && strstr(msg, "no density"), "%s", msg);
    /* aggregation needs neither: samples from a file are fine */
    rc = problem_from("[run]\ndim = 2\n[initial]\ntype = file\nfile = data.csv\n"
                      "[energy]\nplugin = aggregation\n[map]\nplugin = affine\n",
                      msg, sizeof msg);
    ck_assert_msg(rc == WGF_OK, "%s", msg);
    /* a covariance that is not SPD names initial.cov, with its line */
    rc = problem_from("[run]\ndim = 2\n[initial]\ntype = gaussian\ncov = full 1 0 0 -1\n"
                      "[energy]\nplugin = pme\n[map]\nplugin = affine\n",
                      msg, sizeof msg);
    ck_assert_int_eq(rc, WGF_EINVAL);
    ck_assert_msg(strstr(msg, "exp.ini:5: initial.cov") != NULL, "%s", msg);
    remove_tmpdir();
}
END_TEST

static Suite *dist_suite(void)
{
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("gaussian");
    tcase_add_test(tc, test_gaussian_moments);
    tcase_add_test(tc, test_gaussian_density_score);
    tcase_add_test(tc, test_gaussian_high_dim);
    suite_add_tcase(s, tc);
    int nb = (int)(sizeof bb_cases / sizeof bb_cases[0]);
    tc = tcase_create("barenblatt");
    tcase_add_loop_test(tc, test_barenblatt_samples, 0, nb);
    tcase_add_loop_test(tc, test_barenblatt_density, 0, nb);
    tcase_add_loop_test(tc, test_barenblatt_score, 0, nb);
    tcase_add_loop_test(tc, test_barenblatt_edge, 0, nb);
    suite_add_tcase(s, tc);
    tc = tcase_create("uniform");
    tcase_add_test(tc, test_uniform);
    suite_add_tcase(s, tc);
    tc = tcase_create("file");
    tcase_add_test(tc, test_file_rows);
    tcase_add_test(tc, test_file_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("config");
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_problem_needs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(dist_suite());
}
