/* fdiv.c: an f-divergence D(rho || nu) to a target nu known by samples
 * y_1..y_M, in its variational form with a critic h(x) = w . phi(x) linear
 * in features (doc/math.md 2.1):
 *
 *     KL   = sup_h E_rho h - E_nu e^(h-1)            (divergence = kl),
 *     KL   = sup_h E_rho h - log E_nu e^h            (dv, Donsker-Varadhan),
 *     chi2 = sup_h E_rho h - E_nu (h + h^2/4)        (chi2),
 *     JS   = sup_h E_rho h + E_nu log(2 - e^h)       (js, h < log 2; twice the
 *            Jensen-Shannon divergence with 1/2 weights, as in f-GAN),
 *
 * phi: a constant and D seeded random Fourier features
 * sqrt(2/D) cos(omega_j . x + b_j), omega_j ~ N(0, I/s^2), b_j ~ U[0, 2 pi)
 * (several bandwidths: feature j has s_(j mod B), a multi-scale set),
 * or the quadratic monomials (1, x_i, x_i x_k), in which the optimal KL
 * critic 1 + log(rho/nu) of two Gaussians lies exactly. On a batch, with a
 * ridge sum_j lambda_j w_j^2/2 that keeps the inner problem strictly concave
 * (lambda_j = lambda + mu |omega_j|^2 for a Fourier feature: over a wide
 * region mu/2 sum_j |omega_j|^2 w_j^2 is about mu E |grad h|^2 / amp^2, an
 * H^1 penalty that leaves fine features to where the samples call for them),
 *
 *     J(w; x) = 1/N sum_n w.phi(x_n) - Psi(h(y_1), .., h(y_M)) - 1/2 sum_j lambda_j w_j^2,
 *     Fhat = J(w*; x) = max_w J(w; x)    (Newton's method, warm-started),
 *
 * (Psi in objective()) and by the envelope theorem (dJ/dw = 0 at w*)
 * a_n = grad h*(x_n) / N, c_n = 0, g_n = grad h*(x_n). The reverse pass of
 * g differentiates w*(x) as well: with Hn = -d^2 J/dw^2 (hessian()) and
 * v_j = sum_n grad phi_j(x_n) . gbar_n,
 *
 *     xbar_k += Hess h*(x_k) gbar_k + 1/N sum_j u_j grad phi_j(x_k),   u = Hn^-1 v.
 *
 * Every evaluation fits w* to a relative gradient norm of `tol`, so Fhat, a
 * and g are functions of the batch up to that tolerance whatever the warm
 * start. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <wgf/parallel.h>
#include <wgf/plugin.h>
#include <wgf/rng.h>
#include <wgf/samples.h>

/* the O(M P^2) sum of Hn in hessian() is dispatched at run time (WGF_DISPATCH) */
#include "../dispatch.h"

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

#define FDIV_FAMILY 0xfd17ul

enum { F_FOURIER, F_QUADRATIC };
enum { D_KL, D_DV, D_CHI2, D_JS };

typedef struct fdiv {
    size_t d, M, P; /* P features, the constant first */
    int type;
    double weight, ridge, tol;
    double *lam; /* P: lambda_j, the ridge of feature j */
    long maxit;
    wgf_target *target, *owned; /* owned: built from the section's keys (no [target]) */
    const double *y;
    double *omega, *phase, amp; /* fourier: D x d, D */
    double *phiy;               /* M x P */
    double *w;                  /* the critic, warm start */
    /* work */
    int div;
    double *q, *r, *grad, *H, *step;
} fdiv;

static const wgf_param fdiv_params[] = {
    {.key = "divergence", .type = WGF_PARAM_CHOICE, .def = "kl", .choices = "kl|dv|chi2|js",
     .doc = "kl: sup E h - E_nu e^(h-1); dv: Donsker-Varadhan sup E h - log E_nu e^h; chi2: f*(h) = h + h^2/4; "
            "js: f*(h) = -log(2 - e^h)"},
    {.key = "features", .type = WGF_PARAM_CHOICE, .def = "fourier", .choices = "fourier|quadratic",
     .doc = "the critic's features: random Fourier features, or monomials of degree <= 2"},
    {.key = "count", .type = WGF_PARAM_INT, .def = "64", .flags = WGF_P_MIN | WGF_P_MAX, .min = 1,
     .max = 4096, .doc = "fourier: the number D of features (a constant is added)"},
    {.key = "bandwidth", .type = WGF_PARAM_LIST, .def = "1", .flags = WGF_P_MIN | WGF_P_MIN_OPEN,
     .min = 0.0, .doc = "fourier: s, frequencies omega ~ N(0, I/s^2); several (B): feature j has "
                        "the (j mod B)-th, a multi-scale set"},
    {.key = "feature_seed", .type = WGF_PARAM_INT, .def = "1", .flags = WGF_P_MIN, .min = 0,
     .doc = "fourier: seed of the frequencies and phases"},
    {.key = "ridge", .type = WGF_PARAM_DOUBLE, .def = "1e-4", .flags = WGF_P_MIN | WGF_P_MIN_OPEN,
     .min = 0.0, .doc = "lambda of the critic's ridge term lambda |w|^2 / 2"},
    {.key = "ridge_frequency", .type = WGF_PARAM_DOUBLE, .def = "0", .flags = WGF_P_MIN, .min = 0.0,
     .doc = "fourier: mu, a ridge mu |omega_j|^2 w_j^2 / 2 more on feature j (penalises |grad h|: fine "
            "features only where the samples call for them)"},
    {.key = "tol", .type = WGF_PARAM_DOUBLE, .def = "1e-11", .flags = WGF_P_MIN | WGF_P_MIN_OPEN,
     .min = 0.0, .doc = "the critic's fit: stop when |grad_w J| <= tol times the size of its terms"},
    {.key = "max_newton", .type = WGF_PARAM_INT, .def = "100", .flags = WGF_P_MIN, .min = 1,
     .doc = "the critic's fit: Newton iterations at most"},
    {.key = "weight", .type = WGF_PARAM_DOUBLE, .def = "1", .flags = WGF_P_MIN, .min = 0.0,
     .doc = "factor on the whole energy (a term of a sum)"},
    WGF_TARGET_PARAMS,
    {0}};

/* ------------------------------------------------------------ features */

/* phi(x) (P) and, if G is not NULL, grad phi_j(x) as the rows of G (P x d). */
static void features(const fdiv *st, const double *x, double *phi, double *G)
{
    size_t d = st->d, P = st->P;
    phi[0] = 1.0;
    if (G)
        memset(G, 0, P * d * sizeof *G);
    if (st->type == F_FOURIER) {
        for (size_t j = 1; j < P; j++) {
            const double *om = st->omega + (j - 1) * d;
            double arg = st->phase[j - 1];
            for (size_t i = 0; i < d; i++)
                arg += om[i] * x[i];
            phi[j] = st->amp * cos(arg);
            if (G) {
                double s = -st->amp * sin(arg);
                for (size_t i = 0; i < d; i++)
                    G[j * d + i] = s * om[i];
            }
        }
        return;
    }
    size_t j = 1;
    for (size_t i = 0; i < d; i++, j++) {
        phi[j] = x[i];
        if (G)
            G[j * d + i] = 1.0;
    }
    for (size_t i = 0; i < d; i++)
        for (size_t k = i; k < d; k++, j++) {
            phi[j] = x[i] * x[k];
            if (G) {
                G[j * d + i] += x[k];
                G[j * d + k] += x[i];
            }
        }
}

/* out += sum_j c_j Hess phi_j(x) v (d). */
static void hess_v(const fdiv *st, const double *x, const double *c, const double *v, double *out)
{
    size_t d = st->d, P = st->P;
    if (st->type == F_FOURIER) {
        for (size_t j = 1; j < P; j++) {
            const double *om = st->omega + (j - 1) * d;
            double arg = st->phase[j - 1], ov = 0.0;
            for (size_t i = 0; i < d; i++) {
                arg += om[i] * x[i];
                ov += om[i] * v[i];
            }
            double s = -c[j] * st->amp * cos(arg) * ov;
            for (size_t i = 0; i < d; i++)
                out[i] += s * om[i];
        }
        return;
    }
    size_t j = 1 + d;
    for (size_t i = 0; i < d; i++)
        for (size_t k = i; k < d; k++, j++) {
            out[i] += c[j] * v[k];
            out[k] += c[j] * v[i];
        }
}

/* ------------------------------------------------------------ the fit */

/* J(w) = w . mx - Psi(h(y)) - lambda/2 |w|^2 from the batch's mean feature
 * mx (P), with q_m = dPsi/dh_m into st->q and the diagonal of the second
 * derivative into st->r (DV adds -p p^T, see hessian()):
 *   kl:   Psi = 1/M sum e^(h_m - 1),        q_m = r_m = e^(h_m - 1)/M;
 *   dv:   Psi = log(1/M sum e^(h_m)),       q_m = r_m = p_m = softmax(h)_m;
 *   chi2: Psi = 1/M sum (h_m + h_m^2/4),    q_m = (1 + h_m/2)/M, r_m = 1/(2M);
 *   js:   Psi = -1/M sum log(2 - e^h_m),    q_m = e^h/(2 - e^h)/M, r_m = 2 e^h/(2 - e^h)^2/M
 *         (+inf for h_m >= log 2: the line search backs off). */
static double objective(fdiv *st, const double *w, const double *mx)
{
    size_t P = st->P, M = st->M;
    double lin = 0.0, ww = 0.0, psi = 0.0, dM = (double)M;
    for (size_t j = 0; j < P; j++) {
        lin += w[j] * mx[j];
        ww += st->lam[j] * w[j] * w[j];
    }
    double hmax = -INFINITY;
    for (size_t m = 0; m < M; m++) {
        double h = 0.0;
        for (size_t j = 0; j < P; j++)
            h += w[j] * st->phiy[m * P + j];
        st->q[m] = h;
        hmax = fmax(hmax, h);
    }
    switch (st->div) {
    case D_KL:
        for (size_t m = 0; m < M; m++) {
            st->q[m] = st->r[m] = exp(st->q[m] - 1.0) / dM;
            psi += st->q[m];
        }
        break;
    case D_DV: {
        double se = 0.0;
        for (size_t m = 0; m < M; m++) {
            st->q[m] = exp(st->q[m] - hmax);
            se += st->q[m];
        }
        for (size_t m = 0; m < M; m++)
            st->q[m] = st->r[m] = st->q[m] / se;
        psi = hmax + log(se / dM);
        break;
    }
    case D_JS:
        for (size_t m = 0; m < M; m++) {
            double e = exp(st->q[m]), g = 2.0 - e;
            if (!(g > 0.0))
                return -INFINITY;
            psi -= log(g) / dM;
            st->q[m] = e / g / dM;
            st->r[m] = 2.0 * e / (g * g) / dM;
        }
        break;
    default:
        for (size_t m = 0; m < M; m++) {
            double h = st->q[m];
            psi += (h + 0.25 * h * h) / dM;
            st->q[m] = (1.0 + 0.5 * h) / dM;
            st->r[m] = 0.5 / dM;
        }
    }
    return lin - psi - 0.5 * ww;
}

/* Target samples per pass over the rows of Hn in hessian(): their features
 * (HESS_BLOCK P doubles) stay in the first-level cache while a row of Hn
 * takes their terms. */
#define HESS_BLOCK 16

/* The lower triangle of sum_m r_m phi(y_m) phi(y_m)^T into H (P x P). Every
 * entry adds its terms in the order of m; the target samples go HESS_BLOCK
 * at a time through the rows, so that an entry is read and written once per
 * block rather than once per sample (the same sums, to the bit). */
WGF_DISPATCH
static void hessian_terms(size_t P, size_t M, const double *restrict phiy, const double *restrict r,
                          double *restrict H)
{
    memset(H, 0, P * P * sizeof *H);
    for (size_t m0 = 0; m0 < M; m0 += HESS_BLOCK) {
        size_t m1 = M - m0 < HESS_BLOCK ? M : m0 + HESS_BLOCK;
        size_t nb = m1 - m0;
        const double *restrict py = phiy + m0 * P;
        for (size_t a = 0; a < P; a++) {
            double *restrict Ha = H + a * P, c[HESS_BLOCK];
            for (size_t k = 0; k < nb; k++)
                c[k] = r[m0 + k] * py[k * P + a];
            /* eight entries of the row at a time, held in registers over the block */
            size_t b0 = 0;
            for (; b0 + 8 <= a + 1; b0 += 8) {
                double h[8];
                WGF_OMP(omp simd)
                for (size_t j = 0; j < 8; j++)
                    h[j] = Ha[b0 + j];
                for (size_t k = 0; k < nb; k++) {
                    const double *restrict pk = py + k * P + b0;
                    double ck = c[k];
                    WGF_OMP(omp simd)
                    for (size_t j = 0; j < 8; j++)
                        h[j] += ck * pk[j];
                }
                WGF_OMP(omp simd)
                for (size_t j = 0; j < 8; j++)
                    Ha[b0 + j] = h[j];
            }
            for (size_t k = 0; k < nb; k++)
                for (size_t b = b0; b <= a; b++)
                    Ha[b] += c[k] * py[k * P + b];
        }
    }
}

/* Hn = sum r_m phi phi^T (- s s^T, s = sum p_m phi, for dv) + lambda I from
 * st->q, st->r, into st->H; Cholesky. */
static int hessian(fdiv *st, wgf_error *err)
{
    size_t P = st->P, M = st->M;
    hessian_terms(P, M, st->phiy, st->r, st->H);
    if (st->div == D_DV) {
        double *sv = st->step; /* free until the Newton step is formed */
        memset(sv, 0, P * sizeof *sv);
        for (size_t m = 0; m < M; m++)
            for (size_t j = 0; j < P; j++)
                sv[j] += st->q[m] * st->phiy[m * P + j];
        for (size_t a = 0; a < P; a++)
            for (size_t b = 0; b <= a; b++)
                st->H[a * P + b] -= sv[a] * sv[b];
    }
    for (size_t a = 0; a < P; a++) {
        st->H[a * P + a] += st->lam[a];
        for (size_t b = 0; b < a; b++)
            st->H[b * P + a] = st->H[a * P + b];
    }
    gsl_matrix_view Hv = gsl_matrix_view_array(st->H, P, P);
    int s = gsl_linalg_cholesky_decomp1(&Hv.matrix);
    if (s)
        return wgf_error_gsl(err, s, "fdiv: the critic's Hessian");
    return WGF_OK;
}

/* x = Hn^-1 b in place, after hessian(). */
static void hsolve(fdiv *st, double *b)
{
    gsl_matrix_view Hv = gsl_matrix_view_array(st->H, st->P, st->P);
    gsl_vector_view bv = gsl_vector_view_array(b, st->P);
    gsl_linalg_cholesky_svx(&Hv.matrix, &bv.vector);
}

/* Maximise J by damped Newton from st->w; *J gets the maximum. Leaves the
 * factorised Hn at w* in st->H.
 *
 * Converged: |grad_w J| <= tol * s, s the size of the terms that cancel in
 * the gradient (max_j |mean phi_j(x)| + mean e_m |phi_j(y_m)| + lambda |w_j|),
 * so that the test does not ask for less than rounding when e^(h-1) is
 * large. Where rounding stops progress first (a Newton step no longer
 * halves |grad|, or no step is accepted) while |grad| <= sqrt(tol) s, the
 * fit is as good as the arithmetic allows. */
static int fit(fdiv *st, const double *mx, double *J, wgf_error *err)
{
    size_t P = st->P, M = st->M;
    double Jw = objective(st, st->w, mx), prev = INFINITY;
    for (long it = 0;; it++) {
        /* grad = mx - 1/M sum e_m phi(y_m) - lambda w, and the scale s */
        double gn = 0.0, scale = 0.0;
        for (size_t j = 0; j < P; j++) {
            st->grad[j] = mx[j] - st->lam[j] * st->w[j];
            st->step[j] = fabs(mx[j]) + st->lam[j] * fabs(st->w[j]);
        }
        for (size_t m = 0; m < M; m++)
            for (size_t j = 0; j < P; j++) {
                double t = st->q[m] * st->phiy[m * P + j];
                st->grad[j] -= t;
                st->step[j] += fabs(t);
            }
        for (size_t j = 0; j < P; j++) {
            gn = fmax(gn, fabs(st->grad[j]));
            scale = fmax(scale, st->step[j]);
        }
        int rc = hessian(st, err); /* overwrites st->step */
        if (rc != WGF_OK)
            return rc;
        if (gn <= st->tol * scale || (gn > 0.5 * prev && gn <= sqrt(st->tol) * scale)) {
            *J = Jw;
            return WGF_OK;
        }
        prev = gn;
        if (it >= st->maxit)
            return wgf_error_set(err, WGF_ENUMERIC,
                                 "fdiv: the critic's fit did not converge in %ld Newton iterations "
                                 "(|grad| = %g > tol * %g = %g; raise max_newton or ridge)",
                                 st->maxit, gn, scale, st->tol * scale);
        memcpy(st->step, st->grad, P * sizeof *st->step);
        hsolve(st, st->step);
        /* backtrack until J rises (the exponential can overshoot far away) */
        double t = 1.0, Jt = -INFINITY, dec = 0.0;
        for (size_t j = 0; j < P; j++)
            dec += st->grad[j] * st->step[j];
        double *wt = st->grad; /* grad is rebuilt next iteration */
        int rose = 0;
        for (int ls = 0; ls < 60 && !rose; ls++, t *= 0.5) {
            for (size_t j = 0; j < P; j++)
                wt[j] = st->w[j] + t * st->step[j];
            Jt = objective(st, wt, mx);
            /* Armijo, with a rounding-level slack: near w* a step that
             * leaves J unchanged still moves w toward the optimum */
            rose = isfinite(Jt) && Jt >= Jw + 1e-4 * t * dec - 1e-14 * fabs(Jw);
        }
        if (!rose) {
            Jw = objective(st, st->w, mx); /* st->q, st->r back at w */
            if (gn <= sqrt(st->tol) * scale) {
                *J = Jw;
                return hessian(st, err);
            }
            return wgf_error_set(err, WGF_ENUMERIC,
                                 "fdiv: the critic's fit stopped at |grad| = %g (no Newton step raises "
                                 "the objective; raise ridge)",
                                 gn);
        }
        memcpy(st->w, wt, P * sizeof *st->w);
        Jw = Jt; /* st->q, st->r are at the accepted trial */
    }
}

/* ------------------------------------------------------------ create */

static void fdiv_destroy(void *state)
{
    fdiv *st = state;
    if (!st)
        return;
    wgf_target_free(st->owned);
    free(st->omega);
    free(st->phase);
    free(st->phiy);
    free(st->w);
    free(st->lam);
    free(st->q);
    free(st->r);
    free(st->grad);
    free(st->H);
    free(st->step);
    free(st);
}

static int fdiv_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    *state = NULL;
    fdiv *st = calloc(1, sizeof *st);
    if (!st)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    size_t d = st->d = info ? info->dim : wgf_section_dim(sec);
    st->weight = wgf_section_double(sec, "weight");
    st->ridge = wgf_section_double(sec, "ridge");
    st->tol = wgf_section_double(sec, "tol");
    st->maxit = wgf_section_int(sec, "max_newton");
    st->type = strcmp(wgf_section_string(sec, "features"), "quadratic") == 0 ? F_QUADRATIC : F_FOURIER;
    const char *dv = wgf_section_string(sec, "divergence");
    st->div = strcmp(dv, "dv") == 0     ? D_DV
              : strcmp(dv, "chi2") == 0 ? D_CHI2
              : strcmp(dv, "js") == 0   ? D_JS
                                        : D_KL;
    size_t D = (size_t)wgf_section_int(sec, "count");
    st->P = st->type == F_FOURIER ? 1 + D : (d + 1) * (d + 2) / 2;
    int rc = wgf_target_open(&st->target, &st->owned, info ? info->target : NULL, sec, err);
    if (rc == WGF_OK)
        rc = wgf_target_set(st->target, WGF_TARGET_TRAIN, 0, &st->y, &st->M, err);
    size_t P = st->P, M = st->M;
    if (rc == WGF_OK) {
        st->phiy = malloc(M * P * sizeof *st->phiy);
        st->w = calloc(P, sizeof *st->w);
        st->lam = malloc(P * sizeof *st->lam);
        st->q = malloc(M * sizeof *st->q);
        st->r = malloc(M * sizeof *st->r);
        st->grad = malloc(P * sizeof *st->grad);
        st->H = malloc(P * P * sizeof *st->H);
        st->step = malloc(P * sizeof *st->step);
        if (st->type == F_FOURIER) {
            st->omega = malloc(D * d * sizeof *st->omega);
            st->phase = malloc(D * sizeof *st->phase);
        }
        if (!st->phiy || !st->w || !st->lam || !st->q || !st->r || !st->grad || !st->H || !st->step ||
            (st->type == F_FOURIER && (!st->omega || !st->phase)))
            rc = wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu features", P);
    }
    if (rc == WGF_OK && st->type == F_FOURIER) {
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        if (!r)
            rc = wgf_error_set(err, WGF_ENOMEM, "out of memory");
        else {
            size_t nb;
            const double *s = wgf_section_vector(sec, "bandwidth", &nb);
            wgf_rng_set(r, (unsigned long)wgf_section_int(sec, "feature_seed"), FDIV_FAMILY, 0, 0);
            for (size_t k = 0; k < D * d; k++)
                st->omega[k] = gsl_ran_gaussian_ziggurat(r, 1.0) / s[(k / d) % nb];
            for (size_t k = 0; k < D; k++)
                st->phase[k] = 2.0 * M_PI * gsl_rng_uniform(r);
            gsl_rng_free(r);
            st->amp = sqrt(2.0 / (double)D);
        }
    }
    if (rc != WGF_OK) {
        fdiv_destroy(st);
        return rc;
    }
    double mu = st->type == F_FOURIER ? wgf_section_double(sec, "ridge_frequency") : 0.0;
    for (size_t j = 0; j < P; j++) {
        double o2 = 0.0;
        for (size_t i = 0; j > 0 && mu > 0.0 && i < d; i++)
            o2 += st->omega[(j - 1) * d + i] * st->omega[(j - 1) * d + i];
        st->lam[j] = st->ridge + mu * o2;
    }
    for (size_t m = 0; m < M; m++)
        features(st, st->y + m * d, st->phiy + m * P, NULL);
    *state = st;
    return WGF_OK;
}

static unsigned fdiv_needs(void *state)
{
    (void)state;
    return 0u;
}

/* The fit on the batch b: mean feature, then Newton. */
static int fit_batch(fdiv *st, const wgf_batch *b, double *J, wgf_error *err)
{
    if (b->d != st->d)
        return wgf_error_set(err, WGF_EINVAL, "batch of dimension %zu, energy of dimension %zu", b->d,
                             st->d);
    if (b->n < 1)
        return wgf_error_set(err, WGF_EINVAL, "an empty batch");
    size_t P = st->P;
    double *mx = calloc(2 * P, sizeof *mx);
    if (!mx)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    double *phi = mx + P;
    for (size_t n = 0; n < b->n; n++) {
        features(st, b->x + n * st->d, phi, NULL);
        for (size_t j = 0; j < P; j++)
            mx[j] += phi[j] / (double)b->n;
    }
    int rc = fit(st, mx, J, err);
    free(mx);
    return rc;
}

/* g_n = grad h*(x_n) = sum_j w_j grad phi_j(x_n), times scale. */
static int critic_grad(const fdiv *st, const wgf_batch *b, double scale, double *g, wgf_error *err)
{
    size_t P = st->P, d = st->d;
    double *phi = malloc(P * (d + 1) * sizeof *phi);
    if (!phi)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    double *G = phi + P;
    for (size_t n = 0; n < b->n; n++) {
        features(st, b->x + n * d, phi, G);
        for (size_t i = 0; i < d; i++) {
            double s = 0.0;
            for (size_t j = 0; j < P; j++)
                s += st->w[j] * G[j * d + i];
            g[n * d + i] = scale * s;
        }
    }
    free(phi);
    return WGF_OK;
}

static int fdiv_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    fdiv *st = state;
    double J;
    int rc = fit_batch(st, b, &J, err);
    if (rc != WGF_OK)
        return rc;
    if (F)
        *F = st->weight * J;
    if (a && (rc = critic_grad(st, b, st->weight / (double)b->n, a, err)) != WGF_OK)
        return rc;
    if (c)
        memset(c, 0, b->n * sizeof *c);
    return WGF_OK;
}

static int fdiv_wgrad(void *state, const wgf_batch *b, double *g, wgf_error *err)
{
    fdiv *st = state;
    double J;
    int rc = fit_batch(st, b, &J, err);
    if (rc != WGF_OK)
        return rc;
    return critic_grad(st, b, st->weight, g, err);
}

static int fdiv_wgrad_vjp(void *state, const wgf_batch *b, const double *gbar, double *xbar, double *lbar,
                          double *sbar, wgf_error *err)
{
    (void)lbar;
    (void)sbar;
    fdiv *st = state;
    if (!xbar)
        return WGF_OK;
    double J;
    int rc = fit_batch(st, b, &J, err);
    if (rc != WGF_OK)
        return rc;
    size_t P = st->P, d = st->d, N = b->n;
    double *v = calloc(2 * P + P * d, sizeof *v);
    if (!v)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    double *phi = v + P, *G = phi + P;
    /* v_j = sum_n grad phi_j(x_n) . gbar_n; the direct term */
    for (size_t n = 0; n < N; n++) {
        const double *x = b->x + n * d, *gb = gbar + n * d;
        features(st, x, phi, G);
        for (size_t j = 0; j < P; j++)
            for (size_t i = 0; i < d; i++)
                v[j] += G[j * d + i] * gb[i];
        double *out = xbar + n * d, tmp[64], *h = d <= 64 ? tmp : NULL;
        if (!h) {
            h = calloc(d, sizeof *h);
            if (!h) {
                free(v);
                return wgf_error_set(err, WGF_ENOMEM, "out of memory");
            }
        } else
            memset(h, 0, d * sizeof *h);
        hess_v(st, x, st->w, gb, h);
        for (size_t i = 0; i < d; i++)
            out[i] += st->weight * h[i];
        if (h != tmp)
            free(h);
    }
    /* through w*(x): u = Hn^-1 v, xbar_k += 1/N sum_j u_j grad phi_j(x_k) */
    hsolve(st, v);
    for (size_t n = 0; n < N; n++) {
        features(st, b->x + n * d, phi, G);
        for (size_t i = 0; i < d; i++) {
            double s = 0.0;
            for (size_t j = 0; j < P; j++)
                s += v[j] * G[j * d + i];
            xbar[n * d + i] += st->weight * s / (double)N;
        }
    }
    free(v);
    return WGF_OK;
}

static const wgf_energy_vt fdiv_vt = {
    .create = fdiv_create,
    .destroy = fdiv_destroy,
    .needs = fdiv_needs,
    .eval = fdiv_eval,
    .wgrad = fdiv_wgrad,
    .wgrad_vjp = fdiv_wgrad_vjp,
};

static const wgf_plugin fdiv_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = "fdiv",
    .summary = "KL, Donsker-Varadhan KL, chi^2 or JS to a target known by samples: variational, critic fitted by Newton",
    .params = fdiv_params,
    .vtable = &fdiv_vt,
};

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &fdiv_plugin : NULL;
}
