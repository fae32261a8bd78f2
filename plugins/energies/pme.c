/* pme.c: the porous-medium energy F = 1/(m-1) int rho^m = E[rho^(m-1)]/(m-1)
 * (MATH.md 1, 2), optionally times a weight w. On a batch, with
 * e_n = exp((m-1) l_n):
 *
 *     Fhat = w/((m-1)N) sum_n e_n,   a_n = 0,   c_n = w e_n/N,
 *     g_n = w m e_n s_n,
 *     lbar_n += w m (m-1) e_n (s_n . gbar_n),   sbar_n += w m e_n gbar_n.
 *
 * O(N d) and memory bound: no threads. F is summed in sample order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

typedef struct pme {
    size_t d;
    double m;
    double weight;
} pme;

static const wgf_param pme_params[] = {
    {.key = "m", .type = WGF_PARAM_DOUBLE, .def = "2", .flags = WGF_P_MIN | WGF_P_MIN_OPEN, .min = 1.0,
     .doc = "the exponent m > 1: F = 1/(m-1) int rho^m"},
    {.key = "weight", .type = WGF_PARAM_DOUBLE, .def = "1", .flags = WGF_P_MIN, .min = 0.0,
     .doc = "factor on the whole energy (a term of a sum)"},
    {0}};

static int pme_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    *state = NULL;
    pme *st = calloc(1, sizeof *st);
    if (!st)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    st->d = info ? info->dim : wgf_section_dim(sec);
    st->m = wgf_section_double(sec, "m");
    st->weight = wgf_section_double(sec, "weight");
    if (!(st->m > 1.0)) {
        double m = st->m;
        free(st);
        return wgf_section_error(sec, "m", err, "must be > 1 (m = %g)", m);
    }
    *state = st;
    return WGF_OK;
}

static void pme_destroy(void *state)
{
    free(state);
}

static unsigned pme_needs(void *state)
{
    (void)state;
    return WGF_NEEDS_L | WGF_WGRAD_NEEDS_L | WGF_WGRAD_NEEDS_S;
}

static int check_batch(const pme *st, const wgf_batch *b, int need_s, wgf_error *err)
{
    if (b->d != st->d)
        return wgf_error_set(err, WGF_EINVAL, "batch of dimension %zu, energy of dimension %zu", b->d,
                             st->d);
    if (b->n == 0)
        return wgf_error_set(err, WGF_EINVAL, "empty batch");
    if (!b->l)
        return wgf_error_set(err, WGF_EINVAL, "the batch has no log-density");
    if (need_s && !b->s)
        return wgf_error_set(err, WGF_EINVAL, "the batch has no score");
    return WGF_OK;
}

static int pme_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    const pme *st = state;
    int rc = check_batch(st, b, 0, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n;
    double m1 = st->m - 1.0, cn = st->weight / (double)N, sum = 0.0;
    for (size_t n = 0; n < N; n++) {
        double e = exp(m1 * b->l[n]);
        if (!isfinite(e))
            return wgf_error_set(err, WGF_ENUMERIC, "rho^(m-1) is %g at sample %zu (log-density %g)", e,
                                 n, b->l[n]);
        sum += e;
        if (c)
            c[n] = cn * e;
    }
    if (F)
        *F = cn * sum / m1;
    if (a)
        memset(a, 0, N * b->d * sizeof *a);
    return WGF_OK;
}

static int pme_wgrad(void *state, const wgf_batch *b, double *g, wgf_error *err)
{
    const pme *st = state;
    int rc = check_batch(st, b, 1, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d;
    double m1 = st->m - 1.0, wm = st->weight * st->m;
    for (size_t n = 0; n < N; n++) {
        double f = wm * exp(m1 * b->l[n]);
        for (size_t i = 0; i < d; i++)
            g[n * d + i] = f * b->s[n * d + i];
    }
    return WGF_OK;
}

static int pme_wgrad_vjp(void *state, const wgf_batch *b, const double *gbar, double *xbar, double *lbar,
                         double *sbar, wgf_error *err)
{
    (void)xbar; /* g does not depend on x */
    const pme *st = state;
    int rc = check_batch(st, b, lbar != NULL, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d;
    double m1 = st->m - 1.0, wm = st->weight * st->m;
    for (size_t n = 0; n < N; n++) {
        double f = wm * exp(m1 * b->l[n]);
        const double *gb = gbar + n * d;
        if (lbar) {
            const double *s = b->s + n * d;
            double sg = 0.0;
            for (size_t i = 0; i < d; i++)
                sg += s[i] * gb[i];
            lbar[n] += m1 * f * sg;
        }
        if (sbar)
            for (size_t i = 0; i < d; i++)
                sbar[n * d + i] += f * gb[i];
    }
    return WGF_OK;
}

static const wgf_energy_vt pme_vt = {
    .create = pme_create,
    .destroy = pme_destroy,
    .needs = pme_needs,
    .eval = pme_eval,
    .wgrad = pme_wgrad,
    .wgrad_vjp = pme_wgrad_vjp,
};

static const wgf_plugin pme_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = "pme",
    .summary = "porous medium: 1/(m-1) int rho^m = E[rho^(m-1)]/(m-1)",
    .params = pme_params,
    .vtable = &pme_vt,
};

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &pme_plugin : NULL;
}
