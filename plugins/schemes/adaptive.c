/* adaptive.c: Heun's method with step control on theta' = -M(theta)^{-1} grad F(theta).
 *
 * A step from theta_k of size h takes the Euler slope k1 = M(theta_k)^{-1} grad F(theta_k) and the
 * slope k2 at the Euler predictor theta_k - h k1; Heun's update is theta_k - h (k1 + k2) / 2. Its
 * difference with the Euler update, d = h (k1 - k2) / 2, measured in the metric at theta_k,
 * err = sqrt(d^T M(theta_k) d) (the W2 size of the difference of the two pushed-forward laws, to
 * first order), is the local error estimate. A step with err <= tol is accepted; either way the
 * next try is h * min(fac_max, max(fac_min, safety * (tol / err)^(1/2))). A rejected step is
 * redone from theta_k with the smaller h (k1 and the metric at theta_k are kept). Steps are cut to
 * land on every output time k * every_t and on t_end exactly. A step below step_min stops the run.
 *
 * history.csv: one row per accepted step, at t_k, with the energy, -dF/dt and the step size;
 * its solve columns are the step's: iterations holds the number of rejected tries of the step
 * (0 when the first try was accepted), products the metric-vector products of every try.
 *
 * Resumable: before it reports step k the scheme hands the core (wgf_problem_save_state) what step
 * k started from besides theta_k: t_k, the first size tried and the output times reached, so that
 * a run resumed at step k tries the same sizes and lands on the same times. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

typedef struct {
    double h0, t_end, tol, every_t, step_min, safety, fac_min, fac_max;
    int fixed;
} adaptive;

static int adaptive_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    double fac_min = wgf_section_double(sec, "fac_min"), fac_max = wgf_section_double(sec, "fac_max");
    if (fac_min > fac_max)
        return wgf_section_error(sec, "fac_min", err, "%g is above fac_max = %g (at most fac_max)", fac_min,
                                 fac_max);
    adaptive *a = calloc(1, sizeof *a);
    if (!a)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    a->h0 = wgf_section_double(sec, "step");
    a->t_end = wgf_section_double(sec, "t_end");
    a->tol = wgf_section_double(sec, "tol");
    a->every_t = wgf_section_double(sec, "every_t");
    a->step_min = wgf_section_double(sec, "step_min");
    a->safety = wgf_section_double(sec, "safety");
    a->fac_min = fac_min;
    a->fac_max = fac_max;
    a->fixed = strcmp(wgf_section_string(sec, "samples"), "fixed") == 0;
    *state = a;
    return WGF_OK;
}

static void adaptive_destroy(void *state) { free(state); }

/* zeta = M(theta)^{-1} grad F(theta) on ev's batch, with F and grad F (P); the metric is left
 * prepared at theta. */
static int slope(wgf_problem *p, wgf_eval *ev, const double *theta, double *F, double *grad, double *zeta,
                 wgf_solve_stats *stats, wgf_error *err)
{
    int rc = wgf_eval_forward(ev, theta, err);
    if (rc == WGF_OK)
        rc = wgf_problem_energy(p, ev, F, grad, err);
    if (rc == WGF_OK)
        rc = wgf_problem_natgrad(p, ev, grad, zeta, stats, err);
    return rc;
}

static void add_stats(wgf_solve_stats *s, const wgf_solve_stats *a)
{
    s->residual = fmax(s->residual, a->residual);
    s->products += a->products;
    s->converged = s->converged && a->converged;
}

/* The output time after the j-th: (j + 1) every_t, or t_end. */
static double next_output(const adaptive *a, unsigned long j)
{
    return a->every_t > 0 ? fmin(a->t_end, (double)(j + 1) * a->every_t) : a->t_end;
}

static int adaptive_run(void *state, wgf_problem *p, wgf_error *err)
{
    const adaptive *a = state;
    size_t P = wgf_problem_nparams(p), N = wgf_problem_get_info(p)->samples;
    double *theta = wgf_problem_theta(p);
    /* grad, k1, k2, the predictor and M d */
    double *grad = calloc(5 * P, sizeof *grad);
    /* ev keeps the forward pass at theta_k (the metric there is re-prepared from it); ev2 the
     * predictor's, on the same samples */
    wgf_eval *ev = wgf_eval_create(p, N, 0, err);
    wgf_eval *ev2 = ev ? wgf_eval_create(p, N, 0, err) : NULL;
    if (!grad || !ev || !ev2) {
        free(grad);
        wgf_eval_free(ev);
        wgf_eval_free(ev2);
        return err && err->code ? err->code : wgf_error_set(err, WGF_ENOMEM, "adaptive: out of memory");
    }
    double *k1 = grad + P, *k2 = k1 + P, *pred = k2 + P, *md = pred + P;
    double t = 0, h = a->h0;
    unsigned long k = wgf_problem_start_step(p), k0 = k, outs = 0; /* outs: output times reached */
    int rc = WGF_OK;
    if (k0 == 0) {
        rc = wgf_problem_constrain(p, theta, err);
    } else { /* resumed: theta_k0 constrained already, and the rest of step k0's start */
        size_t ns;
        const double *s = wgf_problem_resume_state(p, &ns);
        if (ns != 3 || !(s[0] >= 0) || !(s[1] > 0) || !(s[2] >= 0))
            rc = wgf_error_set(err, WGF_EINVAL, "adaptive: the checkpoint of step %lu does not hold this "
                               "scheme's state (t, step size, output times reached)", k0);
        else {
            t = s[0];
            h = s[1];
            outs = (unsigned long)s[2];
        }
    }
    for (; rc == WGF_OK; k++) {
        double F, F2;
        /* the fixed batch is always step 0's */
        if (k == k0 || !a->fixed) {
            unsigned long draw = a->fixed ? 0 : k;
            if ((rc = wgf_eval_draw(ev, WGF_STREAM_TRAIN, draw, err)) != WGF_OK ||
                (rc = wgf_eval_draw(ev2, WGF_STREAM_TRAIN, draw, err)) != WGF_OK)
                break;
        }
        const double start[3] = {t, h, (double)outs};
        if ((rc = wgf_problem_save_state(p, start, 3, err)) != WGF_OK)
            break;
        wgf_step_info info = {.step = k, .t = t, .dissipation = NAN, .step_norm = NAN};
        if (t >= a->t_end) { /* the final state: observed, not stepped from */
            if ((rc = wgf_eval_forward(ev, theta, err)) == WGF_OK &&
                (rc = wgf_problem_energy(p, ev, &F, NULL, err)) == WGF_OK) {
                info.energy = F;
                rc = wgf_problem_observe(p, &info, err);
            }
            break;
        }
        wgf_solve_stats st1 = {0};
        if ((rc = slope(p, ev, theta, &F, grad, k1, &st1, err)) != WGF_OK)
            break;
        double dis = 0;
        for (size_t j = 0; j < P; j++)
            dis += grad[j] * k1[j];
        wgf_solve_stats st = st1;
        st.iterations = 0;
        double t_out = next_output(a, outs);
        double h_rejected = INFINITY; /* the last try's size, once one was rejected */
        for (;;) { /* tries of step k, from theta_k */
            if (h < a->step_min) {
                rc = wgf_error_set(err, WGF_ENUMERIC,
                                   "adaptive: step %g below step_min = %g at t = %.17g (tol = %g)", h,
                                   a->step_min, t, a->tol);
                break;
            }
            double h_uncut = h;
            /* No sliver of a step before an output time: a step that would stop within 10% of
             * itself short of it goes there; one that would leave less than a step is halved.
             * Going there never brings back a size already rejected (with safety near 1 the
             * next try could otherwise be stretched to the same size again, for ever). */
            int cut = t + 1.1 * h >= t_out && t_out - t < h_rejected;
            if (cut)
                h = t_out - t;
            else if (t + 2 * h > t_out)
                h = 0.5 * (t_out - t);
            double e = INFINITY;
            wgf_solve_stats st2 = {0};
            for (size_t j = 0; j < P; j++)
                pred[j] = theta[j] - h * k1[j];
            /* The predictor is projected as every update is (wgf_problem_constrain): a planar
             * layer on its invertibility bound would otherwise refuse every predictor that
             * leans outwards, down to step_min. One the map still refuses, or a failed slope
             * there, is a rejected try. */
            wgf_error e2 = {0};
            int ok = wgf_problem_constrain(p, pred, &e2) == WGF_OK;
            if (ok) {
                rc = slope(p, ev2, pred, &F2, grad, k2, &st2, &e2);
                if (rc == WGF_ENUMERIC) {
                    ok = 0;
                } else if (rc != WGF_OK) {
                    if (err)
                        *err = e2;
                    break;
                }
                rc = WGF_OK;
                add_stats(&st, &st2);
            }
            if (ok) {
                /* the error in the metric at theta_k: d = h (k1 - k2) / 2 */
                for (size_t j = 0; j < P; j++)
                    pred[j] = 0.5 * h * (k1[j] - k2[j]);
                if ((rc = wgf_problem_metric_prepare(p, ev, err)) != WGF_OK ||
                    (rc = wgf_problem_metric_apply(p, pred, md, err)) != WGF_OK)
                    break;
                double q = 0;
                for (size_t j = 0; j < P; j++)
                    q += pred[j] * md[j];
                e = sqrt(fmax(q, 0.0));
                if (!isfinite(e))
                    e = INFINITY;
            }
            double fac = e > 0 ? a->safety * sqrt(a->tol / e) : a->fac_max;
            double h_new = h * fmin(a->fac_max, fmax(a->fac_min, fac));
            if (e <= a->tol) {
                double nz = 0;
                for (size_t j = 0; j < P; j++) {
                    double dj = 0.5 * (k1[j] + k2[j]);
                    k1[j] = dj; /* from here on, the step direction */
                    nz += dj * dj;
                }
                info.energy = F;
                info.dissipation = dis;
                info.step_norm = h * sqrt(nz);
                info.solve = st;
                if ((rc = wgf_problem_observe(p, &info, err)) != WGF_OK)
                    break;
                for (size_t j = 0; j < P; j++)
                    theta[j] -= h * k1[j];
                t = cut ? t_out : t + h;
                outs += cut;
                if ((rc = wgf_problem_constrain(p, theta, err)) != WGF_OK) {
                    wgf_error_prefix(err, "adaptive: step %lu (t = %g)", k + 1, t);
                    break;
                }
                /* a step cut short for an output time says little about the next one */
                h = cut ? fmax(h_new, h_uncut) : h_new;
                break;
            }
            st.iterations++;
            h_rejected = h;
            h = h_new;
        }
        if (rc != WGF_OK)
            break;
    }
    if (rc == WGF_ENUMERIC && err && !strstr(err->msg, "adaptive"))
        wgf_error_prefix(err, "adaptive, step %lu (t = %g)", k, t);
    wgf_eval_free(ev);
    wgf_eval_free(ev2);
    free(grad);
    return rc;
}

/* Not WGF_SCHEME_EXPLICIT: the step is controlled, [scheme] step is only the first try. */
static unsigned adaptive_needs(void *state)
{
    (void)state;
    return WGF_SCHEME_RESUMABLE;
}

static const wgf_scheme_vt adaptive_vt = {
    .create = adaptive_create,
    .destroy = adaptive_destroy,
    .run = adaptive_run,
    .needs = adaptive_needs,
};

static const wgf_param adaptive_params[] = {
    {"tol", WGF_PARAM_DOUBLE, "0.001", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "local error tolerance: sqrt(d^T M d) <= tol, d the Heun minus the Euler update"},
    {"step", WGF_PARAM_DOUBLE, "0.01", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "first step tried"},
    {"step_min", WGF_PARAM_DOUBLE, "1e-10", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "a step below it stops the run (exit 3, naming the time)"},
    {"t_end", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "final time, hit exactly"},
    {"every_t", WGF_PARAM_DOUBLE, "0", WGF_P_MIN, 0, 0, NULL,
     "output interval: steps land on every k * every_t exactly (0: on t_end only)"},
    {"safety", WGF_PARAM_DOUBLE, "0.9", WGF_P_MIN | WGF_P_MIN_OPEN | WGF_P_MAX, 0, 1, NULL,
     "safety factor of the step control h *= safety (tol / err)^(1/2)"},
    {"fac_min", WGF_PARAM_DOUBLE, "0.2", WGF_P_MIN | WGF_P_MIN_OPEN | WGF_P_MAX | WGF_P_MAX_OPEN, 0, 1, NULL,
     "smallest factor a step changes by"},
    {"fac_max", WGF_PARAM_DOUBLE, "5", WGF_P_MIN | WGF_P_MIN_OPEN, 1, 0, NULL,
     "largest factor a step changes by"},
    {"samples", WGF_PARAM_CHOICE, "fresh", 0, 0, 0, "fresh|fixed",
     "fresh training samples every step (its tries and both stages share them), or one fixed batch"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin adaptive_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "adaptive",
    .summary = "Heun steps with an embedded Euler error estimate in the metric norm and step control "
               "(history.csv: solve iterations = rejected tries)",
    .params = adaptive_params,
    .vtable = &adaptive_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &adaptive_plugin : NULL; }
