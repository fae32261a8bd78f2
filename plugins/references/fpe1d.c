/* fpe1d.c: the reference of a Fokker-Planck equation with a separable
 * potential from a product law (MATH.md 6): each coordinate evolves alone,
 * by d_t rho = d_x (rho v'(x) + D d_x rho), solved by 1-D finite volumes
 * (one solver per distinct initial marginal). W2 of every marginal of the
 * output samples against the solver's (mean and worst), and the error of
 * the mean. v is the energy plugin itself, created in dimension 1: a batch
 * of one sample with l = 0 has F = v(x) (MATH.md 2, FPE row). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refcommon.h"
#include <wgf/dist.h>


/* One group of coordinates with the same initial marginal. */
typedef struct {
    double mean, var;
    wgf_fv1d *fv;
} fv_group;

typedef struct {
    size_t d, nout;
    double D, fv_dt;
    fv_group *groups;
    size_t ngroups;
    size_t *group_of; /* coordinate -> group */
    double *column;   /* scratch: one coordinate of the samples */
    const wgf_energy_vt *vt1;
    void *state1; /* the energy in dimension 1 */
    wgf_section *sec1;
} fpe1d;

static const char *const fpe_cols[] = {"w2_marg_mean", "w2_marg_max", "mean_err"};

static void fpe1d_destroy(void *state)
{
    fpe1d *r = state;
    for (size_t g = 0; g < r->ngroups; g++)
        wgf_fv1d_free(r->groups[g].fv);
    free(r->groups);
    free(r->group_of);
    wgf_free(r->column);
    if (r->state1)
        r->vt1->destroy(r->state1);
    wgf_section_free(r->sec1);
    free(r);
}

static double potential_1d(double x, void *user)
{
    fpe1d *r = user;
    double l = 0, F = NAN;
    wgf_batch b = {.n = 1, .d = 1, .x = &x, .l = &l, .s = NULL};
    if (r->vt1->eval(r->state1, &b, &F, NULL, NULL, NULL) != WGF_OK)
        return NAN;
    return F;
}

typedef struct {
    double mean, var;
} gauss1;

static double gauss_density(double x, void *user)
{
    const gauss1 *g = user;
    return exp(-0.5 * (x - g->mean) * (x - g->mean) / g->var) / sqrt(2 * M_PI * g->var);
}

static int fpe1d_setup(fpe1d *r, const wgf_section *sec, const wgf_reference_setup *setup,
                       const wgf_section *t, const double *m0, const double *C0, wgf_error *err)
{
    const wgf_problem *p = setup->problem;
    size_t d = r->d;
    int rc = wgf_problem_term_section(p, 0, 1, &r->sec1, err);
    if (rc != WGF_OK)
        return ref_refuse(sec, err, err ? err->msg : "cannot read the energy in dimension 1");
    wgf_problem_info info1 = *wgf_problem_get_info(p);
    info1.dim = 1;
    info1.samples = 1;
    if ((rc = wgf_problem_term(p, 0, NULL, NULL, &r->vt1, NULL)) != WGF_OK)
        return wgf_error_set(err, rc, "fpe1d: no energy term");
    if ((rc = r->vt1->create(r->sec1, &info1, &r->state1, err)) != WGF_OK) {
        r->state1 = NULL;
        return rc;
    }
    r->D = wgf_section_double(t, "diffusion");
    double lo = wgf_section_double(sec, "fv_low"), hi = wgf_section_double(sec, "fv_high");
    size_t cells = (size_t)wgf_section_int(sec, "fv_cells");
    r->fv_dt = wgf_section_double(sec, "fv_dt");
    if (!(hi > lo))
        return wgf_section_error(sec, "fv_high", err, "must exceed fv_low");
    r->groups = calloc(d, sizeof *r->groups);
    r->group_of = calloc(d, sizeof *r->group_of);
    r->column = wgf_alloc_doubles(r->nout ? r->nout : 1);
    if (!r->groups || !r->group_of || !r->column)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    for (size_t i = 0; i < d; i++) {
        double mean = m0[i], var = C0[i * d + i];
        size_t g = 0;
        while (g < r->ngroups && !(r->groups[g].mean == mean && r->groups[g].var == var))
            g++;
        r->group_of[i] = g;
        if (g < r->ngroups)
            continue;
        fv_group *G = &r->groups[r->ngroups++];
        G->mean = mean;
        G->var = var;
        if ((rc = wgf_fv1d_create(&G->fv, lo, hi, cells, r->D, potential_1d, r, err)) != WGF_OK)
            return rc;
        gauss1 g1 = {mean, var};
        if ((rc = wgf_fv1d_set(G->fv, gauss_density, &g1, err)) != WGF_OK)
            return rc;
    }
    return WGF_OK;
}

static int fpe1d_create(const wgf_section *sec, const wgf_reference_setup *setup, void **state,
                        wgf_error *err)
{
    const wgf_problem *p = setup->problem;
    const wgf_section *t;
    const wgf_energy_vt *vt;
    void *es;
    int single = ref_single_term(p, "fpe", &t, &vt, &es);
    const char *pot = single ? wgf_section_string(t, "potential") : "";
    if (!single || !(strcmp(pot, "quartic") == 0 ||
                     (strcmp(pot, "expression") == 0 && wgf_section_has(t, "separable"))))
        return ref_refuse(sec, err, "fpe1d needs a single energy, fpe with a separable potential "
                                    "(quartic, or expression with separable = ...)");
    const double *m0, *C0;
    size_t d = wgf_problem_get_info(p)->dim;
    if (wgf_dist_gaussian(wgf_problem_get_info(p)->initial, &m0, &C0) != WGF_OK)
        return ref_refuse(sec, err, "fpe1d needs initial.type = gaussian with a diagonal covariance");
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            if (i != j && C0[i * d + j] != 0.0)
                return ref_refuse(sec, err, "fpe1d needs a diagonal initial covariance (a product law)");
    fpe1d *r = calloc(1, sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    r->d = d;
    r->nout = setup->nout;
    int rc = fpe1d_setup(r, sec, setup, t, m0, C0, err);
    if (rc != WGF_OK) {
        fpe1d_destroy(r);
        return rc;
    }
    *state = r;
    return WGF_OK;
}

static size_t fpe1d_ncolumns(void *state)
{
    (void)state;
    return 3;
}

static const char *fpe1d_column(void *state, size_t i)
{
    (void)state;
    return fpe_cols[i];
}

static int fpe1d_eval(void *state, const wgf_reference_obs *obs, int full, double *values, wgf_error *err)
{
    (void)full;
    fpe1d *r = state;
    const wgf_batch *b = obs->samples;
    size_t d = r->d;
    if (!b || b->n > r->nout)
        return wgf_error_set(err, WGF_EINVAL, "fpe1d: needs the output samples");
    double sum = 0, worst = 0, merr = 0;
    int rc;
    for (size_t g = 0; g < r->ngroups; g++) {
        fv_group *G = &r->groups[g];
        /* a path scheme's stage times move between outputs, back as well as
         * forward: an earlier time starts again from the initial law */
        if (obs->t < wgf_fv1d_time(G->fv)) {
            gauss1 g1 = {G->mean, G->var};
            if ((rc = wgf_fv1d_set(G->fv, gauss_density, &g1, err)) != WGF_OK)
                return rc;
        }
        if ((rc = wgf_fv1d_advance(G->fv, obs->t, r->fv_dt, err)) != WGF_OK)
            return rc;
    }
    for (size_t i = 0; i < d; i++) {
        double mi = 0;
        for (size_t n = 0; n < b->n; n++) {
            r->column[n] = b->x[n * d + i];
            mi += r->column[n] / (double)b->n;
        }
        const wgf_fv1d *fv = r->groups[r->group_of[i]].fv;
        double w = wgf_fv1d_w2_samples(fv, b->n, r->column);
        sum += w;
        worst = fmax(worst, w);
        double dm = mi - wgf_fv1d_mean(fv);
        merr += dm * dm;
    }
    values[0] = sum / (double)d;
    values[1] = worst;
    values[2] = sqrt(merr);
    return WGF_OK;
}

/* The solver's density of coordinate 1. */
static int fpe1d_curve(void *state, double t, FILE *f, wgf_error *err)
{
    (void)t;
    (void)err;
    fpe1d *r = state;
    const wgf_fv1d *fv = r->groups[r->group_of[0]].fv;
    const double *xc = wgf_fv1d_centres(fv), *rho = wgf_fv1d_density(fv);
    fprintf(f, "# density\n");
    for (size_t k = 0; k < wgf_fv1d_cells(fv); k++)
        fprintf(f, "%.8g,%.8g\n", xc[k], rho[k]);
    return WGF_OK;
}

static const wgf_reference_vt fpe1d_vt = {
    .create = fpe1d_create,
    .destroy = fpe1d_destroy,
    .ncolumns = fpe1d_ncolumns,
    .column = fpe1d_column,
    .needs_samples = ref_samples_x,
    .eval = fpe1d_eval,
    .curve = fpe1d_curve,
};

static const wgf_param fpe1d_params[] = {
    {"fv_low", WGF_PARAM_DOUBLE, "-10", 0, 0, 0, NULL, "left end of the 1-D domain"},
    {"fv_high", WGF_PARAM_DOUBLE, "10", 0, 0, 0, NULL, "right end of the 1-D domain"},
    {"fv_cells", WGF_PARAM_INT, "2000", WGF_P_MIN, 10, 0, NULL, "finite-volume cells"},
    {"fv_dt", WGF_PARAM_DOUBLE, "1e-3", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "largest time step of the 1-D solver"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin fpe1d_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_REFERENCE,
    .name = "fpe1d",
    .summary = "separable Fokker-Planck from a product law: 1-D finite volumes per marginal",
    .params = fpe1d_params,
    .vtable = &fpe1d_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &fpe1d_plugin : NULL; }
