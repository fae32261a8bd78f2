/* reference.c: exact and independently computed solutions (MATH.md 6). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_math.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sf_gamma.h>

#include "wgf/linalg.h"
#include "wgf/reference.h"

#include "internal.h"

/* ---------------------------------------------------------------- Ornstein-Uhlenbeck */

/* A = Sigma^{-1} shares the eigenvectors of Sigma = V diag(s) V^T, so
 * e^{-At} = V diag(e^{-t/s}) V^T and D Sigma (I - e^{-2At}) =
 * V diag(D s (1 - e^{-2t/s})) V^T (MATH.md 6). A is symmetric, so
 * e^{-At} C0 e^{-At} is the congruence the Lyapunov equation
 * C' = -(AC + CA) + 2 D I propagates. */
int wgf_ou_moments(size_t d, const double *mu, const double *Sigma, double D, const double *m0,
                   const double *C0, double t, double *m, double *C, wgf_error *err)
{
    if (d == 0)
        return wgf_error_set(err, WGF_EINVAL, "OU moments: dimension must be positive");
    if (!isfinite(D) || D < 0.0 || !isfinite(t))
        return wgf_error_set(err, WGF_EINVAL, "OU moments: D = %g and t = %g must be finite, D >= 0", D,
                             t);
    double *buf = malloc((4 * d * d + 2 * d) * sizeof *buf);
    if (!buf)
        return wgf_error_set(err, WGF_ENOMEM, "OU moments: out of memory (d = %zu)", d);
    double *V = buf, *E = buf + d * d, *T1 = buf + 2 * d * d, *T2 = buf + 3 * d * d;
    double *s = buf + 4 * d * d, *e = s + d;
    int rc = wgf_sym_eigen(d, Sigma, s, V, err);
    if (rc != WGF_OK) {
        wgf_error_prefix(err, "OU moments: Sigma");
        goto done;
    }
    if (!(s[0] > 0.0)) {
        rc = wgf_error_set(err, WGF_EINVAL,
                           "OU moments: Sigma is not positive definite (smallest eigenvalue %g)", s[0]);
        goto done;
    }
    for (size_t i = 0; i < d; i++)
        e[i] = exp(-t / s[i]);
    /* E = e^{-At}; T2 = D Sigma (I - e^{-2At}) (expm1: accurate for small t). */
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double se = 0.0, sq = 0.0;
            for (size_t k = 0; k < d; k++) {
                double vv = V[i * d + k] * V[j * d + k];
                se += vv * e[k];
                sq += vv * D * s[k] * -expm1(-2.0 * t / s[k]);
            }
            E[i * d + j] = se;
            T2[i * d + j] = sq;
        }
    for (size_t i = 0; i < d; i++) {
        double acc = 0.0;
        for (size_t j = 0; j < d; j++)
            acc += E[i * d + j] * (m0[j] - mu[j]);
        m[i] = mu[i] + acc;
    }
    wgf_matmul(d, E, C0, T1);
    wgf_matmul(d, T1, E, C);
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j <= i; j++) {
            /* Symmetrise: the products above are symmetric only to rounding. */
            double c = 0.5 * (C[i * d + j] + C[j * d + i]) + T2[i * d + j];
            C[i * d + j] = c;
            C[j * d + i] = c;
        }
done:
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- Barenblatt */

/* Unit mass (MATH.md 6): with y = x t^-beta the mass is
 * int (C - k|y|^2)_+^p dy = C^(p+d/2) k^(-d/2) pi^(d/2) Gamma(p+1)/Gamma(p+1+d/2) = 1. */
int wgf_barenblatt_init(wgf_barenblatt *b, size_t d, double m, wgf_error *err)
{
    if (d == 0)
        return wgf_error_set(err, WGF_EINVAL, "Barenblatt: dimension must be positive");
    if (!isfinite(m) || !(m > 1.0))
        return wgf_error_set(err, WGF_EINVAL, "Barenblatt: exponent m = %g must be > 1", m);
    double dd = (double)d;
    b->d = d;
    b->m = m;
    b->p = 1.0 / (m - 1.0);
    b->alpha = dd / (dd * (m - 1.0) + 2.0);
    b->beta = b->alpha / dd;
    b->k = b->alpha * (m - 1.0) / (2.0 * m * dd);
    double h = 0.5 * dd;
    double logC = (h * log(b->k) - h * log(M_PI) - gsl_sf_lngamma(b->p + 1.0) +
                   gsl_sf_lngamma(b->p + 1.0 + h)) /
                  (b->p + h);
    b->C = exp(logC);
    if (!isfinite(b->C) || !(b->C > 0.0))
        return wgf_error_set(err, WGF_ENUMERIC, "Barenblatt: normalising constant overflows (m = %g)", m);
    return WGF_OK;
}

static double sumsq(size_t d, const double *x)
{
    double s = 0.0;
    for (size_t i = 0; i < d; i++)
        s += x[i] * x[i];
    return s;
}

double wgf_barenblatt_density(const wgf_barenblatt *b, double t, const double *x)
{
    if (!(t > 0.0))
        return NAN;
    double q = b->C - b->k * sumsq(b->d, x) * pow(t, -2.0 * b->beta);
    return q > 0.0 ? pow(t, -b->alpha) * pow(q, b->p) : 0.0;
}

void wgf_barenblatt_log_density(const wgf_barenblatt *b, double t, size_t n, const double *x,
                                double *lp)
{
    double kt = b->k * pow(t, -2.0 * b->beta), la = -b->alpha * log(t);
    for (size_t i = 0; i < n; i++) {
        double q = b->C - kt * sumsq(b->d, x + i * b->d);
        lp[i] = q > 0.0 ? la + b->p * log(q) : -INFINITY;
    }
}

/* grad log rho = -2 p k t^(-2 beta) x / (C - k|x|^2 t^(-2 beta)) inside the
 * support. Outside, rho vanishes identically, and s = 0 keeps
 * rho s = grad rho (= 0) true there. */
void wgf_barenblatt_score(const wgf_barenblatt *b, double t, size_t n, const double *x, double *s)
{
    size_t d = b->d;
    double kt = b->k * pow(t, -2.0 * b->beta);
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + i * d;
        double q = b->C - kt * sumsq(d, xi);
        double f = q > 0.0 ? -2.0 * b->p * kt / q : 0.0;
        for (size_t j = 0; j < d; j++)
            s[i * d + j] = f * xi[j];
    }
}

/* With u = x / R(t), R(t) = t^beta sqrt(C/k), the density of u is
 * proportional to (1 - |u|^2)_+^p; in polar form |u|^2 has density
 * proportional to s^(d/2 - 1) (1 - s)^p, i.e. Beta(d/2, p + 1). */
void wgf_barenblatt_sample(const wgf_barenblatt *b, double t, gsl_rng *rng, size_t n, double *x)
{
    size_t d = b->d;
    double R = wgf_barenblatt_radius(b, t);
    for (size_t i = 0; i < n; i++) {
        double r2;
        do /* r^2 = 1 would put the sample on the boundary, log density -inf. */
            r2 = gsl_ran_beta(rng, 0.5 * (double)d, b->p + 1.0);
        while (!(r2 < 1.0));
        double r = R * sqrt(r2);
        double *xi = x + i * d;
        gsl_ran_dir_nd(rng, d, xi);
        for (size_t j = 0; j < d; j++)
            xi[j] *= r;
    }
}

double wgf_barenblatt_radius(const wgf_barenblatt *b, double t)
{
    return pow(t, b->beta) * sqrt(b->C / b->k);
}

/* E|x|^2 = R(t)^2 E[r^2] with r^2 ~ Beta(d/2, p+1): R^2 (d/2)/(d/2 + p + 1). */
double wgf_barenblatt_second_moment(const wgf_barenblatt *b, double t)
{
    double R = wgf_barenblatt_radius(b, t), dd = (double)b->d;
    return R * R * dd / (dd + 2.0 * b->p + 2.0);
}

/* int rho^m dx = t^(-alpha(m-1)) int (C - k|y|^2)_+^(p+1) dy (pm = p + 1), and
 * by the mass identity with p -> p+1 the integral is
 * C (p+1) / (p + 1 + d/2). Energy = p times that. */
double wgf_barenblatt_energy(const wgf_barenblatt *b, double t)
{
    double h = 0.5 * (double)b->d;
    return b->p * pow(t, -b->alpha * (b->m - 1.0)) * b->C * (b->p + 1.0) / (b->p + 1.0 + h);
}

/* ---------------------------------------------------------------- aggregation */

/* Uniform on the sphere of radius R: E|x-y|^2 = 2R^2, E|x-y|^4 = 4R^4(1 + 1/d),
 * so the energy is (R^4 (1 + 1/d) - R^2)/2, least at R^2 = d/(2(d+1)). */
double wgf_aggregation_ring_radius(size_t d)
{
    double dd = (double)d;
    return sqrt(dd / (2.0 * (dd + 1.0)));
}

double wgf_aggregation_ring_energy(size_t d)
{
    double dd = (double)d;
    return -dd / (8.0 * (dd + 1.0));
}

/* x - y ~ N(0, 2 s^2 I): E|y|^2 = 2 s^2 d, E|y|^4 = 4 s^4 d (d+2). */
double wgf_aggregation_gaussian_energy(size_t d, double s2)
{
    double dd = (double)d;
    return 0.5 * (s2 * s2 * dd * (dd + 2.0) - s2 * dd);
}

/* ---------------------------------------------------------------- 1-D finite volumes */

struct wgf_fv1d {
    size_t n;
    double a, b, h, D, t;
    double *x;   /* centres */
    double *V;   /* V at the centres */
    double *p;   /* face i+1/2: flux = p_i rho_i - q_i rho_{i+1} (n-1 faces) */
    double *q;
    double *rho; /* cell averages */
    double *cdf; /* n+1 cumulative masses at the faces */
    double *cp;  /* Thomas: pivots (n) and multipliers (n) */
    double *mult;
};

/* Bernoulli function B(z) = z / (e^z - 1), B(0) = 1. */
static double bernoulli(double z)
{
    if (fabs(z) < 1e-3)
        return 1.0 - z / 2.0 + z * z / 12.0 - z * z * z * z / 720.0;
    return z / expm1(z);
}

void wgf_fv1d_free(wgf_fv1d *fv)
{
    if (!fv)
        return;
    free(fv->x);
    free(fv);
}

static void update_cdf(wgf_fv1d *fv)
{
    fv->cdf[0] = 0.0;
    for (size_t i = 0; i < fv->n; i++)
        fv->cdf[i + 1] = fv->cdf[i] + fv->h * fv->rho[i];
}

/* Scharfetter-Gummel flux of rho V' + D rho_x across face i+1/2 with the
 * potential jump dV = V_{i+1} - V_i (MATH.md 6):
 *   F = (D/h) [ B(dV/D) rho_i - B(-dV/D) rho_{i+1} ].
 * It vanishes exactly for rho_{i+1}/rho_i = e^{-dV/D}, so the discrete
 * Gibbs density e^{-V_i/D} is the steady state, and p, q > 0 make the
 * backward-Euler matrix an M-matrix with unit column sums: positivity and
 * conservation of mass. */
int wgf_fv1d_create(wgf_fv1d **out, double a, double b, size_t cells, double D, wgf_fn1 V, void *user,
                    wgf_error *err)
{
    *out = NULL;
    if (!isfinite(a) || !isfinite(b) || !(a < b))
        return wgf_error_set(err, WGF_EINVAL, "finite volumes: interval [%g, %g] is not valid", a, b);
    if (cells < 2)
        return wgf_error_set(err, WGF_EINVAL, "finite volumes: %zu cells (at least 2)", cells);
    if (!isfinite(D) || !(D > 0.0))
        return wgf_error_set(err, WGF_EINVAL, "finite volumes: diffusion D = %g must be positive", D);
    if (!V)
        return wgf_error_set(err, WGF_EINVAL, "finite volumes: no potential");
    wgf_fv1d *fv = calloc(1, sizeof *fv);
    double *mem = malloc((8 * cells + 1) * sizeof *mem);
    if (!fv || !mem) {
        free(fv);
        free(mem);
        return wgf_error_set(err, WGF_ENOMEM, "finite volumes: out of memory (%zu cells)", cells);
    }
    size_t n = cells;
    fv->n = n;
    fv->a = a;
    fv->b = b;
    fv->h = (b - a) / (double)n;
    fv->D = D;
    fv->x = mem;
    fv->V = mem + n;
    fv->p = mem + 2 * n;
    fv->q = mem + 3 * n;
    fv->rho = mem + 4 * n;
    fv->cp = mem + 5 * n;
    fv->mult = mem + 6 * n;
    fv->cdf = mem + 7 * n;
    for (size_t i = 0; i < n; i++) {
        fv->x[i] = a + ((double)i + 0.5) * fv->h;
        fv->V[i] = V(fv->x[i], user);
        if (!isfinite(fv->V[i])) {
            double xi = fv->x[i];
            wgf_fv1d_free(fv);
            return wgf_error_set(err, WGF_EINVAL, "finite volumes: V(%g) is not finite", xi);
        }
    }
    for (size_t i = 0; i + 1 < n; i++) {
        double z = (fv->V[i + 1] - fv->V[i]) / D;
        fv->p[i] = D / fv->h * bernoulli(z);
        fv->q[i] = D / fv->h * bernoulli(-z);
    }
    fv->p[n - 1] = fv->q[n - 1] = 0.0; /* no-flux boundary */
    /* Until set: uniform density. */
    for (size_t i = 0; i < n; i++)
        fv->rho[i] = 1.0 / (b - a);
    fv->t = 0.0;
    update_cdf(fv);
    *out = fv;
    return WGF_OK;
}

int wgf_fv1d_set(wgf_fv1d *fv, wgf_fn1 rho0, void *user, wgf_error *err)
{
    /* Cell averages by Simpson's rule: fourth order, so the initial moments
     * carry no error visible next to the scheme's. Built in the scratch
     * array cp, so a rejected density leaves the state as it was. */
    size_t n = fv->n;
    double *avgs = fv->cp;
    double left = rho0(fv->a, user), mass = 0.0;
    for (size_t i = 0; i < n; i++) {
        double mid = rho0(fv->x[i], user);
        double right = rho0(fv->a + (double)(i + 1) * fv->h, user);
        double avg = (left + 4.0 * mid + right) / 6.0;
        if (!isfinite(avg) || left < 0.0 || mid < 0.0 || right < 0.0)
            return wgf_error_set(err, WGF_EINVAL,
                                 "finite volumes: initial density at x = %g is negative or not finite",
                                 fv->x[i]);
        avgs[i] = avg;
        mass += fv->h * avg;
        left = right;
    }
    if (!(mass > 0.0) || !isfinite(mass))
        return wgf_error_set(err, WGF_EINVAL, "finite volumes: initial density has mass %g", mass);
    for (size_t i = 0; i < n; i++)
        fv->rho[i] = avgs[i] / mass;
    fv->t = 0.0;
    update_cdf(fv);
    return WGF_OK;
}

/* Equal steps of at most dt covering [0, t] (the 1e-9 keeps t/dt =
 * 100.0000000001 from costing an extra step). */
static double step_count(double t, double dt)
{
    double steps = ceil(t / dt - 1e-9);
    return steps < 1.0 ? 1.0 : steps;
}

/* LU of the tridiagonal M = I - tau L without pivoting. With
 * lower_i = -r p_{i-1}, upper_i = -r q_i, diag_i = 1 + r (p_i + q_{i-1}),
 * r = tau/h, M is column diagonally dominant, every pivot is >= 1 and every
 * multiplier is in [-1, 0]: the elimination is stable and the solve adds
 * only nonnegative terms, so rho stays nonnegative to the last bit. */
static void factor(wgf_fv1d *fv, double tau)
{
    size_t n = fv->n;
    double r = tau / fv->h;
    fv->cp[0] = 1.0 + r * fv->p[0];
    fv->mult[0] = 0.0;
    for (size_t i = 1; i < n; i++) {
        double diag = 1.0 + r * (fv->p[i] + fv->q[i - 1]);
        double lower = -r * fv->p[i - 1], upper_prev = -r * fv->q[i - 1];
        fv->mult[i] = lower / fv->cp[i - 1];
        fv->cp[i] = diag - fv->mult[i] * upper_prev;
    }
}

static void solve(wgf_fv1d *fv, double tau)
{
    size_t n = fv->n;
    double r = tau / fv->h, *y = fv->rho;
    for (size_t i = 1; i < n; i++)
        y[i] -= fv->mult[i] * y[i - 1];
    y[n - 1] /= fv->cp[n - 1];
    for (size_t i = n - 1; i-- > 0;)
        y[i] = (y[i] + r * fv->q[i] * y[i + 1]) / fv->cp[i];
}

int wgf_fv1d_advance(wgf_fv1d *fv, double t, double dt, wgf_error *err)
{
    if (!isfinite(t) || t < fv->t)
        return wgf_error_set(err, WGF_EINVAL, "finite volumes: cannot advance from t = %g to t = %g",
                             fv->t, t);
    if (!isfinite(dt) || !(dt > 0.0))
        return wgf_error_set(err, WGF_EINVAL, "finite volumes: time step %g must be positive", dt);
    if (t == fv->t)
        return WGF_OK;
    double steps = step_count(t - fv->t, dt);
    if (steps > 1e15)
        return wgf_error_set(err, WGF_EINVAL, "finite volumes: %g steps of %g is too many", steps, dt);
    double tau = (t - fv->t) / steps;
    factor(fv, tau);
    for (unsigned long long k = 0; k < (unsigned long long)steps; k++)
        solve(fv, tau);
    for (size_t i = 0; i < fv->n; i++)
        if (!isfinite(fv->rho[i]))
            return wgf_error_set(err, WGF_ENUMERIC, "finite volumes: density not finite at t = %g", t);
    fv->t = t;
    update_cdf(fv);
    return WGF_OK;
}

double wgf_fv1d_time(const wgf_fv1d *fv)
{
    return fv->t;
}

size_t wgf_fv1d_cells(const wgf_fv1d *fv)
{
    return fv->n;
}

const double *wgf_fv1d_centres(const wgf_fv1d *fv)
{
    return fv->x;
}

const double *wgf_fv1d_density(const wgf_fv1d *fv)
{
    return fv->rho;
}

double wgf_fv1d_mass(const wgf_fv1d *fv)
{
    double s = 0.0;
    for (size_t i = 0; i < fv->n; i++)
        s += fv->rho[i];
    return fv->h * s;
}

/* Mean of the piecewise-constant density (exact for it). */
double wgf_fv1d_mean(const wgf_fv1d *fv)
{
    double s = 0.0, m = 0.0;
    for (size_t i = 0; i < fv->n; i++) {
        s += fv->x[i] * fv->rho[i];
        m += fv->rho[i];
    }
    return s / m;
}

/* The CDF of the piecewise-constant density is piecewise linear between
 * the faces; its inverse is piecewise linear between the knots
 * U_i = cdf_i / cdf_n (U_n = 1 exactly). */
double wgf_fv1d_quantile(const wgf_fv1d *fv, double u)
{
    if (isnan(u))
        return NAN;
    if (u <= 0.0)
        return fv->a;
    if (u >= 1.0)
        return fv->b;
    double target = u * fv->cdf[fv->n];
    size_t lo = 0, hi = fv->n; /* cdf[lo] <= target < cdf[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (fv->cdf[mid] <= target)
            lo = mid;
        else
            hi = mid;
    }
    double cell = fv->cdf[lo + 1] - fv->cdf[lo];
    double frac = cell > 0.0 ? (target - fv->cdf[lo]) / cell : 0.0;
    return fv->a + ((double)lo + frac) * fv->h;
}

/* W2^2 = int_0^1 (F^-1(u) - Q_n(u))^2 du, Q_n the empirical quantile (the
 * j-th smallest sample on ((j-1)/n, j/n]). Both are piecewise linear on the
 * merged partition of [0, 1], where the integral of a squared linear
 * function is exact: (u1-u0) (e0^2 + e0 e1 + e1^2) / 3. */
double wgf_fv1d_w2_samples(const wgf_fv1d *fv, size_t n, const double *xs)
{
    if (n == 0)
        return NAN;
    double *s = malloc(n * sizeof *s);
    if (!s)
        return NAN;
    memcpy(s, xs, n * sizeof *s);
    if (wgf_sort_doubles(n, s) != WGF_OK) {
        free(s);
        return NAN;
    }
    const double total = fv->cdf[fv->n];
    size_t i = 0, j = 0;
    double u = 0.0, acc = 0.0;
    while (i < fv->n && j < n) {
        double ui0 = fv->cdf[i] / total, ui1 = i + 1 == fv->n ? 1.0 : fv->cdf[i + 1] / total;
        double uj1 = j + 1 == n ? 1.0 : (double)(j + 1) / (double)n;
        double next = ui1 < uj1 ? ui1 : uj1;
        if (next > u && ui1 > ui0) {
            double face = fv->a + (double)i * fv->h, slope = fv->h / (ui1 - ui0);
            double e0 = face + (u - ui0) * slope - s[j];
            double e1 = face + (next - ui0) * slope - s[j];
            acc += (next - u) * (e0 * e0 + e0 * e1 + e1 * e1) / 3.0;
        }
        if (next > u)
            u = next;
        if (ui1 <= next)
            i++;
        if (uj1 <= next)
            j++;
    }
    free(s);
    return sqrt(acc);
}

/* ---------------------------------------------------------------- particles */

static int all_finite(size_t k, const double *a)
{
    for (size_t i = 0; i < k; i++)
        if (!isfinite(a[i]))
            return 0;
    return 1;
}

int wgf_particles_fpe(size_t n, size_t d, double *x, wgf_gradfn gradV, void *user, double D, double t,
                      double dt, gsl_rng *rng, wgf_error *err)
{
    if (!isfinite(t) || t < 0.0 || !isfinite(dt) || !(dt > 0.0) || !isfinite(D) || D < 0.0)
        return wgf_error_set(err, WGF_EINVAL,
                             "Euler-Maruyama: t = %g, dt = %g, D = %g (need t >= 0, dt > 0, D >= 0)", t,
                             dt, D);
    if (t == 0.0 || n == 0 || d == 0)
        return WGF_OK;
    double *g = malloc(d * sizeof *g);
    if (!g)
        return wgf_error_set(err, WGF_ENOMEM, "Euler-Maruyama: out of memory (d = %zu)", d);
    double steps = step_count(t, dt), h = t / steps, sig = sqrt(2.0 * D * h);
    if (steps > 1e15) {
        free(g);
        return wgf_error_set(err, WGF_EINVAL, "Euler-Maruyama: %g steps is too many", steps);
    }
    int rc = WGF_OK;
    for (unsigned long long k = 0; k < (unsigned long long)steps; k++) {
        /* One stream, drawn in particle order: reproducible from the rng state. */
        for (size_t i = 0; i < n; i++) {
            double *xi = x + i * d;
            gradV(d, xi, g, user);
            for (size_t j = 0; j < d; j++)
                xi[j] += -h * g[j] + sig * gsl_ran_gaussian_ziggurat(rng, 1.0);
        }
        if (!all_finite(n * d, x)) {
            rc = wgf_error_set(err, WGF_ENUMERIC,
                               "Euler-Maruyama: particles not finite after step %llu of %.0f "
                               "(time step too large for the potential?)",
                               k + 1, steps);
            break;
        }
    }
    free(g);
    return rc;
}

/* f_n = -(1/(N-1)) sum_k grad W(x_n - x_k), grad W(y) = (|y|^2 - 1) y
 * (MATH.md 2). Each particle's sum runs over k in a fixed order, so the
 * result does not depend on the number of threads. */
static void aggregation_rhs(size_t n, size_t d, const double *x, double *f)
{
    const double c = -1.0 / (double)(n - 1);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= 64)
#endif
    for (size_t i = 0; i < n; i++) {
        double *fi = f + i * d;
        const double *xi = x + i * d;
        for (size_t j = 0; j < d; j++)
            fi[j] = 0.0;
        for (size_t k = 0; k < n; k++) {
            if (k == i)
                continue;
            const double *xk = x + k * d;
            double r2 = 0.0;
            for (size_t j = 0; j < d; j++)
                r2 += (xi[j] - xk[j]) * (xi[j] - xk[j]);
            double w = r2 - 1.0;
            for (size_t j = 0; j < d; j++)
                fi[j] += w * (xi[j] - xk[j]);
        }
        for (size_t j = 0; j < d; j++)
            fi[j] *= c;
    }
}

int wgf_particles_aggregation(size_t n, size_t d, double *x, double t, double dt, wgf_error *err)
{
    if (!isfinite(t) || t < 0.0 || !isfinite(dt) || !(dt > 0.0))
        return wgf_error_set(err, WGF_EINVAL, "aggregation particles: t = %g, dt = %g (need t >= 0, dt > 0)",
                             t, dt);
    if (t == 0.0 || n < 2 || d == 0)
        return WGF_OK;
    size_t nd = n * d;
    double *buf = malloc(5 * nd * sizeof *buf);
    if (!buf)
        return wgf_error_set(err, WGF_ENOMEM, "aggregation particles: out of memory (N = %zu)", n);
    double *k1 = buf, *k2 = buf + nd, *k3 = buf + 2 * nd, *k4 = buf + 3 * nd, *y = buf + 4 * nd;
    double steps = step_count(t, dt), h = t / steps;
    if (steps > 1e15) {
        free(buf);
        return wgf_error_set(err, WGF_EINVAL, "aggregation particles: %g steps is too many", steps);
    }
    int rc = WGF_OK;
    for (unsigned long long s = 0; s < (unsigned long long)steps; s++) {
        aggregation_rhs(n, d, x, k1);
        for (size_t i = 0; i < nd; i++)
            y[i] = x[i] + 0.5 * h * k1[i];
        aggregation_rhs(n, d, y, k2);
        for (size_t i = 0; i < nd; i++)
            y[i] = x[i] + 0.5 * h * k2[i];
        aggregation_rhs(n, d, y, k3);
        for (size_t i = 0; i < nd; i++)
            y[i] = x[i] + h * k3[i];
        aggregation_rhs(n, d, y, k4);
        for (size_t i = 0; i < nd; i++)
            x[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        if (!all_finite(nd, x)) {
            rc = wgf_error_set(err, WGF_ENUMERIC,
                               "aggregation particles: not finite after step %llu of %.0f "
                               "(time step too large?)",
                               s + 1, steps);
            break;
        }
    }
    free(buf);
    return rc;
}
