/* ownscheme.c: a test scheme that keeps its iterate in a vector of its own.
 *
 * The same explicit natural-gradient steps as euler with a fixed batch
 * (theta_{k+1} = theta_k - h M^-1 grad F), on the same random streams, but
 * the problem's theta is never written: it stays at the map's initial
 * parameters, and every step reports its own vector in wgf_step_info.theta.
 * A run with it must write the same files and diagnostics as euler's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

typedef struct {
    double h;
    unsigned long steps;
} own;

static int own_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    own *o = calloc(1, sizeof *o);
    if (!o)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    o->h = wgf_section_double(sec, "step");
    o->steps = (unsigned long)llround(wgf_section_double(sec, "t_end") / o->h);
    *state = o;
    return WGF_OK;
}

static void own_destroy(void *state) { free(state); }

static int own_run(void *state, wgf_problem *p, wgf_error *err)
{
    own *o = state;
    size_t P = wgf_problem_nparams(p), N = wgf_problem_get_info(p)->samples;
    double *mine = calloc(3 * P, sizeof(double));
    wgf_eval *ev = wgf_eval_create(p, N, 0, err);
    if (!mine || !ev) {
        free(mine);
        wgf_eval_free(ev);
        return err && err->code ? err->code : wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    double *grad = mine + P, *zeta = mine + 2 * P;
    memcpy(mine, wgf_problem_theta(p), P * sizeof(double));
    int rc = wgf_problem_constrain(p, mine, err);
    if (rc == WGF_OK)
        rc = wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, err);
    for (unsigned long k = 0; rc == WGF_OK; k++) {
        double F;
        if ((rc = wgf_eval_forward(ev, mine, err)) != WGF_OK)
            break;
        wgf_step_info info = {.step = k, .t = (double)k * o->h, .dissipation = NAN, .step_norm = NAN,
                              .theta = mine};
        if (k == o->steps) {
            if ((rc = wgf_problem_energy(p, ev, &F, NULL, err)) == WGF_OK) {
                info.energy = F;
                rc = wgf_problem_observe(p, &info, err);
            }
            break;
        }
        if ((rc = wgf_problem_energy(p, ev, &F, grad, err)) != WGF_OK ||
            (rc = wgf_problem_natgrad(p, ev, grad, zeta, &info.solve, err)) != WGF_OK)
            break;
        double dis = 0, nz = 0;
        for (size_t j = 0; j < P; j++) {
            dis += grad[j] * zeta[j];
            nz += zeta[j] * zeta[j];
        }
        info.energy = F;
        info.dissipation = dis;
        info.step_norm = o->h * sqrt(nz);
        if ((rc = wgf_problem_observe(p, &info, err)) != WGF_OK)
            break;
        for (size_t j = 0; j < P; j++)
            mine[j] -= o->h * zeta[j];
        rc = wgf_problem_constrain(p, mine, err);
    }
    wgf_eval_free(ev);
    free(mine);
    return rc;
}

static const wgf_scheme_vt own_vt = {.create = own_create, .destroy = own_destroy, .run = own_run};

static const wgf_param own_params[] = {
    {"step", WGF_PARAM_DOUBLE, "0.005", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "time step h"},
    {"t_end", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "final time"},
    {"samples", WGF_PARAM_CHOICE, "fixed", 0, 0, 0, "fixed", "one fixed batch (as euler's fixed)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin own_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "ownscheme",
    .summary = "test: euler's steps on an iterate of its own (the problem's theta stays stale)",
    .params = own_params,
    .vtable = &own_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &own_plugin : NULL; }
