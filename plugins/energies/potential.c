/* potential.c: external potentials V(x) with value, gradient and
 * Hessian-vector product (MATH.md 2): the quadratic and separable quartic of
 * MATH.md, and potentials written as expressions in the experiment file.
 *
 * Expressions are parsed once into a tape: a straight-line program over
 * slots, the first nv slots holding the variables (x1..xd, or x for a
 * separable f), every later slot one operation on earlier slots. Derivatives
 * are forward-over-reverse on that tape: a forward sweep carries values and
 * their derivatives along v, a reverse sweep carries adjoints and their
 * derivatives along v, so grad V is the adjoint of the variables and
 * (Hess V) v the derivative of that adjoint along v, both exact and both in
 * O(tape length) per sample whatever d is. (Forward mode carrying a dense
 * gradient per node would cost O(tape length * d); symbolic differentiation
 * grows the expression with every derivative taken; libmatheval, which
 * differentiates symbolically, would need d^2 second-derivative evaluators
 * for (Hess V) v and reports no position for a syntax error.) Constants are
 * folded while parsing, and every occurrence of a variable reads the same
 * slot. */
#include <ctype.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "potential.h"

typedef double (*pot_value_fn)(const fpe_potential *p, const double *x, double *work);
typedef double (*pot_grad_fn)(const fpe_potential *p, const double *x, double *g, double *work);
typedef void (*pot_hvp_fn)(const fpe_potential *p, const double *x, const double *v, double *hv,
                           double *work);

/* Operations of an expression; the slot's operands are a and b, c is a
 * constant (the value of OP_CONST, the exponent of OP_POWI and OP_POWC). */
enum {
    OP_CONST,
    OP_VAR,
    OP_NEG,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_POWI, /* a^c with c an integer: exact for negative a */
    OP_POWC, /* a^c with c a real constant */
    OP_POW,  /* a^b */
    OP_EXP,
    OP_LOG,
    OP_SQRT,
    OP_SIN,
    OP_COS,
    OP_TANH,
    OP_ABS
};

typedef struct xop {
    int op;
    size_t a, b;
    double c;
} xop;

typedef struct tape {
    size_t nv;  /* variable slots 0..nv-1 */
    size_t len; /* slots in all */
    size_t res; /* the slot holding the result */
    xop *ops;   /* len entries; the first nv are unused */
} tape;

struct fpe_potential {
    size_t d;
    size_t work; /* doubles of workspace per evaluation */
    pot_value_fn value;
    pot_grad_fn grad;
    pot_hvp_fn hvp;
    double *mu;   /* quadratic: d */
    double *A;    /* quadratic: Sigma^{-1}, d x d */
    double scale; /* quartic */
    tape t;       /* expression */
};

/* ------------------------------------------------------------ interface */

double fpe_potential_stiffness(const fpe_potential *p)
{
    if (!p->A)
        return NAN;
    size_t d = p->d;
    double *v = malloc(2 * d * sizeof *v);
    if (!v)
        return NAN;
    double *w = v + d, q = 0;
    for (size_t i = 0; i < d; i++) /* not orthogonal to the top eigenvector in any practical case */
        v[i] = 1.0 + (double)i / (double)d;
    for (int it = 0; it < 200; it++) {
        double vv = 0, vw = 0;
        for (size_t i = 0; i < d; i++) {
            double acc = 0;
            for (size_t j = 0; j < d; j++)
                acc += p->A[i * d + j] * v[j];
            w[i] = acc;
            vv += v[i] * v[i];
            vw += v[i] * acc;
        }
        double qn = vw / vv, ww = 0; /* the Rayleigh quotient: never above lambda_max */
        for (size_t i = 0; i < d; i++)
            ww += w[i] * w[i];
        if (!(ww > 0))
            break;
        for (size_t i = 0; i < d; i++)
            v[i] = w[i] / sqrt(ww);
        int done = it > 0 && fabs(qn - q) <= 1e-12 * fabs(qn);
        q = qn;
        if (done)
            break;
    }
    free(v);
    return q;
}

size_t fpe_potential_worksize(const fpe_potential *p)
{
    return p->work;
}

size_t fpe_potential_cost(const fpe_potential *p)
{
    size_t d = p->d;
    if (p->A)
        return 2 * d * d + d; /* quadratic */
    if (p->t.ops)
        return 8 * p->t.len * (p->t.nv == 1 ? d : 1); /* expression: two sweeps */
    return 8 * d;                                     /* quartic */
}

double fpe_potential_value(const fpe_potential *p, const double *x, double *work)
{
    return p->value(p, x, work);
}

double fpe_potential_grad(const fpe_potential *p, const double *x, double *g, double *work)
{
    return p->grad(p, x, g, work);
}

void fpe_potential_hvp(const fpe_potential *p, const double *x, const double *v, double *hv,
                       double *work)
{
    p->hvp(p, x, v, hv, work);
}

void fpe_potential_free(fpe_potential *p)
{
    if (!p)
        return;
    free(p->mu);
    free(p->A);
    free(p->t.ops);
    free(p);
}

static fpe_potential *pot_new(size_t d, wgf_error *err)
{
    fpe_potential *p = calloc(1, sizeof *p);
    if (!p)
        wgf_error_set(err, WGF_ENOMEM, "out of memory for a potential");
    else
        p->d = d;
    return p;
}

/* ------------------------------------------------------------ quadratic */

/* r = x - mu in work; V = r.Ar/2 with grad V = Ar, so that value and
 * gradient come from the same products. */
static double quad_value(const fpe_potential *p, const double *x, double *work)
{
    size_t d = p->d;
    double *r = work, V = 0.0;
    for (size_t i = 0; i < d; i++)
        r[i] = x[i] - p->mu[i];
    for (size_t i = 0; i < d; i++) {
        const double *Ai = p->A + i * d;
        double s = 0.0;
        for (size_t j = 0; j < d; j++)
            s += Ai[j] * r[j];
        V += r[i] * s;
    }
    return 0.5 * V;
}

static double quad_grad(const fpe_potential *p, const double *x, double *g, double *work)
{
    size_t d = p->d;
    double *r = work, V = 0.0;
    for (size_t i = 0; i < d; i++)
        r[i] = x[i] - p->mu[i];
    for (size_t i = 0; i < d; i++) {
        const double *Ai = p->A + i * d;
        double s = 0.0;
        for (size_t j = 0; j < d; j++)
            s += Ai[j] * r[j];
        g[i] = s;
        V += r[i] * s;
    }
    return 0.5 * V;
}

static void quad_hvp(const fpe_potential *p, const double *x, const double *v, double *hv,
                     double *work)
{
    (void)x;
    (void)work;
    size_t d = p->d;
    for (size_t i = 0; i < d; i++) {
        const double *Ai = p->A + i * d;
        double s = 0.0;
        for (size_t j = 0; j < d; j++)
            s += Ai[j] * v[j];
        hv[i] = s;
    }
}

/* A = S^{-1} for SPD S through its Cholesky factor, checking symmetry and
 * definiteness on the way (the numerical pivot, not only its sign: a pivot
 * below d eps max_i S_ii means S is singular to working precision). */
static int spd_inverse(size_t d, const double *S, double *A, wgf_error *err)
{
    double maxdiag = 0.0, maxabs = 0.0;
    for (size_t i = 0; i < d * d; i++) {
        if (!isfinite(S[i]))
            return wgf_error_set(err, WGF_EINVAL,
                                 "not symmetric positive definite (entry (%zu,%zu) is %g)", i / d + 1,
                                 i % d + 1, S[i]);
        maxabs = fmax(maxabs, fabs(S[i]));
    }
    for (size_t i = 0; i < d; i++) {
        maxdiag = fmax(maxdiag, S[i * d + i]);
        for (size_t j = 0; j < i; j++)
            if (fabs(S[i * d + j] - S[j * d + i]) > 1e-12 * maxabs)
                return wgf_error_set(
                    err, WGF_EINVAL,
                    "not symmetric positive definite: not symmetric (entry (%zu,%zu) is "
                    "%.17g, entry (%zu,%zu) is %.17g)",
                    i + 1, j + 1, S[i * d + j], j + 1, i + 1, S[j * d + i]);
    }
    /* Row-oriented throughout, so that every inner loop is a contiguous
     * axpy the compiler vectorises, and a zero multiplier skips its row: a
     * diagonal or block-diagonal Sigma (the usual case) costs O(d^2), a dense
     * one d^3 flops at memory speed. (The column-by-column solve this
     * replaces walked S^{-1} with a stride of d: 56 s at d = 2000.) */
    double *U = malloc(d * d * sizeof *U), *X = calloc(d * d, sizeof *X);
    if (!U || !X) {
        free(U);
        free(X);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for a %zu x %zu matrix", d, d);
    }
    /* Upper Cholesky factor, S = U^T U, right-looking on the upper triangle
     * of the symmetric part (an asymmetry within the tolerance is harmless). */
    for (size_t i = 0; i < d; i++)
        for (size_t j = i; j < d; j++)
            U[i * d + j] = 0.5 * (S[i * d + j] + S[j * d + i]);
    double tiny = (double)d * DBL_EPSILON * maxdiag;
    for (size_t j = 0; j < d; j++) {
        double s = U[j * d + j], *uj = U + j * d;
        if (!(s > tiny)) {
            free(U);
            free(X);
            return wgf_error_set(
                err, WGF_EINVAL, "not symmetric positive definite (its leading %zu x %zu block is %s)",
                j + 1, j + 1, s > 0.0 ? "singular to working precision" : "not positive definite");
        }
        double ujj = sqrt(s);
        uj[j] = ujj;
        for (size_t k = j + 1; k < d; k++)
            uj[k] /= ujj;
        for (size_t i = j + 1; i < d; i++) {
            double m = uj[i];
            if (m == 0.0)
                continue;
            double *ui = U + i * d;
            for (size_t k = i; k < d; k++)
                ui[k] -= m * uj[k];
        }
    }
    /* X = U^{-1} (upper triangular), by rows from the last:
     * X_ii = 1 / U_ii, X_i,j>i = -(sum_{i<k<=j} U_ik X_kj) / U_ii. */
    for (size_t i = d; i-- > 0;) {
        double *xi = X + i * d;
        const double *ui = U + i * d;
        for (size_t k = i + 1; k < d; k++) {
            double m = ui[k];
            if (m == 0.0)
                continue;
            const double *xk = X + k * d;
            for (size_t j = k; j < d; j++)
                xi[j] -= m * xk[j];
        }
        double r = 1.0 / ui[i];
        for (size_t j = i + 1; j < d; j++)
            xi[j] *= r;
        xi[i] = r;
    }
    /* S^{-1} = X X^T = sum_k x_k x_k^T over the columns x_k of X (x_k has
     * entries 0..k): with T = X^T row-major, row k of T is x_k. */
    double *T = U;
    for (size_t k = 0; k < d; k++)
        for (size_t i = 0; i <= k; i++)
            T[k * d + i] = X[i * d + k];
    memset(A, 0, d * d * sizeof *A);
    for (size_t k = 0; k < d; k++) {
        const double *tk = T + k * d;
        for (size_t i = 0; i <= k; i++) {
            double m = tk[i];
            if (m == 0.0)
                continue;
            double *ai = A + i * d;
            for (size_t j = 0; j <= i; j++)
                ai[j] += m * tk[j];
        }
    }
    /* the lower triangle is filled: mirror it, exactly symmetric so that Hess V is */
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < i; j++)
            A[j * d + i] = A[i * d + j];
    free(U);
    free(X);
    return WGF_OK;
}

int fpe_potential_quadratic(fpe_potential **pp, size_t d, const double *mu, const double *sigma,
                            wgf_error *err)
{
    *pp = NULL;
    fpe_potential *p = pot_new(d, err);
    if (!p)
        return WGF_ENOMEM;
    p->mu = malloc(d * sizeof *p->mu);
    p->A = malloc(d * d * sizeof *p->A);
    if (!p->mu || !p->A) {
        fpe_potential_free(p);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for a quadratic potential");
    }
    memcpy(p->mu, mu, d * sizeof *mu);
    int rc = spd_inverse(d, sigma, p->A, err);
    if (rc != WGF_OK) {
        fpe_potential_free(p);
        return rc;
    }
    p->work = d;
    p->value = quad_value;
    p->grad = quad_grad;
    p->hvp = quad_hvp;
    *pp = p;
    return WGF_OK;
}

/* -------------------------------------------------------------- quartic */

static double quartic_value(const fpe_potential *p, const double *x, double *work)
{
    (void)work;
    double V = 0.0;
    for (size_t i = 0; i < p->d; i++) {
        double xi = x[i], x2 = xi * xi;
        V += x2 * x2 - 16.0 * x2 + 5.0 * xi;
    }
    return p->scale * V;
}

static double quartic_grad(const fpe_potential *p, const double *x, double *g, double *work)
{
    (void)work;
    double V = 0.0, s = p->scale;
    for (size_t i = 0; i < p->d; i++) {
        double xi = x[i], x2 = xi * xi;
        V += x2 * x2 - 16.0 * x2 + 5.0 * xi;
        g[i] = s * (4.0 * x2 * xi - 32.0 * xi + 5.0);
    }
    return s * V;
}

static void quartic_hvp(const fpe_potential *p, const double *x, const double *v, double *hv,
                        double *work)
{
    (void)work;
    for (size_t i = 0; i < p->d; i++)
        hv[i] = p->scale * (12.0 * x[i] * x[i] - 32.0) * v[i];
}

int fpe_potential_quartic(fpe_potential **pp, size_t d, double scale, wgf_error *err)
{
    *pp = NULL;
    fpe_potential *p = pot_new(d, err);
    if (!p)
        return WGF_ENOMEM;
    p->scale = scale;
    p->value = quartic_value;
    p->grad = quartic_grad;
    p->hvp = quartic_hvp;
    *pp = p;
    return WGF_OK;
}

/* ------------------------------------------------ expressions: numerics */

/* a^n by repeated squaring: exact signs for negative a, and the same
 * products as x*x and (x*x)*(x*x) for n = 2 and 4. */
static double powi(double a, long n)
{
    unsigned long m = n < 0 ? (unsigned long)(-(n + 1)) + 1u : (unsigned long)n;
    double r = 1.0, b = a;
    int first = 1;
    while (m) {
        if (m & 1u) {
            r = first ? b : r * b;
            first = 0;
        }
        m >>= 1;
        if (m)
            b *= b;
    }
    return n < 0 ? 1.0 / r : r;
}

static double sign(double a)
{
    return a > 0.0 ? 1.0 : (a < 0.0 ? -1.0 : 0.0);
}

/* The value of one operation; also used to fold constants, so that folded
 * and evaluated arithmetic agree. */
static double op_value(int op, double a, double b, double c)
{
    switch (op) {
    case OP_CONST: return c;
    case OP_NEG: return -a;
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POWI: return powi(a, (long)c);
    case OP_POWC: return pow(a, c);
    case OP_POW: return pow(a, b);
    case OP_EXP: return exp(a);
    case OP_LOG: return log(a);
    case OP_SQRT: return sqrt(a);
    case OP_SIN: return sin(a);
    case OP_COS: return cos(a);
    case OP_TANH: return tanh(a);
    case OP_ABS: return fabs(a);
    default: return NAN;
    }
}

/* First and second derivative of a unary operation at a with value y. */
static void unary_derivs(int op, double a, double y, double c, double *f1, double *f2)
{
    switch (op) {
    case OP_NEG: *f1 = -1.0; *f2 = 0.0; break;
    case OP_POWI: {
        long n = (long)c;
        /* n = 0 and 1 never reach the tape (folded away) */
        double pm2 = powi(a, n - 2);
        *f1 = c * pm2 * a;
        *f2 = c * (c - 1.0) * pm2;
        break;
    }
    case OP_POWC: *f1 = c * pow(a, c - 1.0); *f2 = c * (c - 1.0) * pow(a, c - 2.0); break;
    case OP_EXP: *f1 = y; *f2 = y; break;
    case OP_LOG: *f1 = 1.0 / a; *f2 = -1.0 / (a * a); break;
    case OP_SQRT: *f1 = 0.5 / y; *f2 = -0.25 / (y * y * y); break;
    case OP_SIN: *f1 = cos(a); *f2 = -y; break;
    case OP_COS: *f1 = -sin(a); *f2 = -y; break;
    case OP_TANH: *f1 = 1.0 - y * y; *f2 = -2.0 * y * (1.0 - y * y); break;
    case OP_ABS: *f1 = sign(a); *f2 = 0.0; break;
    default: *f1 = NAN; *f2 = NAN; break;
    }
}

static int is_binary(int op)
{
    return op == OP_ADD || op == OP_SUB || op == OP_MUL || op == OP_DIV || op == OP_POW;
}

/* Forward sweep over slots nv..len-1: values, and with dot their
 * derivatives along the direction set in dot[0..nv-1]. */
static void tape_forward(const tape *t, double *val, double *dot)
{
    for (size_t k = t->nv; k < t->len; k++) {
        const xop *o = &t->ops[k];
        double A = val[o->a], B = is_binary(o->op) ? val[o->b] : 0.0;
        double y = op_value(o->op, A, B, o->c);
        val[k] = y;
        if (!dot)
            continue;
        double dA = dot[o->a], dB = is_binary(o->op) ? dot[o->b] : 0.0;
        switch (o->op) {
        case OP_CONST: dot[k] = 0.0; break;
        case OP_ADD: dot[k] = dA + dB; break;
        case OP_SUB: dot[k] = dA - dB; break;
        case OP_MUL: dot[k] = dA * B + A * dB; break;
        case OP_DIV: dot[k] = (dA - y * dB) / B; break;
        case OP_POW: dot[k] = B * pow(A, B - 1.0) * dA + y * log(A) * dB; break;
        default: {
            double f1, f2;
            unary_derivs(o->op, A, y, o->c, &f1, &f2);
            dot[k] = f1 * dA;
        }
        }
    }
}

/* Reverse sweep: adj = d(result)/d(slot); with adot (and dot from the
 * forward sweep) also the derivatives of adj along the direction. For
 * y = f(a, b): adj_a += adj_y f_a, adot_a += adot_y f_a + adj_y (f_aa da + f_ab db),
 * and likewise for b. */
static void tape_reverse(const tape *t, const double *val, const double *dot, double *adj,
                         double *adot)
{
    memset(adj, 0, t->len * sizeof *adj);
    if (adot)
        memset(adot, 0, t->len * sizeof *adot);
    adj[t->res] = 1.0;
    for (size_t k = t->len; k-- > t->nv;) {
        const xop *o = &t->ops[k];
        double w = adj[k], wd = adot ? adot[k] : 0.0;
        if (o->op == OP_CONST || (w == 0.0 && wd == 0.0))
            continue;
        size_t a = o->a, b = o->b;
        double A = val[a], y = val[k];
        if (!is_binary(o->op)) {
            double f1, f2;
            unary_derivs(o->op, A, y, o->c, &f1, &f2);
            adj[a] += w * f1;
            if (adot)
                adot[a] += wd * f1 + w * f2 * dot[a];
            continue;
        }
        double B = val[b];
        double fa, fb, dfa = 0.0, dfb = 0.0;
        double dA = adot ? dot[a] : 0.0, dB = adot ? dot[b] : 0.0;
        switch (o->op) {
        case OP_ADD: fa = 1.0; fb = 1.0; break;
        case OP_SUB: fa = 1.0; fb = -1.0; break;
        case OP_MUL:
            fa = B;
            fb = A;
            dfa = dB;
            dfb = dA;
            break;
        case OP_DIV:
            fa = 1.0 / B;
            fb = -y / B;
            dfa = -dB / (B * B);
            dfb = (2.0 * y * dB - dA) / (B * B);
            break;
        default: { /* OP_POW: y = exp(B log A) */
            double lA = log(A), pm1 = pow(A, B - 1.0);
            fa = B * pm1;
            fb = y * lA;
            if (adot) {
                double faa = B * (B - 1.0) * pow(A, B - 2.0);
                double fab = pm1 * (1.0 + B * lA);
                double fbb = y * lA * lA;
                dfa = faa * dA + fab * dB;
                dfb = fab * dA + fbb * dB;
            }
        }
        }
        adj[a] += w * fa;
        adj[b] += w * fb;
        if (adot) {
            adot[a] += wd * fa + w * dfa;
            adot[b] += wd * fb + w * dfb;
        }
    }
}

/* Workspace: val, dot, adj, adot, len each. */
static double expr_value(const fpe_potential *p, const double *x, double *work)
{
    const tape *t = &p->t;
    double *val = work;
    memcpy(val, x, t->nv * sizeof *x);
    tape_forward(t, val, NULL);
    return val[t->res];
}

static double expr_grad(const fpe_potential *p, const double *x, double *g, double *work)
{
    const tape *t = &p->t;
    double *val = work, *adj = work + 2 * t->len;
    memcpy(val, x, t->nv * sizeof *x);
    tape_forward(t, val, NULL);
    tape_reverse(t, val, NULL, adj, NULL);
    memcpy(g, adj, t->nv * sizeof *g);
    return val[t->res];
}

static void expr_hvp(const fpe_potential *p, const double *x, const double *v, double *hv,
                     double *work)
{
    const tape *t = &p->t;
    double *val = work, *dot = work + t->len, *adj = work + 2 * t->len, *adot = work + 3 * t->len;
    memcpy(val, x, t->nv * sizeof *x);
    memcpy(dot, v, t->nv * sizeof *v);
    tape_forward(t, val, dot);
    tape_reverse(t, val, dot, adj, adot);
    memcpy(hv, adot, t->nv * sizeof *hv);
}

/* V = sum_i f(x_i): the one-variable tape once per coordinate. */
static double sep_value(const fpe_potential *p, const double *x, double *work)
{
    double V = 0.0;
    for (size_t i = 0; i < p->d; i++)
        V += expr_value(p, x + i, work);
    return V;
}

static double sep_grad(const fpe_potential *p, const double *x, double *g, double *work)
{
    double V = 0.0;
    for (size_t i = 0; i < p->d; i++)
        V += expr_grad(p, x + i, g + i, work);
    return V;
}

static void sep_hvp(const fpe_potential *p, const double *x, const double *v, double *hv,
                    double *work)
{
    for (size_t i = 0; i < p->d; i++)
        expr_hvp(p, x + i, v + i, hv + i, work);
}

/* ------------------------------------------------- expressions: parsing */

/* Deeper nesting than this is certainly a mistake, and the recursive
 * descent must not exhaust the stack. */
#define MAX_DEPTH 256

typedef struct xnode {
    int op;
    size_t a, b; /* operands (arena indices); OP_VAR: a is the variable */
    double c;
} xnode;

typedef struct parser {
    const char *s;
    size_t pos;
    size_t d;
    int separable;
    unsigned depth;
    xnode *node; /* arena; a node's operands always precede it */
    size_t n, cap;
    wgf_error *err;
} parser;

static const char *const FUNCS[] = {"exp", "log", "sqrt", "sin", "cos", "tanh", "abs"};
static const int FUNC_OPS[] = {OP_EXP, OP_LOG, OP_SQRT, OP_SIN, OP_COS, OP_TANH, OP_ABS};
#define NFUNCS (sizeof FUNCS / sizeof FUNCS[0])

static int perr(parser *P, size_t pos, const char *what)
{
    return wgf_error_set(P->err, WGF_EINVAL, "parse error at column %zu: %s", pos + 1, what);
}

static void skip_space(parser *P)
{
    while (P->s[P->pos] && isspace((unsigned char)P->s[P->pos]))
        P->pos++;
}

/* What stands at s: "the end of the expression", a name or number in
 * quotes, a printable character in quotes, or a character code. */
static void describe_at(const char *s, char *buf, size_t size)
{
    size_t n = 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '_' ||
           (n > 0 && s[n] == '.' && isdigit((unsigned char)s[0])))
        n++;
    if (s[0] == '\0')
        snprintf(buf, size, "the end of the expression");
    else if (n > 0)
        snprintf(buf, size, "'%.*s'", (int)(n > 24 ? 24 : n), s);
    else if (isprint((unsigned char)s[0]))
        snprintf(buf, size, "'%c'", s[0]);
    else
        snprintf(buf, size, "character 0x%02x", (unsigned)(unsigned char)s[0]);
}

static int push(parser *P, int op, size_t a, size_t b, double c, size_t *out)
{
    if (P->n == P->cap) {
        size_t cap = P->cap ? 2 * P->cap : 32;
        xnode *q = realloc(P->node, cap * sizeof *q);
        if (!q)
            return wgf_error_set(P->err, WGF_ENOMEM, "out of memory parsing an expression");
        P->node = q;
        P->cap = cap;
    }
    P->node[P->n] = (xnode){op, a, b, c};
    *out = P->n++;
    return WGF_OK;
}

static int is_const(const parser *P, size_t k)
{
    return P->node[k].op == OP_CONST;
}

/* A node for op on a (and b), folded to a constant when its operands are. */
static int make(parser *P, int op, size_t a, size_t b, double c, size_t *out)
{
    int binary = is_binary(op);
    if (is_const(P, a) && (!binary || is_const(P, b)))
        return push(P, OP_CONST, 0, 0,
                    op_value(op, P->node[a].c, binary ? P->node[b].c : 0.0, c), out);
    return push(P, op, a, b, c, out);
}

/* a^e: a constant integer exponent becomes OP_POWI (x^0 = 1, x^1 = x),
 * another constant OP_POWC. */
static int make_pow(parser *P, size_t a, size_t e, size_t *out)
{
    if (!is_const(P, e))
        return make(P, OP_POW, a, e, 0.0, out);
    double p = P->node[e].c;
    if (p == floor(p) && fabs(p) <= 1073741824.0) {
        if (p == 0.0)
            return push(P, OP_CONST, 0, 0, 1.0, out);
        if (p == 1.0) {
            *out = a;
            return WGF_OK;
        }
        return make(P, OP_POWI, a, 0, p, out);
    }
    return make(P, OP_POWC, a, 0, p, out);
}

static int parse_expr(parser *P, size_t *out);
static int parse_unary(parser *P, size_t *out);

static int parse_number(parser *P, size_t *out)
{
    const char *s = P->s;
    size_t start = P->pos, i = start, digits = 0;
    while (isdigit((unsigned char)s[i])) {
        i++;
        digits++;
    }
    if (s[i] == '.') {
        i++;
        while (isdigit((unsigned char)s[i])) {
            i++;
            digits++;
        }
    }
    if (digits == 0)
        return perr(P, start, "malformed number");
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        if (!isdigit((unsigned char)s[j]))
            return perr(P, i, "malformed number (no digits in the exponent)");
        while (isdigit((unsigned char)s[j]))
            j++;
        i = j;
    }
    /* strtod on a copy of exactly this literal (it would also take hex,
     * inf and nan), with the decimal point of the current locale. */
    const char *dp = localeconv()->decimal_point;
    size_t dplen = dp && *dp ? strlen(dp) : 1;
    char *buf = malloc(i - start + dplen + 1);
    if (!buf)
        return wgf_error_set(P->err, WGF_ENOMEM, "out of memory parsing an expression");
    size_t m = 0;
    for (size_t k = start; k < i; k++) {
        if (s[k] == '.') {
            memcpy(buf + m, dp && *dp ? dp : ".", dplen);
            m += dplen;
        } else {
            buf[m++] = s[k];
        }
    }
    buf[m] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    int whole = end == buf + m;
    free(buf);
    if (!whole)
        return perr(P, start, "malformed number");
    if (!isfinite(v))
        return perr(P, start, "number out of range");
    P->pos = i;
    return push(P, OP_CONST, 0, 0, v, out);
}

/* x1..xd (or x for a separable f), pi, or a function call. */
static int parse_name(parser *P, size_t *out)
{
    const char *s = P->s;
    size_t start = P->pos, i = start;
    while (isalnum((unsigned char)s[i]) || s[i] == '_')
        i++;
    size_t len = i - start;
    char msg[WGF_ERROR_MSG_MAX / 2];
    P->pos = i;
    for (size_t f = 0; f < NFUNCS; f++) {
        if (strlen(FUNCS[f]) != len || strncmp(s + start, FUNCS[f], len) != 0)
            continue;
        skip_space(P);
        if (s[P->pos] != '(') {
            snprintf(msg, sizeof msg, "function %s needs an argument in parentheses", FUNCS[f]);
            return perr(P, P->pos, msg);
        }
        size_t open = P->pos++, arg;
        int rc = parse_expr(P, &arg);
        if (rc != WGF_OK)
            return rc;
        skip_space(P);
        if (s[P->pos] != ')') {
            char c[32];
            describe_at(s + P->pos, c, sizeof c);
            snprintf(msg, sizeof msg, "expected ')' to close '(' at column %zu, found %s", open + 1, c);
            return perr(P, P->pos, msg);
        }
        P->pos++;
        return make(P, FUNC_OPS[f], arg, 0, 0.0, out);
    }
    if (len == 2 && strncmp(s + start, "pi", 2) == 0)
        return push(P, OP_CONST, 0, 0, 3.14159265358979323846, out);
    const char *funcs = "pi and the functions exp log sqrt sin cos tanh abs";
    int shown = (int)(len > 64 ? 64 : len);
    if (P->separable) {
        if (len == 1 && s[start] == 'x')
            return push(P, OP_VAR, 0, 0, 0.0, out);
        snprintf(msg, sizeof msg,
                 "unknown name '%.*s' (a separable potential is an expression in x, with %s)", shown,
                 s + start, funcs);
        return perr(P, start, msg);
    }
    if (s[start] == 'x' && len >= 2 && isdigit((unsigned char)s[start + 1])) {
        size_t k = 0, j;
        for (j = start + 1; j < i && isdigit((unsigned char)s[j]); j++)
            k = k > P->d ? k : 10 * k + (size_t)(s[j] - '0');
        if (j == i) {
            if (s[start + 1] != '0' && k >= 1 && k <= P->d)
                return push(P, OP_VAR, k - 1, 0, 0.0, out);
            snprintf(msg, sizeof msg,
                     "unknown variable '%.*s' (the dimension is %zu: the variables are x1..x%zu)", shown,
                     s + start, P->d, P->d);
            return perr(P, start, msg);
        }
    }
    if (len == 1 && s[start] == 'x') {
        snprintf(msg, sizeof msg,
                 "unknown name 'x' (the variables are x1..x%zu; for V = sum_i f(x_i) write f in x with "
                 "the key separable)",
                 P->d);
        return perr(P, start, msg);
    }
    snprintf(msg, sizeof msg, "unknown name '%.*s' (the variables are x1..x%zu, with %s)", shown,
             s + start, P->d, funcs);
    return perr(P, start, msg);
}

static int parse_primary(parser *P, size_t *out)
{
    skip_space(P);
    char c = P->s[P->pos];
    if (isdigit((unsigned char)c) || c == '.')
        return parse_number(P, out);
    if (isalpha((unsigned char)c) || c == '_')
        return parse_name(P, out);
    if (c == '(') {
        size_t open = P->pos++;
        int rc = parse_expr(P, out);
        if (rc != WGF_OK)
            return rc;
        skip_space(P);
        if (P->s[P->pos] != ')') {
            char what[32], msg[128];
            describe_at(P->s + P->pos, what, sizeof what);
            snprintf(msg, sizeof msg, "expected ')' to close '(' at column %zu, found %s", open + 1,
                     what);
            return perr(P, P->pos, msg);
        }
        P->pos++;
        return WGF_OK;
    }
    char what[32], msg[160];
    describe_at(P->s + P->pos, what, sizeof what);
    snprintf(msg, sizeof msg, "expected a number, a variable, a function or '(', found %s", what);
    return perr(P, P->pos, msg);
}

/* power := primary ['^' unary]: right associative, and x^-2 works. */
static int parse_power(parser *P, size_t *out)
{
    size_t base;
    int rc = parse_primary(P, &base);
    if (rc != WGF_OK)
        return rc;
    skip_space(P);
    if (P->s[P->pos] != '^') {
        *out = base;
        return WGF_OK;
    }
    /* x^x^...^x recurses once per link without a parenthesis or a sign:
     * every nesting counts against the depth, or a long chain overflows
     * the stack. */
    if (++P->depth > MAX_DEPTH)
        return perr(P, P->pos, "expression nested too deeply");
    P->pos++;
    size_t e;
    rc = parse_unary(P, &e);
    P->depth--;
    if (rc != WGF_OK)
        return rc;
    return make_pow(P, base, e, out);
}

/* unary := ('-' | '+') unary | power: so -x^2 = -(x^2). */
static int parse_unary(parser *P, size_t *out)
{
    skip_space(P);
    char c = P->s[P->pos];
    if (c != '-' && c != '+')
        return parse_power(P, out);
    if (++P->depth > MAX_DEPTH)
        return perr(P, P->pos, "expression nested too deeply");
    P->pos++;
    size_t a;
    int rc = parse_unary(P, &a);
    P->depth--;
    if (rc != WGF_OK || c == '+') {
        *out = a;
        return rc;
    }
    return make(P, OP_NEG, a, 0, 0.0, out);
}

static int parse_term(parser *P, size_t *out)
{
    size_t l;
    int rc = parse_unary(P, &l);
    while (rc == WGF_OK) {
        skip_space(P);
        char c = P->s[P->pos];
        if (c != '*' && c != '/')
            break;
        P->pos++;
        size_t r;
        rc = parse_unary(P, &r);
        if (rc == WGF_OK)
            rc = make(P, c == '*' ? OP_MUL : OP_DIV, l, r, 0.0, &l);
    }
    *out = l;
    return rc;
}

static int parse_expr(parser *P, size_t *out)
{
    if (++P->depth > MAX_DEPTH)
        return perr(P, P->pos, "expression nested too deeply");
    size_t l;
    int rc = parse_term(P, &l);
    while (rc == WGF_OK) {
        skip_space(P);
        char c = P->s[P->pos];
        if (c != '+' && c != '-')
            break;
        P->pos++;
        size_t r;
        rc = parse_term(P, &r);
        if (rc == WGF_OK)
            rc = make(P, c == '+' ? OP_ADD : OP_SUB, l, r, 0.0, &l);
    }
    P->depth--;
    *out = l;
    return rc;
}

/* The tape from the arena: the variables first, then every node the result
 * depends on, in arena order (operands precede their users). */
static int build_tape(parser *P, size_t root, size_t nv, tape *t)
{
    unsigned char *live = calloc(P->n, 1);
    size_t *slot = malloc(P->n * sizeof *slot);
    if (!live || !slot) {
        free(live);
        free(slot);
        return wgf_error_set(P->err, WGF_ENOMEM, "out of memory compiling an expression");
    }
    live[root] = 1;
    size_t len = nv;
    for (size_t k = root + 1; k-- > 0;) {
        if (!live[k])
            continue;
        const xnode *q = &P->node[k];
        if (is_binary(q->op)) {
            live[q->a] = 1;
            live[q->b] = 1;
        } else if (q->op != OP_VAR && q->op != OP_CONST) {
            live[q->a] = 1;
        }
        if (q->op != OP_VAR)
            len++;
    }
    t->ops = calloc(len, sizeof *t->ops);
    if (!t->ops) {
        free(live);
        free(slot);
        return wgf_error_set(P->err, WGF_ENOMEM, "out of memory compiling an expression");
    }
    t->nv = nv;
    t->len = len;
    size_t next = nv;
    for (size_t k = 0; k <= root; k++) {
        if (!live[k])
            continue;
        const xnode *q = &P->node[k];
        if (q->op == OP_VAR) {
            slot[k] = q->a;
            continue;
        }
        xop *o = &t->ops[next];
        o->op = q->op;
        o->c = q->c;
        if (q->op != OP_CONST) {
            o->a = slot[q->a];
            o->b = is_binary(q->op) ? slot[q->b] : 0;
        }
        slot[k] = next++;
    }
    t->res = slot[root];
    free(live);
    free(slot);
    return WGF_OK;
}

int fpe_potential_expression(fpe_potential **pp, size_t d, const char *text, int separable,
                             wgf_error *err)
{
    *pp = NULL;
    parser P = {0};
    P.s = text;
    P.d = d;
    P.separable = separable;
    P.err = err;
    size_t root = 0;
    skip_space(&P);
    if (P.s[P.pos] == '\0')
        return perr(&P, P.pos, "empty expression");
    int rc = parse_expr(&P, &root);
    if (rc == WGF_OK) {
        skip_space(&P);
        if (P.s[P.pos] != '\0') {
            char what[32], msg[160];
            describe_at(P.s + P.pos, what, sizeof what);
            snprintf(msg, sizeof msg,
                     "unexpected %s (expected an operator or the end of the expression)", what);
            rc = perr(&P, P.pos, msg);
        }
    }
    fpe_potential *p = NULL;
    if (rc == WGF_OK) {
        p = pot_new(d, err);
        if (!p)
            rc = WGF_ENOMEM;
    }
    if (rc == WGF_OK)
        rc = build_tape(&P, root, separable ? 1 : d, &p->t);
    free(P.node);
    if (rc != WGF_OK) {
        fpe_potential_free(p);
        return rc;
    }
    p->work = 4 * p->t.len;
    if (separable) {
        p->value = sep_value;
        p->grad = sep_grad;
        p->hvp = sep_hvp;
    } else {
        p->value = expr_value;
        p->grad = expr_grad;
        p->hvp = expr_hvp;
    }
    *pp = p;
    return WGF_OK;
}
