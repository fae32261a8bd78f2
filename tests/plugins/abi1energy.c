/* abi1energy.c: an energy built against the frozen ABI-1 headers (tests/plugins/abi1), loaded by
 * the current loader. The quadratic Fokker-Planck energy of fpe.c with Sigma = I,
 *     F = 1/N sum_n 1/2 |x_n - mu|^2 + D l_n,   a_n = (x_n - mu)/N,   c_n = D/N,
 *     g_n = x_n - mu + D s_n,
 * so that a run with it equals one with fpe (potential = quadratic, sigma = identity). */
#include <stdlib.h>

#include <wgf/plugin.h>

typedef struct {
    double mu, D;
} quad;

static int q_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    quad *q = malloc(sizeof *q);
    if (!q)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    q->mu = wgf_section_double(sec, "mu");
    q->D = wgf_section_double(sec, "diffusion");
    *state = q;
    return WGF_OK;
}

static void q_destroy(void *state) { free(state); }

static unsigned q_needs(void *state)
{
    (void)state;
    return WGF_NEEDS_L | WGF_WGRAD_NEEDS_S;
}

static int q_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    (void)err;
    const quad *q = state;
    size_t N = b->n, d = b->d;
    double an = 1.0 / (double)N, sV = 0, sl = 0;
    for (size_t n = 0; n < N; n++) {
        double v = 0;
        for (size_t i = 0; i < d; i++) {
            double r = b->x[n * d + i] - q->mu;
            v += 0.5 * r * r;
            if (a)
                a[n * d + i] = r * an;
        }
        sV += v;
        if (c)
            c[n] = q->D * an;
    }
    for (size_t n = 0; n < N; n++)
        sl += b->l[n];
    *F = an * (sV + q->D * sl);
    return WGF_OK;
}

static int q_wgrad(void *state, const wgf_batch *b, double *g, wgf_error *err)
{
    (void)err;
    const quad *q = state;
    for (size_t k = 0; k < b->n * b->d; k++)
        g[k] = b->x[k] - q->mu + q->D * b->s[k];
    return WGF_OK;
}

static int q_wgrad_vjp(void *state, const wgf_batch *b, const double *gbar, double *xbar, double *lbar,
                       double *sbar, wgf_error *err)
{
    (void)lbar;
    (void)err;
    const quad *q = state;
    for (size_t k = 0; k < b->n * b->d; k++) {
        if (xbar)
            xbar[k] += gbar[k];
        if (sbar)
            sbar[k] += q->D * gbar[k];
    }
    return WGF_OK;
}

static const wgf_energy_vt q_vt = {
    .create = q_create,
    .destroy = q_destroy,
    .needs = q_needs,
    .eval = q_eval,
    .wgrad = q_wgrad,
    .wgrad_vjp = q_wgrad_vjp,
};

static const wgf_param q_params[] = {
    {"mu", WGF_PARAM_DOUBLE, "0", 0, 0, 0, NULL, "centre of V = 1/2 |x - mu|^2 (every coordinate)"},
    {"diffusion", WGF_PARAM_DOUBLE, "1", WGF_P_MIN, 0, 0, NULL, "D"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin q_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = "abi1energy",
    .summary = "ABI-1 fixture: quadratic Fokker-Planck energy with Sigma = I",
    .params = q_params,
    .vtable = &q_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &q_plugin : NULL; }
