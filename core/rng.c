/* rng.c: seeds for independent, reproducible random streams. */
#include <stdint.h>

#include "wgf/rng.h"

/* splitmix64's finaliser: a bijective mix with good avalanche, so nearby
 * tuples give unrelated seeds. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

unsigned long wgf_rng_seed(unsigned long seed, unsigned long family, unsigned long step,
                           unsigned long block)
{
    uint64_t h = mix64((uint64_t)seed);
    h = mix64(h ^ (uint64_t)family);
    h = mix64(h ^ (uint64_t)step);
    h = mix64(h ^ (uint64_t)block);
    /* mt19937 takes an unsigned long and treats 0 as its default seed. */
    unsigned long s = (unsigned long)(h & 0xffffffffu);
    return s ? s : 1;
}

void wgf_rng_set(gsl_rng *r, unsigned long seed, unsigned long family, unsigned long step,
                 unsigned long block)
{
    gsl_rng_set(r, wgf_rng_seed(seed, family, step, block));
}
