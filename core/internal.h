/* internal.h: the core's own declarations, shared by its files only. */
#ifndef WGF_INTERNAL_H
#define WGF_INTERNAL_H

#include <stdio.h>

#include "wgf/wgf.h"
#include "guard.h"
#include "strbuf.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* An energy term: one [energy] or [energy.NAME] section. */
typedef struct wgf_energy_term {
    const wgf_plugin *plugin;
    const char *path;
    const wgf_energy_vt *vt;
    wgf_section *sec;
    void *state;
    unsigned needs; /* its needs() after create */
} wgf_energy_term;

typedef struct wgf_observer wgf_observer; /* paths.c: the [run] keys that name places. Checks run.name (a name, not a
 * path) and builds p->reg with the experiment's plugin_path (ini_path,
 * resolved; NULL: none) placed as opts says. */
int wgf_problem_registry(wgf_problem *p, const wgf_run_opts *opts, const char *ini_path, wgf_diag *diag,
                         wgf_error *err);

/* observer.c */

/* A monitor added to the problem: a step monitor (fn) or a path one. */
typedef struct wgf_monitor_entry {
    wgf_monitor_fn fn;
    wgf_path_monitor_fn path_fn;
    void *ctx;
    void (*destroy)(void *ctx);
} wgf_monitor_entry;

struct wgf_problem {
    wgf_problem_info info;
    wgf_config *cfg;
    wgf_registry *reg;

    wgf_section *run_sec, *initial_sec, *output_sec, *reference_sec;
    wgf_section *target_sec; /* [target], or NULL when the experiment has none */
    wgf_target *target;      /* built from target_sec; info.target */
    wgf_dist *dist;

    size_t nterms;
    wgf_energy_term *terms;
    unsigned energy_needs;

    const wgf_plugin *map_plugin, *metric_plugin, *scheme_plugin;
    const char *map_path, *metric_path, *scheme_path;
    const wgf_map_vt *map;
    const wgf_metric_vt *metric;
    const wgf_scheme_vt *scheme;
    wgf_section *map_sec, *metric_sec, *scheme_sec;
    void *map_state, *metric_state, *scheme_state;
    int map_project; /* the map's project() is used after every update */
    unsigned scheme_needs; /* WGF_SCHEME_NEEDS_* of the scheme, after create */

    size_t nparams, nstages;
    double *theta;

    /* MINRES settings from [metric] */
    double tol, tikhonov;
    unsigned maxiter;
    int precond;     /* WGF_PC_*: [metric] preconditioner */
    int pc_ready;    /* pc is built for the metric as last prepared */
    size_t pc_size;  /* its blocks' size: 0 none, 1 diagonal, q blocks of q */
    size_t pc_cap;   /* doubles allocated in pc */
    double *pc;      /* P q: the blocks' Cholesky factors, or the diagonal's inverse */
    unsigned long metric_products;
    wgf_eval *metric_ev; /* the eval the metric was last prepared on */

    /* scratch for energy partials: n x d and n, sized for the largest eval */
    size_t scratch_n;
    double *a, *c, *a_sum, *c_sum;
    double *e, *e_sum; /* n x d: dF/ds, when a term reads s */

    /* [reference]: the plugin, or NULL for none (then reference_keys: the
     * keys any reference plugin on the path accepts) */
    const wgf_plugin *reference_plugin;
    const char *reference_path;
    const wgf_reference_vt *reference;
    wgf_param *reference_keys;

    wgf_monitor_entry *monitors;
    size_t nmonitors, capmonitors;
    volatile sig_atomic_t *interrupt;
    int threads;
    unsigned long start_step; /* the first step the scheme computes: > 0 when resuming */
    /* a resumable scheme's own state (wgf_problem_save_state): the values
     * it handed on with the step it reports next, and those it resumes from */
    double *step_state, *resume_state;
    size_t step_nstate, step_capstate, resume_nstate;
};

/* [metric] preconditioner */
enum { WGF_PC_NONE, WGF_PC_JACOBI, WGF_PC_BLOCK };

/* problem.c: the energy partials' scratch freed (setup.c's teardown). */
void wgf_problem_scratch_free(wgf_problem *p);

/* eval.c */
double *wgf_eval_scratch_logq0(wgf_eval *ev);
/* wgf_eval_create flag: scores only when the other flags ask for them, not
 * for what the configuration's energy reads. The output samples take it:
 * references and sample files read x and l, and a score pass over the
 * output samples was a tenth of the map's work on them. */
#define WGF_EVAL_AS_ASKED 0x100u
/* wgf_eval_create flag: no derivative calls on this batch (they refuse), so a
 * tape per thread, reused block after block, in place of one per block. The
 * output samples take it: 50000 samples in 10-D through 20 planar layers had
 * 84 MB of tapes, streamed through memory at every diagnostic. */
#define WGF_EVAL_FORWARD_ONLY 0x200u
/* No log-densities from now on (before the first forward): the map's forward
 * is asked for x alone, and every batch's l is NULL. The output samples take
 * it when the reference reads x alone: a planar layer's log1p was half of
 * the forward pass. */
void wgf_eval_drop_l(wgf_eval *ev);

/* setup.c: the core's own schemas (of [run], [metric], [output] ...) */
const wgf_param *wgf_core_schema(const char *section);
/* The reference plugin and its section; 0 when [reference] names none. */
int wgf_problem_reference(const wgf_problem *p, const wgf_plugin **plugin, const wgf_section **sec);

/* registry.c: wgf_registry_list over the directories that do not come from an experiment's
 * plugin_path (appended last), and only the files whose names start with prefix (NULL: all):
 * what the core may load without being asked to by name. */
int wgf_registry_list_own(wgf_registry *reg, const char *prefix, wgf_registry_visit_fn visit, void *user,
                          wgf_diag *warn, wgf_error *err);

/* checkpoint.c: the state a run continues from (`wgf run --resume`): the
 * state at the START of step `step`, so that a resumed run computes that
 * step again and reports it as the uninterrupted run did. Everything is
 * what the scheme, the monitors and summary.ini need; random streams are
 * stateless (seeded from the step) and need nothing. */
typedef struct wgf_checkpoint {
    unsigned long step;            /* the step computed next */
    double t;                      /* its time (for messages) */
    double wall;                   /* seconds of wall time spent so far */
    unsigned long metric_products; /* before the step */
    unsigned long steps_seen;      /* history rows before the step */
    double first_energy;           /* step 0's, when steps_seen > 0 */
    unsigned long diag_failed, diag_first;
    char diag_msg[WGF_ERROR_MSG_MAX];
    int has_guard; /* the divergence guard's state after the step before */
    wgf_guard guard;
    size_t nparams;
    double *theta;      /* theta_step */
    size_t ntimes;
    double *diag_times; /* the times the reference was evaluated at, in order */
    char *config;       /* the resolved configuration's sections (config.ini without comments) */
    size_t config_len;
    char *history;      /* history.csv's header and rows before the step */
    size_t history_len;
    char *path;         /* path.csv as it stood before the step (path schemes) */
    size_t path_len;
    size_t nstate;
    double *state; /* the scheme's own state at the start of the step (wgf_problem_save_state) */
} wgf_checkpoint;

/* DIR/checkpoint, written atomically; read back into c (wgf_checkpoint_free
 * after either outcome). A missing file is WGF_EINVAL "no checkpoint". */
int wgf_checkpoint_write(const char *dir, const wgf_checkpoint *c, wgf_error *err);
int wgf_checkpoint_read(const char *dir, wgf_checkpoint *c, wgf_error *err);
void wgf_checkpoint_free(wgf_checkpoint *c);
/* The first key (as "section.key") whose value differs between two resolved
 * configurations, with both values (NULL where absent); 0 when they agree,
 * 1 when a key differs, WGF_ENOMEM as -1. */
int wgf_checkpoint_config_diff(const char *a, size_t alen, const char *b, size_t blen, char **key,
                               char **va, char **vb);
/* Before a resumed run writes to dir: remove summary.ini and reference.csv
 * (an interrupted run's), and the step files the resumed run will write
 * again or the uninterrupted run would not have written: those of step
 * `from` on, and those off the output cadence (an interrupted run's last),
 * and the temporary files of writes a kill cut short. */
int wgf_checkpoint_clear_after(const char *dir, unsigned long from, unsigned long every, wgf_error *err);
/* Whether dir holds a finished run (summary.ini says status = finished). */
int wgf_outdir_finished(const char *dir);

/* diagnostics.c: a ascending in place (n doubles), by the radix sort the 1-D
 * and sliced W2 use; WGF_ENOMEM without room for its 2 n keys. */
int wgf_sort_doubles(size_t n, double *a);

/* observer.c: the run's outputs, as monitors added to p (history.csv,
 * samples and theta files, diagnostics against the reference, path.csv),
 * and the final ones (summary.ini, reference.csv, plots) by
 * wgf_observer_finish. The problem owns the observer once created. */
int wgf_observer_create(wgf_observer **obs, wgf_problem *p, const char *outdir, wgf_error *err);
/* The same for a resumed run: continues from ck (history rows, counters,
 * the reference advanced to ck's time in the same increments) without
 * clearing the directory or rewriting config.ini. */
int wgf_observer_resume(wgf_observer **obs, wgf_problem *p, const char *outdir, const wgf_checkpoint *ck,
                        wgf_error *err);
/* The divergence guard whose state checkpoints carry (NULL: none). */
void wgf_observer_set_guard(wgf_observer *obs, wgf_guard *g);
/* The resolved configuration's sections, as config.ini holds them after
 * its comment lines (malloc'd into *text). */
int wgf_observer_config_text(const wgf_problem *p, char **text, size_t *len, wgf_error *err);
/* Final outputs (history, summary, plots) after the scheme returned status. */
int wgf_observer_finish(wgf_observer *obs, int status, const wgf_error *run_err, wgf_run_result *res,
                        wgf_error *err);
/* A numerical failure names its step: prefix "step K" (the step being
 * computed) unless the message already names one. */
void wgf_observer_name_step(const wgf_observer *obs, wgf_error *e);

/* refrun.c: the reference plugin's host: its diagnostics as columns */
typedef struct wgf_refrun wgf_refrun;
/* NULL in *r (and WGF_OK) when the problem has no reference. samples: the
 * output samples (their draws are the reference's setup). */
int wgf_refrun_create(wgf_refrun **r, const wgf_problem *p, const wgf_eval *samples, wgf_error *err);
void wgf_refrun_free(wgf_refrun *r);
size_t wgf_refrun_ncols(const wgf_refrun *r);
const char *const *wgf_refrun_cols(const wgf_refrun *r);
const double *wgf_refrun_values(const wgf_refrun *r);
const char *wgf_refrun_type(const wgf_refrun *r);
int wgf_refrun_needs_samples(const wgf_refrun *r);
/* 1 when the reference reads the output samples' log-densities l. */
int wgf_refrun_needs_l(const wgf_refrun *r);
/* Diagnostics at time t (energy: the state's energy; theta NULL for an
 * intermediate path stage), on the output samples b (NULL when not
 * needed); full: also the costly ones (output cadence). */
int wgf_refrun_eval(wgf_refrun *r, double t, double energy, const double *theta, const wgf_batch *b,
                    int full, wgf_error *err);
void wgf_refrun_row(const wgf_refrun *r, wgf_strbuf *row);
double wgf_refrun_value(const wgf_refrun *r, const char *col);
int wgf_refrun_curve(wgf_refrun *r, double t, wgf_strbuf *csv, wgf_error *err);
int wgf_refrun_summary(const wgf_refrun *r, wgf_strbuf *ini, wgf_run_result *res, wgf_error *err);

/* path.c: path text, malloc'd (NULL: out of memory). dir + "/" + name;
 * and the first n bytes of path taken relative to the directory of file
 * (as is when path is absolute or file names no directory). */
char *wgf_path_join(const char *dir, const char *name);
char *wgf_path_beside(const char *file, const char *path, size_t n);

/* files.c: atomic files and directories */
int wgf_mkdir_p(const char *path, wgf_error *err);
/* Before a run writes to dir: remove what an earlier run there wrote
 * (summary.ini first, config, history, reference, samples, theta, plots)
 * and the temporary files of killed writes. Only wgf's own file names. */
int wgf_outdir_clear(const char *dir, wgf_error *err);
/* Write the whole buffer to path via a temporary file and rename. */
int wgf_write_atomic(const char *path, const char *data, size_t len, wgf_error *err);
/* mpi.c: the blocks of a batch over MPI ranks (one rank, owning every block, without MPI) */
/* Whether this rank writes the run's files: rank 0 (every rank holds the same results). */
int wgf_mpi_writer(void);
/* This rank's blocks of a batch of nblocks: [*b0, *b1). */
void wgf_mpi_blocks(size_t nblocks, size_t *b0, size_t *b1);
/* Every rank's share of buf made whole on every rank: buf holds nunits rows of unit doubles,
 * per_block rows to a block (the last block may have fewer), and each rank has filled the
 * rows of its own blocks. */
int wgf_mpi_gather(double *buf, size_t nunits, size_t unit, size_t per_block, size_t nblocks, wgf_error *err);
/* The first failing block's error in block order over all ranks (berr: per block, each rank
 * having filled its own), the same on every rank; WGF_OK when none failed. */
int wgf_mpi_first_error(wgf_error *berr, size_t nblocks, wgf_error *err);

/* strbuf.h: wgf_strbuf, the growable text buffer */

#endif
