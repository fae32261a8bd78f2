/* wgf/dist.h: the initial law lambda, the reference distribution of the map.
 *
 * Types (section [initial], key `type`): gaussian (mean, cov), and the laws
 * of reference.h that provide sampling (barenblatt, uniform, file). A law may
 * lack a density or a score (uniform has no finite score; samples read from
 * a file have neither); the problem refuses, at configuration time, a law
 * that lacks what the energy and scheme need. */
#ifndef WGF_DIST_H
#define WGF_DIST_H

#include <stddef.h>
#include <gsl/gsl_rng.h>
#include "config.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wgf_dist wgf_dist; /* opaque; also declared by plugin.h */

#define WGF_DIST_DENSITY 0x1u /* log_density available */
#define WGF_DIST_SCORE 0x2u   /* score available */

/* The schema of [initial] (every type's keys; `type` chooses). */
const wgf_param *wgf_dist_schema(void);

int wgf_dist_create(wgf_dist **dist, const wgf_section *sec, wgf_error *err);
void wgf_dist_free(wgf_dist *dist);

const char *wgf_dist_type(const wgf_dist *dist);
size_t wgf_dist_dim(const wgf_dist *dist);
unsigned wgf_dist_provides(const wgf_dist *dist);

/* n samples into z (n x d). */
int wgf_dist_sample(const wgf_dist *dist, gsl_rng *rng, size_t n, double *z, wgf_error *err);
/* log lambda(z) (n); WGF_EUNSUP without a density. */
int wgf_dist_log_density(const wgf_dist *dist, size_t n, const double *z, double *lp, wgf_error *err);
/* grad log lambda(z) (n x d); WGF_EUNSUP without a score. */
int wgf_dist_score(const wgf_dist *dist, size_t n, const double *z, double *s, wgf_error *err);
/* For a Gaussian law: its mean and covariance (borrowed), else WGF_EUNSUP. */
int wgf_dist_gaussian(const wgf_dist *dist, const double **mean, const double **cov);

#ifdef __cplusplus
}
#endif
#endif
