/* ou.c: the Ornstein-Uhlenbeck reference. The Fokker-Planck equation with
 * V = 1/2 (x - mu)^T Sigma^{-1} (x - mu) from a Gaussian stays Gaussian,
 * with closed-form moments (MATH.md 6): errors of the model's mean and
 * covariance, W2 between the two Gaussians, and the symmetric KL divergence
 * between the model and the exact law. For an affine map the model is a
 * Gaussian known exactly (the map's Gaussian push-forward) and all four are
 * closed forms; otherwise the moments are those of the output samples and
 * the symmetric KL is estimated on them from the model's exact
 * log-density (wgf_skl_samples, MATH.md 7), which sees more than moments:
 * a model with the right mean and covariance and the wrong shape has a
 * positive skl. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refcommon.h"
#include <wgf/diagnostics.h>
#include <wgf/dist.h>


typedef struct {
    const wgf_problem *p;
    size_t d;
    int exact_moments;
    double *mu, *Sigma, D;
    const double *m0, *C0;
    double *m_model, *C_model, *m_ref, *C_ref;
} ou;

static const char *const ou_cols[] = {"err_mean", "err_cov", "w2", "skl"};
static const char *const ou_keys[] = {"mean", "cov", "w2", "skl"}; /* summary.ini keeps these names */

static void ou_destroy(void *state)
{
    ou *r = state;
    wgf_free(r->mu);
    wgf_free(r->Sigma);
    wgf_free(r->m_model);
    wgf_free(r->C_model);
    wgf_free(r->m_ref);
    wgf_free(r->C_ref);
    free(r);
}

static int ou_create(const wgf_section *sec, const wgf_reference_setup *setup, void **state, wgf_error *err)
{
    const wgf_problem *p = setup->problem;
    const wgf_section *t;
    const wgf_energy_vt *vt;
    void *es;
    if (!ref_single_term(p, "fpe", &t, &vt, &es) || strcmp(wgf_section_string(t, "potential"), "quadratic") != 0)
        return ref_refuse(sec, err, "ou needs a single energy, fpe with potential = quadratic (weight 1)");
    ou *r = calloc(1, sizeof *r);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    r->p = p;
    size_t d = r->d = wgf_problem_get_info(p)->dim, len;
    if (wgf_dist_gaussian(wgf_problem_get_info(p)->initial, &r->m0, &r->C0) != WGF_OK) {
        free(r);
        return ref_refuse(sec, err, "ou needs initial.type = gaussian");
    }
    r->mu = wgf_alloc_doubles(d);
    r->Sigma = wgf_alloc_doubles(d * d);
    r->m_model = wgf_alloc_doubles(d);
    r->C_model = wgf_alloc_doubles(d * d);
    r->m_ref = wgf_alloc_doubles(d);
    r->C_ref = wgf_alloc_doubles(d * d);
    if (!r->mu || !r->Sigma || !r->m_model || !r->C_model || !r->m_ref || !r->C_ref) {
        ou_destroy(r);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    memcpy(r->mu, wgf_section_vector(t, "mu", &len), d * sizeof(double));
    memcpy(r->Sigma, wgf_section_matrix(t, "sigma"), d * d * sizeof(double));
    r->D = wgf_section_double(t, "diffusion");
    r->exact_moments = wgf_problem_has_gaussian_push(p);
    *state = r;
    return WGF_OK;
}

static size_t ou_ncolumns(void *state)
{
    (void)state;
    return 4;
}

static const char *ou_column(void *state, size_t i)
{
    (void)state;
    return ou_cols[i];
}

static const char *ou_summary_key(void *state, size_t i)
{
    (void)state;
    return ou_keys[i];
}

static int ou_needs_samples(void *state) { return !((ou *)state)->exact_moments; }

static int ou_eval(void *state, const wgf_reference_obs *obs, int full, double *values, wgf_error *err)
{
    (void)full;
    ou *r = state;
    size_t d = r->d;
    int rc = WGF_OK;
    if (r->exact_moments && obs->theta)
        rc = wgf_problem_gaussian_push(r->p, obs->theta, r->m0, r->C0, r->m_model, r->C_model, err);
    else if (obs->samples)
        wgf_moments(obs->samples->n, d, obs->samples->x, r->m_model, r->C_model);
    else
        return wgf_error_set(err, WGF_EINVAL, "ou: neither exact moments nor samples");
    if (rc == WGF_OK)
        rc = wgf_ou_moments(d, r->mu, r->Sigma, r->D, r->m0, r->C0, obs->t, r->m_ref, r->C_ref, err);
    if (rc != WGF_OK)
        return rc;
    values[0] = wgf_dist_l2(d, r->m_model, r->m_ref);
    values[1] = wgf_dist_l2(d * d, r->C_model, r->C_ref);
    rc = wgf_w2_gaussian(d, r->m_model, r->C_model, r->m_ref, r->C_ref, &values[2], err);
    if (rc != WGF_OK)
        return rc;
    if (r->exact_moments && obs->theta)
        return wgf_skl_gaussian(d, r->m_model, r->C_model, r->m_ref, r->C_ref, &values[3], err);
    return wgf_skl_samples(obs->samples->n, d, obs->samples->x, obs->samples->l, r->m_ref, r->C_ref,
                           &values[3], err);
}

/* 1-D: the reference density; otherwise the 2-sigma ellipse of (x1, x2). */
static int ou_curve(void *state, double t, FILE *f, wgf_error *err)
{
    (void)t;
    (void)err;
    ou *r = state;
    size_t d = r->d;
    if (d == 1) {
        double m = r->m_ref[0], v = r->C_ref[0];
        fprintf(f, "# density\n");
        for (int k = 0; k <= 400; k++) {
            double x = m - 5 * sqrt(v) + 10 * sqrt(v) * k / 400.0;
            fprintf(f, "%.8g,%.8g\n", x, exp(-0.5 * (x - m) * (x - m) / v) / sqrt(2 * M_PI * v));
        }
        return WGF_OK;
    }
    double a = r->C_ref[0], bb = r->C_ref[1], c = r->C_ref[d + 1];
    double tr = a + c, det = a * c - bb * bb, disc = sqrt(fmax(0, tr * tr / 4 - det));
    double l1 = tr / 2 + disc, l2 = fmax(0, tr / 2 - disc), th = 0.5 * atan2(2 * bb, a - c);
    fprintf(f, "# curve\n");
    for (int k = 0; k <= 200; k++) {
        double s = 2 * M_PI * k / 200.0, u = 2 * sqrt(l1) * cos(s), v = 2 * sqrt(l2) * sin(s);
        fprintf(f, "%.8g,%.8g\n", r->m_ref[0] + u * cos(th) - v * sin(th), r->m_ref[1] + u * sin(th) + v * cos(th));
    }
    return WGF_OK;
}

static int ou_summary_extra(void *state, FILE *f, wgf_error *err)
{
    (void)err;
    fprintf(f, "moments = %s\n", ((ou *)state)->exact_moments ? "exact (affine map)" : "samples");
    return WGF_OK;
}

static const wgf_reference_vt ou_vt = {
    .create = ou_create,
    .destroy = ou_destroy,
    .ncolumns = ou_ncolumns,
    .column = ou_column,
    .needs_samples = ou_needs_samples,
    .eval = ou_eval,
    .curve = ou_curve,
    .summary_key = ou_summary_key,
    .summary_extra = ou_summary_extra,
};

static const wgf_param ou_params[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin ou_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_REFERENCE,
    .name = "ou",
    .summary = "quadratic Fokker-Planck from a Gaussian: closed-form moments (err_mean, err_cov, w2) and "
               "the symmetric KL to the exact law (skl)",
    .params = ou_params,
    .vtable = &ou_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &ou_plugin : NULL; }
