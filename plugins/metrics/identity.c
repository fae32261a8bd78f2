/* identity.c: no metric at all, M = I: the scheme's step is plain gradient
 * descent on the parameters, zeta = grad_theta F. The baseline that shows what
 * a Wasserstein metric (G, or G-hat) adds: the same energy, map and scheme with
 * the geometry of parameter space instead of the geometry of the law
 * (doc/math.md section 4). It solves itself, so the core's MINRES keys of
 * [metric] (tol, maxiter, tikhonov) are not used. */
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

typedef struct {
    size_t P;
} identity;

static int id_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec;
    (void)info;
    identity *m = calloc(1, sizeof *m);
    if (!m)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    *state = m;
    return WGF_OK;
}

static void id_destroy(void *state) { free(state); }

/* The parameter count comes from the evaluation: the map is created after the metric's section
 * is read, and P is all the identity needs to know. */
static int id_prepare(void *state, wgf_eval *ev, wgf_error *err)
{
    (void)err;
    ((identity *)state)->P = wgf_eval_nparams(ev);
    return WGF_OK;
}

static int id_apply(void *state, const double *v, double *out, wgf_error *err)
{
    const identity *m = state;
    if (m->P == 0)
        return wgf_error_set(err, WGF_EINVAL, "identity metric applied before prepare");
    memmove(out, v, m->P * sizeof *out);
    return WGF_OK;
}

static int id_solve(void *state, const double *rhs, double *zeta, wgf_solve_stats *stats, wgf_error *err)
{
    const identity *m = state;
    if (m->P == 0)
        return wgf_error_set(err, WGF_EINVAL, "identity metric solved before prepare");
    memmove(zeta, rhs, m->P * sizeof *zeta);
    if (stats) {
        stats->iterations = 0;
        stats->residual = 0;
        stats->products = 0;
        stats->converged = 1;
    }
    return WGF_OK;
}

static const wgf_metric_vt id_vt = {
    .create = id_create,
    .destroy = id_destroy,
    .prepare = id_prepare,
    .apply = id_apply,
    .solve = id_solve,
};

static const wgf_param id_params[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin id_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_METRIC,
    .name = "identity",
    .summary = "no metric (M = I): plain gradient descent on the parameters, the baseline for G and G-hat",
    .params = id_params,
    .vtable = &id_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &id_plugin : NULL; }
