/* lagrangian.c: the Lagrangian metric G-hat = E[J^T J] (MATH.md 4), the
 * relaxation used by relaxed PWGF. Applied matrix-free on the tapes of the
 * evaluation it was prepared on: one jvp and one vjp per block, no
 * recomputation of the forward pass. The core solves with MINRES (tol,
 * maxiter, tikhonov, preconditioner in [metric]), preconditioned by the
 * diagonal blocks of G-hat the map forms (blocks). */
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

/* The diagonal blocks of G-hat, for the core's MINRES preconditioner: the map's
 * per-layer blocks of E[J^T J] (WGF_EUNSUP from a map without them). */
static int lag_blocks(void *state, size_t *size, double *G, wgf_error *err)
{
    lagrangian *m = state;
    if (!m->ev)
        return wgf_error_set(err, WGF_EINVAL, "lagrangian metric's blocks asked before prepare");
    return wgf_eval_gram_blocks(m->ev, size, G, err);
}

static const wgf_metric_vt lag_vt = {
    .create = lag_create,
    .destroy = lag_destroy,
    .prepare = lag_prepare,
    .apply = lag_apply,
    .solve = NULL,
    .blocks = lag_blocks,
};

static const wgf_param lag_params[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin lag_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_METRIC,
    .name = "lagrangian",
    .summary = "Lagrangian metric G-hat = E[J^T J] (relaxed PWGF), matrix-free, solved by MINRES",
    .params = lag_params,
    .vtable = &lag_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &lag_plugin : NULL; }
