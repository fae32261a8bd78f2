/* batch.c: aligned sample buffers. */
#include <stdlib.h>
#include <string.h>

#include "wgf/batch.h"
#include "wgf/error.h"

double *wgf_alloc_doubles(size_t n)
{
    if (n == 0 || n > ((size_t)-1) / sizeof(double) - 64)
        return NULL;
    size_t bytes = (n * sizeof(double) + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void wgf_free(void *p)
{
    free(p);
}

int wgf_batch_alloc(wgf_batch *b, size_t n, size_t d, int with_l, int with_s)
{
    memset(b, 0, sizeof *b);
    b->n = n;
    b->d = d;
    b->x = wgf_alloc_doubles(n * d);
    if (with_l)
        b->l = wgf_alloc_doubles(n);
    if (with_s)
        b->s = wgf_alloc_doubles(n * d);
    if (!b->x || (with_l && !b->l) || (with_s && !b->s)) {
        wgf_batch_free(b);
        return WGF_ENOMEM;
    }
    return WGF_OK;
}

void wgf_batch_free(wgf_batch *b)
{
    wgf_free(b->x);
    wgf_free(b->l);
    wgf_free(b->s);
    b->x = b->l = b->s = NULL;
}
