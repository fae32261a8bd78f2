/* run.c: an experiment from file to outputs (wgf run, wgf check). */
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "internal.h"

const char *wgf_version(void) { return WGF_VERSION; }

/* runs/<name>: [run] name, else the experiment file's base name without .ini */
static char *default_outdir(const wgf_problem *p, const char *file)
{
    const char *name = NULL;
    size_t n;
    if (p->run_sec && wgf_section_has(p->run_sec, "name")) {
        name = wgf_section_string(p->run_sec, "name");
        n = strlen(name);
    } else {
        const char *slash = strrchr(file, '/');
        name = slash ? slash + 1 : file;
        n = strlen(name);
        if (n > 4 && strcmp(name + n - 4, ".ini") == 0)
            n -= 4;
    }
    size_t len = n + 6;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "runs/%.*s", (int)n, name);
    return out;
}

/* The configuration a run was checkpointed with against the one it is
 * resumed with (DIR/config.ini and any --set): the first key that differs. */
static int resume_config_check(wgf_problem *p, const wgf_checkpoint *ck, wgf_diag *diag, wgf_error *err)
{
    char *text = NULL, *key = NULL, *was = NULL, *now = NULL;
    size_t len = 0;
    int rc = wgf_observer_config_text(p, &text, &len, err);
    if (rc != WGF_OK)
        return rc;
    int d = wgf_checkpoint_config_diff(ck->config, ck->config_len, text, len, &key, &was, &now);
    free(text);
    if (d < 0)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    if (d == 0)
        return WGF_OK;
    const char *dot = strrchr(key, '.');
    int line = 0;
    if (dot) {
        char *sec = strndup(key, (size_t)(dot - key));
        if (sec)
            wgf_config_get(p->cfg, sec, dot + 1, &line);
        free(sec);
    }
    const char *file = wgf_config_file(p->cfg);
    char where[64] = "";
    if (line > 0)
        snprintf(where, sizeof where, ":%d", line);
    const char *how = line == 0 && now ? " (--set)" : "";
    static const char why[] = "a run resumes only with the configuration it was started with";
    if (now && was)
        wgf_diag_add(diag, "%s%s: %s: '%s'%s differs from the checkpoint's '%s' (%s)", file, where, key, now, how,
                     was, why);
    else if (now)
        wgf_diag_add(diag, "%s%s: %s: '%s'%s was not set in the checkpoint's run (%s)", file, where, key, now,
                     how, why);
    else
        wgf_diag_add(diag, "%s: %s: not set, the checkpoint's run had '%s' (%s)", file, key, was, why);
    free(key);
    free(was);
    free(now);
    return WGF_EINVAL;
}

/* Before resuming the run in dir: it must be unfinished, its scheme able to
 * resume, its checkpoint readable and written with this configuration. */
static int resume_prepare(wgf_problem *p, const char *dir, wgf_checkpoint *ck, wgf_diag *diag, wgf_error *err)
{
    if (wgf_outdir_finished(dir)) {
        wgf_diag_add(diag, "%s: the run there finished (summary.ini: status = finished): nothing to resume", dir);
        return WGF_EINVAL;
    }
    if (!(p->scheme_needs & WGF_SCHEME_RESUMABLE)) {
        int line = 0;
        wgf_config_get(p->cfg, "scheme", "plugin", &line);
        wgf_diag_add(diag, "%s:%d: scheme.plugin: scheme '%s' cannot resume a run (schemes that declare "
                     "WGF_SCHEME_RESUMABLE can: euler, jko, adaptive, genwgp with Adam)", wgf_config_file(p->cfg), line,
                     p->scheme_plugin->name);
        return WGF_EINVAL;
    }
    wgf_error why = {0};
    int rc = wgf_checkpoint_read(dir, ck, &why);
    if (rc == WGF_EINVAL) {
        wgf_diag_add(diag, "%s", why.msg);
        return rc;
    }
    if (rc != WGF_OK) {
        if (err)
            *err = why;
        return rc;
    }
    if ((rc = resume_config_check(p, ck, diag, err)) != WGF_OK)
        return rc;
    if (ck->nparams != p->nparams) {
        wgf_diag_add(diag, "%s/checkpoint: %zu parameters, the map of %s has %zu", dir, ck->nparams,
                     wgf_config_file(p->cfg), p->nparams);
        return WGF_EINVAL;
    }
    memcpy(p->theta, ck->theta, p->nparams * sizeof *p->theta);
    p->start_step = ck->step;
    if (ck->nstate > 0) { /* the checkpoint's copy is freed before the run */
        if (!(p->resume_state = malloc(ck->nstate * sizeof *p->resume_state)))
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
        memcpy(p->resume_state, ck->state, ck->nstate * sizeof *p->resume_state);
        p->resume_nstate = ck->nstate;
    }
    return WGF_OK;
}

/* What a run refuses at configuration time, check refuses: the reference is created (on the
 * output samples' draws, as the run creates it) and freed, so that its own refusals (a law it
 * does not describe, a potential it cannot solve) come out of `wgf check` too. */
static int check_reference(wgf_problem *p, wgf_error *err)
{
    const wgf_plugin *pl;
    const wgf_section *sec;
    if (!wgf_problem_reference(p, &pl, &sec))
        return WGF_OK;
    wgf_eval *out = wgf_eval_create(p, (size_t)wgf_section_int(p->output_sec, "samples"), 0, err);
    if (!out)
        return err && err->code ? err->code : WGF_ENOMEM;
    wgf_refrun *ref = NULL;
    int rc = wgf_eval_draw(out, WGF_STREAM_OUTPUT, 0, err);
    if (rc == WGF_OK)
        rc = wgf_refrun_create(&ref, p, out, err);
    wgf_refrun_free(ref);
    wgf_eval_free(out);
    return rc;
}

int wgf_run(const wgf_run_opts *opts, wgf_run_result *res, wgf_diag *diag, wgf_error *err)
{
    wgf_run_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    wgf_problem *p = NULL;
    int rc = wgf_problem_create(&p, opts, diag, err);
    if (rc != WGF_OK)
        return rc;
    if (opts->check_only) {
        rc = check_reference(p, err);
        wgf_problem_free(p);
        return rc;
    }
    char *outdir = opts->outdir ? strdup(opts->outdir) : default_outdir(p, opts->file);
    if (!outdir) {
        wgf_problem_free(p);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    p->interrupt = opts->interrupt;
    wgf_checkpoint ck = {0};
    if (opts->resume && (rc = resume_prepare(p, outdir, &ck, diag, err)) != WGF_OK) {
        wgf_checkpoint_free(&ck);
        free(outdir);
        wgf_problem_free(p);
        return rc;
    }
    /* The outputs first, then the caller's monitor, which so sees the
     * step's diagnostics. */
    wgf_observer *obs = NULL;
    wgf_guard *guard = NULL;
    rc = opts->resume ? wgf_observer_resume(&obs, p, outdir, &ck, err) : wgf_observer_create(&obs, p, outdir, err);
    if (rc == WGF_OK) /* after the outputs: a diverging step is still recorded */
        rc = wgf_guard_add(p, p->run_sec, &guard, err);
    if (rc == WGF_OK && guard) {
        wgf_observer_set_guard(obs, guard);
        if (opts->resume && ck.has_guard) {
            wgf_guard_limits lim = guard->lim;
            *guard = ck.guard;
            guard->lim = lim;
        }
    }
    wgf_checkpoint_free(&ck);
    if (rc == WGF_OK && opts->monitor)
        rc = wgf_problem_monitor_add(p, opts->monitor, opts->monitor_ctx, NULL, err);
    if (rc == WGF_OK) {
        wgf_error run_err = {0};
        int status = wgf_problem_run(p, &run_err);
        if (status != WGF_OK && (run_err.code != status || !run_err.msg[0])) /* a silent failure */
            status = wgf_error_forward(&run_err, status, "scheme '%s'", p->scheme_plugin->name);
        if (status == WGF_ENUMERIC)
            wgf_observer_name_step(obs, &run_err);
        rc = wgf_observer_finish(obs, status, &run_err, res, err);
        if (status != WGF_OK) {
            if (err)
                *err = run_err;
            rc = status;
        }
    }
    free(outdir);
    wgf_problem_free(p);
    return rc;
}
