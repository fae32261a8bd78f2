/* pairsum.h: the tiled pair sums of the interaction energies (aggregation,
 * MMD), one copy for both. For rows x_n (N x d) against columns c_k (the
 * rows themselves, pairs k != n, or other samples) and a radial kernel
 * kappa(r2), r2 = |y|^2, y = x_n - c_k, with psi and chi its gradient and
 * Hessian factors (grad = psi y, Hess = psi I + chi y y^T), a pass gives
 *
 *     R_n = sum_k kappa   (k > n for pairs),
 *     G_n = sum_k psi y,
 *     H_n = sum_k (psi u + chi (y . u) y),  u = gbar_n - gbar_k (pairs) or gbar_n,
 *
 * as asked. Each row n is summed by one thread, over k in ascending order in
 * tiles of a length set by d alone, with lane-wise partial sums for G and H
 * and a sequential sum for R (the same whether or not G is wanted): the
 * results do not depend on the number of threads. Over MPI ranks each rank
 * sums its own rows (wgf_mpi_rows, whole blocks of 256 rows) and the rows are
 * gathered (wgf_mpi_rows_gather): every rank holds the serial run's R, G and
 * H, bit for bit, whatever the number of ranks. Within a tile the columns
 * are read transposed (d rows), so that the loops over k are unit-stride.
 *
 * A row (and a kernel's radial function) is dispatched at run time
 * (WGF_DISPATCH, ../dispatch.h: AVX-512, AVX2 and the baseline, the same
 * bits from each). Include "config.h" first.
 *
 * Private to the plugins that compile it in (static functions, prefix pair_). */
#ifndef ENERGIES_PAIRSUM_H
#define ENERGIES_PAIRSUM_H

#include <stdlib.h>
#include <string.h>

#include <wgf/error.h>
#include <wgf/parallel.h>
#include <wgf/run.h>

#include "../dispatch.h"

/* Below this many pair-coordinates (rows x columns x d, about a tenth of a
 * millisecond) one thread does the pass: starting a parallel region costs
 * more. */
#define PAIR_PAR_MIN 131072

/* For i < n: w[i] = kappa, psi[i], chi[i] at r2[i] (each output may be NULL). */
typedef void (*pair_radial)(const void *K, size_t n, const double *r2, double *w, double *psi,
                            double *chi);

typedef struct pair_pass {
    pair_radial radial;
    const void *K;
    size_t N, d, T;
    size_t ncol;      /* columns: N (self) or those of ct */
    int self;         /* columns are the rows: skip k = n; R sums k > n only */
    const double *x;  /* N x d */
    const double *ct; /* columns, d x ncol (not self) */
    const double *g;  /* gbar, N x d (H) */
    const double *gt; /* gbar, d x N (H, self; set by pair_run) */
    double *R;        /* N, or NULL */
    double *G;        /* N x d, or NULL */
    double *H;        /* N x d, or NULL */
} pair_pass;

/* u = gbar_n - gbar_k (self) or gbar_n (d rows of T), t = chi (y . u). */
static inline void pair_tile_u(const pair_pass *P, size_t n, size_t k0, size_t len,
                               const double *restrict y, const double *restrict chi, double *restrict u,
                               double *restrict t)
{
    size_t d = P->d, T = P->T;
    WGF_OMP(omp simd)
    for (size_t kk = 0; kk < len; kk++)
        t[kk] = 0.0;
    for (size_t i = 0; i < d; i++) {
        const double gi = P->g[n * d + i];
        const double *restrict yi = y + i * T;
        double *restrict ui = u + i * T;
        if (P->self) {
            const double *restrict col = P->gt + i * P->N + k0;
            WGF_OMP(omp simd)
            for (size_t kk = 0; kk < len; kk++)
                ui[kk] = gi - col[kk];
        } else {
            WGF_OMP(omp simd)
            for (size_t kk = 0; kk < len; kk++)
                ui[kk] = gi;
        }
        WGF_OMP(omp simd)
        for (size_t kk = 0; kk < len; kk++)
            t[kk] += yi[kk] * ui[kk];
    }
    WGF_OMP(omp simd)
    for (size_t kk = 0; kk < len; kk++)
        t[kk] *= chi[kk];
}

/* One row: R[n], G[n] and H[n] as the pass asks, with buf the thread's
 * (2d + 5) T doubles. */
WGF_DISPATCH
static void pair_row(const pair_pass *P, size_t n, double *buf)
{
    size_t d = P->d, T = P->T, C = P->ncol;
    double *y = buf, *u = y + d * T, *r2 = u + d * T, *w = r2 + T, *psi = w + T, *chi = psi + T,
           *t = chi + T;
    double *G = P->G ? P->G + n * d : NULL, *H = P->H ? P->H + n * d : NULL;
    double Rn = 0.0;
    if (G)
        memset(G, 0, d * sizeof *G);
    if (H)
        memset(H, 0, d * sizeof *H);
    /* Only R wanted of the pairs: tiles start at n + 1, which does not change
     * Rn, a plain sequential sum. */
    size_t start = (P->self && !G && !H) ? n + 1 : 0;
    for (size_t k0 = start; k0 < C; k0 += T) {
        size_t len = C - k0 < T ? C - k0 : T;
        wgf_tile_diff(P->x + n * d, d, P->ct, C, k0, len, T, y, r2);
        P->radial(P->K, len, r2, P->R ? w : NULL, (G || H) ? psi : NULL, H ? chi : NULL);
        if (P->R) {
            size_t from = P->self ? (n + 1 > k0 ? n + 1 - k0 : 0) : 0;
            for (size_t kk = from; kk < len; kk++)
                Rn += w[kk];
        }
        if (P->self && n >= k0 && n < k0 + len) {
            psi[n - k0] = 0.0; /* k = n is not a pair (y = 0 there anyway) */
            chi[n - k0] = 0.0;
        }
        if (G)
            for (size_t i = 0; i < d; i++)
                G[i] += wgf_dot_lanes(psi, y + i * T, len);
        if (H) {
            pair_tile_u(P, n, k0, len, y, chi, u, t);
            for (size_t i = 0; i < d; i++)
                H[i] += wgf_dot2_lanes(psi, u + i * T, t, y + i * T, len);
        }
    }
    if (P->R)
        P->R[n] = Rn;
}

/* Every row of the pass: this rank's rows (wgf_mpi_rows) spread over its
 * threads, then gathered, so that every rank holds every row, each summed
 * as in the serial run. Collective under MPI: every rank calls it with the
 * same pass. Self: the columns (and gbar) are the rows, transposed here. */
static int pair_run(pair_pass *P, wgf_error *err)
{
    size_t N = P->N, d = P->d;
    int nt = wgf_omp_max_threads();
    P->T = wgf_tile_len(d);
    double *xt = P->self ? malloc(N * d * sizeof *xt) : NULL;
    double *gt = (P->self && P->g) ? malloc(N * d * sizeof *gt) : NULL;
    double *buf = malloc((size_t)nt * (2 * d + 5) * P->T * sizeof *buf);
    if (!buf || (P->self && !xt) || (P->self && P->g && !gt)) {
        free(xt);
        free(gt);
        free(buf);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu samples", N);
    }
    if (P->self) {
        wgf_transpose(N, d, P->x, xt);
        P->ct = xt;
        P->ncol = N;
        if (gt)
            wgf_transpose(N, d, P->g, gt);
        P->gt = gt;
    }
    size_t per = (2 * d + 5) * P->T, n0, n1;
    wgf_mpi_rows(N, &n0, &n1);
    const pair_pass *Q = P;
    WGF_OMP(omp parallel for schedule(dynamic, 4) if ((n1 - n0) * P->ncol * d >= PAIR_PAR_MIN))
    for (size_t n = n0; n < n1; n++)
        pair_row(Q, n, buf + (size_t)wgf_omp_thread_id() * per);
    free(xt);
    free(gt);
    free(buf);
    if (P->self)
        P->ct = P->gt = NULL;
    int rc = P->R ? wgf_mpi_rows_gather(P->R, N, 1, err) : WGF_OK;
    if (rc == WGF_OK && P->G)
        rc = wgf_mpi_rows_gather(P->G, N, d, err);
    if (rc == WGF_OK && P->H)
        rc = wgf_mpi_rows_gather(P->H, N, d, err);
    return rc;
}

#endif
