/* genwgp.c: generative path finding (GenWGP, doc/math.md 5.3). One flow whose S + 1 stage laws
 * rho_0 = lambda, ..., rho_S are the whole path to equilibrium, found at once by minimising
 *
 *     loss = action + mu_s speed + mu_eq |g_S|^2 + mu_f F(rho_S)
 *
 * over all parameters, with D_k = x^(k) - x^(k-1), g_k the energy's Wasserstein gradient at stage
 * k, |D_k| = sqrt(E|D_k|^2), |g_k| = sqrt(E|g_k|^2), <.,.> = E[. . .]:
 *
 *   action = geometric:       sum_k ( |D_k| |g_{k-1}| + <D_k, g_{k-1}> )   (>= 0, reparametrisation
 *                             invariant; zero iff every step points down the gradient)
 *   action = finite_horizon:  sum_k |D_k + tau g_{k-1}|^2 / (4 tau),  tau = t_end / S
 *   speed = sum_k (|D_k| - m)^2 / m^2,  m = mean_j |D_j|   (constant intrinsic speed)
 *
 * rule = trapezoid puts gbar_k = (g_{k-1} + g_k) / 2 in place of g_{k-1} in the action: its
 * zero-action stage is the trapezoidal rule (second order) where g_{k-1}'s is explicit Euler
 * (first order); gbar_k's cotangent goes half to each end, and a stage's time is |D_k| / |gbar_k|.
 *
 * The terminal energy F(rho_S) (mu_f > 0) asks for a minimiser at the end, not any stationary
 * state: |g_S| = 0 at a Dirac mass of the aggregation energy as at its ring, but F is 0 there
 * against -1/12. Its gradient is E[g_S . dx^(S)/dtheta] (the first variation along the
 * push-forward), a cotangent g_S / N on x^(S): exact for potential and interaction energies on
 * the batch, and for those with a density (entropy, pme) the usual unbiased estimator rather than
 * the derivative of the batch's estimate of F.
 *
 * The terminal terms pull at the optimum: a stage pays only to second order for a step that
 * leaves -h g, and gains to first order by moving the terminal terms' way, so every stage leans
 * into the pull (on the 30-D double well the stage means move 1.5 times as far as -h E[V']).
 * terminal_end < 1 lowers mu_eq and mu_f linearly over the Adam iterations to terminal_end times
 * their value, so that the action takes the lean out of the path the pull has built.
 *
 * The gradient is one reverse pass: the loss's derivatives in D_k and g_k give cotangents on
 * every stage's x; the energy's wgrad_vjp carries those of g_k into x^(k), l^(k), s^(k); one
 * wgf_eval_path_vjp takes them all to theta (doc/math.md 3, 3.3). When nothing in the loss reads
 * the log-densities l (the Wasserstein gradient does not, and mu_f = 0 or F does not), the batch
 * has none (WGF_EVAL_NO_L): a planar layer's log-determinant is half of its forward pass.
 *
 * |D_k| is not differentiable at D_k = 0 (a planar flow at its identity parameters has every
 * D_k = 0): there the term |D_k| |g_{k-1}| takes the subgradient 0, and the speed penalty, whose
 * scale m is then 0, is 0 with gradient 0, so the first step follows <D_k, g_{k-1}> down the
 * gradient.
 *
 * Physical time: along a geometric path t = int ds / |g| over the W2 arc length s, one stage
 * at a time with ds = |D_k|. times = logmean takes |g| linear in s between the stages:
 *
 *     t_k - t_{k-1} = |D_k| ln(|g_{k-1}| / |g_k|) / (|g_{k-1}| - |g_k|)
 *
 * (|D_k| over the logarithmic mean of the two |g|), exact on an exponential approach to
 * equilibrium (|g| proportional to the distance to it), where the trapezoid rule on 1/|g|
 * (times = trapezoid: |D_k| (1/|g_{k-1}| + 1/|g_k|)/2) runs ahead, as sinh(lambda h) / lambda
 * does of a true step h. Along a finite-horizon path t_k = k tau.
 *
 * Optimisers: Adam (lr, optionally decaying geometrically to lr_end, fresh or fixed samples) or
 * L-BFGS (liblbfgs, fixed samples, backtracking Armijo line search: a trial the map refuses, or
 * where the loss is not finite, is +inf and the search backs off). Every iteration is reported
 * with wgf_problem_observe: history.csv's energy column is the total loss, and, for want of
 * columns of their own, its dissipation column holds the action, step_norm the speed penalty
 * (mu_s included), residual the terminal penalties (mu_eq |g_S|^2 + mu_f F(rho_S), at the
 * iteration's weights), iterations
 * the optimiser's iteration and products the loss evaluations so far; t is the recovered time of
 * the last stage, at which the reference judges it. The whole path (stage times t_k, energies,
 * |D_k| and |g_k|) is reported with wgf_problem_observe_path every [output] every iterations and
 * at the end.
 *
 * With Adam a run can resume (`wgf run --resume`): the moments, the powers of beta1 and beta2
 * and the evaluation count at the start of every iteration go with the checkpoint, and path.csv
 * goes on from the checkpoint's. L-BFGS's memory lives inside liblbfgs: a run with it cannot. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lbfgs.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

enum { GW_GEOMETRIC, GW_FINITE_HORIZON };
enum { GW_ADAM, GW_LBFGS };
enum { GW_LOGMEAN, GW_TRAPEZOID };
enum { GW_EXPLICIT_RULE, GW_TRAPEZOID_RULE };

typedef struct {
    int action, optimizer, fixed, times, rule;
    double t_end, mu_s, mu_eq, mu_f, terminal_end;
    long iterations;
    double lr, lr_end, beta1, beta2;
    int m;
    double epsilon;
    long warmup;
} genwgp;

/* One loss evaluation on a batch, with its workspace. */
typedef struct {
    wgf_problem *p;
    const genwgp *gw;
    wgf_eval *ev;
    wgf_eval *ev_l;     /* ev's draw again with l, for the path's energies; NULL when ev has l */
    size_t N, d, S, P;
    int use_l, use_s;   /* wgrad reads l, s: their cotangents are passed on */
    double *g;          /* (S + 1) x N x d: g_k */
    double *xbar, *gbar, *sbar; /* (S + 1) x N x d each */
    double *lbar;       /* (S + 1) x N */
    const double **xp, **lp, **sp; /* S + 1 each */
    const double **xs;  /* S + 1: every stage's x */
    double *Dn, *gn, *t; /* S + 1 each: |D_k| (Dn[0] unused), |g_k|, t_k */
    double *gm;          /* S + 1: |gbar_k|, the gradient stage k is held to (gm[0] unused) */
    double action, speed, equil, loss;
    double tw;           /* the terminal weights' factor at this iteration (terminal_end) */
    unsigned long evals;
} gw_loss;

static int gw_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    genwgp *g = calloc(1, sizeof *g);
    if (!g)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    g->action = strcmp(wgf_section_string(sec, "action"), "finite_horizon") == 0 ? GW_FINITE_HORIZON
                                                                                  : GW_GEOMETRIC;
    g->times = strcmp(wgf_section_string(sec, "times"), "trapezoid") == 0 ? GW_TRAPEZOID : GW_LOGMEAN;
    g->rule = strcmp(wgf_section_string(sec, "rule"), "trapezoid") == 0 ? GW_TRAPEZOID_RULE : GW_EXPLICIT_RULE;
    g->optimizer = strcmp(wgf_section_string(sec, "optimizer"), "lbfgs") == 0 ? GW_LBFGS : GW_ADAM;
    g->fixed = strcmp(wgf_section_string(sec, "samples"), "fixed") == 0;
    g->t_end = wgf_section_double(sec, "t_end");
    g->mu_s = wgf_section_double(sec, "mu_s");
    g->mu_eq = wgf_section_double(sec, "mu_eq");
    g->mu_f = wgf_section_double(sec, "mu_f");
    g->terminal_end = wgf_section_double(sec, "terminal_end");
    g->iterations = wgf_section_int(sec, "iterations");
    g->lr = wgf_section_double(sec, "lr");
    g->lr_end = wgf_section_has(sec, "lr_end") ? wgf_section_double(sec, "lr_end") : g->lr;
    g->beta1 = wgf_section_double(sec, "beta1");
    g->beta2 = wgf_section_double(sec, "beta2");
    g->m = (int)wgf_section_int(sec, "m");
    g->epsilon = wgf_section_double(sec, "epsilon");
    g->warmup = wgf_section_int(sec, "warmup");
    if (g->optimizer == GW_LBFGS && !g->fixed) {
        free(g);
        return wgf_section_error(sec, "samples", err,
                                 "L-BFGS needs a deterministic loss (samples = fixed, or optimizer = adam)");
    }
    if (g->optimizer == GW_LBFGS && g->terminal_end != 1) {
        free(g);
        return wgf_section_error(sec, "terminal_end", err,
                                 "L-BFGS needs one loss throughout (terminal_end = 1, or optimizer = adam)");
    }
    *state = g;
    return WGF_OK;
}

static void gw_destroy(void *state) { free(state); }

static unsigned gw_needs(void *state)
{
    const genwgp *gw = state;
    /* an optimiser: the loss may rise on the way down (the speed penalty jumps to O(1) as soon
     * as the stages move apart), which the divergence guard must not take for a diverging flow.
     * Adam resumes (its moments go with the checkpoint); L-BFGS's memory lives in liblbfgs. */
    return WGF_SCHEME_NEEDS_STAGES | WGF_SCHEME_NEEDS_WGRAD | WGF_SCHEME_NEEDS_WGRAD_VJP |
           WGF_SCHEME_OPTIMISER | (gw->optimizer == GW_ADAM ? WGF_SCHEME_RESUMABLE : 0);
}

static void gw_loss_free(gw_loss *c)
{
    wgf_eval_free(c->ev);
    wgf_eval_free(c->ev_l);
    free(c->g);
    free(c->xbar);
    free(c->gbar);
    free(c->sbar);
    free(c->lbar);
    free(c->xp);
    free(c->lp);
    free(c->sp);
    free(c->xs);
    free(c->Dn);
    free(c->gn);
    free(c->t);
    free(c->gm);
    memset(c, 0, sizeof *c);
}

/* Whether the loss reads log-densities: the Wasserstein gradient may, and so may F(rho_S) with
 * mu_f > 0. The path's energies read them where the energy's eval does, but only at the reports. */
static int gw_loss_reads_l(const wgf_problem *p, const genwgp *gw)
{
    unsigned needs = wgf_problem_energy_needs(p);
    return (needs & WGF_WGRAD_NEEDS_L) || (gw->mu_f > 0 && (needs & WGF_NEEDS_L));
}

/* The loss's batch of N samples, with log-densities or without (with_l = 0: the map's forward
 * is asked for x alone, and a second batch with l gives the path's energies at the reports). */
static int gw_loss_setup(gw_loss *c, wgf_problem *p, const genwgp *gw, size_t N, int with_l, wgf_error *err)
{
    memset(c, 0, sizeof *c);
    c->p = p;
    c->gw = gw;
    c->tw = 1;
    c->N = N;
    c->d = wgf_problem_get_info(p)->dim;
    c->S = wgf_problem_nstages(p);
    c->P = wgf_problem_nparams(p);
    unsigned needs = wgf_problem_energy_needs(p);
    c->use_l = (needs & WGF_WGRAD_NEEDS_L) != 0;
    c->use_s = (needs & WGF_WGRAD_NEEDS_S) != 0;
    size_t K = c->S + 1, nd = N * c->d;
    if (nd / c->d != N || nd > ((size_t)-1) / sizeof(double) / K)
        return wgf_error_set(err, WGF_ENOMEM, "genwgp: %zu samples of %zu stages are more than fit", N, K);
    c->ev = wgf_eval_create(p, N, WGF_EVAL_STAGES | (with_l ? 0 : WGF_EVAL_NO_L), err);
    if (c->ev && !with_l && !(c->ev_l = wgf_eval_create(p, N, WGF_EVAL_STAGES, err)))
        gw_loss_free(c);
    if (!c->ev)
        return err && err->code ? err->code : WGF_ENOMEM;
    c->g = calloc(K * nd, sizeof(double));
    c->xbar = calloc(K * nd, sizeof(double));
    c->gbar = calloc(K * nd, sizeof(double));
    c->sbar = c->use_s ? calloc(K * nd, sizeof(double)) : NULL;
    c->lbar = c->use_l ? calloc(K * N, sizeof(double)) : NULL;
    c->xp = calloc(K, sizeof *c->xp);
    c->lp = calloc(K, sizeof *c->lp);
    c->sp = calloc(K, sizeof *c->sp);
    c->Dn = calloc(K, sizeof(double));
    c->gn = calloc(K, sizeof(double));
    c->t = calloc(K, sizeof(double));
    c->gm = calloc(K, sizeof(double));
    c->xs = calloc(K, sizeof *c->xs);
    if (!c->t || !c->gm || !c->xs || !c->g || !c->xbar || !c->gbar || (c->use_s && !c->sbar) || (c->use_l && !c->lbar) || !c->xp ||
        !c->lp || !c->sp || !c->Dn || !c->gn) {
        gw_loss_free(c);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    /* Stage 0 is z: nothing there depends on theta. */
    for (size_t k = 1; k < K; k++) {
        c->xp[k] = c->xbar + k * nd;
        c->lp[k] = c->use_l ? c->lbar + k * N : NULL;
        c->sp[k] = c->use_s ? c->sbar + k * nd : NULL;
    }
    return WGF_OK;
}

/* The loss's batch, without log-densities when the loss reads none: a planar layer's log1p is
 * half of its forward pass, and the forward pass half of an iteration. */
static int gw_loss_init(gw_loss *c, wgf_problem *p, const genwgp *gw, size_t N, wgf_error *err)
{
    return gw_loss_setup(c, p, gw, N, gw_loss_reads_l(p, gw), err);
}

/* Energy of stage k of ev: the terms' estimates on that stage's batch. */
static int gw_stage_energy(const gw_loss *c, wgf_eval *ev, size_t k, double *F, wgf_error *err)
{
    const wgf_batch *b = wgf_eval_batch(ev, k);
    *F = 0;
    for (size_t i = 0; i < wgf_problem_nterms(c->p); i++) {
        const wgf_energy_vt *vt;
        void *st;
        double Fi = NAN;
        wgf_problem_term(c->p, i, NULL, NULL, &vt, &st);
        int rc = vt->eval_s && b->s ? vt->eval_s(st, b, &Fi, NULL, NULL, NULL, err)
                                    : vt->eval(st, b, &Fi, NULL, NULL, err);
        if (rc != WGF_OK)
            return rc;
        *F += Fi;
    }
    return WGF_OK;
}

/* The loss at theta on the batch in c->ev, its terms, |D_k| and |g_k|; with grad not NULL its
 * gradient in theta (P, overwritten). WGF_ENUMERIC when the loss is not finite. */
static int gw_loss_eval(gw_loss *c, const double *theta, double *grad, wgf_error *err)
{
    const genwgp *gw = c->gw;
    size_t N = c->N, d = c->d, S = c->S, nd = N * d;
    double invN = 1.0 / (double)N, tau = gw->t_end / (double)S;
    int rc = wgf_eval_forward(c->ev, theta, err);
    for (size_t k = 0; k <= S && rc == WGF_OK; k++)
        rc = wgf_problem_wgrad(c->p, c->ev, k, c->g + k * nd, err);
    if (rc != WGF_OK)
        return rc;
    c->evals++;
    const double **x = c->xs;
    for (size_t k = 0; k <= S; k++) {
        x[k] = wgf_eval_batch(c->ev, k)->x;
        const double *gk = c->g + k * nd;
        double s = 0;
        for (size_t i = 0; i < nd; i++)
            s += gk[i] * gk[i];
        c->gn[k] = sqrt(s * invN);
    }
    /* the action, and the |D_k|; stage k is held to gbar_k = w0 g_{k-1} + w1 g_k */
    const double w0 = gw->rule == GW_TRAPEZOID_RULE ? 0.5 : 1.0, w1 = 1.0 - w0;
    double action = 0, mean = 0;
    for (size_t k = 1; k <= S; k++) {
        const double *g0 = c->g + (k - 1) * nd, *g1 = c->g + k * nd;
        double dd = 0, ip = 0, rr = 0, mm = 0;
        for (size_t i = 0; i < nd; i++) {
            double gm = w0 * g0[i] + w1 * g1[i];
            double D = x[k][i] - x[k - 1][i], r = D + tau * gm;
            dd += D * D;
            ip += D * gm;
            rr += r * r;
            mm += gm * gm;
        }
        c->Dn[k] = sqrt(dd * invN);
        c->gm[k] = sqrt(mm * invN);
        mean += c->Dn[k] / (double)S;
        action += gw->action == GW_GEOMETRIC ? c->Dn[k] * c->gm[k] + ip * invN : rr * invN / (4 * tau);
    }
    double Q = 0;
    for (size_t k = 1; k <= S; k++)
        Q += (c->Dn[k] - mean) * (c->Dn[k] - mean);
    c->action = action;
    c->speed = mean > 0 ? gw->mu_s * Q / (mean * mean) : 0;
    c->equil = c->tw * gw->mu_eq * c->gn[S] * c->gn[S];
    if (gw->mu_f > 0) {
        double F;
        if ((rc = gw_stage_energy(c, c->ev, S, &F, err)) != WGF_OK)
            return rc;
        c->equil += c->tw * gw->mu_f * F;
    }
    c->loss = c->action + c->speed + c->equil;
    if (!isfinite(c->loss))
        return wgf_error_set(err, WGF_ENUMERIC,
                             "the loss is not finite (action %g, speed %g, terminal %g)", c->action,
                             c->speed, c->equil);
    if (!grad)
        return WGF_OK;

    memset(c->xbar, 0, (S + 1) * nd * sizeof(double));
    memset(c->gbar, 0, (S + 1) * nd * sizeof(double));
    if (c->sbar)
        memset(c->sbar, 0, (S + 1) * nd * sizeof(double));
    if (c->lbar)
        memset(c->lbar, 0, (S + 1) * N * sizeof(double));
    for (size_t k = 1; k <= S; k++) {
        const double *g0 = c->g + (k - 1) * nd, *g1 = c->g + k * nd;
        double *gb0 = c->gbar + (k - 1) * nd, *gb1 = c->gbar + k * nd, *xb1 = c->xbar + k * nd,
               *xb0 = c->xbar + (k - 1) * nd;
        /* dLoss/d|D_k| and dLoss/d|gbar_k| */
        double dDn = 0, dgn = 0;
        if (gw->action == GW_GEOMETRIC) {
            dDn += c->gm[k];
            dgn += c->Dn[k];
        }
        if (mean > 0)
            dDn += gw->mu_s * (2 * (c->Dn[k] - mean) / (mean * mean) - 2 * Q / (mean * mean * mean * (double)S));
        /* d|D|/dD_n = D_n / (N |D|); subgradient 0 at |D| = 0 */
        double cD = c->Dn[k] > 0 ? dDn * invN / c->Dn[k] : 0;
        double cg = c->gm[k] > 0 ? dgn * invN / c->gm[k] : 0;
        for (size_t i = 0; i < nd; i++) {
            double gm = w0 * g0[i] + w1 * g1[i];
            double D = x[k][i] - x[k - 1][i], Db = cD * D, gb = cg * gm;
            if (gw->action == GW_GEOMETRIC) {
                Db += c->Dn[k] > 0 ? gm * invN : 0; /* the subgradient of least norm */
                gb += D * invN;
            } else {
                double r = D + tau * gm;
                Db += r * invN / (2 * tau);
                gb += r * invN / 2;
            }
            xb1[i] += Db;
            xb0[i] -= Db;
            gb0[i] += w0 * gb;
            gb1[i] += w1 * gb;
        }
    }
    double *gbS = c->gbar + S * nd;
    const double *gS = c->g + S * nd;
    for (size_t i = 0; i < nd; i++)
        gbS[i] += 2 * c->tw * gw->mu_eq * gS[i] * invN;
    if (gw->mu_f > 0) { /* dF/dx^(S) = g_S / N */
        double *xbS = c->xbar + S * nd;
        for (size_t i = 0; i < nd; i++)
            xbS[i] += c->tw * gw->mu_f * gS[i] * invN;
    }
    for (size_t k = 1; k <= S && rc == WGF_OK; k++)
        rc = wgf_problem_wgrad_vjp(c->p, c->ev, k, c->gbar + k * nd, c->xbar + k * nd,
                                   c->lbar ? c->lbar + k * N : NULL, c->sbar ? c->sbar + k * nd : NULL, err);
    if (rc == WGF_OK)
        rc = wgf_eval_path_vjp(c->ev, c->xp, c->use_l ? c->lp : NULL, c->use_s ? c->sp : NULL, grad, err);
    if (rc != WGF_OK)
        return rc;
    for (size_t j = 0; j < c->P; j++)
        if (!isfinite(grad[j]))
            return wgf_error_set(err, WGF_ENUMERIC, "the loss gradient has a non-finite entry (%zu)", j);
    return WGF_OK;
}

/* Stage times from the last evaluation (see the top of the file for the rules). A stage where g
 * vanishes (an exact equilibrium: the flow reaches it only as t -> infinity) leaves the rule with
 * the other end of its interval, |D_k| / |g|, so that every t_k is finite; a step that does not
 * move takes no time. */
static void gw_times(const gw_loss *c, double *t)
{
    t[0] = 0;
    for (size_t k = 1; k <= c->S; k++) {
        const double g0 = c->gn[k - 1], g1 = c->gn[k], D = c->Dn[k];
        double dt = 0;
        if (c->gw->rule == GW_TRAPEZOID_RULE) {
            /* the zero-action stage is D_k = -h (g_{k-1} + g_k) / 2: h itself */
            dt = D > 0 && c->gm[k] > 0 ? D / c->gm[k] : 0;
        } else if (D > 0 && g0 > 0 && g1 > 0) {
            /* ln(g1/g0) / (g1 - g0) = log1p(q) / (q g0), q = g1/g0 - 1: no cancellation as g1 -> g0 */
            double q = (g1 - g0) / g0;
            dt = c->gw->times == GW_TRAPEZOID ? D * (1 / g0 + 1 / g1) / 2 : q == 0 ? D / g0 : D * log1p(q) / (q * g0);
        } else if (D > 0 && (g0 > 0 || g1 > 0)) {
            dt = D / (g0 > 0 ? g0 : g1);
        }
        t[k] = c->gw->action == GW_FINITE_HORIZON ? c->gw->t_end * (double)k / (double)c->S : t[k - 1] + dt;
    }
}

/* Report the path of the last evaluation (at theta), with its |D_k| and |g_k|: those of the
 * loss's batch, from which the times come. Its energies read l: on a loss batch without l they
 * come from the same samples pushed forward again with it (x and s the same to the bit). */
static int gw_report_path(gw_loss *c, unsigned long step, const double *theta, wgf_error *err)
{
    size_t S = c->S;
    double *t = malloc(3 * (S + 1) * sizeof(double));
    if (!t)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    double *energy = t + S + 1, *Dn = t + 2 * (S + 1);
    gw_times(c, t);
    memcpy(Dn, c->Dn, (S + 1) * sizeof *Dn);
    Dn[0] = NAN; /* no step into stage 0 */
    wgf_eval *ev = c->ev_l ? c->ev_l : c->ev;
    int rc = WGF_OK;
    if (c->ev_l && (rc = wgf_eval_set_z(ev, wgf_eval_z(c->ev), err)) == WGF_OK)
        rc = wgf_eval_forward(ev, wgf_eval_theta(c->ev), err);
    for (size_t k = 0; k <= S && rc == WGF_OK; k++)
        rc = gw_stage_energy(c, ev, k, &energy[k], err);
    if (rc == WGF_OK) {
        wgf_path_info path = {.step = step, .nstages = S + 1, .t = t, .energy = energy, .theta = theta,
                              .step_norm = Dn, .grad_norm = c->gn};
        rc = wgf_problem_observe_path(c->p, &path, err);
    }
    free(t);
    return rc;
}

/* One history row for the last evaluation (see the top of the file for the columns). */
static int gw_report_step(gw_loss *c, unsigned long step, const double *theta, wgf_error *err)
{
    gw_times(c, c->t);
    wgf_step_info info = {.step = step, .t = c->t[c->S], .energy = c->loss, .dissipation = c->action,
                          .step_norm = c->speed, .theta = theta};
    info.solve.iterations = (unsigned)(step < UINT_MAX ? step : UINT_MAX);
    info.solve.residual = c->equil;
    info.solve.products = c->evals;
    info.solve.converged = 1;
    return wgf_problem_observe(c->p, &info, err);
}

static unsigned long output_every(wgf_problem *p)
{
    const wgf_section *out = wgf_problem_section(p, "output");
    long every = out && wgf_section_has(out, "every") ? wgf_section_int(out, "every") : 0;
    return every > 0 ? (unsigned long)every : 0;
}

/* ------------------------------------------------------------ Adam */

/* Adam for gw->iterations iterations from theta. warm: a warm-up before L-BFGS, which reports
 * the state it ends in itself (no last row, no path at the end). Otherwise resumable: before
 * reporting iteration it, the state it started from besides theta (the moments, the powers of
 * the betas, the evaluations so far) goes to the core (wgf_problem_save_state). */
static int gw_adam(const genwgp *gw, gw_loss *c, double *theta, int warm, wgf_error *err)
{
    size_t P = c->P, ns = 2 * P + 3;
    double *work = calloc(3 * P + 3, sizeof(double));
    if (!work)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    /* the saved state is m1, m2, b1t, b2t, evals: contiguous after grad */
    double *grad = work, *m1 = work + P, *m2 = work + 2 * P, *st = m1;
    unsigned long every = output_every(c->p), its = (unsigned long)gw->iterations;
    unsigned long it0 = warm ? 0 : wgf_problem_start_step(c->p);
    double b1t = 1, b2t = 1;
    int rc = WGF_OK;
    if (it0 == 0) {
        rc = wgf_problem_constrain(c->p, theta, err);
    } else { /* resumed: theta_it0 constrained already, the rest from the checkpoint */
        size_t n;
        const double *s = wgf_problem_resume_state(c->p, &n);
        if (n != ns)
            rc = wgf_error_set(err, WGF_EINVAL, "genwgp: the checkpoint of iteration %lu does not hold "
                               "Adam's state for %zu parameters", it0, P);
        else {
            memcpy(st, s, ns * sizeof *s);
            b1t = st[2 * P];
            b2t = st[2 * P + 1];
            c->evals = (unsigned long)st[2 * P + 2];
        }
    }
    /* the fixed batch is always iteration 0's */
    if (rc == WGF_OK)
        rc = wgf_eval_draw(c->ev, WGF_STREAM_TRAIN, gw->fixed ? 0 : it0, err);
    for (unsigned long it = it0; rc == WGF_OK; it++) {
        if (it > it0 && !gw->fixed && (rc = wgf_eval_draw(c->ev, WGF_STREAM_TRAIN, it, err)) != WGF_OK)
            break;
        st[2 * P] = b1t;
        st[2 * P + 1] = b2t;
        st[2 * P + 2] = (double)c->evals;
        if (!warm && (rc = wgf_problem_save_state(c->p, st, ns, err)) != WGF_OK)
            break;
        /* the terminal weights go linearly from mu_eq, mu_f to terminal_end times them */
        c->tw = 1 + (gw->terminal_end - 1) * (double)(it < its ? it : its) / (double)its;
        if ((rc = gw_loss_eval(c, theta, it < its ? grad : NULL, err)) != WGF_OK) {
            wgf_error_prefix(err, "iteration %lu", it);
            break;
        }
        if (warm && it == its)
            break;
        if ((rc = gw_report_step(c, it, theta, err)) != WGF_OK)
            break;
        if ((it == its || (every && it % every == 0)) && (rc = gw_report_path(c, it, theta, err)) != WGF_OK)
            break;
        if (it == its)
            break;
        /* lr decays geometrically from lr to lr_end over the iterations */
        double lr = gw->lr * pow(gw->lr_end / gw->lr, (double)it / (double)(its > 1 ? its - 1 : 1));
        b1t *= gw->beta1;
        b2t *= gw->beta2;
        for (size_t j = 0; j < P; j++) {
            m1[j] = gw->beta1 * m1[j] + (1 - gw->beta1) * grad[j];
            m2[j] = gw->beta2 * m2[j] + (1 - gw->beta2) * grad[j] * grad[j];
            theta[j] -= lr * (m1[j] / (1 - b1t)) / (sqrt(m2[j] / (1 - b2t)) + 1e-8);
        }
        if ((rc = wgf_problem_constrain(c->p, theta, err)) != WGF_OK) {
            wgf_error_prefix(err, "iteration %lu", it + 1);
            break;
        }
    }
    free(work);
    return rc;
}

/* ------------------------------------------------------------ L-BFGS */

typedef struct {
    gw_loss *c;
    unsigned long every, step0;
    unsigned long iterations;
    int rc;         /* a failure that stops the run (not a refused trial) */
    wgf_error err;
    double *last;   /* the last finite accepted iterate */
    int stalled;    /* liblbfgs handed over a non-finite iterate: stop at last */
} gw_lbfgs;

static lbfgsfloatval_t gw_lbfgs_evaluate(void *inst, const lbfgsfloatval_t *x, lbfgsfloatval_t *g, const int n,
                                         const lbfgsfloatval_t step)
{
    (void)step;
    gw_lbfgs *o = inst;
    wgf_error e = {0};
    int rc = o->rc == WGF_OK ? wgf_problem_check(o->c->p, x, &e) : WGF_ENUMERIC;
    if (rc == WGF_OK)
        rc = gw_loss_eval(o->c, x, g, &e);
    if (rc == WGF_OK)
        return o->c->loss;
    if (rc != WGF_ENUMERIC && o->rc == WGF_OK) {
        o->rc = rc;
        o->err = e;
    }
    /* refused (not admissible, or not finite): the backtracking search halves the step */
    memset(g, 0, (size_t)n * sizeof *g);
    return INFINITY;
}

static int gw_lbfgs_progress(void *inst, const lbfgsfloatval_t *x, const lbfgsfloatval_t *g,
                             const lbfgsfloatval_t fx, const lbfgsfloatval_t xnorm, const lbfgsfloatval_t gnorm,
                             const lbfgsfloatval_t step, int n, int k, int ls)
{
    (void)g, (void)fx, (void)xnorm, (void)gnorm, (void)step, (void)n, (void)ls;
    gw_lbfgs *o = inst;
    if (o->rc != WGF_OK)
        return 1;
    /* liblbfgs can hand over a NaN iterate although every loss and gradient was finite: a step
     * that leaves the gradient unchanged (y = 0) scales its next direction by y's/y'y = 0/0, and
     * the Armijo test against a NaN slope accepts the NaN point. L-BFGS can go no further from
     * there: it ends at the last finite iterate. */
    for (int j = 0; j < n; j++)
        if (!isfinite(x[j])) {
            o->stalled = 1;
            return 1;
        }
    memcpy(o->last, x, (size_t)n * sizeof *x);
    o->iterations = (unsigned long)k;
    /* the backtracking search's accepted point is its last evaluation: c holds its terms */
    unsigned long it = o->step0 + (unsigned long)k;
    int rc = gw_report_step(o->c, it, x, &o->err);
    if (rc == WGF_OK && o->every && it % o->every == 0)
        rc = gw_report_path(o->c, it, x, &o->err);
    o->rc = rc;
    return rc != WGF_OK;
}

static int gw_lbfgs_run(const genwgp *gw, gw_loss *c, double *theta, wgf_error *err)
{
    size_t P = c->P;
    if (P > (size_t)INT_MAX)
        return wgf_error_set(err, WGF_EINVAL, "genwgp: %zu parameters are more than liblbfgs takes", P);
    int rc = wgf_problem_constrain(c->p, theta, err);
    if (rc == WGF_OK)
        rc = wgf_eval_draw(c->ev, WGF_STREAM_TRAIN, 0, err);
    if (rc == WGF_OK)
        rc = gw_loss_eval(c, theta, NULL, err);
    if (rc != WGF_OK)
        return rc;
    /* Where a stage does not move (D_k = 0, as at the identity) the action is at its minimum 0
     * and not differentiable: no line search along the subgradient finds a decrease. Adam, which
     * takes steps of a set size, starts there instead (warmup iterations on the same samples). */
    int still = 0;
    for (size_t k = 1; k <= c->S; k++)
        still = still || c->Dn[k] == 0;
    unsigned long step0 = 0;
    if (still && gw->warmup > 0) {
        genwgp warm = *gw;
        warm.iterations = gw->warmup;
        warm.fixed = 1;
        if ((rc = gw_adam(&warm, c, theta, 1, err)) != WGF_OK)
            return rc;
        step0 = (unsigned long)gw->warmup;
    }
    /* the starting point: reported as iteration step0 */
    if ((rc = gw_report_step(c, step0, theta, err)) != WGF_OK)
        return rc;
    unsigned long every = output_every(c->p);
    if (every && step0 % every == 0 && (rc = gw_report_path(c, step0, theta, err)) != WGF_OK)
        return rc;
    lbfgsfloatval_t *x = lbfgs_malloc((int)P);
    if (!x)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    memcpy(x, theta, P * sizeof *x);
    lbfgs_parameter_t par;
    lbfgs_parameter_init(&par);
    par.m = gw->m;
    par.epsilon = gw->epsilon;
    par.max_iterations = (int)(gw->iterations < INT_MAX ? gw->iterations : INT_MAX);
    par.linesearch = LBFGS_LINESEARCH_BACKTRACKING_ARMIJO;
    par.max_linesearch = 60;
    gw_lbfgs o = {.c = c, .every = every, .step0 = step0, .last = malloc(P * sizeof(double))};
    if (!o.last) {
        lbfgs_free(x);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    memcpy(o.last, theta, P * sizeof *o.last);
    lbfgsfloatval_t fx = 0;
    int lrc = lbfgs((int)P, x, &fx, gw_lbfgs_evaluate, gw_lbfgs_progress, &o, &par);
    if (o.stalled)
        memcpy(x, o.last, P * sizeof *x);
    free(o.last);
    if (o.rc != WGF_OK) {
        rc = o.rc;
        if (err)
            *err = o.err;
    } else if (lrc < 0 && lrc != LBFGSERR_MAXIMUMITERATION && o.iterations == 0) {
        rc = wgf_error_set(err, WGF_ENUMERIC,
                           "L-BFGS made no progress from the start (liblbfgs status %d); try "
                           "optimizer = adam, or invertibility = reparam",
                           lrc);
    }
    /* x is the last accepted iterate on every end */
    if (rc == WGF_OK) {
        memcpy(theta, x, P * sizeof *x);
        rc = gw_loss_eval(c, theta, NULL, err);
        if (rc == WGF_OK)
            rc = gw_report_path(c, step0 + o.iterations, theta, err);
    }
    lbfgs_free(x);
    return rc;
}

static int gw_run(void *state, wgf_problem *p, wgf_error *err)
{
    genwgp *gw = state;
    gw_loss c;
    int rc = gw_loss_init(&c, p, gw, wgf_problem_get_info(p)->samples, err);
    if (rc != WGF_OK)
        return rc;
    double *theta = wgf_problem_theta(p);
    rc = gw->optimizer == GW_LBFGS ? gw_lbfgs_run(gw, &c, theta, err) : gw_adam(gw, &c, theta, 0, err);
    if (rc == WGF_ENUMERIC && err)
        wgf_error_prefix(err, "genwgp");
    gw_loss_free(&c);
    return rc;
}

static const wgf_scheme_vt gw_vt = {
    .create = gw_create,
    .destroy = gw_destroy,
    .run = gw_run,
    .needs = gw_needs,
};

static const wgf_param gw_params[] = {
    {"action", WGF_PARAM_CHOICE, "geometric", 0, 0, 0, "geometric|finite_horizon",
     "geometric: sum_k |D_k| |g_{k-1}| + <D_k, g_{k-1}> (stage times recovered from |D_k| and |g_k|); "
     "finite_horizon: sum_k |D_k + tau g_{k-1}|^2 / (4 tau), tau = t_end / S"},
    {"rule", WGF_PARAM_CHOICE, "explicit", 0, 0, 0, "explicit|trapezoid",
     "the gradient a stage is held to: g_{k-1} at its start (explicit Euler, first order), or "
     "(g_{k-1} + g_k) / 2 (the trapezoidal rule, second order; stage times then |D_k| over its norm)"},
    {"times", WGF_PARAM_CHOICE, "logmean", 0, 0, 0, "logmean|trapezoid",
     "geometric action: stage times t = int ds / |g| with |g| linear in the W2 arc length between "
     "stages (logmean, exact on an exponential approach), or the trapezoid rule on 1/|g|"},
    {"t_end", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "physical time of the last stage (finite_horizon only)"},
    {"mu_s", WGF_PARAM_DOUBLE, "1", WGF_P_MIN, 0, 0, NULL,
     "weight of the constant-speed penalty sum_k (|D_k| - mean |D|)^2 / mean |D|^2"},
    {"mu_eq", WGF_PARAM_DOUBLE, "1", WGF_P_MIN, 0, 0, NULL,
     "weight of the terminal equilibrium penalty |g_S|^2"},
    {"mu_f", WGF_PARAM_DOUBLE, "0", WGF_P_MIN, 0, 0, NULL,
     "weight of the last stage's energy F(rho_S): a minimiser at the end, not any stationary state"},
    {"terminal_end", WGF_PARAM_DOUBLE, "1", WGF_P_MIN, 0, 0, NULL,
     "Adam: mu_eq and mu_f go linearly to terminal_end times their value over the iterations; below "
     "1 the stages leave the terminal pull they lean into and return to the gradient (1: constant)"},
    {"optimizer", WGF_PARAM_CHOICE, "adam", 0, 0, 0, "adam|lbfgs",
     "Adam, or L-BFGS (liblbfgs, backtracking line search, fixed samples)"},
    {"iterations", WGF_PARAM_INT, "1000", WGF_P_MIN, 1, 0, NULL, "optimiser iterations"},
    {"samples", WGF_PARAM_CHOICE, "fixed", 0, 0, 0, "fixed|fresh",
     "one fixed training batch, or fresh samples every Adam iteration (L-BFGS: fixed only)"},
    {"lr", WGF_PARAM_DOUBLE, "0.01", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "Adam learning rate"},
    {"lr_end", WGF_PARAM_DOUBLE, NULL, WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "Adam: the learning rate decays geometrically from lr to lr_end (default: lr, constant)"},
    {"beta1", WGF_PARAM_DOUBLE, "0.9", WGF_P_MIN | WGF_P_MAX | WGF_P_MAX_OPEN, 0, 1, NULL, "Adam beta1"},
    {"beta2", WGF_PARAM_DOUBLE, "0.999", WGF_P_MIN | WGF_P_MAX | WGF_P_MAX_OPEN, 0, 1, NULL, "Adam beta2"},
    {"m", WGF_PARAM_INT, "10", WGF_P_MIN | WGF_P_MAX, 1, 1000, NULL, "L-BFGS memory: correction pairs kept"},
    {"epsilon", WGF_PARAM_DOUBLE, "1e-7", WGF_P_MIN, 0, 0, NULL,
     "L-BFGS: stop when |grad loss| <= epsilon max(1, |theta|)"},
    {"warmup", WGF_PARAM_INT, "100", WGF_P_MIN, 0, 0, NULL,
     "L-BFGS: Adam iterations first when a stage does not move (D_k = 0, the identity), where the "
     "action is not differentiable"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin gw_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "genwgp",
    .summary = "GenWGP: the whole path to equilibrium as the stages of one flow, by geometric action",
    .params = gw_params,
    .vtable = &gw_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &gw_plugin : NULL; }
