/* target.c: the reference of a generative run (doc/math.md 2.1 and 7): the
 * run's [target] (or, in the older form, the target of the problem's mmd or
 * fdiv energy, built from that term's keys with the same public helpers,
 * wgf/samples.h), compared with the model on held-out target samples, never
 * the training ones. Columns:
 *
 *   sw2    sliced W2 between nd model samples and nd held-out samples (every
 *          observation; nd = min(samples, output samples, held-out rows));
 *   mmd    the unbiased squared MMD with a Gaussian kernel summed over
 *          `bandwidth` (the reference's own, so that runs with different
 *          energies compare on one scale), at the output cadence;
 *   edist  the energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (U-statistics),
 *          at the output cadence;
 *   and for a Gaussian-mixture target, mode_w1..mode_wk, the fraction of the
 *          model samples whose nearest mean is component j's, and mode_err,
 *          the largest |fraction - weight|.
 * reference.csv holds the held-out samples, drawn over the samples plot. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refcommon.h"
#include <wgf/diagnostics.h>
#include <wgf/rng.h>
#include <wgf/samples.h>

typedef struct {
    size_t d, nd, k; /* k: mixture components (0: not a mixture) */
    unsigned long seed;
    wgf_target *target, *owned; /* owned: built from an energy's keys (no [target]) */
    const double *y; /* nd held-out samples (borrowed from target) */
    double *s2;      /* bandwidths squared */
    size_t nb;
    double *frac;    /* k */
    char **names;    /* 3 + k + 1 column names when k > 0 */
    size_t ncols;
} tref;

static const char *const base_cols[] = {"sw2", "mmd", "edist"};

static void tref_destroy(void *state)
{
    tref *r = state;
    if (!r)
        return;
    wgf_target_free(r->owned);
    free(r->s2);
    free(r->frac);
    if (r->names)
        for (size_t i = 0; i < r->ncols; i++)
            free(r->names[i]);
    free(r->names);
    free(r);
}

static int column_names(tref *r)
{
    r->names = calloc(r->ncols, sizeof *r->names);
    if (!r->names)
        return WGF_ENOMEM;
    for (size_t i = 0; i < r->ncols; i++) {
        char buf[48];
        if (i < 3)
            snprintf(buf, sizeof buf, "%s", base_cols[i]);
        else if (i < 3 + r->k)
            snprintf(buf, sizeof buf, "mode_w%zu", i - 2);
        else
            snprintf(buf, sizeof buf, "mode_err");
        if (!(r->names[i] = strdup(buf)))
            return WGF_ENOMEM;
    }
    return WGF_OK;
}

static int tref_create(const wgf_section *sec, const wgf_reference_setup *setup, void **state,
                       wgf_error *err)
{
    const wgf_problem *p = setup->problem;
    const wgf_problem_info *info = wgf_problem_get_info(p);
    const wgf_section *ts = NULL;
    /* the run's [target]; else (the older form) the target keys of its mmd or fdiv term */
    for (size_t i = 0; i < wgf_problem_nterms(p) && !info->target; i++) {
        const char *name;
        const wgf_section *s;
        wgf_problem_term(p, i, &name, &s, NULL, NULL);
        if (strcmp(name, "mmd") == 0 || strcmp(name, "fdiv") == 0) {
            if (ts)
                return ref_refuse(sec, err, "target needs a single energy term with a target (mmd or "
                                            "fdiv), found several");
            ts = s;
        }
    }
    if (!ts && !info->target)
        return ref_refuse(sec, err, "target needs a [target] section (or an energy with a target: mmd "
                                    "or fdiv)");
    tref *r = calloc(1, sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    r->d = info->dim;
    r->seed = info->seed;
    size_t want = (size_t)wgf_section_int(sec, "samples");
    if (want > setup->nout)
        want = setup->nout;
    int rc = WGF_OK;
    if (info->target)
        r->target = info->target;
    else if ((rc = wgf_target_create(&r->owned, ts, err)) == WGF_OK)
        r->target = r->owned;
    size_t nh = 0;
    if (rc == WGF_OK)
        rc = wgf_target_set(r->target, WGF_TARGET_HELDOUT, want, &r->y, &nh, err);
    if (rc != WGF_OK) {
        tref_destroy(r);
        return rc;
    }
    r->nd = want < nh ? want : nh;
    if (r->nd < 2) {
        tref_destroy(r);
        return ref_refuse(sec, err, "target needs at least 2 held-out and output samples");
    }
    const double *bw = wgf_section_vector(sec, "bandwidth", &r->nb);
    r->s2 = malloc(r->nb * sizeof *r->s2);
    const wgf_gmm *g = wgf_target_gmm(r->target);
    r->k = g ? wgf_gmm_components(g) : 0;
    r->ncols = 3 + (r->k ? r->k + 1 : 0);
    r->frac = r->k ? malloc(r->k * sizeof *r->frac) : NULL;
    if (!r->s2 || (r->k && !r->frac) || column_names(r) != WGF_OK) {
        tref_destroy(r);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    for (size_t j = 0; j < r->nb; j++)
        r->s2[j] = bw[j] * bw[j];
    *state = r;
    return WGF_OK;
}

static size_t tref_ncolumns(void *state) { return ((tref *)state)->ncols; }

static const char *tref_column(void *state, size_t i) { return ((tref *)state)->names[i]; }

/* Sums over pairs of a and b (n each) of the Gaussian kernel sum and of the
 * distance; same = 1: a = b, pairs i != j. */
static void pair_sums(const tref *r, const double *a, const double *b, int same, double *ksum,
                      double *dsum)
{
    size_t n = r->nd, d = r->d;
    double ks = 0.0, ds = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = same ? i + 1 : 0; j < n; j++) {
            double r2 = 0.0;
            for (size_t c = 0; c < d; c++) {
                double v = a[i * d + c] - b[j * d + c];
                r2 += v * v;
            }
            for (size_t q = 0; q < r->nb; q++)
                ks += exp(-r2 / (2.0 * r->s2[q]));
            ds += sqrt(r2);
        }
    /* a pair i < j stands for (i, j) and (j, i) */
    *ksum = same ? 2.0 * ks : ks;
    *dsum = same ? 2.0 * ds : ds;
}

static int tref_eval(void *state, const wgf_reference_obs *obs, int full, double *values, wgf_error *err)
{
    tref *r = state;
    const wgf_batch *b = obs->samples;
    if (!b)
        return wgf_error_set(err, WGF_EINVAL, "target: needs the output samples");
    if (b->n < r->nd)
        return wgf_error_set(err, WGF_EINVAL, "target: %zu output samples, %zu expected", b->n, r->nd);
    size_t n = r->nd;
    const double *x = b->x;
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!g)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    /* the same directions at every observation */
    wgf_rng_set(g, r->seed, WGF_STREAM_OUTPUT, 4, 0);
    int rc = wgf_w2_sliced(n, r->d, x, r->y, 64, g, &values[0], err);
    gsl_rng_free(g);
    if (rc != WGF_OK)
        return rc;
    if (full) {
        double kxx, dxx, kxy, dxy, kyy, dyy, dn = (double)n;
        pair_sums(r, x, x, 1, &kxx, &dxx);
        pair_sums(r, x, r->y, 0, &kxy, &dxy);
        pair_sums(r, r->y, r->y, 1, &kyy, &dyy);
        values[1] = kxx / (dn * (dn - 1)) - 2.0 * kxy / (dn * dn) + kyy / (dn * (dn - 1));
        values[2] = 2.0 * dxy / (dn * dn) - dxx / (dn * (dn - 1)) - dyy / (dn * (dn - 1));
    }
    if (r->k) {
        const wgf_gmm *gm = wgf_target_gmm(r->target);
        const double *w = wgf_gmm_weights(gm);
        wgf_gmm_assign(gm, b->n, x, r->frac);
        double worst = 0.0;
        for (size_t j = 0; j < r->k; j++) {
            values[3 + j] = r->frac[j];
            worst = fmax(worst, fabs(r->frac[j] - w[j]));
        }
        values[3 + r->k] = worst;
    }
    return WGF_OK;
}

/* reference.csv: the held-out samples in (x1, x2), drawn over the model's
 * samples plot. The plot draws a curve with lines, so each sample is a
 * short dash of its own (a blank line ends a line in gnuplot). */
static int tref_curve(void *state, double t, FILE *f, wgf_error *err)
{
    (void)t;
    (void)err;
    tref *r = state;
    if (r->d < 2)
        return WGF_OK;
    fprintf(f, "# curve\n");
    for (size_t n = 0; n < r->nd; n++) {
        const double *y = r->y + n * r->d;
        fprintf(f, "%.8g,%.8g\n%.8g,%.8g\n\n", y[0] - 0.01, y[1], y[0] + 0.01, y[1]);
    }
    return WGF_OK;
}

static const wgf_reference_vt tref_vt = {
    .create = tref_create,
    .destroy = tref_destroy,
    .ncolumns = tref_ncolumns,
    .column = tref_column,
    .needs_samples = ref_samples_x,
    .eval = tref_eval,
    .curve = tref_curve,
};

static const wgf_param tref_params[] = {
    {"samples", WGF_PARAM_INT, "1000", WGF_P_MIN, 2, 0, NULL,
     "held-out target samples (and model samples) of the distances"},
    {"bandwidth", WGF_PARAM_LIST, "0.2 0.5 1 2", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "Gaussian bandwidths of the mmd column (their kernels summed)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin tref_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_REFERENCE,
    .name = "target",
    .summary = "generative runs: sliced W2, MMD, energy distance (and mode weights) on held-out target samples",
    .params = tref_params,
    .vtable = &tref_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &tref_plugin : NULL; }
