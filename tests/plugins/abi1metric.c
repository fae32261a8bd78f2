/* abi1metric.c: the Lagrangian metric of plugins/metrics/lagrangian.c, built against the frozen
 * ABI-1 headers (tests/plugins/abi1). */
#include <stdlib.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

typedef struct {
    wgf_eval *ev;
} lag;

static int lag_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec;
    (void)info;
    lag *m = calloc(1, sizeof *m);
    if (!m)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    *state = m;
    return WGF_OK;
}

static void lag_destroy(void *state) { free(state); }

static int lag_prepare(void *state, wgf_eval *ev, wgf_error *err)
{
    (void)err;
    ((lag *)state)->ev = ev;
    return WGF_OK;
}

static int lag_apply(void *state, const double *v, double *out, wgf_error *err)
{
    return wgf_eval_gram(((lag *)state)->ev, v, out, err);
}

static const wgf_metric_vt lag_vt = {
    .create = lag_create, .destroy = lag_destroy, .prepare = lag_prepare, .apply = lag_apply};

static const wgf_param lag_params[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin lag_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_METRIC,
    .name = "abi1metric",
    .summary = "ABI-1 fixture: the Lagrangian metric G-hat",
    .params = lag_params,
    .vtable = &lag_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &lag_plugin : NULL; }
