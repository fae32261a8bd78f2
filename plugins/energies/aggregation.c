/* aggregation.c: the interaction energy F = 1/2 iint W(x-y) rho(x) rho(y)
 * (MATH.md 1, 2), optionally times a weight w, with the kernels of kernel.h.
 * On a batch, with y_nk = x_n - x_k, sums over k != n:
 *
 *     Fhat = w/(2N(N-1)) sum_n sum_k W(y_nk) = w/(N(N-1)) sum_n sum_{k>n} W(y_nk),
 *     a_n  = w/(N(N-1)) sum_k grad W(y_nk),   c_n = 0,
 *     g_n  = w/(N-1) sum_k grad W(y_nk),
 *     xbar_n += w/(N-1) sum_k Hess W(y_nk) (gbar_n - gbar_k).
 *
 * The pair sums are O(N^2 d). Each row n is summed by one thread, over k in
 * ascending order in tiles of fixed length (set by d alone), and the row
 * totals of F are added serially in row order: the results are the same for
 * any number of threads. The grad W sums of a row cover all k (W is even,
 * so the other half could be had from symmetry, but only by scattering into
 * other rows, which needs either locks or thread-dependent sums). Within a
 * tile, the coordinates of x are stored transposed (d rows of N) so that the
 * loops over k are unit-stride and vectorise. F uses the same sequential sum
 * over k > n whether or not a is wanted, so eval returns the same F either
 * way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/parallel.h>
#include <wgf/plugin.h>

#include "kernel.h"

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

/* Below this many pair-coordinates (N^2 d, about a tenth of a millisecond)
 * one thread does the batch: starting a parallel region costs more. */
#define PAR_MIN 131072

typedef struct agg {
    size_t d;
    agg_kernel *K;
    double weight;
} agg;

static const wgf_param agg_params[] = {
    {.key = "kernel", .type = WGF_PARAM_CHOICE, .def = "quartic", .choices = "quartic|power",
     .doc = "W: quartic |y|^4/4 - |y|^2/2, or power |y|^a/a - |y|^b/b"},
    {.key = "a", .type = WGF_PARAM_DOUBLE, .def = "4", .flags = WGF_P_MIN | WGF_P_MIN_OPEN, .min = 0.0,
     .doc = "power: the attractive exponent, a > b"},
    {.key = "b", .type = WGF_PARAM_DOUBLE, .def = "2", .flags = WGF_P_MIN | WGF_P_MIN_OPEN, .min = 0.0,
     .doc = "power: the repulsive exponent, 0 < b < a (W is C^1 for b > 1, C^2 for b >= 2)"},
    {.key = "weight", .type = WGF_PARAM_DOUBLE, .def = "1", .flags = WGF_P_MIN, .min = 0.0,
     .doc = "factor on the whole energy (a term of a sum)"},
    {0}};

static int agg_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    *state = NULL;
    agg *st = calloc(1, sizeof *st);
    if (!st)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    st->d = info ? info->dim : wgf_section_dim(sec);
    st->weight = wgf_section_double(sec, "weight");
    /* what eval would refuse at the first step, refused when checking */
    if (info && info->samples == 1) {
        free(st);
        return wgf_section_error(sec, NULL, err, "pair interactions need at least 2 samples "
                                 "(run.samples = 1)");
    }
    int rc;
    if (strcmp(wgf_section_string(sec, "kernel"), "power") == 0) {
        double a = wgf_section_double(sec, "a"), b = wgf_section_double(sec, "b");
        if (!(a > b)) {
            free(st);
            return wgf_section_error(sec, "a", err, "must be greater than b (a = %g, b = %g)", a, b);
        }
        rc = agg_kernel_power(&st->K, a, b, err);
    } else {
        rc = agg_kernel_quartic(&st->K, err);
    }
    if (rc != WGF_OK) {
        free(st);
        return rc;
    }
    *state = st;
    return WGF_OK;
}

static void agg_destroy(void *state)
{
    agg *st = state;
    if (!st)
        return;
    agg_kernel_free(st->K);
    free(st);
}

static unsigned agg_needs(void *state)
{
    (void)state;
    return 0u;
}

static int check_batch(const agg *st, const wgf_batch *b, wgf_error *err)
{
    if (b->d != st->d)
        return wgf_error_set(err, WGF_EINVAL, "batch of dimension %zu, energy of dimension %zu",
                             b->d, st->d);
    if (b->n < 2)
        return wgf_error_set(err, WGF_EINVAL, "pairs need at least 2 samples (got %zu)", b->n);
    return WGF_OK;
}

/* ------------------------------------------------------------ pair sums */

/* What a pass over the rows computes. */
typedef struct pass {
    const agg_kernel *K;
    size_t N, d, T;
    const double *x;  /* N x d */
    const double *xt; /* d x N */
    const double *g;  /* gbar, N x d (vjp) */
    const double *gt; /* gbar, d x N (vjp) */
    double *R;        /* N: sum_{k>n} W(y_nk), or NULL */
    double *G;        /* N x d: sum_k grad W(y_nk), or NULL */
    double *H;        /* N x d: sum_k Hess W(y_nk)(gbar_n - gbar_k), or NULL */
} pass;

static double *tile_buffers(size_t d, size_t T, int nthreads)
{
    return malloc((size_t)nthreads * (2 * d + 5) * T * sizeof(double));
}

/* u = gbar_n - gbar_k (d rows of T) and t = chi (y . u), for Hess W u =
 * psi u + chi (y . u) y. */
static void tile_u(const pass *P, size_t n, size_t k0, size_t len, const double *restrict y,
                   const double *restrict chi, double *restrict u, double *restrict t)
{
    size_t N = P->N, d = P->d, T = P->T;
    WGF_OMP(omp simd)
    for (size_t kk = 0; kk < len; kk++)
        t[kk] = 0.0;
    for (size_t i = 0; i < d; i++) {
        const double gi = P->g[n * d + i];
        const double *restrict col = P->gt + i * N + k0;
        const double *restrict yi = y + i * T;
        double *restrict ui = u + i * T;
        WGF_OMP(omp simd)
        for (size_t kk = 0; kk < len; kk++) {
            double v = gi - col[kk];
            ui[kk] = v;
            t[kk] += yi[kk] * v;
        }
    }
    WGF_OMP(omp simd)
    for (size_t kk = 0; kk < len; kk++)
        t[kk] *= chi[kk];
}

/* One row: R[n], G[n] and H[n] as the pass asks, with buf the thread's
 * (2d + 5) T doubles. */
static void row(const pass *P, size_t n, double *buf)
{
    size_t N = P->N, d = P->d, T = P->T;
    double *y = buf, *u = y + d * T, *r2 = u + d * T, *w = r2 + T, *psi = w + T, *chi = psi + T,
           *t = chi + T;
    double *G = P->G ? P->G + n * d : NULL, *H = P->H ? P->H + n * d : NULL;
    double Rn = 0.0;
    if (G)
        memset(G, 0, d * sizeof *G);
    if (H)
        memset(H, 0, d * sizeof *H);
    /* Only F wanted: the pairs k > n. Tiles then start at n+1, which does
     * not change Rn, a plain sequential sum. */
    size_t start = (G || H) ? 0 : n + 1;
    for (size_t k0 = start; k0 < N; k0 += T) {
        size_t len = N - k0 < T ? N - k0 : T;
        wgf_tile_diff(P->x + n * d, d, P->xt, N, k0, len, T, y, r2);
        agg_kernel_radial(P->K, len, r2, P->R ? w : NULL, (G || H) ? psi : NULL, H ? chi : NULL);
        if (P->R)
            for (size_t kk = (n + 1 > k0 ? n + 1 - k0 : 0); kk < len; kk++)
                Rn += w[kk];
        if (n >= k0 && n < k0 + len) {
            /* k = n is not a pair (y = 0 there anyway) */
            psi[n - k0] = 0.0;
            chi[n - k0] = 0.0;
        }
        if (G)
            for (size_t i = 0; i < d; i++)
                G[i] += wgf_dot_lanes(psi, y + i * T, len);
        if (H) {
            tile_u(P, n, k0, len, y, chi, u, t);
            for (size_t i = 0; i < d; i++)
                H[i] += wgf_dot2_lanes(psi, u + i * T, t, y + i * T, len);
        }
    }
    if (P->R)
        P->R[n] = Rn;
}

/* Every row of the pass, rows spread over threads. */
static int run_rows(pass *P, wgf_error *err)
{
    size_t N = P->N, d = P->d;
    int nt = wgf_omp_max_threads();
    P->T = wgf_tile_len(d);
    double *xt = malloc(N * d * sizeof *xt);
    double *gt = P->g ? malloc(N * d * sizeof *gt) : NULL;
    double *buf = tile_buffers(d, P->T, nt);
    if (!xt || !buf || (P->g && !gt)) {
        free(xt);
        free(gt);
        free(buf);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu samples", N);
    }
    wgf_transpose(N, d, P->x, xt);
    if (gt)
        wgf_transpose(N, d, P->g, gt);
    P->xt = xt;
    P->gt = gt;
    size_t per = (2 * d + 5) * P->T;
    const pass *Q = P;
    WGF_OMP(omp parallel for schedule(dynamic, 4) if (N * N * d >= PAR_MIN))
    for (size_t n = 0; n < N; n++)
        row(Q, n, buf + (size_t)wgf_omp_thread_id() * per);
    free(xt);
    free(gt);
    free(buf);
    P->xt = P->gt = NULL;
    return WGF_OK;
}

/* ------------------------------------------------------------- vtable */

static int agg_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    const agg *st = state;
    int rc = check_batch(st, b, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d;
    double *R = malloc(N * sizeof *R);
    if (!R)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu samples", N);
    pass P = {.K = st->K, .N = N, .d = d, .x = b->x, .R = R, .G = a};
    rc = run_rows(&P, err);
    if (rc != WGF_OK) {
        free(R);
        return rc;
    }
    double f = 0.0, scale = st->weight / ((double)N * (double)(N - 1));
    for (size_t n = 0; n < N; n++)
        f += R[n];
    free(R);
    f *= scale;
    if (!isfinite(f))
        return wgf_error_set(err, WGF_ENUMERIC, "the energy is not finite (%g)", f);
    if (F)
        *F = f;
    if (a)
        for (size_t k = 0; k < N * d; k++)
            a[k] *= scale;
    if (c)
        memset(c, 0, N * sizeof *c);
    return WGF_OK;
}

static int agg_wgrad(void *state, const wgf_batch *b, double *g, wgf_error *err)
{
    const agg *st = state;
    int rc = check_batch(st, b, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d;
    pass P = {.K = st->K, .N = N, .d = d, .x = b->x, .G = g};
    rc = run_rows(&P, err);
    if (rc != WGF_OK)
        return rc;
    double scale = st->weight / (double)(N - 1);
    for (size_t k = 0; k < N * d; k++)
        g[k] *= scale;
    return WGF_OK;
}

static int agg_wgrad_vjp(void *state, const wgf_batch *b, const double *gbar, double *xbar, double *lbar,
                         double *sbar, wgf_error *err)
{
    (void)lbar; /* g depends on x only */
    (void)sbar;
    const agg *st = state;
    if (!xbar)
        return WGF_OK;
    int rc = check_batch(st, b, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d;
    double *H = malloc(N * d * sizeof *H);
    if (!H)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu samples", N);
    pass P = {.K = st->K, .N = N, .d = d, .x = b->x, .g = gbar, .H = H};
    rc = run_rows(&P, err);
    if (rc == WGF_OK) {
        double scale = st->weight / (double)(N - 1);
        for (size_t k = 0; k < N * d; k++)
            xbar[k] += scale * H[k];
    }
    free(H);
    return rc;
}

static const wgf_energy_vt agg_vt = {
    .create = agg_create,
    .destroy = agg_destroy,
    .needs = agg_needs,
    .eval = agg_eval,
    .wgrad = agg_wgrad,
    .wgrad_vjp = agg_wgrad_vjp,
};

static const wgf_plugin agg_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = "aggregation",
    .summary = "interaction: 1/2 iint W(x-y) rho rho, W quartic or power (|y|^a/a - |y|^b/b)",
    .params = agg_params,
    .vtable = &agg_vt,
};

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &agg_plugin : NULL;
}
