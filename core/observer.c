/* observer.c: what a run writes and shows at every step.
 *
 * history.csv is kept in memory and rewritten atomically at the output
 * cadence and at the end, so a killed run leaves a complete (if shorter)
 * file, never a torn one. Diagnostics are computed on a fixed set of output
 * samples (drawn once), so error curves are not jittered by resampling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct wgf_observer {
    wgf_problem *p;
    char *dir;
    int quiet, tty;
    long every, diag_every;
    int write_samples, plots;
    size_t write_count; /* samples written per file */
    double t0_wall;

    wgf_eval *out; /* output samples */
    wgf_refrun *ref;
    size_t d;

    wgf_strbuf history;
    unsigned long cur_step; /* the step being computed: the last one reported + 1 */
    unsigned long diag_failed, diag_first; /* failed diagnostics evaluations, the first step */
    char diag_msg[WGF_ERROR_MSG_MAX];
    unsigned long last_step;
    double last_t, last_energy, first_energy;
    unsigned long steps_seen;
};

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void wgf_observer_free(wgf_observer *o)
{
    if (!o)
        return;
    wgf_refrun_free(o->ref);
    wgf_eval_free(o->out);
    free(o->dir);
    wgf_strbuf_free(&o->history);
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

static int write_config(wgf_observer *o, wgf_error *err)
{
    wgf_problem *p = o->p;
    wgf_strbuf b = {0};
    wgf_strbuf_printf(&b, "; resolved configuration of %s, every default filled in\n", wgf_config_file(p->cfg));
    wgf_strbuf_printf(&b, "; wgf %s, plugin ABI %u\n", WGF_VERSION, WGF_ABI_VERSION);
    for (size_t i = 0; i < p->nterms; i++)
        wgf_strbuf_printf(&b, "; energy plugin %s: %s\n", p->terms[i].plugin->name, p->terms[i].path);
    wgf_strbuf_printf(&b, "; map plugin %s: %s\n; metric plugin %s: %s\n; scheme plugin %s: %s\n",
                      p->map_plugin->name, p->map_path, p->metric_plugin->name, p->metric_path,
                      p->scheme_plugin->name, p->scheme_path);
    /* sections through a memory stream, in a fixed order */
    char *mem = NULL;
    size_t memlen = 0;
    FILE *f = open_memstream(&mem, &memlen);
    if (!f) {
        wgf_strbuf_free(&b);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    const wgf_section *secs[7] = {p->run_sec, p->initial_sec, NULL, p->map_sec, p->metric_sec,
                                  p->scheme_sec, p->output_sec};
    for (int i = 0; i < 7; i++) {
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
    fputc('\n', f);
    wgf_section_write(p->reference_sec, f);
    fclose(f);
    wgf_strbuf_printf(&b, "%s", mem ? mem : "");
    free(mem);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.ini", o->dir);
    int rc = b.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory")
                      : wgf_write_atomic(path, b.s, b.len, err);
    wgf_strbuf_free(&b);
    return rc;
}

int wgf_observer_create(wgf_observer **out, wgf_problem *p, const char *outdir, int quiet, wgf_error *err)
{
    wgf_observer *o = calloc(1, sizeof *o);
    if (!o)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    *out = o;
    o->p = p;
    o->d = p->info.dim;
    o->quiet = quiet;
    o->tty = !quiet && isatty(STDERR_FILENO);
    o->every = wgf_section_int(p->output_sec, "every");
    o->diag_every = wgf_section_int(p->output_sec, "diagnostics_every");
    o->write_samples = wgf_section_bool(p->output_sec, "write_samples");
    o->plots = wgf_section_bool(p->output_sec, "plots");
    o->t0_wall = wall_now();
    o->dir = strdup(outdir);
    if (!o->dir)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    size_t nout = (size_t)wgf_section_int(p->output_sec, "samples");
    o->write_count = (size_t)wgf_section_int(p->output_sec, "write_count");
    o->out = wgf_eval_create(p, nout, 0, err);
    if (!o->out)
        return err ? err->code : WGF_ENOMEM;
    int rc = wgf_eval_draw(o->out, WGF_STREAM_OUTPUT, 0, err);
    if (rc == WGF_OK && wgf_section_bool(p->output_sec, "moment_match"))
        rc = moment_match(o, err);
    if (rc == WGF_OK)
        rc = wgf_refrun_create(&o->ref, p, o->out, err);
    if (rc != WGF_OK)
        return rc;

    char path[4096];
    const char *sub[3] = {"", "/samples", "/theta"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", o->dir, sub[i]);
        if ((rc = wgf_mkdir_p(path, err)) != WGF_OK)
            return rc;
    }
    if ((rc = wgf_outdir_clear(o->dir, err)) != WGF_OK) /* a reused directory */
        return rc;
    if ((rc = write_config(o, err)) != WGF_OK)
        return rc;

    wgf_strbuf_printf(&o->history, "step,t,energy,dissipation,step_norm,iterations,residual,products,wall_s");
    for (size_t i = 0; i < wgf_refrun_ncols(o->ref); i++)
        wgf_strbuf_printf(&o->history, ",%s", wgf_refrun_col(o->ref, i));
    wgf_strbuf_printf(&o->history, "\n");
    return WGF_OK;
}

/* The output samples pushed through T_theta (once per step at most). */
static const wgf_batch *output_batch(wgf_observer *o, const double *theta, int *forwarded, wgf_error *err)
{
    if (!*forwarded) {
        if (wgf_eval_forward(o->out, theta, err) != WGF_OK)
            return NULL;
        *forwarded = 1;
    }
    return wgf_eval_batch(o->out, wgf_eval_nstages(o->out));
}

/* A diagnostic that cannot be computed (too few output samples for a
 * covariance, a W2 that does not converge) is reported, not fatal: its
 * cells stay empty, the first failure is printed once and summary.ini
 * counts them. The run itself is unharmed. */
static void diagnostics_failed(wgf_observer *o, unsigned long step, const wgf_error *why)
{
    if (o->diag_failed++ > 0)
        return;
    o->diag_first = step;
    snprintf(o->diag_msg, sizeof o->diag_msg, "%s", why->msg);
    if (!o->quiet)
        fprintf(stderr, "%swgf: warning: step %lu: diagnostics not computed: %s\n", o->tty ? "\r\033[K" : "",
                step, why->msg);
}

static int diagnostics(wgf_observer *o, unsigned long step, double t, double energy, const double *theta,
                       int full, int *forwarded, wgf_error *err)
{
    const wgf_batch *b = NULL;
    if (wgf_refrun_needs_samples(o->ref) && !(b = output_batch(o, theta, forwarded, err)))
        return err ? err->code : WGF_ENUMERIC;
    wgf_error why = {0};
    int rc = wgf_refrun_eval(o->ref, t, energy, theta, b, full, &why);
    if (rc == WGF_ENOMEM) {
        if (err)
            *err = why;
        return rc;
    }
    if (rc != WGF_OK)
        diagnostics_failed(o, step, &why);
    return WGF_OK;
}

static int write_step_files(wgf_observer *o, unsigned long step, const double *theta, int *forwarded,
                            wgf_error *err)
{
    char path[4096];
    wgf_problem *p = o->p;
    snprintf(path, sizeof path, "%s/theta/step-%06lu.bin", o->dir, step);
    int rc = wgf_write_atomic(path, (const char *)theta, p->nparams * sizeof(double), err);
    if (rc != WGF_OK || !o->write_samples)
        return rc;
    const wgf_batch *b = output_batch(o, theta, forwarded, err);
    if (!b)
        return err ? err->code : WGF_ENUMERIC;
    wgf_strbuf s = {0};
    for (size_t i = 0; i < b->d; i++)
        wgf_strbuf_printf(&s, "%sx%zu", i ? "," : "", i + 1);
    wgf_strbuf_printf(&s, "\n");
    size_t count = b->n < o->write_count ? b->n : o->write_count;
    for (size_t n = 0; n < count; n++) {
        for (size_t i = 0; i < b->d; i++)
            wgf_strbuf_printf(&s, "%s%.10g", i ? "," : "", b->x[n * b->d + i]);
        wgf_strbuf_printf(&s, "\n");
    }
    snprintf(path, sizeof path, "%s/samples/step-%06lu.csv", o->dir, step);
    rc = s.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory")
                  : wgf_write_atomic(path, s.s, s.len, err);
    wgf_strbuf_free(&s);
    return rc;
}

static int flush_history(wgf_observer *o, wgf_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/history.csv", o->dir);
    if (o->history.failed)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for the history");
    return wgf_write_atomic(path, o->history.s, o->history.len, err);
}

int wgf_observer_step(wgf_observer *o, const wgf_step_info *info, wgf_error *err)
{
    const double *theta = o->p->theta;
    int forwarded = 0, rc;
    int full = info->step % (unsigned long)o->every == 0;
    int diag_now = full || info->step % (unsigned long)o->diag_every == 0;
    o->cur_step = info->step;
    if (diag_now && (rc = diagnostics(o, info->step, info->t, info->energy, theta, full, &forwarded, err)) != WGF_OK)
        return rc;
    double wall = wall_now() - o->t0_wall;
    wgf_strbuf_printf(&o->history, "%lu,%.10g,%.12g,%.6g,%.6g,%u,%.3g,%lu,%.4f", info->step, info->t,
                      info->energy, info->dissipation, info->step_norm, info->solve.iterations,
                      info->solve.residual, info->solve.products, wall);
    if (diag_now)
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
    if (full) {
        if ((rc = write_step_files(o, info->step, theta, &forwarded, err)) != WGF_OK)
            return rc;
        if ((rc = flush_history(o, err)) != WGF_OK)
            return rc;
    }
    if (o->tty) {
        fprintf(stderr, "\r  step %6lu  t = %-9.5g  energy = %-12.6g", info->step, info->t, info->energy);
        if (diag_now && wgf_refrun_ncols(o->ref) > 0)
            fprintf(stderr, "  %s %.4g", wgf_refrun_col(o->ref, 0), wgf_refrun_value(o->ref, wgf_refrun_col(o->ref, 0)));
        fprintf(stderr, "\033[K");
        fflush(stderr);
    }
    o->cur_step = info->step + 1;
    return WGF_OK;
}

void wgf_observer_name_step(const wgf_observer *o, wgf_error *e)
{
    for (const char *s = e->msg; (s = strstr(s, "step ")) != NULL; s += 5)
        if (s[5] >= '0' && s[5] <= '9')
            return;
    wgf_error_prefix(e, "step %lu", o->cur_step);
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
    if (o->tty)
        fprintf(stderr, "\r\033[K");
    double wall = wall_now() - o->t0_wall;
    int forwarded = 0, rc = WGF_OK;
    /* Final state: diagnostics and files for the last step reported. */
    if (o->steps_seen > 0 && status != WGF_ENUMERIC) {
        if ((rc = diagnostics(o, o->last_step, o->last_t, o->last_energy, p->theta, 1, &forwarded, err)) == WGF_OK &&
            o->last_step % (unsigned long)o->every != 0)
            rc = write_step_files(o, o->last_step, p->theta, &forwarded, err);
        if (rc == WGF_OK) { /* the reference curve for the samples plot */
            wgf_strbuf c = {0};
            char path[4096];
            rc = wgf_refrun_curve(o->ref, o->last_t, &c, err);
            snprintf(path, sizeof path, "%s/reference.csv", o->dir);
            if (rc == WGF_OK && c.len > 0)
                rc = c.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory")
                              : wgf_write_atomic(path, c.s, c.len, err);
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
    snprintf(res->outdir, sizeof res->outdir, "%s", o->dir);

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    wgf_strbuf b = {0};
    wgf_strbuf_printf(&b, "[run]\nstatus = %s\n", status == WGF_OK ? "finished"
                                                   : status == WGF_EINTR ? "interrupted"
                                                                         : "failed");
    if (status != WGF_OK && run_err)
        wgf_strbuf_printf(&b, "message = %s\n", run_err->msg);
    if (o->diag_failed)
        wgf_strbuf_printf(&b, "diagnostics = not computed %lu times, first at step %lu: %s\n", o->diag_failed,
                          o->diag_first, o->diag_msg);
    wgf_strbuf_printf(&b, "steps = %lu\n", res->steps);
    ini_double(&b, "t", res->t);
    ini_double(&b, "wall_seconds", wall);
    wgf_strbuf_printf(&b, "metric_products = %lu\nthreads = %d\nsamples = %zu\nparameters = %zu\n",
                      res->metric_products, threads, p->info.samples, p->nparams);
    wgf_strbuf_printf(&b, "\n[final]\n");
    ini_double(&b, "energy", res->energy);
    ini_double(&b, "initial_energy", o->steps_seen ? o->first_energy : NAN);
    wgf_refrun_summary(o->ref, &b, res);
    if (o->plots && rc == WGF_OK) {
        wgf_error perr;
        int prc = wgf_plot(o->dir, &perr);
        if (prc != WGF_OK && prc != WGF_EUNSUP && !o->quiet)
            fprintf(stderr, "wgf: warning: %s\n", perr.msg);
    }
    /* summary.ini says what the directory holds: it comes last, and only when
     * everything before it was written (an earlier one was removed at start). */
    if (rc == WGF_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/summary.ini", o->dir);
        rc = b.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory") : wgf_write_atomic(path, b.s, b.len, err);
    }
    wgf_strbuf_free(&b);
    return rc;
}
