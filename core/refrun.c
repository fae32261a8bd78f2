/* refrun.c: the reference a run is compared with, and its diagnostics
 * (MATH.md 6 and 7). One [reference] type per solution family:
 *   ou           quadratic FPE from a Gaussian: closed-form moments
 *   barenblatt   PME from a Barenblatt profile: exact profile at t0 + t
 *   aggregation  quartic aggregation: the ring steady state
 *   fpe1d        separable FPE from a product law: 1-D finite volumes
 *   particles    any sum of fpe and aggregation terms: interacting particles
 *                integrated alongside (Euler-Maruyama), drift from the
 *                energies' own gradients
 * Each type checks at set-up that the run is one it describes, adds its
 * columns to history.csv, its figures to summary.ini and the final table,
 * and a curve for the samples plot. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "internal.h"

typedef enum { REF_NONE, REF_OU, REF_BARENBLATT, REF_AGGREGATION, REF_FPE1D, REF_PARTICLES } ref_type;

/* One group of coordinates with the same initial marginal (fpe1d). */
typedef struct {
    double mean, var;
    wgf_fv1d *fv;
} fv_group;

struct wgf_refrun {
    wgf_problem *p;
    ref_type type;
    size_t d;
    int exact_moments; /* affine map of a Gaussian or Barenblatt law */
    const char *columns;
    size_t ncols;
    double *val; /* the last values of the columns */
    int *have;   /* whether val[i] was computed at the last evaluation */

    /* ou */
    double *mu, *Sigma, D;
    const double *m0, *C0;
    double *m_model, *C_model, *m_ref, *C_ref;
    /* barenblatt */
    wgf_barenblatt bb;
    double t0;
    double *exact;   /* exact samples at t0 (n_out x d), scaled to tau on use */
    double *scaled;  /* scratch */
    size_t w2_samples;
    /* aggregation */
    double *centre;
    /* fpe1d */
    fv_group *groups;
    size_t ngroups;
    size_t *group_of; /* coordinate -> group */
    double *column;   /* scratch: one coordinate of the samples */
    const wgf_energy_vt *vt1;
    void *state1; /* the energy in dimension 1, for V(x) */
    wgf_section *sec1;
    double fv_dt;
    /* particles */
    size_t np;
    double *px, *pa, *pterm, *pc, *pl, pt, pdt, noise;
    gsl_rng *prng;
};

static const char *const ou_cols[] = {"err_mean", "err_cov", "w2"};
static const char *const bb_cols[] = {"m2", "m2_ref", "radius", "radius_ref", "sw2", "w2", "energy_ref"};
static const char *const agg_cols[] = {"centre_drift", "radius_mean", "radius_sd", "radius_ref",
                                       "energy_ref", "energy_gap"};
static const char *const fpe_cols[] = {"w2_marg_mean", "w2_marg_max", "mean_err"};
static const char *const part_cols[] = {"mean_err", "sw2", "w2"};

static const char *const *col_names(const wgf_refrun *r)
{
    switch (r->type) {
    case REF_OU: return ou_cols;
    case REF_BARENBLATT: return bb_cols;
    case REF_AGGREGATION: return agg_cols;
    case REF_FPE1D: return fpe_cols;
    case REF_PARTICLES: return part_cols;
    default: return NULL;
    }
}

void wgf_refrun_free(wgf_refrun *r)
{
    if (!r)
        return;
    wgf_free(r->mu);
    wgf_free(r->Sigma);
    wgf_free(r->m_model);
    wgf_free(r->C_model);
    wgf_free(r->m_ref);
    wgf_free(r->C_ref);
    wgf_free(r->exact);
    wgf_free(r->scaled);
    wgf_free(r->centre);
    wgf_free(r->column);
    for (size_t g = 0; g < r->ngroups; g++)
        wgf_fv1d_free(r->groups[g].fv);
    free(r->groups);
    free(r->group_of);
    if (r->state1)
        r->vt1->destroy(r->state1);
    wgf_section_free(r->sec1);
    wgf_free(r->px);
    wgf_free(r->pa);
    wgf_free(r->pterm);
    wgf_free(r->pc);
    wgf_free(r->pl);
    if (r->prng)
        gsl_rng_free(r->prng);
    free(r->val);
    free(r->have);
    free(r);
}

/* The single energy term the reference describes, by plugin name. */
static const wgf_energy_term *single_term(const wgf_problem *p, const char *plugin)
{
    if (p->nterms != 1 || strcmp(p->terms[0].plugin->name, plugin) != 0)
        return NULL;
    return &p->terms[0];
}

static int weight_is_one(const wgf_section *sec)
{
    return !wgf_section_has(sec, "weight") || wgf_section_double(sec, "weight") == 1.0;
}

static int ref_error(const wgf_problem *p, wgf_error *err, const char *what)
{
    return wgf_error_set(err, WGF_EINVAL, "%s: reference.type: %s", wgf_config_file(p->cfg), what);
}

static int setup_ou(wgf_refrun *r, wgf_error *err)
{
    wgf_problem *p = r->p;
    const wgf_energy_term *t = single_term(p, "fpe");
    if (!t || strcmp(wgf_section_string(t->sec, "potential"), "quadratic") != 0 || !weight_is_one(t->sec))
        return ref_error(p, err, "ou needs a single energy, fpe with potential = quadratic (weight 1)");
    if (wgf_dist_gaussian(p->dist, &r->m0, &r->C0) != WGF_OK)
        return ref_error(p, err, "ou needs initial.type = gaussian");
    size_t d = r->d, len;
    r->mu = wgf_alloc_doubles(d);
    r->Sigma = wgf_alloc_doubles(d * d);
    if (!r->mu || !r->Sigma)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    memcpy(r->mu, wgf_section_vector(t->sec, "mu", &len), d * sizeof(double));
    memcpy(r->Sigma, wgf_section_matrix(t->sec, "sigma"), d * d * sizeof(double));
    r->D = wgf_section_double(t->sec, "diffusion");
    r->exact_moments = p->map->gaussian_push != NULL;
    return WGF_OK;
}

static int setup_barenblatt(wgf_refrun *r, size_t nout, wgf_error *err)
{
    wgf_problem *p = r->p;
    const wgf_energy_term *t = single_term(p, "pme");
    if (!t || !weight_is_one(t->sec))
        return ref_error(p, err, "barenblatt needs a single energy, pme (weight 1)");
    if (strcmp(wgf_dist_type(p->dist), "barenblatt") != 0)
        return ref_error(p, err, "barenblatt needs initial.type = barenblatt");
    double m = wgf_section_double(t->sec, "m");
    if (m != wgf_section_double(p->initial_sec, "m"))
        return ref_error(p, err, "barenblatt needs the same m in [energy] and [initial]");
    r->t0 = wgf_section_double(p->initial_sec, "t0");
    int rc = wgf_barenblatt_init(&r->bb, r->d, m, err);
    if (rc != WGF_OK)
        return rc;
    r->w2_samples = (size_t)wgf_section_int(p->reference_sec, "w2_samples");
    r->exact = wgf_alloc_doubles(nout * r->d);
    r->scaled = wgf_alloc_doubles(nout * r->d);
    if (!r->exact || !r->scaled)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    /* exact samples at t0, from a stream of their own; at tau they are
     * these scaled by (tau/t0)^beta (self-similarity, MATH.md 6) */
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!g)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    wgf_rng_set(g, p->info.seed, WGF_STREAM_OUTPUT, 1, 0);
    wgf_barenblatt_sample(&r->bb, r->t0, g, nout, r->exact);
    gsl_rng_free(g);
    r->exact_moments = p->map->gaussian_push != NULL;
    return WGF_OK;
}

static int setup_aggregation(wgf_refrun *r, wgf_eval *out, wgf_error *err)
{
    wgf_problem *p = r->p;
    const wgf_energy_term *t = single_term(p, "aggregation");
    if (!t || !weight_is_one(t->sec))
        return ref_error(p, err, "aggregation needs a single energy, aggregation (weight 1)");
    const char *k = wgf_section_string(t->sec, "kernel");
    int quartic = strcmp(k, "quartic") == 0 ||
                  (strcmp(k, "power") == 0 && wgf_section_double(t->sec, "a") == 4.0 &&
                   wgf_section_double(t->sec, "b") == 2.0);
    if (!quartic)
        return ref_error(p, err, "aggregation needs the quartic kernel W = |x|^4/4 - |x|^2/2");
    r->centre = wgf_alloc_doubles(r->d);
    if (!r->centre)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    const double *m0;
    if (wgf_dist_gaussian(p->dist, &m0, NULL) == WGF_OK)
        memcpy(r->centre, m0, r->d * sizeof(double));
    else { /* the conserved centre of mass: the initial samples' mean */
        size_t n = wgf_eval_n(out);
        const double *z = wgf_eval_z(out);
        for (size_t k2 = 0; k2 < n; k2++)
            for (size_t i = 0; i < r->d; i++)
                r->centre[i] += z[k2 * r->d + i] / (double)n;
    }
    return WGF_OK;
}

/* V(x) in one dimension through the energy plugin itself: a batch of one
 * sample with l = 0 has F = V(x) (MATH.md 2, FPE row). */
static double potential_1d(double x, void *user)
{
    wgf_refrun *r = user;
    double l = 0, F = NAN;
    wgf_batch b = {.n = 1, .d = 1, .x = &x, .l = &l, .s = NULL};
    if (r->vt1->eval(r->state1, &b, &F, NULL, NULL, NULL) != WGF_OK)
        return NAN;
    return F;
}

typedef struct {
    double mean, var;
} gauss1;

static double gauss_density(double x, void *user)
{
    const gauss1 *g = user;
    return exp(-0.5 * (x - g->mean) * (x - g->mean) / g->var) / sqrt(2 * M_PI * g->var);
}

static int setup_fpe1d(wgf_refrun *r, wgf_error *err)
{
    wgf_problem *p = r->p;
    const wgf_energy_term *t = single_term(p, "fpe");
    const char *pot = t ? wgf_section_string(t->sec, "potential") : "";
    if (!t || !weight_is_one(t->sec) ||
        !(strcmp(pot, "quartic") == 0 ||
          (strcmp(pot, "expression") == 0 && wgf_section_has(t->sec, "separable"))))
        return ref_error(p, err, "fpe1d needs a single energy, fpe with a separable potential "
                                 "(quartic, or expression with separable = ...)");
    const double *m0, *C0;
    size_t d = r->d;
    if (wgf_dist_gaussian(p->dist, &m0, &C0) != WGF_OK)
        return ref_error(p, err, "fpe1d needs initial.type = gaussian with a diagonal covariance");
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            if (i != j && C0[i * d + j] != 0.0)
                return ref_error(p, err, "fpe1d needs a diagonal initial covariance (a product law)");
    /* The energy again, in dimension 1, for its potential. */
    wgf_diag diag;
    wgf_diag_init(&diag);
    const wgf_param *core = wgf_core_schema("energy");
    const wgf_param *schemas[3] = {core, t->plugin->params, NULL};
    r->sec1 = wgf_config_section(p->cfg, wgf_section_name(t->sec), schemas, 1, &diag);
    if (!r->sec1) {
        int rc = ref_error(p, err, diag.n ? diag.msg[0] : "cannot read the energy in dimension 1");
        wgf_diag_free(&diag);
        return rc;
    }
    wgf_diag_free(&diag);
    wgf_problem_info info1 = p->info;
    info1.dim = 1;
    info1.samples = 1;
    r->vt1 = t->vt;
    int rc = r->vt1->create(r->sec1, &info1, &r->state1, err);
    if (rc != WGF_OK)
        return rc;
    r->D = wgf_section_double(t->sec, "diffusion");
    double lo = wgf_section_double(p->reference_sec, "fv_low"), hi = wgf_section_double(p->reference_sec, "fv_high");
    size_t cells = (size_t)wgf_section_int(p->reference_sec, "fv_cells");
    r->fv_dt = wgf_section_double(p->reference_sec, "fv_dt");
    if (!(hi > lo))
        return wgf_section_error(p->reference_sec, "fv_high", err, "must exceed fv_low");
    r->groups = calloc(d, sizeof *r->groups);
    r->group_of = calloc(d, sizeof *r->group_of);
    if (!r->groups || !r->group_of)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    for (size_t i = 0; i < d; i++) {
        double mean = m0[i], var = C0[i * d + i];
        size_t g = 0;
        while (g < r->ngroups && !(r->groups[g].mean == mean && r->groups[g].var == var))
            g++;
        r->group_of[i] = g;
        if (g < r->ngroups)
            continue;
        fv_group *G = &r->groups[r->ngroups++];
        G->mean = mean;
        G->var = var;
        rc = wgf_fv1d_create(&G->fv, lo, hi, cells, r->D, potential_1d, r, err);
        if (rc != WGF_OK)
            return rc;
        gauss1 g1 = {mean, var};
        if ((rc = wgf_fv1d_set(G->fv, gauss_density, &g1, err)) != WGF_OK)
            return rc;
    }
    return WGF_OK;
}

/* Particles from the initial law, moved by x' = -N a(x) + sqrt(2 D) dW: for
 * the fpe and aggregation energies -N a_n is the drift of particle n (minus
 * grad V, minus the mean pair force; MATH.md 2 and 6) and D the diffusion of
 * the fpe terms. */
static int setup_particles(wgf_refrun *r, wgf_error *err)
{
    wgf_problem *p = r->p;
    for (size_t i = 0; i < p->nterms; i++) {
        const char *name = p->terms[i].plugin->name;
        if (strcmp(name, "fpe") == 0)
            r->noise += wgf_section_double(p->terms[i].sec, "diffusion") *
                        (wgf_section_has(p->terms[i].sec, "weight") ? wgf_section_double(p->terms[i].sec, "weight") : 1.0);
        else if (strcmp(name, "aggregation") != 0)
            return ref_error(p, err, "particles handles fpe and aggregation energies only");
    }
    r->np = (size_t)wgf_section_int(p->reference_sec, "particles");
    r->pdt = wgf_section_double(p->reference_sec, "particle_dt");
    r->w2_samples = (size_t)wgf_section_int(p->reference_sec, "w2_samples");
    size_t d = r->d;
    r->px = wgf_alloc_doubles(r->np * d);
    r->pa = wgf_alloc_doubles(r->np * d);
    r->pterm = wgf_alloc_doubles(r->np * d);
    r->pc = wgf_alloc_doubles(r->np);
    r->pl = wgf_alloc_doubles(r->np);
    r->prng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r->px || !r->pa || !r->pterm || !r->pc || !r->pl || !r->prng)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    wgf_rng_set(r->prng, p->info.seed, WGF_STREAM_OUTPUT, 3, 0);
    return wgf_dist_sample(p->dist, r->prng, r->np, r->px, err);
}

static int particles_advance(wgf_refrun *r, double t, wgf_error *err)
{
    wgf_problem *p = r->p;
    size_t n = r->np, d = r->d;
    wgf_batch b = {.n = n, .d = d, .x = r->px, .l = r->pl, .s = NULL};
    while (r->pt < t - 1e-12) {
        double dt = fmin(r->pdt, t - r->pt), F;
        for (size_t k = 0; k < n * d; k++)
            r->pa[k] = 0;
        for (size_t i = 0; i < p->nterms; i++) {
            const wgf_energy_term *tm = &p->terms[i];
            int rc = tm->vt->eval(tm->state, &b, &F, r->pterm, r->pc, err);
            if (rc != WGF_OK)
                return rc;
            for (size_t k = 0; k < n * d; k++)
                r->pa[k] += r->pterm[k];
        }
        double sd = sqrt(2 * r->noise * dt);
        for (size_t k = 0; k < n * d; k++)
            r->px[k] += -(double)n * r->pa[k] * dt + (sd > 0 ? sd * gsl_ran_gaussian_ziggurat(r->prng, 1.0) : 0);
        r->pt += dt;
    }
    return WGF_OK;
}

int wgf_refrun_create(wgf_refrun **out, wgf_problem *p, wgf_eval *samples, wgf_error *err)
{
    *out = NULL;
    wgf_refrun *r = calloc(1, sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    r->p = p;
    r->d = p->info.dim;
    const char *type = wgf_section_string(p->reference_sec, "type");
    size_t d = r->d, nout = wgf_eval_n(samples);
    int rc = WGF_OK;
    r->m_model = wgf_alloc_doubles(d);
    r->C_model = wgf_alloc_doubles(d * d);
    r->m_ref = wgf_alloc_doubles(d);
    r->C_ref = wgf_alloc_doubles(d * d);
    r->column = wgf_alloc_doubles(nout);
    if (!r->m_model || !r->C_model || !r->m_ref || !r->C_ref || !r->column)
        rc = wgf_error_set(err, WGF_ENOMEM, "out of memory");
    else if (strcmp(type, "ou") == 0) {
        r->type = REF_OU;
        rc = setup_ou(r, err);
    } else if (strcmp(type, "barenblatt") == 0) {
        r->type = REF_BARENBLATT;
        rc = setup_barenblatt(r, nout, err);
    } else if (strcmp(type, "aggregation") == 0) {
        r->type = REF_AGGREGATION;
        rc = setup_aggregation(r, samples, err);
    } else if (strcmp(type, "fpe1d") == 0) {
        r->type = REF_FPE1D;
        rc = setup_fpe1d(r, err);
    } else if (strcmp(type, "particles") == 0) {
        r->type = REF_PARTICLES;
        rc = setup_particles(r, err);
    }
    switch (r->type) {
    case REF_OU: r->ncols = 3; break;
    case REF_BARENBLATT: r->ncols = 7; break;
    case REF_AGGREGATION: r->ncols = 6; break;
    case REF_FPE1D: r->ncols = 3; break;
    case REF_PARTICLES: r->ncols = 3; break;
    default: r->ncols = 0;
    }
    r->val = calloc(r->ncols + 1, sizeof *r->val);
    r->have = calloc(r->ncols + 1, sizeof *r->have);
    if (rc == WGF_OK && (!r->val || !r->have))
        rc = wgf_error_set(err, WGF_ENOMEM, "out of memory");
    for (size_t i = 0; r->val && i < r->ncols; i++)
        r->val[i] = NAN;
    if (rc != WGF_OK) {
        wgf_refrun_free(r);
        return rc;
    }
    *out = r;
    return WGF_OK;
}

size_t wgf_refrun_ncols(const wgf_refrun *r) { return r->ncols; }
const char *wgf_refrun_col(const wgf_refrun *r, size_t i) { return col_names(r)[i]; }
const char *wgf_refrun_type(const wgf_refrun *r)
{
    static const char *const names[] = {"none", "ou", "barenblatt", "aggregation", "fpe1d", "particles"};
    return names[r->type];
}

/* Exact moments of the model for an affine map: the initial law's mean and
 * covariance pushed through A z + b (Barenblatt: mean 0, covariance
 * E|x|^2/d I). */
static int push_moments(wgf_refrun *r, const double *theta, wgf_error *err)
{
    wgf_problem *p = r->p;
    size_t d = r->d;
    if (r->type == REF_OU)
        return p->map->gaussian_push(p->map_state, theta, r->m0, r->C0, r->m_model, r->C_model, err);
    double *m0 = r->m_ref, *C0 = r->C_ref; /* scratch */
    memset(m0, 0, d * sizeof(double));
    memset(C0, 0, d * d * sizeof(double));
    double v = wgf_barenblatt_second_moment(&r->bb, r->t0) / (double)d;
    for (size_t i = 0; i < d; i++)
        C0[i * d + i] = v;
    return p->map->gaussian_push(p->map_state, theta, m0, C0, r->m_model, r->C_model, err);
}

static void set_val(wgf_refrun *r, size_t i, double v)
{
    r->val[i] = v;
    r->have[i] = 1;
}

int wgf_refrun_eval(wgf_refrun *r, double t, double energy, const double *theta, const wgf_batch *b,
                    int full, wgf_error *err)
{
    size_t d = r->d;
    for (size_t i = 0; i < r->ncols; i++)
        r->have[i] = 0;
    int rc = WGF_OK;
    switch (r->type) {
    case REF_NONE: return WGF_OK;
    case REF_OU:
        if (r->exact_moments)
            rc = push_moments(r, theta, err);
        else
            wgf_moments(b->n, d, b->x, r->m_model, r->C_model);
        if (rc == WGF_OK)
            rc = wgf_ou_moments(d, r->mu, r->Sigma, r->D, r->m0, r->C0, t, r->m_ref, r->C_ref, err);
        if (rc != WGF_OK)
            return rc;
        set_val(r, 0, wgf_dist_l2(d, r->m_model, r->m_ref));
        set_val(r, 1, wgf_dist_l2(d * d, r->C_model, r->C_ref));
        double w2;
        if ((rc = wgf_w2_gaussian(d, r->m_model, r->C_model, r->m_ref, r->C_ref, &w2, err)) != WGF_OK)
            return rc;
        set_val(r, 2, w2);
        return WGF_OK;
    case REF_BARENBLATT: {
        double tau = r->t0 + t, m2 = 0, rad = 0;
        if (r->exact_moments) {
            if ((rc = push_moments(r, theta, err)) != WGF_OK)
                return rc;
            for (size_t i = 0; i < d; i++)
                m2 += r->m_model[i] * r->m_model[i] + r->C_model[i * d + i];
        }
        for (size_t n = 0; n < b->n; n++) {
            double q = 0;
            for (size_t i = 0; i < d; i++)
                q += b->x[n * d + i] * b->x[n * d + i];
            if (!r->exact_moments)
                m2 += q / (double)b->n;
            rad = fmax(rad, sqrt(q));
        }
        double scale = pow(tau / r->t0, r->bb.beta);
        for (size_t k = 0; k < b->n * d; k++)
            r->scaled[k] = scale * r->exact[k];
        set_val(r, 0, m2);
        set_val(r, 1, wgf_barenblatt_second_moment(&r->bb, tau));
        set_val(r, 2, rad);
        set_val(r, 3, wgf_barenblatt_radius(&r->bb, tau));
        gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
        if (!g)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
        /* the same directions every time: a smooth curve in t */
        wgf_rng_set(g, r->p->info.seed, WGF_STREAM_OUTPUT, 2, 0);
        double sw2 = NAN;
        rc = wgf_w2_sliced(b->n, d, b->x, r->scaled, 64, g, &sw2, err);
        gsl_rng_free(g);
        if (rc != WGF_OK)
            return rc;
        set_val(r, 4, sw2);
        if (full) {
            size_t nw = b->n < r->w2_samples ? b->n : r->w2_samples;
            double w2a;
            if ((rc = wgf_w2_assignment(nw, d, b->x, r->scaled, &w2a, err)) != WGF_OK)
                return rc;
            set_val(r, 5, w2a);
        }
        set_val(r, 6, wgf_barenblatt_energy(&r->bb, tau));
        return WGF_OK;
    }
    case REF_AGGREGATION: {
        double mean[64], *m = d <= 64 ? mean : r->m_model, rm, rs;
        memset(m, 0, d * sizeof(double));
        for (size_t n = 0; n < b->n; n++)
            for (size_t i = 0; i < d; i++)
                m[i] += b->x[n * d + i] / (double)b->n;
        wgf_radial_stats(b->n, d, b->x, r->centre, &rm, &rs);
        set_val(r, 0, wgf_dist_l2(d, m, r->centre));
        set_val(r, 1, rm);
        set_val(r, 2, rs);
        set_val(r, 3, wgf_aggregation_ring_radius(d));
        set_val(r, 4, wgf_aggregation_ring_energy(d));
        set_val(r, 5, energy - wgf_aggregation_ring_energy(d));
        return WGF_OK;
    }
    case REF_PARTICLES: {
        if ((rc = particles_advance(r, t, err)) != WGF_OK)
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
        set_val(r, 0, sqrt(merr));
        gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
        if (!g)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
        wgf_rng_set(g, r->p->info.seed, WGF_STREAM_OUTPUT, 2, 0);
        double sw2 = NAN;
        rc = wgf_w2_sliced(n, d, b->x, r->px, 64, g, &sw2, err);
        gsl_rng_free(g);
        if (rc != WGF_OK)
            return rc;
        set_val(r, 1, sw2);
        if (full) {
            size_t nw = n < r->w2_samples ? n : r->w2_samples;
            double w2a;
            if ((rc = wgf_w2_assignment(nw, d, b->x, r->px, &w2a, err)) != WGF_OK)
                return rc;
            set_val(r, 2, w2a);
        }
        return WGF_OK;
    }
    case REF_FPE1D: {
        double sum = 0, worst = 0, merr = 0;
        for (size_t g = 0; g < r->ngroups; g++)
            if ((rc = wgf_fv1d_advance(r->groups[g].fv, t, r->fv_dt, err)) != WGF_OK)
                return rc;
        for (size_t i = 0; i < d; i++) {
            double mi = 0;
            for (size_t n = 0; n < b->n; n++) {
                r->column[n] = b->x[n * d + i];
                mi += r->column[n] / (double)b->n;
            }
            const wgf_fv1d *fv = r->groups[r->group_of[i]].fv;
            double w = wgf_fv1d_w2_samples(fv, b->n, r->column);
            sum += w;
            worst = fmax(worst, w);
            double dm = mi - wgf_fv1d_mean(fv);
            merr += dm * dm;
        }
        set_val(r, 0, sum / (double)d);
        set_val(r, 1, worst);
        set_val(r, 2, sqrt(merr));
        return WGF_OK;
    }
    }
    return WGF_OK;
}

int wgf_refrun_needs_samples(const wgf_refrun *r)
{
    return r->type != REF_NONE && !(r->type == REF_OU && r->exact_moments);
}

void wgf_refrun_row(const wgf_refrun *r, wgf_strbuf *row)
{
    for (size_t i = 0; i < r->ncols; i++) {
        if (r->have[i])
            wgf_strbuf_printf(row, ",%.8g", r->val[i]);
        else
            wgf_strbuf_printf(row, ",");
    }
}

double wgf_refrun_value(const wgf_refrun *r, const char *col)
{
    for (size_t i = 0; i < r->ncols; i++)
        if (strcmp(col_names(r)[i], col) == 0)
            return r->have[i] ? r->val[i] : NAN; /* not computed at the last evaluation */
    return NAN;
}

/* The curve drawn over the samples plot: "# curve" (x1, x2) or "# density"
 * (x1 and the reference marginal density of coordinate 1). */
int wgf_refrun_curve(wgf_refrun *r, double t, wgf_strbuf *csv, wgf_error *err)
{
    (void)err;
    size_t d = r->d;
    switch (r->type) {
    case REF_OU:
        if (d == 1) {
            double m = r->m_ref[0], v = r->C_ref[0];
            wgf_strbuf_printf(csv, "# density\n");
            for (int k = 0; k <= 400; k++) {
                double x = m - 5 * sqrt(v) + 10 * sqrt(v) * k / 400.0;
                wgf_strbuf_printf(csv, "%.8g,%.8g\n", x, exp(-0.5 * (x - m) * (x - m) / v) / sqrt(2 * M_PI * v));
            }
        } else { /* the 2-sigma ellipse of (x1, x2) */
            double a = r->C_ref[0], bb = r->C_ref[1], c = r->C_ref[d + 1];
            double tr = a + c, det = a * c - bb * bb, disc = sqrt(fmax(0, tr * tr / 4 - det));
            double l1 = tr / 2 + disc, l2 = fmax(0, tr / 2 - disc), th = 0.5 * atan2(2 * bb, a - c);
            wgf_strbuf_printf(csv, "# curve\n");
            for (int k = 0; k <= 200; k++) {
                double s = 2 * M_PI * k / 200.0, u = 2 * sqrt(l1) * cos(s), v = 2 * sqrt(l2) * sin(s);
                wgf_strbuf_printf(csv, "%.8g,%.8g\n", r->m_ref[0] + u * cos(th) - v * sin(th),
                                  r->m_ref[1] + u * sin(th) + v * cos(th));
            }
        }
        return WGF_OK;
    case REF_BARENBLATT: {
        double tau = r->t0 + t, R = wgf_barenblatt_radius(&r->bb, tau);
        if (d == 1) {
            wgf_strbuf_printf(csv, "# density\n");
            for (int k = 0; k <= 400; k++) {
                double x = -1.1 * R + 2.2 * R * k / 400.0;
                wgf_strbuf_printf(csv, "%.8g,%.8g\n", x, wgf_barenblatt_density(&r->bb, tau, &x));
            }
        } else {
            wgf_strbuf_printf(csv, "# curve\n");
            for (int k = 0; k <= 200; k++)
                wgf_strbuf_printf(csv, "%.8g,%.8g\n", R * cos(2 * M_PI * k / 200.0), R * sin(2 * M_PI * k / 200.0));
        }
        return WGF_OK;
    }
    case REF_AGGREGATION: {
        double R = wgf_aggregation_ring_radius(d);
        if (d == 1)
            return WGF_OK;
        wgf_strbuf_printf(csv, "# curve\n");
        for (int k = 0; k <= 200; k++)
            wgf_strbuf_printf(csv, "%.8g,%.8g\n", r->centre[0] + R * cos(2 * M_PI * k / 200.0),
                              r->centre[1] + R * sin(2 * M_PI * k / 200.0));
        return WGF_OK;
    }
    case REF_FPE1D: {
        const wgf_fv1d *fv = r->groups[r->group_of[0]].fv;
        const double *xc = wgf_fv1d_centres(fv), *rho = wgf_fv1d_density(fv);
        wgf_strbuf_printf(csv, "# density\n");
        for (size_t k = 0; k < wgf_fv1d_cells(fv); k++)
            wgf_strbuf_printf(csv, "%.8g,%.8g\n", xc[k], rho[k]);
        return WGF_OK;
    }
    default: return WGF_OK;
    }
}

/* [error] of summary.ini, and the figures of the final table. */
void wgf_refrun_summary(const wgf_refrun *r, wgf_strbuf *ini, wgf_run_result *res)
{
    if (r->type == REF_NONE)
        return;
    /* for ou, summary.ini keeps the names mean, cov, w2 */
    static const char *const ou_keys[] = {"mean", "cov", "w2"};
    wgf_strbuf_printf(ini, "\n[error]\nreference = %s\n", wgf_refrun_type(r));
    for (size_t i = 0; i < r->ncols; i++) {
        const char *name = r->type == REF_OU ? ou_keys[i] : col_names(r)[i];
        double v = r->have[i] ? r->val[i] : NAN; /* not computed: no stale value */
        if (isfinite(v))
            wgf_strbuf_printf(ini, "%s = %.10g\n", name, v);
        else
            wgf_strbuf_printf(ini, "%s = nan\n", name);
        if (res->nfigures < WGF_RUN_FIGURES) {
            snprintf(res->figures[res->nfigures].name, sizeof res->figures[0].name, "%s", name);
            res->figures[res->nfigures++].value = v;
        }
    }
    if (r->type == REF_OU || r->type == REF_BARENBLATT)
        wgf_strbuf_printf(ini, "moments = %s\n", r->exact_moments ? "exact (affine map)" : "samples");
}
