/* barenblatt.c: the Barenblatt reference of the porous medium equation
 * d_t rho = Lap rho^m from a Barenblatt profile at t0 (MATH.md 6): the exact
 * profile at t0 + t. Second moment and support radius against the exact
 * ones, sliced W2 (every observation) and exact-assignment W2 (the output
 * cadence) against exact samples, and the exact energy. Exact samples at
 * t0 come from a stream of their own; at tau they are those scaled by
 * (tau/t0)^beta (self-similarity). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refcommon.h"
#include <wgf/diagnostics.h>
#include <wgf/dist.h>
#include <wgf/rng.h>


typedef struct {
    const wgf_problem *p;
    size_t d, nout, w2_samples;
    unsigned long seed;
    int exact_moments; /* affine map: the model's moments from its Gaussian push-forward */
    wgf_barenblatt bb;
    double t0;
    double *exact, *scaled; /* nout x d */
    double *m0, *C0, *m_model, *C_model;
} barenblatt;

static const char *const bb_cols[] = {"m2", "m2_ref", "radius", "radius_ref", "sw2", "w2", "energy_ref"};

static void bb_destroy(void *state)
{
    barenblatt *r = state;
    wgf_free(r->exact);
    wgf_free(r->scaled);
    wgf_free(r->m0);
    wgf_free(r->C0);
    wgf_free(r->m_model);
    wgf_free(r->C_model);
    free(r);
}

static int bb_create(const wgf_section *sec, const wgf_reference_setup *setup, void **state, wgf_error *err)
{
    const wgf_problem *p = setup->problem;
    const wgf_problem_info *info = wgf_problem_get_info(p);
    const wgf_section *t, *initial = wgf_problem_section(p, "initial");
    const wgf_energy_vt *vt;
    void *es;
    if (!ref_single_term(p, "pme", &t, &vt, &es))
        return ref_refuse(sec, err, "barenblatt needs a single energy, pme (weight 1)");
    if (strcmp(wgf_dist_type(info->initial), "barenblatt") != 0)
        return ref_refuse(sec, err, "barenblatt needs initial.type = barenblatt");
    double m = wgf_section_double(t, "m");
    if (m != wgf_section_double(initial, "m"))
        return ref_refuse(sec, err, "barenblatt needs the same m in [energy] and [initial]");
    barenblatt *r = calloc(1, sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    size_t d = r->d = info->dim, n = r->nout = setup->nout;
    r->p = p;
    r->seed = info->seed;
    r->t0 = wgf_section_double(initial, "t0");
    int rc = wgf_barenblatt_init(&r->bb, d, m, err);
    if (rc != WGF_OK) {
        bb_destroy(r);
        return rc;
    }
    r->w2_samples = (size_t)wgf_section_int(sec, "w2_samples");
    r->exact = wgf_alloc_doubles(n * d);
    r->scaled = wgf_alloc_doubles(n * d);
    r->m0 = wgf_alloc_doubles(d);
    r->C0 = wgf_alloc_doubles(d * d);
    r->m_model = wgf_alloc_doubles(d);
    r->C_model = wgf_alloc_doubles(d * d);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r->exact || !r->scaled || !r->m0 || !r->C0 || !r->m_model || !r->C_model || !g) {
        if (g)
            gsl_rng_free(g);
        bb_destroy(r);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    wgf_rng_set(g, info->seed, WGF_STREAM_OUTPUT, 1, 0);
    wgf_barenblatt_sample(&r->bb, r->t0, g, n, r->exact);
    gsl_rng_free(g);
    /* the law at t0 as a Gaussian input of the same moments: mean 0,
     * covariance E|x|^2/d I (only its first two moments are pushed) */
    memset(r->m0, 0, d * sizeof(double));
    memset(r->C0, 0, d * d * sizeof(double));
    double v = wgf_barenblatt_second_moment(&r->bb, r->t0) / (double)d;
    for (size_t i = 0; i < d; i++)
        r->C0[i * d + i] = v;
    r->exact_moments = wgf_problem_has_gaussian_push(p);
    *state = r;
    return WGF_OK;
}

static size_t bb_ncolumns(void *state)
{
    (void)state;
    return 7;
}

static const char *bb_column(void *state, size_t i)
{
    (void)state;
    return bb_cols[i];
}

static int bb_eval(void *state, const wgf_reference_obs *obs, int full, double *values, wgf_error *err)
{
    barenblatt *r = state;
    const wgf_batch *b = obs->samples;
    size_t d = r->d;
    if (!b || b->n != r->nout)
        return wgf_error_set(err, WGF_EINVAL, "barenblatt: needs the %zu output samples", r->nout);
    double tau = r->t0 + obs->t, m2 = 0, rad = 0;
    int exact = r->exact_moments && obs->theta;
    if (exact) {
        int rc = wgf_problem_gaussian_push(r->p, obs->theta, r->m0, r->C0, r->m_model, r->C_model, err);
        if (rc != WGF_OK)
            return rc;
        for (size_t i = 0; i < d; i++)
            m2 += r->m_model[i] * r->m_model[i] + r->C_model[i * d + i];
    }
    for (size_t n = 0; n < b->n; n++) {
        double q = 0;
        for (size_t i = 0; i < d; i++)
            q += b->x[n * d + i] * b->x[n * d + i];
        if (!exact)
            m2 += q / (double)b->n;
        rad = fmax(rad, sqrt(q));
    }
    double scale = pow(tau / r->t0, r->bb.beta);
    for (size_t k = 0; k < b->n * d; k++)
        r->scaled[k] = scale * r->exact[k];
    values[0] = m2;
    values[1] = wgf_barenblatt_second_moment(&r->bb, tau);
    values[2] = rad;
    values[3] = wgf_barenblatt_radius(&r->bb, tau);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!g)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    /* the same directions every time: a smooth curve in t */
    wgf_rng_set(g, r->seed, WGF_STREAM_OUTPUT, 2, 0);
    int rc = wgf_w2_sliced(b->n, d, b->x, r->scaled, 64, g, &values[4], err);
    gsl_rng_free(g);
    if (rc != WGF_OK)
        return rc;
    if (full) {
        size_t nw = b->n < r->w2_samples ? b->n : r->w2_samples;
        if ((rc = wgf_w2_assignment(nw, d, b->x, r->scaled, &values[5], err)) != WGF_OK)
            return rc;
    }
    values[6] = wgf_barenblatt_energy(&r->bb, tau);
    return WGF_OK;
}

/* 1-D: the exact profile; otherwise the circle of the support in (x1, x2). */
static int bb_curve(void *state, double t, FILE *f, wgf_error *err)
{
    (void)err;
    barenblatt *r = state;
    double tau = r->t0 + t, R = wgf_barenblatt_radius(&r->bb, tau);
    if (r->d == 1) {
        fprintf(f, "# density\n");
        for (int k = 0; k <= 400; k++) {
            double x = -1.1 * R + 2.2 * R * k / 400.0;
            fprintf(f, "%.8g,%.8g\n", x, wgf_barenblatt_density(&r->bb, tau, &x));
        }
        return WGF_OK;
    }
    fprintf(f, "# curve\n");
    for (int k = 0; k <= 200; k++)
        fprintf(f, "%.8g,%.8g\n", R * cos(2 * M_PI * k / 200.0), R * sin(2 * M_PI * k / 200.0));
    return WGF_OK;
}

static int bb_summary_extra(void *state, FILE *f, wgf_error *err)
{
    (void)err;
    fprintf(f, "moments = %s\n", ((barenblatt *)state)->exact_moments ? "exact (affine map)" : "samples");
    return WGF_OK;
}

static const wgf_reference_vt bb_vt = {
    .create = bb_create,
    .destroy = bb_destroy,
    .ncolumns = bb_ncolumns,
    .column = bb_column,
    .needs_samples = ref_samples_x,
    .eval = bb_eval,
    .curve = bb_curve,
    .summary_extra = bb_summary_extra,
};

static const wgf_param bb_params[] = {
    {"w2_samples", WGF_PARAM_INT, "1000", WGF_P_MIN, 2, 0, NULL,
     "samples in the exact-assignment W2 (at the output cadence)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin bb_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_REFERENCE,
    .name = "barenblatt",
    .summary = "porous medium from a Barenblatt profile: the exact self-similar solution",
    .params = bb_params,
    .vtable = &bb_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &bb_plugin : NULL; }
