/* abi2lagrangian.c: plugins/metrics/lagrangian.c as it was at plugin ABI 2 (commit 829e3a6),
 * renamed abi2lagrangian (name and summary), built against the frozen ABI-2 headers
 * (tests/plugins/abi2): a metric binary without the members ABI 3 appended (velocity, blocks).
 *
 * The Lagrangian metric G-hat = E[J^T J] (MATH.md 4), the relaxation used by relaxed PWGF. Applied
 * matrix-free on the tapes of the evaluation it was prepared on: one jvp and one vjp per block, no
 * recomputation of the forward pass. The core solves with MINRES (tol, maxiter, tikhonov in
 * [metric]). */
#include <stdlib.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

typedef struct {
    wgf_eval *ev;
} lagrangian;

static int lag_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec;
    (void)info;
    lagrangian *m = calloc(1, sizeof *m);
    if (!m)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    *state = m;
    return WGF_OK;
}

static void lag_destroy(void *state) { free(state); }

static int lag_prepare(void *state, wgf_eval *ev, wgf_error *err)
{
    (void)err;
    ((lagrangian *)state)->ev = ev;
    return WGF_OK;
}

static int lag_apply(void *state, const double *v, double *out, wgf_error *err)
{
    lagrangian *m = state;
    if (!m->ev)
        return wgf_error_set(err, WGF_EINVAL, "lagrangian metric applied before prepare");
    return wgf_eval_gram(m->ev, v, out, err);
}

static const wgf_metric_vt lag_vt = {
    .create = lag_create,
    .destroy = lag_destroy,
    .prepare = lag_prepare,
    .apply = lag_apply,
    .solve = NULL,
};

static const wgf_param lag_params[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin lag_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_METRIC,
    .name = "abi2lagrangian",
    .summary = "ABI-2 fixture: the Lagrangian metric G-hat as it was at ABI 2",
    .params = lag_params,
    .vtable = &lag_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &lag_plugin : NULL; }
