/* wasserstein.c: the Wasserstein metric G of PWGF by basis projection
 * (MATH.md 4, doc/math.md 4.2).
 *
 *     G_ij = E[grad psi_i . grad psi_j],   grad psi_i = the L2(rho_theta)
 *            projection of the column J_i onto gradient fields,
 *
 * by least squares on a basis {phi_r}, r < R: monomials of total degree 1 to
 * `degree` and/or seeded random Fourier features, both in the centred and
 * scaled coordinates y_i = (x_i - mean_i) / std_i of the step's samples.
 *
 * prepare(), with A the (N d) x R matrix of basis gradients at the samples
 * (row n d + i holds d phi_r / d x_i at x_n; stored by columns, one field
 * per contiguous row of `at`):
 *   - B = (1/N) sum_n Phi_n^T J_n (R x P): R vjps with xbar = the fields / N,
 *     in one wgf_eval_vjp_many pass over the tapes;
 *   - the thin SVD A = U S W^T, by a Householder QR A = Q_A T (in place, on
 *     contiguous columns, blocks of samples first: TSQR) and the SVD of the
 *     R x R factor T = U_T S W^T; keep the R' singular values above cutoff
 *     times the largest. The SVD, not the normal equations A^T A, so that an
 *     ill-conditioned basis loses digits of kappa(A), not of kappa(A)^2;
 *   - Q = sqrt(N) W_kept S_kept^-1 (R x R') makes the fields Phi_n Q
 *     orthonormal in the sample inner product, (1/N) sum_n (Phi_n Q)^T Phi_n Q
 *     = I, and Btil = (1/N) sum_n (Phi_n Q)^T J_n = Q^T B (R' x P). Forming
 *     Btil from B rather than from R' vjps on the columns of U = A W S^-1
 *     spares the (N d) x R' product and a second copy of A; the vjps are the
 *     same in number when the basis has full rank (R' = R);
 *   - the thin SVD Btil = U2 Sig V^T, with its own relative cutoff
 *     (pinv_cutoff). The two cutoffs differ in kind: the basis one only
 *     drops numerically dependent basis fields; Btil's decides which
 *     parameter directions the solve trusts. Near a degenerate point it is
 *     what keeps the step bounded, where G-hat needs MINRES's Tikhonov term:
 *     a planar flow at the identity (u = 0, b = 0) makes a constant field
 *     only through the sample mean of tanh(w . x), and in fpe_ou_10d.ini
 *     those 10 directions of Btil have singular values 3e-4 to 0.04 of the
 *     largest against 0.23 and above for the other 55 (pinv_cutoff = 0.1).
 * apply(v) = Btil^T (Btil v); solve(rhs) = V Sig^-2 V^T rhs, the minimum-norm
 * least-squares solution of G zeta = rhs (rhs is generally not in range(G),
 * which has rank <= R' << P). G <= Ghat = (1/N) sum_n J_n^T J_n (a projection
 * shortens every field), with equality when the basis gradients span the
 * columns of J; both carry the same 1/N.
 *
 * velocity(zeta) = the projected field at the samples, Phi_n Q (Btil zeta):
 * Btil zeta holds the coefficients of J zeta on the orthonormal fields
 * Phi_n Q, so this is the least-squares projection of J zeta on the span of
 * the basis gradients in the sample inner product, the field that moves
 * rho_theta (the rest of J zeta is, to the basis' accuracy, divergence-free
 * against rho_theta). The basis gradients are evaluated again (the QR
 * overwrote them): N d R operations, as in prepare.
 *
 * The solve reports, in wgf_solve_stats: iterations = R' (the basis rank
 * used: there are no iterations), residual = |G zeta - rhs| / |rhs| (the part
 * of rhs outside range(G)), and products = R on the first solve after a
 * prepare (the vjps that built B, each about half a G-hat product), 0 on
 * later ones.
 *
 * Memory: A, N d R doubles; the block factors, (N / WGF_BLOCK) R^2; B, Btil
 * and the SVDs, O(R P). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_math.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_vector.h>

#include <wgf/batch.h>
#include <wgf/plugin.h>
#include <wgf/problem.h>
#include <wgf/rng.h>

/* Random stream family of the Fourier features: (seed, this, 0, 0). Apart
 * from the core's families (wgf/problem.h), so the features never share a
 * stream with the samples. */
#define WASS_STREAM_FEATURES 0x57415353ul

typedef struct {
    /* configuration */
    size_t d;
    unsigned degree; /* 0: no polynomials */
    size_t npoly;    /* monomials */
    size_t nfeat;    /* Fourier features */
    size_t R;        /* npoly + nfeat */
    double cutoff;      /* of the basis orthonormalisation */
    double pinv_cutoff; /* of the pseudo-inverse of G */
    /* monomial r: nv[r] (variable, power) pairs in var/pow[r * degree + t] */
    unsigned char *nv;
    size_t *var;
    unsigned *pow;
    double *w;  /* nfeat x d, frequencies in y */
    double *ph; /* nfeat, phases */
    /* per step, for n samples and P parameters */
    wgf_eval *ev;
    size_t n, P;
    double *mean, *scl; /* d each */
    double *at;         /* R x (n d): the fields (columns of A), then the QR's reflectors */
    const double **xbp; /* R pointers into at */
    double **btp;       /* R pointers into b */
    double *b;          /* R x P: B, unscaled (N B) */
    size_t nblocks;     /* sample blocks of WGF_BLOCK */
    double *tg;         /* nblocks x R x R: the blocks' triangular factors */
    double *tm;         /* (nblocks R) x R by columns: them stacked */
    double *t;          /* R x R: the triangular factor, then U_T */
    double *wv;         /* R x R: W */
    double *sv;         /* R: S */
    double *bt;         /* R x P: Btil, rows 0..rank-1 */
    double *bsvd;       /* max(R, P) x min(R, P): Btil or its transpose, then U2 */
    double *bv;         /* min(R, P)^2: right singular vectors of what bsvd held */
    double *bs;         /* min(R, P): Btil's singular values */
    double *vg;         /* P x min(R, P): V, Btil's right singular vectors */
    double *work;       /* max(R, P) */
    double *gz;         /* P */
    size_t rank;        /* R' */
    size_t grank;       /* kept singular values of Btil */
    int fresh;          /* prepared, not yet solved */
} wass;

/* ------------------------------------------------------------ the basis */

/* C(d + k, k) - 1, the monomials of total degree 1..k in d variables; 0 on overflow. */
static size_t count_monomials(size_t d, unsigned k)
{
    size_t c = 1;
    for (unsigned j = 1; j <= k; j++) {
        size_t t;
        if (__builtin_mul_overflow(c, d + j, &t))
            return 0;
        c = t / j; /* exact: c is C(d + j - 1, j - 1), and j C(d+j, j) = (d+j) C(d+j-1, j-1) */
    }
    return c - 1;
}

/* Every multiset of 1..degree variables (non-decreasing index sequences), as
 * (variable, power) pairs. */
static int list_monomials(wass *m)
{
    unsigned k = m->degree;
    size_t *seq = malloc(k * sizeof *seq), r = 0;
    if (!seq)
        return WGF_ENOMEM;
    for (unsigned len = 1; len <= k; len++) {
        for (unsigned t = 0; t < len; t++)
            seq[t] = 0;
        for (;;) {
            unsigned char nv = 0;
            for (unsigned t = 0; t < len; t++) {
                if (nv > 0 && m->var[r * k + nv - 1] == seq[t]) {
                    m->pow[r * k + nv - 1]++;
                } else {
                    m->var[r * k + nv] = seq[t];
                    m->pow[r * k + nv] = 1;
                    nv++;
                }
            }
            m->nv[r++] = nv;
            /* next non-decreasing sequence */
            unsigned t = len;
            while (t > 0 && seq[t - 1] == m->d - 1)
                t--;
            if (t == 0)
                break;
            seq[t - 1]++;
            for (unsigned u = t; u < len; u++)
                seq[u] = seq[t - 1];
        }
    }
    free(seq);
    return WGF_OK;
}

static double ipow(double y, unsigned p)
{
    double r = 1.0;
    while (p--)
        r *= y;
    return r;
}

/* Sample n's entries of every field: at[r M + n d + i] = d phi_r / d x_i at x_n
 * (M = N d), the other entries left as they are (zero). */
static void basis_gradients(const wass *m, const double *x, size_t n, double *at)
{
    size_t d = m->d, k = m->degree, M = m->n * d;
    const double *xn = x + n * d;
    for (size_t r = 0; r < m->npoly; r++) {
        const size_t *v = m->var + r * k;
        const unsigned *p = m->pow + r * k;
        for (unsigned t = 0; t < m->nv[r]; t++) {
            double g = (double)p[t] * ipow((xn[v[t]] - m->mean[v[t]]) / m->scl[v[t]], p[t] - 1);
            for (unsigned u = 0; u < m->nv[r]; u++)
                if (u != t)
                    g *= ipow((xn[v[u]] - m->mean[v[u]]) / m->scl[v[u]], p[u]);
            at[r * M + n * d + v[t]] = g / m->scl[v[t]];
        }
    }
    for (size_t f = 0; f < m->nfeat; f++) {
        const double *w = m->w + f * d;
        double a = m->ph[f];
        for (size_t i = 0; i < d; i++)
            a += w[i] * (xn[i] - m->mean[i]) / m->scl[i];
        double s = -sin(a);
        for (size_t i = 0; i < d; i++)
            at[(m->npoly + f) * M + n * d + i] = s * w[i] / m->scl[i];
    }
}

/* ------------------------------------------------------------ life cycle */

static void release_step(wass *m)
{
    double **d[] = {&m->mean, &m->scl, &m->b, &m->tg, &m->tm, &m->t, &m->wv, &m->sv, &m->bt,
                    &m->bsvd, &m->bv, &m->bs, &m->vg, &m->work, &m->gz};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
        free(*d[i]);
        *d[i] = NULL;
    }
    wgf_free(m->at);
    m->at = NULL;
    free(m->xbp);
    m->xbp = NULL;
    free(m->btp);
    m->btp = NULL;
    m->n = m->P = 0;
}

static void wass_destroy(void *state)
{
    wass *m = state;
    if (!m)
        return;
    release_step(m);
    free(m->nv);
    free(m->var);
    free(m->pow);
    free(m->w);
    free(m->ph);
    free(m);
}

/* Draw the Fourier features: w ~ N(0, I / bandwidth^2), phase ~ U(0, 2 pi). */
static int draw_features(wass *m, unsigned long seed, double bandwidth, wgf_error *err)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    wgf_rng_set(rng, seed, WASS_STREAM_FEATURES, 0, 0);
    for (size_t f = 0; f < m->nfeat; f++) {
        for (size_t i = 0; i < m->d; i++)
            m->w[f * m->d + i] = gsl_ran_gaussian(rng, 1.0 / bandwidth);
        m->ph[f] = 2.0 * M_PI * gsl_rng_uniform(rng);
    }
    gsl_rng_free(rng);
    return WGF_OK;
}

static int wass_create(const wgf_section *sec, const wgf_problem_info *info, void **state,
                       wgf_error *err)
{
    const char *basis = wgf_section_string(sec, "basis");
    int poly = strcmp(basis, "rff") != 0, rff = strcmp(basis, "poly") != 0;
    wass *m = calloc(1, sizeof *m);
    if (!m)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    m->d = info->dim;
    m->cutoff = wgf_section_double(sec, "cutoff");
    m->pinv_cutoff = wgf_section_double(sec, "pinv_cutoff");
    if (poly) {
        m->degree = (unsigned)wgf_section_int(sec, "degree");
        m->npoly = count_monomials(m->d, m->degree);
    }
    if (rff)
        m->nfeat = (size_t)wgf_section_int(sec, "features");
    size_t nd = 0;
    int big = (poly && m->npoly == 0) || __builtin_add_overflow(m->npoly, m->nfeat, &m->R) ||
              __builtin_mul_overflow(info->samples, m->d, &nd);
    if (big || m->R > nd) {
        /* the fit needs at least as many values (N d) as functions (R) */
        const char *key = poly ? "degree" : "features";
        int rc = big ? wgf_section_error(sec, key, err,
                                         "too many basis functions in %zu dimensions (lower %s)", m->d,
                                         poly ? "degree or features" : "features")
                     : wgf_section_error(sec, key, err,
                                         "a basis of %zu functions needs at least %zu values, more "
                                         "than N d = %zu (lower %s, or use more samples)",
                                         m->R, m->R, nd, poly ? "degree or features" : "features");
        free(m);
        return rc;
    }
    size_t k = m->degree ? m->degree : 1;
    m->nv = calloc(m->npoly ? m->npoly : 1, 1);
    m->var = calloc(m->npoly ? m->npoly * k : 1, sizeof *m->var);
    m->pow = calloc(m->npoly ? m->npoly * k : 1, sizeof *m->pow);
    m->w = calloc(m->nfeat ? m->nfeat * m->d : 1, sizeof *m->w);
    m->ph = calloc(m->nfeat ? m->nfeat : 1, sizeof *m->ph);
    if (!m->nv || !m->var || !m->pow || !m->w || !m->ph) {
        size_t R = m->R;
        wass_destroy(m);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for a basis of %zu functions", R);
    }
    if (m->npoly && list_monomials(m) != WGF_OK) {
        wass_destroy(m);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    if (m->nfeat) {
        int rc = draw_features(m, info->seed, wgf_section_double(sec, "bandwidth"), err);
        if (rc != WGF_OK) {
            wass_destroy(m);
            return rc;
        }
    }
    *state = m;
    return WGF_OK;
}

/* Buffers for n samples and P parameters (kept while the sizes stay). */
static int reserve(wass *m, size_t n, size_t P, wgf_error *err)
{
    if (m->n == n && m->P == P)
        return WGF_OK;
    release_step(m);
    size_t d = m->d, R = m->R, nd, ndr, big = R > P ? R : P, small = R < P ? R : P, bs, rp, rr;
    size_t nb = (n + WGF_BLOCK - 1) / WGF_BLOCK;
    if (__builtin_mul_overflow(n, d, &nd) || __builtin_mul_overflow(nd, R, &ndr) ||
        __builtin_mul_overflow(big, small, &bs) || __builtin_mul_overflow(R, P, &rp) ||
        __builtin_mul_overflow(R * R, nb, &rr) || ndr > SIZE_MAX / sizeof(double) ||
        bs > SIZE_MAX / sizeof(double) || rr > SIZE_MAX / sizeof(double))
        return wgf_error_set(err, WGF_ENOMEM, "a basis of %zu functions on %zu samples is too large",
                             R, n);
    if (nd < R)
        return wgf_error_set(err, WGF_EINVAL,
                             "a basis of %zu functions needs at least %zu values, more than "
                             "the %zu of %zu samples in %zu dimensions",
                             R, R, nd, n, d);
    m->mean = malloc(d * sizeof(double));
    m->scl = malloc(d * sizeof(double));
    m->at = wgf_alloc_doubles(ndr);
    m->xbp = malloc(R * sizeof *m->xbp);
    m->btp = malloc(R * sizeof *m->btp);
    m->b = malloc(rp * sizeof(double));
    m->nblocks = nb;
    m->tg = malloc(rr * sizeof(double));
    m->tm = malloc(rr * sizeof(double));
    m->t = malloc(R * R * sizeof(double));
    m->wv = malloc(R * R * sizeof(double));
    m->sv = malloc(R * sizeof(double));
    m->bt = malloc(rp * sizeof(double));
    m->bsvd = malloc(bs * sizeof(double));
    m->bv = malloc(small * small * sizeof(double));
    m->bs = malloc(small * sizeof(double));
    m->vg = malloc(P * small * sizeof(double));
    m->work = malloc(big * sizeof(double));
    m->gz = malloc(P * sizeof(double));
    if (!m->mean || !m->scl || !m->at || !m->xbp || !m->btp || !m->b || !m->tg || !m->tm || !m->t ||
        !m->wv || !m->sv || !m->bt || !m->bsvd || !m->bv || !m->bs || !m->vg || !m->work || !m->gz) {
        release_step(m);
        return wgf_error_set(err, WGF_ENOMEM,
                             "out of memory for a basis of %zu functions on %zu samples", R, n);
    }
    m->n = n;
    m->P = P;
    for (size_t r = 0; r < R; r++) {
        m->xbp[r] = m->at + r * nd;
        m->btp[r] = m->b + r * P;
    }
    return WGF_OK;
}

/* ------------------------------------------------------------ prepare */

/* Per-coordinate mean and standard deviation of the samples (1 for a
 * coordinate that does not vary, so that y stays finite). */
static void centre_scale(wass *m, const double *x, size_t n)
{
    size_t d = m->d;
    for (size_t i = 0; i < d; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += x[j * d + i];
        m->mean[i] = s / (double)n;
        double v = 0.0;
        for (size_t j = 0; j < n; j++) {
            double e = x[j * d + i] - m->mean[i];
            v += e * e;
        }
        v = sqrt(v / (double)n);
        m->scl[i] = v > 0.0 ? v : 1.0;
    }
}

/* a . b over len entries. The simd reduction fixes its own order of
 * summation (the same for any thread count). */
static double dot(const double *restrict a, const double *restrict b, size_t len)
{
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < len; i++)
        s += a[i] * b[i];
    return s;
}

/* c -= f v over len entries. */
static void axpy(double *restrict c, double f, const double *restrict v, size_t len)
{
#pragma omp simd
    for (size_t i = 0; i < len; i++)
        c[i] -= f * v[i];
}

/* Householder QR of a rows x R matrix stored by columns (column c at a + c ld),
 * in place: the triangular factor into t (R x R, row-major, upper; rows past
 * min(rows, R) zero). Columns are contiguous, so every reflection is a dot
 * product and an axpy over one column. */
static void householder_qr(double *a, size_t ld, size_t rows, size_t R, double *t)
{
    memset(t, 0, R * R * sizeof(double));
    size_t kmax = rows < R ? rows : R;
    for (size_t k = 0; k < kmax; k++) {
        double *v = a + k * ld + k;
        size_t len = rows - k;
        double norm = sqrt(dot(v, v, len));
        if (norm != 0.0) { /* else nothing is left of this column: T_kk = 0, no reflection */
            double alpha = v[0] > 0.0 ? -norm : norm; /* v0 - alpha without cancellation */
            v[0] -= alpha;
            double beta = 1.0 / (-alpha * v[0]); /* 2 / (v . v) = 1 / (norm |v0| + norm^2) */
            for (size_t j = k + 1; j < R; j++) {
                double *c = a + j * ld + k;
                axpy(c, beta * dot(v, c, len), v, len);
            }
            t[k * R + k] = alpha;
        }
        for (size_t j = k + 1; j < R; j++)
            t[k * R + j] = a[j * ld + k];
    }
}

/* The triangular factor of A (M x R) into m->t, as a tree of QRs (TSQR): the
 * rows of each block of WGF_BLOCK samples are factored in place, one block per
 * thread with no synchronisation, and the stacked block factors once more.
 * The blocks are fixed by N, so the result does not depend on the thread
 * count; the working set of a block fits in cache. */
static void triangular_factor(wass *m)
{
    size_t R = m->R, d = m->d, n = m->n, M = n * d, nb = m->nblocks, ldm = nb * R;
    long lnb = (long)nb;
#pragma omp parallel for schedule(static)
    for (long b = 0; b < lnb; b++) {
        size_t off = (size_t)b * WGF_BLOCK, len = n - off < WGF_BLOCK ? n - off : WGF_BLOCK;
        householder_qr(m->at + off * d, M, len * d, R, m->tg + (size_t)b * R * R);
    }
    for (size_t b = 0; b < nb; b++)
        for (size_t i = 0; i < R; i++)
            for (size_t c = 0; c < R; c++)
                m->tm[c * ldm + b * R + i] = m->tg[(b * R + i) * R + c];
    householder_qr(m->tm, ldm, ldm, R, m->t);
}

/* The singular values S and right singular vectors W of A from its
 * triangular factor; R' = how many exceed cutoff times the largest. */
static int orthonormalise(wass *m, wgf_error *err)
{
    size_t R = m->R;
    triangular_factor(m);
    gsl_matrix_view t = gsl_matrix_view_array(m->t, R, R);
    gsl_matrix_view w = gsl_matrix_view_array(m->wv, R, R);
    gsl_vector_view s = gsl_vector_view_array(m->sv, R);
    gsl_vector_view wk = gsl_vector_view_array(m->work, R);
    int st = gsl_linalg_SV_decomp(&t.matrix, &w.matrix, &s.vector, &wk.vector);
    if (st)
        return wgf_error_gsl(err, st, "SVD of the basis gradients");
    double s0 = m->sv[0];
    if (!(s0 > 0.0) || !isfinite(s0))
        return wgf_error_set(err, WGF_ENUMERIC,
                             "the basis gradients at the samples are %s (largest "
                             "singular value %g)",
                             isfinite(s0) ? "all zero" : "not finite", s0);
    size_t r = 0;
    while (r < R && m->sv[r] > m->cutoff * s0)
        r++;
    m->rank = r;
    return WGF_OK;
}

/* Btil = Q^T B with Q = sqrt(N) W_kept S_kept^-1, from the unscaled N B. */
static void form_btil(wass *m)
{
    size_t R = m->R, P = m->P;
    double c = 1.0 / sqrt((double)m->n);
    for (size_t k = 0; k < m->rank; k++) {
        double *row = m->bt + k * P, f = c / m->sv[k];
        memset(row, 0, P * sizeof(double));
        for (size_t r = 0; r < R; r++) {
            double wr = f * m->wv[r * R + k];
            const double *br = m->b + r * P;
            for (size_t j = 0; j < P; j++)
                row[j] += wr * br[j];
        }
    }
}

/* Btil's thin SVD: V (P x k) and its k singular values into vg and bs;
 * grank = how many exceed pinv_cutoff times the largest. */
static int factor_btil(wass *m, wgf_error *err)
{
    size_t R = m->rank, P = m->P;
    size_t rows = R >= P ? R : P, cols = R >= P ? P : R;
    for (size_t i = 0; i < R * P; i++)
        if (!isfinite(m->bt[i])) /* before the SVD, whose iteration NaNs would not end */
            return wgf_error_set(err, WGF_ENUMERIC, "Btil is not finite (row %zu)",
                                 i / P + 1);
    /* GSL's SVD wants rows >= cols: factor Btil (R' x P) when R' >= P, else
     * Btil^T = U2 Sig V2^T, whose U2 is Btil's V. */
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < P; j++) {
            if (R >= P)
                m->bsvd[i * cols + j] = m->bt[i * P + j];
            else
                m->bsvd[j * cols + i] = m->bt[i * P + j];
        }
    gsl_matrix_view a = gsl_matrix_view_array(m->bsvd, rows, cols);
    gsl_matrix_view v = gsl_matrix_view_array(m->bv, cols, cols);
    gsl_vector_view s = gsl_vector_view_array(m->bs, cols);
    gsl_vector_view w = gsl_vector_view_array(m->work, cols);
    int st = gsl_linalg_SV_decomp(&a.matrix, &v.matrix, &s.vector, &w.vector);
    if (st)
        return wgf_error_gsl(err, st, "SVD of Btil");
    memcpy(m->vg, R >= P ? m->bv : m->bsvd, P * cols * sizeof(double));
    size_t k = 0;
    while (k < cols && m->bs[k] > m->pinv_cutoff * m->bs[0])
        k++;
    m->grank = k;
    return WGF_OK;
}

static int wass_prepare(void *state, wgf_eval *ev, wgf_error *err)
{
    wass *m = state;
    m->ev = NULL;
    m->fresh = 0;
    size_t n = wgf_eval_n(ev), P = wgf_eval_nparams(ev);
    int rc = reserve(m, n, P, err);
    if (rc != WGF_OK)
        return rc;
    const double *x = wgf_eval_batch(ev, wgf_eval_nstages(ev))->x;
    centre_scale(m, x, n);
    for (size_t i = 0; i < m->d; i++)
        if (!isfinite(m->mean[i]) || !isfinite(m->scl[i]))
            return wgf_error_set(err, WGF_ENUMERIC,
                                 "coordinate %zu of the samples is not finite", i + 1);
    memset(m->at, 0, n * m->d * m->R * sizeof(double));
    long ln = (long)n;
#pragma omp parallel for schedule(static)
    for (long j = 0; j < ln; j++)
        basis_gradients(m, x, (size_t)j, m->at);
    /* N B = sum_n Phi_n^T J_n, before the QR overwrites the fields */
    rc = wgf_eval_vjp_many(ev, m->R, m->xbp, NULL, NULL, m->btp, err);
    if (rc != WGF_OK)
        return wgf_error_prefix(err, "the vjps of B");
    if ((rc = orthonormalise(m, err)) != WGF_OK)
        return rc;
    form_btil(m);
    if ((rc = factor_btil(m, err)) != WGF_OK)
        return rc;
    m->ev = ev;
    m->fresh = 1;
    return WGF_OK;
}

/* ------------------------------------------------------------ apply, solve */

static int wass_apply(void *state, const double *v, double *out, wgf_error *err)
{
    wass *m = state;
    if (!m->ev)
        return wgf_error_set(err, WGF_EINVAL, "wasserstein metric applied before prepare");
    size_t R = m->rank, P = m->P;
    for (size_t r = 0; r < R; r++)
        m->work[r] = dot(m->bt + r * P, v, P);
    memset(out, 0, P * sizeof(double));
    for (size_t r = 0; r < R; r++) {
        const double *b = m->bt + r * P;
        for (size_t j = 0; j < P; j++)
            out[j] += m->work[r] * b[j];
    }
    return WGF_OK;
}

/* zeta = V Sig^-2 V^T rhs over the kept singular values of Btil. */
static int wass_solve(void *state, const double *rhs, double *zeta, wgf_solve_stats *stats,
                      wgf_error *err)
{
    wass *m = state;
    if (!m->ev)
        return wgf_error_set(err, WGF_EINVAL, "wasserstein metric solved before prepare");
    size_t P = m->P, cols = m->rank < P ? m->rank : P, k = m->grank;
    for (size_t q = 0; q < k; q++) {
        double s = 0.0;
        for (size_t j = 0; j < P; j++)
            s += m->vg[j * cols + q] * rhs[j];
        m->work[q] = s / (m->bs[q] * m->bs[q]);
    }
    for (size_t j = 0; j < P; j++)
        zeta[j] = dot(m->vg + j * cols, m->work, k);
    int rc = wass_apply(m, zeta, m->gz, err);
    if (rc != WGF_OK)
        return rc;
    double r2 = 0.0, b2 = 0.0;
    for (size_t j = 0; j < P; j++) {
        if (!isfinite(zeta[j]))
            return wgf_error_set(err, WGF_ENUMERIC, "wasserstein: the solve gave a non-finite zeta");
        r2 += (m->gz[j] - rhs[j]) * (m->gz[j] - rhs[j]);
        b2 += rhs[j] * rhs[j];
    }
    if (stats) {
        stats->iterations = (unsigned)m->rank;
        stats->residual = b2 > 0.0 ? sqrt(r2 / b2) : 0.0;
        stats->products = m->fresh ? m->R : 0;
        stats->converged = 1;
    }
    m->fresh = 0;
    return WGF_OK;
}

/* out = Phi_n Q Btil zeta at every sample n of the prepare's batch. */
static int wass_velocity(void *state, const double *zeta, double *out, wgf_error *err)
{
    wass *m = state;
    if (!m->ev)
        return wgf_error_set(err, WGF_EINVAL, "wasserstein velocity before prepare");
    size_t R = m->R, P = m->P, d = m->d, n = m->n, M = n * d;
    double *c = calloc(R + m->rank, sizeof *c);
    if (!c)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    double *a = c + R, sn = sqrt((double)n);
    for (size_t k = 0; k < m->rank; k++) /* a = S_kept^-1 Btil zeta */
        a[k] = dot(m->bt + k * P, zeta, P) / m->sv[k];
    for (size_t r = 0; r < R; r++) { /* c = Q a, Q = sqrt(N) W_kept S_kept^-1 */
        double s = 0.0;
        for (size_t k = 0; k < m->rank; k++)
            s += m->wv[r * R + k] * a[k];
        c[r] = sn * s;
    }
    const double *x = wgf_eval_batch(m->ev, wgf_eval_nstages(m->ev))->x;
    memset(m->at, 0, M * R * sizeof(double));
    long ln = (long)n;
#pragma omp parallel for schedule(static)
    for (long j = 0; j < ln; j++) {
        size_t s = (size_t)j;
        basis_gradients(m, x, s, m->at);
        for (size_t i = 0; i < d; i++) {
            double v = 0.0;
            for (size_t r = 0; r < R; r++)
                v += c[r] * m->at[r * M + s * d + i];
            out[s * d + i] = v;
        }
    }
    free(c);
    return WGF_OK;
}

static const wgf_metric_vt wass_vt = {
    .create = wass_create,
    .destroy = wass_destroy,
    .prepare = wass_prepare,
    .apply = wass_apply,
    .solve = wass_solve,
    .velocity = wass_velocity,
};

static const wgf_param wass_params[] = {
    {"basis", WGF_PARAM_CHOICE, "poly", 0, 0, 0, "poly|rff|both",
     "basis of potentials: polynomials, random Fourier features, or both"},
    {"degree", WGF_PARAM_INT, "2", WGF_P_MIN | WGF_P_MAX, 1, 12, NULL,
     "poly: monomials of total degree 1..degree in the centred, scaled x (2 is exact for affine maps "
     "on Gaussians)"},
    {"features", WGF_PARAM_INT, "100", WGF_P_MIN, 1, 0, NULL,
     "rff: number of features cos(w . y + c), w ~ N(0, I/bandwidth^2), seeded from the run's seed"},
    {"bandwidth", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "rff: length scale of the features, in units of each coordinate's standard deviation"},
    {"cutoff", WGF_PARAM_DOUBLE, "1e-8", WGF_P_MIN | WGF_P_MIN_OPEN | WGF_P_MAX | WGF_P_MAX_OPEN, 0, 1,
     NULL,
     "relative singular-value cutoff of the orthonormalisation of the basis gradients"},
    {"pinv_cutoff", WGF_PARAM_DOUBLE, "1e-8", WGF_P_MIN | WGF_P_MIN_OPEN | WGF_P_MAX | WGF_P_MAX_OPEN, 0,
     1, NULL,
     "relative singular-value cutoff of Btil in the pseudo-inverse zeta = V Sig^-2 V^T grad F (raise "
     "it where G is nearly singular)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin wass_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_METRIC,
    .name = "wasserstein",
    .summary = "Wasserstein metric G (PWGF): columns of J projected on basis gradients, min-norm "
               "least-squares solve (tol, maxiter, tikhonov unused)",
    .params = wass_params,
    .vtable = &wass_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &wass_plugin : NULL; }
