/* wgf/batch.h: what an energy sees of the model, N samples of dimension d.
 *
 * All arrays are row-major doubles: sample n, coordinate i is x[n*d + i].
 * Buffers allocated by wgf_batch_alloc are 64-byte aligned. */
#ifndef WGF_BATCH_H
#define WGF_BATCH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wgf_batch {
    size_t n;  /* samples */
    size_t d;  /* dimension */
    double *x; /* n x d: samples of the model (the pushed samples) */
    double *l; /* n: log-density of the model at x; NULL when not computed */
    double *s; /* n x d: score, grad log rho at x; NULL when not computed */
} wgf_batch;

/* Allocate x, and l and s when asked (with_l, with_s nonzero); zero-filled.
 * Returns 0 or WGF_ENOMEM. */
int wgf_batch_alloc(wgf_batch *b, size_t n, size_t d, int with_l, int with_s);
void wgf_batch_free(wgf_batch *b);

/* 64-byte aligned, zero-filled array of n doubles (NULL on failure or n == 0
 * with errno unchanged); free with wgf_free. */
double *wgf_alloc_doubles(size_t n);
void wgf_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
