/* kernel.h: interaction kernels W: R^d -> R of the aggregation energy
 * (MATH.md 2), all radial: W(y) = w(|y|^2). Then
 *
 *     grad W(y) = psi(|y|^2) y,   Hess W(y) = psi(|y|^2) I + chi(|y|^2) y y^T,
 *
 * so a kernel is three scalar functions of r2 = |y|^2, evaluated on arrays
 * (a tile of pairs at a time, so that the pair loops vectorise), and value,
 * gradient and Hessian-vector product of W follow for any d:
 * (Hess W) v = psi v + chi (y . v) y.
 *
 * A kernel is immutable after creation: any number of threads may use it.
 *
 * Private to the plugins that compile it in: the prefix agg_ keeps it apart
 * from the public wgf_ interface of <wgf/...>. */
#ifndef ENERGIES_KERNEL_H
#define ENERGIES_KERNEL_H

#include <stddef.h>

#include <wgf/error.h>

typedef struct agg_kernel agg_kernel;

/* W = |y|^4/4 - |y|^2/2: w = r2^2/4 - r2/2, psi = r2 - 1, chi = 2. */
int agg_kernel_quartic(agg_kernel **k, wgf_error *err);

/* W = |y|^a/a - |y|^b/b with a > b > 0: psi = |y|^(a-2) - |y|^(b-2),
 * chi = (a-2)|y|^(a-4) - (b-2)|y|^(b-4). WGF_EINVAL unless a > b > 0. */
int agg_kernel_power(agg_kernel **k, double a, double b, wgf_error *err);

void agg_kernel_free(agg_kernel *k);

/* For i < n: w[i] = W, psi[i], chi[i] at r2[i] (each output may be NULL). */
void agg_kernel_radial(const agg_kernel *k, size_t n, const double *r2, double *w, double *psi,
                       double *chi);

/* Convenience for one y (d): returns W(y); grad W(y) into g and
 * (Hess W(y)) v into hv when they are not NULL. */
double agg_kernel_eval(const agg_kernel *k, size_t d, const double *y, const double *v, double *g,
                       double *hv);

#endif
