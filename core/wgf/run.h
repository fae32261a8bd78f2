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

struct wgf_step_info; /* wgf/problem.h */
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
    int quiet;               /* not read by the library (the command's option) */
    int check_only;          /* validate, load plugins, create components; no run */
    /* Set to nonzero (from a signal handler, say) to stop after the current
     * step: outputs are written and wgf_run returns WGF_EINTR. May be NULL. */
    volatile sig_atomic_t *interrupt;
    /* An experiment's [run] plugin_path names code that wgf loads and runs.
     * By default its directories come after every other (installed plugins
     * win); trust_plugin_path puts them right after plugin_path above, and
     * no_file_plugins refuses the key (a configuration error). */
    int trust_plugin_path;
    int no_file_plugins;
    /* A monitor of the caller (the command's progress line, say), added
     * after the run's outputs and diagnostics, so it sees the step's
     * diagnostics too (wgf/problem.h, wgf_problem_monitor_add). NULL: none.
     * The library itself prints nothing. */
    int (*monitor)(void *ctx, struct wgf_step_info *info, wgf_error *err);
    void *monitor_ctx;
    /* Configuration warnings (not errors: the run goes ahead), one line
     * each, called as they are found, before anything runs. NULL: dropped. */
    void (*warn)(void *ctx, const char *line);
    void *warn_ctx;
    /* Continue the killed or interrupted run in outdir from its checkpoint
     * (file: outdir/config.ini, the run's resolved configuration; sets must
     * leave it unchanged). A configuration that differs from the one the
     * checkpoint was written with, a finished run, or a scheme that cannot
     * resume is a configuration error. */
    int resume;
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
    /* Set when something went wrong that did not stop the run (gnuplot
     * failed, say): one line for the caller to show. "" otherwise. */
    char warning[1024];
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

/* MPI (libwgf built with configure --with-mpi): a program started by mpirun
 * or srun calls wgf_mpi_init before wgf_run, and every rank runs the same
 * wgf_run. Each rank then computes the map's passes on its share of every
 * batch's blocks and the results are gathered, so that every rank holds the
 * whole run and its results are those of the serial run, bit for bit; rank 0
 * alone writes the outputs. An error on one rank that the others did not see
 * must end them all: wgf_mpi_abort(status) after printing it. Without a
 * launcher (a serial run), or without MPI in the build, init and finalize do
 * nothing, rank is 0, size 1 and abort returns. init returns WGF_OK,
 * WGF_EIO when MPI does not start, or WGF_EUNSUP in a build without MPI
 * started by a launcher on several processes. */
int wgf_mpi_init(int *argc, char ***argv);
void wgf_mpi_finalize(void);
void wgf_mpi_abort(int status);
int wgf_mpi_rank(void);
int wgf_mpi_size(void);

/* Row-wise work of a plugin's own shared over the ranks, as the map's passes
 * are: an energy's pair sum over its batch of N rows, say, which every rank
 * would otherwise compute whole (doc/mpi.md). wgf_mpi_rows gives the rows
 * [*n0, *n1) this rank computes: whole blocks of WGF_BLOCK rows, the rank's
 * share of the ceil(N / WGF_BLOCK) blocks; one rank (serial, wgf check,
 * selftest) computes [0, N). Then wgf_mpi_rows_gather, collective (every rank
 * calls it with the same N and width), makes rows (N rows of width doubles,
 * each rank having filled its own) whole on every rank, each row as its owner
 * computed it: a row summed as in the serial run gives the serial run's
 * result, bit for bit, whatever the number of ranks. On one rank it does
 * nothing and returns WGF_OK; WGF_EIO when MPI fails. */
void wgf_mpi_rows(size_t N, size_t *n0, size_t *n1);
int wgf_mpi_rows_gather(double *rows, size_t N, size_t width, wgf_error *err);

#ifdef __cplusplus
}
#endif
#endif
