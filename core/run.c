/* run.c: an experiment from file to outputs (wgf run, wgf check). */
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "internal.h"

const char *wgf_version(void) { return WGF_VERSION; }

/* threads > 0: exactly that many. 0: up to one per core, fewer when the
 * machine is busy (OpenMP's dynamic adjustment): many short parallel
 * regions (one per metric product) on oversubscribed cores wait a
 * scheduler slice at every barrier. Results do not depend on the count. */
static void set_threads(int threads)
{
#ifdef _OPENMP
    if (threads > 0) {
        omp_set_dynamic(0);
        omp_set_num_threads(threads);
    } else
        omp_set_dynamic(1);
#else
    (void)threads;
#endif
}

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

int wgf_problem_create(wgf_problem **out, const wgf_run_opts *opts, wgf_diag *diag, wgf_error *err)
{
    *out = NULL;
    wgf_problem *p = calloc(1, sizeof *p);
    if (!p)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    int rc = wgf_problem_setup(p, opts, diag, err);
    if (rc == WGF_OK && diag->n > 0)
        rc = WGF_EINVAL;
    if (rc != WGF_OK) {
        wgf_problem_teardown(p);
        free(p);
        return rc;
    }
    set_threads(p->threads);
    *out = p;
    return WGF_OK;
}

void wgf_problem_free(wgf_problem *p)
{
    if (!p)
        return;
    wgf_problem_teardown(p);
    free(p);
}

/* wgf check: the reference is created as a run would create it (on the output samples' draws), so
 * that a reference that does not describe the problem is refused before the run, not at its start. */
static int check_reference(wgf_problem *p, wgf_error *err)
{
    const wgf_plugin *pl;
    const wgf_section *sec;
    if (!wgf_problem_reference(p, &pl, &sec))
        return WGF_OK;
    wgf_eval *out = wgf_eval_create(p, (size_t)wgf_section_int(p->output_sec, "samples"), 0, err);
    if (!out)
        return err ? err->code : WGF_ENOMEM;
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
    wgf_problem *p = calloc(1, sizeof *p);
    if (!p)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    int rc = wgf_problem_setup(p, opts, diag, err);
    if (rc == WGF_OK && diag->n > 0)
        rc = WGF_EINVAL;
    if (rc == WGF_OK && opts->check_only)
        rc = check_reference(p, err);
    if (rc != WGF_OK || opts->check_only) {
        wgf_problem_teardown(p);
        free(p);
        return rc;
    }
    set_threads(p->threads);
    char *outdir = opts->outdir ? strdup(opts->outdir) : default_outdir(p, opts->file);
    if (!outdir) {
        wgf_problem_teardown(p);
        free(p);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    p->interrupt = opts->interrupt;
    /* The outputs first, then the caller's monitor, which so sees the
     * step's diagnostics. */
    wgf_observer *obs = NULL;
    rc = wgf_observer_create(&obs, p, outdir, err);
    if (rc == WGF_OK)
        rc = wgf_guard_add(p, p->run_sec, err); /* after the outputs: a diverging step is still recorded */
    if (rc == WGF_OK && opts->monitor)
        rc = wgf_problem_monitor_add(p, opts->monitor, opts->monitor_ctx, NULL, err);
    if (rc == WGF_OK) {
        wgf_error run_err = {0};
        int status = wgf_problem_run(p, &run_err);
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
    wgf_problem_teardown(p);
    free(p);
    return rc;
}
