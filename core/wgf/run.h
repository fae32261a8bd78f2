/* wgf/run.h: running an experiment file, as `wgf run` and `wgf check` do. */
#ifndef WGF_RUN_H
#define WGF_RUN_H

#include <signal.h>
#include <stddef.h>
#include "config.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most threads a run may ask for ([run] threads, --threads): beyond it
 * OpenMP's runtime fails to create them, and no machine here needs more. */
#define WGF_THREADS_MAX 1024

typedef struct wgf_run_opts {
    const char *file;        /* the experiment */
    const char *outdir;      /* outputs; NULL: runs/<experiment name> */
    const char *const *sets; /* --set section.key=value, nsets of them */
    size_t nsets;
    const char *plugin_path; /* --plugin-path, or NULL */
    int threads;             /* 0: the OpenMP default */
    int quiet;               /* no progress, no final table */
    int check_only;          /* validate, load plugins, create components; no run */
    /* Set to nonzero (from a signal handler, say) to stop after the current
     * step: outputs are written and wgf_run returns WGF_EINTR. May be NULL. */
    volatile sig_atomic_t *interrupt;
} wgf_run_opts;

#define WGF_RUN_FIGURES 16

/* Final figures of a run (also written to summary.ini). NaN when unknown. */
typedef struct wgf_run_result {
    unsigned long steps;
    double t;
    double wall_seconds;
    unsigned long metric_products;
    double energy;
    double err_mean, err_cov, err_w2; /* reference = ou */
    /* every figure of the reference (name and final value), as in summary.ini */
    size_t nfigures;
    struct {
        char name[32];
        double value;
    } figures[WGF_RUN_FIGURES];
    char outdir[4096];
} wgf_run_result;

/* The version of libwgf, "MAJOR.MINOR.PATCH". */
const char *wgf_version(void);

/* Configuration errors (all of them) go to diag as one line each and the
 * call returns WGF_EINVAL; plugin, numerical and I/O failures come back in
 * err. A numerical failure still writes the outputs computed so far. */
int wgf_run(const wgf_run_opts *opts, wgf_run_result *res, wgf_diag *diag, wgf_error *err);

/* Draw (or redraw) the PNG files in DIR/plots from a run directory with gnuplot:
 * energy, errors against the reference, and the last samples. WGF_EUNSUP
 * when gnuplot is not installed. */
int wgf_plot(const char *dir, wgf_error *err);

#ifdef __cplusplus
}
#endif
#endif
