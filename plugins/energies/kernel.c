/* kernel.c: radial interaction kernels (MATH.md 2; see kernel.h). */
#include "config.h"

#include <math.h>
#include <stdlib.h>

/* the arrays of a tile are dispatched at run time, as the pair sums that
 * call them (pairsum.h) */
#include "../dispatch.h"
#include "kernel.h"

/* into each clone */
#ifdef __GNUC__
#define KERNEL_INLINE static inline __attribute__((always_inline))
#else
#define KERNEL_INLINE static inline
#endif

/* OpenMP pragmas (here: simd), and nothing without OpenMP. */
#ifdef _OPENMP
#define OMP(x) _Pragma(#x)
#else
#define OMP(x)
#endif

enum { KERNEL_QUARTIC, KERNEL_POWER };

/* r2^e for the exponents e = (a-2)/2 and (b-2)/2 of the power kernel: the
 * usual kernels have integer or half-integer e, which need no pow. */
enum { RP_INT, RP_HALF, RP_GENERAL };

typedef struct rpow_t {
    int kind;
    int n;    /* RP_INT: e = n; RP_HALF: e = n + 1/2 */
    double e; /* RP_GENERAL */
} rpow_t;

struct agg_kernel {
    int type;
    double a, b;    /* power: exponents */
    rpow_t pa, pb; /* r2^((a-2)/2), r2^((b-2)/2) */
};

static rpow_t rpow_make(double e)
{
    rpow_t p = {RP_GENERAL, 0, e};
    if (fabs(e) <= 8.0 && e == floor(e)) {
        p.kind = RP_INT;
        p.n = (int)e;
    } else if (fabs(e) <= 8.0 && e - 0.5 == floor(e - 0.5)) {
        p.kind = RP_HALF;
        p.n = (int)floor(e);
    }
    return p;
}

static double ipow(double r, int n)
{
    double q = 1.0;
    for (int k = 0; k < (n < 0 ? -n : n); k++)
        q *= r;
    return n < 0 ? 1.0 / q : q;
}

/* r2^e for r2 > 0 */
static double rpow(double r2, const rpow_t *p)
{
    switch (p->kind) {
    case RP_INT: return ipow(r2, p->n);
    case RP_HALF: return ipow(r2, p->n) * sqrt(r2);
    default: return pow(r2, p->e);
    }
}

static int kernel_new(agg_kernel **k, int type, double a, double b, wgf_error *err)
{
    *k = malloc(sizeof **k);
    if (!*k)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for a kernel");
    (*k)->type = type;
    (*k)->a = a;
    (*k)->b = b;
    (*k)->pa = rpow_make(0.5 * (a - 2.0));
    (*k)->pb = rpow_make(0.5 * (b - 2.0));
    return WGF_OK;
}

int agg_kernel_quartic(agg_kernel **k, wgf_error *err)
{
    return kernel_new(k, KERNEL_QUARTIC, 4.0, 2.0, err);
}

int agg_kernel_power(agg_kernel **k, double a, double b, wgf_error *err)
{
    *k = NULL;
    if (!(b > 0.0 && a > b && isfinite(a)))
        return wgf_error_set(err, WGF_EINVAL, "the power kernel needs a > b > 0 (a = %g, b = %g)", a, b);
    return kernel_new(k, KERNEL_POWER, a, b, err);
}

void agg_kernel_free(agg_kernel *k)
{
    free(k);
}

/* No pow: this is the default kernel and the inner loop of every pair sum. */
KERNEL_INLINE void quartic_radial(size_t n, const double *restrict r2, double *restrict w,
                                 double *restrict psi, double *restrict chi)
{
    if (w) {
        OMP(omp simd)
        for (size_t i = 0; i < n; i++)
            w[i] = 0.25 * r2[i] * r2[i] - 0.5 * r2[i];
    }
    if (psi) {
        OMP(omp simd)
        for (size_t i = 0; i < n; i++)
            psi[i] = r2[i] - 1.0;
    }
    if (chi) {
        OMP(omp simd)
        for (size_t i = 0; i < n; i++)
            chi[i] = 2.0;
    }
}

/* |y|^e at r2 = |y|^2 = 0: 0 for e > 0, 1 for e = 0, and 0 for e < 0. The
 * last drops a singular term at coincident points: grad W is odd, so the
 * symmetric value of the force between two coincident samples is 0, and
 * 0 keeps Hess W finite there (for b >= 2 every term is finite and this is
 * the limit; for b < 2 Hess W is unbounded near 0 and for b <= 1 grad W is
 * discontinuous at 0, so no value is the limit). */
static double power_at_zero(double e)
{
    return e == 0.0 ? 1.0 : 0.0;
}

/* With pa = |y|^(a-2) and pb = |y|^(b-2) (at most two pow per pair):
 * w = pa r2/a - pb r2/b, psi = pa - pb, chi = ((a-2) pa - (b-2) pb)/r2.
 * For a = 4, b = 2 this is the quartic's arithmetic exactly. */
static void power_radial(const agg_kernel *k, size_t n, const double *r2, double *w, double *psi,
                         double *chi)
{
    double a = k->a, b = k->b, ea = 0.5 * (a - 2.0), eb = 0.5 * (b - 2.0);
    for (size_t i = 0; i < n; i++) {
        double r = r2[i];
        if (r > 0.0) {
            double pa = rpow(r, &k->pa), pb = rpow(r, &k->pb);
            if (w)
                w[i] = pa * r / a - pb * r / b;
            if (psi)
                psi[i] = pa - pb;
            if (chi)
                chi[i] = ((a - 2.0) * pa - (b - 2.0) * pb) / r;
        } else {
            if (w)
                w[i] = 0.0;
            if (psi)
                psi[i] = power_at_zero(ea) - power_at_zero(eb);
            if (chi)
                chi[i] = 0.0; /* multiplies y y^T = 0 */
        }
    }
}

WGF_DISPATCH
void agg_kernel_radial(const agg_kernel *k, size_t n, const double *r2, double *w, double *psi,
                       double *chi)
{
    if (k->type == KERNEL_QUARTIC)
        quartic_radial(n, r2, w, psi, chi);
    else
        power_radial(k, n, r2, w, psi, chi);
}

double agg_kernel_eval(const agg_kernel *k, size_t d, const double *y, const double *v, double *g,
                       double *hv)
{
    double r2 = 0.0, w, psi, chi;
    for (size_t i = 0; i < d; i++)
        r2 += y[i] * y[i];
    agg_kernel_radial(k, 1, &r2, &w, &psi, &chi);
    if (g)
        for (size_t i = 0; i < d; i++)
            g[i] = psi * y[i];
    if (hv) {
        double yv = 0.0;
        for (size_t i = 0; i < d; i++)
            yv += y[i] * v[i];
        for (size_t i = 0; i < d; i++)
            hv[i] = psi * v[i] + chi * yv * y[i];
    }
    return w;
}
