/* mmd.c: the squared maximum mean discrepancy to a target nu known by
 * samples y_1..y_M (doc/math.md 2.1), times a weight w:
 *
 *     MMD^2 = E k(x,x') - 2 E k(x,y) + E k(y,y'),
 *
 * an interaction energy (W = k) plus a potential (V = -2 k * nu) plus a
 * constant. On a batch, unbiased (U-statistics, no n = n' or m = m' terms),
 * with sums over k != n and over all m:
 *
 *     Fhat = w [ 1/(N(N-1)) sum_n sum_k k(x_n,x_k) - 2/(NM) sum_n sum_m k(x_n,y_m)
 *                + 1/(M(M-1)) sum_m sum_m' k(y_m,y_m') ],
 *     a_n  = 2w [ 1/(N(N-1)) sum_k grad_1 k(x_n,x_k) - 1/(NM) sum_m grad_1 k(x_n,y_m) ],  c_n = 0,
 *     g_n  = N a_n = 2w [ 1/(N-1) sum_k grad_1 k(x_n,x_k) - 1/M sum_m grad_1 k(x_n,y_m) ],
 *     xbar_n += 2w [ 1/(N-1) sum_k H(x_n-x_k) (gbar_n - gbar_k) - 1/M sum_m H(x_n-y_m) gbar_n ],
 *
 * with H the Hessian of k in its first argument. Kernels are radial,
 * k(x,y) = kappa(r2), r2 = |x-y|^2, so grad_1 k = psi y and H = psi I + chi y y^T
 * with psi = 2 kappa', chi = 4 kappa'' (as aggregation's kernels):
 *
 *   gaussian, a sum over bandwidths s_j: kappa = sum_j e_j, e_j = exp(-r2/(2 s_j^2)),
 *     psi = -sum_j e_j / s_j^2, chi = sum_j e_j / s_j^4;
 *   energy distance: kappa = -|y|, psi = -1/|y|, chi = 1/|y|^3 (0 at y = 0,
 *     where the pair's force is 0 by symmetry).
 *
 * The target samples are the energy's own state (the training set of
 * wgf/samples.h); the constant term is summed once at create. The pair sums
 * are those of pairsum.h (shared with aggregation): each row n is summed by
 * one thread over its columns in a fixed order, with a sequential sum for F
 * (the same whether or not a is wanted), and row totals are added serially:
 * the results do not depend on the number of threads. Over MPI ranks each
 * rank sums its share of the rows, of the batch against itself and against
 * the target, and of the target against itself at create (which is then
 * collective, as every rank creates the energy), and every rank gets them
 * all: the results do not depend on the number of ranks either. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <wgf/plugin.h>
#include <wgf/samples.h>

#include "pairsum.h"

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

/* Target samples at which the stiffness is estimated. */
#define STIFF_POINTS 64
/* Target samples used for the median heuristic (M^2/2 distances). */
#define MEDIAN_MAX 1000

enum { K_GAUSSIAN, K_ENERGY };

typedef struct kern {
    int type;
    size_t nb;
    double *inv2; /* 1/(2 s_j^2) */
    double *ps;   /* 1/s_j^2 */
    double *cs;   /* 1/s_j^4 */
} kern;

typedef struct mmd {
    size_t d, M;
    double weight;
    wgf_target *target, *owned; /* owned: built from the section's keys (no [target]) */
    const double *y; /* M x d, the target's training samples (borrowed from target) */
    double *yt;      /* d x M */
    double cyy;      /* 1/(M(M-1)) sum_{m != m'} k(y_m, y_m') */
    double lambda;   /* stiffness estimate (NaN: unknown) */
    kern K;
} mmd;

static const wgf_param mmd_params[] = {
    {.key = "kernel", .type = WGF_PARAM_CHOICE, .def = "gaussian", .choices = "gaussian|energy",
     .doc = "k: gaussian exp(-|x-y|^2/(2 s^2)) summed over the bandwidths, or energy -|x-y|"},
    {.key = "bandwidth", .type = WGF_PARAM_LIST, .def = "1", .flags = WGF_P_MIN | WGF_P_MIN_OPEN,
     .min = 0.0, .doc = "gaussian: the bandwidths s (several: their kernels are summed)"},
    {.key = "median", .type = WGF_PARAM_BOOL, .def = "false",
     .doc = "gaussian: bandwidths in units of the median distance between target samples"},
    {.key = "weight", .type = WGF_PARAM_DOUBLE, .def = "1", .flags = WGF_P_MIN, .min = 0.0,
     .doc = "factor on the whole energy (a term of a sum)"},
    WGF_TARGET_PARAMS,
    {0}};

/* ------------------------------------------------------------ kernels */

/* The energy distance in loops that vectorise (sqrt and division are
 * correctly rounded in every clone), r = |y| taken once into the output
 * that is written last (so the outputs alias r: no restrict on them). */
WGF_DISPATCH
static void kern_radial(const void *Kv, size_t n, const double *restrict r2, double *w, double *psi,
                        double *chi)
{
    const kern *K = Kv;
    if (K->type == K_ENERGY) {
        double *r = chi ? chi : (psi ? psi : w);
        WGF_OMP(omp simd)
        for (size_t i = 0; i < n; i++)
            r[i] = sqrt(r2[i]);
        if (w && w != r) {
            WGF_OMP(omp simd)
            for (size_t i = 0; i < n; i++)
                w[i] = -r[i];
        }
        if (psi) {
            WGF_OMP(omp simd)
            for (size_t i = 0; i < n; i++)
                psi[i] = r[i] > 0.0 ? -1.0 / r[i] : 0.0;
        }
        if (chi) {
            WGF_OMP(omp simd)
            for (size_t i = 0; i < n; i++)
                chi[i] = r[i] > 0.0 ? 1.0 / (r[i] * r2[i]) : 0.0;
        }
        if (w == r) {
            WGF_OMP(omp simd)
            for (size_t i = 0; i < n; i++)
                w[i] = -w[i];
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double sw = 0.0, sp = 0.0, sc = 0.0;
        for (size_t j = 0; j < K->nb; j++) {
            double e = exp(-r2[i] * K->inv2[j]);
            sw += e;
            sp -= e * K->ps[j];
            sc += e * K->cs[j];
        }
        if (w)
            w[i] = sw;
        if (psi)
            psi[i] = sp;
        if (chi)
            chi[i] = sc;
    }
}

static double sqdist(size_t d, const double *a, const double *b)
{
    double r2 = 0.0;
    for (size_t i = 0; i < d; i++)
        r2 += (a[i] - b[i]) * (a[i] - b[i]);
    return r2;
}

/* The median distance between the first min(M, MEDIAN_MAX) target samples. */
static int median_distance(const mmd *st, double *med, wgf_error *err)
{
    size_t m = st->M < MEDIAN_MAX ? st->M : MEDIAN_MAX, np = m * (m - 1) / 2, k = 0;
    double *r = malloc(np * sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    for (size_t a = 0; a < m; a++)
        for (size_t b = a + 1; b < m; b++)
            r[k++] = sqrt(sqdist(st->d, st->y + a * st->d, st->y + b * st->d));
    gsl_sort(r, 1, np);
    *med = gsl_stats_median_from_sorted_data(r, 1, np);
    free(r);
    return WGF_OK;
}

/* ------------------------------------------------------------- create */

static void mmd_destroy(void *state)
{
    mmd *st = state;
    if (!st)
        return;
    wgf_target_free(st->owned);
    free(st->yt);
    free(st->K.inv2);
    free(st->K.ps);
    free(st->K.cs);
    free(st);
}

static int kern_init(mmd *st, const wgf_section *sec, wgf_error *err)
{
    kern *K = &st->K;
    if (strcmp(wgf_section_string(sec, "kernel"), "energy") == 0) {
        K->type = K_ENERGY;
        return WGF_OK;
    }
    K->type = K_GAUSSIAN;
    const double *s = wgf_section_vector(sec, "bandwidth", &K->nb);
    K->inv2 = malloc(K->nb * sizeof *K->inv2);
    K->ps = malloc(K->nb * sizeof *K->ps);
    K->cs = malloc(K->nb * sizeof *K->cs);
    if (!K->inv2 || !K->ps || !K->cs)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    double unit = 1.0;
    if (wgf_section_bool(sec, "median")) {
        int rc = median_distance(st, &unit, err);
        if (rc != WGF_OK)
            return rc;
        if (!(unit > 0.0))
            return wgf_section_error(sec, "median", err,
                                     "the median distance between target samples is %g (they coincide)",
                                     unit);
    }
    for (size_t j = 0; j < K->nb; j++) {
        double s2 = (s[j] * unit) * (s[j] * unit);
        K->inv2[j] = 0.5 / s2;
        K->ps[j] = 1.0 / s2;
        K->cs[j] = 1.0 / (s2 * s2);
    }
    return WGF_OK;
}

/* The stiffness (wgf/plugin.h) of a Gaussian kernel: the largest eigenvalue
 * of the Hessian of the potential part V(x) = -2w E_y k(x, y),
 *
 *     Hess V(x) = 2w E_y sum_j e_j (I / s_j^2 - (x-y)(x-y)^T / s_j^4),
 *
 * at the first STIFF_POINTS target samples, where the target's mass makes
 * it largest: an eigenvalue of Hess V at some point, so an estimate from
 * below of its supremum (at most 2w sum_j 1/s_j^2). */
static int stiffness_init(mmd *st, wgf_error *err)
{
    st->lambda = NAN;
    if (st->K.type != K_GAUSSIAN || st->weight == 0.0)
        return WGF_OK;
    size_t d = st->d, np = st->M < STIFF_POINTS ? st->M : STIFF_POINTS;
    double *A = malloc((d * d + 2 * d) * sizeof *A);
    gsl_vector *ev = gsl_vector_alloc(d);
    gsl_eigen_symm_workspace *ws = gsl_eigen_symm_alloc(d);
    if (!A || !ev || !ws) {
        free(A);
        if (ev)
            gsl_vector_free(ev);
        if (ws)
            gsl_eigen_symm_free(ws);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    double *y = A + d * d, best = 0.0;
    for (size_t p = 0; p < np; p++) {
        memset(A, 0, d * d * sizeof *A);
        for (size_t m = 0; m < st->M; m++) {
            double r2 = 0.0, a = 0.0, b = 0.0;
            for (size_t i = 0; i < d; i++) {
                y[i] = st->y[p * d + i] - st->y[m * d + i];
                r2 += y[i] * y[i];
            }
            for (size_t j = 0; j < st->K.nb; j++) {
                double e = exp(-r2 * st->K.inv2[j]);
                a += e * st->K.ps[j];
                b += e * st->K.cs[j];
            }
            for (size_t i = 0; i < d; i++) {
                A[i * d + i] += a;
                for (size_t k = 0; k < d; k++)
                    A[i * d + k] -= b * y[i] * y[k];
            }
        }
        gsl_matrix_view Av = gsl_matrix_view_array(A, d, d);
        if (gsl_eigen_symm(&Av.matrix, ev, ws) == 0)
            best = fmax(best, gsl_vector_max(ev));
    }
    st->lambda = 2.0 * st->weight * best / (double)st->M;
    free(A);
    gsl_vector_free(ev);
    gsl_eigen_symm_free(ws);
    return WGF_OK;
}

static int mmd_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    *state = NULL;
    mmd *st = calloc(1, sizeof *st);
    if (!st)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    st->d = info ? info->dim : wgf_section_dim(sec);
    st->weight = wgf_section_double(sec, "weight");
    int rc = wgf_target_open(&st->target, &st->owned, info ? info->target : NULL, sec, err);
    if (rc == WGF_OK)
        rc = wgf_target_set(st->target, WGF_TARGET_TRAIN, 0, &st->y, &st->M, err);
    if (rc == WGF_OK && st->M < 2)
        rc = wgf_section_error(sec, "target_samples", err, "%zu target samples (at least 2)", st->M);
    if (rc == WGF_OK)
        rc = kern_init(st, sec, err);
    if (rc == WGF_OK && !(st->yt = malloc(st->M * st->d * sizeof *st->yt)))
        rc = wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu target samples", st->M);
    if (rc != WGF_OK) {
        mmd_destroy(st);
        return rc;
    }
    wgf_transpose(st->M, st->d, st->y, st->yt);
    /* The constant E k(y,y'): a self pass over the target samples. */
    double *R = malloc(st->M * sizeof *R);
    if (!R) {
        mmd_destroy(st);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    pair_pass P = {.radial = kern_radial, .K = &st->K, .N = st->M, .d = st->d, .self = 1, .x = st->y, .R = R};
    rc = pair_run(&P, err);
    if (rc != WGF_OK) {
        free(R);
        mmd_destroy(st);
        return rc;
    }
    double c = 0.0;
    for (size_t m = 0; m < st->M; m++)
        c += R[m];
    free(R);
    st->cyy = 2.0 * c / ((double)st->M * (double)(st->M - 1));
    if ((rc = stiffness_init(st, err)) != WGF_OK) {
        mmd_destroy(st);
        return rc;
    }
    *state = st;
    return WGF_OK;
}

static unsigned mmd_needs(void *state)
{
    (void)state;
    return 0u;
}

static int check_batch(const mmd *st, const wgf_batch *b, wgf_error *err)
{
    if (b->d != st->d)
        return wgf_error_set(err, WGF_EINVAL, "batch of dimension %zu, energy of dimension %zu", b->d,
                             st->d);
    if (b->n < 2)
        return wgf_error_set(err, WGF_EINVAL, "pairs need at least 2 samples (got %zu)", b->n);
    return WGF_OK;
}

/* ------------------------------------------------------------- vtable */

/* The two row sums of eval or wgrad: Rxx, Rxy (N each, or NULL), Gxx, Gxy
 * (N x d each, or NULL). */
static int both_passes(const mmd *st, const wgf_batch *b, double *Rxx, double *Rxy, double *Gxx,
                       double *Gxy, wgf_error *err)
{
    pair_pass P = {.radial = kern_radial, .K = &st->K, .N = b->n, .d = b->d, .self = 1, .x = b->x,
                   .R = Rxx, .G = Gxx};
    int rc = pair_run(&P, err);
    if (rc != WGF_OK)
        return rc;
    pair_pass Q = {.radial = kern_radial, .K = &st->K, .N = b->n, .d = b->d, .self = 0, .x = b->x,
                   .ct = st->yt, .ncol = st->M, .R = Rxy, .G = Gxy};
    return pair_run(&Q, err);
}

static int mmd_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    const mmd *st = state;
    int rc = check_batch(st, b, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d;
    double dN = (double)N, dM = (double)st->M;
    double *R = malloc(2 * N * sizeof *R), *Gxy = a ? malloc(N * d * sizeof *Gxy) : NULL;
    if (!R || (a && !Gxy)) {
        free(R);
        free(Gxy);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu samples", N);
    }
    rc = both_passes(st, b, R, R + N, a, Gxy, err);
    if (rc == WGF_OK) {
        double sxx = 0.0, sxy = 0.0;
        for (size_t n = 0; n < N; n++) {
            sxx += R[n];
            sxy += R[N + n];
        }
        double f = st->weight * (2.0 * sxx / (dN * (dN - 1.0)) - 2.0 * sxy / (dN * dM) + st->cyy);
        if (!isfinite(f))
            rc = wgf_error_set(err, WGF_ENUMERIC, "the energy is not finite (%g)", f);
        else if (F)
            *F = f;
        if (rc == WGF_OK && a) {
            double sa = 2.0 * st->weight / (dN * (dN - 1.0)), sb = 2.0 * st->weight / (dN * dM);
            for (size_t k = 0; k < N * d; k++)
                a[k] = sa * a[k] - sb * Gxy[k];
        }
        if (rc == WGF_OK && c)
            memset(c, 0, N * sizeof *c);
    }
    free(R);
    free(Gxy);
    return rc;
}

static int mmd_wgrad(void *state, const wgf_batch *b, double *g, wgf_error *err)
{
    const mmd *st = state;
    int rc = check_batch(st, b, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d;
    double *Gxy = malloc(N * d * sizeof *Gxy);
    if (!Gxy)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu samples", N);
    rc = both_passes(st, b, NULL, NULL, g, Gxy, err);
    if (rc == WGF_OK) {
        double sa = 2.0 * st->weight / ((double)N - 1.0), sb = 2.0 * st->weight / (double)st->M;
        for (size_t k = 0; k < N * d; k++)
            g[k] = sa * g[k] - sb * Gxy[k];
    }
    free(Gxy);
    return rc;
}

static int mmd_wgrad_vjp(void *state, const wgf_batch *b, const double *gbar, double *xbar, double *lbar,
                         double *sbar, wgf_error *err)
{
    (void)lbar; /* g depends on x only */
    (void)sbar;
    const mmd *st = state;
    if (!xbar)
        return WGF_OK;
    int rc = check_batch(st, b, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d;
    double *H = malloc(2 * N * d * sizeof *H);
    if (!H)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu samples", N);
    pair_pass P = {.radial = kern_radial, .K = &st->K, .N = N, .d = d, .self = 1, .x = b->x, .g = gbar,
                   .H = H};
    rc = pair_run(&P, err);
    if (rc == WGF_OK) {
        pair_pass Q = {.radial = kern_radial, .K = &st->K, .N = N, .d = d, .self = 0, .x = b->x,
                       .ct = st->yt, .ncol = st->M, .g = gbar, .H = H + N * d};
        rc = pair_run(&Q, err);
    }
    if (rc == WGF_OK) {
        double sa = 2.0 * st->weight / ((double)N - 1.0), sb = 2.0 * st->weight / (double)st->M;
        for (size_t k = 0; k < N * d; k++)
            xbar[k] += sa * H[k] - sb * H[N * d + k];
    }
    free(H);
    return rc;
}

static double mmd_stiffness(void *state)
{
    return ((const mmd *)state)->lambda;
}

static const wgf_energy_vt mmd_vt = {
    .create = mmd_create,
    .destroy = mmd_destroy,
    .needs = mmd_needs,
    .eval = mmd_eval,
    .wgrad = mmd_wgrad,
    .wgrad_vjp = mmd_wgrad_vjp,
    .stiffness = mmd_stiffness,
};

static const wgf_plugin mmd_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = "mmd",
    .summary = "squared MMD to a target known by samples (gaussian or energy-distance kernel)",
    .params = mmd_params,
    .vtable = &mmd_vt,
};

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &mmd_plugin : NULL;
}
