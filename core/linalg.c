/* linalg.c: MINRES for the metric systems (MATH.md 4) and small dense
 * symmetric helpers on GSL.
 *
 * GSL's default error handler aborts, and the library must not touch that
 * global setting, so every GSL call here is made only with arguments it
 * accepts: sizes are checked first, and the Cholesky factorisation is
 * attempted by GSL only after a pivot check has shown it will succeed. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>

#include "wgf/linalg.h"

/* ---------------------------------------------------------------- MINRES */

static double dot(size_t n, const double *a, const double *b)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

double wgf_nrm2(size_t n, const double *a, const double *b)
{
    /* Scaled sum of squares (as in BLAS dnrm2): no overflow or underflow in the squares. */
    double scale = 0.0, ssq = 1.0;
    for (size_t i = 0; i < n; i++) {
        double v = fabs(b ? a[i] - b[i] : a[i]);
        if (v == 0.0)
            continue;
        if (!isfinite(v))
            return v + v; /* inf or NaN */
        if (scale < v) {
            ssq = 1.0 + ssq * (scale / v) * (scale / v);
            scale = v;
        } else {
            ssq += (v / scale) * (v / scale);
        }
    }
    return scale * sqrt(ssq);
}

/* out = (A + shift I) v; the operator's own error is passed through with the
 * iteration prefixed. */
static int apply_shifted(size_t n, wgf_linop_fn A, void *user, double shift, const double *v,
                         double *out, unsigned iter, wgf_error *err)
{
    int rc = A(user, v, out, err);
    if (rc != WGF_OK) {
        wgf_error_prefix(err, "MINRES iteration %u: operator", iter);
        return rc;
    }
    if (shift != 0.0)
        for (size_t i = 0; i < n; i++)
            out[i] += shift * v[i];
    return WGF_OK;
}

/* The Lanczos process on (A + shift I) with v_1 = b/|b| gives
 * (A + shift I) V_k = V_{k+1} Tbar_k; MINRES minimises |beta1 e_1 - Tbar_k y| by
 * Givens rotations and updates x_k = V_k y_k through the direction vectors w.
 * Every x_k lies in the Krylov space K_k(A + shift I, b); for a consistent
 * singular system that space lies in range(A + shift I), which is orthogonal
 * to the null space, so the solution found is the minimum-norm one. Hence:
 * x starts at zero and there are no restarts.
 *
 * Stopping: phibar_k = |r_k| (the recurrence residual) <= rtol |b| is
 * convergence. Without it the iteration also ends, unconverged, at maxiter
 * and in three situations where going on cannot help:
 * - an exhausted Krylov space (beta_{k+1} = 0 to rounding);
 * - T_k singular to rounding (gamma_k = 0): x_{k-1} is already a
 *   least-squares solution and the step would divide by rounding noise;
 * - |A r| <= sqrt(eps) |A| |r| (Paige and Saunders' least-squares test with
 *   the floor of semi-orthogonality): r is numerically in the null space, so
 *   the system is inconsistent (or consistent only through eigenvalues below
 *   sqrt(eps) |A|) and x is a least-squares solution to that precision.
 *   Lanczos loses orthogonality to a Ritz vector once it has converged to
 *   about sqrt(eps), and iterating further lets the rounding-level
 *   components of later Lanczos vectors drive x along the null space without
 *   bound. For a consistent system |A r| >= sigma_min |r| (r is in the
 *   range), so this stops early only if cond(A) > 1/sqrt(eps) ~ 7e7 and r
 *   already lies in the directions that small. */
int wgf_minres(size_t n, wgf_linop_fn A, void *user, double shift, const double *b, double *x,
               double rtol, unsigned maxiter, wgf_solve_stats *stats, wgf_error *err)
{
    return wgf_minres_prec(n, A, user, shift, NULL, NULL, b, x, rtol, maxiter, stats, err);
}

/* z = M^{-1} r and beta = sqrt(r . z), the M^{-1} norm of r (z = r and the
 * Euclidean norm without a preconditioner). */
static int precondition(size_t n, wgf_linop_fn Minv, void *muser, const double *r, double *z,
                        double *beta, unsigned iter, wgf_error *err)
{
    if (!Minv) {
        if (z != r)
            memcpy(z, r, n * sizeof *z);
        *beta = wgf_nrm2(n, r, NULL);
        return WGF_OK;
    }
    int rc = Minv(muser, r, z, err);
    if (rc != WGF_OK)
        return wgf_error_prefix(err, "MINRES iteration %u: preconditioner", iter);
    double rz = dot(n, r, z);
    if (rz < 0.0)
        return wgf_error_set(err, WGF_ENUMERIC,
                             "MINRES iteration %u: the preconditioner is not positive definite "
                             "(r . M^-1 r = %g)",
                             iter, rz);
    *beta = sqrt(rz);
    return WGF_OK;
}

/* With a preconditioner (Paige and Saunders 1975, section 6; SciPy's minres)
 * the Lanczos process runs on M^{-1/2} (A + shift I) M^{-1/2} without forming
 * M^{-1/2}: r1, r2 hold unpreconditioned Lanczos vectors, y = M^{-1} r2, and
 * every beta is an M^{-1} norm. The recurrences below are otherwise those
 * without one. */
int wgf_minres_prec(size_t n, wgf_linop_fn A, void *user, double shift, wgf_linop_fn Minv,
                    void *muser, const double *b, double *x, double rtol, unsigned maxiter,
                    wgf_solve_stats *stats, wgf_error *err)
{
    wgf_solve_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!A || !b || !x)
        return wgf_error_set(err, WGF_EINVAL, "MINRES: missing operator or vector");
    if (!(rtol >= 0.0) || !isfinite(shift))
        return wgf_error_set(err, WGF_EINVAL, "MINRES: tolerance %g or shift %g is not valid", rtol,
                             shift);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.0;

    const double bnorm = wgf_nrm2(n, b, NULL);
    if (!isfinite(bnorm))
        return wgf_error_set(err, WGF_ENUMERIC, "MINRES iteration 0: right-hand side is not finite");
    if (bnorm == 0.0) {
        stats->converged = 1;
        return WGF_OK;
    }
    if (n == 0 || maxiter == 0) {
        stats->residual = 1.0;
        return WGF_OK;
    }

    double *work = malloc(7 * n * sizeof *work);
    if (!work)
        return wgf_error_set(err, WGF_ENOMEM, "MINRES: out of memory (n = %zu)", n);
    double *r1 = work, *r2 = work + n, *v = work + 2 * n, *y = work + 3 * n;
    double *w = work + 4 * n, *w1 = work + 5 * n, *w2 = work + 6 * n;
    for (size_t i = 0; i < n; i++) {
        r1[i] = b[i];
        r2[i] = b[i];
        w[i] = w1[i] = w2[i] = 0.0;
    }
    double beta1;
    int rc = precondition(n, Minv, muser, b, y, &beta1, 0, err);
    if (rc == WGF_OK && !(beta1 > 0.0 && isfinite(beta1)))
        rc = wgf_error_set(err, WGF_ENUMERIC,
                           "MINRES iteration 0: the preconditioner gives |b|_M^-1 = %g for a nonzero "
                           "right-hand side (not positive definite)",
                           beta1);
    if (rc != WGF_OK) {
        free(work);
        return rc;
    }

    const double eps = DBL_EPSILON;
    double oldb = 0.0, beta = beta1, dbar = 0.0, epsln = 0.0, phibar = beta1;
    double tnorm2 = 0.0, cs = -1.0, sn = 0.0;
    int converged = 0;
    unsigned itn = 0;

    while (itn < maxiter) {
        itn++;
        /* Lanczos: v_k = r_k / beta_k, then r_{k+1} = (A + shift) v_k - alpha_k v_k
         * - beta_k v_{k-1} (r1, r2 hold the unnormalised r_{k-1}, r_k). */
        double s = 1.0 / beta;
        for (size_t i = 0; i < n; i++)
            v[i] = s * y[i];
        rc = apply_shifted(n, A, user, shift, v, y, itn, err);
        stats->products++;
        if (rc != WGF_OK)
            break;
        if (itn >= 2) {
            double c = beta / oldb;
            for (size_t i = 0; i < n; i++)
                y[i] -= c * r1[i];
        }
        double alfa = dot(n, v, y);
        double c = alfa / beta;
        for (size_t i = 0; i < n; i++) {
            y[i] -= c * r2[i];
            r1[i] = r2[i];
            r2[i] = y[i];
        }
        oldb = beta;
        rc = precondition(n, Minv, muser, r2, y, &beta, itn, err);
        if (rc != WGF_OK)
            break;
        if (!isfinite(alfa) || !isfinite(beta)) {
            rc = wgf_error_set(err, WGF_ENUMERIC,
                               "MINRES iteration %u: Lanczos coefficients are not finite "
                               "(NaN or overflow in the operator)",
                               itn);
            break;
        }
        tnorm2 += alfa * alfa + oldb * oldb + beta * beta;
        const double anorm = sqrt(tnorm2);
        /* beta_{k+1} = 0 to rounding: K_k is invariant, no further progress. */
        const int exhausted = beta <= 10.0 * eps * anorm;

        /* Apply the previous rotation Q_{k-1} to the new column of Tbar. */
        double oldeps = epsln;
        double delta = cs * dbar + sn * alfa;
        double gbar = sn * dbar - cs * alfa;
        epsln = sn * beta;
        dbar = -cs * beta;

        /* |A r_{k-1}| / |r_{k-1}| for the least-squares test. */
        const double root = hypot(gbar, dbar);

        /* New rotation Q_k annihilating beta_{k+1}. */
        double gamma = hypot(gbar, beta);
        if (gamma <= 10.0 * eps * anorm) /* T_k singular: see above */
            break;
        if (!(gamma > 0.0) || !isfinite(gamma)) {
            rc = wgf_error_set(err, WGF_ENUMERIC, "MINRES iteration %u: breakdown (gamma = %g)", itn,
                               gamma);
            break;
        }
        cs = gbar / gamma;
        sn = beta / gamma;
        double phi = cs * phibar;
        phibar = sn * phibar;

        /* x_k = x_{k-1} + phi w_k, w_k = (v_k - oldeps w_{k-2} - delta w_{k-1}) / gamma. */
        double denom = 1.0 / gamma;
        double *t = w1;
        w1 = w2;
        w2 = w;
        w = t;
        int finite = 1;
        for (size_t i = 0; i < n; i++) {
            w[i] = (v[i] - oldeps * w1[i] - delta * w2[i]) * denom;
            if (!isfinite(w[i]) || !isfinite(x[i] + phi * w[i]))
                finite = 0;
        }
        if (!finite) {
            rc = wgf_error_set(err, WGF_ENUMERIC,
                               "MINRES iteration %u: the iterate is not finite (breakdown)", itn);
            break;
        }
        for (size_t i = 0; i < n; i++)
            x[i] += phi * w[i];

        if (phibar <= rtol * beta1) {
            converged = 1;
            break;
        }
        if (exhausted || root <= sqrt(eps) * anorm)
            break;
    }
    stats->iterations = itn;

    if (rc == WGF_OK) {
        /* The recurrence residual drifts from the true one in floating point:
         * report the true |b - (A + shift) x| / |b| (one more product). */
        rc = apply_shifted(n, A, user, shift, x, y, itn, err);
        stats->products++;
        if (rc == WGF_OK) {
            for (size_t i = 0; i < n; i++)
                y[i] = b[i] - y[i];
            stats->residual = wgf_nrm2(n, y, NULL) / bnorm;
            stats->converged = converged;
            if (!isfinite(stats->residual))
                rc = wgf_error_set(err, WGF_ENUMERIC,
                                   "MINRES iteration %u: the final residual is not finite", itn);
        }
    }
    free(work);
    return rc;
}

/* ---------------------------------------------------------------- dense helpers */

static int check_finite(size_t k, const double *a, const char *what, wgf_error *err)
{
    for (size_t i = 0; i < k; i++)
        if (!isfinite(a[i]))
            return wgf_error_set(err, WGF_ENUMERIC, "%s: entry %zu is not finite", what, i);
    return WGF_OK;
}

int wgf_sym_eigen(size_t d, const double *A, double *w, double *V, wgf_error *err)
{
    if (d == 0)
        return WGF_OK;
    int rc = check_finite(d * d, A, "symmetric eigendecomposition", err);
    if (rc != WGF_OK)
        return rc;
    gsl_matrix *a = gsl_matrix_alloc(d, d);
    gsl_matrix *evec = gsl_matrix_alloc(d, d);
    gsl_vector *eval = gsl_vector_alloc(d);
    gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc(d);
    if (!a || !evec || !eval || !ws) {
        rc = wgf_error_set(err, WGF_ENOMEM, "symmetric eigendecomposition: out of memory (d = %zu)", d);
        goto done;
    }
    /* symmv reads the lower triangle and destroys its input: work on a copy. */
    memcpy(a->data, A, d * d * sizeof *A);
    gsl_eigen_symmv(a, eval, evec, ws);
    gsl_eigen_symmv_sort(eval, evec, GSL_EIGEN_SORT_VAL_ASC);
    for (size_t i = 0; i < d; i++) {
        w[i] = gsl_vector_get(eval, i);
        for (size_t j = 0; j < d; j++)
            V[i * d + j] = gsl_matrix_get(evec, i, j);
    }
done:
    gsl_eigen_symmv_free(ws);
    gsl_vector_free(eval);
    gsl_matrix_free(evec);
    gsl_matrix_free(a);
    return rc;
}

int wgf_sym_fun(size_t d, const double *A, double (*f)(double, void *), void *user, double *B,
                wgf_error *err)
{
    if (d == 0)
        return WGF_OK;
    double *buf = malloc((d * d + d) * sizeof *buf);
    if (!buf)
        return wgf_error_set(err, WGF_ENOMEM, "symmetric matrix function: out of memory (d = %zu)", d);
    double *V = buf, *w = buf + d * d;
    int rc = wgf_sym_eigen(d, A, w, V, err);
    if (rc == WGF_OK) {
        for (size_t i = 0; i < d; i++)
            w[i] = f(w[i], user);
        /* B = V diag(f(w)) V^T, written symmetric; B may alias A (A was copied). */
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j <= i; j++) {
                double s = 0.0;
                for (size_t k = 0; k < d; k++)
                    s += V[i * d + k] * w[k] * V[j * d + k];
                B[i * d + j] = s;
                B[j * d + i] = s;
            }
    }
    free(buf);
    return rc;
}

/* Unblocked Cholesky on the lower triangle, stopping at the first pivot that
 * is not safely positive. Any backward-stable Cholesky computes pivot j with
 * an error of order j eps A_jj, so a pivot above 16 d eps A_jj here is
 * positive in GSL's (blocked, differently ordered) factorisation as well.
 * Returns the index of the failing pivot or d. */
static size_t cholesky_pivot_check(size_t d, const double *A, double *L)
{
    for (size_t j = 0; j < d; j++) {
        double s = A[j * d + j];
        for (size_t k = 0; k < j; k++)
            s -= L[j * d + k] * L[j * d + k];
        if (!(s > 16.0 * (double)d * DBL_EPSILON * A[j * d + j]) || !(A[j * d + j] > 0.0))
            return j;
        double ljj = sqrt(s);
        L[j * d + j] = ljj;
        for (size_t i = j + 1; i < d; i++) {
            double t = A[i * d + j];
            for (size_t k = 0; k < j; k++)
                t -= L[i * d + k] * L[j * d + k];
            L[i * d + j] = t / ljj;
        }
    }
    return d;
}

int wgf_cholesky(size_t d, const double *A, double *L, wgf_error *err)
{
    if (d == 0)
        return WGF_OK;
    for (size_t i = 0; i < d * d; i++)
        if (!isfinite(A[i]))
            return wgf_error_set(err, WGF_EINVAL, "Cholesky factorisation: entry %zu is not finite", i);
    gsl_matrix *a = gsl_matrix_alloc(d, d);
    if (!a)
        return wgf_error_set(err, WGF_ENOMEM, "Cholesky factorisation: out of memory (d = %zu)", d);
    size_t j = cholesky_pivot_check(d, A, a->data);
    if (j < d) {
        gsl_matrix_free(a);
        return wgf_error_set(err, WGF_EINVAL,
                             "Cholesky factorisation: matrix is not positive definite "
                             "(pivot %zu of %zu is not positive)",
                             j + 1, d);
    }
    memcpy(a->data, A, d * d * sizeof *A);
    gsl_linalg_cholesky_decomp1(a);
    for (size_t r = 0; r < d; r++)
        for (size_t c = 0; c < d; c++)
            L[r * d + c] = c <= r ? gsl_matrix_get(a, r, c) : 0.0;
    gsl_matrix_free(a);
    return WGF_OK;
}

void wgf_matmul(size_t d, const double *A, const double *B, double *C)
{
    if (d == 0)
        return;
    /* C must not alias A or B (as for dgemm). */
    gsl_matrix_const_view a = gsl_matrix_const_view_array(A, d, d);
    gsl_matrix_const_view bb = gsl_matrix_const_view_array(B, d, d);
    gsl_matrix_view c = gsl_matrix_view_array(C, d, d);
    gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, 1.0, &a.matrix, &bb.matrix, 0.0, &c.matrix);
}
