/* lufactor.h: the LU factorisation of a map's linear part A, shared by the
 * affine map and planar's affine part (header-only: each map is its own
 * shared object). */
#ifndef WGF_MAPS_LUFACTOR_H
#define WGF_MAPS_LUFACTOR_H

#include <float.h>
#include <math.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_permutation.h>

#include <wgf/plugin.h>

/* LU-factorise A (d x d, row-major) into lu (with perm); on success, *ld =
 * log|det A|. WGF_ENUMERIC, the message starting with `who` and ending with
 * `hint`, when A has a non-finite entry or is singular to working
 * precision: a pivot of at most d u max|A_ij| (u the unit roundoff) is what
 * partial pivoting leaves of an exactly singular matrix, and the map's
 * inverse would be meaningless past that. This also ensures that
 * gsl_linalg_LU_invert (whose singular case would go to the GSL error
 * handler) only sees invertible factors. */
static inline int map_lu_factor(size_t d, const double *A, double *lu, gsl_permutation *perm, double *ld,
                                const char *who, const char *hint, wgf_error *err)
{
    double amax = 0.0;
    for (size_t i = 0; i < d * d; i++) {
        if (!isfinite(A[i]))
            return wgf_error_set(err, WGF_ENUMERIC, "%s: A[%zu][%zu] = %g is not finite (the map is undefined)",
                                 who, i / d + 1, i % d + 1, A[i]);
        amax = fmax(amax, fabs(A[i]));
    }
    memcpy(lu, A, d * d * sizeof *lu);
    gsl_matrix_view m = gsl_matrix_view_array(lu, d, d);
    int signum = 0;
    gsl_linalg_LU_decomp(&m.matrix, perm, &signum);
    double tiny = (double)d * DBL_EPSILON * amax, sum = 0.0;
    for (size_t i = 0; i < d; i++) {
        double p = lu[i * d + i];
        if (!(fabs(p) > tiny))
            return wgf_error_set(err, WGF_ENUMERIC,
                                 "%s: A is singular (pivot %zu of %zu in its LU factorisation is %.3g, "
                                 "max|A_ij| = %.3g): the map is not invertible (%s)",
                                 who, i + 1, d, p, amax, hint);
        sum += log(fabs(p));
    }
    *ld = sum;
    return WGF_OK;
}

#endif
