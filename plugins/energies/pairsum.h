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

/* One row: G[n] and H[n] as the pass asks, with buf the thread's (2d + 5) T
 * doubles; returns R_n (0 when R is not asked). */
WGF_DISPATCH
static double pair_row(const pair_pass *P, size_t n, double *buf)
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
    return Rn;
}

/* The row taken at position j of a fold of N rows: 0, N-1, 1, N-2, ... */
static inline size_t pair_fold(size_t N, size_t j)
{
    return j % 2 == 0 ? j / 2 : N - 1 - j / 2;
}

/* Every row of the pass: this rank's rows (wgf_mpi_rows) spread over its
 * threads, then gathered, so that every rank holds every row, each summed
 * as in the serial run. Collective under MPI: every rank calls it with the
 * same pass. Self: the columns (and gbar) are the rows, transposed here.
 *
 * Self with R alone is a triangle: row n costs N - 1 - n, and of 2 ranks the
 * first would do 3/4 of the work. Over several ranks its rows are then taken
 * in the folded order (pair_fold: positions 2i and 2i + 1 cost N - 1 between
 * them), the positions shared and gathered, and the rows put back in place:
 * each row is summed as before, the ranks' shares are even. */
static int pair_run(pair_pass *P, wgf_error *err)
{
    size_t N = P->N, d = P->d;
    int nt = wgf_omp_max_threads();
    int fold = P->self && P->R && !P->G && !P->H && wgf_mpi_size() > 1;
    P->T = wgf_tile_len(d);
    double *xt = P->self ? malloc(N * d * sizeof *xt) : NULL;
    double *gt = (P->self && P->g) ? malloc(N * d * sizeof *gt) : NULL;
    double *Rf = fold ? malloc(N * sizeof *Rf) : NULL;
    double *buf = malloc((size_t)nt * (2 * d + 5) * P->T * sizeof *buf);
    if (!buf || (P->self && !xt) || (P->self && P->g && !gt) || (fold && !Rf)) {
        free(xt);
        free(gt);
        free(Rf);
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
    size_t per = (2 * d + 5) * P->T, j0, j1;
    wgf_mpi_rows(N, &j0, &j1);
    const pair_pass *Q = P;
    double *R = fold ? Rf : P->R; /* by position */
    WGF_OMP(omp parallel for schedule(dynamic, 4) if ((j1 - j0) * P->ncol * d >= PAIR_PAR_MIN))
    for (size_t j = j0; j < j1; j++) {
        double Rn = pair_row(Q, fold ? pair_fold(N, j) : j, buf + (size_t)wgf_omp_thread_id() * per);
        if (R)
            R[j] = Rn;
    }
    free(xt);
    free(gt);
    free(buf);
    if (P->self)
        P->ct = P->gt = NULL;
    int rc = R ? wgf_mpi_rows_gather(R, N, 1, err) : WGF_OK;
    if (rc == WGF_OK && fold)
        for (size_t j = 0; j < N; j++)
            P->R[pair_fold(N, j)] = Rf[j];
    free(Rf);
    if (rc == WGF_OK && P->G)
        rc = wgf_mpi_rows_gather(P->G, N, d, err);
    if (rc == WGF_OK && P->H)
        rc = wgf_mpi_rows_gather(P->H, N, d, err);
    return rc;
}

#endif
