/* aggregation.c: the interaction energy F = 1/2 iint W(x-y) rho(x) rho(y)
 * (MATH.md 1, 2), optionally times a weight w, with the kernels of kernel.h.
 * On a batch, with y_nk = x_n - x_k, sums over k != n:
 *
 *     Fhat = w/(2N(N-1)) sum_n sum_k W(y_nk) = w/(N(N-1)) sum_n sum_{k>n} W(y_nk),
 *     a_n  = w/(N(N-1)) sum_k grad W(y_nk),   c_n = 0,
 *     g_n  = w/(N-1) sum_k grad W(y_nk),
 *     xbar_n += w/(N-1) sum_k Hess W(y_nk) (gbar_n - gbar_k).
 *
 * The pair sums are O(N^2 d), those of pairsum.h (shared with MMD): rows
 * summed by one thread each in a fixed order (over MPI, each rank sums its
 * share of the rows and every rank gets them all), and the row totals of F
 * added serially in row order, so the results are the same for any number of
 * threads and ranks. The grad W sums of a row cover all k (W is even, so the
 * other half could be had from symmetry, but only by scattering into other
 * rows, which needs either locks or thread-dependent sums). F uses the same
 * sequential sum over k > n whether or not a is wanted, so eval returns the
 * same F either way. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>

#include "kernel.h"
#include "pairsum.h"

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

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

/* The kernel as the pair sums call it. */
static void agg_radial(const void *K, size_t n, const double *r2, double *w, double *psi, double *chi)
{
    agg_kernel_radial(K, n, r2, w, psi, chi);
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
    pair_pass P = {.radial = agg_radial, .K = st->K, .N = N, .d = d, .self = 1, .x = b->x, .R = R, .G = a};
    rc = pair_run(&P, err);
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
    pair_pass P = {.radial = agg_radial, .K = st->K, .N = N, .d = d, .self = 1, .x = b->x, .G = g};
    rc = pair_run(&P, err);
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
    pair_pass P = {.radial = agg_radial, .K = st->K, .N = N, .d = d, .self = 1, .x = b->x, .g = gbar,
                   .H = H};
    rc = pair_run(&P, err);
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
