/* abi1scheme.c: the explicit natural-gradient Euler steps of plugins/schemes/euler.c (fresh
 * samples every step), built against the frozen ABI-1 headers (tests/plugins/abi1). */
#include <math.h>
#include <stdlib.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

typedef struct {
    double h;
    unsigned long steps;
} eul;

static int eul_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    eul *e = malloc(sizeof *e);
    if (!e)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    e->h = wgf_section_double(sec, "step");
    e->steps = (unsigned long)llround(wgf_section_double(sec, "t_end") / e->h);
    *state = e;
    return WGF_OK;
}

static void eul_destroy(void *state) { free(state); }

static int eul_run(void *state, wgf_problem *p, wgf_error *err)
{
    eul *e = state;
    size_t P = wgf_problem_nparams(p), N = wgf_problem_get_info(p)->samples;
    double *theta = wgf_problem_theta(p);
    double *grad = calloc(2 * P, sizeof(double)), *zeta = grad ? grad + P : NULL;
    wgf_eval *ev = wgf_eval_create(p, N, 0, err);
    int rc = grad && ev ? wgf_problem_constrain(p, theta, err)
                        : (ev ? wgf_error_set(err, WGF_ENOMEM, "out of memory") : err->code);
    for (unsigned long k = 0; rc == WGF_OK; k++) {
        wgf_step_info info = {.step = k, .t = (double)k * e->h, .dissipation = NAN, .step_norm = NAN};
        if ((rc = wgf_eval_draw(ev, WGF_STREAM_TRAIN, k, err)) != WGF_OK ||
            (rc = wgf_eval_forward(ev, theta, err)) != WGF_OK)
            break;
        if (k == e->steps) {
            if ((rc = wgf_problem_energy(p, ev, &info.energy, NULL, err)) == WGF_OK)
                rc = wgf_problem_observe(p, &info, err);
            break;
        }
        if ((rc = wgf_problem_energy(p, ev, &info.energy, grad, err)) != WGF_OK ||
            (rc = wgf_problem_natgrad(p, ev, grad, zeta, &info.solve, err)) != WGF_OK ||
            (rc = wgf_problem_observe(p, &info, err)) != WGF_OK)
            break;
        for (size_t j = 0; j < P; j++)
            theta[j] -= e->h * zeta[j];
        rc = wgf_problem_constrain(p, theta, err);
    }
    wgf_eval_free(ev);
    free(grad);
    return rc;
}

static const wgf_scheme_vt eul_vt = {.create = eul_create, .destroy = eul_destroy, .run = eul_run};

static const wgf_param eul_params[] = {
    {"step", WGF_PARAM_DOUBLE, "0.005", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "time step h"},
    {"t_end", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "final time"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin eul_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "abi1scheme",
    .summary = "ABI-1 fixture: explicit natural-gradient Euler steps",
    .params = eul_params,
    .vtable = &eul_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &eul_plugin : NULL; }
