/* wgf/diagnostics.h: distances and statistics of sample sets (MATH.md 7). */
#ifndef WGF_DIAGNOSTICS_H
#define WGF_DIAGNOSTICS_H

#include <stddef.h>
#include <gsl/gsl_rng.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sample mean (d) and covariance (d x d, divided by n - 1). */
void wgf_moments(size_t n, size_t d, const double *x, double *mean, double *cov);
/* |a - b|_2 for vectors of length k (Frobenius for matrices). */
double wgf_dist_l2(size_t k, const double *a, const double *b);
/* W2 between N(m1, C1) and N(m2, C2):
 * W2^2 = |m1-m2|^2 + tr(C1 + C2 - 2 (C2^1/2 C1 C2^1/2)^1/2). */
int wgf_w2_gaussian(size_t d, const double *m1, const double *C1, const double *m2, const double *C2,
                    double *w2, wgf_error *err);
/* Symmetric KL divergence KL(q||p) + KL(p||q) between q = N(m1, C1) and
 * p = N(m2, C2) (C1, C2 positive definite), in closed form:
 * 1/2 [tr(C2^-1 C1) + tr(C1^-1 C2) - 2 d + dm^T (C1^-1 + C2^-1) dm]. */
int wgf_skl_gaussian(size_t d, const double *m1, const double *C1, const double *m2, const double *C2,
                     double *skl, wgf_error *err);
/* The same between a model q known by n samples x_i ~ q with their exact
 * log-densities lq_i = log q(x_i), and p = N(m, C): the mean over the samples
 * of (1 - p/q) log(q/p), which is KL(q||p) + KL(p||q) in expectation
 * (MATH.md 7). Every term is >= 0 and of the order of (log q/p)^2. */
int wgf_skl_samples(size_t n, size_t d, const double *x, const double *lq, const double *m,
                    const double *C, double *skl, wgf_error *err);
/* W2 between two equal-size sample sets by exact assignment (O(n^3); meant
 * for n up to a few thousand, at the output cadence only). In 1-D the sorted
 * matching, optimal there (O(n log n)). */
int wgf_w2_assignment(size_t n, size_t d, const double *x, const double *y, double *w2, wgf_error *err);
/* W2 between two 1-D sample sets of equal size (sorting; copies). */
double wgf_w2_1d(size_t n, const double *x, const double *y);
/* Sliced W2: mean over nproj random directions of the 1-D W2 squared, then sqrt. */
int wgf_w2_sliced(size_t n, size_t d, const double *x, const double *y, size_t nproj, gsl_rng *rng,
                  double *w2, wgf_error *err);
/* Radial statistics about centre c: mean and standard deviation of |x - c|. */
void wgf_radial_stats(size_t n, size_t d, const double *x, const double *c, double *mean, double *sd);

#ifdef __cplusplus
}
#endif
#endif
