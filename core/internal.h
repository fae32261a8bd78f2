/* internal.h: the core's own declarations, shared by its files only. */
#ifndef WGF_INTERNAL_H
#define WGF_INTERNAL_H

#include <stdio.h>

#include "wgf/wgf.h"

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
};

/* eval.c */
double *wgf_eval_scratch_logq0(wgf_eval *ev);

/* problem.c: configuration and component life cycle (run.c drives it). */
const wgf_param *wgf_core_schema(const char *section);
int wgf_problem_setup(wgf_problem *p, const wgf_run_opts *opts, wgf_diag *diag, wgf_error *err);
void wgf_problem_teardown(wgf_problem *p);
/* The reference plugin and its section; 0 when [reference] names none. */
int wgf_problem_reference(const wgf_problem *p, const wgf_plugin **plugin, const wgf_section **sec);

/* registry.c: wgf_registry_list over the directories that do not come from an experiment's
 * plugin_path (appended last), and only the files whose names start with prefix (NULL: all):
 * what the core may load without being asked to by name. */
int wgf_registry_list_own(wgf_registry *reg, const char *prefix, wgf_registry_visit_fn visit, void *user,
                          wgf_diag *warn, wgf_error *err);

/* observer.c: the run's outputs, as monitors added to p (history.csv,
 * samples and theta files, diagnostics against the reference, path.csv),
 * and the final ones (summary.ini, reference.csv, plots) by
 * wgf_observer_finish. The problem owns the observer once created. */
int wgf_observer_create(wgf_observer **obs, wgf_problem *p, const char *outdir, wgf_error *err);
/* Final outputs (history, summary, plots) after the scheme returned status. */
int wgf_observer_finish(wgf_observer *obs, int status, const wgf_error *run_err, wgf_run_result *res,
                        wgf_error *err);
/* A numerical failure names its step: prefix "step K" (the step being
 * computed) unless the message already names one. */
void wgf_observer_name_step(const wgf_observer *obs, wgf_error *e);

/* refrun.c: the reference plugin's host: its diagnostics as columns */
typedef struct wgf_refrun wgf_refrun;
typedef struct wgf_strbuf wgf_strbuf;
/* NULL in *r (and WGF_OK) when the problem has no reference. samples: the
 * output samples (their draws are the reference's setup). */
int wgf_refrun_create(wgf_refrun **r, const wgf_problem *p, const wgf_eval *samples, wgf_error *err);
void wgf_refrun_free(wgf_refrun *r);
size_t wgf_refrun_ncols(const wgf_refrun *r);
const char *const *wgf_refrun_cols(const wgf_refrun *r);
const double *wgf_refrun_values(const wgf_refrun *r);
const char *wgf_refrun_type(const wgf_refrun *r);
int wgf_refrun_needs_samples(const wgf_refrun *r);
/* Diagnostics at time t (energy: the state's energy; theta NULL for an
 * intermediate path stage), on the output samples b (NULL when not
 * needed); full: also the costly ones (output cadence). */
int wgf_refrun_eval(wgf_refrun *r, double t, double energy, const double *theta, const wgf_batch *b,
                    int full, wgf_error *err);
void wgf_refrun_row(const wgf_refrun *r, wgf_strbuf *row);
double wgf_refrun_value(const wgf_refrun *r, const char *col);
int wgf_refrun_curve(wgf_refrun *r, double t, wgf_strbuf *csv, wgf_error *err);
int wgf_refrun_summary(const wgf_refrun *r, wgf_strbuf *ini, wgf_run_result *res, wgf_error *err);

/* output.c: atomic files and directories */
int wgf_mkdir_p(const char *path, wgf_error *err);
/* Before a run writes to dir: remove what an earlier run there wrote
 * (summary.ini first, config, history, reference, samples, theta, plots)
 * and the temporary files of killed writes. Only wgf's own file names. */
int wgf_outdir_clear(const char *dir, wgf_error *err);
/* Write the whole buffer to path via a temporary file and rename. */
int wgf_write_atomic(const char *path, const char *data, size_t len, wgf_error *err);
/* A growable text buffer. */
struct wgf_strbuf {
    char *s;
    size_t len, cap;
    int failed; /* an allocation failed: the content is incomplete */
};
void wgf_strbuf_printf(wgf_strbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void wgf_strbuf_free(wgf_strbuf *b);

#endif
