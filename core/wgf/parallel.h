/* wgf/parallel.h: OpenMP helpers for plugins, header-only (static inline:
 * nothing here is part of the binary ABI). They compile to the serial code
 * without OpenMP.
 *
 * The project's rule (ARCHITECTURE.md, Randomness): a result does not depend
 * on the thread count. The helpers serve that rule:
 *   - WGF_OMP(omp parallel for ...) is a pragma with OpenMP, nothing without;
 *   - wgf_omp_max_threads / wgf_omp_thread_id size and index per-thread
 *     workspaces (one slice per thread, e.g. malloc(max_threads * per) and
 *     buf + thread_id * per inside the loop);
 *   - wgf_dot_lanes / wgf_dot2_lanes are dot products whose partial sums go
 *     by lane (element k to lane k mod WGF_LANES) and are added in a fixed
 *     order, so that the sum is the same for any thread count and vector
 *     width;
 *   - wgf_tile_len and wgf_transpose lay out a tiled pair sum over samples
 *     (aggregation, MMD): the columns transposed to d rows of N, so that a
 *     tile of T columns is read along rows, and the tile buffers of one
 *     thread ((2d + 5) T doubles) about 64 KiB. */
#ifndef WGF_PARALLEL_H
#define WGF_PARALLEL_H

#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#define WGF_OMP(x) _Pragma(#x)
#else
#define WGF_OMP(x)
#endif

static inline int wgf_omp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static inline int wgf_omp_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#define WGF_LANES 8

static inline double wgf_lanes_total(const double *s)
{
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* sum_k a[k] b[k], by lanes */
static inline double wgf_dot_lanes(const double *restrict a, const double *restrict b, size_t n)
{
    double s[WGF_LANES] = {0};
    size_t k = 0;
    for (; k + WGF_LANES <= n; k += WGF_LANES) {
        WGF_OMP(omp simd)
        for (size_t j = 0; j < WGF_LANES; j++)
            s[j] += a[k + j] * b[k + j];
    }
    for (size_t j = 0; k < n; k++, j++)
        s[j] += a[k] * b[k];
    return wgf_lanes_total(s);
}

/* sum_k a[k] b[k] + c[k] e[k], by lanes */
static inline double wgf_dot2_lanes(const double *restrict a, const double *restrict b,
                                    const double *restrict c, const double *restrict e, size_t n)
{
    double s[WGF_LANES] = {0};
    size_t k = 0;
    for (; k + WGF_LANES <= n; k += WGF_LANES) {
        WGF_OMP(omp simd)
        for (size_t j = 0; j < WGF_LANES; j++)
            s[j] += a[k + j] * b[k + j] + c[k + j] * e[k + j];
    }
    for (size_t j = 0; k < n; k++, j++)
        s[j] += a[k] * b[k] + c[k] * e[k];
    return wgf_lanes_total(s);
}

/* Tile length of a pair sum in dimension d: one thread's tile buffers
 * ((2d + 5) T doubles) in about 64 KiB, a multiple of 8 in [16, 512]. A
 * function of d only, so that sums do not depend on the machine. */
static inline size_t wgf_tile_len(size_t d)
{
    size_t T = 8192 / (2 * d + 5);
    T = T < 16 ? 16 : (T > 512 ? 512 : T);
    return T & ~(size_t)7;
}

/* One row of a pair sum against a tile of columns: y_i[kk] = x[i] -
 * ct[i ld + k0 + kk] for i < d (d rows of T) and r2[kk] = |y[., kk]|^2, for
 * kk < len. x: the row's d coordinates; ct: the columns transposed (d rows
 * of ld). */
static inline void wgf_tile_diff(const double *restrict x, size_t d, const double *restrict ct, size_t ld,
                                 size_t k0, size_t len, size_t T, double *restrict y, double *restrict r2)
{
    WGF_OMP(omp simd)
    for (size_t kk = 0; kk < len; kk++)
        r2[kk] = 0.0;
    for (size_t i = 0; i < d; i++) {
        const double xi = x[i];
        const double *restrict col = ct + i * ld + k0;
        double *restrict yi = y + i * T;
        WGF_OMP(omp simd)
        for (size_t kk = 0; kk < len; kk++) {
            double v = xi - col[kk];
            yi[kk] = v;
            r2[kk] += v * v;
        }
    }
}

/* at (d x N) = the transpose of a (N x d), both row-major. */
static inline void wgf_transpose(size_t N, size_t d, const double *a, double *at)
{
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < d; i++)
            at[i * N + n] = a[n * d + i];
}

#endif
