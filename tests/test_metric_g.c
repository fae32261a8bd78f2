/* test_metric_g.c: the Wasserstein metric G (plugins/metrics/wasserstein.c,
 * MATH.md 4) against what it must equal or bound: G <= G-hat in the Loewner
 * order; G = G-hat where the basis gradients span the columns of J (affine
 * map, d = 1, degree >= 2); with an affine map and a quadratic basis, the
 * projection of each field J v is S (x - mu) + M mu + c with
 * S C + C S = M C + C M^T (empirical mu, C), to rounding; the solve is the
 * minimum-norm least-squares one; the velocity misfit of a G run is measured
 * against that projection (equal to the J zeta one where G = G-hat, smaller
 * by E|J zeta - Pi(J zeta)|^2 in square where the target is in the basis'
 * span); and the affine 10-D OU run with G ends at the law the G-hat run
 * ends at, to sampling error. */
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <wgf/linalg.h>

#include "testutil.h"

/* The map on n training samples (with scores, for the Wasserstein gradient
 * of the entropy), and the metric prepared there. */
static wgf_eval *prepared(wgf_problem *p, size_t n)
{
    wgf_error err = {0};
    wgf_eval *ev = wgf_eval_create(p, n, WGF_EVAL_SCORE, &err);
    ck_assert_msg(ev != NULL, "%s", err.msg);
    ck_assert_msg(wgf_eval_draw(ev, WGF_STREAM_TRAIN, 3, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(wgf_eval_forward(ev, wgf_problem_theta(p), &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(wgf_problem_metric_prepare(p, ev, &err) == WGF_OK, "%s", err.msg);
    return ev;
}

/* Vector k of a deterministic family, entries in [-1, 1]. */
static void test_vector(size_t P, unsigned k, double *v)
{
    for (size_t j = 0; j < P; j++)
        v[j] = sin(0.37 * (double)(j + 1) * (double)(k + 2) + 1.1 * (double)k);
}

static double dotp(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double dist(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s);
}

/* 3-D FPE on a 4-layer planar flow; N = 600 spans three blocks. The metric
 * section is appended. */
#define PLANAR3                                                                                     \
    "[run]\ndim = 3\nsamples = 600\nseed = 7\n"                                                     \
    "[initial]\ntype = gaussian\nmean = 0.5 -0.2 0.1\ncov = diag 1 0.5 2\n"                          \
    "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1 0 -1\n"                                  \
    "sigma = full 1 0.2 0 0.2 0.5 0.1 0 0.1 2\ndiffusion = 0.7\n"                                   \
    "[map]\nplugin = planar\nlayers = 4\nblock = 2\n"

/* ------------------------------------------------------------ Loewner order */

/* v^T G v <= v^T Ghat v: the projection of J v is no longer than J v. Both carry 1/N: a
 * metric that forgot it, or normalised its basis in another inner product, exceeds Ghat. */
static void check_loewner(const char *metric)
{
    char text[2048];
    snprintf(text, sizeof text, "%s[metric]\nplugin = wasserstein\n%s", PLANAR3, metric);
    wgf_problem *p = test_make_problem(text, NULL, 0);
    test_perturb(p, 0.3);
    size_t P = wgf_problem_nparams(p);
    wgf_eval *ev = prepared(p, 600);
    double *v = calloc(3 * P, sizeof(double)), *gv = v + P, *hv = v + 2 * P;
    ck_assert_ptr_nonnull(v);
    wgf_error err;
    double sum_g = 0.0, sum_h = 0.0;
    for (unsigned k = 0; k < 20; k++) {
        test_vector(P, k, v);
        ck_assert_msg(wgf_problem_metric_apply(p, v, gv, &err) == WGF_OK, "%s", err.msg);
        ck_assert_msg(wgf_eval_gram(ev, v, hv, &err) == WGF_OK, "%s", err.msg);
        double g = dotp(v, gv, P), h = dotp(v, hv, P);
        ck_assert_msg(g >= -1e-14 * h, "%s: v^T G v = %g < 0", metric, g);
        ck_assert_msg(g <= h * (1.0 + 1e-10), "%s, vector %u: v^T G v = %.15g > v^T Ghat v = %.15g",
                      metric, k, g, h);
        sum_g += g;
        sum_h += h;
    }
    /* and G is not trivially small: most of a planar flow's velocity is a gradient */
    ck_assert_msg(sum_g > 0.2 * sum_h, "%s: sum v^T G v = %g, sum v^T Ghat v = %g", metric, sum_g,
                  sum_h);
    free(v);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}

START_TEST(test_loewner_poly)
{
    check_loewner("degree = 2\n");
    check_loewner("degree = 4\n");
}
END_TEST

START_TEST(test_loewner_rff)
{
    check_loewner("basis = rff\nfeatures = 40\nbandwidth = 2\n");
    check_loewner("basis = both\ndegree = 2\nfeatures = 25\n");
}
END_TEST

/* ------------------------------------------------------------ G = Ghat in 1-D */

/* 1-D affine map: J_n = [z_n, 1] and every field J v = a z + b is linear in x, the gradient of
 * a quadratic, so a basis of degree >= 2 reproduces it: G = Ghat to rounding (and with extra
 * Fourier features too). The basis rank used is R = degree (+ features). */
static void check_1d_equal(const char *metric, unsigned rank)
{
    char text[1024];
    snprintf(text, sizeof text,
             "[run]\ndim = 1\nsamples = 500\nseed = 2\n"
             "[initial]\ntype = gaussian\nmean = 0.3\ncov = 2\n"
             "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1\nsigma = 0.5\ndiffusion = 1\n"
             "[map]\nplugin = affine\n[metric]\nplugin = wasserstein\n%s",
             metric);
    wgf_problem *p = test_make_problem(text, NULL, 0);
    test_perturb(p, 0.4);
    size_t P = wgf_problem_nparams(p);
    ck_assert_uint_eq(P, 2);
    wgf_eval *ev = prepared(p, 500);
    double v[2], gv[2], hv[2], g[2], zeta[2];
    wgf_error err;
    for (unsigned k = 0; k < 4; k++) {
        if (k < 2) {
            v[0] = k == 0;
            v[1] = k == 1;
        } else {
            test_vector(P, k, v);
        }
        ck_assert(wgf_problem_metric_apply(p, v, gv, &err) == WGF_OK);
        ck_assert(wgf_eval_gram(ev, v, hv, &err) == WGF_OK);
        double e = dist(gv, hv, 2), s = sqrt(dotp(hv, hv, 2));
        ck_assert_msg(e <= 1e-11 * s, "%s: |G v - Ghat v| = %g, |Ghat v| = %g", metric, e, s);
    }
    /* the solve: G full rank here, so G zeta = grad F to rounding */
    double F;
    wgf_solve_stats st;
    ck_assert(wgf_problem_energy(p, ev, &F, g, &err) == WGF_OK);
    ck_assert_msg(wgf_problem_metric_solve(p, g, zeta, &st, &err) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(st.iterations, rank);
    ck_assert_uint_eq(st.products, rank);
    ck_assert_msg(st.residual < 1e-12, "residual %g", st.residual);
    ck_assert(wgf_eval_gram(ev, zeta, hv, &err) == WGF_OK);
    ck_assert_msg(dist(hv, g, 2) <= 1e-10 * sqrt(dotp(g, g, 2)), "Ghat zeta != grad F");
    /* the vjps are spent once per prepare */
    ck_assert(wgf_problem_metric_solve(p, g, zeta, &st, &err) == WGF_OK);
    ck_assert_uint_eq(st.products, 0);
    /* G's velocity field is J zeta itself here, so the misfit is the G-hat one */
    double *w = calloc(4 * 500, sizeof *w), *jx = w + 500, *vel = w + 1000, *gw = w + 1500;
    ck_assert(w != NULL);
    wgf_step_info info = {0};
    ck_assert_msg(wgf_problem_misfit(p, ev, zeta, gw, vel, &info, &err) == WGF_OK, "%s", err.msg);
    ck_assert(wgf_eval_jvp(ev, zeta, jx, &err) == WGF_OK);
    double r2 = 0.0, g2 = 0.0;
    for (size_t n = 0; n < 500; n++) {
        r2 += (gw[n] - jx[n]) * (gw[n] - jx[n]) / 500.0;
        g2 += gw[n] * gw[n] / 500.0;
    }
    /* (to 4e-11 with the nearly dependent features of basis = both) */
    ck_assert_msg(dist(vel, jx, 500) <= 1e-9 * sqrt(dotp(jx, jx, 500)), "%s: |G's velocity - J zeta| = %g of %g",
                  metric, dist(vel, jx, 500), sqrt(dotp(jx, jx, 500)));
    ck_assert_msg(fabs(info.misfit - sqrt(r2)) <= 1e-9 * sqrt(g2), "%s: misfit %.17g, with J zeta %.17g",
                  metric, info.misfit, sqrt(r2));
    ck_assert_msg(sqrt(r2) > 1e-3 * sqrt(g2), "a zero misfit: the test cannot fail");
    free(w);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}

START_TEST(test_1d_affine_equals_ghat)
{
    check_1d_equal("degree = 2\n", 2);
    check_1d_equal("degree = 5\n", 5);
    check_1d_equal("basis = both\ndegree = 2\nfeatures = 3\n", 5);
}
END_TEST

/* 200 Fourier features in 1-D are numerically dependent: the cutoff keeps R' < R orthonormal
 * fields (16 here), and the kept span still holds the linear fields, so G = Ghat (measured to
 * 6e-15; a cutoff that kept noise directions or dropped the polynomials would not give it). */
START_TEST(test_1d_dependent_features)
{
    wgf_problem *p = test_make_problem(
        "[run]\ndim = 1\nsamples = 500\nseed = 2\n"
        "[initial]\ntype = gaussian\nmean = 0.3\ncov = 2\n"
        "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1\nsigma = 0.5\ndiffusion = 1\n"
        "[map]\nplugin = affine\n"
        "[metric]\nplugin = wasserstein\nbasis = both\ndegree = 2\nfeatures = 200\n", NULL, 0);
    test_perturb(p, 0.4);
    wgf_eval *ev = prepared(p, 500);
    double v[2] = {0.6, -1.3}, gv[2], hv[2], g[2] = {1.0, 2.0}, zeta[2];
    wgf_error err;
    wgf_solve_stats st;
    ck_assert(wgf_problem_metric_solve(p, g, zeta, &st, &err) == WGF_OK);
    ck_assert_msg(st.iterations > 2 && st.iterations < 60, "basis rank used %u of 202", st.iterations);
    ck_assert_uint_eq(st.products, 202);
    ck_assert(wgf_problem_metric_apply(p, v, gv, &err) == WGF_OK);
    ck_assert(wgf_eval_gram(ev, v, hv, &err) == WGF_OK);
    ck_assert_msg(dist(gv, hv, 2) <= 1e-9 * sqrt(dotp(hv, hv, 2)), "|G v - Ghat v| = %g, |Ghat v| = %g",
                  dist(gv, hv, 2), sqrt(dotp(hv, hv, 2)));
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* ------------------------------------------------------------ the Lyapunov projection */

/* S with S C + C S = K for symmetric positive definite C (d x d) and symmetric K: in C's
 * eigenbasis C = E diag(l) E^T, (E^T S E)_ij = (E^T K E)_ij / (l_i + l_j). */
static void lyapunov(size_t d, const double *C, const double *K, double *S)
{
    double *l = calloc(d, sizeof(double)), *E = calloc(d * d, sizeof(double)),
           *T = calloc(d * d, sizeof(double));
    ck_assert(l && E && T);
    wgf_error err;
    ck_assert(wgf_sym_eigen(d, C, l, E, &err) == WGF_OK);
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double s = 0.0;
            for (size_t a = 0; a < d; a++)
                for (size_t b = 0; b < d; b++)
                    s += E[a * d + i] * K[a * d + b] * E[b * d + j];
            T[i * d + j] = s / (l[i] + l[j]);
        }
    for (size_t a = 0; a < d; a++)
        for (size_t b = 0; b < d; b++) {
            double s = 0.0;
            for (size_t i = 0; i < d; i++)
                for (size_t j = 0; j < d; j++)
                    s += E[a * d + i] * T[i * d + j] * E[b * d + j];
            S[a * d + b] = s;
        }
    free(l);
    free(E);
    free(T);
}

/* Solve the d x d system A X = B in place (Gaussian elimination, partial pivoting; B has
 * d rows of m columns). */
static void solve_dense(size_t d, double *A, double *B, size_t m)
{
    for (size_t k = 0; k < d; k++) {
        size_t piv = k;
        for (size_t i = k + 1; i < d; i++)
            if (fabs(A[i * d + k]) > fabs(A[piv * d + k]))
                piv = i;
        for (size_t j = 0; j < d; j++) {
            double t = A[k * d + j];
            A[k * d + j] = A[piv * d + j];
            A[piv * d + j] = t;
        }
        for (size_t j = 0; j < m; j++) {
            double t = B[k * m + j];
            B[k * m + j] = B[piv * m + j];
            B[piv * m + j] = t;
        }
        for (size_t i = k + 1; i < d; i++) {
            double f = A[i * d + k] / A[k * d + k];
            for (size_t j = k; j < d; j++)
                A[i * d + j] -= f * A[k * d + j];
            for (size_t j = 0; j < m; j++)
                B[i * m + j] -= f * B[k * m + j];
        }
    }
    for (size_t k = d; k-- > 0;)
        for (size_t j = 0; j < m; j++) {
            double s = B[k * m + j];
            for (size_t i = k + 1; i < d; i++)
                s -= A[k * d + i] * B[i * m + j];
            B[k * m + j] = s / A[k * d + k];
        }
}

/* Affine map, Gaussian batch, quadratic basis, d = 3: for a direction v, the field
 * J v = dA z + db is linear in x, M x + c (M, c recovered exactly by regressing J v on x); its
 * L2 projection onto gradient fields is S (x - mu) + M mu + c with S C + C S = M C + C M^T
 * (empirical mu, C). Then G v = (1/N) sum_n J_n^T Pi_n, one vjp; compare to rounding. */
START_TEST(test_affine_projection_lyapunov)
{
    wgf_problem *p = test_make_problem(
        "[run]\ndim = 3\nsamples = 700\nseed = 5\n"
        "[initial]\ntype = gaussian\nmean = 0.4 -1 0.2\ncov = full 2 0.5 0.1 0.5 1 -0.3 0.1 -0.3 0.7\n"
        "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1 0 -1\nsigma = identity\n"
        "[map]\nplugin = affine\n[metric]\nplugin = wasserstein\ndegree = 2\n", NULL, 0);
    test_perturb(p, 0.3);
    const size_t d = 3, N = 700, P = wgf_problem_nparams(p);
    wgf_eval *ev = prepared(p, N);
    const double *x = wgf_eval_batch(ev, 1)->x;
    double mu[3] = {0}, C[9] = {0}, Cjx[9] = {0}, mj[3] = {0}, M[9], K[9], S[9], c[3];
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < d; i++)
            mu[i] += x[n * d + i] / (double)N;
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                C[i * d + j] += (x[n * d + i] - mu[i]) * (x[n * d + j] - mu[j]) / (double)N;
    double *v = calloc(4 * P, sizeof(double)), *gv = v + P, *expect = v + 2 * P, *hv = v + 3 * P;
    double *jx = calloc(N * d, sizeof(double)), *pi = calloc(N * d, sizeof(double));
    double *g = calloc(2 * N * d, sizeof(double)), *vel = g + N * d;
    ck_assert(v && jx && pi && g);
    wgf_error err;
    for (unsigned k = 0; k < 3; k++) {
        test_vector(P, k, v);
        ck_assert(wgf_eval_jvp(ev, v, jx, &err) == WGF_OK);
        /* M = Cov(J v, x) C^-1, c = E[J v] - M mu */
        memset(Cjx, 0, sizeof Cjx);
        memset(mj, 0, sizeof mj);
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < d; i++)
                mj[i] += jx[n * d + i] / (double)N;
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < d; i++)
                for (size_t j = 0; j < d; j++)
                    Cjx[j * d + i] += (x[n * d + j] - mu[j]) * (jx[n * d + i] - mj[i]) / (double)N;
        double Cc[9];
        memcpy(Cc, C, sizeof Cc);
        solve_dense(d, Cc, Cjx, d); /* Cjx <- C^-1 Cov(x, J v) = M^T */
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                M[i * d + j] = Cjx[j * d + i];
        for (size_t i = 0; i < d; i++)
            c[i] = mj[i] - (M[i * d] * mu[0] + M[i * d + 1] * mu[1] + M[i * d + 2] * mu[2]);
        /* J v is exactly M x + c */
        double lin = 0.0, size = 0.0;
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < d; i++) {
                double f = c[i];
                for (size_t j = 0; j < d; j++)
                    f += M[i * d + j] * x[n * d + j];
                lin = fmax(lin, fabs(f - jx[n * d + i]));
                size = fmax(size, fabs(jx[n * d + i]));
            }
        ck_assert_msg(lin <= 1e-12 * size, "J v is not linear in x: %g", lin);
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++) {
                double s = 0.0;
                for (size_t a = 0; a < d; a++)
                    s += M[i * d + a] * C[a * d + j] + C[i * d + a] * M[j * d + a];
                K[i * d + j] = s;
            }
        lyapunov(d, C, K, S);
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < d; i++) {
                double f = c[i];
                for (size_t j = 0; j < d; j++)
                    f += S[i * d + j] * (x[n * d + j] - mu[j]) + M[i * d + j] * mu[j];
                pi[n * d + i] = f / (double)N;
            }
        /* The misfit of a G run measures g against Pi(J v), the field that moves the law. Here g =
         * grad V + grad log rho_theta is affine in x with a symmetric matrix, in the basis' span,
         * so r(J v)^2 = r(Pi J v)^2 + E|J v - Pi(J v)|^2 (Pythagoras in the sample inner product). */
        wgf_step_info info = {0};
        ck_assert_msg(wgf_problem_misfit(p, ev, v, g, vel, &info, &err) == WGF_OK, "%s", err.msg);
        double rg = 0.0, rj = 0.0, skew = 0.0, vmax = 0.0;
        for (size_t q = 0; q < N * d; q++) {
            vmax = fmax(vmax, fabs(vel[q] - (double)N * pi[q]));
            rg += (g[q] - (double)N * pi[q]) * (g[q] - (double)N * pi[q]) / (double)N;
            rj += (g[q] - jx[q]) * (g[q] - jx[q]) / (double)N;
            skew += (jx[q] - (double)N * pi[q]) * (jx[q] - (double)N * pi[q]) / (double)N;
        }
        ck_assert_msg(vmax <= 1e-10 * size, "direction %u: G's velocity is %g from Pi(J v)", k, vmax);
        ck_assert_msg(fabs(info.misfit * info.misfit - rg) <= 1e-9 * rj, "direction %u: misfit^2 %.17g, want %.17g",
                      k, info.misfit * info.misfit, rg);
        ck_assert_msg(fabs(rj - rg - skew) <= 1e-9 * rj, "direction %u: r(J v)^2 - r(Pi J v)^2 = %g, E|J v - Pi J v|^2 = %g",
                      k, rj - rg, skew);
        ck_assert_msg(skew > 1e-2 * rj, "direction %u: J v is nearly a gradient, the test cannot fail", k);
        ck_assert(wgf_eval_vjp(ev, pi, NULL, NULL, expect, &err) == WGF_OK);
        ck_assert(wgf_problem_metric_apply(p, v, gv, &err) == WGF_OK);
        double e = dist(gv, expect, P), s = sqrt(dotp(expect, expect, P));
        ck_assert_msg(e <= 1e-10 * s, "direction %u: |G v - J^T Pi(J v)/N| = %g, |G v| = %g", k, e, s);
        /* and the projection did something: M is not symmetric, so G v != Ghat v */
        ck_assert(wgf_eval_gram(ev, v, hv, &err) == WGF_OK);
        ck_assert_msg(dist(gv, hv, P) > 1e-2 * s, "G v = Ghat v: the test cannot fail");
    }
    free(v);
    free(jx);
    free(pi);
    free(g);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* ------------------------------------------------------------ the solve */

/* zeta = G^+ grad F: the least-squares normal equations G (G zeta - g) = 0 hold, zeta lies in
 * range(G) (so solving G zeta again gives zeta back: a null-space part would be dropped), the
 * reported residual is the true one, and it is not small (grad F is not in range(G), which
 * has rank <= R' = 9 < P = 12 here; a solve that ignored that would fail one of these). */
START_TEST(test_solve_min_norm)
{
    wgf_problem *p = test_make_problem(
        "[run]\ndim = 3\nsamples = 700\nseed = 5\n"
        "[initial]\ntype = gaussian\nmean = 0.4 -1 0.2\ncov = diag 2 1 0.7\n"
        "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1 0 -1\nsigma = identity\n"
        "[map]\nplugin = affine\n[metric]\nplugin = wasserstein\ndegree = 2\n", NULL, 0);
    test_perturb(p, 0.3);
    size_t P = wgf_problem_nparams(p);
    wgf_eval *ev = prepared(p, 700);
    double F, *g = calloc(5 * P, sizeof(double)), *zeta = g + P, *gz = g + 2 * P, *ggz = g + 3 * P,
              *z2 = g + 4 * P;
    ck_assert_ptr_nonnull(g);
    wgf_error err;
    wgf_solve_stats st;
    for (unsigned k = 0; k < 2; k++) {
        if (k == 0)
            ck_assert(wgf_problem_energy(p, ev, &F, g, &err) == WGF_OK);
        else
            test_vector(P, 7, g);
        ck_assert_msg(wgf_problem_metric_solve(p, g, zeta, &st, &err) == WGF_OK, "%s", err.msg);
        ck_assert_uint_eq(st.iterations, 9);
        ck_assert(wgf_problem_metric_apply(p, zeta, gz, &err) == WGF_OK);
        double ng = sqrt(dotp(g, g, P)), r = dist(gz, g, P);
        ck_assert_close(st.residual, r / ng, 1e-9);
        if (k == 1)
            ck_assert_msg(r / ng > 1e-3, "relative residual %g: a generic vector is in range(G)?",
                          r / ng);
        for (size_t j = 0; j < P; j++)
            gz[j] -= g[j];
        ck_assert(wgf_problem_metric_apply(p, gz, ggz, &err) == WGF_OK);
        ck_assert(wgf_problem_metric_apply(p, zeta, gz, &err) == WGF_OK);
        double ngz = sqrt(dotp(gz, gz, P));
        ck_assert_msg(sqrt(dotp(ggz, ggz, P)) <= 1e-10 * ng * ngz / sqrt(dotp(zeta, zeta, P)) + 1e-14,
                      "normal equations: |G (G zeta - g)| = %g", sqrt(dotp(ggz, ggz, P)));
        ck_assert(wgf_problem_metric_solve(p, gz, z2, &st, &err) == WGF_OK);
        ck_assert_msg(dist(z2, zeta, P) <= 1e-8 * sqrt(dotp(zeta, zeta, P)),
                      "G^+ G zeta != zeta: zeta has a null-space part (%g)", dist(z2, zeta, P));
    }
    free(g);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* The basis gradients and the QR's columns are shared out between threads, each entry computed
 * by one thread in a fixed order: the natural gradient is the same bits for any thread count
 * (the planar flow in 3-D with polynomials and Fourier features, R = 9 + 30 columns). */
START_TEST(test_threads_bitwise)
{
#ifdef _OPENMP
    wgf_problem *p =
        test_make_problem(PLANAR3 "[metric]\nplugin = wasserstein\nbasis = both\nfeatures = 30\n", NULL, 0);
    test_perturb(p, 0.3);
    size_t P = wgf_problem_nparams(p);
    double F, *g = calloc(3 * P, sizeof(double)), *z1 = g + P, *z2 = g + 2 * P;
    ck_assert_ptr_nonnull(g);
    wgf_error err;
    int saved = omp_get_max_threads(), dyn = omp_get_dynamic();
    omp_set_dynamic(0); /* exactly t threads, however busy the machine */
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        wgf_eval *ev = prepared(p, 600);
        ck_assert(wgf_problem_energy(p, ev, &F, g, &err) == WGF_OK);
        ck_assert(wgf_problem_metric_solve(p, g, t == 1 ? z1 : z2, NULL, &err) == WGF_OK);
        wgf_eval_free(ev);
    }
    omp_set_num_threads(saved);
    omp_set_dynamic(dyn);
    ck_assert(memcmp(z1, z2, P * sizeof(double)) == 0);
    free(g);
    wgf_problem_free(p);
#endif
}
END_TEST

/* Samples that are not finite stop the prepare with a numerical error naming the coordinate
 * (rather than feeding NaNs to the SVD, whose iteration need not end). */
START_TEST(test_nonfinite_samples)
{
    wgf_problem *p = test_make_problem(
        "[run]\ndim = 3\nsamples = 300\nseed = 5\n"
        "[initial]\ntype = gaussian\n"
        "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1 0 -1\nsigma = identity\n"
        "[map]\nplugin = affine\n[metric]\nplugin = wasserstein\n", NULL, 0);
    double *theta = wgf_problem_theta(p);
    theta[9 + 1] = NAN; /* b_2 */
    wgf_error err = {0};
    wgf_eval *ev = wgf_eval_create(p, 300, 0, &err);
    ck_assert_ptr_nonnull(ev);
    ck_assert(wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    ck_assert_msg(wgf_eval_forward(ev, theta, &err) == WGF_OK, "%s", err.msg);
    ck_assert_int_eq(wgf_problem_metric_prepare(p, ev, &err), WGF_ENUMERIC);
    ck_assert_str_eq(err.msg, "metric 'wasserstein': coordinate 2 of the samples is not finite");
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* ------------------------------------------------------------ configuration */

/* A basis larger than the N d values it is fitted to is refused at configuration, naming the
 * key: the message starts with FILE:LINE, so the core passes it on unprefixed. */
START_TEST(test_basis_too_large)
{
    char file[256], expect[WGF_ERROR_MSG_MAX];
    wgf_problem *p;
    wgf_error err;
    int rc = test_try_problem("[run]\ndim = 3\nsamples = 2\n[initial]\ntype = gaussian\n"
                              "[energy]\nplugin = fpe\npotential = quadratic\nmu = 0\n"
                              "sigma = identity\n[map]\nplugin = affine\n"
                              "[metric]\nplugin = wasserstein\ndegree = 2\n",
                              NULL, 0, &p, &err, file, sizeof file);
    ck_assert_int_eq(rc, WGF_EINVAL);
    ck_assert_ptr_null(p);
    snprintf(expect, sizeof expect,
             "%s:15: metric.degree: a basis of 9 functions needs at least 9 "
             "values, more than N d = 6 (lower degree or features, or use more samples)",
             file);
    ck_assert_str_eq(err.msg, expect);
}
END_TEST

/* Every key of the schema is documented (`wgf plugins wasserstein` prints these lines). */
START_TEST(test_schema_documented)
{
    wgf_registry *reg = test_registry();
    const wgf_plugin *pl;
    wgf_error err;
    ck_assert_msg(wgf_registry_find(reg, WGF_METRIC, "wasserstein", &pl, NULL, &err) == WGF_OK, "%s",
                  err.msg);
    const char *keys[] = {"basis", "degree", "features", "bandwidth", "cutoff", "pinv_cutoff"};
    size_t n = 0;
    for (const wgf_param *q = pl->params; q->key; q++, n++) {
        ck_assert_msg(n < 6 && strcmp(q->key, keys[n]) == 0, "key %zu: %s", n, q->key);
        ck_assert_msg(q->doc && strlen(q->doc) > 20, "%s is not documented", q->key);
    }
    ck_assert_uint_eq(n, 6);
    wgf_registry_free(reg);
}
END_TEST

/* ------------------------------------------------------------ a run */

static int run_file(const char *rel, const char *const *sets, size_t nsets, wgf_run_result *res,
                    wgf_error *err)
{
    char path[4096];
    char *dir = test_temp_dir("metricg");
    wgf_run_opts opts = {.file = test_srcpath(rel, path, sizeof path), .outdir = dir, .sets = sets,
                         .nsets = nsets, .quiet = 1};
    int rc = test_run(&opts, res, err);
    test_remove_tree(dir);
    free(dir);
    return rc;
}

/* experiments/fpe_ou_10d_g.ini (G) and fpe_ou_10d_affine.ini (G-hat), to t = 0.2: the affine
 * map is exact for this Gaussian flow under either metric, so both end at the exact law to
 * sampling error (N = 1000: ~0.02 in W2; the initial law is ~0.9 away), hence at the same law.
 * G's solve spends R = 65 vjps per step (the quadratics in 10-D). */
START_TEST(test_ou_10d_g_and_ghat)
{
    const char *sets[] = {"scheme.t_end=0.2", "output.samples=2000", "output.plots=false",
                          "output.write_samples=false"};
    wgf_run_result g, h;
    wgf_error err = {0};
    ck_assert_msg(run_file("experiments/fpe_ou_10d_g.ini", sets, 4, &g, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(run_file("experiments/fpe_ou_10d_affine.ini", sets, 4, &h, &err) == WGF_OK, "%s",
                  err.msg);
    ck_assert_uint_eq(g.steps, 40);
    ck_assert_uint_eq(g.metric_products, 40 * 65);
    ck_assert_msg(g.err_w2 < 0.04 && h.err_w2 < 0.04, "W2 errors: G %g, Ghat %g", g.err_w2, h.err_w2);
    ck_assert_msg(g.err_mean < 0.04 && g.err_cov < 0.04, "G: mean %g cov %g", g.err_mean, g.err_cov);
    ck_assert_msg(fabs(g.energy - h.energy) < 0.05 * fabs(h.energy), "energies: G %g, Ghat %g",
                  g.energy, h.energy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metric_g");
    TCase *tc = tcase_create("wasserstein");
    tcase_add_test(tc, test_loewner_poly);
    tcase_add_test(tc, test_loewner_rff);
    tcase_add_test(tc, test_1d_affine_equals_ghat);
    tcase_add_test(tc, test_1d_dependent_features);
    tcase_add_test(tc, test_affine_projection_lyapunov);
    tcase_add_test(tc, test_solve_min_norm);
    tcase_add_test(tc, test_threads_bitwise);
    tcase_add_test(tc, test_nonfinite_samples);
    tcase_add_test(tc, test_basis_too_large);
    tcase_add_test(tc, test_schema_documented);
    suite_add_tcase(s, tc);
    TCase *run = tcase_create("run"); /* a few seconds: not for valgrind (CK_RUN_CASE=wasserstein) */
    tcase_add_test(run, test_ou_10d_g_and_ghat);
    suite_add_tcase(s, run);
    return test_main(s);
}
