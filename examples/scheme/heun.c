/* heun.c: a scheme plugin built outside the wgf tree.
 *
 * Heun's method (the explicit trapezoid rule, a second-order Runge-Kutta
 * method) on the natural-gradient flow theta' = -M(theta)^{-1} grad F(theta)
 * (MATH.md 5): with zeta(theta) the solution of M(theta) zeta = grad F(theta),
 *
 *     k1 = zeta(theta_k),   k2 = zeta(theta_k - h k1),
 *     theta_{k+1} = theta_k - h/2 (k1 + k2).
 *
 * Both stages of a step use the same training batch (fresh: drawn for step k;
 * fixed: one batch for the whole run), so each step is Heun's method on one
 * smooth vector field, and with a fixed batch the whole run is: its error
 * against a much smaller step falls as h^2, where explicit Euler's falls as h.
 * A step costs two metric solves, twice Euler's.
 *
 * It is written against <wgf/problem.h> only, never against a particular
 * energy, map or metric.
 *
 * Build:  make            (pkg-config finds the installed wgf)
 * Use:    wgf run ou_heun.ini
 * Check:  make check      (the order of convergence, with the installed wgf) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

static const wgf_param heun_params[] = {
    {"step", WGF_PARAM_DOUBLE, "0.01", WGF_P_MIN | WGF_P_MIN_OPEN, 0.0, 0.0, NULL, "time step h"},
    {"t_end", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0.0, 0.0, NULL,
     "final time (a whole number of steps)"},
    {"samples", WGF_PARAM_CHOICE, "fresh", 0, 0.0, 0.0, "fresh|fixed",
     "fresh training samples every step (both stages share them), or one fixed batch"},
    {NULL, 0, NULL, 0, 0.0, 0.0, NULL, NULL}};

typedef struct heun {
    double h;
    unsigned long steps; /* t_end / h */
    int fixed;           /* samples = fixed */
} heun;

static int heun_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    double h = wgf_section_double(sec, "step"), t_end = wgf_section_double(sec, "t_end");
    double k = t_end / h;
    (void)info;
    /* The scheme owns time: the core knows only the t it is told in each
     * wgf_step_info. A final time between two steps is refused here, against
     * the key, rather than silently moved. */
    if (!(k >= 0.5 && k < 1e15) || fabs(k - (double)llround(k)) > 1e-9 * fmax(1.0, k))
        return wgf_section_error(sec, "t_end", err, "t_end / step = %g is not a positive whole number of steps",
                                 k);
    heun *s = malloc(sizeof *s);
    if (s == NULL)
        return wgf_error_set(err, WGF_ENOMEM, "heun: out of memory");
    s->h = h;
    s->steps = (unsigned long)llround(k);
    s->fixed = strcmp(wgf_section_string(sec, "samples"), "fixed") == 0;
    *state = s;
    return WGF_OK;
}

static void heun_destroy(void *state)
{
    free(state);
}

/* zeta = M(theta)^{-1} grad F(theta) on ev's batch, with F and grad F (P). */
static int heun_slope(wgf_problem *p, wgf_eval *ev, const double *theta, double *F, double *grad,
                      double *zeta, wgf_solve_stats *stats, wgf_error *err)
{
    int rc = wgf_eval_forward(ev, theta, err);
    if (rc == WGF_OK)
        rc = wgf_problem_energy(p, ev, F, grad, err);
    if (rc == WGF_OK)
        rc = wgf_problem_natgrad(p, ev, grad, zeta, stats, err);
    return rc;
}

/* Solver statistics of the two solves of a step, as one history row. */
static wgf_solve_stats heun_stats(const wgf_solve_stats *a, const wgf_solve_stats *b)
{
    wgf_solve_stats s;
    s.iterations = a->iterations + b->iterations;
    s.residual = fmax(a->residual, b->residual);
    s.products = a->products + b->products;
    s.converged = a->converged && b->converged;
    return s;
}

static int heun_run(void *state, wgf_problem *p, wgf_error *err)
{
    const heun *s = state;
    size_t P = wgf_problem_nparams(p), N = wgf_problem_get_info(p)->samples;
    double *theta = wgf_problem_theta(p); /* theta_k, updated in place */
    /* grad F(theta_k), k1, k2 and the predictor theta_k - h k1 */
    double *grad = calloc(4 * P, sizeof *grad);
    /* flags 0: the energy's needs (scores, ...) are the core's business;
     * WGF_EVAL_STAGES only for a scheme that reads every stage */
    wgf_eval *ev = wgf_eval_create(p, N, 0, err);
    if (grad == NULL || ev == NULL) {
        free(grad);
        wgf_eval_free(ev);
        return err && err->code ? err->code : wgf_error_set(err, WGF_ENOMEM, "heun: out of memory");
    }
    double *k1 = grad + P, *k2 = k1 + P, *pred = k2 + P;

    int rc = wgf_problem_constrain(p, theta, err);
    if (rc == WGF_OK)
        rc = wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, err);
    for (unsigned long k = 0; rc == WGF_OK; k++) {
        double t = (double)k * s->h, F, F2; /* F2: at the predictor, not reported */
        wgf_step_info info = {.step = k, .t = t, .dissipation = NAN, .step_norm = NAN};
        wgf_solve_stats st1 = {0}, st2 = {0};

        if (k > 0 && !s->fixed && (rc = wgf_eval_draw(ev, WGF_STREAM_TRAIN, k, err)) != WGF_OK)
            break;
        if (k == s->steps) { /* the final state: observed, not stepped from */
            if ((rc = wgf_eval_forward(ev, theta, err)) == WGF_OK &&
                (rc = wgf_problem_energy(p, ev, &F, NULL, err)) == WGF_OK) {
                info.energy = F;
                rc = wgf_problem_observe(p, &info, err);
            }
            break;
        }
        /* stage 1 at theta_k */
        if ((rc = heun_slope(p, ev, theta, &F, grad, k1, &st1, err)) != WGF_OK)
            break;
        double dis = 0.0;
        for (size_t j = 0; j < P; j++) {
            dis += grad[j] * k1[j];
            pred[j] = theta[j] - s->h * k1[j];
        }
        /* stage 2 at the Euler predictor, which must be admissible too */
        if ((rc = wgf_problem_constrain(p, pred, err)) != WGF_OK) {
            wgf_error_prefix(err, "step %lu (t = %g), predictor", k + 1, t + s->h);
            break;
        }
        if ((rc = heun_slope(p, ev, pred, &F2, grad, k2, &st2, err)) != WGF_OK) {
            wgf_error_prefix(err, "step %lu (t = %g), predictor", k + 1, t + s->h);
            break;
        }
        double nz = 0.0;
        for (size_t j = 0; j < P; j++) {
            double dj = 0.5 * (k1[j] + k2[j]);
            k1[j] = dj; /* from here on, k1 holds the step direction */
            nz += dj * dj;
        }
        /* Report theta_k (still in place) with F and -dF/dt at theta_k, the
         * size of the step that leaves it and both solves' statistics. */
        info.energy = F;
        info.dissipation = dis;
        info.step_norm = s->h * sqrt(nz);
        info.solve = heun_stats(&st1, &st2);
        if ((rc = wgf_problem_observe(p, &info, err)) != WGF_OK)
            break;
        for (size_t j = 0; j < P; j++)
            theta[j] -= s->h * k1[j];
        if ((rc = wgf_problem_constrain(p, theta, err)) != WGF_OK) {
            wgf_error_prefix(err, "step %lu (t = %g)", k + 1, t + s->h);
            break;
        }
    }
    if (rc == WGF_ENUMERIC && err != NULL && strstr(err->msg, "step ") == NULL)
        wgf_error_prefix(err, "heun");
    wgf_eval_free(ev);
    free(grad);
    return rc;
}

/* Explicit steps of size [scheme] step: the core warns before a run whose
 * step exceeds the energies' stability limit (guide-scheme.md). */
static unsigned heun_needs(void *state)
{
    (void)state;
    return WGF_SCHEME_EXPLICIT;
}

static const wgf_scheme_vt heun_vt = {
    .create = heun_create,
    .destroy = heun_destroy,
    .run = heun_run,
    .needs = heun_needs,
};

static const wgf_plugin heun_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "heun",
    .summary = "Heun's method (explicit trapezoid, second order) on theta' = -M^-1 grad F",
    .params = heun_params,
    .vtable = &heun_vt,
};

/* The one symbol the shared object exports (the Makefile hides the rest). */
WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &heun_plugin : NULL;
}
