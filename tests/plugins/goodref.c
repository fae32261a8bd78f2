/* goodref.c: a reference written outside wgf, as one .so, for the test
 * energy goodenergy (F = scale E|x|^2/2, whose flow is dx/dt = -scale x):
 * the law at t is that of e^{-scale t} X_0, so E|x|^2 = e^{-2 scale t}
 * E|X_0|^2. It reads the energy's plugin name and typed section through
 * the problem's public accessors, and E|X_0|^2 from the output samples'
 * draws. Columns m2 (the model's) and m2_ref, and m2_gap (their relative
 * difference, a key of its own in summary.ini: gap). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>
#include <wgf/reference.h>

typedef struct {
    double scale, m2_0;
} goodref;

static const char *const cols[] = {"m2", "m2_ref", "m2_gap"};

static int gr_create(const wgf_section *sec, const wgf_reference_setup *setup, void **state, wgf_error *err)
{
    const char *name;
    const wgf_section *esec;
    if (wgf_problem_nterms(setup->problem) != 1 ||
        wgf_problem_term(setup->problem, 0, &name, &esec, NULL, NULL) != WGF_OK ||
        strcmp(name, "goodenergy") != 0)
        return wgf_section_error(sec, "plugin", err, "goodref needs a single energy, goodenergy");
    goodref *g = calloc(1, sizeof *g);
    if (!g)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    g->scale = wgf_section_double(esec, "scale");
    size_t d = wgf_problem_get_info(setup->problem)->dim;
    for (size_t k = 0; k < setup->nout * d; k++)
        g->m2_0 += setup->z[k] * setup->z[k] / (double)setup->nout;
    *state = g;
    return WGF_OK;
}

static void gr_destroy(void *state) { free(state); }

static size_t gr_ncolumns(void *state)
{
    (void)state;
    return 3;
}

static const char *gr_column(void *state, size_t i)
{
    (void)state;
    return cols[i];
}

static const char *gr_summary_key(void *state, size_t i)
{
    (void)state;
    return i == 2 ? "gap" : NULL;
}

static int gr_eval(void *state, const wgf_reference_obs *obs, int full, double *values, wgf_error *err)
{
    (void)full;
    goodref *g = state;
    const wgf_batch *b = obs->samples;
    if (!b)
        return wgf_error_set(err, WGF_EINVAL, "goodref: no samples");
    double m2 = 0;
    for (size_t k = 0; k < b->n * b->d; k++)
        m2 += b->x[k] * b->x[k] / (double)b->n;
    values[0] = m2;
    values[1] = exp(-2 * g->scale * obs->t) * g->m2_0;
    values[2] = fabs(values[0] / values[1] - 1);
    return WGF_OK;
}

static const wgf_reference_vt gr_vt = {
    .create = gr_create,
    .destroy = gr_destroy,
    .ncolumns = gr_ncolumns,
    .column = gr_column,
    .eval = gr_eval,
    .summary_key = gr_summary_key,
};

static const wgf_param gr_params[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin gr_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_REFERENCE,
    .name = "goodref",
    .summary = "test reference of goodenergy: E|x|^2 = exp(-2 scale t) E|X_0|^2",
    .params = gr_params,
    .vtable = &gr_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &gr_plugin : NULL; }
