/* particles.c: an interacting-particle reference for any sum of fpe terms
 * and energies whose eval reads the samples alone, potentials and
 * interactions such as aggregation (MATH.md 6): particles from the initial law moved by
 * x' = -N a(x) + sqrt(2 D) dW, where a = dF/dx is the energies' own partial
 * on the particle batch, so -N a_n is the drift of particle n (minus grad V,
 * minus the mean pair force; MATH.md 2), and D the fpe terms' diffusion
 * times their weights. Integrated by Euler-Maruyama (first order) or by
 * Heun's predictor-corrector (second order on the drift; with noise the
 * stochastic Heun scheme, one Gaussian increment for both stages). Mean
 * error, sliced W2 (every observation) and exact-assignment W2 (the output
 * cadence). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refcommon.h"
#include <gsl/gsl_randist.h>
#include <wgf/diagnostics.h>
#include <wgf/dist.h>
#include <wgf/rng.h>


typedef struct {
    const wgf_problem *p;
    size_t d, np, w2_samples;
    unsigned long seed;
    int heun;
    double *px, *pa, *pterm, *pc, *pl, pt, pdt, tmax, noise;
    double *pa2, *pxp, *pxi; /* Heun: the corrector's partials, the predictor, the step's increments */
    gsl_rng *prng;
} particles;

static const char *const part_cols[] = {"mean_err", "sw2", "w2"};

static void part_destroy(void *state)
{
    particles *r = state;
    wgf_free(r->px);
    wgf_free(r->pa);
    wgf_free(r->pterm);
    wgf_free(r->pc);
    wgf_free(r->pl);
    wgf_free(r->pa2);
    wgf_free(r->pxp);
    wgf_free(r->pxi);
    if (r->prng)
        gsl_rng_free(r->prng);
    free(r);
}

/* The particles at t = 0: draws of the initial law from the reference's own
 * stream, so that starting again gives the same particles and noise. */
static int part_start(particles *r, wgf_error *err)
{
    const wgf_problem_info *info = wgf_problem_get_info(r->p);
    wgf_rng_set(r->prng, info->seed, WGF_STREAM_OUTPUT, 3, 0);
    r->pt = 0;
    return wgf_dist_sample(info->initial, r->prng, r->np, r->px, err);
}

static int part_create(const wgf_section *sec, const wgf_reference_setup *setup, void **state,
                       wgf_error *err)
{
    const wgf_problem *p = setup->problem;
    double noise = 0;
    for (size_t i = 0; i < wgf_problem_nterms(p); i++) {
        const char *name;
        const wgf_section *ts;
        const wgf_energy_vt *vt;
        void *es;
        wgf_problem_term(p, i, &name, &ts, &vt, &es);
        /* Any term whose eval reads x alone (a potential, an interaction) drifts the particles by
         * its own partial -N a; fpe's entropy is the Brownian noise. */
        unsigned reads = vt->needs ? vt->needs(es) & (WGF_NEEDS_L | WGF_NEEDS_S) : 0;
        if (strcmp(name, "fpe") == 0) {
            noise += wgf_section_double(ts, "diffusion") *
                     (wgf_section_has(ts, "weight") ? wgf_section_double(ts, "weight") : 1.0);
        } else if (reads) {
            char what[256];
            snprintf(what, sizeof what,
                     "particles handles fpe terms and energies whose eval reads the samples alone "
                     "(potentials, interactions); energy '%s' reads the model's %s",
                     name, (reads & WGF_NEEDS_L) ? "log-density" : "score");
            return ref_refuse(sec, err, what);
        }
    }
    particles *r = calloc(1, sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    const wgf_problem_info *info = wgf_problem_get_info(p);
    r->p = p;
    r->noise = noise;
    r->seed = info->seed;
    size_t d = r->d = info->dim;
    r->np = (size_t)wgf_section_int(sec, "particles");
    r->pdt = wgf_section_double(sec, "particle_dt");
    r->tmax = wgf_section_double(sec, "t_max");
    r->w2_samples = (size_t)wgf_section_int(sec, "w2_samples");
    r->heun = strcmp(wgf_section_string(sec, "integrator"), "heun") == 0;
    r->px = wgf_alloc_doubles(r->np * d);
    r->pa = wgf_alloc_doubles(r->np * d);
    r->pterm = wgf_alloc_doubles(r->np * d);
    r->pc = wgf_alloc_doubles(r->np);
    r->pl = wgf_alloc_doubles(r->np);
    if (r->heun) {
        r->pa2 = wgf_alloc_doubles(r->np * d);
        r->pxp = wgf_alloc_doubles(r->np * d);
        r->pxi = wgf_alloc_doubles(r->np * d);
    }
    r->prng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r->px || !r->pa || !r->pterm || !r->pc || !r->pl || !r->prng ||
        (r->heun && (!r->pa2 || !r->pxp || !r->pxi))) {
        part_destroy(r);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    int rc = part_start(r, err);
    if (rc != WGF_OK) {
        part_destroy(r);
        return rc;
    }
    *state = r;
    return WGF_OK;
}

/* a = sum of the terms' partials dF/dx on the particles at x (n x d) */
static int partials(particles *r, double *x, double *a, wgf_error *err)
{
    size_t nd = r->np * r->d;
    wgf_batch b = {.n = r->np, .d = r->d, .x = x, .l = r->pl, .s = NULL};
    double F;
    for (size_t k = 0; k < nd; k++)
        a[k] = 0;
    for (size_t i = 0; i < wgf_problem_nterms(r->p); i++) {
        const wgf_energy_vt *vt;
        void *es;
        wgf_problem_term(r->p, i, NULL, NULL, &vt, &es);
        int rc = vt->eval(es, &b, &F, r->pterm, r->pc, err);
        if (rc != WGF_OK)
            return rc;
        for (size_t k = 0; k < nd; k++)
            a[k] += r->pterm[k];
    }
    return WGF_OK;
}

/* Heun: x~ = x + f(x) dt + dW, x <- x + (f(x) + f(x~)) dt / 2 + dW with f = -N a, the same
 * increment dW in both stages (additive noise: strong order 1, and order 2 without noise) */
static int advance(particles *r, double t, wgf_error *err)
{
    size_t nd = r->np * r->d;
    const double N = (double)r->np;
    while (r->pt < t - 1e-12) {
        double dt = fmin(r->pdt, t - r->pt);
        int rc = partials(r, r->px, r->pa, err);
        if (rc != WGF_OK)
            return rc;
        double sd = sqrt(2 * r->noise * dt);
        if (!r->heun) {
            for (size_t k = 0; k < nd; k++)
                r->px[k] += -N * r->pa[k] * dt + (sd > 0 ? sd * gsl_ran_gaussian_ziggurat(r->prng, 1.0) : 0);
        } else {
            for (size_t k = 0; k < nd; k++) {
                r->pxi[k] = sd > 0 ? sd * gsl_ran_gaussian_ziggurat(r->prng, 1.0) : 0;
                r->pxp[k] = r->px[k] - N * r->pa[k] * dt + r->pxi[k];
            }
            if ((rc = partials(r, r->pxp, r->pa2, err)) != WGF_OK)
                return rc;
            for (size_t k = 0; k < nd; k++)
                r->px[k] += -N * 0.5 * (r->pa[k] + r->pa2[k]) * dt + r->pxi[k];
        }
        r->pt += dt;
    }
    return WGF_OK;
}

static size_t part_ncolumns(void *state)
{
    (void)state;
    return 3;
}

static const char *part_column(void *state, size_t i)
{
    (void)state;
    return part_cols[i];
}

static int part_eval(void *state, const wgf_reference_obs *obs, int full, double *values, wgf_error *err)
{
    particles *r = state;
    const wgf_batch *b = obs->samples;
    size_t d = r->d;
    if (!b)
        return wgf_error_set(err, WGF_EINVAL, "particles: needs the output samples");
    /* a path scheme's recovered stage times are not bounded by a t_end: one near
     * equilibrium can be in the thousands, hours of particle steps */
    if (obs->t > r->tmax)
        return wgf_error_set(err, WGF_EINVAL, "particles: time %g is beyond t_max = %g (%.3g more steps of "
                             "%g; raise reference.t_max to integrate that far)",
                             obs->t, r->tmax, (obs->t - r->pt) / r->pdt, r->pdt);
    int rc;
    /* a path scheme's stage times move between outputs, back as well as
     * forward: an earlier time starts again from the initial particles */
    if (obs->t < r->pt - 1e-12 && (rc = part_start(r, err)) != WGF_OK)
        return rc;
    rc = advance(r, obs->t, err);
    if (rc != WGF_OK)
        return rc;
    size_t n = b->n < r->np ? b->n : r->np;
    double merr = 0;
    for (size_t i = 0; i < d; i++) {
        double mm = 0, mp = 0;
        for (size_t k = 0; k < b->n; k++)
            mm += b->x[k * d + i] / (double)b->n;
        for (size_t k = 0; k < r->np; k++)
            mp += r->px[k * d + i] / (double)r->np;
        merr += (mm - mp) * (mm - mp);
    }
    values[0] = sqrt(merr);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!g)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    wgf_rng_set(g, r->seed, WGF_STREAM_OUTPUT, 2, 0);
    rc = wgf_w2_sliced(n, d, b->x, r->px, 64, g, &values[1], err);
    gsl_rng_free(g);
    if (rc != WGF_OK)
        return rc;
    if (full) {
        size_t nw = n < r->w2_samples ? n : r->w2_samples;
        if ((rc = wgf_w2_assignment(nw, d, b->x, r->px, &values[2], err)) != WGF_OK)
            return rc;
    }
    return WGF_OK;
}

static const wgf_reference_vt part_vt = {
    .create = part_create,
    .destroy = part_destroy,
    .ncolumns = part_ncolumns,
    .column = part_column,
    .needs_samples = ref_samples_x,
    .eval = part_eval,
};

static const wgf_param part_params[] = {
    {"particles", WGF_PARAM_INT, "2000", WGF_P_MIN, 2, 0, NULL, "how many particles"},
    {"particle_dt", WGF_PARAM_DOUBLE, "1e-3", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "time step of the integrator"},
    {"integrator", WGF_PARAM_CHOICE, "euler", 0, 0, 0, "euler|heun",
     "euler: Euler-Maruyama, first order in particle_dt; heun: the trapezoidal predictor-corrector, "
     "two drift evaluations a step, second order without noise (with noise the stochastic Heun "
     "scheme, one Gaussian increment for both stages)"},
    {"t_max", WGF_PARAM_DOUBLE, "100", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "latest time the particles are integrated to; later observations are not computed"},
    {"w2_samples", WGF_PARAM_INT, "1000", WGF_P_MIN, 2, 0, NULL,
     "samples in the exact-assignment W2 (at the output cadence)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin part_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_REFERENCE,
    .name = "particles",
    .summary = "fpe, potential and interaction energies: interacting particles integrated alongside",
    .params = part_params,
    .vtable = &part_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &part_plugin : NULL; }
