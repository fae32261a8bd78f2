/* goodenergy.c: a complete, minimal energy for tests of the loader and the core.
 *
 *     F = scale E[|x|^2] / 2,   Fhat = scale/(2N) sum_n |x_n|^2        (MATH.md 2)
 *     a_n = dFhat/dx_n = scale x_n / N,   c_n = dFhat/dl_n = 0
 *     g = grad dF/drho = scale x,   xbar += scale gbar (lbar, sbar untouched)
 *
 * With scale = 1 the flow is dx/dt = -x: the law contracts to the origin, the samples scale by
 * exp(-t). It reads neither l nor s. */
#include <stdlib.h>

#include <wgf/plugin.h>

typedef struct goodenergy {
    double scale;
} goodenergy;

static int ge_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    goodenergy *g = malloc(sizeof *g);
    if (!g)
        return wgf_error_set(err, WGF_ENOMEM, "goodenergy: out of memory");
    /* Tests may create it without a section: the schema's default then. */
    g->scale = sec ? wgf_section_double(sec, "scale") : 1.0;
    *state = g;
    return WGF_OK;
}

static void ge_destroy(void *state)
{
    free(state);
}

static unsigned ge_needs(void *state)
{
    (void)state;
    return 0;
}

static int ge_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    const goodenergy *g = state;
    if (b->n == 0)
        return wgf_error_set(err, WGF_EINVAL, "goodenergy: empty batch");
    size_t nd = b->n * b->d;
    double s = 0.0, w = g->scale / (double)b->n;
    for (size_t k = 0; k < nd; k++)
        s += b->x[k] * b->x[k];
    if (F)
        *F = 0.5 * w * s;
    if (a)
        for (size_t k = 0; k < nd; k++)
            a[k] = w * b->x[k];
    if (c)
        for (size_t n = 0; n < b->n; n++)
            c[n] = 0.0;
    return WGF_OK;
}

static int ge_wgrad(void *state, const wgf_batch *b, double *out, wgf_error *err)
{
    (void)err;
    const goodenergy *g = state;
    for (size_t k = 0; k < b->n * b->d; k++)
        out[k] = g->scale * b->x[k];
    return WGF_OK;
}

static int ge_wgrad_vjp(void *state, const wgf_batch *b, const double *gbar, double *xbar, double *lbar,
                        double *sbar, wgf_error *err)
{
    (void)lbar;
    (void)sbar;
    (void)err;
    const goodenergy *g = state;
    if (xbar)
        for (size_t k = 0; k < b->n * b->d; k++)
            xbar[k] += g->scale * gbar[k];
    return WGF_OK;
}

static const wgf_energy_vt ge_vt = {
    .create = ge_create,
    .destroy = ge_destroy,
    .needs = ge_needs,
    .eval = ge_eval,
    .wgrad = ge_wgrad,
    .wgrad_vjp = ge_wgrad_vjp,
};

static const wgf_param ge_params[] = {
    {.key = "scale", .type = WGF_PARAM_DOUBLE, .def = "1", .doc = "factor multiplying the energy"},
    {0},
};

static const wgf_plugin ge_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = "goodenergy",
    .summary = "test energy: scale E[|x|^2]/2, Wasserstein gradient scale x",
    .params = ge_params,
    .vtable = &ge_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &ge_plugin : NULL;
}
