/* potential.h: external potentials V: R^d -> R for the Fokker-Planck energy
 * (MATH.md 2), behind one small interface so that other energies can reuse
 * them.
 *
 * Every potential gives, per sample, the value V(x), the gradient grad V(x)
 * and the Hessian-vector product (Hess V(x)) v: what an energy needs for its
 * partials, its Wasserstein gradient and that gradient's reverse pass.
 *
 * A potential is immutable after creation, so several threads may evaluate it
 * at once; each thread passes its own workspace of wgf_potential_worksize()
 * doubles (NULL when that is 0). */
#ifndef WGF_POTENTIAL_H
#define WGF_POTENTIAL_H

#include <stddef.h>

#include <wgf/error.h>

typedef struct wgf_potential wgf_potential;

/* V = 1/2 (x - mu)^T Sigma^{-1} (x - mu). Sigma (d x d, row-major) must be
 * symmetric positive definite: WGF_EINVAL with a message otherwise. */
int wgf_potential_quadratic(wgf_potential **p, size_t d, const double *mu, const double *sigma,
                            wgf_error *err);

/* V = scale * sum_i (x_i^4 - 16 x_i^2 + 5 x_i), the separable quartic. */
int wgf_potential_quartic(wgf_potential **p, size_t d, double scale, wgf_error *err);

/* V given as text. With separable = 0 the text is an expression in
 * x1..xd; with separable = 1 it is an expression f in x and
 * V = sum_i f(x_i). Syntax: numbers (1, 2.5, .5, 1e-3), the variables, the
 * constant pi, + - * / ^ (right associative; -x^2 = -(x^2)), unary minus,
 * parentheses and the functions exp log sqrt sin cos tanh abs.
 * A mistake gives WGF_EINVAL and "parse error at column N: ..." in err
 * (columns count characters of text from 1). */
int wgf_potential_expression(wgf_potential **p, size_t d, const char *text, int separable,
                             wgf_error *err);

void wgf_potential_free(wgf_potential *p);

/* Doubles of workspace one evaluation needs (0: pass NULL). */
size_t wgf_potential_worksize(const wgf_potential *p);

/* Rough floating-point operations of one gradient evaluation, for deciding
 * whether a batch is worth several threads. */
size_t wgf_potential_cost(const wgf_potential *p);

/* V(x). */
double wgf_potential_value(const wgf_potential *p, const double *x, double *work);
/* grad V(x) into g (d); returns V(x). */
double wgf_potential_grad(const wgf_potential *p, const double *x, double *g, double *work);
/* (Hess V(x)) v into hv (d). */
void wgf_potential_hvp(const wgf_potential *p, const double *x, const double *v, double *hv,
                       double *work);

#endif
