/* fpe.c: the Fokker-Planck free energy F = int V rho + D int rho log rho
 * (MATH.md 1, 2), optionally times a weight, with the potentials of
 * potential.h. On a batch:
 *
 *     Fhat = w/N sum_n V(x_n) + D l_n,   a_n = w grad V(x_n)/N,   c_n = w D/N,
 *     g_n = w (grad V(x_n) + D s_n),     xbar_n += w Hess V(x_n) gbar_n,  sbar_n += w D gbar_n.
 *
 * Samples are independent, so every loop is over samples in parallel and the
 * one reduction (F) is added serially in sample order: results do not depend
 * on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/parallel.h>
#include <wgf/plugin.h>

#include "potential.h"

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

/* Below this much work (operations, fpe_potential_cost per sample) a batch
 * is done by one thread: starting a parallel region costs more. */
#define PAR_MIN 200000

typedef struct fpe {
    size_t d;
    fpe_potential *V;
    double D;      /* diffusion */
    double weight; /* factor on the whole energy */
} fpe;

static const wgf_param fpe_params[] = {
    {.key = "potential", .type = WGF_PARAM_CHOICE, .def = "quadratic",
     .choices = "quadratic|quartic|expression",
     .doc = "V: quadratic (mu, sigma), separable quartic (scale), or an expression (V or separable)"},
    {.key = "mu", .type = WGF_PARAM_VECTOR, .def = "0",
     .doc = "quadratic: the centre of V = 1/2 (x-mu)^T Sigma^-1 (x-mu); random SEED[: LO HI] draws it "
            "uniform in [LO, HI]^d (default [-1, 1])"},
    {.key = "sigma", .type = WGF_PARAM_MATRIX, .def = "identity",
     .doc = "quadratic: Sigma, symmetric positive definite (the equilibrium is N(mu, D Sigma)); random "
            "SEED[: LO HI] draws Q diag(e) Q^T, Q Haar, e_i uniform in [LO, HI] (default [0.5, 2])"},
    {.key = "scale", .type = WGF_PARAM_DOUBLE, .def = "1",
     .doc = "quartic: V = scale * sum_i (x_i^4 - 16 x_i^2 + 5 x_i)"},
    {.key = "V", .type = WGF_PARAM_STRING,
     .doc = "expression: V in x1..xd, e.g. 0.06*(x1^4 - 16*x1^2 + 5*x1) + x2^2/2 "
            "(+ - * / ^, exp log sqrt sin cos tanh abs, pi)"},
    {.key = "separable", .type = WGF_PARAM_STRING,
     .doc = "expression: f in x, V = sum_i f(x_i), e.g. 0.06*(x^4 - 16*x^2 + 5*x)"},
    {.key = "diffusion", .type = WGF_PARAM_DOUBLE, .def = "1", .flags = WGF_P_MIN, .min = 0.0,
     .doc = "D >= 0: F = E[V] + D E[log rho]"},
    {.key = "weight", .type = WGF_PARAM_DOUBLE, .def = "1", .flags = WGF_P_MIN, .min = 0.0,
     .doc = "factor on the whole energy (a term of a sum)"},
    {0}};

static int parallel(const fpe *st, size_t N)
{
    return wgf_omp_max_threads() > 1 && N * fpe_potential_cost(st->V) >= PAR_MIN;
}

/* A potential's own message as the section's error on key. */
static int section_fail(const wgf_section *sec, const char *key, int rc, wgf_error *err)
{
    if (rc != WGF_EINVAL)
        return rc;
    char msg[WGF_ERROR_MSG_MAX];
    memcpy(msg, err->msg, sizeof msg);
    return wgf_section_error(sec, key, err, "%s", msg);
}

static int make_one_potential(const wgf_section *sec, size_t d, fpe_potential **V, wgf_error *err);

/* Every problem of the section at once, one line each: keys that the chosen
 * potential does not read, then the potential's own. */
static int make_potential(const wgf_section *sec, size_t d, fpe_potential **V, wgf_error *err)
{
    const char *kind = wgf_section_string(sec, "potential");
    wgf_error all = {0}, one = {0};
    if (strcmp(kind, "expression") != 0) {
        static const char *const keys[] = {"V", "separable"};
        for (size_t i = 0; i < 2; i++)
            if (wgf_section_has(sec, keys[i])) {
                wgf_section_error(sec, keys[i], &one,
                                  "only read with potential = expression (potential is %s)", kind);
                wgf_error_append(&all, WGF_EINVAL, "%s", one.msg);
            }
    }
    int rc = make_one_potential(sec, d, V, &one);
    if (rc != WGF_OK && rc != WGF_EINVAL) {
        *err = one;
        return rc;
    }
    if (rc != WGF_OK)
        wgf_error_append(&all, WGF_EINVAL, "%s", one.msg);
    if (all.code == WGF_OK)
        return WGF_OK;
    fpe_potential_free(*V);
    *V = NULL;
    *err = all;
    return WGF_EINVAL;
}

static int make_one_potential(const wgf_section *sec, size_t d, fpe_potential **V, wgf_error *err)
{
    const char *kind = wgf_section_string(sec, "potential");
    int hasV = wgf_section_has(sec, "V"), hasS = wgf_section_has(sec, "separable");
    int expr = strcmp(kind, "expression") == 0;
    if (!expr && (hasV || hasS))
        hasV = hasS = 0; /* reported by make_potential */
    if (strcmp(kind, "quadratic") == 0) {
        size_t len = 0;
        const double *mu = wgf_section_vector(sec, "mu", &len);
        const double *sigma = wgf_section_matrix(sec, "sigma");
        if (!mu || len != d || !sigma)
            return wgf_section_error(sec, "mu", err, "needs %zu numbers", d);
        return section_fail(sec, "sigma", fpe_potential_quadratic(V, d, mu, sigma, err), err);
    }
    if (strcmp(kind, "quartic") == 0)
        return fpe_potential_quartic(V, d, wgf_section_double(sec, "scale"), err);
    if (hasV && hasS)
        return wgf_section_error(sec, "separable", err, "give V or separable, not both");
    if (!hasV && !hasS)
        return wgf_section_error(sec, "potential", err,
                                 "expression needs V (an expression in x1..x%zu) or separable "
                                 "(f in x, V = sum_i f(x_i))",
                                 d);
    const char *key = hasV ? "V" : "separable";
    return section_fail(sec, key,
                        fpe_potential_expression(V, d, wgf_section_string(sec, key), hasS, err), err);
}

static int fpe_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    *state = NULL;
    fpe *st = calloc(1, sizeof *st);
    if (!st)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    st->d = info ? info->dim : wgf_section_dim(sec);
    st->D = wgf_section_double(sec, "diffusion");
    st->weight = wgf_section_double(sec, "weight");
    int rc = make_potential(sec, st->d, &st->V, err);
    if (rc != WGF_OK) {
        free(st);
        return rc;
    }
    *state = st;
    return WGF_OK;
}

static void fpe_destroy(void *state)
{
    fpe *st = state;
    if (!st)
        return;
    fpe_potential_free(st->V);
    free(st);
}

static unsigned fpe_needs(void *state)
{
    const fpe *st = state;
    return st->D != 0.0 ? (WGF_NEEDS_L | WGF_WGRAD_NEEDS_S) : 0u;
}

static int check_batch(const fpe *st, const wgf_batch *b, int need_l, int need_s, wgf_error *err)
{
    if (b->d != st->d)
        return wgf_error_set(err, WGF_EINVAL, "batch of dimension %zu, energy of dimension %zu", b->d,
                             st->d);
    if (b->n == 0)
        return wgf_error_set(err, WGF_EINVAL, "empty batch");
    if (st->D != 0.0 && need_l && !b->l)
        return wgf_error_set(err, WGF_EINVAL, "the batch has no log-density (diffusion %g needs it)",
                             st->D);
    if (st->D != 0.0 && need_s && !b->s)
        return wgf_error_set(err, WGF_EINVAL, "the batch has no score (diffusion %g needs it)", st->D);
    return WGF_OK;
}

/* Per-thread workspace: the potential's, plus extra doubles. */
static double *alloc_work(const fpe *st, size_t extra, size_t *stride, wgf_error *err)
{
    *stride = fpe_potential_worksize(st->V) + extra;
    if (*stride == 0)
        return NULL;
    double *w = malloc((size_t)wgf_omp_max_threads() * *stride * sizeof *w);
    if (!w)
        wgf_error_set(err, WGF_ENOMEM, "out of memory for workspace");
    return w;
}

static int fpe_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    const fpe *st = state;
    int rc = check_batch(st, b, 1, 0, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d, stride;
    double *val = malloc(N * sizeof *val);
    double *work = alloc_work(st, 0, &stride, err);
    if (!val || (stride && !work)) {
        free(val);
        free(work);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    double an = st->weight / (double)N;
    const fpe_potential *V = st->V;
    int par = parallel(st, N);
    (void)par; /* unused without OpenMP */
    const double *x = b->x;
    WGF_OMP(omp parallel for schedule(static) if (par))
    for (size_t n = 0; n < N; n++) {
        double *w = work ? work + (size_t)wgf_omp_thread_id() * stride : NULL;
        if (a) {
            double *arow = a + n * d;
            val[n] = fpe_potential_grad(V, x + n * d, arow, w);
            for (size_t i = 0; i < d; i++)
                arow[i] *= an;
        } else {
            val[n] = fpe_potential_value(V, x + n * d, w);
        }
    }
    double sV = 0.0, sl = 0.0;
    for (size_t n = 0; n < N; n++)
        sV += val[n];
    if (st->D != 0.0)
        for (size_t n = 0; n < N; n++)
            sl += b->l[n];
    double f = an * (sV + st->D * sl);
    if (!isfinite(f)) {
        rc = wgf_error_set(err, WGF_ENUMERIC, "the energy is not finite");
        for (size_t n = 0; n < N; n++) {
            if (!isfinite(val[n])) {
                rc = wgf_error_set(err, WGF_ENUMERIC, "the potential is %g at sample %zu", val[n], n);
                break;
            }
            if (st->D != 0.0 && !isfinite(b->l[n])) {
                rc = wgf_error_set(err, WGF_ENUMERIC, "the log-density is %g at sample %zu", b->l[n], n);
                break;
            }
        }
    }
    free(val);
    free(work);
    if (rc != WGF_OK)
        return rc;
    if (F)
        *F = f;
    if (c)
        for (size_t n = 0; n < N; n++)
            c[n] = an * st->D;
    return WGF_OK;
}

static int fpe_wgrad(void *state, const wgf_batch *b, double *g, wgf_error *err)
{
    const fpe *st = state;
    int rc = check_batch(st, b, 0, 1, err);
    if (rc != WGF_OK)
        return rc;
    size_t N = b->n, d = b->d, stride;
    double *work = alloc_work(st, 0, &stride, err);
    if (stride && !work)
        return WGF_ENOMEM;
    double w = st->weight, wD = st->weight * st->D;
    const double *s = st->D != 0.0 ? b->s : NULL;
    int par = parallel(st, N);
    (void)par; /* unused without OpenMP */
    WGF_OMP(omp parallel for schedule(static) if (par))
    for (size_t n = 0; n < N; n++) {
        double *gn = g + n * d;
        fpe_potential_grad(st->V, b->x + n * d, gn, work ? work + (size_t)wgf_omp_thread_id() * stride : NULL);
        for (size_t i = 0; i < d; i++)
            gn[i] = s ? w * gn[i] + wD * s[n * d + i] : w * gn[i];
    }
    free(work);
    return WGF_OK;
}

static int fpe_wgrad_vjp(void *state, const wgf_batch *b, const double *gbar, double *xbar, double *lbar,
                         double *sbar, wgf_error *err)
{
    (void)lbar; /* g does not depend on l */
    const fpe *st = state;
    if (b->d != st->d)
        return wgf_error_set(err, WGF_EINVAL, "batch of dimension %zu, energy of dimension %zu", b->d,
                             st->d);
    size_t N = b->n, d = b->d;
    if (xbar) {
        size_t stride;
        double *work = alloc_work(st, d, &stride, err);
        if (!work)
            return WGF_ENOMEM;
        size_t ws = fpe_potential_worksize(st->V);
        double w = st->weight;
        int par = parallel(st, N);
        (void)par; /* unused without OpenMP */
    WGF_OMP(omp parallel for schedule(static) if (par))
        for (size_t n = 0; n < N; n++) {
            double *hv = work + (size_t)wgf_omp_thread_id() * stride, *pw = ws ? hv + d : NULL;
            fpe_potential_hvp(st->V, b->x + n * d, gbar + n * d, hv, pw);
            for (size_t i = 0; i < d; i++)
                xbar[n * d + i] += w * hv[i];
        }
        free(work);
    }
    if (sbar && st->D != 0.0) {
        double wD = st->weight * st->D;
        for (size_t k = 0; k < N * d; k++)
            sbar[k] += wD * gbar[k];
    }
    return WGF_OK;
}

/* lambda_max of Hess V, weight included: near equilibrium the flow relaxes at the rates of Hess V
 * (mean) and twice them (spread), whatever D (doc/math.md section 5); the core warns before
 * explicit steps beyond that limit. */
static double fpe_stiffness(void *state)
{
    const fpe *st = state;
    return st->weight * fpe_potential_stiffness(st->V);
}

static const wgf_energy_vt fpe_vt = {
    .create = fpe_create,
    .destroy = fpe_destroy,
    .stiffness = fpe_stiffness,
    .needs = fpe_needs,
    .eval = fpe_eval,
    .wgrad = fpe_wgrad,
    .wgrad_vjp = fpe_wgrad_vjp,
};

static const wgf_plugin fpe_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = "fpe",
    .summary = "Fokker-Planck: E[V] + D E[log rho], V quadratic, quartic or an expression",
    .params = fpe_params,
    .vtable = &fpe_vt,
};

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &fpe_plugin : NULL;
}
