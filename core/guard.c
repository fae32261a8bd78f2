/* guard.c: divergence detection (guard.h).
 *
 * Three detectors, each a signature that a stable gradient-flow step cannot
 * produce:
 *
 *  - non-finite numbers: the energy, the step norm or a parameter is NaN or
 *    infinite (the overflow has happened);
 *  - energy growth: F - min F exceeds energy_rise (default 10) times the
 *    run's energy scale max(|F_0|, |min F|, F_0 - min F). A gradient flow
 *    only dissipates; the Monte Carlo noise of a batch estimate is a small
 *    fraction of that scale (a fresh batch of N samples moves F by about
 *    std(dF/drho)/sqrt(N)), so a rise of ten scales is never noise;
 *  - geometric growth of the step: the step norm rose at each of the last
 *    growth_steps (default 10) steps by a factor growth_factor (default 100)
 *    in all while the energy also rose. An explicit step beyond the
 *    stability limit amplifies an unstable mode by |1 - h lambda| > 1 every
 *    step; near equilibrium, batch noise makes step norms go up and down, and
 *    ten increases in a row by chance have probability 1/10! (about 3e-7).
 *    Requiring the energy to rise as well keeps a flow that speeds up while
 *    it dissipates (a flow leaving a nearly singular start) from tripping it.
 *
 * Each stops the run with WGF_EDIVERGED naming the step, the quantity and a
 * hint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "internal.h"

static const wgf_guard_limits default_limits = {
    .energy_rise = 10.0,
    .growth_steps = 10,
    .growth_factor = 100.0,
};

void wgf_guard_init(wgf_guard *g, const wgf_guard_limits *lim)
{
    *g = (wgf_guard){.lim = lim ? *lim : default_limits, .norm_prev = NAN, .norm_start = NAN};
}

static const char hint[] = "the explicit step is beyond its stability limit: take a smaller step, "
                           "or an implicit (JKO) scheme";

static double energy_scale(const wgf_guard *g)
{
    double s = fmax(fabs(g->f0), fabs(g->fmin));
    return fmax(s, g->f0 - g->fmin);
}

int wgf_guard_step(wgf_guard *g, unsigned long step, double t, double energy, double step_norm,
                   const double *theta, size_t nparams, wgf_error *err)
{
    if (!isfinite(energy))
        return wgf_error_set(err, WGF_EDIVERGED, "step %lu (t = %g): diverged: the energy is %g; %s",
                             step, t, energy, hint);
    for (size_t j = 0; j < nparams; j++)
        if (!isfinite(theta[j]))
            return wgf_error_set(err, WGF_EDIVERGED,
                                 "step %lu (t = %g): diverged: parameter %zu is %g; %s", step, t, j,
                                 theta[j], hint);
    if (isinf(step_norm))
        return wgf_error_set(err, WGF_EDIVERGED, "step %lu (t = %g): diverged: the step norm is %g; %s",
                             step, t, step_norm, hint);

    if (g->seen++ == 0) {
        g->f0 = g->fmin = energy;
    } else {
        if (energy < g->fmin)
            g->fmin = energy;
        double rise = energy - g->fmin, scale = energy_scale(g);
        if (rise > g->lim.energy_rise * scale)
            return wgf_error_set(err, WGF_EDIVERGED,
                                 "step %lu (t = %g): diverged: the energy rose to %.6g from its "
                                 "minimum %.6g (more than %g times the energy scale %.3g; a gradient "
                                 "flow dissipates); %s",
                                 step, t, energy, g->fmin, g->lim.energy_rise, scale, hint);
    }
    if (isnan(step_norm))
        return WGF_OK; /* no step (the final state): nothing to compare */
    if (isfinite(g->norm_prev) && step_norm > g->norm_prev) {
        if (g->rises++ == 0) {
            g->norm_start = g->norm_prev;
            g->e_start = g->e_prev;
        }
    } else {
        g->rises = 0;
    }
    g->norm_prev = step_norm;
    g->e_prev = energy;
    if (g->rises >= g->lim.growth_steps && g->norm_start > 0 &&
        step_norm > g->lim.growth_factor * g->norm_start && energy > g->e_start)
        return wgf_error_set(err, WGF_EDIVERGED,
                             "step %lu (t = %g): diverged: the step norm grew from %.3g to %.3g over "
                             "the last %u steps while the energy rose from %.6g to %.6g; %s",
                             step, t, g->norm_start, step_norm, g->rises, g->e_start, energy, hint);
    return WGF_OK;
}

typedef struct {
    wgf_guard g;
    size_t nparams;
} guard_monitor;

static int guard_monitor_step(void *ctx, wgf_step_info *info, wgf_error *err)
{
    guard_monitor *m = ctx;
    return wgf_guard_step(&m->g, info->step, info->t, info->energy, info->step_norm, info->theta, m->nparams,
                          err);
}

int wgf_guard_add(wgf_problem *p, const wgf_section *run_sec, wgf_guard **guard, wgf_error *err)
{
    if (guard)
        *guard = NULL;
    if (run_sec && strcmp(wgf_section_string(run_sec, "divergence"), "ignore") == 0)
        return WGF_OK;
    guard_monitor *m = malloc(sizeof *m);
    if (!m)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    /* an optimiser's loss is not a dissipated energy: only the non-finite checks apply */
    static const wgf_guard_limits optimiser = {.energy_rise = INFINITY, .growth_steps = 1,
                                               .growth_factor = INFINITY};
    wgf_guard_init(&m->g, (p->scheme_needs & WGF_SCHEME_OPTIMISER) ? &optimiser : NULL);
    m->nparams = wgf_problem_nparams(p);
    int rc = wgf_problem_monitor_add(p, guard_monitor_step, m, free, err);
    if (rc == WGF_OK && guard)
        *guard = &m->g;
    return rc;
}
