/* wgf/rng.h: seeded random streams.
 *
 * Every random draw in a run comes from a GSL generator (mt19937) seeded from
 * a tuple (seed, family, step, block) through a 64-bit mixing function, so a
 * block of samples is the same whichever thread or process draws it. */
#ifndef WGF_RNG_H
#define WGF_RNG_H

#include <gsl/gsl_rng.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A well-mixed seed for the tuple; never 0. */
unsigned long wgf_rng_seed(unsigned long seed, unsigned long family, unsigned long step,
                           unsigned long block);
/* Seed r (allocated by the caller with gsl_rng_alloc(gsl_rng_mt19937)). */
void wgf_rng_set(gsl_rng *r, unsigned long seed, unsigned long family, unsigned long step,
                 unsigned long block);

#ifdef __cplusplus
}
#endif
#endif
