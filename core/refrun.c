/* refrun.c: the host of a run's reference plugin (MATH.md 6 and 7). It
 * creates the plugin from the problem's public description and the output
 * samples, keeps the last value of every diagnostic, and formats them for
 * history.csv, summary.ini and reference.csv. What a diagnostic means is
 * the plugin's business (plugins/references). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct wgf_refrun {
    const wgf_plugin *plugin;
    const wgf_reference_vt *vt;
    void *state;
    size_t ncols;
    const char **cols;
    double *val; /* the last computed value of every column */
    double *cur; /* this evaluation's values, NaN where not computed */
};

void wgf_refrun_free(wgf_refrun *r)
{
    if (!r)
        return;
    if (r->state)
        r->vt->destroy(r->state);
    free(r->cols);
    free(r->val);
    free(r->cur);
    free(r);
}

/* A reference's refusal names the experiment's [reference] key, like every configuration error:
 * a message that starts with the file's name is passed on as it is, any other gets the place. */
static int located_refusal(const wgf_section *sec, const char *name, int rc, wgf_error *err)
{
    const char *file = wgf_section_file(sec);
    size_t fl = strlen(file);
    if (err && err->code == rc && err->msg[0] &&
        ((strncmp(err->msg, file, fl) == 0 && err->msg[fl] == ':') || strncmp(err->msg, "--set ", 6) == 0))
        return rc;
    int code = wgf_error_forward(err, rc, "reference '%s'", name);
    if (err && wgf_error_exit_status(code) == 2) {
        const char *key = wgf_section_line(sec, "plugin") > 0 ? "plugin" : "type";
        int line = wgf_section_line(sec, key);
        if (line > 0)
            wgf_error_prefix(err, "%s:%d: reference.%s", file, line, key);
        else
            wgf_error_prefix(err, "%s: reference.%s", file, key);
    }
    return code;
}

int wgf_refrun_create(wgf_refrun **out, const wgf_problem *p, const wgf_eval *samples, wgf_error *err)
{
    *out = NULL;
    const wgf_plugin *pl;
    const wgf_section *sec;
    if (!wgf_problem_reference(p, &pl, &sec))
        return WGF_OK;
    wgf_refrun *r = calloc(1, sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    r->plugin = pl;
    r->vt = pl->vtable;
    wgf_reference_setup setup = {.problem = p, .nout = wgf_eval_n(samples), .z = wgf_eval_z(samples)};
    wgf_error_clear(err);
    int rc = r->vt->create(sec, &setup, &r->state, err);
    if (rc != WGF_OK) {
        r->state = NULL;
        wgf_refrun_free(r);
        return located_refusal(sec, pl->name, rc, err);
    }
    r->ncols = r->vt->ncolumns(r->state);
    r->cols = calloc(r->ncols + 1, sizeof *r->cols);
    r->val = calloc(r->ncols + 1, sizeof *r->val);
    r->cur = calloc(r->ncols + 1, sizeof *r->cur);
    if (!r->cols || !r->val || !r->cur) {
        wgf_refrun_free(r);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->ncols; i++) {
        r->cols[i] = r->vt->column(r->state, i);
        r->val[i] = r->cur[i] = NAN;
    }
    *out = r;
    return WGF_OK;
}

size_t wgf_refrun_ncols(const wgf_refrun *r) { return r ? r->ncols : 0; }
const char *const *wgf_refrun_cols(const wgf_refrun *r) { return r ? r->cols : NULL; }
const double *wgf_refrun_values(const wgf_refrun *r) { return r ? r->cur : NULL; }
const char *wgf_refrun_type(const wgf_refrun *r) { return r ? r->plugin->name : "none"; }

int wgf_refrun_needs_samples(const wgf_refrun *r)
{
    return r && (!r->vt->needs_samples || r->vt->needs_samples(r->state));
}

int wgf_refrun_needs_l(const wgf_refrun *r)
{
    int k = r && r->vt->needs_samples ? r->vt->needs_samples(r->state) : 1;
    return r && k != 0 && k != WGF_REF_SAMPLES_X;
}

int wgf_refrun_eval(wgf_refrun *r, double t, double energy, const double *theta, const wgf_batch *b,
                    int full, wgf_error *err)
{
    if (!r)
        return WGF_OK;
    for (size_t i = 0; i < r->ncols; i++)
        r->cur[i] = NAN;
    wgf_reference_obs obs = {.t = t, .energy = energy, .theta = theta, .samples = b};
    int rc = r->vt->eval(r->state, &obs, full, r->cur, err);
    if (rc != WGF_OK) {
        /* nothing of a failed evaluation stands, nor anything older: a
         * summary must not show a value from an earlier state as the last */
        for (size_t i = 0; i < r->ncols; i++)
            r->val[i] = r->cur[i] = NAN;
        return wgf_error_prefix(err, "reference '%s'", r->plugin->name);
    }
    memcpy(r->val, r->cur, r->ncols * sizeof *r->val);
    return WGF_OK;
}

void wgf_refrun_row(const wgf_refrun *r, wgf_strbuf *row)
{
    for (size_t i = 0; r && i < r->ncols; i++) {
        if (!isnan(r->cur[i]))
            wgf_strbuf_printf(row, ",%.8g", r->cur[i]);
        else
            wgf_strbuf_printf(row, ",");
    }
}

double wgf_refrun_value(const wgf_refrun *r, const char *col)
{
    for (size_t i = 0; r && i < r->ncols; i++)
        if (strcmp(r->cols[i], col) == 0)
            return r->val[i];
    return NAN;
}

/* What the plugin writes to a FILE, appended to buf. */
static int through_memstream(wgf_strbuf *buf, int (*fn)(void *state, double t, FILE *f, wgf_error *err),
                             int (*fn2)(void *state, FILE *f, wgf_error *err), void *state, double t,
                             wgf_error *err)
{
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    if (!f)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    int rc = fn ? fn(state, t, f, err) : fn2(state, f, err);
    if (fclose(f) != 0 && rc == WGF_OK)
        rc = wgf_error_set(err, WGF_ENOMEM, "out of memory");
    if (rc == WGF_OK && len > 0)
        wgf_strbuf_printf(buf, "%s", mem);
    free(mem);
    return rc;
}

/* The curve drawn over the samples plot (reference.csv). */
int wgf_refrun_curve(wgf_refrun *r, double t, wgf_strbuf *csv, wgf_error *err)
{
    if (!r || !r->vt->curve)
        return WGF_OK;
    return through_memstream(csv, r->vt->curve, NULL, r->state, t, err);
}

/* [error] of summary.ini, and the figures of the final table. */
int wgf_refrun_summary(const wgf_refrun *r, wgf_strbuf *ini, wgf_run_result *res, wgf_error *err)
{
    if (!r)
        return WGF_OK;
    wgf_strbuf_printf(ini, "\n[error]\nreference = %s\n", r->plugin->name);
    for (size_t i = 0; i < r->ncols; i++) {
        const char *name = r->vt->summary_key ? r->vt->summary_key(r->state, i) : NULL;
        if (!name)
            name = r->cols[i];
        if (isfinite(r->val[i]))
            wgf_strbuf_printf(ini, "%s = %.10g\n", name, r->val[i]);
        else
            wgf_strbuf_printf(ini, "%s = nan\n", name);
        if (res->nfigures < WGF_RUN_FIGURES) {
            snprintf(res->figures[res->nfigures].name, sizeof res->figures[0].name, "%s", name);
            res->figures[res->nfigures++].value = r->val[i];
        }
    }
    if (!r->vt->summary_extra)
        return WGF_OK;
    return through_memstream(ini, NULL, r->vt->summary_extra, r->state, 0, err);
}
