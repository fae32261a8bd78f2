/* euler.c: explicit natural-gradient steps (PWGF / relaxed PWGF, MATH.md 5):
 *     M(theta_k) zeta_k = grad F(theta_k),   theta_{k+1} = theta_k - h zeta_k.
 * Fresh training samples every step (default) or one fixed batch. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/dist.h>
#include <wgf/plugin.h>
#include <wgf/problem.h>

typedef struct {
    double h, t_end;
    int fixed;
    int misfit; /* 0 off, 1 on, -1 auto */
    unsigned long steps;
} euler;

static int euler_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    euler *e = calloc(1, sizeof *e);
    if (!e)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    e->h = wgf_section_double(sec, "step");
    e->t_end = wgf_section_double(sec, "t_end");
    e->fixed = strcmp(wgf_section_string(sec, "samples"), "fixed") == 0;
    const char *m = wgf_section_string(sec, "misfit");
    e->misfit = strcmp(m, "on") == 0 ? 1 : strcmp(m, "off") == 0 ? 0 : -1;
    double k = e->t_end / e->h;
    e->steps = (unsigned long)llround(k);
    if (e->steps == 0 || fabs(k - (double)e->steps) > 1e-9 * fmax(1.0, k)) {
        free(e);
        return wgf_section_error(sec, "t_end", err,
                                 "t_end / step = %g is not a positive whole number of steps", k);
    }
    *state = e;
    return WGF_OK;
}

static void euler_destroy(void *state) { free(state); }

static int euler_run(void *state, wgf_problem *p, wgf_error *err)
{
    euler *e = state;
    size_t P = wgf_problem_nparams(p), N = wgf_problem_get_info(p)->samples;
    size_t d = wgf_problem_get_info(p)->dim;
    double *theta = wgf_problem_theta(p);
    const char *why = NULL;
    int misfit = e->misfit != 0 && wgf_problem_misfit_possible(p, &why);
    if (e->misfit == 1 && !misfit)
        return wgf_section_error(wgf_problem_section(p, "scheme"), "misfit", err,
                                 "on, but %s (auto or off)", why);
    unsigned flags = misfit && (wgf_problem_energy_needs(p) & WGF_WGRAD_NEEDS_S) ? WGF_EVAL_SCORE : 0;
    double *grad = calloc(2 * P, sizeof(double));
    double *g = misfit && N <= SIZE_MAX / (2 * d) ? calloc(2 * N * d, sizeof(double)) : NULL;
    wgf_eval *ev = wgf_eval_create(p, N, flags, err);
    if (!grad || !ev || (misfit && !g)) {
        free(grad);
        free(g);
        wgf_eval_free(ev);
        return err && err->code ? err->code : wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    double *zeta = grad + P;
    /* A resumed run starts at k0 > 0 with theta_k0 as the run before left
     * it, constrained already; the fixed batch is always step 0's. */
    unsigned long k0 = wgf_problem_start_step(p);
    int rc = k0 > 0 ? WGF_OK : wgf_problem_constrain(p, theta, err);
    if (rc == WGF_OK)
        rc = wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, err);
    unsigned long k = k0;
    for (; rc == WGF_OK; k++) {
        double t = (double)k * e->h, F;
        if (k > 0 && !e->fixed && (rc = wgf_eval_draw(ev, WGF_STREAM_TRAIN, k, err)) != WGF_OK)
            break;
        if ((rc = wgf_eval_forward(ev, theta, err)) != WGF_OK)
            break;
        wgf_step_info info = {.step = k, .t = t, .dissipation = NAN, .step_norm = NAN};
        if (k == e->steps) {
            if ((rc = wgf_problem_energy(p, ev, &F, NULL, err)) != WGF_OK)
                break;
            info.energy = F;
            rc = wgf_problem_observe(p, &info, err);
            break;
        }
        if ((rc = wgf_problem_energy(p, ev, &F, grad, err)) != WGF_OK)
            break;
        rc = wgf_problem_natgrad(p, ev, grad, zeta, &info.solve, err);
        if (rc != WGF_OK)
            break;
        double dis = 0, nz = 0;
        for (size_t j = 0; j < P; j++) {
            dis += grad[j] * zeta[j];
            nz += zeta[j] * zeta[j];
        }
        info.energy = F;
        info.dissipation = dis;
        info.step_norm = e->h * sqrt(nz);
        if (misfit && (rc = wgf_problem_misfit(p, ev, zeta, g, g + N * d, &info, err)) != WGF_OK)
            break;
        /* Report the state at t_k with the solve that leaves it. */
        if ((rc = wgf_problem_observe(p, &info, err)) != WGF_OK)
            break;
        for (size_t j = 0; j < P; j++)
            theta[j] -= e->h * zeta[j];
        if ((rc = wgf_problem_constrain(p, theta, err)) != WGF_OK) {
            wgf_error_prefix(err, "step %lu (t = %g)", k + 1, t + e->h);
            break;
        }
    }
    /* A numerical failure names the step it stopped (the constraint names the next one). */
    if (rc == WGF_ENUMERIC && err && !strstr(err->msg, "step "))
        wgf_error_prefix(err, "euler, step %lu (t = %g)", k, (double)k * e->h);
    wgf_eval_free(ev);
    free(grad);
    free(g);
    return rc;
}

/* Explicit steps: the core checks [scheme] step against the energy's stiffness.
 * Resumable: between steps its state is theta and k. */
static unsigned euler_needs(void *state)
{
    (void)state;
    return WGF_SCHEME_EXPLICIT | WGF_SCHEME_RESUMABLE;
}

static const wgf_scheme_vt euler_vt = {
    .create = euler_create,
    .destroy = euler_destroy,
    .run = euler_run,
    .needs = euler_needs,
};

static const wgf_param euler_params[] = {
    {"step", WGF_PARAM_DOUBLE, "0.005", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "time step h"},
    {"t_end", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "final time (a whole number of steps)"},
    {"samples", WGF_PARAM_CHOICE, "fresh", 0, 0, 0, "fresh|fixed",
     "fresh training samples every step, or one fixed batch"},
    {"misfit", WGF_PARAM_CHOICE, "auto", 0, 0, 0, "auto|on|off",
     "the velocity misfit r / sqrt(E|g|^2) per step in history.csv (one jvp and one Wasserstein "
     "gradient a step); auto: on when the energy has a Wasserstein gradient"},
    {"lambda", WGF_PARAM_DOUBLE, NULL, 0, 0, 0, NULL,
     "convexity modulus of the energy, when known: history.csv's bound column B(t) on W2"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin euler_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "euler",
    .summary = "explicit natural-gradient steps theta -= h M^-1 grad F (PWGF, relaxed PWGF)",
    .params = euler_params,
    .vtable = &euler_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &euler_plugin : NULL; }
