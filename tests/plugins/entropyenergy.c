/* entropyenergy.c: energies for selftest's checks, one file, three plugins.
 *
 *   entropyenergy  F = E[|x|^2]/2 + D E[log rho]:  a_n = x_n / N, c_n = D / N,
 *                  g = x + D s,  xbar += gbar, sbar += D gbar            (correct)
 *   entropynods    the same with g = x: its wgrad drops the D s term. Every derivative of each
 *                  function agrees with finite differences of that function; only wgrad
 *                  against eval shows it.
 *   nanenergy      the correct energy, but V = NaN where x_1 < -2.5 (about 0.6 % of N(0, 1)
 *                  draws): with a few samples it looks fine, with a few hundred it is NaN. */
#include <math.h>
#include <stdlib.h>

#include <wgf/plugin.h>

typedef struct {
    double D;
    int drop_ds, nan_tail;
} ent;

static int ent_make(const wgf_section *sec, void **state, wgf_error *err, int drop_ds, int nan_tail)
{
    ent *e = malloc(sizeof *e);
    if (!e)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    e->D = wgf_section_double(sec, "diffusion");
    e->drop_ds = drop_ds;
    e->nan_tail = nan_tail;
    *state = e;
    return WGF_OK;
}

static int ent_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    return ent_make(sec, state, err, 0, 0);
}

static int nods_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    return ent_make(sec, state, err, 1, 0);
}

static int nan_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    return ent_make(sec, state, err, 0, 1);
}

static void ent_destroy(void *state) { free(state); }

static unsigned ent_needs(void *state)
{
    (void)state;
    return WGF_NEEDS_L | WGF_WGRAD_NEEDS_S;
}

static int ent_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    (void)err;
    const ent *e = state;
    double w = 1.0 / (double)b->n, sum = 0;
    for (size_t n = 0; n < b->n; n++) {
        const double *x = b->x + n * b->d;
        double v = 0;
        for (size_t i = 0; i < b->d; i++)
            v += 0.5 * x[i] * x[i];
        if (e->nan_tail && x[0] < -2.5)
            v = NAN;
        sum += w * (v + e->D * b->l[n]);
        for (size_t i = 0; a && i < b->d; i++)
            a[n * b->d + i] = w * (e->nan_tail && x[0] < -2.5 ? NAN : x[i]);
        if (c)
            c[n] = w * e->D;
    }
    *F = sum;
    return WGF_OK;
}

static int ent_wgrad(void *state, const wgf_batch *b, double *g, wgf_error *err)
{
    (void)err;
    const ent *e = state;
    for (size_t k = 0; k < b->n * b->d; k++)
        g[k] = b->x[k] + (e->drop_ds ? 0.0 : e->D * b->s[k]);
    return WGF_OK;
}

static int ent_wgrad_vjp(void *state, const wgf_batch *b, const double *gbar, double *xbar, double *lbar,
                         double *sbar, wgf_error *err)
{
    (void)lbar;
    (void)err;
    const ent *e = state;
    for (size_t k = 0; k < b->n * b->d; k++) {
        if (xbar)
            xbar[k] += gbar[k];
        if (sbar && !e->drop_ds)
            sbar[k] += e->D * gbar[k];
    }
    return WGF_OK;
}

#define VT(name, cr)                                                                                \
    static const wgf_energy_vt name = {.create = cr, .destroy = ent_destroy, .needs = ent_needs,    \
                                       .eval = ent_eval, .wgrad = ent_wgrad,                        \
                                       .wgrad_vjp = ent_wgrad_vjp}
VT(ent_vt, ent_create);
VT(nods_vt, nods_create);
VT(nan_vt, nan_create);

static const wgf_param ent_params[] = {
    {.key = "diffusion", .type = WGF_PARAM_DOUBLE, .def = "1", .flags = WGF_P_MIN, .doc = "D >= 0"},
    {0}};

static const wgf_plugin plugins[] = {
    {.abi_version = WGF_ABI_VERSION, .kind = WGF_ENERGY, .name = "entropyenergy",
     .summary = "test: E|x|^2/2 + D E[log rho]", .params = ent_params, .vtable = &ent_vt},
    {.abi_version = WGF_ABI_VERSION, .kind = WGF_ENERGY, .name = "entropynods",
     .summary = "test: entropyenergy whose wgrad drops D s", .params = ent_params, .vtable = &nods_vt},
    {.abi_version = WGF_ABI_VERSION, .kind = WGF_ENERGY, .name = "nanenergy",
     .summary = "test: entropyenergy, NaN where x_1 < -2.5", .params = ent_params, .vtable = &nan_vt},
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index < sizeof plugins / sizeof plugins[0] ? &plugins[index] : NULL;
}
