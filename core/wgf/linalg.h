/* wgf/linalg.h: the linear algebra the core and plugins share. */
#ifndef WGF_LINALG_H
#define WGF_LINALG_H

#include <stddef.h>
#include "error.h"
#include "plugin.h" /* wgf_solve_stats */

#ifdef __cplusplus
extern "C" {
#endif

/* out = A v for a symmetric operator. */
typedef int (*wgf_linop_fn)(void *user, const double *v, double *out, wgf_error *err);

/* MINRES (Paige and Saunders) for (A + shift I) x = b with symmetric A, from
 * x = 0, so that for a singular consistent system it converges to the
 * minimum-norm solution. Stops when |r| <= rtol |b| or after maxiter
 * iterations (stats->converged = 0, WGF_OK). WGF_ENUMERIC on NaN or a
 * breakdown; x is then left at the last finite iterate. */
int wgf_minres(size_t n, wgf_linop_fn A, void *user, double shift, const double *b, double *x,
               double rtol, unsigned maxiter, wgf_solve_stats *stats, wgf_error *err);
/* Preconditioned MINRES: the same with an SPD preconditioner M ~ (A + shift I)
 * given as its inverse, Minv(muser, r, z) setting z = M^{-1} r (NULL: none,
 * wgf_minres). The iterates minimise the residual in the M^{-1} norm, and the
 * stopping test is |r|_{M^-1} <= rtol |b|_{M^-1} (as SciPy's minres with M);
 * stats->residual is still the Euclidean |b - (A + shift I) x| / |b|.
 * WGF_ENUMERIC when M^{-1} is found not positive definite. M^{-1} applications
 * are not counted in stats->products. */
int wgf_minres_prec(size_t n, wgf_linop_fn A, void *user, double shift, wgf_linop_fn Minv,
                    void *muser, const double *b, double *x, double rtol, unsigned maxiter,
                    wgf_solve_stats *stats, wgf_error *err);

/* Small dense helpers on row-major d x d matrices (GSL underneath). */
/* Symmetric eigendecomposition: A = V diag(w) V^T (V row-major, columns are
 * eigenvectors). A is not modified. */
int wgf_sym_eigen(size_t d, const double *A, double *w, double *V, wgf_error *err);
/* B = f(A) for symmetric A, f applied to the eigenvalues. */
int wgf_sym_fun(size_t d, const double *A, double (*f)(double, void *), void *user, double *B,
                wgf_error *err);
/* Cholesky factor L (lower, row-major) of SPD A; WGF_EINVAL when A is not SPD. */
int wgf_cholesky(size_t d, const double *A, double *L, wgf_error *err);
/* C = A B for d x d matrices. */
void wgf_matmul(size_t d, const double *A, const double *B, double *C);

/* |a - b|_2 over n entries (b NULL: |a|_2), scaled as BLAS dnrm2 so that no
 * square overflows or underflows; inf or NaN when an entry is. */
double wgf_nrm2(size_t n, const double *a, const double *b);

#ifdef __cplusplus
}
#endif
#endif
