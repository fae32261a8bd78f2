/* guard.h: divergence detection for time-stepping schemes (core only).
 *
 * A Wasserstein gradient flow dissipates its energy, and a stable explicit
 * step shrinks as the flow nears equilibrium. An explicit step beyond the
 * stability limit instead grows a mode geometrically: the energy climbs and
 * the step norm grows by a constant factor every step, until the numbers
 * overflow. The guard watches the reported steps and stops a run that shows
 * either signature, long before the overflow, instead of letting it finish
 * with a meaningless result. */
#ifndef WGF_GUARD_H
#define WGF_GUARD_H

#include <stddef.h>

#include "wgf/error.h"
#include "wgf/problem.h"

/* Thresholds (see guard.c for why these values). */
typedef struct wgf_guard_limits {
    double energy_rise;    /* stop when F - min F > energy_rise * energy scale */
    unsigned growth_steps; /* ... or the step norm grew in each of this many steps */
    double growth_factor;  /* ... by this factor in all */
} wgf_guard_limits;

typedef struct wgf_guard {
    wgf_guard_limits lim;
    unsigned long seen;   /* steps reported */
    double f0, fmin;      /* first and smallest energy */
    double norm_prev;     /* last finite step norm */
    double norm_start;    /* step norm where the current run of increases began */
    unsigned rises;       /* consecutive increases of the step norm */
    double e_prev;        /* energy at the last step with a step norm */
    double e_start;       /* energy where the current run of increases began */
} wgf_guard;

void wgf_guard_init(wgf_guard *g, const wgf_guard_limits *lim); /* lim NULL: the defaults */

/* One reported step: its index and time, the energy, the step norm (NaN when
 * the step has none, e.g. the final state) and the parameters. WGF_EDIVERGED
 * with a message naming the step, the quantity and a hint when the run is
 * diverging; WGF_OK otherwise. */
int wgf_guard_step(wgf_guard *g, unsigned long step, double t, double energy, double step_norm,
                   const double *theta, size_t nparams, wgf_error *err);

/* The guard as a monitor on a run (after its outputs), unless [run]
 * divergence = ignore. *guard (if not NULL) gets its state, owned by the
 * problem (NULL when ignored), for checkpoints to save and restore. */
int wgf_guard_add(wgf_problem *p, const wgf_section *run_sec, wgf_guard **guard, wgf_error *err);

#endif
