/* diagnostics.c: distances and statistics of sample sets (MATH.md 7). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "wgf/diagnostics.h"
#include "wgf/linalg.h"

#include "internal.h"

/* Two passes (mean first): no cancellation in the covariance. Each entry is
 * a sum in sample order; the mean's pass reads the rows once, and the
 * covariance's rows (the entries of row j, k <= j) are independent, so they
 * go to threads whole (the output samples' moments: 50000 x 10 at every
 * diagnostic of fpe_ou_10d). */
void wgf_moments(size_t n, size_t d, const double *x, double *mean, double *cov)
{
    for (size_t j = 0; j < d; j++)
        mean[j] = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mean[j] += x[i * d + j];
    for (size_t j = 0; j < d; j++)
        mean[j] = n > 0 ? mean[j] / (double)n : NAN;
    if (!cov)
        return;
#pragma omp parallel for schedule(dynamic, 1)
    for (long jl = (long)d - 1; jl >= 0; jl--) { /* the longest rows first */
        size_t j = (size_t)jl;
        double *row = cov + j * d;
        for (size_t k = 0; k <= j; k++)
            row[k] = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double *xi = x + i * d;
            double dj = xi[j] - mean[j];
            for (size_t k = 0; k <= j; k++)
                row[k] += dj * (xi[k] - mean[k]);
        }
    }
    for (size_t j = 0; j < d; j++)
        for (size_t k = 0; k <= j; k++) {
            double c = n > 1 ? cov[j * d + k] / (double)(n - 1) : NAN;
            cov[j * d + k] = c;
            cov[k * d + j] = c;
        }
}

double wgf_dist_l2(size_t k, const double *a, const double *b) { return wgf_nrm2(k, a, b); }

/* ---------------------------------------------------------------- Gaussian W2 */

static double sqrt_clamped(double x, void *user)
{
    (void)user;
    return x > 0.0 ? sqrt(x) : 0.0;
}

/* Eigenvalues of a covariance that are negative beyond rounding mean the
 * input is not a covariance. */
static int check_psd(size_t d, const double *w, const char *name, wgf_error *err)
{
    double big = 0.0;
    for (size_t i = 0; i < d; i++)
        big = fmax(big, fabs(w[i]));
    if (w[0] < -1e-10 * big - DBL_MIN)
        return wgf_error_set(err, WGF_EINVAL,
                             "Gaussian W2: %s is not positive semidefinite (eigenvalue %g)", name, w[0]);
    return WGF_OK;
}

/* W2^2 = |m1-m2|^2 + tr C1 + tr C2 - 2 tr (C2^1/2 C1 C2^1/2)^1/2 (MATH.md 7),
 * with the symmetric square roots and eigenvalues clamped at zero (they are
 * negative only by rounding once check_psd has passed). */
int wgf_w2_gaussian(size_t d, const double *m1, const double *C1, const double *m2, const double *C2,
                    double *w2, wgf_error *err)
{
    if (d == 0) {
        *w2 = 0.0;
        return WGF_OK;
    }
    double *buf = malloc((3 * d * d + d) * sizeof *buf);
    if (!buf)
        return wgf_error_set(err, WGF_ENOMEM, "Gaussian W2: out of memory (d = %zu)", d);
    double *S = buf, *T = buf + d * d, *M = buf + 2 * d * d, *w = buf + 3 * d * d;
    int rc = wgf_sym_eigen(d, C1, w, M, err);
    if (rc == WGF_OK)
        rc = check_psd(d, w, "C1", err);
    if (rc == WGF_OK)
        rc = wgf_sym_eigen(d, C2, w, M, err);
    if (rc == WGF_OK)
        rc = check_psd(d, w, "C2", err);
    if (rc == WGF_OK)
        rc = wgf_sym_fun(d, C2, sqrt_clamped, NULL, S, err);
    if (rc != WGF_OK)
        goto done;
    wgf_matmul(d, S, C1, T);
    wgf_matmul(d, T, S, M);
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < i; j++)
            M[i * d + j] = M[j * d + i] = 0.5 * (M[i * d + j] + M[j * d + i]);
    rc = wgf_sym_eigen(d, M, w, T, err);
    if (rc != WGF_OK)
        goto done;
    double s = 0.0;
    for (size_t i = 0; i < d; i++) {
        double dm = m1[i] - m2[i];
        s += dm * dm + C1[i * d + i] + C2[i * d + i] - 2.0 * sqrt_clamped(w[i], NULL);
    }
    *w2 = sqrt(fmax(s, 0.0));
done:
    if (rc != WGF_OK)
        wgf_error_prefix(err, "Gaussian W2");
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- symmetric KL */

static double inv_pos(double x, void *user)
{
    (void)user;
    return 1.0 / x;
}

/* C^-1 of a symmetric positive definite C, with an error naming it when it is not. */
static int spd_inverse(size_t d, const double *C, const char *name, double *Ci, double *work, wgf_error *err)
{
    int rc = wgf_cholesky(d, C, work, err);
    if (rc == WGF_OK)
        rc = wgf_sym_fun(d, C, inv_pos, NULL, Ci, err);
    if (rc != WGF_OK)
        wgf_error_prefix(err, name);
    return rc;
}

int wgf_skl_gaussian(size_t d, const double *m1, const double *C1, const double *m2, const double *C2,
                     double *skl, wgf_error *err)
{
    if (d == 0) {
        *skl = 0.0;
        return WGF_OK;
    }
    double *buf = malloc(3 * d * d * sizeof *buf);
    if (!buf)
        return wgf_error_set(err, WGF_ENOMEM, "symmetric KL: out of memory (d = %zu)", d);
    double *I1 = buf, *I2 = buf + d * d, *W = buf + 2 * d * d;
    int rc = spd_inverse(d, C1, "symmetric KL: C1", I1, W, err);
    if (rc == WGF_OK)
        rc = spd_inverse(d, C2, "symmetric KL: C2", I2, W, err);
    if (rc == WGF_OK) {
        /* tr(A B) of symmetric matrices is the sum of their entries' products */
        double s = -2.0 * (double)d;
        for (size_t i = 0; i < d * d; i++)
            s += I2[i] * C1[i] + I1[i] * C2[i];
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                s += (m1[i] - m2[i]) * (I1[i * d + j] + I2[i * d + j]) * (m1[j] - m2[j]);
        *skl = 0.5 * s;
    }
    free(buf);
    return rc;
}

/* With r = log q - log p, E_q[r] = KL(q||p) and E_q[(p/q)(-r)] = E_p[log p/q] = KL(p||q): both
 * densities are normalised, so the weights p/q need no normalising and the sum of the two is
 * E_q[(1 - e^-r) r], estimated without bias on the model's own samples. Its terms are >= 0 and
 * ~ r^2 where q ~ p: its relative error is O(1/sqrt(n)) however small the divergence, where
 * KL(q||p) alone, a mean of terms ~ r whose mean is ~ r^2, would need n ~ 1/KL samples. */
int wgf_skl_samples(size_t n, size_t d, const double *x, const double *lq, const double *m,
                    const double *C, double *skl, wgf_error *err)
{
    if (n == 0)
        return wgf_error_set(err, WGF_EINVAL, "symmetric KL: no samples");
    double *L = malloc((d * d + n) * sizeof *L);
    if (!L)
        return wgf_error_set(err, WGF_ENOMEM, "symmetric KL: out of memory (n = %zu, d = %zu)", n, d);
    double *terms = L + d * d;
    int nomem = 0;
    int rc = wgf_cholesky(d, C, L, err);
    if (rc != WGF_OK) {
        wgf_error_prefix(err, "symmetric KL: the reference covariance");
        free(L);
        return rc;
    }
    double logdet = 0.0;
    for (size_t i = 0; i < d; i++)
        logdet += 2.0 * log(L[i * d + i]);
    double c0 = -0.5 * ((double)d * log(2.0 * M_PI) + logdet), s = 0.0;
    /* The samples' terms on threads (a triangular solve and an expm1 each), then their sum in
     * sample order. */
#pragma omp parallel
    {
        double *yt = malloc((d + 1) * sizeof *yt);
#pragma omp for schedule(static)
        for (long kl = 0; kl < (long)n; kl++) {
            size_t k = (size_t)kl;
            const double *xk = x + k * d;
            if (!yt) {
                terms[k] = NAN;
                continue;
            }
            double q2 = 0.0;
            for (size_t i = 0; i < d; i++) { /* y = L^-1 (x - m) */
                double acc = xk[i] - m[i];
                for (size_t j = 0; j < i; j++)
                    acc -= L[i * d + j] * yt[j];
                yt[i] = acc / L[i * d + i];
                q2 += yt[i] * yt[i];
            }
            double r = lq[k] - (c0 - 0.5 * q2);
            terms[k] = -expm1(-r) * r;
        }
        if (!yt) {
#pragma omp atomic write
            nomem = 1;
        }
        free(yt);
    }
    for (size_t k = 0; k < n; k++)
        s += terms[k];
    free(L);
    if (nomem)
        return wgf_error_set(err, WGF_ENOMEM, "symmetric KL: out of memory (d = %zu)", d);
    *skl = s / (double)n;
    if (!isfinite(*skl))
        return wgf_error_set(err, WGF_ENUMERIC, "symmetric KL: not finite (the model's density ratio "
                                                "to the reference overflows)");
    return WGF_OK;
}

/* ---------------------------------------------------------------- assignment */

/* Shortest augmenting paths with potentials (Kuhn-Munkres in the form of
 * Jonker and Volgenant): rows are added one at a time, and a Dijkstra search
 * over the reduced costs c_ij - u_i - v_j >= 0 finds the cheapest way to
 * extend the matching. Every step keeps the potentials dual feasible and
 * the matched reduced costs zero, so the final matching is optimal for the
 * cost matrix (exact up to the rounding of the potential updates, not
 * approximate as an auction with a finite epsilon). O(n^3) worst case.
 * Arrays are 1-based with column 0 as the virtual start; assign[i] receives
 * the column of row i. */
static int hungarian(size_t n, const double *c, size_t *assign)
{
    size_t m = n + 1;
    double *u = calloc(m, sizeof *u), *v = calloc(m, sizeof *v), *minv = malloc(m * sizeof *minv);
    size_t *p = calloc(m, sizeof *p), *way = calloc(m, sizeof *way);
    char *used = malloc(m);
    int ok = u && v && minv && p && way && used;
    if (ok) {
        /* Start from the column minima: dual feasible (all reduced costs
         * >= 0) with nothing matched, which is all the search needs, and
         * it often shortens the first searches. */
        for (size_t j = 1; j <= n; j++) {
            double mn = HUGE_VAL;
            for (size_t i = 0; i < n; i++)
                mn = fmin(mn, c[i * n + j - 1]);
            v[j] = mn;
        }
        for (size_t i = 1; i <= n; i++) {
            size_t j0 = 0;
            p[0] = i;
            for (size_t j = 0; j <= n; j++) {
                minv[j] = HUGE_VAL;
                used[j] = 0;
            }
            do {
                used[j0] = 1;
                size_t i0 = p[j0], j1 = 0;
                double delta = HUGE_VAL;
                const double *ci = c + (i0 - 1) * n - 1;
                double ui = u[i0];
                for (size_t j = 1; j <= n; j++) {
                    if (used[j])
                        continue;
                    double cur = ci[j] - ui - v[j];
                    if (cur < minv[j]) {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if (minv[j] < delta) {
                        delta = minv[j];
                        j1 = j;
                    }
                }
                for (size_t j = 0; j <= n; j++) {
                    if (used[j]) {
                        u[p[j]] += delta;
                        v[j] -= delta;
                    } else {
                        minv[j] -= delta;
                    }
                }
                j0 = j1;
            } while (p[j0] != 0);
            do {
                size_t j1 = way[j0];
                p[j0] = p[j1];
                j0 = j1;
            } while (j0 != 0);
        }
        for (size_t j = 1; j <= n; j++)
            assign[p[j] - 1] = j - 1;
    }
    free(u);
    free(v);
    free(minv);
    free(p);
    free(way);
    free(used);
    return ok;
}

static double sqdist(size_t d, const double *a, const double *b)
{
    double s = 0.0;
    for (size_t k = 0; k < d; k++)
        s += (a[k] - b[k]) * (a[k] - b[k]);
    return s;
}

int wgf_w2_assignment(size_t n, size_t d, const double *x, const double *y, double *w2, wgf_error *err)
{
    if (n == 0)
        return wgf_error_set(err, WGF_EINVAL, "assignment W2: no samples");
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(x[i]) || !isfinite(y[i]))
            return wgf_error_set(err, WGF_ENUMERIC, "assignment W2: sample %zu is not finite", i / d);
    if (d == 1) {
        /* the sorted matching is an optimal assignment (O(n log n), not n^3) */
        *w2 = wgf_w2_1d(n, x, y);
        return isnan(*w2) ? wgf_error_set(err, WGF_ENOMEM, "assignment W2: out of memory (n = %zu)", n)
                          : WGF_OK;
    }
    if (n > ((size_t)-1) / sizeof(double) / n)
        return wgf_error_set(err, WGF_ENOMEM, "assignment W2: %zu samples is too many", n);
    double *c = malloc(n * n * sizeof *c);
    size_t *assign = malloc(n * sizeof *assign);
    int rc = WGF_OK;
    if (!c || !assign) {
        rc = wgf_error_set(err, WGF_ENOMEM, "assignment W2: out of memory (n = %zu)", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            c[i * n + j] = sqdist(d, x + i * d, y + j * d);
            if (!isfinite(c[i * n + j])) {
                rc = wgf_error_set(err, WGF_ENUMERIC, "assignment W2: distance overflows");
                goto done;
            }
        }
    if (!hungarian(n, c, assign)) {
        rc = wgf_error_set(err, WGF_ENOMEM, "assignment W2: out of memory (n = %zu)", n);
        goto done;
    }
    /* Recompute the cost of the optimal matching from the samples: no
     * rounding from the potentials reaches the result. */
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += sqdist(d, x + i * d, y + assign[i] * d);
    *w2 = sqrt(s / (double)n);
done:
    free(c);
    free(assign);
    return rc;
}

/* ---------------------------------------------------------------- 1-D and sliced */

/* Ascending order of doubles as an order of unsigned integers: the sign bit
 * set on a positive number, every bit flipped on a negative one. */
static uint64_t sort_key(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return (u >> 63) ? ~u : u | ((uint64_t)1 << 63);
}

static double sort_value(uint64_t k)
{
    uint64_t u = (k >> 63) ? k & ~((uint64_t)1 << 63) : ~k;
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* a sorted ascending, with keys (2 n) as work: a radix sort on the keys'
 * bytes, low to high, skipping a byte all keys share. The sliced W2 sorts
 * 2 x 64 projections per diagnostic, and qsort's calls to a comparison
 * were most of a diagnostic's time. The sorted values are those of any
 * sort (equal values are equal: -0 and +0 give the same differences). */
static void sort_doubles(size_t n, double *a, uint64_t *keys)
{
    if (n == 0)
        return;
    size_t count[8][256];
    memset(count, 0, sizeof count);
    uint64_t *src = keys, *dst = keys + n;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = sort_key(a[i]);
        src[i] = k;
        for (int byte = 0; byte < 8; byte++)
            count[byte][(k >> (8 * byte)) & 255]++;
    }
    for (int byte = 0; byte < 8; byte++) {
        size_t *c = count[byte];
        if (c[(src[0] >> (8 * byte)) & 255] == n)
            continue;
        size_t pos = 0;
        for (int v = 0; v < 256; v++) {
            size_t m = c[v];
            c[v] = pos;
            pos += m;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t k = src[i];
            dst[c[(k >> (8 * byte)) & 255]++] = k;
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    for (size_t i = 0; i < n; i++)
        a[i] = sort_value(src[i]);
}

int wgf_sort_doubles(size_t n, double *a)
{
    uint64_t *keys = malloc((2 * n + 1) * sizeof *keys);
    if (!keys)
        return WGF_ENOMEM;
    sort_doubles(n, a, keys);
    free(keys);
    return WGF_OK;
}

/* The mean of (a_i - b_i)^2, summed in index order. */
static double msq_diff(size_t n, const double *a, const double *b)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    return s / (double)n;
}

/* In 1-D the monotone (sorted) matching is optimal for a convex cost. keys:
 * 2 n of work. */
static double w2sq_sorted(size_t n, double *a, double *b, uint64_t *keys)
{
    sort_doubles(n, a, keys);
    sort_doubles(n, b, keys);
    return msq_diff(n, a, b);
}

double wgf_w2_1d(size_t n, const double *x, const double *y)
{
    if (n == 0)
        return NAN;
    double *a = malloc(2 * n * sizeof *a);
    uint64_t *keys = malloc(2 * n * sizeof *keys);
    if (!a || !keys) {
        free(a);
        free(keys);
        return NAN;
    }
    memcpy(a, x, n * sizeof *a);
    memcpy(a + n, y, n * sizeof *a);
    double s = w2sq_sorted(n, a, a + n, keys);
    free(a);
    free(keys);
    return sqrt(s);
}

/* The sum over nproj directions of wgf_w2_sliced in 1-D, where a direction
 * is a number t != 0 and a projection t x: multiplying by t > 0 keeps the
 * order of the samples (rounding is monotone) and t < 0 reverses it, so the
 * sorted projections are t times x and y sorted once, read forwards or
 * backwards: the same values, summed in the same order, as sorting every
 * projection (2 sorts in place of 2 nproj). A direction's term depends on t
 * alone, and the unit directions of 1-D are +1 and -1 (x / sqrt(x^2) is
 * exact), so each sign's term is computed once and added again for every
 * later direction equal to it. The directions are drawn as in d > 1, so the
 * stream advances alike. buf: 4 n + 1, keys: 2 n of work. */
static double sliced_1d(size_t n, const double *x, const double *y, size_t nproj, gsl_rng *rng,
                        double *buf, uint64_t *keys)
{
    double *a = buf, *b = buf + n, *xs = buf + 2 * n, *ys = buf + 3 * n, *theta = buf + 4 * n;
    memcpy(xs, x, n * sizeof *xs);
    memcpy(ys, y, n * sizeof *ys);
    sort_doubles(n, xs, keys);
    sort_doubles(n, ys, keys);
    double acc = 0.0, seen_t[2] = {0.0, 0.0}, seen_term[2] = {0.0, 0.0};
    for (size_t k = 0; k < nproj; k++) {
        gsl_ran_dir_nd(rng, 1, theta);
        double t = theta[0];
        int neg = t < 0.0;
        if (t != seen_t[neg]) {
            for (size_t i = 0; i < n; i++) {
                size_t j = neg ? n - 1 - i : i;
                a[i] = t * xs[j];
                b[i] = t * ys[j];
            }
            seen_t[neg] = t;
            seen_term[neg] = msq_diff(n, a, b);
        }
        acc += seen_term[neg];
    }
    return acc;
}

int wgf_w2_sliced(size_t n, size_t d, const double *x, const double *y, size_t nproj, gsl_rng *rng,
                  double *w2, wgf_error *err)
{
    if (n == 0 || d == 0 || nproj == 0)
        return wgf_error_set(err, WGF_EINVAL, "sliced W2: need samples, a dimension and projections "
                                              "(n = %zu, d = %zu, projections = %zu)",
                             n, d, nproj);
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(x[i]) || !isfinite(y[i]))
            return wgf_error_set(err, WGF_ENUMERIC, "sliced W2: sample %zu is not finite", i / d);
    double *buf = malloc(((d == 1 ? 4 : 2) * n + d) * sizeof *buf);
    uint64_t *keys = malloc(2 * n * sizeof *keys);
    if (!buf || !keys) {
        free(buf);
        free(keys);
        return wgf_error_set(err, WGF_ENOMEM, "sliced W2: out of memory (n = %zu)", n);
    }
    double acc = 0.0;
    if (d == 1)
        acc = sliced_1d(n, x, y, nproj, rng, buf, keys);
    else {
        double *a = buf, *b = buf + n, *theta = buf + 2 * n;
        for (size_t k = 0; k < nproj; k++) {
            /* Uniform on the sphere: a normalised standard Gaussian vector. */
            gsl_ran_dir_nd(rng, d, theta);
            for (size_t i = 0; i < n; i++) {
                double sa = 0.0, sb = 0.0;
                for (size_t j = 0; j < d; j++) {
                    sa += theta[j] * x[i * d + j];
                    sb += theta[j] * y[i * d + j];
                }
                a[i] = sa;
                b[i] = sb;
            }
            acc += w2sq_sorted(n, a, b, keys);
        }
    }
    free(buf);
    free(keys);
    *w2 = sqrt(acc / (double)nproj);
    return WGF_OK;
}

void wgf_radial_stats(size_t n, size_t d, const double *x, const double *c, double *mean, double *sd)
{
    /* Two passes over the radii; the standard deviation divides by n - 1 as
     * the covariance of wgf_moments does. c = NULL means the origin. */
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r2 = 0.0;
        for (size_t j = 0; j < d; j++) {
            double dx = x[i * d + j] - (c ? c[j] : 0.0);
            r2 += dx * dx;
        }
        s += sqrt(r2);
    }
    double mu = n > 0 ? s / (double)n : NAN;
    double v = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r2 = 0.0;
        for (size_t j = 0; j < d; j++) {
            double dx = x[i * d + j] - (c ? c[j] : 0.0);
            r2 += dx * dx;
        }
        v += (sqrt(r2) - mu) * (sqrt(r2) - mu);
    }
    if (mean)
        *mean = mu;
    if (sd)
        *sd = n > 1 ? sqrt(v / (double)(n - 1)) : NAN;
}
