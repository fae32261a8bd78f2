/* wgf/problem.h: what schemes and metrics compose.
 *
 * A wgf_problem is a configured run: the initial law, the energy (a sum of
 * terms), the map, the metric, the current parameters and the observer that
 * writes outputs. A scheme is written against these helpers only, never
 * against a particular map, energy or metric.
 *
 * A wgf_eval is the map evaluated on one batch of reference samples: it owns
 * the samples z, the per-block tapes, and the batch(es) an energy sees. The
 * core splits every batch into blocks of WGF_BLOCK samples, runs blocks on
 * threads, and adds block results in block order, so results are identical
 * for any thread count. */
#ifndef WGF_PROBLEM_H
#define WGF_PROBLEM_H

#include <stddef.h>
#include "plugin.h"
#include "run.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Samples per block: the unit of random streams, threads and reductions. */
#define WGF_BLOCK 256

/* Random stream families: block b of step k of family f draws from a GSL
 * generator seeded from (seed, f, k, b). */
enum { WGF_STREAM_TRAIN = 1, WGF_STREAM_OUTPUT = 2, WGF_STREAM_INIT = 3, WGF_STREAM_SCHEME = 4 };

/* ---- the map on a batch ---- */

/* wgf_eval_create flags. Scores are on whatever the flags say when the
 * energy reads s (WGF_NEEDS_S), or when the scheme declared
 * WGF_SCHEME_NEEDS_WGRAD and the Wasserstein gradient reads s. */
#define WGF_EVAL_SCORE 0x1u  /* compute scores s (and keep what sbar needs) */
#define WGF_EVAL_STAGES 0x2u /* keep x, l (and s) of every stage, not only the last */
/* No log-densities: the map's forward is asked for x alone (a planar layer's
 * log1p is half of its forward pass), every batch's l is NULL, and the energy,
 * Wasserstein gradient and log-density cotangents that read l refuse the batch
 * (WGF_EINVAL). x and s are those of a batch with l, to the bit. For a scheme
 * whose loss reads no l: wgf_problem_energy_needs without WGF_WGRAD_NEEDS_L
 * (and without WGF_NEEDS_L where it takes the energy). Flags grow by new
 * bits, with no ABI version (no vtable changes): a plugin built before this
 * one never sets it and gets l as before, and a core before it ignores the bit
 * and computes l all the same. */
#define WGF_EVAL_NO_L 0x4u

wgf_eval *wgf_eval_create(wgf_problem *p, size_t n, unsigned flags, wgf_error *err);
void wgf_eval_free(wgf_eval *ev);

/* Draw z ~ lambda (block b from stream (family, step, b)), with log lambda(z)
 * and its score when the law has them. */
int wgf_eval_draw(wgf_eval *ev, unsigned family, unsigned long step, wgf_error *err);
/* Copy given reference samples (n x d) in; log lambda and score from the law. */
int wgf_eval_set_z(wgf_eval *ev, const double *z, wgf_error *err);

/* Push the samples through T_theta: x, l (not with WGF_EVAL_NO_L; and s with
 * WGF_EVAL_SCORE) of the last stage, or of every stage with WGF_EVAL_STAGES.
 * theta is copied. */
int wgf_eval_forward(wgf_eval *ev, const double *theta, wgf_error *err);

size_t wgf_eval_n(const wgf_eval *ev);
size_t wgf_eval_dim(const wgf_eval *ev);
size_t wgf_eval_nparams(const wgf_eval *ev);
size_t wgf_eval_nstages(const wgf_eval *ev);
const double *wgf_eval_theta(const wgf_eval *ev);
const double *wgf_eval_z(const wgf_eval *ev);
/* The batch of stage k (0..S; S = the model). Stages other than S only with
 * WGF_EVAL_STAGES. Its arrays belong to ev. */
const wgf_batch *wgf_eval_batch(const wgf_eval *ev, size_t stage);

/* jx = J v at the last stage (n x d), J = dx/dtheta. */
int wgf_eval_jvp(wgf_eval *ev, const double *v, double *jx, wgf_error *err);
/* thetabar = sum_n [J_n^T xbar_n + (dl_n/dtheta) lbar_n + (ds_n/dtheta)^T sbar_n]
 * at the last stage (any of xbar, lbar, sbar NULL: zero). OVERWRITES thetabar. */
int wgf_eval_vjp(wgf_eval *ev, const double *xbar, const double *lbar, const double *sbar,
                 double *thetabar, wgf_error *err);
/* The same for cotangents on any stages: arrays of S + 1 pointers (NULL: zero). */
int wgf_eval_path_vjp(wgf_eval *ev, const double *const *xbar, const double *const *lbar,
                      const double *const *sbar, double *thetabar, wgf_error *err);
/* k vjps at the last stage at once: thetabar[j] = wgf_eval_vjp of (xbar[j], lbar[j], sbar[j]),
 * OVERWRITTEN, for j < k. Entries may be NULL (zero), and so may lbar and sbar themselves. One
 * pass over each block's tape when the map has vjp_many, else k passes; the same to rounding. */
int wgf_eval_vjp_many(wgf_eval *ev, size_t k, const double *const *xbar, const double *const *lbar,
                      const double *const *sbar, double *const *thetabar, wgf_error *err);
/* out = (1/n) sum_n J_n^T J_n v: the Lagrangian metric G-hat applied to v,
 * one fused jvp + vjp per block on the stored tapes. OVERWRITES out. */
int wgf_eval_gram(wgf_eval *ev, const double *v, double *out, wgf_error *err);
/* The diagonal blocks of G-hat, (1/n) sum_n J_n^T J_n, in the map's groups of consecutive
 * parameters (a layer; wgf_map_vt gram_blocks): *size is set to the group size q, and when G is
 * not NULL, G (P q doubles, block j at G[j q^2 ..], q x q row-major) is OVERWRITTEN.
 * WGF_EUNSUP when the map cannot form them. */
int wgf_eval_gram_blocks(wgf_eval *ev, size_t *size, double *G, wgf_error *err);

/* ---- the problem ---- */

/* Build a problem from an experiment (opts: file, sets, plugin_path,
 * threads; outdir and quiet are not used): every component created, theta at
 * the map's initial parameters, nothing run and nothing written. For
 * programs and tests that drive the helpers themselves. Configuration errors
 * go to diag (WGF_EINVAL). */
int wgf_problem_create(wgf_problem **p, const wgf_run_opts *opts, wgf_diag *diag, wgf_error *err);
void wgf_problem_free(wgf_problem *p);

const wgf_problem_info *wgf_problem_get_info(const wgf_problem *p);
size_t wgf_problem_nparams(const wgf_problem *p);
size_t wgf_problem_nstages(const wgf_problem *p);
/* The current parameters (P), owned by the problem; a scheme updates them in
 * place and reports each step through wgf_problem_observe. */
double *wgf_problem_theta(wgf_problem *p);
/* What the energy terms need in a batch: WGF_NEEDS_* flags, or-ed. */
unsigned wgf_problem_energy_needs(const wgf_problem *p);

/* Energy on ev's last stage (after wgf_eval_forward): F, and when grad is not
 * NULL its gradient in theta by the chain rule (MATH.md 2), overwriting grad. */
int wgf_problem_energy(wgf_problem *p, wgf_eval *ev, double *F, double *grad, wgf_error *err);
/* Wasserstein gradient g (n x d) of the energy at stage k of ev. */
int wgf_problem_wgrad(wgf_problem *p, wgf_eval *ev, size_t stage, double *g, wgf_error *err);
/* Its reverse pass: accumulates into xbar, lbar, sbar (n x d, n, n x d). */
int wgf_problem_wgrad_vjp(wgf_problem *p, wgf_eval *ev, size_t stage, const double *gbar, double *xbar,
                          double *lbar, double *sbar, wgf_error *err);

/* Natural gradient: prepare the metric at ev and solve M zeta = rhs (the
 * metric's own solve, else MINRES with the [metric] tol, maxiter, tikhonov
 * and preconditioner, the latter built at the first solve after a prepare).
 * A solve that breaks down returns WGF_ENUMERIC; one that only misses the
 * tolerance returns WGF_OK with stats->converged = 0. The same as
 * wgf_problem_metric_prepare then wgf_problem_metric_solve. */
int wgf_problem_natgrad(wgf_problem *p, wgf_eval *ev, const double *rhs, double *zeta,
                        wgf_solve_stats *stats, wgf_error *err);
/* The two halves, for schemes that solve several right-hand sides with one
 * metric (a JKO step, a line search): prepare the metric at ev (forward
 * done; ev must stay unchanged while the metric is used), then any number
 * of solves M zeta = rhs with it. A solve before any prepare is WGF_EINVAL. */
int wgf_problem_metric_prepare(wgf_problem *p, wgf_eval *ev, wgf_error *err);
int wgf_problem_metric_solve(wgf_problem *p, const double *rhs, double *zeta, wgf_solve_stats *stats,
                             wgf_error *err);
/* out = M v with the metric as last prepared. */
int wgf_problem_metric_apply(wgf_problem *p, const double *v, double *out, wgf_error *err);
/* The [metric] Tikhonov term eps (MINRES solves (M + eps I) zeta = rhs), for schemes that use
 * M otherwise than through a solve and must regularise it the same way. */
double wgf_problem_tikhonov(const wgf_problem *p);

/* Map constraints on theta: project in place (when the map can and the map
 * section asks for it), then check. WGF_ENUMERIC names the layer. */
int wgf_problem_constrain(wgf_problem *p, double *theta, wgf_error *err);
/* The check alone, theta untouched: WGF_OK when theta is admissible,
 * WGF_ENUMERIC (naming the layer) when not. For line searches, which try
 * parameters and back off rather than project them. */
int wgf_problem_check(wgf_problem *p, const double *theta, wgf_error *err);

/* A step of the scheme, for history.csv and outputs. */
typedef struct wgf_step_info {
    unsigned long step;  /* 0 = initial state */
    double t;            /* physical time (or path parameter) */
    double energy;       /* F on the training batch */
    double dissipation;  /* -dF/dt estimate, grad F . zeta (NaN when unknown) */
    double step_norm;    /* |theta_{k+1} - theta_k| (NaN when unknown) */
    wgf_solve_stats solve;
    /* The parameters this step describes (P): what every output is computed
     * from. NULL: the problem's own (wgf_problem_theta), for schemes that
     * update those in place; a scheme that keeps its iterate elsewhere (an
     * optimiser's vector) points here. */
    const double *theta;
    /* Filled in by the run's diagnostics monitor for the monitors after it
     * (a scheme leaves them zero): the reference's diagnostics at this step,
     * ndiag names and values, NaN where not computed at this step. */
    size_t ndiag;
    const char *const *diag_names;
    const double *diag;
    /* The velocity misfit of the step (MATH.md 7), set by schemes that
     * compute it (has_misfit nonzero): r = sqrt(E|g - v|^2) on the step's
     * batch, v = J zeta or the metric's velocity field (G: its projection on
     * gradient fields), and r / sqrt(E|g|^2). The core makes both NaN when
     * has_misfit is zero (and for schemes built before these members). */
    int has_misfit;
    double misfit;
    double misfit_rel;
} wgf_step_info;

/* The a posteriori velocity misfit of a step (MATH.md 7), for schemes to
 * report: possible when every energy term has a Wasserstein gradient and,
 * where that gradient reads scores, the initial law has one (0 otherwise,
 * with the reason in *why). */
int wgf_problem_misfit_possible(const wgf_problem *p, const char **why);
/* On ev's batch (forward done, scores on when the gradient reads them): the
 * model moves its law with -v, the flow with -g; sets in info has_misfit =
 * 1, misfit = r = sqrt(E|g - v|^2) and misfit_rel = r / sqrt(E|g|^2). v is
 * J zeta, or the metric's velocity field where it has one (the wasserstein
 * metric's: J zeta projected on its basis gradients), with the metric
 * prepared at ev (it is prepared there when the last prepare was on another
 * batch). g and jx are n x d scratch of the caller's. */
int wgf_problem_misfit(wgf_problem *p, wgf_eval *ev, const double *zeta, double *g, double *jx,
                       wgf_step_info *info, wgf_error *err);

/* Report a step: calls every monitor in the order of registration (outputs,
 * diagnostics, progress, the caller's), then checks for interruption.
 * Returns WGF_EINTR when the run must stop (SIGINT): the scheme returns it
 * after finishing the step. */
int wgf_problem_observe(wgf_problem *p, const wgf_step_info *info, wgf_error *err);

/* ---- monitors (PETSc's TSMonitorSet) ----
 *
 * A monitor sees each reported step through its own context; nothing in the
 * core writes or prints except through monitors. wgf_problem_observe hands
 * all monitors one copy of the scheme's information, with theta filled in,
 * in the order they were added; a monitor may fill in the fields marked
 * above for those after it, and must leave the others alone. A monitor that
 * returns an error stops the run with it. destroy (may be NULL) is called
 * on ctx when the problem is freed, also when adding fails. */
typedef int (*wgf_monitor_fn)(void *ctx, wgf_step_info *info, wgf_error *err);
int wgf_problem_monitor_add(wgf_problem *p, wgf_monitor_fn fn, void *ctx, void (*destroy)(void *ctx),
                            wgf_error *err);

/* ---- path observation ----
 *
 * A path scheme (GenWGP, JKO over a path of stages) reports a whole path at
 * once: stage k = 0..S of the map at theta stands for time (or path
 * parameter) t[k], with energy[k] (NaN when unknown), and optionally the
 * L2(rho) norms of the step into it and of the energy's Wasserstein
 * gradient there, as the scheme computed them. The run's outputs write
 * path.csv (stage, t, energy, D_norm, g_norm, and the reference's
 * diagnostics at t[k] on the output samples of stage k) and
 * samples/stage-KK.csv, and draw plots/path.png. */
typedef struct wgf_path_info {
    unsigned long step;   /* the scheme's step this path belongs to (0 for a single path) */
    size_t nstages;       /* S + 1: entries of t and energy; S = wgf_problem_nstages */
    const double *t;      /* time or path parameter of every stage */
    const double *energy; /* energy of every stage, NaN when unknown */
    const double *theta;  /* the parameters (P); NULL: the problem's own */
    /* appended: NULL (designated initialisers) writes NaN in their columns */
    const double *step_norm; /* |D_k| = sqrt(E|x_k - x_{k-1}|^2), k >= 1 (entry 0 unused) */
    const double *grad_norm; /* |g_k| = sqrt(E|g_k|^2), g_k the energy's Wasserstein gradient */
} wgf_path_info;

typedef int (*wgf_path_monitor_fn)(void *ctx, const wgf_path_info *path, wgf_error *err);
int wgf_problem_observe_path(wgf_problem *p, const wgf_path_info *path, wgf_error *err);
int wgf_problem_path_monitor_add(wgf_problem *p, wgf_path_monitor_fn fn, void *ctx,
                                 void (*destroy)(void *ctx), wgf_error *err);

/* The step a WGF_SCHEME_RESUMABLE scheme starts at: 0, or the checkpoint's
 * step when the run is resumed (theta is then that step's, constrained). */
unsigned long wgf_problem_start_step(const wgf_problem *p);

/* A resumable scheme whose state between steps is more than theta and the
 * step number (a controlled step size, counters of its own) hands it to the
 * core before it reports each step: the n values as they stood at the START
 * of that step, which is what a run resumed there must start from. They are
 * saved with the checkpoint written at that step; a resumed run gets them
 * back from wgf_problem_resume_state (NULL and *n = 0 when the run starts at
 * step 0, or the checkpoint holds none). The values are copied. */
int wgf_problem_save_state(wgf_problem *p, const double *v, size_t n, wgf_error *err);
const double *wgf_problem_resume_state(const wgf_problem *p, size_t *n);

/* Run the scheme on the problem with the monitors added so far (none: no
 * outputs at all). wgf_run does this after adding the run's outputs. */
int wgf_problem_run(wgf_problem *p, wgf_error *err);

/* ---- the problem's public description (for references and outputs) ---- */

/* The validated section of the experiment by name ("initial", "output",
 * "reference", "map", "energy.NAME", ...), NULL when it has none. */
const wgf_section *wgf_problem_section(const wgf_problem *p, const char *name);
/* Energy terms, in file order: term k's plugin name, section (typed for the
 * run's dimension), vtable and state (any output pointer may be NULL). A
 * reference may evaluate the terms on batches of its own. */
size_t wgf_problem_nterms(const wgf_problem *p);
int wgf_problem_term(const wgf_problem *p, size_t k, const char **plugin, const wgf_section **sec,
                     const wgf_energy_vt **vt, void **state);
/* Term k's section validated again for dimension dim (a reference that
 * solves a lower-dimensional problem creates the energy there). Free it
 * with wgf_section_free. */
int wgf_problem_term_section(const wgf_problem *p, size_t k, size_t dim, wgf_section **sec,
                             wgf_error *err);
/* The exact law of T_theta(Z), Z ~ N(m0, S0), for a map that is affine
 * (wgf_problem_has_gaussian_push); WGF_EUNSUP otherwise. */
int wgf_problem_has_gaussian_push(const wgf_problem *p);
int wgf_problem_gaussian_push(const wgf_problem *p, const double *theta, const double *m0,
                              const double *S0, double *m, double *S, wgf_error *err);

#ifdef __cplusplus
}
#endif
#endif
