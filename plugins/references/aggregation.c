/* aggregation.c: the ring reference of the aggregation equation with the
 * quartic kernel W = |x|^4/4 - |x|^2/2 (MATH.md 6): the steady state is
 * uniform on a sphere of known radius about the conserved centre of mass,
 * with a known energy. Drift of the centre, radial mean and spread, and
 * the energy gap. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refcommon.h"
#include <wgf/diagnostics.h>
#include <wgf/dist.h>


typedef struct {
    size_t d;
    double *centre, *mean;
} aggregation;

static const char *const agg_cols[] = {"centre_drift", "radius_mean", "radius_sd", "radius_ref",
                                       "energy_ref", "energy_gap"};

static void agg_destroy(void *state)
{
    aggregation *r = state;
    wgf_free(r->centre);
    wgf_free(r->mean);
    free(r);
}

static int agg_create(const wgf_section *sec, const wgf_reference_setup *setup, void **state, wgf_error *err)
{
    const wgf_problem *p = setup->problem;
    const wgf_section *t;
    const wgf_energy_vt *vt;
    void *es;
    if (!ref_single_term(p, "aggregation", &t, &vt, &es))
        return ref_refuse(sec, err, "aggregation needs a single energy, aggregation (weight 1)");
    const char *k = wgf_section_string(t, "kernel");
    int quartic = strcmp(k, "quartic") == 0 ||
                  (strcmp(k, "power") == 0 && wgf_section_double(t, "a") == 4.0 &&
                   wgf_section_double(t, "b") == 2.0);
    if (!quartic)
        return ref_refuse(sec, err, "aggregation needs the quartic kernel W = |x|^4/4 - |x|^2/2");
    aggregation *r = calloc(1, sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    size_t d = r->d = wgf_problem_get_info(p)->dim;
    r->centre = wgf_alloc_doubles(d);
    r->mean = wgf_alloc_doubles(d);
    if (!r->centre || !r->mean) {
        agg_destroy(r);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    const double *m0;
    if (wgf_dist_gaussian(wgf_problem_get_info(p)->initial, &m0, NULL) == WGF_OK)
        memcpy(r->centre, m0, d * sizeof(double));
    else { /* the conserved centre of mass: the initial samples' mean */
        memset(r->centre, 0, d * sizeof(double));
        for (size_t n = 0; n < setup->nout; n++)
            for (size_t i = 0; i < d; i++)
                r->centre[i] += setup->z[n * d + i] / (double)setup->nout;
    }
    *state = r;
    return WGF_OK;
}

static size_t agg_ncolumns(void *state)
{
    (void)state;
    return 6;
}

static const char *agg_column(void *state, size_t i)
{
    (void)state;
    return agg_cols[i];
}

static int agg_eval(void *state, const wgf_reference_obs *obs, int full, double *values, wgf_error *err)
{
    (void)full;
    aggregation *r = state;
    const wgf_batch *b = obs->samples;
    size_t d = r->d;
    if (!b)
        return wgf_error_set(err, WGF_EINVAL, "aggregation: needs the output samples");
    double rm, rs;
    memset(r->mean, 0, d * sizeof(double));
    for (size_t n = 0; n < b->n; n++)
        for (size_t i = 0; i < d; i++)
            r->mean[i] += b->x[n * d + i] / (double)b->n;
    wgf_radial_stats(b->n, d, b->x, r->centre, &rm, &rs);
    values[0] = wgf_dist_l2(d, r->mean, r->centre);
    values[1] = rm;
    values[2] = rs;
    values[3] = wgf_aggregation_ring_radius(d);
    values[4] = wgf_aggregation_ring_energy(d);
    values[5] = obs->energy - wgf_aggregation_ring_energy(d);
    return WGF_OK;
}

/* The ring in (x1, x2); nothing in 1-D. */
static int agg_curve(void *state, double t, FILE *f, wgf_error *err)
{
    (void)t;
    (void)err;
    aggregation *r = state;
    if (r->d == 1)
        return WGF_OK;
    double R = wgf_aggregation_ring_radius(r->d);
    fprintf(f, "# curve\n");
    for (int k = 0; k <= 200; k++)
        fprintf(f, "%.8g,%.8g\n", r->centre[0] + R * cos(2 * M_PI * k / 200.0),
                r->centre[1] + R * sin(2 * M_PI * k / 200.0));
    return WGF_OK;
}

static const wgf_reference_vt agg_vt = {
    .create = agg_create,
    .destroy = agg_destroy,
    .ncolumns = agg_ncolumns,
    .column = agg_column,
    .needs_samples = ref_samples_x,
    .eval = agg_eval,
    .curve = agg_curve,
};

static const wgf_param agg_params[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin agg_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_REFERENCE,
    .name = "aggregation",
    .summary = "quartic aggregation: the ring steady state (radius, energy, centre of mass)",
    .params = agg_params,
    .vtable = &agg_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &agg_plugin : NULL; }
