/* pathscheme.c: a test scheme that reports one whole path of a planar flow.
 *
 * It sets every layer j of the planar map (theta per layer [u (d), w (d),
 * b]) to w = 0, u_i = 0.1 (j + 1), b = 0.5: layer j is the shift
 * x + u_j tanh(0.5), so stage k of the flow is the input shifted by a known
 * vector. It reports the path with t[k] = 0.25 k and energy[k] = 1.5 + k,
 * then one step (step 0 at t = 0) with its energy. The tests check what the
 * run writes against these numbers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

static int path_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec;
    (void)info;
    (void)err;
    *state = NULL;
    return WGF_OK;
}

static void path_destroy(void *state) { (void)state; }

static int path_run(void *state, wgf_problem *p, wgf_error *err)
{
    (void)state;
    size_t P = wgf_problem_nparams(p), d = wgf_problem_get_info(p)->dim, S = wgf_problem_nstages(p);
    size_t L = P / (2 * d + 1);
    double *theta = calloc(P + 2 * (S + 1), sizeof(double));
    wgf_eval *ev = wgf_eval_create(p, wgf_problem_get_info(p)->samples, 0, err);
    if (!theta || !ev) {
        free(theta);
        wgf_eval_free(ev);
        return err && err->code ? err->code : wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    double *t = theta + P, *energy = t + S + 1;
    for (size_t j = 0; j < L; j++) {
        double *layer = theta + j * (2 * d + 1);
        for (size_t i = 0; i < d; i++)
            layer[i] = 0.1 * (double)(j + 1);
        layer[2 * d] = 0.5;
    }
    for (size_t k = 0; k <= S; k++) {
        t[k] = 0.25 * (double)k;
        energy[k] = 1.5 + (double)k;
    }
    wgf_path_info path = {.step = 0, .nstages = S + 1, .t = t, .energy = energy, .theta = theta};
    int rc = wgf_problem_observe_path(p, &path, err);
    double F;
    if (rc == WGF_OK && (rc = wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, err)) == WGF_OK &&
        (rc = wgf_eval_forward(ev, theta, err)) == WGF_OK &&
        (rc = wgf_problem_energy(p, ev, &F, NULL, err)) == WGF_OK) {
        wgf_step_info info = {.step = 0, .t = 0, .energy = F, .dissipation = NAN, .step_norm = NAN,
                              .theta = theta};
        rc = wgf_problem_observe(p, &info, err);
    }
    wgf_eval_free(ev);
    free(theta);
    return rc;
}

static const wgf_scheme_vt path_vt = {.create = path_create, .destroy = path_destroy, .run = path_run};

static const wgf_param path_params[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin path_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "pathscheme",
    .summary = "test: reports one path of a planar flow whose layers are known shifts",
    .params = path_params,
    .vtable = &path_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &path_plugin : NULL; }
