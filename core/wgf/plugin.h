/* wgf/plugin.h: the plugin ABI.
 *
 * A plugin is a shared object that exports exactly one symbol,
 *
 *     const wgf_plugin *wgf_plugin_entry(unsigned index);
 *
 * returning its index-th descriptor and NULL past the last one. A descriptor
 * names the plugin, its kind, its parameter schema (validated by the core
 * before the plugin sees a value) and a const vtable of the kind's type.
 *
 * Every vtable has the same life cycle: create() from a validated section,
 * any number of calls, destroy(). Functions return WGF_OK or a WGF_E* code
 * and describe a failure in the wgf_error they are given; a plugin never
 * prints, exits or aborts. Plugins may call any libwgf function.
 *
 * Conventions: row-major doubles, sample-major (x[n*d + i]); "accumulate"
 * means += into the caller's array, which the caller has initialised. */
#ifndef WGF_PLUGIN_H
#define WGF_PLUGIN_H

#include <stddef.h>
#include <gsl/gsl_rng.h>

#include "batch.h"
#include "config.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI grows by appending, as LV2's and SUNDIALS' do. Rules for whoever
 * changes this header:
 *
 *  - A new vtable member goes at the END of its vtable, never between
 *    members; existing members never change type or meaning; nothing is
 *    removed. wgf_plugin itself does not change.
 *  - A release that appends members bumps WGF_ABI_VERSION and adds one line
 *    per grown (or new) kind to the loader's layout table (registry.c,
 *    vt_layouts): from that version on, the kind's vtable ends after that
 *    member. A new kind is one such line too.
 *  - Every appended member is optional: NULL means "use the core's fallback"
 *    or "not supported", and whoever needs the member refuses clearly (at
 *    configuration time when it can) when it is NULL.
 *
 * abi_version then says which header a plugin was built with, not whether it
 * may load: the loader copies the vtable of a plugin built with an older
 * version into a core-owned vtable of the current layout, with the members it
 * lacks NULL, and refuses a plugin built with a newer version than its own,
 * naming both. Plugins keep building from the same source against a newer
 * header (designated initialisers leave new members NULL).
 *
 * Version 1: the first.
 * Version 2: energy eval_s and stiffness; map vjp_many; scheme needs; the
 * reference kind; wgf_problem_info output_samples (the core fills the
 * struct, so members appended to it need no layout line: a plugin built
 * without them does not read them).
 * Version 3: map gram_blocks; metric velocity and blocks (the MINRES
 * preconditioner); wgf_problem_info target. */
#define WGF_ABI_VERSION 3u

#define WGF_PLUGIN_ENTRY "wgf_plugin_entry"

#if defined(__GNUC__)
#define WGF_EXPORT __attribute__((visibility("default")))
#else
#define WGF_EXPORT
#endif

typedef enum wgf_kind {
    WGF_ENERGY = 1,
    WGF_MAP = 2,
    WGF_METRIC = 3,
    WGF_SCHEME = 4,
    WGF_REFERENCE = 5
} wgf_kind;

const char *wgf_kind_name(wgf_kind k); /* "energy", "map", "metric", "scheme", "reference" */

typedef struct wgf_plugin {
    unsigned abi_version;    /* WGF_ABI_VERSION */
    wgf_kind kind;
    const char *name;        /* what an experiment writes: plugin = planar */
    const char *summary;     /* one line for `wgf plugins` */
    const wgf_param *params; /* schema, {0}-ended; the core adds `plugin` itself */
    const void *vtable;      /* const wgf_energy_vt *, ... by kind */
} wgf_plugin;

typedef const wgf_plugin *(*wgf_plugin_entry_fn)(unsigned index);

/* What a component may know when it is created. */
typedef struct wgf_dist wgf_dist; /* the initial law, wgf/dist.h */
typedef struct wgf_problem_info {
    size_t dim;              /* d */
    size_t samples;          /* N, the training batch size */
    unsigned long seed;      /* the run's seed */
    const wgf_dist *initial; /* lambda: the reference law of the map */
    /* ---- ABI 2 ---- */
    size_t output_samples;   /* the output batch ([output] samples): a map's tapes hold it too */
    /* The run's target ([target], wgf/samples.h), owned by the core, or NULL
     * when the experiment has no [target]: an energy reads its training set,
     * a reference its held-out set (wgf_target_set). Appended in ABI 3. */
    struct wgf_target *target;
} wgf_problem_info;

/* ---------------------------------------------------------------- energy */

/* needs() flags: what the energy reads from the batch. */
#define WGF_NEEDS_L 0x1u       /* eval reads l */
#define WGF_NEEDS_S 0x2u       /* eval reads s */
#define WGF_WGRAD_NEEDS_L 0x4u /* wgrad / wgrad_vjp read l */
#define WGF_WGRAD_NEEDS_S 0x8u /* wgrad / wgrad_vjp read s */

typedef struct wgf_energy_vt {
    int (*create)(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err);
    void (*destroy)(void *state);
    unsigned (*needs)(void *state);
    /* Monte Carlo estimate F of the energy on the batch, and its partials
     * a = dF/dx (n x d) and c = dF/dl (n), OVERWRITTEN (not accumulated);
     * a or c NULL: not wanted. MATH.md 2. */
    int (*eval)(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err);
    /* Wasserstein gradient g = grad dF/drho at the samples (n x d), overwritten. */
    int (*wgrad)(void *state, const wgf_batch *b, double *g, wgf_error *err);
    /* Reverse pass of wgrad for the cotangent gbar (n x d): ACCUMULATES into
     * xbar (n x d), lbar (n), sbar (n x d); any of them may be NULL when the
     * caller does not want it (then the energy must not need it either). */
    int (*wgrad_vjp)(void *state, const wgf_batch *b, const double *gbar, double *xbar, double *lbar,
                     double *sbar, wgf_error *err);
    /* ---- ABI 2 ---- */
    /* eval with the third partial e = dF/ds (n x d) as well, OVERWRITTEN; a,
     * c, e NULL: not wanted. Required of an energy whose needs() has
     * WGF_NEEDS_S (the core refuses such an energy without it, since the
     * chain rule to parameters would miss the score path); may be NULL
     * otherwise. */
    int (*eval_s)(void *state, const wgf_batch *b, double *F, double *a, double *c, double *e,
                  wgf_error *err);
    /* Optional (NULL, or NaN returned: unknown): lambda_max, the largest
     * eigenvalue of the Hessian of the energy's potential part (its weight
     * included), or an estimate of it from below. Near equilibrium a law's
     * spread relaxes at rate 2 lambda_max, so an explicit step h needs
     * h lambda_max < 1: the core warns before a run of an explicit scheme
     * (WGF_SCHEME_EXPLICIT) that takes a larger step. doc/math.md section 5. */
    double (*stiffness)(void *state);
} wgf_energy_vt;

/* ------------------------------------------------------------------- map */

/* A map T_theta: R^d -> R^d, a composition of S stages (S = 1 for a single
 * transform; a flow of L layers in blocks of B has S = L / B). Stage 0 is the
 * input z with log-determinant 0.
 *
 * Work happens on a tape: a map-owned workspace for up to n samples that
 * forward() fills and the derivative calls reuse without recomputation. The
 * core calls the map on blocks of samples (a few hundred), one tape per
 * block, from several threads at once on different tapes: a map must keep
 * all per-evaluation data on the tape, never in its state.
 *
 * Log-determinant cotangents (ldbar) are cotangents of the cumulative
 * log|det grad T| of a stage, not of the log-density (l = log lambda - ld);
 * the core does that sign. */
typedef struct wgf_map_vt {
    int (*create)(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err);
    void (*destroy)(void *state);
    size_t (*nparams)(void *state); /* P */
    size_t (*nstages)(void *state); /* S >= 1 */
    /* Initial parameters (the identity map unless the section says otherwise). */
    int (*init)(void *state, gsl_rng *rng, double *theta, wgf_error *err);
    /* Parameter constraints (invertibility). WGF_ENUMERIC with a message
     * naming the offending layer and quantity when theta is not admissible. */
    int (*check)(void *state, const double *theta, wgf_error *err);
    /* Optional (may be NULL): move theta onto the admissible set in place. */
    int (*project)(void *state, double *theta, wgf_error *err);

    void *(*tape_create)(void *state, size_t n);
    void (*tape_destroy)(void *state, void *tape);

    /* Evaluate on z (n x d): x[k] (n x d) and ld[k] (n) for k = 0..S receive
     * the stage outputs and cumulative log-determinants; x, ld or any x[k],
     * ld[k] may be NULL (not wanted). The tape keeps what derivatives need. */
    int (*forward)(void *state, const double *theta, size_t n, const double *z, void *tape,
                   double *const *x, double *const *ld, wgf_error *err);
    /* Scores of every stage from s0 = grad log lambda(z) (n x d), after
     * forward on the same tape: s[k] for k = 0..S, NULL entries not wanted.
     * Records on the tape what path_vjp needs for score cotangents. */
    int (*score)(void *state, const double *theta, size_t n, void *tape, const double *s0,
                 double *const *s, wgf_error *err);
    /* Forward mode in theta at the last stage: jx = (dx^(S)/dtheta) v (n x d),
     * and jld = (d ld^(S)/dtheta) v (n) when jld is not NULL. */
    int (*jvp)(void *state, const double *theta, size_t n, void *tape, const double *v, double *jx,
               double *jld, wgf_error *err);
    /* Reverse mode in theta for cotangents on any stages: xbar[k] (n x d),
     * ldbar[k] (n), sbar[k] (n x d) for k = 0..S; an array pointer or any
     * entry may be NULL (zero). sbar needs a score() call on this tape.
     * ACCUMULATES into thetabar (P). */
    int (*path_vjp)(void *state, const double *theta, size_t n, void *tape,
                    const double *const *xbar, const double *const *ldbar,
                    const double *const *sbar, double *thetabar, wgf_error *err);
    /* Optional (may be NULL): for a map that is affine, the exact law of
     * T_theta(Z) for Z ~ N(m0, S0): mean m (d), covariance S (d x d). */
    int (*gaussian_push)(void *state, const double *theta, const double *m0, const double *S0,
                         double *m, double *S, wgf_error *err);
    /* ---- ABI 2 ---- */
    /* Optional (NULL: the core calls path_vjp k times): k cotangent sets on
     * the last stage S in one pass over the tape. Set j is xbar[j] (n x d),
     * ldbar[j] (n), sbar[j] (n x d), any NULL (zero; sbar itself may be
     * NULL); thetabar[j] (P) ACCUMULATES set j's result. Must agree with k
     * path_vjp calls to rounding. */
    int (*vjp_many)(void *state, const double *theta, size_t n, void *tape, size_t k,
                    const double *const *xbar, const double *const *ldbar, const double *const *sbar,
                    double *const *thetabar, wgf_error *err);
    /* ---- ABI 3 ---- */
    /* Optional (NULL: no blocks, so no block preconditioner for this map):
     * the diagonal blocks of the Gram matrix sum_n J_n^T J_n of the last
     * stage (J_n = dx_n^(S)/dtheta, d x P) on the tape after forward. The
     * blocks are the map's groups of `size` consecutive parameters (a layer),
     * size dividing P; the map sets *size, and when G is not NULL
     * ACCUMULATES block j's sums into G[j size^2 ..] (size x size,
     * row-major, both triangles), j < P / size. With G NULL the tape is not
     * read (the call only tells the size). doc/math.md section 4. */
    int (*gram_blocks)(void *state, const double *theta, size_t n, void *tape, size_t *size,
                       double *G, wgf_error *err);
} wgf_map_vt;

/* ---------------------------------------------------------------- metric */

typedef struct wgf_eval wgf_eval; /* the map evaluated on a batch, wgf/problem.h */

typedef struct wgf_solve_stats {
    unsigned iterations;  /* solver iterations (MINRES) or 0 for a direct solve */
    double residual;      /* relative residual |M zeta - rhs| / |rhs| */
    unsigned long products; /* metric-vector products spent */
    int converged;        /* 1 when the tolerance was met */
} wgf_solve_stats;

typedef struct wgf_metric_vt {
    int (*create)(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err);
    void (*destroy)(void *state);
    /* Once per step: the metric at the parameters and samples of ev (forward
     * done). ev stays valid, and unchanged, until the next prepare. */
    int (*prepare)(void *state, wgf_eval *ev, wgf_error *err);
    /* out = M v (P), matrix-free. */
    int (*apply)(void *state, const double *v, double *out, wgf_error *err);
    /* Optional (may be NULL): a metric that solves M zeta = rhs itself. When
     * NULL the core runs MINRES on apply with the section's tol, maxiter and
     * tikhonov. */
    int (*solve)(void *state, const double *rhs, double *zeta, wgf_solve_stats *stats, wgf_error *err);
    /* ---- ABI 3 ---- */
    /* Optional (NULL: J zeta): out (n x d) = the velocity field, at the
     * samples of the batch of the last prepare, that moves the law when
     * theta moves with velocity zeta, as this metric measures it: for G the
     * projection of J zeta on the gradient fields it spans. The velocity
     * misfit (wgf_problem_misfit) is measured against it. */
    int (*velocity)(void *state, const double *zeta, double *out, wgf_error *err);
    /* Optional (NULL, or WGF_EUNSUP returned: the metric has none): the
     * diagonal blocks of M as last prepared, for the core's MINRES
     * preconditioner ([metric] preconditioner): groups of *size consecutive
     * parameters, size dividing P; G (P size doubles, block j at
     * G[j size^2 ..]) OVERWRITTEN when not NULL. Without them the core finds
     * the diagonal of M by probing apply (jacobi) or runs without a
     * preconditioner (block). */
    int (*blocks)(void *state, size_t *size, double *G, wgf_error *err);
} wgf_metric_vt;

/* ---------------------------------------------------------------- scheme */

typedef struct wgf_problem wgf_problem; /* wgf/problem.h */

typedef struct wgf_scheme_vt {
    int (*create)(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err);
    void (*destroy)(void *state);
    /* Own the time or path loop: compose the problem's helpers and report
     * every step with wgf_problem_observe (which says when to stop). */
    int (*run)(void *state, wgf_problem *p, wgf_error *err);
    /* ---- ABI 2 ---- */
    /* Optional (NULL: 0): what the scheme will ask of the problem, as
     * WGF_SCHEME_NEEDS_* flags, read once after create. The core checks them
     * against the energy terms and the initial law at configuration time, so
     * that `wgf check` refuses what the run could not do. */
    unsigned (*needs)(void *state);
} wgf_scheme_vt;

/* scheme needs() flags */
#define WGF_SCHEME_NEEDS_SCORES 0x1u    /* evaluations with scores (WGF_EVAL_SCORE) */
#define WGF_SCHEME_NEEDS_STAGES 0x2u    /* every stage of the map (WGF_EVAL_STAGES) */
#define WGF_SCHEME_NEEDS_WGRAD 0x4u     /* the energy's Wasserstein gradient */
#define WGF_SCHEME_NEEDS_WGRAD_VJP 0x8u /* and its reverse pass */
/* Not a need but a property: the scheme takes explicit steps of size
 * [scheme] step, so the core checks that step against the energies'
 * stiffness before the run (a warning, not an error). */
#define WGF_SCHEME_EXPLICIT 0x10u
/* A property too: the scheme can continue a run from a checkpoint (`wgf run
 * --resume`). Its state between steps is the problem's theta, the step
 * number and what it hands on with every step (wgf_problem_save_state: a
 * step size, counters; an optimiser's memory, if any, starts afresh every
 * step), and
 * it starts at wgf_problem_start_step(p) with theta as the problem holds it,
 * already constrained: a run that starts at step K > 0 computes steps K, K+1,
 * ... exactly as a run from step 0 would. A scheme without it is refused. */
#define WGF_SCHEME_RESUMABLE 0x20u
/* Not a need but a property: the scheme's steps are the iterations of an optimiser (a path
 * found at once), whose loss, reported as the energy, may rise on the way down; the divergence
 * guard then stops only on non-finite numbers. */
#define WGF_SCHEME_OPTIMISER 0x40u
/* ------------------------------------------------------------- reference */

/* The exact or independently computed solution a run is compared with
 * (MATH.md 6 and 7), chosen by [reference] plugin = NAME. What it is given,
 * wgf_reference_setup and wgf_reference_obs, is in wgf/reference.h. */
typedef struct wgf_reference_setup wgf_reference_setup;
typedef struct wgf_reference_obs wgf_reference_obs;

/* needs_samples: the samples' x, without their log-densities l. */
#define WGF_REF_SAMPLES_X 2

typedef struct wgf_reference_vt {
    /* sec: [reference], typed. Refuse (WGF_EINVAL, naming the section's
     * plugin key) a problem the reference does not describe. */
    int (*create)(const wgf_section *sec, const wgf_reference_setup *setup, void **state, wgf_error *err);
    void (*destroy)(void *state);
    /* The diagnostics: history.csv columns and summary.ini [error] keys. */
    size_t (*ncolumns)(void *state);
    const char *(*column)(void *state, size_t i);
    /* Optional (NULL: always, x and l): 1 when eval reads obs->samples,
     * WGF_REF_SAMPLES_X when it reads their x alone (the core then computes
     * no log-densities for them, and l is NULL), 0 when it works from
     * obs->theta alone (exact moments of an affine map). Fixed after create. */
    int (*needs_samples)(void *state);
    /* Diagnostics at the observed state: values[i] for column i (ncolumns
     * of them), NaN where not computed; full = 0 asks for the cheap ones
     * only (every step), 1 for all (the output cadence). */
    int (*eval)(void *state, const wgf_reference_obs *obs, int full, double *values, wgf_error *err);
    /* Optional: reference.csv, drawn over the samples plot, at time t after
     * an eval at t: "# curve" then x1,x2 lines, or "# density" then x1,rho. */
    int (*curve)(void *state, double t, FILE *f, wgf_error *err);
    /* Optional: summary.ini's key for column i (NULL: the column name). */
    const char *(*summary_key)(void *state, size_t i);
    /* Optional: extra "key = value" lines of summary.ini [error]. */
    int (*summary_extra)(void *state, FILE *f, wgf_error *err);
} wgf_reference_vt;

#ifdef __cplusplus
}
#endif
#endif
