/* potential.h: external potentials V: R^d -> R for the Fokker-Planck energy
 * (MATH.md 2), behind one small interface so that other energies can reuse
 * them.
 *
 * Every potential gives, per sample, the value V(x), the gradient grad V(x)
 * and the Hessian-vector product (Hess V(x)) v: what an energy needs for its
 * partials, its Wasserstein gradient and that gradient's reverse pass.
 *
 * A potential is immutable after creation, so several threads may evaluate it
 * at once; each thread passes its own workspace of fpe_potential_worksize()
 * doubles (NULL when that is 0).
 *
 * Private to the plugins that compile it in: the prefix fpe_ keeps it apart
 * from the public wgf_ interface of <wgf/...>. */
#ifndef ENERGIES_POTENTIAL_H
#define ENERGIES_POTENTIAL_H

#include <stddef.h>

#include <wgf/error.h>

typedef struct fpe_potential fpe_potential;

/* V = 1/2 (x - mu)^T Sigma^{-1} (x - mu). Sigma (d x d, row-major) must be
 * symmetric positive definite: WGF_EINVAL with a message otherwise. */
int fpe_potential_quadratic(fpe_potential **p, size_t d, const double *mu, const double *sigma,
                            wgf_error *err);

/* V = scale * sum_i (x_i^4 - 16 x_i^2 + 5 x_i), the separable quartic. */
int fpe_potential_quartic(fpe_potential **p, size_t d, double scale, wgf_error *err);

/* V given as text. With separable = 0 the text is an expression in
 * x1..xd; with separable = 1 it is an expression f in x and
 * V = sum_i f(x_i). Syntax: numbers (1, 2.5, .5, 1e-3), the variables, the
 * constant pi, + - * / ^ (right associative; -x^2 = -(x^2)), unary minus,
 * parentheses and the functions exp log sqrt sin cos tanh abs.
 * A mistake gives WGF_EINVAL and "parse error at column N: ..." in err
 * (columns count characters of text from 1). */
int fpe_potential_expression(fpe_potential **p, size_t d, const char *text, int separable,
                             wgf_error *err);

void fpe_potential_free(fpe_potential *p);

/* Doubles of workspace one evaluation needs (0: pass NULL). */
size_t fpe_potential_worksize(const fpe_potential *p);
/* lambda_max of Hess V from below (the Rayleigh quotient of a power iteration), for the quadratic
 * potential; NaN for the others, whose Hessian is not bounded or not known in closed form. */
double fpe_potential_stiffness(const fpe_potential *p);

/* Rough floating-point operations of one gradient evaluation, for deciding
 * whether a batch is worth several threads. */
size_t fpe_potential_cost(const fpe_potential *p);

/* V(x). */
double fpe_potential_value(const fpe_potential *p, const double *x, double *work);
/* grad V(x) into g (d); returns V(x). */
double fpe_potential_grad(const fpe_potential *p, const double *x, double *g, double *work);
/* (Hess V(x)) v into hv (d). */
void fpe_potential_hvp(const fpe_potential *p, const double *x, const double *v, double *hv,
                       double *work);

#endif
