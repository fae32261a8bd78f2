/* ref_meanpath.c: a reference plugin built outside the wgf tree.
 *
 * The Fokker-Planck flow of a quadratic potential V = 1/2 (x - mu)^T Sigma^-1 (x - mu), with any
 * diffusion, moves the mean of the law by the linear ODE m' = -A (m - mu), A = weight Sigma^-1
 * (doc/math.md 6.1), whatever the law's shape:
 *
 *     m(t) = mu + exp(-A t) (m0 - mu),
 *
 * from the initial law's mean m0. This reference reports the model's mean error |mean(x) - m(t)|
 * on the output samples (column mean_err, summary.ini key `mean`) and the reference's distance to
 * the equilibrium mean |m(t) - mu| (column mean_gap). It reads the energy through the problem's
 * public accessors and refuses, at `wgf check`, a problem it does not describe.
 *
 * Build:  make            (pkg-config finds the installed wgf; the file must be ref_NAME.so)
 * Use:    [reference] plugin = meanpath
 * Check:  make check      (wgf check ou_mean.ini with the installed wgf) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/dist.h>
#include <wgf/plugin.h>
#include <wgf/problem.h>
#include <wgf/reference.h>

typedef struct meanpath {
    size_t d;
    double weight;
    const double *mu, *Sigma;  /* the energy's section, valid as long as the problem */
    const double *m0, *C0;     /* the initial law's moments, likewise */
    double *m, *C, *mean;      /* m(t), its covariance (unused), the samples' mean */
} meanpath;

static const char *const columns[] = {"mean_err", "mean_gap"};

static void mp_destroy(void *state)
{
    meanpath *r = state;
    if (r) {
        free(r->m);
        free(r->C);
        free(r->mean);
        free(r);
    }
}

static int mp_create(const wgf_section *sec, const wgf_reference_setup *setup, void **state, wgf_error *err)
{
    const wgf_problem *p = setup->problem;
    const char *name;
    const wgf_section *esec;
    if (wgf_problem_nterms(p) != 1 || wgf_problem_term(p, 0, &name, &esec, NULL, NULL) != WGF_OK ||
        strcmp(name, "fpe") != 0 || strcmp(wgf_section_string(esec, "potential"), "quadratic") != 0)
        return wgf_section_error(sec, "plugin", err,
                                 "meanpath needs a single energy, fpe with potential = quadratic");
    const double *m0, *C0;
    if (wgf_dist_gaussian(wgf_problem_get_info(p)->initial, &m0, &C0) != WGF_OK)
        return wgf_section_error(sec, "plugin", err, "meanpath needs initial.type = gaussian");
    meanpath *r = calloc(1, sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "meanpath: out of memory");
    size_t d = r->d = wgf_problem_get_info(p)->dim, len;
    r->weight = wgf_section_double(esec, "weight");
    r->mu = wgf_section_vector(esec, "mu", &len);
    r->Sigma = wgf_section_matrix(esec, "sigma");
    r->m0 = m0;
    r->C0 = C0;
    r->m = malloc(d * sizeof *r->m);
    r->C = malloc(d * d * sizeof *r->C);
    r->mean = malloc(d * sizeof *r->mean);
    if (!r->m || !r->C || !r->mean) {
        mp_destroy(r);
        return wgf_error_set(err, WGF_ENOMEM, "meanpath: out of memory");
    }
    *state = r;
    return WGF_OK;
}

static size_t mp_ncolumns(void *state)
{
    (void)state;
    return 2;
}

static const char *mp_column(void *state, size_t i)
{
    (void)state;
    return columns[i];
}

/* summary.ini [error]: mean_err as `mean`, mean_gap under its own name */
static const char *mp_summary_key(void *state, size_t i)
{
    (void)state;
    return i == 0 ? "mean" : NULL;
}

static int mp_eval(void *state, const wgf_reference_obs *obs, int full, double *values, wgf_error *err)
{
    (void)full; /* both columns are cheap: computed at every observation */
    meanpath *r = state;
    const wgf_batch *b = obs->samples;
    size_t d = r->d;
    if (!b || b->n == 0)
        return wgf_error_set(err, WGF_EINVAL, "meanpath: no output samples");
    /* exp(-weight Sigma^-1 t) is the OU propagator at time weight t; the diffusion only moves C */
    int rc = wgf_ou_moments(d, r->mu, r->Sigma, 0.0, r->m0, r->C0, r->weight * obs->t, r->m, r->C, err);
    if (rc != WGF_OK)
        return rc;
    for (size_t i = 0; i < d; i++)
        r->mean[i] = 0.0;
    for (size_t n = 0; n < b->n; n++)
        for (size_t i = 0; i < d; i++)
            r->mean[i] += b->x[n * d + i] / (double)b->n;
    double e = 0.0, g = 0.0;
    for (size_t i = 0; i < d; i++) {
        e += (r->mean[i] - r->m[i]) * (r->mean[i] - r->m[i]);
        g += (r->m[i] - r->mu[i]) * (r->m[i] - r->mu[i]);
    }
    values[0] = sqrt(e);
    values[1] = sqrt(g);
    return WGF_OK;
}

/* Members not given (needs_samples, curve, summary_extra) are NULL: always samples, no curve. */
static const wgf_reference_vt mp_vt = {
    .create = mp_create,
    .destroy = mp_destroy,
    .ncolumns = mp_ncolumns,
    .column = mp_column,
    .eval = mp_eval,
    .summary_key = mp_summary_key,
};

static const wgf_param mp_params[] = {{NULL, 0, NULL, 0, 0.0, 0.0, NULL, NULL}};

static const wgf_plugin mp_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_REFERENCE,
    .name = "meanpath",
    .summary = "mean of a quadratic-potential Fokker-Planck flow, m(t) = mu + exp(-A t)(m0 - mu)",
    .params = mp_params,
    .vtable = &mp_vt,
};

/* The one symbol the shared object exports (the Makefile hides the rest). */
WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &mp_plugin : NULL;
}
