/* observer.c: what a run writes at every step, as monitors on the problem.
 *
 * Three step monitors share one observer: diagnostics (the reference's, on
 * the output samples, handed on in the step's information), history (a row
 * of history.csv) and files (samples and theta at the output cadence); a
 * path monitor writes path.csv and samples/stage-KK.csv. Each works from the
 * parameters in the step's information, never from the problem's own.
 *
 * history.csv is kept in memory and rewritten atomically at the output
 * cadence and at the end, so a killed run leaves a complete (if shorter)
 * file, never a torn one. Diagnostics are computed on a fixed set of output
 * samples (drawn once), so error curves are not jittered by resampling.
 *
 * With a resumable scheme, a checkpoint (checkpoint.c) is written at the
 * output cadence and when the run is interrupted: the state at the start of
 * the step being reported, so a resumed run computes that step again and
 * every output comes out as the uninterrupted run's. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct wgf_observer {
    wgf_problem *p;
    char *dir;
    long every, diag_every;
    int write_samples, plots;
    size_t write_count; /* samples written per file */
    double t0_wall;

    wgf_eval *out;        /* output samples */
    wgf_eval *out_stages; /* the same samples, every stage kept (path observation) */
    wgf_refrun *ref;
    size_t d, P;
    double *nan_diag; /* the diagnostics handed on at steps without them */

    /* the step being observed: its parameters (copied), cadence, and
     * whether the output samples are forwarded at them yet */
    double *theta;
    int full, diag_now, forwarded;

    wgf_strbuf history, path;
    unsigned long cur_step; /* the step being computed: the last one reported + 1 */
    unsigned long diag_failed, diag_first; /* failed diagnostics evaluations, the first step */
    char diag_msg[WGF_ERROR_MSG_MAX];
    unsigned long last_step;
    double last_t, last_energy, first_energy;
    unsigned long steps_seen;
    /* the a posteriori bound B(t) on W2 (MATH.md 7): [scheme] lambda, B at
     * the last step, and the misfit r and time it was accumulated to */
    double lambda, bound, bound_r, bound_t;

    /* checkpoints (resumable schemes only) */
    int resumable;
    wgf_guard *guard;              /* the divergence guard, whose state they carry */
    char *config;                  /* the resolved configuration's sections */
    size_t config_len;
    double *times;                 /* every time the reference was evaluated at */
    size_t ntimes, cap_times;
    unsigned long products_prev;   /* metric products when the last step was reported */
    /* the step being reported, as it stood before it: what a checkpoint saves */
    size_t ck_history_len, ck_path_len, ck_ntimes;
    unsigned long ck_step, ck_products, ck_steps_seen, ck_diag_failed;
    double ck_t;
    wgf_guard ck_guard;
    double *ck_state; /* the scheme's own state (wgf_problem_save_state) */
    size_t ck_nstate, ck_capstate;
    int ck_seen;    /* a step was reported */
    int ck_written; /* the checkpoint is ck_step's */
};

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void observer_free(void *ctx)
{
    wgf_observer *o = ctx;
    if (!o)
        return;
    wgf_refrun_free(o->ref);
    wgf_eval_free(o->out);
    wgf_eval_free(o->out_stages);
    wgf_free(o->theta);
    free(o->nan_diag);
    free(o->dir);
    free(o->config);
    free(o->times);
    free(o->ck_state);
    wgf_strbuf_free(&o->history);
    wgf_strbuf_free(&o->path);
    free(o);
}

/* Output samples of a Gaussian law, moment-matched: z <- m0 + L0 Ls^{-1}
 * (z - zbar), with Ls Ls^T the sample covariance and L0 L0^T = C0, so that
 * the sample mean and covariance of z equal lambda's exactly. A variance
 * reduction for the diagnostics: errors are zero at t = 0, and for a map
 * close to affine what remains is the model's error, not the noise of a
 * finite output sample. Training samples are never matched. */
static int moment_match(wgf_observer *o, wgf_error *err)
{
    const double *m0, *C0;
    if (wgf_dist_gaussian(o->p->dist, &m0, &C0) != WGF_OK)
        return WGF_OK;
    size_t n = wgf_eval_n(o->out), d = o->d;
    if (n <= d + 1)
        return WGF_OK;
    double *z = wgf_alloc_doubles(n * d), *zbar = wgf_alloc_doubles(d), *Cs = wgf_alloc_doubles(d * d);
    double *Ls = wgf_alloc_doubles(d * d), *L0 = wgf_alloc_doubles(d * d), *y = wgf_alloc_doubles(d);
    int rc = WGF_OK;
    if (!z || !zbar || !Cs || !Ls || !L0 || !y) {
        rc = wgf_error_set(err, WGF_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(z, wgf_eval_z(o->out), n * d * sizeof(double));
    wgf_moments(n, d, z, zbar, Cs);
    if (wgf_cholesky(d, Cs, Ls, err) != WGF_OK || wgf_cholesky(d, C0, L0, err) != WGF_OK) {
        rc = WGF_OK; /* degenerate sample: leave it as drawn */
        goto done;
    }
    for (size_t k = 0; k < n; k++) {
        double *x = z + k * d;
        for (size_t i = 0; i < d; i++) { /* y = Ls^{-1} (x - zbar) */
            double acc = x[i] - zbar[i];
            for (size_t j = 0; j < i; j++)
                acc -= Ls[i * d + j] * y[j];
            y[i] = acc / Ls[i * d + i];
        }
        for (size_t i = 0; i < d; i++) { /* x = m0 + L0 y */
            double acc = m0[i];
            for (size_t j = 0; j <= i; j++)
                acc += L0[i * d + j] * y[j];
            x[i] = acc;
        }
    }
    rc = wgf_eval_set_z(o->out, z, err);
done:
    wgf_free(z);
    wgf_free(zbar);
    wgf_free(Cs);
    wgf_free(Ls);
    wgf_free(L0);
    wgf_free(y);
    return rc;
}

/* Append to b the entries of [run] plugin_path, each made absolute as the experiment file read them
 * (relative to its directory, wgf_problem_create), so that config.ini runs again from anywhere.
 * An entry that does not exist (yet) is joined to the absolute directory without resolving. */
static void absolute_plugin_path(wgf_strbuf *b, const char *file, const char *path)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    char *dir = slash ? strndup(file, slash == file ? 1 : (size_t)(slash - file)) : strdup(".");
    char *absdir = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    for (const char *s = path; *s;) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n > 0) {
            char *joined = NULL;
            if (s[0] == '/' || !absdir)
                joined = strndup(s, n);
            else if ((joined = malloc(strlen(absdir) + n + 2)))
                sprintf(joined, "%s/%.*s", absdir, (int)n, s);
            char *real = joined ? realpath(joined, NULL) : NULL;
            if (!joined)
                b->failed = 1;
            else
                wgf_strbuf_printf(b, "%s%s", b->s && b->s[b->len - 1] != '=' ? ":" : " ",
                                  real ? real : joined);
            free(real);
            free(joined);
        }
        s += n + (e != NULL);
    }
    free(absdir);
}

/* [run] as wgf_section_write writes it, with plugin_path absolute. */
static void write_run_section(wgf_strbuf *b, const wgf_section *run, const char *file)
{
    char *mem = NULL;
    size_t memlen = 0;
    FILE *f = open_memstream(&mem, &memlen);
    if (!f) {
        b->failed = 1;
        return;
    }
    wgf_section_write(run, f);
    fclose(f);
    const char *key = "plugin_path =";
    for (char *line = mem, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        int len = nl ? (int)(nl - line) : (int)strlen(line);
        if (strncmp(line, key, strlen(key)) == 0 && wgf_section_has(run, "plugin_path")) {
            wgf_strbuf path = {0};
            wgf_strbuf_printf(&path, "plugin_path =");
            absolute_plugin_path(&path, file, wgf_section_string(run, "plugin_path"));
            wgf_strbuf_printf(b, "%s\n", path.s ? path.s : "");
            b->failed |= path.failed;
            wgf_strbuf_free(&path);
        } else {
            wgf_strbuf_printf(b, "%.*s\n", len, line);
        }
    }
    free(mem);
}

int wgf_observer_config_text(const wgf_problem *p, char **text, size_t *len, wgf_error *err)
{
    wgf_strbuf b = {0};
    wgf_strbuf_printf(&b, "\n");
    write_run_section(&b, p->run_sec, wgf_config_file(p->cfg));
    /* the other sections through a memory stream, in a fixed order */
    char *mem = NULL;
    size_t memlen = 0;
    FILE *f = open_memstream(&mem, &memlen);
    if (!f) {
        wgf_strbuf_free(&b);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    const wgf_section *secs[7] = {p->run_sec, p->initial_sec, NULL, p->map_sec, p->metric_sec,
                                  p->scheme_sec, p->output_sec};
    for (int i = 1; i < 7; i++) {
        if (i == 2) {
            for (size_t k = 0; k < p->nterms; k++) {
                fputc('\n', f);
                wgf_section_write(p->terms[k].sec, f);
            }
            continue;
        }
        fputc('\n', f);
        wgf_section_write(secs[i], f);
    }
    if (p->target_sec) {
        fputc('\n', f);
        wgf_section_write(p->target_sec, f);
    }
    fputc('\n', f);
    wgf_section_write(p->reference_sec, f);
    if (fclose(f) != 0 || !mem) {
        free(mem);
        wgf_strbuf_free(&b);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    wgf_strbuf_printf(&b, "%s", mem);
    free(mem);
    if (b.failed || !b.s) {
        wgf_strbuf_free(&b);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    *text = b.s;
    *len = b.len;
    return WGF_OK;
}

/* DIR/name (a name in the run directory), written atomically. */
static int write_file(const wgf_observer *o, const char *name, const char *data, size_t len, wgf_error *err)
{
    char *path = wgf_path_join(o->dir, name);
    if (!path)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    int rc = wgf_write_atomic(path, data, len, err);
    free(path);
    return rc;
}

static int write_config(wgf_observer *o, wgf_error *err)
{
    wgf_problem *p = o->p;
    wgf_strbuf b = {0};
    wgf_strbuf_printf(&b, "; resolved configuration of %s, every default filled in\n", wgf_config_file(p->cfg));
    wgf_strbuf_printf(&b, "; wgf %s, plugin ABI %u\n", WGF_VERSION, WGF_ABI_VERSION);
    for (size_t i = 0; i < p->nterms; i++)
        wgf_strbuf_printf(&b, "; energy plugin %s: %s\n", p->terms[i].plugin->name, p->terms[i].path);
    if (p->reference_plugin)
        wgf_strbuf_printf(&b, "; reference plugin %s: %s\n", p->reference_plugin->name, p->reference_path);
    wgf_strbuf_printf(&b, "; map plugin %s: %s\n; metric plugin %s: %s\n; scheme plugin %s: %s\n",
                      p->map_plugin->name, p->map_path, p->metric_plugin->name, p->metric_path,
                      p->scheme_plugin->name, p->scheme_path);
    wgf_strbuf_printf(&b, "%.*s", (int)o->config_len, o->config);
    int rc = b.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory")
                      : write_file(o, "config.ini", b.s, b.len, err);
    wgf_strbuf_free(&b);
    return rc;
}

static int diagnostics_monitor(void *ctx, wgf_step_info *info, wgf_error *err);
static void restore_bound(wgf_observer *o, const char *history, size_t len);
static int history_monitor(void *ctx, wgf_step_info *info, wgf_error *err);
static int files_monitor(void *ctx, wgf_step_info *info, wgf_error *err);
static int path_monitor(void *ctx, const wgf_path_info *path, wgf_error *err);

static int remember_time(wgf_observer *o, double t, wgf_error *err)
{
    if (o->ntimes == o->cap_times) {
        size_t cap = o->cap_times ? 2 * o->cap_times : 64;
        double *nt = cap < SIZE_MAX / sizeof *nt ? realloc(o->times, cap * sizeof *nt) : NULL;
        if (!nt)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
        o->times = nt;
        o->cap_times = cap;
    }
    o->times[o->ntimes++] = t;
    return WGF_OK;
}

static const wgf_batch *output_batch(wgf_observer *o, const double *theta, wgf_error *err);

/* A resumed run's observer: the history and counters as they stood before
 * the checkpoint's step, and the reference (whose state may be a time
 * integration: fpe1d, particles) taken through the same times as before,
 * on the checkpoint's samples; those evaluations' values are not used. */
static int observer_restore(wgf_observer *o, const wgf_checkpoint *ck, wgf_error *err)
{
    o->p->metric_products = o->products_prev = ck->metric_products;
    o->steps_seen = ck->steps_seen;
    o->first_energy = ck->first_energy;
    o->diag_failed = ck->diag_failed;
    o->diag_first = ck->diag_first;
    snprintf(o->diag_msg, sizeof o->diag_msg, "%s", ck->diag_msg);
    o->cur_step = ck->step;
    o->t0_wall -= ck->wall;
    if (ck->history_len > INT_MAX)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for the history");
    wgf_strbuf_printf(&o->history, "%.*s", (int)ck->history_len, ck->history);
    if (ck->path_len > INT_MAX)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for the path");
    if (ck->path_len > 0) /* a path scheme's path.csv goes on from it */
        wgf_strbuf_printf(&o->path, "%.*s", (int)ck->path_len, ck->path);
    restore_bound(o, ck->history, ck->history_len);
    memcpy(o->theta, ck->theta, o->P * sizeof(double));
    o->forwarded = 0;
    const wgf_batch *b = NULL;
    if (ck->ntimes > 0 && wgf_refrun_needs_samples(o->ref) && !(b = output_batch(o, o->theta, err)))
        return err ? err->code : WGF_ENUMERIC;
    for (size_t i = 0; i < ck->ntimes; i++) {
        wgf_error why = {0};
        int rc = wgf_refrun_eval(o->ref, ck->diag_times[i], NAN, o->theta, b, 0, &why);
        if (rc == WGF_ENOMEM) {
            if (err)
                *err = why;
            return rc;
        }
        if ((rc = remember_time(o, ck->diag_times[i], err)) != WGF_OK)
            return rc;
    }
    return WGF_OK;
}

static int observer_setup(wgf_observer *o, wgf_problem *p, const char *outdir, const wgf_checkpoint *ck,
                          wgf_error *err)
{
    o->p = p;
    o->d = p->info.dim;
    o->P = p->nparams;
    o->every = wgf_section_int(p->output_sec, "every");
    o->diag_every = wgf_section_int(p->output_sec, "diagnostics_every");
    o->write_samples = wgf_section_bool(p->output_sec, "write_samples");
    o->plots = wgf_section_bool(p->output_sec, "plots");
    o->t0_wall = wall_now();
    o->dir = strdup(outdir);
    o->theta = wgf_alloc_doubles(o->P ? o->P : 1);
    if (!o->dir || !o->theta)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    o->resumable = (p->scheme_needs & WGF_SCHEME_RESUMABLE) != 0;
    o->products_prev = p->metric_products; /* what step 0 starts with */
    int rc = wgf_observer_config_text(p, &o->config, &o->config_len, err);
    if (rc != WGF_OK)
        return rc;
    size_t nout = (size_t)wgf_section_int(p->output_sec, "samples");
    o->write_count = (size_t)wgf_section_int(p->output_sec, "write_count");
    o->out = wgf_eval_create(p, nout, WGF_EVAL_AS_ASKED | WGF_EVAL_FORWARD_ONLY, err);
    if (!o->out)
        return err ? err->code : WGF_ENOMEM;
    rc = wgf_eval_draw(o->out, WGF_STREAM_OUTPUT, 0, err);
    if (rc == WGF_OK && wgf_section_bool(p->output_sec, "moment_match"))
        rc = moment_match(o, err);
    if (rc == WGF_OK)
        rc = wgf_refrun_create(&o->ref, p, o->out, err);
    if (rc != WGF_OK)
        return rc;
    if (!wgf_refrun_needs_l(o->ref)) /* the samples files and this reference read x alone */
        wgf_eval_drop_l(o->out);
    size_t ncols = wgf_refrun_ncols(o->ref);
    const wgf_section *ssec = wgf_problem_section(p, "scheme");
    o->lambda = ssec && wgf_section_has(ssec, "lambda") ? wgf_section_double(ssec, "lambda") : NAN;
    o->bound = o->bound_r = o->bound_t = NAN;
    o->nan_diag = calloc(ncols + 1, sizeof *o->nan_diag);
    if (!o->nan_diag)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    for (size_t i = 0; i < ncols; i++)
        o->nan_diag[i] = NAN;

    const char *sub[3] = {"", "samples", "theta"};
    for (int i = 0; i < 3; i++) {
        char *path = i ? wgf_path_join(o->dir, sub[i]) : NULL;
        if (i && !path)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
        rc = wgf_mkdir_p(i ? path : o->dir, err);
        free(path);
        if (rc != WGF_OK)
            return rc;
    }
    if (ck) { /* resuming: the run's own files stay, but for what it will write again */
        if ((rc = wgf_checkpoint_clear_after(o->dir, ck->step, (unsigned long)o->every, err)) != WGF_OK)
            return rc;
        return observer_restore(o, ck, err);
    }
    if ((rc = wgf_outdir_clear(o->dir, err)) != WGF_OK) /* a reused directory */
        return rc;
    char *path = wgf_path_join(o->dir, "checkpoint"); /* an earlier run's */
    if (!path)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    if (wgf_mpi_writer() && unlink(path) != 0 && errno != ENOENT)
        rc = wgf_error_set(err, WGF_EIO, "cannot remove %s, left by an earlier run: %s", path,
                           strerror(errno));
    free(path);
    if (rc != WGF_OK)
        return rc;
    if ((rc = write_config(o, err)) != WGF_OK)
        return rc;

    wgf_strbuf_printf(&o->history, "step,t,energy,dissipation,step_norm,iterations,residual,products,wall_s,"
                                   "misfit,misfit_abs,bound");
    for (size_t i = 0; i < ncols; i++)
        wgf_strbuf_printf(&o->history, ",%s", wgf_refrun_cols(o->ref)[i]);
    wgf_strbuf_printf(&o->history, "\n");
    return WGF_OK;
}

static int observer_create(wgf_observer **out, wgf_problem *p, const char *outdir, const wgf_checkpoint *ck,
                           wgf_error *err)
{
    *out = NULL;
    wgf_observer *o = calloc(1, sizeof *o);
    if (!o)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    int rc = observer_setup(o, p, outdir, ck, err);
    if (rc != WGF_OK) {
        observer_free(o);
        return rc;
    }
    /* The first monitor owns the observer (freed with the problem, also
     * when adding it fails); the others share it. */
    if ((rc = wgf_problem_monitor_add(p, diagnostics_monitor, o, observer_free, err)) != WGF_OK ||
        (rc = wgf_problem_monitor_add(p, history_monitor, o, NULL, err)) != WGF_OK ||
        (rc = wgf_problem_monitor_add(p, files_monitor, o, NULL, err)) != WGF_OK ||
        (rc = wgf_problem_path_monitor_add(p, path_monitor, o, NULL, err)) != WGF_OK)
        return rc;
    *out = o;
    return WGF_OK;
}

int wgf_observer_create(wgf_observer **out, wgf_problem *p, const char *outdir, wgf_error *err)
{
    return observer_create(out, p, outdir, NULL, err);
}

int wgf_observer_resume(wgf_observer **out, wgf_problem *p, const char *outdir, const wgf_checkpoint *ck,
                        wgf_error *err)
{
    if (ck->nparams != p->nparams)
        return wgf_error_set(err, WGF_EINVAL, "%s/checkpoint: %zu parameters, the configuration's map has %zu",
                             outdir, ck->nparams, p->nparams);
    return observer_create(out, p, outdir, ck, err);
}

void wgf_observer_set_guard(wgf_observer *o, wgf_guard *g) { o->guard = g; }

/* The state at the start of the step last reported (ck_* below), with the
 * parameters it reports. */
static int write_checkpoint(wgf_observer *o, wgf_error *err)
{
    if (o->history.failed || o->path.failed)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for the history");
    wgf_checkpoint ck = {
        .step = o->ck_step,
        .t = o->ck_t,
        .wall = wall_now() - o->t0_wall,
        .metric_products = o->ck_products,
        .steps_seen = o->ck_steps_seen,
        .first_energy = o->ck_steps_seen ? o->first_energy : NAN,
        .diag_failed = o->ck_diag_failed,
        .diag_first = o->ck_diag_failed ? o->diag_first : 0,
        .has_guard = o->guard != NULL,
        .nparams = o->P,
        .theta = o->theta,
        .ntimes = o->ck_ntimes,
        .diag_times = o->times,
        .config = o->config,
        .config_len = o->config_len,
        .history = o->history.s,
        .history_len = o->ck_history_len,
        .path = o->path.s,
        .path_len = o->ck_path_len,
        .nstate = o->ck_nstate,
        .state = o->ck_state,
    };
    if (o->ck_diag_failed)
        snprintf(ck.diag_msg, sizeof ck.diag_msg, "%s", o->diag_msg);
    if (o->guard)
        ck.guard = o->ck_guard;
    int rc = wgf_checkpoint_write(o->dir, &ck, err);
    o->ck_written = rc == WGF_OK;
    return rc;
}

/* The output samples pushed through T_theta (once per step at most). */
static const wgf_batch *output_batch(wgf_observer *o, const double *theta, wgf_error *err)
{
    if (!o->forwarded) {
        if (wgf_eval_forward(o->out, theta, err) != WGF_OK)
            return NULL;
        o->forwarded = 1;
    }
    return wgf_eval_batch(o->out, wgf_eval_nstages(o->out));
}

/* A diagnostic that cannot be computed (too few output samples for a
 * covariance, a W2 that does not converge) is reported, not fatal: its
 * cells stay empty, summary.ini counts the failures and names the first,
 * and the run itself goes on. */
static void diagnostics_failed(wgf_observer *o, unsigned long step, const wgf_error *why)
{
    if (o->diag_failed++ > 0)
        return;
    o->diag_first = step;
    snprintf(o->diag_msg, sizeof o->diag_msg, "%s", why->msg);
}

static int diagnostics(wgf_observer *o, unsigned long step, double t, double energy, const double *theta,
                       int full, wgf_error *err)
{
    const wgf_batch *b = NULL;
    if (wgf_refrun_needs_samples(o->ref) && !(b = output_batch(o, theta, err)))
        return err ? err->code : WGF_ENUMERIC;
    wgf_error why = {0};
    int rc = remember_time(o, t, err);
    if (rc != WGF_OK)
        return rc;
    rc = wgf_refrun_eval(o->ref, t, energy, theta, b, full, &why);
    if (rc == WGF_ENOMEM) {
        if (err)
            *err = why;
        return rc;
    }
    if (rc != WGF_OK)
        diagnostics_failed(o, step, &why);
    return WGF_OK;
}

/* Rows [r0, r1) of b as CSV lines. */
static void samples_rows(wgf_strbuf *s, const wgf_batch *b, size_t r0, size_t r1)
{
    for (size_t n = r0; n < r1; n++) {
        for (size_t i = 0; i < b->d; i++) {
            if (i)
                wgf_strbuf_addn(s, ",", 1);
            wgf_strbuf_g10(s, b->x[n * b->d + i]);
        }
        wgf_strbuf_addn(s, "\n", 1);
    }
}

/* The first write_count samples of b, as CSV with a header x1,...,xd. The
 * rows are formatted in chunks on threads and joined in order. */
static int write_samples_csv(wgf_observer *o, const char *name, const wgf_batch *b, wgf_error *err)
{
    enum { CHUNK = 1024 };
    wgf_strbuf s = {0};
    for (size_t i = 0; i < b->d; i++)
        wgf_strbuf_printf(&s, "%sx%zu", i ? "," : "", i + 1);
    wgf_strbuf_printf(&s, "\n");
    size_t count = b->n < o->write_count ? b->n : o->write_count, nc = (count + CHUNK - 1) / CHUNK;
    wgf_strbuf *chunk = calloc(nc ? nc : 1, sizeof *chunk);
    if (!chunk) {
        wgf_strbuf_free(&s);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
#pragma omp parallel for schedule(static)
    for (long c = 0; c < (long)nc; c++) {
        size_t r0 = (size_t)c * CHUNK;
        samples_rows(&chunk[c], b, r0, r0 + CHUNK < count ? r0 + CHUNK : count);
    }
    for (size_t c = 0; c < nc; c++) {
        if (chunk[c].failed)
            s.failed = 1;
        else if (chunk[c].len)
            wgf_strbuf_addn(&s, chunk[c].s, chunk[c].len);
        wgf_strbuf_free(&chunk[c]);
    }
    free(chunk);
    int rc = s.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory")
                      : write_file(o, name, s.s, s.len, err);
    wgf_strbuf_free(&s);
    return rc;
}

static int write_step_files(wgf_observer *o, unsigned long step, const double *theta, wgf_error *err)
{
    char name[64]; /* a step number's digits at most */
    snprintf(name, sizeof name, "theta/step-%06lu.bin", step);
    int rc = write_file(o, name, (const char *)theta, o->P * sizeof(double), err);
    if (rc != WGF_OK || !o->write_samples)
        return rc;
    const wgf_batch *b = output_batch(o, theta, err);
    if (!b)
        return err ? err->code : WGF_ENUMERIC;
    snprintf(name, sizeof name, "samples/step-%06lu.csv", step);
    return write_samples_csv(o, name, b, err);
}

static int flush_history(wgf_observer *o, wgf_error *err)
{
    if (o->history.failed)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for the history");
    return write_file(o, "history.csv", o->history.s, o->history.len, err);
}

/* First of the run's monitors: the state's parameters, the cadence, and
 * the reference's diagnostics, handed on to the monitors after it. */
static int diagnostics_monitor(void *ctx, wgf_step_info *info, wgf_error *err)
{
    wgf_observer *o = ctx;
    o->ck_history_len = o->history.len;
    o->ck_path_len = o->path.len;
    o->ck_ntimes = o->ntimes;
    o->ck_products = o->products_prev;
    o->products_prev = o->p->metric_products;
    o->ck_steps_seen = o->steps_seen;
    o->ck_diag_failed = o->diag_failed;
    o->ck_step = info->step;
    o->ck_t = info->t;
    if (o->resumable) { /* what the scheme handed on for this step: the next step's may follow */
        wgf_problem *p = o->p;
        if (p->step_nstate > o->ck_capstate) {
            double *s = realloc(o->ck_state, p->step_nstate * sizeof *s);
            if (!s)
                return wgf_error_set(err, WGF_ENOMEM, "out of memory");
            o->ck_state = s;
            o->ck_capstate = p->step_nstate;
        }
        if (p->step_nstate > 0)
            memcpy(o->ck_state, p->step_state, p->step_nstate * sizeof(double));
        o->ck_nstate = p->step_nstate;
    }
    if (o->guard) /* the monitors after this one include the guard */
        o->ck_guard = *o->guard;
    o->ck_seen = 1;
    o->ck_written = 0;
    memcpy(o->theta, info->theta, o->P * sizeof(double));
    o->forwarded = 0;
    o->full = info->step % (unsigned long)o->every == 0;
    o->diag_now = o->full || info->step % (unsigned long)o->diag_every == 0;
    o->cur_step = info->step;
    int rc;
    if (o->diag_now && (rc = diagnostics(o, info->step, info->t, info->energy, o->theta, o->full, err)) != WGF_OK)
        return rc;
    info->ndiag = wgf_refrun_ncols(o->ref);
    info->diag_names = wgf_refrun_cols(o->ref);
    info->diag = o->diag_now ? wgf_refrun_values(o->ref) : o->nan_diag;
    return WGF_OK;
}

/* x as history.csv prints it (%.10g), read back: the bound's state is
 * what the history holds, so that a resumed run continues it exactly. */
static double as_printed(double x)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.10g", x);
    return strtod(buf, NULL);
}

/* B(t) = e^(-lambda t) B(0) + int_0^t e^(-lambda (t - s)) r(s) ds with
 * B(0) = 0 (the map starts at the initial law), by the trapezoid rule over
 * the reported steps; a step without a misfit (the last) holds the one
 * before. NaN where lambda is unknown or the first step had no misfit. */
static void advance_bound(wgf_observer *o, const wgf_step_info *info)
{
    double r = info->misfit;
    if (isnan(o->lambda)) {
        o->bound = NAN;
    } else if (o->steps_seen == 0) {
        o->bound = isnan(r) ? NAN : 0.0;
    } else if (!isnan(o->bound)) {
        double dt = info->t - o->bound_t, e = exp(-o->lambda * dt);
        if (isnan(r))
            r = o->bound_r;
        o->bound = e * o->bound + 0.5 * dt * (e * o->bound_r + r);
    }
    o->bound = as_printed(o->bound);
    o->bound_r = as_printed(r);
    o->bound_t = as_printed(info->t);
}

/* A resumed run's bound: from the last row of the history it keeps (t is
 * the 2nd column, misfit_abs and bound the 11th and 12th). */
static void restore_bound(wgf_observer *o, const char *history, size_t len)
{
    size_t i = len;
    while (i > 0 && history[i - 1] == '\n')
        i--;
    while (i > 0 && history[i - 1] != '\n')
        i--;
    const char *row = history + i;
    double v[12];
    for (int c = 0; c < 12; c++) {
        char *end;
        v[c] = strtod(row, &end);
        if (end == row || (*end != ',' && c < 11))
            return; /* the header, or not a row of this form: NaN as created */
        row = end + 1;
    }
    o->bound_t = v[1];
    o->bound_r = v[10];
    o->bound = v[11];
}

static int history_monitor(void *ctx, wgf_step_info *info, wgf_error *err)
{
    wgf_observer *o = ctx;
    double wall = wall_now() - o->t0_wall;
    advance_bound(o, info);
    wgf_strbuf_printf(&o->history, "%lu,%.10g,%.12g,%.6g,%.6g,%u,%.3g,%lu,%.4f,%.6g,%.10g,%.10g", info->step,
                      info->t, info->energy, info->dissipation, info->step_norm, info->solve.iterations,
                      info->solve.residual, info->solve.products, wall, info->misfit_rel, info->misfit,
                      o->bound);
    if (o->diag_now)
        wgf_refrun_row(o->ref, &o->history);
    else
        for (size_t i = 0; i < wgf_refrun_ncols(o->ref); i++)
            wgf_strbuf_printf(&o->history, ",");
    wgf_strbuf_printf(&o->history, "\n");
    if (o->steps_seen == 0)
        o->first_energy = info->energy;
    o->steps_seen++;
    o->last_step = info->step;
    o->last_t = info->t;
    o->last_energy = info->energy;
    o->cur_step = info->step + 1;
    return o->full ? flush_history(o, err) : WGF_OK;
}

void wgf_observer_name_step(const wgf_observer *o, wgf_error *e)
{
    for (const char *s = e->msg; (s = strstr(s, "step ")) != NULL; s += 5)
        if (s[5] >= '0' && s[5] <= '9')
            return;
    wgf_error_prefix(e, "step %lu", o->cur_step);
}

/* Step files and the checkpoint at the output cadence (and the checkpoint
 * when the run stops on an interruption: wgf_observer_finish). */
static int files_monitor(void *ctx, wgf_step_info *info, wgf_error *err)
{
    wgf_observer *o = ctx;
    int rc = o->full ? write_step_files(o, info->step, o->theta, err) : WGF_OK;
    if (rc == WGF_OK && o->resumable && o->full)
        rc = write_checkpoint(o, err);
    return rc;
}

/* path.csv (every reported path, one row per stage) and the samples of every
 * stage of the last path. Each path's diagnostics come from a reference of
 * its own, since references that integrate in time (fpe1d, particles) only
 * go forward. */
static int path_monitor(void *ctx, const wgf_path_info *path, wgf_error *err)
{
    wgf_observer *o = ctx;
    wgf_problem *p = o->p;
    int rc = WGF_OK;
    if (!o->out_stages) {
        o->out_stages = wgf_eval_create(p, wgf_eval_n(o->out),
                                        WGF_EVAL_STAGES | WGF_EVAL_AS_ASKED | WGF_EVAL_FORWARD_ONLY, err);
        if (!o->out_stages)
            return err ? err->code : WGF_ENOMEM;
        if (!wgf_refrun_needs_l(o->ref))
            wgf_eval_drop_l(o->out_stages);
        if ((rc = wgf_eval_set_z(o->out_stages, wgf_eval_z(o->out), err)) != WGF_OK)
            return rc;
    }
    if ((rc = wgf_eval_forward(o->out_stages, path->theta, err)) != WGF_OK)
        return rc;
    wgf_refrun *ref = NULL;
    if ((rc = wgf_refrun_create(&ref, p, o->out_stages, err)) != WGF_OK)
        return rc;
    size_t S = path->nstages - 1, ncols = wgf_refrun_ncols(ref);
    if (o->path.len == 0) {
        wgf_strbuf_printf(&o->path, "step,stage,t,energy,D_norm,g_norm");
        for (size_t i = 0; i < ncols; i++)
            wgf_strbuf_printf(&o->path, ",%s", wgf_refrun_cols(ref)[i]);
        wgf_strbuf_printf(&o->path, "\n");
    }
    char file[64]; /* a stage number's digits at most */
    for (size_t k = 0; k <= S && rc == WGF_OK; k++) {
        const wgf_batch *b = wgf_eval_batch(o->out_stages, k);
        double e = path->energy ? path->energy[k] : NAN;
        /* only the last stage's law is T_theta(Z): the others are judged
         * by their samples */
        rc = wgf_refrun_eval(ref, path->t[k], e, k == S ? path->theta : NULL, b, 1, err);
        if (rc != WGF_OK)
            break;
        double Dn = path->step_norm && k > 0 ? path->step_norm[k] : NAN;
        double gn = path->grad_norm ? path->grad_norm[k] : NAN;
        wgf_strbuf_printf(&o->path, "%lu,%zu,%.10g,%.12g,%.10g,%.10g", path->step, k, path->t[k], e, Dn, gn);
        wgf_refrun_row(ref, &o->path);
        wgf_strbuf_printf(&o->path, "\n");
        if (o->write_samples) {
            snprintf(file, sizeof file, "samples/stage-%02zu.csv", k);
            rc = write_samples_csv(o, file, b, err);
        }
    }
    wgf_refrun_free(ref);
    if (rc != WGF_OK)
        return rc;
    if (o->path.failed)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for the path");
    return write_file(o, "path.csv", o->path.s, o->path.len, err);
}

static void ini_double(wgf_strbuf *b, const char *key, double v)
{
    if (isfinite(v))
        wgf_strbuf_printf(b, "%s = %.10g\n", key, v);
    else
        wgf_strbuf_printf(b, "%s = nan\n", key);
}

int wgf_observer_finish(wgf_observer *o, int status, const wgf_error *run_err, wgf_run_result *res,
                        wgf_error *err)
{
    wgf_problem *p = o->p;
    double wall = wall_now() - o->t0_wall;
    int rc = WGF_OK;
    /* Interrupted: the checkpoint is the last reported step's, so that a
     * resumed run starts there (before the final diagnostics below, which
     * the checkpoint's reference times must not include). */
    if (status == WGF_EINTR && o->resumable && o->ck_seen && !o->ck_written)
        rc = write_checkpoint(o, err);
    /* Final state: diagnostics and files for the last step reported, at
     * the parameters it reported. */
    if (rc == WGF_OK && o->steps_seen > 0 && status != WGF_ENUMERIC && status != WGF_EDIVERGED) {
        if ((rc = diagnostics(o, o->last_step, o->last_t, o->last_energy, o->theta, 1, err)) == WGF_OK &&
            o->last_step % (unsigned long)o->every != 0)
            rc = write_step_files(o, o->last_step, o->theta, err);
        if (rc == WGF_OK) { /* the reference curve for the samples plot */
            wgf_strbuf c = {0};
            rc = wgf_refrun_curve(o->ref, o->last_t, &c, err);
            if (rc == WGF_OK && c.len > 0)
                rc = c.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory")
                              : write_file(o, "reference.csv", c.s, c.len, err);
            wgf_strbuf_free(&c);
        }
    }
    int rc2 = flush_history(o, err);
    if (rc == WGF_OK)
        rc = rc2;

    res->steps = o->last_step;
    res->t = o->last_t;
    res->wall_seconds = wall;
    res->metric_products = p->metric_products;
    res->energy = o->steps_seen ? o->last_energy : NAN;
    res->err_mean = wgf_refrun_value(o->ref, "err_mean");
    res->err_cov = wgf_refrun_value(o->ref, "err_cov");
    res->err_w2 = strcmp(wgf_refrun_type(o->ref), "ou") == 0 ? wgf_refrun_value(o->ref, "w2") : NAN;
    res->warning[0] = '\0';
    snprintf(res->outdir, sizeof res->outdir, "%s", o->dir);

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    wgf_strbuf b = {0};
    wgf_strbuf_printf(&b, "[run]\nstatus = %s\n", status == WGF_OK          ? "finished"
                                                   : status == WGF_EINTR     ? "interrupted"
                                                   : status == WGF_EDIVERGED ? "diverged"
                                                                             : "failed");
    if (status != WGF_OK && run_err)
        wgf_strbuf_printf(&b, "message = %s\n", run_err->msg);
    if (o->diag_failed) {
        wgf_strbuf_printf(&b, "diagnostics = not computed %lu times, first at step %lu: %s\n", o->diag_failed,
                          o->diag_first, o->diag_msg);
        int k = snprintf(res->warning, sizeof res->warning, "step %lu: diagnostics not computed: ", o->diag_first);
        if (k > 0 && (size_t)k < sizeof res->warning) {
            size_t n = strnlen(o->diag_msg, sizeof res->warning - (size_t)k - 1);
            memcpy(res->warning + k, o->diag_msg, n);
            res->warning[(size_t)k + n] = '\0';
        }
    }
    wgf_strbuf_printf(&b, "steps = %lu\n", res->steps);
    ini_double(&b, "t", res->t);
    ini_double(&b, "wall_seconds", wall);
    wgf_strbuf_printf(&b, "metric_products = %lu\nthreads = %d\nsamples = %zu\nparameters = %zu\n",
                      res->metric_products, threads, p->info.samples, o->P);
    wgf_strbuf_printf(&b, "\n[final]\n");
    ini_double(&b, "energy", res->energy);
    ini_double(&b, "initial_energy", o->steps_seen ? o->first_energy : NAN);
    /* A failed or diverged run has no final diagnostics: the last ones computed describe an
     * earlier state, and a summary must not pass them off as the result. */
    int final = status != WGF_ENUMERIC && status != WGF_EDIVERGED;
    if (final && (rc2 = wgf_refrun_summary(o->ref, &b, res, err)) != WGF_OK && rc == WGF_OK)
        rc = rc2;
    if (!final) {
        res->err_mean = res->err_cov = res->err_w2 = NAN;
        res->nfigures = 0;
    }
    if (o->plots && rc == WGF_OK && wgf_mpi_writer()) {
        wgf_error perr;
        int prc = wgf_plot(o->dir, &perr);
        if (prc != WGF_OK && prc != WGF_EUNSUP && !res->warning[0])
            snprintf(res->warning, sizeof res->warning, "%s", perr.msg);
    }
    /* summary.ini says what the directory holds: it comes last, and only when
     * everything before it was written (an earlier one was removed at start). */
    if (rc == WGF_OK) {
        rc = b.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory")
                      : write_file(o, "summary.ini", b.s, b.len, err);
    }
    wgf_strbuf_free(&b);
    return rc;
}
