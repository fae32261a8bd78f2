/* wgf/reference.h: exact and independently computed solutions (MATH.md 6).
 *
 * What a reference plugin (plugins/references, the wgf_reference_vt of
 * wgf/plugin.h) is given, and the numerical routines the shipped ones are
 * built from. Row-major doubles throughout. */
#ifndef WGF_REFERENCE_H
#define WGF_REFERENCE_H

#include <stddef.h>
#include <gsl/gsl_rng.h>
#include "batch.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- What a reference plugin is given ---- */

typedef struct wgf_problem wgf_problem; /* wgf/problem.h */

/* At create: the problem, read through its public accessors
 * (wgf_problem_get_info for d, N, seed and the initial law;
 * wgf_problem_section for [initial]; wgf_problem_nterms / wgf_problem_term
 * for the energy's terms, their plugin names, typed sections and vtables;
 * wgf_problem_gaussian_push for an affine map), and the output samples'
 * draws from the initial law, on which every diagnostic is computed. */
struct wgf_reference_setup {
    const wgf_problem *problem;
    size_t nout;       /* output samples */
    const double *z;   /* their reference draws (nout x d) */
};

/* At each observation. */
struct wgf_reference_obs {
    double t;                 /* time (or path parameter) */
    double energy;            /* the model's energy (NaN when unknown) */
    const double *theta;      /* the parameters; NULL for an intermediate stage of a path, whose law is
                               * not T_theta(Z) (then samples is given) */
    const wgf_batch *samples; /* the output samples of the model (nout), or NULL when the plugin's
                               * needs_samples said 0 and theta is given */
};

/* ---- Ornstein-Uhlenbeck: FPE with V = 1/2 (x-mu)^T Sigma^{-1} (x-mu) ----
 * A = Sigma^{-1}; m(t) = mu + e^{-At}(m0 - mu),
 * C(t) = e^{-At} C0 e^{-At} + D Sigma (I - e^{-2At}). m, C: d and d x d. */
int wgf_ou_moments(size_t d, const double *mu, const double *Sigma, double D, const double *m0,
                   const double *C0, double t, double *m, double *C, wgf_error *err);

/* ---- Barenblatt profile of d_t rho = Lap rho^m (m > 1) ----
 * rho(t, x) = t^-alpha (C - k |x|^2 t^(-2 beta))_+^p, p = 1/(m-1),
 * alpha = d/(d(m-1)+2), beta = alpha/d, k = alpha(m-1)/(2 m d), unit mass. */
typedef struct wgf_barenblatt {
    size_t d;
    double m, p, alpha, beta, k, C;
} wgf_barenblatt;

int wgf_barenblatt_init(wgf_barenblatt *b, size_t d, double m, wgf_error *err);
double wgf_barenblatt_density(const wgf_barenblatt *b, double t, const double *x);
/* log density (-inf outside the support) and its gradient in x (n samples). */
void wgf_barenblatt_log_density(const wgf_barenblatt *b, double t, size_t n, const double *x,
                                double *lp);
void wgf_barenblatt_score(const wgf_barenblatt *b, double t, size_t n, const double *x, double *s);
/* Exact samples at time t: x = t^beta sqrt(C/k) r theta, theta uniform on the
 * sphere, r^2 ~ Beta(d/2, p+1). */
void wgf_barenblatt_sample(const wgf_barenblatt *b, double t, gsl_rng *rng, size_t n, double *x);
double wgf_barenblatt_radius(const wgf_barenblatt *b, double t);        /* support radius */
double wgf_barenblatt_second_moment(const wgf_barenblatt *b, double t); /* E|x|^2 */
/* Free energy 1/(m-1) int rho^m at t (PME energy of the exact solution). */
double wgf_barenblatt_energy(const wgf_barenblatt *b, double t);

/* ---- Aggregation, W = |x|^4/4 - |x|^2/2 ----
 * Steady state: uniform on the sphere of radius sqrt(d/(2(d+1))) about the
 * conserved centre of mass, energy -d/(8(d+1)). */
double wgf_aggregation_ring_radius(size_t d);
double wgf_aggregation_ring_energy(size_t d);
/* Energy of N(mu, s^2 I): (s^4 d(d+2) - s^2 d)/2. */
double wgf_aggregation_gaussian_energy(size_t d, double s2);

/* ---- 1-D Fokker-Planck by finite volumes ----
 * d_t rho = d_x (rho V'(x) + D d_x rho) on [a, b] with no-flux boundaries,
 * Chang-Cooper / Scharfetter-Gummel fluxes, backward Euler in time: mass
 * conserving and positivity preserving. */
typedef struct wgf_fv1d wgf_fv1d;

typedef double (*wgf_fn1)(double x, void *user);

int wgf_fv1d_create(wgf_fv1d **fv, double a, double b, size_t cells, double D, wgf_fn1 V, void *user,
                    wgf_error *err);
void wgf_fv1d_free(wgf_fv1d *fv);
/* Initial density (normalised by the solver to unit mass). */
int wgf_fv1d_set(wgf_fv1d *fv, wgf_fn1 rho0, void *user, wgf_error *err);
/* Advance to time t (>= current) with steps of at most dt. */
int wgf_fv1d_advance(wgf_fv1d *fv, double t, double dt, wgf_error *err);
double wgf_fv1d_time(const wgf_fv1d *fv);
size_t wgf_fv1d_cells(const wgf_fv1d *fv);
const double *wgf_fv1d_centres(const wgf_fv1d *fv);
const double *wgf_fv1d_density(const wgf_fv1d *fv); /* cell averages */
double wgf_fv1d_mass(const wgf_fv1d *fv);
double wgf_fv1d_mean(const wgf_fv1d *fv);
double wgf_fv1d_quantile(const wgf_fv1d *fv, double u); /* inverse CDF, u in (0, 1) */
/* 1-D W2 between the n samples xs (any order) and the density: by quantiles. */
double wgf_fv1d_w2_samples(const wgf_fv1d *fv, size_t n, const double *xs);

/* ---- Particle references ---- */
/* Euler-Maruyama for dX = -grad V(X) dt + sqrt(2 D) dW: n particles, steps of dt to t. */
typedef void (*wgf_gradfn)(size_t d, const double *x, double *g, void *user);
int wgf_particles_fpe(size_t n, size_t d, double *x, wgf_gradfn gradV, void *user, double D, double t,
                      double dt, gsl_rng *rng, wgf_error *err);
/* The N-body ODE x_n' = -(1/(N-1)) sum_k grad W(x_n - x_k), W = |y|^4/4 - |y|^2/2,
 * by RK4 with steps of dt to t. */
int wgf_particles_aggregation(size_t n, size_t d, double *x, double t, double dt, wgf_error *err);

#ifdef __cplusplus
}
#endif
#endif
