/* wgf/samples.h: target laws known by samples (doc/math.md 2.1).
 *
 * A generative energy pulls the model toward a data distribution nu that it
 * knows only by samples y_1..y_M: rows of a CSV file, or draws of a named
 * generator with a seed of its own. Energies (the training samples) and
 * references (held-out samples, from a separate stream or the rows the
 * training never sees) build the same target from the same keys, so the
 * helpers are public. Row-major doubles throughout. */
#ifndef WGF_SAMPLES_H
#define WGF_SAMPLES_H

#include <stddef.h>
#include <gsl/gsl_rng.h>
#include "config.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- CSV files ----
 * One sample per line, dim numbers separated by commas or white space; blank
 * lines and lines starting with '#' are skipped, and so is one header row
 * before the first sample (x1,x2,... as wgf writes them). A bad row (not a
 * number, not finite, too few or too many columns) is WGF_EINVAL with
 * "PATH:LINE: ..."; a file with no samples "PATH: no samples". On success
 * *x (n x dim, free with free()) and *n are set; on failure *x is NULL. */
int wgf_samples_read(const char *path, size_t dim, double **x, size_t *n, wgf_error *err);

/* ---- Named 2-D generators (n samples into x, n x 2) ----
 * noise: the standard deviation of the Gaussian jitter of each.
 *   moons: two interleaved half circles (scikit-learn's make_moons), times 2
 *     and shifted by (-1, -0.2) so that the mean is near 0 (as in FFJORD);
 *   8gaussians: equal mixture of N(c_j, noise^2 I), c_j at radius 2 and
 *     angles j pi/4;
 *   rings: concentric circles of radii 1 and 2, points in proportion to the
 *     length, jittered;
 *   checkerboard: uniform on the 8 unit squares of [-2, 2)^2 whose corner
 *     (i, j) has i + j even (no jitter). */
void wgf_samples_moons(gsl_rng *rng, size_t n, double noise, double *x);
void wgf_samples_8gaussians(gsl_rng *rng, size_t n, double noise, double *x);
void wgf_samples_rings(gsl_rng *rng, size_t n, double noise, double *x);
void wgf_samples_checkerboard(gsl_rng *rng, size_t n, double *x);

/* ---- Gaussian mixtures in any dimension ----
 * k components with weights (k, positive, normalised here), means (k x d)
 * and covariances given by ncov numbers: k (variance times I per component),
 * k d (diagonals) or k d d (full, symmetric positive definite). */
typedef struct wgf_gmm wgf_gmm;

int wgf_gmm_create(wgf_gmm **g, size_t d, size_t k, const double *weights, const double *means,
                   size_t ncov, const double *covs, wgf_error *err);
void wgf_gmm_free(wgf_gmm *g);
size_t wgf_gmm_components(const wgf_gmm *g);
const double *wgf_gmm_weights(const wgf_gmm *g); /* k, normalised */
const double *wgf_gmm_means(const wgf_gmm *g);   /* k x d */
void wgf_gmm_sample(const wgf_gmm *g, gsl_rng *rng, size_t n, double *x);
/* The fraction of the n samples x whose nearest mean (Euclidean) is that of
 * component j, into frac (k). */
void wgf_gmm_assign(const wgf_gmm *g, size_t n, const double *x, double *frac);

/* ---- A target from a section's keys ----
 * The target of a run is the core's [target] section (wgf_target_schema):
 * generator = mixture | moons | 8gaussians | rings | checkerboard with its
 * keys, or file = a CSV; seed; samples (training) and heldout. The core
 * builds it once (wgf_target_create_section) and hands it to every
 * component through wgf_problem_info.target: an energy reads the training
 * set, a reference the held-out one.
 *
 * The older form, still read: the keys WGF_TARGET_PARAMS (no defaults in
 * the schema: the code's apply when a key is absent) in an energy's own
 * schema (target = gmm is generator = mixture, target = file with
 * target_file is file, target_samples is samples, target_seed is seed, and
 * heldout a file's fraction), read by wgf_target_create. The same keys give
 * the same samples in both forms. The training set and the held-out set
 * never share a sample: generators draw them from two streams seeded from
 * (seed, WGF_TARGET_FAMILY, set, 0); a file is split once, by a seeded
 * shuffle, into held-out rows and training rows. */
#define WGF_TARGET_FAMILY 0x7a26e7ul

#define WGF_TARGET_PARAMS                                                                           \
    {"target", WGF_PARAM_CHOICE, NULL, 0, 0, 0, "gmm|moons|8gaussians|rings|checkerboard|file",     \
     "the target nu (older form of [target] generator/file; default gmm): a Gaussian mixture (any "  \
     "dim), a 2-D generator, or a CSV file"},                                                        \
    {"target_samples", WGF_PARAM_INT, NULL, WGF_P_MIN, 2, 0, NULL,                                  \
     "M, the training samples of the target (default 1000; [target] samples)"},                      \
    {"target_seed", WGF_PARAM_INT, NULL, WGF_P_MIN, 0, 0, NULL,                                     \
     "seed of the target's draws, independent of the run's (default 1; [target] seed)"},             \
    {"noise", WGF_PARAM_DOUBLE, NULL, WGF_P_MIN, 0, 0, NULL,                                        \
     "2-D generators: standard deviation of the jitter (default 0.1; [target] noise)"},              \
    {"weights", WGF_PARAM_LIST, NULL, WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,                       \
     "gmm: the k component weights, normalised (default 1; [target] weights)"},                      \
    {"means", WGF_PARAM_LIST, NULL, 0, 0, 0, NULL,                                                  \
     "gmm: k x dim numbers, component after component; one number: every entry (default 0; "        \
     "[target] means)"},                                                                             \
    {"covs", WGF_PARAM_LIST, NULL, 0, 0, 0, NULL,                                                   \
     "gmm: k variances, k x dim diagonals or k x dim x dim matrices (default 1; [target] covs)"},    \
    {"target_file", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL,                                          \
     "file: CSV of target samples, relative to the experiment file ([target] file)"},                \
    {"heldout", WGF_PARAM_DOUBLE, NULL, WGF_P_MIN | WGF_P_MIN_OPEN | WGF_P_MAX | WGF_P_MAX_OPEN, 0,  \
     1, NULL, "file: the fraction of rows held out for diagnostics (default 0.2)"}

typedef struct wgf_target wgf_target;

enum { WGF_TARGET_TRAIN = 0, WGF_TARGET_HELDOUT = 1 };

/* The schema of [target]. */
const wgf_param *wgf_target_schema(void);
/* From [target] (the core does this); errors name the key. Both sets are
 * drawn here: heldout samples (default 1000) for a generator. */
int wgf_target_create_section(wgf_target **t, const wgf_section *sec, wgf_error *err);
/* From a section whose schema has WGF_TARGET_PARAMS (the older form);
 * errors name the key. */
int wgf_target_create(wgf_target **t, const wgf_section *sec, wgf_error *err);
/* The target of a component whose section has WGF_TARGET_PARAMS: given
 * (wgf_problem_info.target, the run's [target]) when not NULL, and then a
 * target key in sec is refused, naming it; else built from sec's keys into
 * *owned, which the component frees (*owned is NULL when borrowed). */
int wgf_target_open(wgf_target **t, wgf_target **owned, wgf_target *given, const wgf_section *sec,
                    wgf_error *err);
void wgf_target_free(wgf_target *t);
size_t wgf_target_dim(const wgf_target *t);
/* The set's samples (WGF_TARGET_TRAIN: the training samples; or
 * WGF_TARGET_HELDOUT): *n and a borrowed array, valid until
 * wgf_target_free. A generator's held-out set from the older form has
 * `nheld` samples, drawn when first asked for (the largest number asked for
 * so far); from [target] it has its heldout samples, whatever nheld. The
 * first n draws of a stream are the same whatever the count, so both forms
 * give the same first samples. */
int wgf_target_set(wgf_target *t, int set, size_t nheld, const double **x, size_t *n,
                   wgf_error *err);
/* The mixture of a gmm target, else NULL. */
const wgf_gmm *wgf_target_gmm(const wgf_target *t);

#ifdef __cplusplus
}
#endif
#endif
