/* doublewell.c: an energy plugin built outside the wgf tree.
 *
 * The Fokker-Planck free energy in a double-well potential,
 *
 *     F(rho) = int V rho + D int rho log rho,
 *     V(x)   = a (x_1^2 - 1)^2 + 1/2 sum_{i>1} x_i^2,
 *
 * whose gradient flow d_t rho = div(rho grad V) + D Lap rho splits the mass
 * between the wells x_1 = -1 and x_1 = +1. On a batch of N samples x_n with
 * model log-densities l_n and scores s_n (MATH.md 1, 2):
 *
 *     Fhat = (1/N) sum_n V(x_n) + D l_n,   a_n = grad V(x_n) / N,   c_n = D / N,
 *     g_n  = grad V(x_n) + D s_n           (the Wasserstein gradient),
 *
 * and the reverse pass of g for a cotangent gbar: xbar += Hess V gbar,
 * sbar += D gbar. The core does everything else: the chain rule through the
 * map, the metric, the scheme, the outputs.
 *
 * Build:  make            (pkg-config finds the installed wgf)
 * Check:  WGF_PLUGIN_PATH=. wgf selftest doublewell
 * Use:    wgf run doublewell.ini */
#include <math.h>
#include <stdlib.h>

#include <wgf/plugin.h>

/* The parameters, validated and typed by the core before create() sees them. */
static const wgf_param doublewell_params[] = {
    {"a", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0.0, 0.0, NULL,
     "barrier height: V = a (x_1^2 - 1)^2 + |x_2..x_d|^2 / 2"},
    {"diffusion", WGF_PARAM_DOUBLE, "0.5", WGF_P_MIN, 0.0, 0.0, NULL,
     "diffusion coefficient D, the weight of the entropy term"},
    {NULL, 0, NULL, 0, 0.0, 0.0, NULL, NULL}};

typedef struct doublewell {
    double a; /* barrier height, > 0 */
    double D; /* diffusion, >= 0 */
} doublewell;

/* V(x) and, when grad is not NULL, grad V(x) (d numbers). */
static double doublewell_potential(const doublewell *w, size_t d, const double *x, double *grad)
{
    double q = x[0] * x[0] - 1.0;
    double v = w->a * q * q;
    if (grad != NULL)
        grad[0] = 4.0 * w->a * x[0] * q;
    for (size_t i = 1; i < d; i++) {
        v += 0.5 * x[i] * x[i];
        if (grad != NULL)
            grad[i] = x[i];
    }
    return v;
}

static int doublewell_create(const wgf_section *sec, const wgf_problem_info *info, void **state,
                             wgf_error *err)
{
    doublewell *w;

    (void)info; /* any dimension >= 1 will do */
    w = malloc(sizeof *w);
    if (w == NULL)
        return wgf_error_set(err, WGF_ENOMEM, "doublewell: out of memory");
    w->a = wgf_section_double(sec, "a");
    w->D = wgf_section_double(sec, "diffusion");
    *state = w;
    return WGF_OK;
}

static void doublewell_destroy(void *state)
{
    free(state);
}

/* The entropy term reads l in eval and s in wgrad; without diffusion the
 * energy is a potential energy and the core may skip both. */
static unsigned doublewell_needs(void *state)
{
    const doublewell *w = state;
    return w->D != 0.0 ? (WGF_NEEDS_L | WGF_WGRAD_NEEDS_S) : 0u;
}

static int doublewell_eval(void *state, const wgf_batch *b, double *F, double *a, double *c,
                           wgf_error *err)
{
    const doublewell *w = state;
    size_t n = b->n, d = b->d;
    double inv_n, sum = 0.0;

    if (n == 0)
        return wgf_error_set(err, WGF_EINVAL, "doublewell: empty batch");
    inv_n = 1.0 / (double)n;
    for (size_t k = 0; k < n; k++) {
        double *ak = a != NULL ? a + k * d : NULL;
        sum += doublewell_potential(w, d, b->x + k * d, ak);
        if (w->D != 0.0)
            sum += w->D * b->l[k];
        if (ak != NULL)
            for (size_t i = 0; i < d; i++)
                ak[i] *= inv_n;
        if (c != NULL)
            c[k] = w->D * inv_n;
    }
    *F = sum * inv_n;
    if (!isfinite(*F))
        return wgf_error_set(err, WGF_ENUMERIC,
                             "doublewell: energy is not finite (%g): samples or log-densities overflow",
                             *F);
    return WGF_OK;
}

static int doublewell_wgrad(void *state, const wgf_batch *b, double *g, wgf_error *err)
{
    const doublewell *w = state;
    size_t n = b->n, d = b->d;

    (void)err;
    for (size_t k = 0; k < n; k++) {
        double *gk = g + k * d;
        doublewell_potential(w, d, b->x + k * d, gk);
        if (w->D != 0.0)
            for (size_t i = 0; i < d; i++)
                gk[i] += w->D * b->s[k * d + i];
    }
    return WGF_OK;
}

/* Hess V is diagonal: a (12 x_1^2 - 4) in the first coordinate, 1 elsewhere.
 * g does not depend on l, so lbar is left alone. */
static int doublewell_wgrad_vjp(void *state, const wgf_batch *b, const double *gbar, double *xbar,
                                double *lbar, double *sbar, wgf_error *err)
{
    const doublewell *w = state;
    size_t n = b->n, d = b->d;

    (void)lbar;
    (void)err;
    for (size_t k = 0; k < n; k++) {
        const double *x = b->x + k * d, *gb = gbar + k * d;
        if (xbar != NULL) {
            double *xb = xbar + k * d;
            xb[0] += w->a * (12.0 * x[0] * x[0] - 4.0) * gb[0];
            for (size_t i = 1; i < d; i++)
                xb[i] += gb[i];
        }
        if (sbar != NULL)
            for (size_t i = 0; i < d; i++)
                sbar[k * d + i] += w->D * gb[i];
    }
    return WGF_OK;
}

/* Members by name: the ones a newer ABI adds after these stay NULL. */
static const wgf_energy_vt doublewell_vt = {
    .create = doublewell_create,
    .destroy = doublewell_destroy,
    .needs = doublewell_needs,
    .eval = doublewell_eval,
    .wgrad = doublewell_wgrad,
    .wgrad_vjp = doublewell_wgrad_vjp,
};

static const wgf_plugin doublewell_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = "doublewell",
    .summary = "Fokker-Planck energy in the double well a (x_1^2 - 1)^2 + |x_2..x_d|^2 / 2",
    .params = doublewell_params,
    .vtable = &doublewell_vt,
};

/* The one symbol the shared object exports (the Makefile hides the rest). */
WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &doublewell_plugin : NULL;
}
