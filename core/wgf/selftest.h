/* wgf/selftest.h: derivative checks of any energy or map plugin against
 * central finite differences, at random points. */
#ifndef WGF_SELFTEST_H
#define WGF_SELFTEST_H

#include <stdio.h>
#include "registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wgf_selftest_opts {
    size_t dim;              /* dimension (default 3) */
    size_t samples;          /* samples (default 7) */
    unsigned long seed;      /* default 1 */
    const char *ini;         /* optional experiment file giving the plugin's section */
    const char *const *sets; /* section.key=value overrides (section is the kind: energy, map) */
    size_t nsets;
} wgf_selftest_opts;

/* Check every derivative the plugin provides; print one line per check
 * (quantity, worst relative error, pass/fail) to out (may be NULL).
 * *worst gets the worst relative error of the finite-difference checks. An
 * energy with a Wasserstein gradient is also checked against its own eval
 * along a transport of a Gaussian batch (exact for potential, entropy and
 * pairwise terms, to Monte Carlo error otherwise: tolerance 0.05, not part
 * of *worst). Returns WGF_OK when every check passes, WGF_ENUMERIC when one
 * fails or a function gives a non-finite value (err says which, and the
 * first sample that gives it), another code when the plugin could not be
 * set up. */
int wgf_selftest(wgf_registry *reg, const char *name, const wgf_selftest_opts *opts, FILE *out,
                 double *worst, wgf_error *err);

#ifdef __cplusplus
}
#endif
#endif
