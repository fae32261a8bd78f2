/* gslfail.c: an energy whose create (at = create) or eval (at = eval) runs a GSL Cholesky
 * factorisation of a matrix that is not positive definite. With GSL's default handler that
 * aborts the process; the library turns the handler off, so the plugin gets the status and
 * returns an error: exit 2 from create, 3 from eval. Otherwise F = E|x|^2 / 2. */
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>

#include <wgf/plugin.h>

static int not_spd(void)
{
    double m[4] = {1, 2, 2, 1};
    gsl_matrix_view v = gsl_matrix_view_array(m, 2, 2);
    return gsl_linalg_cholesky_decomp1(&v.matrix);
}

static int gf_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    int *at_eval = malloc(sizeof *at_eval);
    if (!at_eval)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    *at_eval = strcmp(wgf_section_string(sec, "at"), "eval") == 0;
    if (!*at_eval) {
        free(at_eval);
        int status = not_spd();
        return wgf_section_error(sec, "at", err, "Cholesky of the test matrix: %s",
                                 status ? gsl_strerror(status) : "succeeded, unexpectedly");
    }
    *state = at_eval;
    return WGF_OK;
}

static void gf_destroy(void *state) { free(state); }

static int gf_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    (void)state;
    int status = not_spd();
    if (status)
        return wgf_error_gsl(err, status, "gslfail: Cholesky of the test matrix");
    double s = 0;
    for (size_t k = 0; k < b->n * b->d; k++) {
        s += 0.5 * b->x[k] * b->x[k];
        if (a)
            a[k] = b->x[k] / (double)b->n;
    }
    if (c)
        memset(c, 0, b->n * sizeof *c);
    *F = s / (double)b->n;
    return WGF_OK;
}

static const wgf_energy_vt gf_vt = {.create = gf_create, .destroy = gf_destroy, .eval = gf_eval};

static const wgf_param gf_params[] = {
    {"at", WGF_PARAM_CHOICE, "eval", 0, 0, 0, "create|eval", "where the GSL error happens"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin gf_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = "gslfail",
    .summary = "test energy provoking a GSL error in create or eval",
    .params = gf_params,
    .vtable = &gf_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &gf_plugin : NULL; }
