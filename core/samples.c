/* samples.c: targets known by samples, CSV files and named generators
 * (wgf/samples.h, doc/math.md 2.1). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gsl/gsl_randist.h>

#include "internal.h"
#include "wgf/samples.h"

/* ------------------------------------------------------------ CSV files */

static int is_end(char c) { return c == '\n' || c == '\r' || c == '\0'; }

int wgf_samples_read(const char *path, size_t dim, double **x, size_t *n, wgf_error *err)
{
    *x = NULL;
    *n = 0;
    if (dim == 0)
        return wgf_error_set(err, WGF_EINVAL, "%s: dimension 0", path);
    FILE *in = fopen(path, "r");
    if (!in)
        return wgf_error_set(err, WGF_EIO, "cannot open %s: %s", path, strerror(errno));
    /* A device or a pipe (/dev/zero) would be read forever; a file larger than memory cannot be
     * held. */
    struct stat st;
    int regular = fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode);
    if (!regular || (unsigned long long)st.st_size > (unsigned long long)wgf_mem_available() / 2) {
        int rc = !regular ? wgf_error_set(err, WGF_EIO, "%s is not a regular file", path)
                          : wgf_error_set(err, WGF_EIO, "%s is too large (%lld bytes) for memory", path,
                                          (long long)st.st_size);
        fclose(in);
        return rc;
    }
    double *data = NULL;
    size_t cap = 0, rows = 0, lineno = 0, lcap = 0;
    char *line = NULL;
    int rc = WGF_OK, header_allowed = 1;
    while (rc == WGF_OK && getline(&line, &lcap, in) != -1) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (is_end(*p) || *p == '#')
            continue;
        if (rows == cap) {
            size_t ncap = cap ? 2 * cap : 1024, bytes;
            if (__builtin_mul_overflow(ncap, dim * sizeof(double), &bytes)) {
                rc = wgf_error_set(err, WGF_ENOMEM, "%s: too many samples", path);
                break;
            }
            double *nd = realloc(data, bytes);
            if (!nd) {
                rc = wgf_error_set(err, WGF_ENOMEM, "out of memory reading %s", path);
                break;
            }
            data = nd;
            cap = ncap;
        }
        int header = 0;
        for (size_t i = 0; i < dim; i++) {
            char *end;
            double v = strtod(p, &end);
            if (end == p || !isfinite(v)) {
                if (header_allowed && i == 0) {
                    header = 1; /* a header row (x1,x2,... as wgf writes them) */
                    break;
                }
                rc = wgf_error_set(err, WGF_EINVAL,
                                   "%s:%zu: expected %zu finite numbers separated by commas or spaces, "
                                   "found %zu",
                                   path, lineno, dim, i);
                break;
            }
            data[rows * dim + i] = v;
            p = end;
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
        }
        header_allowed = 0;
        if (header || rc != WGF_OK)
            continue;
        /* More columns than dim: a file for another dimension, or with an
         * index column; taking the first columns would hide the mistake. */
        if (!is_end(*p))
            rc = wgf_error_set(err, WGF_EINVAL,
                               "%s:%zu: expected %zu numbers separated by commas or spaces, found more "
                               "(the run has dim = %zu)",
                               path, lineno, dim, dim);
        else
            rows++;
    }
    free(line);
    fclose(in);
    if (rc == WGF_OK && rows == 0)
        rc = wgf_error_set(err, WGF_EINVAL, "%s: no samples", path);
    if (rc != WGF_OK) {
        free(data);
        return rc;
    }
    *x = data;
    *n = rows;
    return WGF_OK;
}

/* ------------------------------------------------------ 2-D generators */

void wgf_samples_moons(gsl_rng *rng, size_t n, double noise, double *x)
{
    for (size_t k = 0; k < n; k++) {
        double t = M_PI * gsl_rng_uniform(rng), a, b;
        if (gsl_rng_uniform_int(rng, 2) == 0) {
            a = cos(t);
            b = sin(t);
        } else {
            a = 1.0 - cos(t);
            b = 0.5 - sin(t);
        }
        a += noise * gsl_ran_gaussian_ziggurat(rng, 1.0);
        b += noise * gsl_ran_gaussian_ziggurat(rng, 1.0);
        x[2 * k] = 2.0 * a - 1.0;
        x[2 * k + 1] = 2.0 * b - 0.2;
    }
}

void wgf_samples_8gaussians(gsl_rng *rng, size_t n, double noise, double *x)
{
    for (size_t k = 0; k < n; k++) {
        double ang = (double)gsl_rng_uniform_int(rng, 8) * M_PI / 4.0;
        x[2 * k] = 2.0 * cos(ang) + noise * gsl_ran_gaussian_ziggurat(rng, 1.0);
        x[2 * k + 1] = 2.0 * sin(ang) + noise * gsl_ran_gaussian_ziggurat(rng, 1.0);
    }
}

void wgf_samples_rings(gsl_rng *rng, size_t n, double noise, double *x)
{
    for (size_t k = 0; k < n; k++) {
        /* radius 1 with probability 1/3, 2 with 2/3: uniform along the length */
        double r = gsl_rng_uniform(rng) < 1.0 / 3.0 ? 1.0 : 2.0;
        double ang = 2.0 * M_PI * gsl_rng_uniform(rng);
        x[2 * k] = r * cos(ang) + noise * gsl_ran_gaussian_ziggurat(rng, 1.0);
        x[2 * k + 1] = r * sin(ang) + noise * gsl_ran_gaussian_ziggurat(rng, 1.0);
    }
}

void wgf_samples_checkerboard(gsl_rng *rng, size_t n, double *x)
{
    for (size_t k = 0; k < n; k++) {
        double a = 4.0 * gsl_rng_uniform(rng) - 2.0;
        long col = (long)floor(a); /* -2..1 */
        /* a row of the same parity as the column: -2 or 0, or -1 or 1 */
        long row = 2 * (long)gsl_rng_uniform_int(rng, 2) - 2 + (col % 2 != 0 ? 1 : 0);
        x[2 * k] = a;
        x[2 * k + 1] = (double)row + gsl_rng_uniform(rng);
    }
}

/* ------------------------------------------------------ Gaussian mixtures */

struct wgf_gmm {
    size_t d, k;
    double *w;    /* k, normalised */
    double *mean; /* k x d */
    double *chol; /* k x d x d, lower Cholesky factors */
    gsl_ran_discrete_t *pick;
};

void wgf_gmm_free(wgf_gmm *g)
{
    if (!g)
        return;
    free(g->w);
    free(g->mean);
    free(g->chol);
    if (g->pick)
        gsl_ran_discrete_free(g->pick);
    free(g);
}

int wgf_gmm_create(wgf_gmm **out, size_t d, size_t k, const double *weights, const double *means,
                   size_t ncov, const double *covs, wgf_error *err)
{
    *out = NULL;
    if (d == 0 || k == 0)
        return wgf_error_set(err, WGF_EINVAL, "a mixture needs d >= 1 and k >= 1 components");
    if (ncov != k && ncov != k * d && ncov != k * d * d)
        return wgf_error_set(err, WGF_EINVAL,
                             "%zu covariance numbers for %zu components in dimension %zu (allowed: %zu "
                             "variances, %zu diagonal entries or %zu matrix entries)",
                             ncov, k, d, k, k * d, k * d * d);
    wgf_gmm *g = calloc(1, sizeof *g);
    if (!g)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    g->d = d;
    g->k = k;
    g->w = malloc(k * sizeof *g->w);
    g->mean = malloc(k * d * sizeof *g->mean);
    g->chol = calloc(k * d * d, sizeof *g->chol);
    if (!g->w || !g->mean || !g->chol) {
        wgf_gmm_free(g);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    double total = 0.0;
    for (size_t j = 0; j < k; j++) {
        if (!(weights[j] > 0.0) || !isfinite(weights[j])) {
            wgf_gmm_free(g);
            return wgf_error_set(err, WGF_EINVAL, "weight %zu is %g (weights are positive)", j + 1,
                                 weights[j]);
        }
        total += weights[j];
    }
    for (size_t j = 0; j < k; j++)
        g->w[j] = weights[j] / total;
    memcpy(g->mean, means, k * d * sizeof *g->mean);
    int rc = WGF_OK;
    for (size_t j = 0; j < k && rc == WGF_OK; j++) {
        double *L = g->chol + j * d * d;
        if (ncov == k * d * d) {
            wgf_error e2;
            const double *C = covs + j * d * d;
            for (size_t a = 0; a < d && rc == WGF_OK; a++)
                for (size_t b = 0; b < a; b++)
                    if (fabs(C[a * d + b] - C[b * d + a]) >
                        1e-10 * sqrt(fabs(C[a * d + a] * C[b * d + b]))) {
                        rc = wgf_error_set(err, WGF_EINVAL, "covariance %zu is not symmetric", j + 1);
                        break;
                    }
            if (rc == WGF_OK && wgf_cholesky(d, C, L, &e2) != WGF_OK)
                rc = wgf_error_set(err, WGF_EINVAL, "covariance %zu is not positive definite", j + 1);
        } else {
            for (size_t a = 0; a < d; a++) {
                double v = ncov == k ? covs[j] : covs[j * d + a];
                if (!(v > 0.0) || !isfinite(v)) {
                    rc = wgf_error_set(err, WGF_EINVAL, "covariance %zu has variance %g (allowed: > 0)",
                                       j + 1, v);
                    break;
                }
                L[a * d + a] = sqrt(v);
            }
        }
    }
    if (rc == WGF_OK && !(g->pick = gsl_ran_discrete_preproc(k, g->w)))
        rc = wgf_error_set(err, WGF_ENOMEM, "out of memory");
    if (rc != WGF_OK) {
        wgf_gmm_free(g);
        return rc;
    }
    *out = g;
    return WGF_OK;
}

size_t wgf_gmm_components(const wgf_gmm *g) { return g->k; }
const double *wgf_gmm_weights(const wgf_gmm *g) { return g->w; }
const double *wgf_gmm_means(const wgf_gmm *g) { return g->mean; }

void wgf_gmm_sample(const wgf_gmm *g, gsl_rng *rng, size_t n, double *x)
{
    size_t d = g->d;
    for (size_t s = 0; s < n; s++) {
        size_t j = g->k == 1 ? 0 : gsl_ran_discrete(rng, g->pick);
        const double *L = g->chol + j * d * d, *m = g->mean + j * d;
        double *xs = x + s * d;
        for (size_t i = 0; i < d; i++)
            xs[i] = gsl_ran_gaussian_ziggurat(rng, 1.0);
        /* x = m + L e, from the bottom row up so that x can hold e */
        for (size_t i = d; i-- > 0;) {
            double acc = 0.0;
            for (size_t a = 0; a <= i; a++)
                acc += L[i * d + a] * xs[a];
            xs[i] = m[i] + acc;
        }
    }
}

void wgf_gmm_assign(const wgf_gmm *g, size_t n, const double *x, double *frac)
{
    size_t d = g->d, k = g->k;
    for (size_t j = 0; j < k; j++)
        frac[j] = 0.0;
    for (size_t s = 0; s < n; s++) {
        size_t best = 0;
        double bd = INFINITY;
        for (size_t j = 0; j < k; j++) {
            double r2 = 0.0;
            for (size_t i = 0; i < d; i++) {
                double y = x[s * d + i] - g->mean[j * d + i];
                r2 += y * y;
            }
            if (r2 < bd) {
                bd = r2;
                best = j;
            }
        }
        frac[best] += 1.0;
    }
    for (size_t j = 0; j < k && n > 0; j++)
        frac[j] /= (double)n;
}

/* ------------------------------------------------------------- targets */

typedef enum { T_GMM, T_MOONS, T_8GAUSS, T_RINGS, T_CHECKER, T_FILE } target_type;

struct wgf_target {
    target_type type;
    size_t d;
    double noise;
    unsigned long seed;
    wgf_gmm *gmm;
    double *train, *held; /* the sets */
    size_t ntrain, nheld;
    int held_fixed; /* the held-out set was drawn at create ([target] heldout) */
};

/* The names of a target's keys: in [target], or among an energy's keys
 * (WGF_TARGET_PARAMS, the older form), where the type is `target` and
 * `heldout` is a file's fraction. */
typedef struct target_keys {
    const char *type, *file, *samples, *seed;
    int legacy;
} target_keys;

static const target_keys energy_keys = {"target", "target_file", "target_samples", "target_seed", 1};
static const target_keys section_keys = {"generator", "file", "samples", "seed", 0};

/* A key's value, or the default when absent: the energy's target keys
 * (WGF_TARGET_PARAMS) have no defaults in the schema, so that a section
 * written back (a run's config.ini) holds only those given, and a run
 * resumed with [target] does not find them beside it. */
static double key_double(const wgf_section *sec, const char *key, double def)
{
    return wgf_section_has(sec, key) ? wgf_section_double(sec, key) : def;
}

static long key_int(const wgf_section *sec, const char *key, long def)
{
    return wgf_section_has(sec, key) ? wgf_section_int(sec, key) : def;
}

static const double *key_vector(const wgf_section *sec, const char *key, const double *def, size_t *n)
{
    if (wgf_section_has(sec, key))
        return wgf_section_vector(sec, key, n);
    *n = 1;
    return def;
}

static const wgf_param target_schema[] = {
    {"generator", WGF_PARAM_CHOICE, NULL, 0, 0, 0, "mixture|moons|8gaussians|rings|checkerboard",
     "the target nu drawn by a generator: a Gaussian mixture (any dim) or a 2-D one (or give file)"},
    {"file", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL,
     "the target nu as a CSV of samples, one a row (relative to the experiment file)"},
    {"seed", WGF_PARAM_INT, "1", WGF_P_MIN, 0, 0, NULL,
     "seed of the target's draws and of a file's split (independent of the run's seed)"},
    {"samples", WGF_PARAM_INT, "1000", WGF_P_MIN, 2, 0, NULL,
     "M, the training samples the energy sees (file: at most the rows not held out; default all)"},
    {"heldout", WGF_PARAM_INT, NULL, WGF_P_MIN, 2, 0, NULL,
     "held-out samples the reference compares with (default: 1000 draws; file: a fifth of the rows)"},
    {"noise", WGF_PARAM_DOUBLE, "0.1", WGF_P_MIN, 0, 0, NULL,
     "moons, 8gaussians, rings: standard deviation of the jitter"},
    {"weights", WGF_PARAM_LIST, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "mixture: the k component weights (normalised)"},
    {"means", WGF_PARAM_LIST, "0", 0, 0, 0, NULL,
     "mixture: k x dim numbers, component after component (one number: every entry)"},
    {"covs", WGF_PARAM_LIST, "1", 0, 0, 0, NULL,
     "mixture: k variances, k x dim diagonals or k x dim x dim matrices (one number: every component)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

const wgf_param *wgf_target_schema(void) { return target_schema; }

void wgf_target_free(wgf_target *t)
{
    if (!t)
        return;
    wgf_gmm_free(t->gmm);
    free(t->train);
    free(t->held);
    free(t);
}

size_t wgf_target_dim(const wgf_target *t) { return t->d; }
const wgf_gmm *wgf_target_gmm(const wgf_target *t) { return t->gmm; }

/* n fresh draws of a generator from the stream of set. */
static int draw(const wgf_target *t, int set, size_t n, double *x, wgf_error *err)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    wgf_rng_set(r, t->seed, WGF_TARGET_FAMILY, (unsigned long)set, 0);
    switch (t->type) {
    case T_GMM: wgf_gmm_sample(t->gmm, r, n, x); break;
    case T_MOONS: wgf_samples_moons(r, n, t->noise, x); break;
    case T_8GAUSS: wgf_samples_8gaussians(r, n, t->noise, x); break;
    case T_RINGS: wgf_samples_rings(r, n, t->noise, x); break;
    default: wgf_samples_checkerboard(r, n, x); break;
    }
    gsl_rng_free(r);
    return WGF_OK;
}

static double *alloc_rows(size_t n, size_t d)
{
    size_t bytes;
    if (n == 0 || __builtin_mul_overflow(n, d * sizeof(double), &bytes))
        return NULL;
    return malloc(bytes);
}

/* A file: read, shuffle with the target's seed, hold out the first rows. */
static int file_target(wgf_target *t, const wgf_section *sec, const target_keys *k, wgf_error *err)
{
    if (!wgf_section_has(sec, k->file))
        return wgf_section_error(sec, "target", err, "target = file needs the key target_file (a CSV "
                                                     "of samples)");
    const char *name = wgf_section_string(sec, k->file);
    char *path = wgf_path_beside(wgf_section_file(sec), name, strlen(name));
    if (!path)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    double *rows;
    size_t n, d = t->d;
    int rc = wgf_samples_read(path, d, &rows, &n, err);
    free(path);
    if (rc == WGF_EIO) {
        char msg[WGF_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return wgf_section_error(sec, k->file, err, "%s", msg);
    }
    if (rc != WGF_OK)
        return rc;
    size_t nh, ntr;
    if (k->legacy)
        nh = (size_t)floor(key_double(sec, "heldout", 0.2) * (double)n + 0.5);
    else
        nh = wgf_section_has(sec, "heldout") ? (size_t)wgf_section_int(sec, "heldout")
                                             : (size_t)floor(0.2 * (double)n + 0.5);
    if (nh < 2 || nh + 2 > n) {
        free(rows);
        return wgf_section_error(sec, k->legacy || !wgf_section_has(sec, "heldout") ? k->file : "heldout",
                                 err, "%zu rows, %zu of them held out: both sets need at least 2", n, nh);
    }
    ntr = n - nh;
    if (!k->legacy && wgf_section_given(sec, k->samples)) {
        size_t want = (size_t)key_int(sec, k->samples, 1000);
        if (want > ntr) {
            free(rows);
            return wgf_section_error(sec, k->samples, err,
                                     "%zu training samples asked for, and the file has %zu rows not held "
                                     "out (at most %zu)", want, ntr, ntr);
        }
        ntr = want;
    }
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    double *tmp = malloc(d * sizeof *tmp);
    t->held = alloc_rows(nh, d);
    t->train = alloc_rows(ntr, d);
    if (!r || !tmp || !t->held || !t->train) {
        if (r)
            gsl_rng_free(r);
        free(tmp);
        free(rows);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    wgf_rng_set(r, t->seed, WGF_TARGET_FAMILY, 2, 0);
    for (size_t i = n; i-- > 1;) { /* Fisher-Yates */
        size_t j = (size_t)gsl_rng_uniform_int(r, i + 1);
        memcpy(tmp, rows + i * d, d * sizeof *tmp);
        memcpy(rows + i * d, rows + j * d, d * sizeof *tmp);
        memcpy(rows + j * d, tmp, d * sizeof *tmp);
    }
    memcpy(t->held, rows, nh * d * sizeof *rows);
    memcpy(t->train, rows + nh * d, ntr * d * sizeof *rows);
    t->nheld = nh;
    t->ntrain = ntr;
    t->held_fixed = 1;
    gsl_rng_free(r);
    free(tmp);
    free(rows);
    return WGF_OK;
}

/* A gmm from the keys weights, means, covs (one number fills a list). */
static int gmm_target(wgf_target *t, const wgf_section *sec, wgf_error *err)
{
    size_t d = t->d, k, nm, nc;
    static const double one = 1.0, zero = 0.0;
    const double *w = key_vector(sec, "weights", &one, &k);
    const double *m = key_vector(sec, "means", &zero, &nm);
    const double *c = key_vector(sec, "covs", &one, &nc);
    if (nm != 1 && nm != k * d)
        return wgf_section_error(sec, "means", err,
                                 "%zu numbers for %zu components in dimension %zu (allowed: 1 or %zu)",
                                 nm, k, d, k * d);
    if (nc != 1 && nc != k && nc != k * d && nc != k * d * d)
        return wgf_section_error(sec, "covs", err,
                                 "%zu numbers for %zu components in dimension %zu (allowed: 1, %zu, "
                                 "%zu or %zu)",
                                 nc, k, d, k, k * d, k * d * d);
    double *mm = malloc(k * d * sizeof *mm), *cc = malloc((nc == 1 ? k : nc) * sizeof *cc);
    if (!mm || !cc) {
        free(mm);
        free(cc);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < k * d; i++)
        mm[i] = nm == 1 ? m[0] : m[i];
    for (size_t i = 0; i < (nc == 1 ? k : nc); i++)
        cc[i] = nc == 1 ? c[0] : c[i];
    int rc = wgf_gmm_create(&t->gmm, d, k, w, mm, nc == 1 ? k : nc, cc, err);
    free(mm);
    free(cc);
    if (rc == WGF_EINVAL) {
        char msg[WGF_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return wgf_section_error(sec, strstr(msg, "weight") ? "weights" : "covs", err, "%s", msg);
    }
    return rc;
}

/* The target's type from its keys: `target` among an energy's keys;
 * `generator` or `file` (one of them) in [target]. */
static int target_type_of(const wgf_section *sec, const target_keys *k, target_type *type, wgf_error *err)
{
    static const char *const names[] = {"gmm", "moons", "8gaussians", "rings", "checkerboard", "file"};
    const char *name = NULL;
    if (k->legacy)
        name = wgf_section_has(sec, k->type) ? wgf_section_string(sec, k->type) : "gmm";
    else if (wgf_section_has(sec, k->file) && wgf_section_has(sec, k->type))
        return wgf_section_error(sec, k->file, err, "a target is a file or a generator: give file or "
                                 "generator = %s, not both", wgf_section_string(sec, k->type));
    else if (wgf_section_has(sec, k->file))
        name = "file";
    else if (!wgf_section_has(sec, k->type))
        return wgf_section_error(sec, k->type, err, "the target needs generator = mixture | moons | "
                                 "8gaussians | rings | checkerboard, or file = a CSV of samples");
    else {
        name = wgf_section_string(sec, k->type);
        if (strcmp(name, "mixture") == 0)
            name = "gmm";
    }
    for (int i = 0; i < 6; i++)
        if (strcmp(name, names[i]) == 0) {
            *type = (target_type)i;
            return WGF_OK;
        }
    /* the schema's choices: unreachable from a validated section */
    return wgf_section_error(sec, k->type, err, "unknown target '%s'", name);
}

static int target_build(wgf_target **out, const wgf_section *sec, const target_keys *k, wgf_error *err)
{
    *out = NULL;
    wgf_target *t = calloc(1, sizeof *t);
    if (!t)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    t->d = wgf_section_dim(sec);
    t->noise = key_double(sec, "noise", 0.1);
    t->seed = (unsigned long)key_int(sec, k->seed, 1);
    int rc = target_type_of(sec, k, &t->type, err);
    if (rc == WGF_OK && t->type == T_FILE)
        rc = file_target(t, sec, k, err);
    else if (rc == WGF_OK && t->type == T_GMM)
        rc = gmm_target(t, sec, err);
    else if (rc == WGF_OK && t->d != 2)
        rc = wgf_section_error(sec, k->type, err, "%s is a 2-D target and the run has dim = %zu "
                               "(in any dimension: %s)", wgf_section_string(sec, k->type), t->d,
                               k->legacy ? "gmm or file" : "mixture, or file");
    if (rc == WGF_OK && t->type != T_FILE) {
        t->ntrain = (size_t)key_int(sec, k->samples, 1000);
        if (!(t->train = alloc_rows(t->ntrain, t->d)))
            rc = wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu target samples", t->ntrain);
        else
            rc = draw(t, WGF_TARGET_TRAIN, t->ntrain, t->train, err);
        /* [target]: the held-out set now, of the size asked for, so that every
         * component reads the same samples whatever it asks for */
        if (rc == WGF_OK && !k->legacy) {
            t->nheld = (size_t)key_int(sec, "heldout", 1000);
            t->held_fixed = 1;
            if (!(t->held = alloc_rows(t->nheld, t->d)))
                rc = wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu held-out samples", t->nheld);
            else
                rc = draw(t, WGF_TARGET_HELDOUT, t->nheld, t->held, err);
        }
    }
    if (rc != WGF_OK) {
        wgf_target_free(t);
        return rc;
    }
    *out = t;
    return WGF_OK;
}

int wgf_target_create(wgf_target **out, const wgf_section *sec, wgf_error *err)
{
    return target_build(out, sec, &energy_keys, err);
}

int wgf_target_create_section(wgf_target **out, const wgf_section *sec, wgf_error *err)
{
    return target_build(out, sec, &section_keys, err);
}

/* The keys of WGF_TARGET_PARAMS. */
static const char *const energy_target_keys[] = {"target", "target_samples", "target_seed",
                                                 "noise",  "weights",        "means",
                                                 "covs",   "target_file",    "heldout"};

int wgf_target_open(wgf_target **t, wgf_target **owned, wgf_target *given, const wgf_section *sec,
                    wgf_error *err)
{
    *t = *owned = NULL;
    if (!given) {
        int rc = wgf_target_create(owned, sec, err);
        *t = *owned;
        return rc;
    }
    /* one target: a key of the older form beside [target] would be ignored */
    for (size_t i = 0; i < sizeof energy_target_keys / sizeof energy_target_keys[0]; i++)
        if (wgf_section_has(sec, energy_target_keys[i]))
            return wgf_section_error(sec, energy_target_keys[i], err,
                                     "the target is the [target] section's: give its keys there (the "
                                     "keys target, target_samples, target_seed, noise, weights, means, "
                                     "covs, target_file and heldout of an energy are its older form)");
    if (wgf_target_dim(given) != wgf_section_dim(sec))
        return wgf_section_error(sec, NULL, err, "the target has dimension %zu and this section %zu",
                                 wgf_target_dim(given), wgf_section_dim(sec));
    *t = given;
    return WGF_OK;
}

int wgf_target_set(wgf_target *t, int set, size_t nheld, const double **x, size_t *n, wgf_error *err)
{
    if (set == WGF_TARGET_TRAIN) {
        *x = t->train;
        *n = t->ntrain;
        return WGF_OK;
    }
    if (!t->held_fixed && nheld > t->nheld) {
        double *h = alloc_rows(nheld, t->d);
        if (!h)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu held-out samples", nheld);
        free(t->held);
        t->held = h;
        t->nheld = nheld;
        int rc = draw(t, WGF_TARGET_HELDOUT, nheld, h, err);
        if (rc != WGF_OK)
            return rc;
    }
    *x = t->held;
    *n = t->nheld;
    return WGF_OK;
}
