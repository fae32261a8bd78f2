/* dist.c: initial laws lambda (MATH.md 1 and 6). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gsl/gsl_randist.h>

#include "internal.h"

typedef enum { DIST_GAUSSIAN, DIST_BARENBLATT, DIST_UNIFORM, DIST_FILE } dist_type;

struct wgf_dist {
    dist_type type;
    size_t d;
    /* gaussian */
    double *mean, *cov, *chol; /* chol: lower Cholesky factor of cov */
    double logdet_half;        /* sum log L_ii */
    /* barenblatt */
    wgf_barenblatt bb;
    double t0;
    /* uniform */
    double *low, *high, log_volume;
    /* file */
    double *data;
    size_t ndata;
};

static const wgf_param dist_schema[] = {
    {"type", WGF_PARAM_CHOICE, "gaussian", 0, 0, 0, "gaussian|barenblatt|uniform|file",
     "the initial law lambda"},
    {"mean", WGF_PARAM_VECTOR, "0", 0, 0, 0, NULL, "gaussian: mean"},
    {"cov", WGF_PARAM_MATRIX, "identity", 0, 0, 0, NULL, "gaussian: covariance (SPD)"},
    {"m", WGF_PARAM_DOUBLE, "2", WGF_P_MIN | WGF_P_MIN_OPEN, 1, 0, NULL,
     "barenblatt: porous-medium exponent m > 1"},
    {"t0", WGF_PARAM_DOUBLE, "0.1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "barenblatt: time of the profile (Barenblatt's clock)"},
    {"low", WGF_PARAM_VECTOR, "-1", 0, 0, 0, NULL, "uniform: lower corner of the box"},
    {"high", WGF_PARAM_VECTOR, "1", 0, 0, 0, NULL, "uniform: upper corner of the box"},
    {"file", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL,
     "file: CSV of samples, one per line, dim columns (relative to the experiment file)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

const wgf_param *wgf_dist_schema(void) { return dist_schema; }

void wgf_dist_free(wgf_dist *dist)
{
    if (!dist)
        return;
    wgf_free(dist->mean);
    wgf_free(dist->cov);
    wgf_free(dist->chol);
    wgf_free(dist->low);
    wgf_free(dist->high);
    free(dist->data);
    free(dist);
}

static int gaussian_init(wgf_dist *g, const wgf_section *sec, wgf_error *err)
{
    size_t d = g->d, len = 0;
    g->mean = wgf_alloc_doubles(d);
    g->cov = wgf_alloc_doubles(d * d);
    g->chol = wgf_alloc_doubles(d * d);
    if (!g->mean || !g->cov || !g->chol)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    memcpy(g->mean, wgf_section_vector(sec, "mean", &len), d * sizeof(double));
    memcpy(g->cov, wgf_section_matrix(sec, "cov"), d * d * sizeof(double));
    /* The factorisation reads the lower triangle only: a non-symmetric
     * matrix would be taken for another one, and the covariance handed to
     * references (wgf_dist_gaussian) would not be the law's. */
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < i; j++) {
            double a = g->cov[i * d + j], b = g->cov[j * d + i];
            if (fabs(a - b) > 1e-10 * sqrt(fabs(g->cov[i * d + i] * g->cov[j * d + j])))
                return wgf_section_error(sec, "cov", err,
                                         "the covariance is not symmetric: entry (%zu,%zu) is %g, "
                                         "entry (%zu,%zu) is %g",
                                         i + 1, j + 1, a, j + 1, i + 1, b);
        }
    /* A diagonal covariance (identity, a scalar, diag: the usual case) is
     * its own factorisation; a dense Cholesky would cost d^3/3 for nothing. */
    int diagonal = 1;
    for (size_t i = 0; i < d * d && diagonal; i++)
        diagonal = i % (d + 1) == 0 || g->cov[i] == 0.0;
    if (diagonal) {
        memset(g->chol, 0, d * d * sizeof(double));
        for (size_t i = 0; i < d; i++) {
            if (!(g->cov[i * d + i] > 0.0) || !isfinite(g->cov[i * d + i]))
                return wgf_section_error(sec, "cov", err,
                                         "the covariance is not symmetric positive definite "
                                         "(diagonal entry %zu is %g)", i + 1, g->cov[i * d + i]);
            g->chol[i * d + i] = sqrt(g->cov[i * d + i]);
        }
    } else {
        wgf_error e2;
        if (wgf_cholesky(d, g->cov, g->chol, &e2) != WGF_OK)
            return wgf_section_error(sec, "cov", err, "the covariance is not symmetric positive definite");
    }
    g->logdet_half = 0;
    for (size_t i = 0; i < d; i++)
        g->logdet_half += log(g->chol[i * d + i]);
    return WGF_OK;
}

static int file_init(wgf_dist *f, const wgf_section *sec, wgf_error *err)
{
    if (!wgf_section_has(sec, "file"))
        return wgf_section_error(sec, "type", err, "type = file needs the key file (a CSV of samples)");
    char *path = wgf_path_beside(wgf_section_file(sec), wgf_section_string(sec, "file"),
                                 strlen(wgf_section_string(sec, "file")));
    if (!path)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    int rc = wgf_samples_read(path, f->d, &f->data, &f->ndata, err);
    if (rc != WGF_OK && rc != WGF_ENOMEM) { /* named by the experiment's key, then the data file's line */
        char msg[WGF_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        rc = wgf_section_error(sec, "file", err, "%s", msg);
    }
    free(path);
    return rc;
}

int wgf_dist_create(wgf_dist **out, const wgf_section *sec, wgf_error *err)
{
    *out = NULL;
    wgf_dist *dist = calloc(1, sizeof *dist);
    if (!dist)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    dist->d = wgf_section_dim(sec);
    const char *type = wgf_section_string(sec, "type");
    int rc = WGF_OK;
    if (strcmp(type, "gaussian") == 0) {
        dist->type = DIST_GAUSSIAN;
        rc = gaussian_init(dist, sec, err);
    } else if (strcmp(type, "barenblatt") == 0) {
        dist->type = DIST_BARENBLATT;
        dist->t0 = wgf_section_double(sec, "t0");
        rc = wgf_barenblatt_init(&dist->bb, dist->d, wgf_section_double(sec, "m"), err);
    } else if (strcmp(type, "uniform") == 0) {
        size_t len;
        dist->type = DIST_UNIFORM;
        dist->low = wgf_alloc_doubles(dist->d);
        dist->high = wgf_alloc_doubles(dist->d);
        if (!dist->low || !dist->high)
            rc = wgf_error_set(err, WGF_ENOMEM, "out of memory");
        else {
            memcpy(dist->low, wgf_section_vector(sec, "low", &len), dist->d * sizeof(double));
            memcpy(dist->high, wgf_section_vector(sec, "high", &len), dist->d * sizeof(double));
            for (size_t i = 0; i < dist->d && rc == WGF_OK; i++) {
                if (!(dist->high[i] > dist->low[i]))
                    rc = wgf_section_error(sec, "high", err, "coordinate %zu: high must exceed low", i + 1);
                dist->log_volume += log(dist->high[i] - dist->low[i]);
            }
        }
    } else {
        dist->type = DIST_FILE;
        rc = file_init(dist, sec, err);
    }
    if (rc != WGF_OK) {
        wgf_dist_free(dist);
        return rc;
    }
    *out = dist;
    return WGF_OK;
}

const char *wgf_dist_type(const wgf_dist *dist)
{
    static const char *const names[] = {"gaussian", "barenblatt", "uniform", "file"};
    return names[dist->type];
}

size_t wgf_dist_dim(const wgf_dist *dist) { return dist->d; }

unsigned wgf_dist_provides(const wgf_dist *dist)
{
    switch (dist->type) {
    case DIST_GAUSSIAN:
    case DIST_BARENBLATT: return WGF_DIST_DENSITY | WGF_DIST_SCORE;
    case DIST_UNIFORM: return WGF_DIST_DENSITY;
    default: return 0;
    }
}

int wgf_dist_sample(const wgf_dist *dist, gsl_rng *rng, size_t n, double *z, wgf_error *err)
{
    size_t d = dist->d;
    switch (dist->type) {
    case DIST_GAUSSIAN:
        for (size_t k = 0; k < n; k++) {
            double *x = z + k * d;
            /* x = mean + L e with e ~ N(0, I); draw e first, then multiply from
             * the bottom row up so x can hold e. */
            for (size_t i = 0; i < d; i++)
                x[i] = gsl_ran_gaussian_ziggurat(rng, 1.0);
            for (size_t i = d; i-- > 0;) {
                double acc = 0;
                for (size_t j = 0; j <= i; j++)
                    acc += dist->chol[i * d + j] * x[j];
                x[i] = dist->mean[i] + acc;
            }
        }
        return WGF_OK;
    case DIST_BARENBLATT:
        wgf_barenblatt_sample(&dist->bb, dist->t0, rng, n, z);
        return WGF_OK;
    case DIST_UNIFORM:
        for (size_t k = 0; k < n; k++)
            for (size_t i = 0; i < d; i++)
                z[k * d + i] = dist->low[i] + (dist->high[i] - dist->low[i]) * gsl_rng_uniform(rng);
        return WGF_OK;
    case DIST_FILE:
        for (size_t k = 0; k < n; k++) {
            size_t row = (size_t)gsl_rng_uniform_int(rng, dist->ndata);
            memcpy(z + k * d, dist->data + row * d, d * sizeof(double));
        }
        return WGF_OK;
    }
    return wgf_error_set(err, WGF_EINVAL, "unknown law");
}

int wgf_dist_log_density(const wgf_dist *dist, size_t n, const double *z, double *lp, wgf_error *err)
{
    size_t d = dist->d;
    switch (dist->type) {
    case DIST_GAUSSIAN: {
        double c = -0.5 * (double)d * log(2 * M_PI) - dist->logdet_half;
        double y[64], *ybuf = d <= 64 ? y : malloc(d * sizeof(double));
        if (!ybuf)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
        for (size_t k = 0; k < n; k++) {
            /* y = L^{-1} (z - mean) by forward substitution; log p = c - |y|^2/2 */
            double q = 0;
            for (size_t i = 0; i < d; i++) {
                double acc = z[k * d + i] - dist->mean[i];
                for (size_t j = 0; j < i; j++)
                    acc -= dist->chol[i * d + j] * ybuf[j];
                ybuf[i] = acc / dist->chol[i * d + i];
                q += ybuf[i] * ybuf[i];
            }
            lp[k] = c - 0.5 * q;
        }
        if (ybuf != y)
            free(ybuf);
        return WGF_OK;
    }
    case DIST_BARENBLATT:
        wgf_barenblatt_log_density(&dist->bb, dist->t0, n, z, lp);
        return WGF_OK;
    case DIST_UNIFORM:
        /* -inf outside the box, as for the Barenblatt profile outside its
         * support (the samples are all inside: [low, high)) */
        for (size_t k = 0; k < n; k++) {
            lp[k] = -dist->log_volume;
            for (size_t i = 0; i < d; i++)
                if (!(z[k * d + i] >= dist->low[i] && z[k * d + i] <= dist->high[i]))
                    lp[k] = -INFINITY;
        }
        return WGF_OK;
    default:
        return wgf_error_set(err, WGF_EUNSUP, "samples read from a file have no density");
    }
}

int wgf_dist_score(const wgf_dist *dist, size_t n, const double *z, double *s, wgf_error *err)
{
    size_t d = dist->d;
    switch (dist->type) {
    case DIST_GAUSSIAN: {
        double y[64], *ybuf = d <= 64 ? y : malloc(d * sizeof(double));
        if (!ybuf)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
        for (size_t k = 0; k < n; k++) {
            /* s = -C^{-1}(z - mean) = -L^{-T} L^{-1} (z - mean) */
            for (size_t i = 0; i < d; i++) {
                double acc = z[k * d + i] - dist->mean[i];
                for (size_t j = 0; j < i; j++)
                    acc -= dist->chol[i * d + j] * ybuf[j];
                ybuf[i] = acc / dist->chol[i * d + i];
            }
            for (size_t i = d; i-- > 0;) {
                double acc = ybuf[i];
                for (size_t j = i + 1; j < d; j++)
                    acc -= dist->chol[j * d + i] * ybuf[j];
                ybuf[i] = acc / dist->chol[i * d + i];
            }
            for (size_t i = 0; i < d; i++)
                s[k * d + i] = -ybuf[i];
        }
        if (ybuf != y)
            free(ybuf);
        return WGF_OK;
    }
    case DIST_BARENBLATT:
        wgf_barenblatt_score(&dist->bb, dist->t0, n, z, s);
        return WGF_OK;
    case DIST_UNIFORM:
        return wgf_error_set(err, WGF_EUNSUP, "the uniform law has no finite score");
    default:
        return wgf_error_set(err, WGF_EUNSUP, "samples read from a file have no score");
    }
}

int wgf_dist_gaussian(const wgf_dist *dist, const double **mean, const double **cov)
{
    if (dist->type != DIST_GAUSSIAN)
        return WGF_EUNSUP;
    if (mean)
        *mean = dist->mean;
    if (cov)
        *cov = dist->cov;
    return WGF_OK;
}
