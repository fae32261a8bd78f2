/* plugins/maps/planar.c: the planar flow of Rezende & Mohamed (MATH.md 3.2).
 *
 * T = f_L o ... o f_1, f_k(x) = x + u_k tanh(w_k . x + b_k), theta per layer
 * [u (d), w (d), b (1)], P = L (2d + 1). Layers are grouped into S = L / B
 * stages of B layers (GenWGP's path, MATH.md 5).
 *
 * With affine = true the layers act on y = A z + c instead of z: theta ends
 * with [A row-major (d x d), c (d)], P = L (2d + 1) + d^2 + d, A = I and
 * c = 0 at the start. A layer bends the samples along its own w only, and
 * near the identity (small w, b = 0) it can make neither a constant field
 * nor a general linear one; the affine part makes both exactly, so the
 * Gaussian part of a flow is carried by A and c and the layers only add
 * the rest (experiments/README.md, fpe_ou_random.ini). log|det A| and
 * A^{-1} come from one LU factorisation per forward call, kept on the tape.
 *
 * Invertibility (sigma_k = u_k . w_k >= -1) is enforced one of three ways:
 *   check    theta must satisfy sigma_k >= -1 + delta; check() refuses it
 *            otherwise;
 *   project  as check, and project() moves u_k along w_k onto
 *            sigma_k = -1 + delta where it is violated;
 *   reparam  the layer uses u_hat = u + (-1 + softplus(w.u) - w.u) w/|w|^2,
 *            whose sigma = -1 + softplus(w.u) > -1 for any raw u, w; every
 *            derivative is taken through u_hat with respect to the raw u, w.
 * Below, u means the effective vector (u_hat under reparam).
 *
 * With coordinatewise = true layer k is f_k = e_k o p_k: p_k the planar
 * layer above, then e_k(y)_i = y_i + a_i tanh(c_i y_i + beta_i), i = 1..d,
 * and theta per layer is [u, w, b, a (d), c (d), beta (d)] (5d + 1, a
 * layer's parameters contiguous so that a stage stays one range; the affine
 * part, if on, still at the end). A planar layer bends the law along its
 * own w only; e_k bends every coordinate, which a separable law with a
 * non-Gaussian marginal in each coordinate needs (experiments/README.md,
 * fpe_quartic_30d_006.ini). Each coordinate of e_k is a 1-D planar layer
 * (u = a_i, w = c_i, b = beta_i, sigma = a_i c_i), so every pass below runs
 * the planar formulas on it coordinate by coordinate; invertibility is
 * a_i c_i >= -1 + delta, kept by check or project as sigma is (reparam is
 * refused with it).
 *
 * The tape stores every layer's input with the samples innermost (x^(k) as
 * d rows of n), so that every inner loop runs over samples (ARCHITECTURE.md,
 * "The tape is the key to speed"): forward, score, jvp and path_vjp are all
 * O(L d) per sample without recomputing the flow. */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_permutation.h>
#include <gsl/gsl_randist.h>

#include <wgf/plugin.h>

#include "../dispatch.h"
#include "lufactor.h"

/* The passes over the tape (forward, score, jvp, a layer of the reverse
 * sweep) are dispatched at run time (WGF_DISPATCH, ../dispatch.h). */
#ifdef __GNUC__
#define PLANAR_INLINE static inline __attribute__((always_inline))
#else
#define PLANAR_INLINE static inline
#endif

enum { PLANAR_CHECK, PLANAR_PROJECT, PLANAR_REPARAM };

typedef struct planar {
    size_t d;     /* dimension */
    size_t L;     /* layers */
    size_t B;     /* layers per stage */
    size_t S;     /* stages, L / B */
    int mode;     /* PLANAR_* */
    int affine;   /* layers act on A z + c */
    int cwise;    /* coordinatewise part after every layer */
    size_t per;   /* parameters per layer: 2d + 1, or 5d + 1 with cwise */
    double delta; /* margin: sigma >= -1 + delta */
    double init_scale, init_bias;
} planar;

/* Per-layer quantities derived from theta (O(L d), recomputed by every
 * call from the theta it is given). */
typedef struct planar_layers {
    double *u;   /* L x d: effective u */
    double *sig; /* L: sigma = u . w */
    double *ops; /* L: 1 + sigma, computed without cancellation */
} planar_layers;

typedef struct planar_tape {
    size_t cap;      /* samples the tape holds */
    size_t n;        /* samples of the last forward */
    int ready;       /* forward ran */
    int have_score;  /* score ran after the last forward */
    double *X;       /* (L + 1) x d x cap: x^(k), k = 0..L */
    double *H;       /* L x cap: h(a_k) */
    double *HP;      /* L x cap: h'(a_k) */
    double *Q;       /* L x cap: q_k = 1/(1 + h'(a_k) sigma_k) */
    double *Sc;      /* (L + 1) x d x cap: s^(k), allocated by the first score() */
    /* coordinatewise = true only: per layer, y = p_k(x^(k-1)) and, per coordinate
     * with z_i = c_i y_i + beta_i, h(z_i), h'(z_i), q_i = 1/(1 + h'(z_i) a_i c_i) */
    double *Y;       /* L x d x cap */
    double *EH;      /* L x d x cap */
    double *EHP;     /* L x d x cap */
    double *EQ;      /* L x d x cap */
    double *Sy;      /* L x d x cap: the score at y, allocated with Sc */
    double *ld;      /* cap: running log-determinant */
    double *xb;      /* d x cap: reverse x cotangent, or forward dx */
    double *sb;      /* d x cap: reverse s cotangent */
    double *lb;      /* cap: reverse ld cotangent, or forward dld */
    double *tmp;     /* 6 x cap: per-sample scalars */
    double *acc;     /* 3 d + 2: per-layer sums of the reverse pass */
    planar_layers lay;
    double *dlay;    /* L x (d + 1): forward-mode du and dsigma */
    double *many;    /* vjp_many: (2 d + 1) x cap per set, for up to nmany sets */
    size_t nmany;
    double *gram;    /* gram_blocks: (d^2 + 3 d + 1) x cap + 3 (2 d + 1)^2, by its first call */
    /* affine = true only */
    double *Z;       /* d x cap: the inputs z */
    double *lu;      /* d x d: LU factors of A */
    double *ainv;    /* d x d: A^{-1} */
    double ldA;      /* log|det A| */
    gsl_permutation *perm;
} planar_tape;

#define PLANAR_LAYER(theta, m, k) ((theta) + (k) * (m)->per)
/* the coordinatewise part of layer k: a (d), c (d), beta (d) */
#define PLANAR_CW(theta, m, k) (PLANAR_LAYER(theta, m, k) + 2 * (m)->d + 1)
/* A (d x d, row-major), then c (d), after the layers */
#define PLANAR_AFFINE(theta, m) ((theta) + (m)->L * (m)->per)

/* ------------------------------------------------------------ scalar helpers */

/* log(1 + e^t) without overflow or cancellation. */
static double planar_softplus(double t)
{
    return t > 0.0 ? t + log1p(exp(-t)) : log1p(exp(t));
}

/* h = tanh(a) and h' = 1 - h^2 from em = expm1(-2|a|) = e^{-2|a|} - 1, in
 * (-1, 0]: h' = 4 e^{-2|a|} / (1 + e^{-2|a|})^2 keeps its relative accuracy
 * where 1 - h^2 would round to 0. The loops call expm1 in a loop of its own
 * and this in the next: with the libm call in it, no loop vectorises. */
static inline void planar_tanh(double a, double em, double *h, double *hp)
{
    double den = 2.0 + em; /* 1 + e^{-2|a|} */
    *h = copysign(-em / den, a);
    *hp = 4.0 * (1.0 + em) / (den * den);
}

/* g = 1 + h' sigma, the layer's Jacobian determinant (MATH.md 3.2). Where
 * |h' sigma| < 1/2 the direct form is accurate (and exactly 1 at sigma = 0,
 * so the identity layer has ld = 0 exactly); elsewhere the equal form
 * h^2 + h' (1 + sigma), a sum of non-negative terms on the admissible set,
 * avoids the cancellation of 1 + h' sigma as sigma -> -1 and a -> 0. */
static inline double planar_g(double h, double hp, double sig, double ops)
{
    double e = hp * sig;
    return fabs(e) < 0.5 ? 1.0 + e : h * h + hp * ops;
}

/* The log-determinant is gathered as a running product P of the layers'
 * factors |g| per sample, and its log added to ld where P leaves [2^-480,
 * 2^480] (then P = 1) and at every stage that is output: one log per sample
 * and stage, where a log1p per factor (d + 1 factors a layer with
 * coordinatewise = true) was most of a forward pass. The product rounds once
 * per factor, so ld's absolute error is that of the sum of logs, about
 * (number of factors) x 1e-16; an identity layer's factor is exactly 1
 * and adds exactly 0. A factor of 0 or NaN gives -inf or NaN, as its log did. */
#define PLANAR_PMIN 0x1p-480
#define PLANAR_PMAX 0x1p480

PLANAR_INLINE void planar_ld_fold(size_t n, double *restrict P, double *restrict ld)
{
    for (size_t s = 0; s < n; s++)
        if (!(P[s] >= PLANAR_PMIN && P[s] <= PLANAR_PMAX)) {
            ld[s] += log(P[s]);
            P[s] = 1.0;
        }
}

PLANAR_INLINE void planar_ld_flush(size_t n, double *restrict P, double *restrict ld)
{
    for (size_t s = 0; s < n; s++) {
        ld[s] += log(P[s]);
        P[s] = 1.0;
    }
}

static double planar_dot(size_t d, const double *a, const double *b)
{
    double s = 0.0;
    for (size_t i = 0; i < d; i++)
        s += a[i] * b[i];
    return s;
}

/* Loops over the samples of one tape row. The restrict qualifiers, and
 * "omp simd" where OpenMP is on (plugins are built with it), let the
 * compiler vectorise them at -O2 without run-time alias checks; reductions
 * keep eight partial sums (a fixed order, so results depend on nothing but
 * n) instead of one latency-bound chain. */
#ifdef _OPENMP
#define PLANAR_SIMD _Pragma("omp simd")
#else
#define PLANAR_SIMD
#endif

PLANAR_INLINE void planar_axpy(size_t n, double a, const double *restrict x, double *restrict y)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++)
        y[s] += a * x[s];
}

/* y = a x */
PLANAR_INLINE void planar_ax(size_t n, double a, const double *restrict x, double *restrict y)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++)
        y[s] = a * x[s];
}

/* y = x + a h */
PLANAR_INLINE void planar_xpah(size_t n, const double *restrict x, double a, const double *restrict h,
                               double *restrict y)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++)
        y[s] = x[s] + a * h[s];
}

PLANAR_INLINE double planar_sumprod(size_t n, const double *restrict a, const double *restrict b)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0.0;
    size_t s = 0;
    for (; s + 8 <= n; s += 8)
        for (size_t j = 0; j < 8; j++)
            acc[j] += a[s + j] * b[s + j];
    for (; s < n; s++)
        tail += a[s] * b[s];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

PLANAR_INLINE double planar_sum(size_t n, const double *restrict a)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0.0;
    size_t s = 0;
    for (; s + 8 <= n; s += 8)
        for (size_t j = 0; j < 8; j++)
            acc[j] += a[s + j];
    for (; s < n; s++)
        tail += a[s];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

/* ------------------------------------------------------------ parameters */

/* Effective u, sigma and 1 + sigma of every layer. Under reparam,
 * u_hat = u + c(t) w/|w|^2 with t = w.u and c(t) = softplus(-t) - 1
 * (= -1 + softplus(t) - t), so sigma = -1 + softplus(t) and 1 + sigma =
 * softplus(t) exactly. Fails (with the layer) only under reparam at w = 0. */
static int planar_effective(const planar *m, const double *theta, planar_layers *lay, wgf_error *err)
{
    size_t d = m->d;
    for (size_t k = 0; k < m->L; k++) {
        const double *u = PLANAR_LAYER(theta, m, k), *w = u + d;
        double *uk = lay->u + k * d;
        if (m->mode != PLANAR_REPARAM) {
            memcpy(uk, u, d * sizeof *uk);
            lay->sig[k] = planar_dot(d, u, w);
            lay->ops[k] = 1.0 + lay->sig[k];
            continue;
        }
        double ww = planar_dot(d, w, w), t = planar_dot(d, w, u);
        if (!(ww > 0.0))
            return wgf_error_set(err, WGF_ENUMERIC,
                                 "planar layer %zu: |w|^2 = %g: the reparametrisation of u "
                                 "divides by |w|^2 (start from a nonzero w)",
                                 k + 1, ww);
        double c = planar_softplus(-t) - 1.0;
        for (size_t i = 0; i < d; i++)
            uk[i] = u[i] + c * w[i] / ww;
        lay->ops[k] = planar_softplus(t);
        lay->sig[k] = lay->ops[k] - 1.0;
    }
    return WGF_OK;
}

/* Forward mode of u_hat(u, w) for one layer (reparam):
 *   du_hat = du + c'(t) dt w/|w|^2 + c (dw/|w|^2 - 2 w (w.dw)/|w|^4),
 *   dt = w.du + u.dw, c'(t) = -1/(1 + e^t). */
static void planar_reparam_jvp(size_t d, const double *u, const double *w, const double *du,
                               const double *dw, double *duh)
{
    double ww = planar_dot(d, w, w), t = planar_dot(d, w, u);
    double c = planar_softplus(-t) - 1.0, cp = -1.0 / (1.0 + exp(t));
    double dt = planar_dot(d, w, du) + planar_dot(d, u, dw);
    double wdw = planar_dot(d, w, dw);
    for (size_t i = 0; i < d; i++)
        duh[i] = du[i] + cp * dt * w[i] / ww + c * (dw[i] / ww - 2.0 * w[i] * wdw / (ww * ww));
}

/* Its transpose: cotangents (uhbar, wbar) on (u_hat, w) into (ubar, wbar) on
 * the raw u, w, accumulating into ubar and wbar. */
static void planar_reparam_vjp(size_t d, const double *u, const double *w, const double *uhbar,
                               double *ubar, double *wbar)
{
    double ww = planar_dot(d, w, w), t = planar_dot(d, w, u);
    double c = planar_softplus(-t) - 1.0, cp = -1.0 / (1.0 + exp(t));
    double bw = planar_dot(d, uhbar, w);
    double alpha = cp * bw / ww;
    for (size_t i = 0; i < d; i++) {
        ubar[i] += uhbar[i] + alpha * w[i];
        wbar[i] += alpha * u[i] + c * uhbar[i] / ww - 2.0 * c * bw * w[i] / (ww * ww);
    }
}

/* ------------------------------------------------------------ create */

static const wgf_param planar_params[] = {
    {"layers", WGF_PARAM_INT, "20", WGF_P_MIN, 1, 0, NULL, "number of planar layers L"},
    {"block", WGF_PARAM_INT, NULL, WGF_P_MIN, 1, 0, NULL,
     "layers per stage B (default: layers, one stage); layers must be a multiple of block"},
    {"invertibility", WGF_PARAM_CHOICE, "project", 0, 0, 0, "check|project|reparam",
     "how u.w >= -1 is kept: check it, project onto u.w >= -1 + delta, or reparametrise u"},
    {"delta", WGF_PARAM_DOUBLE, "0.01", WGF_P_MIN | WGF_P_MAX | WGF_P_MAX_OPEN, 0, 1, NULL,
     "invertibility margin for check and project: u.w >= -1 + delta"},
    {"init_scale", WGF_PARAM_DOUBLE, "0.1", WGF_P_MIN, 0, 0, NULL,
     "initial w ~ N(0, init_scale^2 / d); u = 0 keeps the map the identity"},
    {"init_bias", WGF_PARAM_DOUBLE, "0", WGF_P_MIN, 0, 0, NULL,
     "initial b ~ N(0, init_bias^2): a nonzero bias lets the first steps translate"},
    {"affine", WGF_PARAM_BOOL, "false", 0, 0, 0, NULL,
     "layers act on A z + c (d^2 + d more parameters, A = I, c = 0 at the start): the "
     "Gaussian part of the flow exactly, the layers the rest"},
    {"coordinatewise", WGF_PARAM_BOOL, "false", 0, 0, 0, NULL,
     "every layer then bends each coordinate, y_i + a_i tanh(c_i y_i + beta_i) (3d more "
     "parameters per layer, a = 0 and c ~ N(0, init_scale^2) at the start, a_i c_i >= -1 + delta; "
     "not with reparam): a separable law's marginals with few layers"},
    {0},
};

static int planar_create(const wgf_section *sec, const wgf_problem_info *info, void **state,
                         wgf_error *err)
{
    if (!info || info->dim == 0)
        return wgf_error_set(err, WGF_EINVAL, "planar: the dimension must be at least 1");
    long layers = wgf_section_int(sec, "layers");
    long block = wgf_section_has(sec, "block") ? wgf_section_int(sec, "block") : layers;
    if (layers < 1)
        return wgf_section_error(sec, "layers", err, "%ld layers (at least 1)", layers);
    if (block < 1 || layers % block != 0)
        return wgf_section_error(sec, "block", err,
                                 "%ld layers do not split into stages of %ld (layers must be a "
                                 "multiple of block)",
                                 layers, block);
    /* L (2d + 1) parameters, and tapes that keep every layer's N x d
     * outputs and three N-vectors: sizes from the file, checked before any
     * allocation (products without wrapping, then against memory) */
    /* (the training batch and the output batch are both on tapes during a run) */
    /* (coordinatewise = true: five more L x d rows per sample, y, h, h', q and the score at y) */
    int cwise = wgf_section_bool(sec, "coordinatewise");
    size_t nparams, per_sample, cw_sample = 0, tapes, n;
    if (__builtin_add_overflow(info->samples, info->output_samples, &n) ||
        __builtin_mul_overflow((size_t)layers, (cwise ? 5 : 2) * info->dim + 1, &nparams) ||
        __builtin_mul_overflow((size_t)layers + 1, info->dim + 3, &per_sample) ||
        (cwise && (__builtin_mul_overflow((size_t)layers, 5 * info->dim, &cw_sample) ||
                   __builtin_add_overflow(per_sample, cw_sample, &per_sample))) ||
        __builtin_mul_overflow(per_sample, n * sizeof(double), &tapes) || tapes > wgf_mem_available())
        return wgf_section_error(sec, "layers", err,
                                 "%ld layers of dimension %zu on %zu samples are too many to hold in "
                                 "memory", layers, info->dim, n);
    const char *inv = wgf_section_string(sec, "invertibility");
    int mode = PLANAR_PROJECT;
    if (inv && strcmp(inv, "check") == 0)
        mode = PLANAR_CHECK;
    else if (inv && strcmp(inv, "reparam") == 0)
        mode = PLANAR_REPARAM;
    if (cwise && mode == PLANAR_REPARAM)
        return wgf_section_error(sec, "invertibility", err,
                                 "reparam with coordinatewise = true (allowed: check or project; the "
                                 "coordinatewise part has no reparametrisation)");
    double delta = wgf_section_double(sec, "delta");
    if (!(delta >= 0.0 && delta < 1.0))
        return wgf_section_error(sec, "delta", err, "%g (allowed: 0 <= delta < 1)", delta);
    double scale = wgf_section_double(sec, "init_scale");
    if (!(scale >= 0.0) || !isfinite(scale))
        return wgf_section_error(sec, "init_scale", err, "%g (allowed: >= 0)", scale);
    if (mode == PLANAR_REPARAM && scale == 0.0)
        return wgf_section_error(sec, "init_scale", err,
                                 "0 with invertibility = reparam, which divides by |w|^2 (use "
                                 "init_scale > 0)");
    planar *m = malloc(sizeof *m);
    if (!m)
        return wgf_error_set(err, WGF_ENOMEM, "planar: out of memory");
    m->d = info->dim;
    m->L = (size_t)layers;
    m->B = (size_t)block;
    m->S = m->L / m->B;
    m->mode = mode;
    m->delta = delta;
    m->init_scale = scale;
    m->init_bias = wgf_section_double(sec, "init_bias");
    m->affine = wgf_section_bool(sec, "affine");
    m->cwise = cwise;
    m->per = (cwise ? 5 : 2) * m->d + 1;
    *state = m;
    return WGF_OK;
}

static void planar_destroy(void *state)
{
    free(state);
}

static size_t planar_nparams(void *state)
{
    const planar *m = state;
    return m->L * m->per + (m->affine ? m->d * m->d + m->d : 0);
}

static size_t planar_nstages(void *state)
{
    const planar *m = state;
    return m->S;
}

/* The identity: u = 0 (under reparam u = log(e - 1) w/|w|^2, whose u_hat is
 * 0), small seeded w ~ N(0, init_scale^2/d), b = 0 (MATH.md 3.2). With
 * coordinatewise = true also a = 0, c ~ N(0, init_scale^2), beta = 0 (or
 * N(0, init_bias^2)); a layer draws w, b, then c, then beta, so a run without
 * the key draws what it drew before. */
static int planar_init(void *state, gsl_rng *rng, double *theta, wgf_error *err)
{
    const planar *m = state;
    size_t d = m->d;
    if (!rng && (m->init_scale > 0.0 || m->init_bias > 0.0))
        return wgf_error_set(err, WGF_EINVAL, "planar: init needs a random generator");
    double sd = m->init_scale / sqrt((double)d);
    for (size_t k = 0; k < m->L; k++) {
        double *u = PLANAR_LAYER(theta, m, k), *w = u + d;
        for (size_t i = 0; i < d; i++)
            w[i] = sd > 0.0 ? gsl_ran_gaussian(rng, sd) : 0.0;
        w[d] = m->init_bias > 0.0 ? gsl_ran_gaussian(rng, m->init_bias) : 0.0;
        double ww = planar_dot(d, w, w);
        double c = (m->mode == PLANAR_REPARAM && ww > 0.0) ? log(exp(1.0) - 1.0) / ww : 0.0;
        for (size_t i = 0; i < d; i++)
            u[i] = c * w[i];
        if (m->cwise) {
            double *ca = PLANAR_CW(theta, m, k), *cc = ca + d, *cb = cc + d;
            for (size_t i = 0; i < d; i++) {
                ca[i] = 0.0;
                cc[i] = m->init_scale > 0.0 ? gsl_ran_gaussian(rng, m->init_scale) : 0.0;
            }
            for (size_t i = 0; i < d; i++)
                cb[i] = m->init_bias > 0.0 ? gsl_ran_gaussian(rng, m->init_bias) : 0.0;
        }
    }
    if (m->affine) {
        double *A = PLANAR_AFFINE(theta, m);
        memset(A, 0, (d * d + d) * sizeof *A);
        for (size_t i = 0; i < d; i++)
            A[i * d + i] = 1.0;
    }
    return WGF_OK;
}

/* sigma_k >= -1 + delta for every layer (check, project), or, under
 * reparam, sigma_k = -1 + softplus(w.u) > -1 in floating point and w != 0.
 * The comparison allows the rounding of the dot product u.w (a few ulps of
 * sum |u_i w_i|), so that a projected theta (sigma = -1 + delta up to that
 * rounding) passes. */
static int planar_check(void *state, const double *theta, wgf_error *err)
{
    const planar *m = state;
    size_t d = m->d;
    for (size_t k = 0; k < m->L; k++) {
        const double *u = PLANAR_LAYER(theta, m, k), *w = u + d;
        for (size_t i = 0; i < m->per; i++)
            if (!isfinite(u[i]))
                return wgf_error_set(err, WGF_ENUMERIC,
                                     "planar layer %zu: parameter %zu of %zu is %g: the map is "
                                     "undefined",
                                     k + 1, i + 1, m->per, u[i]);
        double sig = 0.0, mag = 0.0;
        for (size_t i = 0; i < d; i++) {
            sig += u[i] * w[i];
            mag += fabs(u[i] * w[i]);
        }
        if (m->mode == PLANAR_REPARAM) {
            double ww = planar_dot(d, w, w);
            if (!(ww > 0.0))
                return wgf_error_set(err, WGF_ENUMERIC,
                                     "planar layer %zu: w = 0: the reparametrisation of u divides "
                                     "by |w|^2",
                                     k + 1);
            if (!(planar_softplus(sig) > 0.0))
                return wgf_error_set(err, WGF_ENUMERIC,
                                     "planar layer %zu: u_hat.w = -1 to double precision (w.u = "
                                     "%g): the layer is numerically not invertible",
                                     k + 1, sig);
            continue;
        }
        double bound = -1.0 + m->delta;
        if (sig < bound - 8.0 * DBL_EPSILON * (1.0 + mag))
            return wgf_error_set(err, WGF_ENUMERIC,
                                 "planar layer %zu: u.w = %.6g < -1 + delta = %.6g: the layer is "
                                 "not invertible (use invertibility = project or reparam, or a "
                                 "smaller step)",
                                 k + 1, sig, bound);
        if (m->cwise) {
            const double *ca = PLANAR_CW(theta, m, k), *cc = ca + d;
            for (size_t i = 0; i < d; i++) {
                double rho = ca[i] * cc[i];
                if (rho < bound - 8.0 * DBL_EPSILON * (1.0 + fabs(rho)))
                    return wgf_error_set(err, WGF_ENUMERIC,
                                         "planar layer %zu, coordinate %zu: a.c = %.6g < -1 + delta "
                                         "= %.6g: the coordinatewise part is not invertible (use "
                                         "invertibility = project, or a smaller step)",
                                         k + 1, i + 1, rho, bound);
            }
        }
    }
    if (m->affine) {
        const double *A = PLANAR_AFFINE(theta, m);
        for (size_t i = 0; i < d; i++)
            if (!isfinite(A[d * d + i]))
                return wgf_error_set(err, WGF_ENUMERIC,
                                     "planar affine part: c[%zu] = %g is not finite (the map is "
                                     "undefined)",
                                     i + 1, A[d * d + i]);
        double *lu = malloc(d * d * sizeof *lu), ld;
        gsl_permutation *perm = gsl_permutation_alloc(d);
        int rc = lu && perm ? map_lu_factor(d, A, lu, perm, &ld, "planar affine part", "take smaller steps", err)
                            : wgf_error_set(err, WGF_ENOMEM, "planar: out of memory");
        free(lu);
        if (perm)
            gsl_permutation_free(perm);
        return rc;
    }
    return WGF_OK;
}

/* invertibility = project: where sigma_k < -1 + delta, u_k += t w_k with
 * t = (-1 + delta - sigma_k)/|w_k|^2, the smallest change of u_k that gives
 * sigma_k = -1 + delta. (sigma_k < 0 there, so w_k != 0.) The coordinatewise
 * part likewise: where a_i c_i < -1 + delta, a_i = (-1 + delta)/c_i (c_i != 0
 * there). Other modes: no-op. */
static int planar_project(void *state, double *theta, wgf_error *err)
{
    (void)err;
    const planar *m = state;
    size_t d = m->d;
    if (m->mode != PLANAR_PROJECT)
        return WGF_OK;
    double bound = -1.0 + m->delta;
    for (size_t k = 0; k < m->L; k++) {
        double *u = PLANAR_LAYER(theta, m, k), *w = u + d;
        double sig = planar_dot(d, u, w), ww = planar_dot(d, w, w);
        if (m->cwise) {
            double *ca = PLANAR_CW(theta, m, k), *cc = ca + d;
            for (size_t i = 0; i < d; i++)
                if (ca[i] * cc[i] < bound && isfinite(cc[i]))
                    ca[i] = bound / cc[i];
        }
        if (!(sig < bound) || !(ww > 0.0) || !isfinite(ww))
            continue;
        double t = (bound - sig) / ww;
        for (size_t i = 0; i < d; i++)
            u[i] += t * w[i];
    }
    return WGF_OK;
}

/* ------------------------------------------------------------ tapes */

static void planar_tape_destroy(void *state, void *tape)
{
    (void)state;
    planar_tape *t = tape;
    if (!t)
        return;
    wgf_free(t->X);
    wgf_free(t->H);
    wgf_free(t->HP);
    wgf_free(t->Q);
    wgf_free(t->Sc);
    wgf_free(t->Y);
    wgf_free(t->EH);
    wgf_free(t->EHP);
    wgf_free(t->EQ);
    wgf_free(t->Sy);
    wgf_free(t->ld);
    wgf_free(t->xb);
    wgf_free(t->sb);
    wgf_free(t->lb);
    wgf_free(t->tmp);
    wgf_free(t->acc);
    wgf_free(t->lay.u);
    wgf_free(t->lay.sig);
    wgf_free(t->lay.ops);
    wgf_free(t->dlay);
    wgf_free(t->many);
    wgf_free(t->gram);
    wgf_free(t->Z);
    wgf_free(t->lu);
    wgf_free(t->ainv);
    if (t->perm)
        gsl_permutation_free(t->perm);
    free(t);
}

static void *planar_tape_create(void *state, size_t n)
{
    const planar *m = state;
    size_t d = m->d, L = m->L;
    if (n == 0)
        return NULL;
    planar_tape *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cap = n;
    t->X = wgf_alloc_doubles((L + 1) * d * n);
    t->H = wgf_alloc_doubles(L * n);
    t->HP = wgf_alloc_doubles(L * n);
    t->Q = wgf_alloc_doubles(L * n);
    t->ld = wgf_alloc_doubles(n);
    t->xb = wgf_alloc_doubles(d * n);
    t->sb = wgf_alloc_doubles(d * n);
    t->lb = wgf_alloc_doubles(n);
    t->tmp = wgf_alloc_doubles(6 * n);
    t->acc = wgf_alloc_doubles(3 * d + 2);
    t->lay.u = wgf_alloc_doubles(L * d);
    t->lay.sig = wgf_alloc_doubles(L);
    t->lay.ops = wgf_alloc_doubles(L);
    t->dlay = wgf_alloc_doubles(L * (d + 1));
    if (!t->X || !t->H || !t->HP || !t->Q || !t->ld || !t->xb || !t->sb || !t->lb || !t->tmp || !t->acc ||
        !t->lay.u || !t->lay.sig || !t->lay.ops || !t->dlay) {
        planar_tape_destroy(state, t);
        return NULL;
    }
    if (m->cwise) {
        t->Y = wgf_alloc_doubles(L * d * n);
        t->EH = wgf_alloc_doubles(L * d * n);
        t->EHP = wgf_alloc_doubles(L * d * n);
        t->EQ = wgf_alloc_doubles(L * d * n);
        if (!t->Y || !t->EH || !t->EHP || !t->EQ) {
            planar_tape_destroy(state, t);
            return NULL;
        }
    }
    if (m->affine) {
        t->Z = wgf_alloc_doubles(d * n);
        t->lu = wgf_alloc_doubles(d * d);
        t->ainv = wgf_alloc_doubles(d * d);
        t->perm = gsl_permutation_alloc(d);
        if (!t->Z || !t->lu || !t->ainv || !t->perm) {
            planar_tape_destroy(state, t);
            return NULL;
        }
    }
    return t;
}

static int planar_tape_ready(const planar_tape *t, size_t n, wgf_error *err)
{
    if (!t)
        return wgf_error_set(err, WGF_EINVAL, "planar: no tape");
    if (!t->ready || n > t->n)
        return wgf_error_set(err, WGF_EINVAL,
                             "planar: the tape holds %zu samples from forward(), %zu asked",
                             t->ready ? t->n : 0, n);
    return WGF_OK;
}

/* Sample-major (n x d) to the tape's rows (d x cap), and back. */
static void planar_to_rows(size_t n, size_t d, size_t cap, const double *a, double *rows)
{
    for (size_t s = 0; s < n; s++)
        for (size_t i = 0; i < d; i++)
            rows[i * cap + s] = a[s * d + i];
}

static void planar_add_rows(size_t n, size_t d, size_t cap, const double *a, double *rows)
{
    for (size_t s = 0; s < n; s++)
        for (size_t i = 0; i < d; i++)
            rows[i * cap + s] += a[s * d + i];
}

static void planar_from_rows(size_t n, size_t d, size_t cap, const double *rows, double *a)
{
    for (size_t s = 0; s < n; s++)
        for (size_t i = 0; i < d; i++)
            a[s * d + i] = rows[i * cap + s];
}

/* ------------------------------------------------------------ forward */

/* The coordinatewise part on coordinate i of every sample: z = c y + beta,
 * x = y + a h(z), P *= |1 + h'(z) a c| (P NULL: no log-determinant wanted),
 * keeping h, h' and q = 1/(1 + h' a c). */
PLANAR_INLINE void planar_cw_row(size_t n, double a, double c, double be, const double *restrict y,
                                 double *restrict H, double *restrict HP, double *restrict Q,
                                 double *restrict P, double *restrict x)
{
    double rho = a * c, ops = 1.0 + rho;
    for (size_t s = 0; s < n; s++)
        H[s] = expm1(-2.0 * fabs(c * y[s] + be));
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double h, hp;
        planar_tanh(c * y[s] + be, H[s], &h, &hp);
        double g = planar_g(h, hp, rho, ops);
        H[s] = h;
        HP[s] = hp;
        Q[s] = 1.0 / g;
        if (P)
            P[s] *= fabs(g);
        x[s] = y[s] + a * h;
    }
}

/* x^(k) = x^(k-1) + u_k h(a_k), ld^(k) = ld^(k-1) + log|1 + h'(a_k) sigma_k|
 * (MATH.md 3.2); stage j is the output of layer j B. The tape keeps x^(k-1),
 * h, h' and q = 1/(1 + h' sigma) of every layer for the derivative passes.
 * With coordinatewise = true the planar step writes y^(k) and e_k takes it to
 * x^(k), adding sum_i log|1 + h'(z_i) a_i c_i| to ld. ld is gathered as a
 * product of the factors with a log per stage (planar_ld_fold); without ld
 * (NULL: none wanted, as in the derivative calls) the product is skipped. */
WGF_DISPATCH
static int planar_forward(void *state, const double *theta, size_t n, const double *z, void *tape,
                          double *const *x, double *const *ld, wgf_error *err)
{
    const planar *m = state;
    planar_tape *t = tape;
    size_t d = m->d, cap = t ? t->cap : 0;
    if (!t || n > cap)
        return wgf_error_set(err, WGF_EINVAL, "planar: %zu samples on a tape for %zu", n, cap);
    t->ready = 0;
    t->have_score = 0;
    int rc = planar_effective(m, theta, &t->lay, err);
    if (rc)
        return rc;
    if (m->affine) {
        /* x^(0) = A z + c, ld^(0) = log|det A| */
        const double *A = PLANAR_AFFINE(theta, m), *c = A + d * d;
        rc = map_lu_factor(d, A, t->lu, t->perm, &t->ldA, "planar affine part", "take smaller steps", err);
        if (rc)
            return rc;
        gsl_matrix_view lu = gsl_matrix_view_array(t->lu, d, d), inv = gsl_matrix_view_array(t->ainv, d, d);
        gsl_linalg_LU_invert(&lu.matrix, t->perm, &inv.matrix);
        planar_to_rows(n, d, cap, z, t->Z);
        for (size_t i = 0; i < d; i++) {
            double *row = t->X + i * cap;
            for (size_t s = 0; s < n; s++)
                row[s] = c[i];
            for (size_t j = 0; j < d; j++)
                planar_axpy(n, A[i * d + j], t->Z + j * cap, row);
        }
        for (size_t s = 0; s < n; s++)
            t->ld[s] = t->ldA;
    } else {
        planar_to_rows(n, d, cap, z, t->X);
        memset(t->ld, 0, n * sizeof *t->ld);
    }
    if (x && x[0])
        memcpy(x[0], z, n * d * sizeof *z);
    if (ld && ld[0])
        memset(ld[0], 0, n * sizeof *ld[0]);
    double *a = t->tmp, *P = ld ? t->tmp + cap : NULL;
    if (P)
        for (size_t s = 0; s < n; s++)
            P[s] = 1.0;
    for (size_t k = 0; k < m->L; k++) {
        const double *w = PLANAR_LAYER(theta, m, k) + d;
        const double *u = t->lay.u + k * d;
        double sig = t->lay.sig[k], ops = t->lay.ops[k];
        const double *Xp = t->X + k * d * cap;
        double *Xk = t->X + (k + 1) * d * cap;
        double *H = t->H + k * cap, *HP = t->HP + k * cap, *Q = t->Q + k * cap;
        for (size_t s = 0; s < n; s++)
            a[s] = w[d];
        for (size_t i = 0; i < d; i++)
            planar_axpy(n, w[i], Xp + i * cap, a);
        for (size_t s = 0; s < n; s++)
            H[s] = expm1(-2.0 * fabs(a[s]));
        PLANAR_SIMD
        for (size_t s = 0; s < n; s++) {
            double h, hp;
            planar_tanh(a[s], H[s], &h, &hp);
            H[s] = h;
            HP[s] = hp;
            double g = planar_g(h, hp, sig, ops);
            Q[s] = 1.0 / g;
            if (P)
                P[s] *= fabs(g);
        }
        if (P)
            planar_ld_fold(n, P, t->ld);
        double *Yk = m->cwise ? t->Y + k * d * cap : Xk;
        for (size_t i = 0; i < d; i++)
            planar_xpah(n, Xp + i * cap, u[i], H, Yk + i * cap);
        if (m->cwise) {
            const double *ca = PLANAR_CW(theta, m, k), *cc = ca + d, *cb = cc + d;
            for (size_t i = 0; i < d; i++) {
                size_t row = (k * d + i) * cap;
                planar_cw_row(n, ca[i], cc[i], cb[i], Yk + i * cap, t->EH + row, t->EHP + row,
                              t->EQ + row, P, Xk + i * cap);
                if (P)
                    planar_ld_fold(n, P, t->ld);
            }
        }
        if ((k + 1) % m->B == 0) {
            size_t j = (k + 1) / m->B;
            if (x && x[j])
                planar_from_rows(n, d, cap, Xk, x[j]);
            if (ld && ld[j]) {
                planar_ld_flush(n, P, t->ld);
                memcpy(ld[j], t->ld, n * sizeof *t->ld);
            }
        }
    }
    t->n = n;
    t->ready = 1;
    return WGF_OK;
}

/* ------------------------------------------------------------ score */

/* beta = q (h' r + q h'' sigma) for every sample, h'' = -2 h h'. */
PLANAR_INLINE void planar_beta(size_t n, double sig, const double *restrict H, const double *restrict HP,
                               const double *restrict Q, const double *restrict r, double *restrict beta)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double hp = HP[s], q = Q[s], hpp = -2.0 * H[s] * hp;
        beta[s] = q * (hp * r[s] + q * hpp * sig);
    }
}

/* s^(k) = J_k^{-T} (s^(k-1) - q h'' sigma w) (MATH.md 3.3). With
 * J_k^{-T} y = y - h' q (u.y) w and 1 - h' q sigma = q this is
 *     s^(k) = s^(k-1) - beta w,   beta = q (h' r + q h'' sigma),  r = u . s^(k-1),
 * O(d) per sample and layer. With coordinatewise = true the planar step gives
 * the score at y^(k), and every coordinate of e_k (a 1-D planar layer) the
 * same way s_i - beta_i c_i, beta_i = q_i (h'_i r_i + q_i h''_i a_i c_i),
 * r_i = a_i s_i. */
WGF_DISPATCH
static int planar_score(void *state, const double *theta, size_t n, void *tape, const double *s0,
                        double *const *s, wgf_error *err)
{
    const planar *m = state;
    planar_tape *t = tape;
    size_t d = m->d;
    int rc = planar_tape_ready(t, n, err);
    if (rc)
        return rc;
    size_t cap = t->cap;
    if (!t->Sc) {
        t->Sc = wgf_alloc_doubles((m->L + 1) * d * cap);
        if (!t->Sc)
            return wgf_error_set(err, WGF_ENOMEM, "planar: out of memory for the scores");
    }
    if (m->cwise && !t->Sy) {
        t->Sy = wgf_alloc_doubles(m->L * d * cap);
        if (!t->Sy)
            return wgf_error_set(err, WGF_ENOMEM, "planar: out of memory for the scores");
    }
    rc = planar_effective(m, theta, &t->lay, err);
    if (rc)
        return rc;
    if (m->affine) { /* the score of y = A z + c: A^{-T} s0 */
        planar_to_rows(n, d, cap, s0, t->sb);
        memset(t->Sc, 0, d * cap * sizeof *t->Sc);
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                planar_axpy(n, t->ainv[j * d + i], t->sb + j * cap, t->Sc + i * cap);
    } else
        planar_to_rows(n, d, cap, s0, t->Sc);
    if (s && s[0])
        memcpy(s[0], s0, n * d * sizeof *s0);
    double *r = t->tmp, *beta = t->tmp + cap;
    for (size_t k = 0; k < m->L; k++) {
        const double *w = PLANAR_LAYER(theta, m, k) + d;
        const double *u = t->lay.u + k * d;
        const double *Sp = t->Sc + k * d * cap;
        double *Sk = t->Sc + (k + 1) * d * cap;
        memset(r, 0, n * sizeof *r);
        for (size_t i = 0; i < d; i++)
            planar_axpy(n, u[i], Sp + i * cap, r);
        planar_beta(n, t->lay.sig[k], t->H + k * cap, t->HP + k * cap, t->Q + k * cap, r, beta);
        double *Sy = m->cwise ? t->Sy + k * d * cap : Sk;
        for (size_t i = 0; i < d; i++)
            planar_xpah(n, Sp + i * cap, -w[i], beta, Sy + i * cap);
        if (m->cwise) {
            const double *ca = PLANAR_CW(theta, m, k), *cc = ca + d;
            for (size_t i = 0; i < d; i++) {
                size_t row = (k * d + i) * cap;
                const double *sy = Sy + i * cap;
                planar_ax(n, ca[i], sy, r);
                planar_beta(n, ca[i] * cc[i], t->EH + row, t->EHP + row, t->EQ + row, r, beta);
                planar_xpah(n, sy, -cc[i], beta, Sk + i * cap);
            }
        }
        if ((k + 1) % m->B == 0) {
            size_t st = (k + 1) / m->B;
            if (s && s[st])
                planar_from_rows(n, d, cap, Sk, s[st]);
        }
    }
    t->have_score = 1;
    return WGF_OK;
}

/* ------------------------------------------------------------ jvp */

/* dld += q (h'' sigma da + h' dsigma); da <- h' da (what dx needs). */
PLANAR_INLINE void planar_jvp_scalars(size_t n, double sig, double dsig, const double *restrict H,
                                      const double *restrict HP, const double *restrict Q,
                                      double *restrict da, double *restrict dld)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double hp = HP[s], hpp = -2.0 * H[s] * hp;
        dld[s] += Q[s] * (hpp * sig * da[s] + hp * dsig);
        da[s] *= hp;
    }
}

/* da *= h': the scalars without the log-determinant's tangent (jld not wanted,
 * as in the metric product) */
PLANAR_INLINE void planar_jvp_hda(size_t n, const double *restrict HP, double *restrict da)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++)
        da[s] *= HP[s];
}

/* dx += du h + u (h' da) */
PLANAR_INLINE void planar_jvp_dx(size_t n, double du, const double *restrict H, double u,
                                 const double *restrict hda, double *restrict dx)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++)
        dx[s] += du * H[s] + u * hda[s];
}

/* The coordinatewise part's forward mode on one coordinate, in one pass:
 *   dz = dbeta + dc y + c dy,  dld += q (h'' rho dz + h' drho),  dx = dy + da h + a h' dz,
 * rho = a c, drho = da c + a dc. */
PLANAR_INLINE void planar_cw_jvp(size_t n, double a, double c, double da, double dc, double db,
                                 const double *restrict Y, const double *restrict H,
                                 const double *restrict HP, const double *restrict Q, double *restrict dx,
                                 double *restrict dld)
{
    double rho = a * c, drho = da * c + a * dc;
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double dz = db + dc * Y[s] + c * dx[s], h = H[s], hp = HP[s], hpp = -2.0 * h * hp;
        dld[s] += Q[s] * (hpp * rho * dz + hp * drho);
        dx[s] += da * h + a * (hp * dz);
    }
}

/* The same without dld (jld not wanted, as in the metric product). */
PLANAR_INLINE void planar_cw_jvp_x(size_t n, double a, double c, double da, double dc, double db,
                                   const double *restrict Y, const double *restrict H,
                                   const double *restrict HP, double *restrict dx)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double dz = db + dc * Y[s] + c * dx[s];
        dx[s] += da * H[s] + a * (HP[s] * dz);
    }
}

/* Forward mode in theta (MATH.md 3.2):
 *   da = dw . x^(k-1) + w . dx^(k-1) + db,   dx^(k) = dx^(k-1) + du h + u h' da,
 *   dld^(k) = dld^(k-1) + q (h'' sigma da + h' dsigma),  dsigma = du . w + u . dw,
 * with du the forward mode of u_hat under reparam. The coordinatewise part is
 * the same per coordinate (u = a_i, w = c_i, b = beta_i, x^(k-1) = y_i):
 *   dz = dc y + c dy + dbeta,  dx = dy + da h + a h' dz,
 *   dld += q (h'' a c dz + h' (da c + a dc)).
 * Without jld (the metric product) dld is skipped. */
WGF_DISPATCH
static int planar_jvp(void *state, const double *theta, size_t n, void *tape, const double *v,
                      double *jx, double *jld, wgf_error *err)
{
    const planar *m = state;
    planar_tape *t = tape;
    size_t d = m->d;
    int rc = planar_tape_ready(t, n, err);
    if (rc)
        return rc;
    size_t cap = t->cap;
    rc = planar_effective(m, theta, &t->lay, err);
    if (rc)
        return rc;
    for (size_t k = 0; k < m->L; k++) {
        const double *u = PLANAR_LAYER(theta, m, k), *w = u + d;
        const double *du = PLANAR_LAYER(v, m, k), *dw = du + d;
        double *duh = t->dlay + k * (d + 1);
        if (m->mode == PLANAR_REPARAM)
            planar_reparam_jvp(d, u, w, du, dw, duh);
        else
            memcpy(duh, du, d * sizeof *duh);
        duh[d] = planar_dot(d, duh, w) + planar_dot(d, t->lay.u + k * d, dw);
    }
    double *dX = t->xb, *dld = t->lb, *da = t->tmp;
    memset(dX, 0, d * cap * sizeof *dX);
    memset(dld, 0, n * sizeof *dld);
    if (m->affine) {
        /* dx^(0) = dA z + dc, dld^(0) = tr(A^{-1} dA) */
        const double *dA = PLANAR_AFFINE(v, m), *dc = dA + d * d;
        double tr = 0.0;
        for (size_t i = 0; i < d; i++) {
            double *row = dX + i * cap;
            for (size_t s = 0; s < n; s++)
                row[s] = dc[i];
            for (size_t j = 0; j < d; j++) {
                planar_axpy(n, dA[i * d + j], t->Z + j * cap, row);
                tr += t->ainv[j * d + i] * dA[i * d + j];
            }
        }
        for (size_t s = 0; s < n; s++)
            dld[s] = tr;
    }
    for (size_t k = 0; k < m->L; k++) {
        const double *w = PLANAR_LAYER(theta, m, k) + d;
        const double *dw = PLANAR_LAYER(v, m, k) + d;
        const double *u = t->lay.u + k * d, *duh = t->dlay + k * (d + 1);
        const double *Xp = t->X + k * d * cap, *H = t->H + k * cap;
        for (size_t s = 0; s < n; s++)
            da[s] = dw[d];
        for (size_t i = 0; i < d; i++) {
            planar_axpy(n, dw[i], Xp + i * cap, da);
            planar_axpy(n, w[i], dX + i * cap, da);
        }
        if (jld)
            planar_jvp_scalars(n, t->lay.sig[k], duh[d], H, t->HP + k * cap, t->Q + k * cap, da, dld);
        else
            planar_jvp_hda(n, t->HP + k * cap, da);
        for (size_t i = 0; i < d; i++)
            planar_jvp_dx(n, duh[i], H, u[i], da, dX + i * cap);
        if (m->cwise) {
            const double *ca = PLANAR_CW(theta, m, k), *cc = ca + d;
            const double *dca = PLANAR_CW(v, m, k), *dcc = dca + d, *dcb = dcc + d;
            for (size_t i = 0; i < d; i++) {
                size_t row = (k * d + i) * cap;
                double *dx = dX + i * cap;
                if (jld)
                    planar_cw_jvp(n, ca[i], cc[i], dca[i], dcc[i], dcb[i], t->Y + row, t->EH + row,
                                  t->EHP + row, t->EQ + row, dx, dld);
                else
                    planar_cw_jvp_x(n, ca[i], cc[i], dca[i], dcc[i], dcb[i], t->Y + row, t->EH + row,
                                    t->EHP + row, dx);
            }
        }
    }
    planar_from_rows(n, d, cap, dX, jx);
    if (jld)
        memcpy(jld, dld, n * sizeof *dld);
    return WGF_OK;
}

/* ------------------------------------------------------------ path_vjp */

/* Per-sample scalars of one layer's reverse step, x and ld cotangents only:
 *   sigbar = ldbar q h',  abar = h' (u . xbar) + ldbar q h'' sigma. */
PLANAR_INLINE void planar_vjp_scalars(size_t n, double sig, const double *restrict H,
                                      const double *restrict HP, const double *restrict Q,
                                      const double *restrict LB, const double *restrict ux,
                                      double *restrict sigb, double *restrict ab)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double hp = HP[s], hpp = -2.0 * H[s] * hp, lq = LB[s] * Q[s];
        sigb[s] = lq * hp;
        ab[s] = hp * ux[s] + lq * hpp * sig;
    }
}

/* abar = h' (u . xbar): the scalars with x cotangents alone (sigbar = 0) */
PLANAR_INLINE void planar_vjp_hux(size_t n, const double *restrict HP, const double *restrict ux,
                                  double *restrict ab)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++)
        ab[s] = HP[s] * ux[s];
}

/* The same with score cotangents. On entry r = u . s^(k-1) and beta holds
 * betabar = -(w . sbar); on return rb = rbar, beta = beta (for wbar). */
PLANAR_INLINE void planar_vjp_scalars_s(size_t n, double sig, const double *restrict H,
                                        const double *restrict HP, const double *restrict Q,
                                        const double *restrict LB, const double *restrict ux,
                                        const double *restrict r, double *restrict beta,
                                        double *restrict rb, double *restrict sigb, double *restrict ab)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double h = H[s], hp = HP[s], q = Q[s], hpp = -2.0 * h * hp, lq = LB[s] * q;
        double hppp = -2.0 * hp * (hp - 2.0 * h * h);
        double q2 = q * q, q3 = q2 * q, bb = beta[s], rs = r[s];
        rb[s] = bb * q * hp;
        sigb[s] = lq * hp + bb * (q2 * (hpp - hp * hp * rs) - 2.0 * q3 * hpp * sig * hp);
        ab[s] = hp * ux[s] + lq * hpp * sig +
                bb * (q2 * hpp * rs + q2 * hppp * sig - 2.0 * q3 * hpp * hpp * sig * sig);
        beta[s] = q * (hp * rs + q * hpp * sig);
    }
}

/* One reverse sweep from layer L to 1. Entering layer k, xb, lb, sb hold the
 * cotangents of x^(k), ld^(k), s^(k) (stage cotangents added when the sweep
 * passes a stage boundary). Per sample (MATH.md 3.2, ldbar the cotangent of
 * +ld):
 *   sigbar = ldbar q h',  abar = h' (u . xbar) + ldbar q h'' sigma,
 * and, for the score step s^(k) = s^(k-1) - beta w with
 * beta(a, sigma, r) = h' r/g + h'' sigma/g^2, g = 1 + h' sigma, dg/da = h'' sigma,
 * dg/dsigma = h' (MATH.md 3.3), betabar = -(w . sbar):
 *   dbeta/dr     = q h'
 *   dbeta/dsigma = q^2 (h'' - h'^2 r) - 2 q^3 h'' sigma h'
 *   dbeta/da     = q^2 h'' r + q^2 h''' sigma - 2 q^3 h''^2 sigma^2
 *   (using 1 - q h' sigma = q and h''' = -2 h' (h' - 2 h^2)),
 *   rbar = betabar dbeta/dr into u (r s^(k-1)) and s^(k-1) (r u), wbar -= beta sbar,
 *   sigbar += betabar dbeta/dsigma, abar += betabar dbeta/da.
 * Then u gets h xbar + sigbar w, w gets abar x^(k-1) + sigbar u, b gets abar,
 * xbar^(k-1) = xbar + abar w, sbar^(k-1) = sbar + rbar u. */
/* One cotangent set's state in a reverse sweep: the cotangents of x^(k) (d x cap), ld^(k) (cap)
 * and s^(k) (d x cap) entering layer k, and which of them can be nonzero yet. */
typedef struct planar_rev {
    double *XB, *LB, *SB;
    int xact, lact, sact;
} planar_rev;

static void planar_rev_start(planar_rev *v, size_t n, size_t d, size_t cap)
{
    memset(v->XB, 0, d * cap * sizeof *v->XB);
    memset(v->SB, 0, d * cap * sizeof *v->SB);
    memset(v->LB, 0, n * sizeof *v->LB);
    v->xact = v->lact = v->sact = 0;
}

/* Add a stage's cotangents (any NULL: zero) as the sweep passes its boundary. */
static void planar_rev_stage(planar_rev *v, size_t n, size_t d, size_t cap, const double *xbar,
                             const double *ldbar, const double *sbar)
{
    if (xbar) {
        planar_add_rows(n, d, cap, xbar, v->XB);
        v->xact = 1;
    }
    if (ldbar) {
        for (size_t s = 0; s < n; s++)
            v->LB[s] += ldbar[s];
        v->lact = 1;
    }
    if (sbar) {
        planar_add_rows(n, d, cap, sbar, v->SB);
        v->sact = 1;
    }
}

/* The coordinatewise part's reverse step on one coordinate (a 1-D planar layer, u = a, w = c,
 * sigma = rho = a c), per sample: from the cotangents xb of x_i and lb of ld, the terms of the
 * parameter sums, sigmabar = lb q h' (E0), abar's h xb (E1), cbar's zbar y (E2) and
 * betabar = zbar = h' a xb + lb q h'' rho (E3); then xb moves to y_i, xb += c zbar. */
PLANAR_INLINE void planar_cw_rev_x(size_t n, double a, double c, const double *restrict H,
                                   const double *restrict HP, const double *restrict Q,
                                   const double *restrict LB, const double *restrict Y,
                                   double *restrict xb, double *restrict E0, double *restrict E1,
                                   double *restrict E2, double *restrict E3)
{
    double rho = a * c;
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double h = H[s], hp = HP[s], hpp = -2.0 * h * hp, lq = LB[s] * Q[s], x = xb[s];
        double zb = hp * a * x + lq * hpp * rho;
        E0[s] = lq * hp;
        E1[s] = h * x;
        E2[s] = zb * Y[s];
        E3[s] = zb;
        xb[s] = x + c * zb;
    }
}

/* The same with x cotangents alone (the metric product): lq = 0, E0 = 0 not written. */
PLANAR_INLINE void planar_cw_rev_xonly(size_t n, double a, double c, const double *restrict H,
                                       const double *restrict HP, const double *restrict Y,
                                       double *restrict xb, double *restrict E1, double *restrict E2,
                                       double *restrict E3)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double x = xb[s], zb = HP[s] * a * x;
        E1[s] = H[s] * x;
        E2[s] = zb * Y[s];
        E3[s] = zb;
        xb[s] = x + c * zb;
    }
}

/* The same with the score cotangent sb of s_i (planar_vjp_scalars_s's terms with r = a s(y)_i
 * and betabar = -c sb): E1 adds rbar s(y), E2 subtracts beta sb, and sb moves to s(y)_i,
 * sb += a rbar. */
PLANAR_INLINE void planar_cw_rev_s(size_t n, double a, double c, const double *restrict H,
                                   const double *restrict HP, const double *restrict Q,
                                   const double *restrict LB, const double *restrict Y,
                                   const double *restrict Sy, double *restrict xb, double *restrict sb,
                                   double *restrict E0, double *restrict E1, double *restrict E2,
                                   double *restrict E3)
{
    double rho = a * c;
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++) {
        double h = H[s], hp = HP[s], q = Q[s], hpp = -2.0 * h * hp, lq = LB[s] * q, x = xb[s];
        double hppp = -2.0 * hp * (hp - 2.0 * h * h), q2 = q * q, q3 = q2 * q;
        double sv = sb[s], sy = Sy[s], bb = -c * sv, rs = a * sy, rb = bb * q * hp;
        double sigb = lq * hp + bb * (q2 * (hpp - hp * hp * rs) - 2.0 * q3 * hpp * rho * hp);
        double zb = hp * a * x + lq * hpp * rho +
                    bb * (q2 * hpp * rs + q2 * hppp * rho - 2.0 * q3 * hpp * hpp * rho * rho);
        double beta = q * (hp * rs + q * hpp * rho);
        E0[s] = sigb;
        E1[s] = h * x + rb * sy;
        E2[s] = zb * Y[s] - beta * sv;
        E3[s] = zb;
        xb[s] = x + c * zb;
        sb[s] = sv + a * rb;
    }
}

/* The coordinatewise part's reverse step of layer k for one set: v holds the cotangents of
 * x^(k), ld^(k), s^(k) and leaves with those of y^(k), ld, and the score at y^(k). Per
 * coordinate it is planar_rev_layer's step for a 1-D layer (u = a_i, w = c_i, b = beta_i,
 * input y_i, input score s(y)_i): one pass over the samples, then four sums, into thetabar's
 * a, c, beta. */
PLANAR_INLINE void planar_rev_cw(const planar *m, planar_tape *t, size_t k, size_t n, const double *theta,
                                 planar_rev *v, double *thetabar)
{
    size_t d = m->d, cap = t->cap;
    double *E0 = t->tmp, *E1 = t->tmp + cap, *E2 = t->tmp + 2 * cap, *E3 = t->tmp + 3 * cap;
    const double *ca = PLANAR_CW(theta, m, k), *cc = ca + d;
    double *ta = PLANAR_CW(thetabar, m, k), *tc = ta + d, *tb = tc + d;
    for (size_t i = 0; i < d; i++) {
        size_t row = (k * d + i) * cap;
        const double *H = t->EH + row, *HP = t->EHP + row, *Q = t->EQ + row, *Y = t->Y + row;
        double *xb = v->XB + i * cap, a = ca[i], c = cc[i];
        if (v->sact)
            planar_cw_rev_s(n, a, c, H, HP, Q, v->LB, Y, t->Sy + row, xb, v->SB + i * cap, E0, E1, E2, E3);
        else if (v->lact)
            planar_cw_rev_x(n, a, c, H, HP, Q, v->LB, Y, xb, E0, E1, E2, E3);
        else
            planar_cw_rev_xonly(n, a, c, H, HP, Y, xb, E1, E2, E3);
        double sum_sigb = (v->sact || v->lact) ? planar_sum(n, E0) : 0.0;
        ta[i] += planar_sum(n, E1) + sum_sigb * c;
        tc[i] += planar_sum(n, E2) + sum_sigb * a;
        tb[i] += planar_sum(n, E3);
    }
    v->xact = 1;
}

/* Layer k's reverse step for one set: accumulate into thetabar, move v to layer k's inputs.
 * Uses the tape's per-sample scratch (tmp, acc), so sets go one after another. */
WGF_DISPATCH
static void planar_rev_layer(const planar *m, planar_tape *t, size_t k, size_t n, const double *theta,
                             planar_rev *v, double *thetabar)
{
    if (!v->xact && !v->lact && !v->sact)
        return; /* nothing depends on this layer yet */
    if (m->cwise)
        planar_rev_cw(m, t, k, n, theta, v, thetabar);
    size_t d = m->d, cap = t->cap;
    double *XB = v->XB, *SB = v->SB, *LB = v->LB;
    int xact = v->xact, sact = v->sact;
    double *ux = t->tmp, *sigb = t->tmp + cap, *ab = t->tmp + 2 * cap, *r = t->tmp + 3 * cap;
    double *beta = t->tmp + 4 * cap, *rb = t->tmp + 5 * cap;
    double *ubar = t->acc, *wbar = t->acc + d, *tmpd = t->acc + 2 * d;
    const double *w = PLANAR_LAYER(theta, m, k) + d;
    const double *u = t->lay.u + k * d;
    double sig = t->lay.sig[k];
    const double *Xp = t->X + k * d * cap;
    const double *H = t->H + k * cap, *HP = t->HP + k * cap, *Q = t->Q + k * cap;

    memset(ux, 0, n * sizeof *ux);
    if (xact)
        for (size_t i = 0; i < d; i++)
            planar_axpy(n, u[i], XB + i * cap, ux);
    if (sact) {
        const double *Sp = t->Sc + k * d * cap;
        memset(r, 0, n * sizeof *r);
        memset(beta, 0, n * sizeof *beta);
        for (size_t i = 0; i < d; i++) {
            planar_axpy(n, u[i], Sp + i * cap, r);
            planar_axpy(n, -w[i], SB + i * cap, beta);
        }
        planar_vjp_scalars_s(n, sig, H, HP, Q, LB, ux, r, beta, rb, sigb, ab);
    } else if (v->lact)
        planar_vjp_scalars(n, sig, H, HP, Q, LB, ux, sigb, ab);
    else
        planar_vjp_hux(n, HP, ux, ab);
    /* without ld or score cotangents (the metric product) sigbar = 0 */
    double sum_sigb = (sact || v->lact) ? planar_sum(n, sigb) : 0.0, sum_ab = planar_sum(n, ab);
    /* per-layer sums over samples, in the effective (u, w, b) */
    for (size_t i = 0; i < d; i++) {
        double su = xact ? planar_sumprod(n, H, XB + i * cap) : 0.0;
        double sw = planar_sumprod(n, ab, Xp + i * cap);
        if (sact) {
            su += planar_sumprod(n, rb, t->Sc + (k * d + i) * cap);
            sw -= planar_sumprod(n, beta, SB + i * cap);
        }
        ubar[i] = su + sum_sigb * w[i];
        wbar[i] = sw + sum_sigb * u[i];
    }
    /* cotangents of the layer's inputs */
    for (size_t i = 0; i < d; i++)
        planar_axpy(n, w[i], ab, XB + i * cap);
    v->xact = 1;
    if (sact)
        for (size_t i = 0; i < d; i++)
            planar_axpy(n, u[i], rb, SB + i * cap);
    /* into theta: through u_hat(u, w) under reparam */
    double *tu = PLANAR_LAYER(thetabar, m, k), *tw = tu + d;
    if (m->mode == PLANAR_REPARAM) {
        const double *ru = PLANAR_LAYER(theta, m, k);
        for (size_t i = 0; i < d; i++)
            tmpd[i] = 0.0;
        planar_reparam_vjp(d, ru, ru + d, ubar, tu, tmpd);
        for (size_t i = 0; i < d; i++)
            tw[i] += wbar[i] + tmpd[i];
    } else {
        for (size_t i = 0; i < d; i++) {
            tu[i] += ubar[i];
            tw[i] += wbar[i];
        }
    }
    tw[d] += sum_ab;
}

/* The affine part's reverse step, after layer 1's: v holds the cotangents of
 * y = A z + c, of ld^(0) = log|det A| and of s^(0) = A^{-T} s0, and
 *   cbar = sum_n ybar_n,  Abar = sum_n ybar_n z_n^T + (sum_n ldbar_n) A^{-T}
 *          - sum_n s^(0)_n (A^{-1} sbar_n)^T
 * (from d(A^{-T} s0) = -A^{-T} dA^T A^{-T} s0). */
static void planar_rev_affine(const planar *m, planar_tape *t, size_t n, planar_rev *v, double *thetabar)
{
    size_t d = m->d, cap = t->cap;
    double *tA = PLANAR_AFFINE(thetabar, m), *tc = tA + d * d;
    if (v->xact)
        for (size_t i = 0; i < d; i++) {
            const double *xb = v->XB + i * cap;
            tc[i] += planar_sum(n, xb);
            for (size_t j = 0; j < d; j++)
                tA[i * d + j] += planar_sumprod(n, xb, t->Z + j * cap);
        }
    if (v->lact) {
        double sl = planar_sum(n, v->LB);
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                tA[i * d + j] += sl * t->ainv[j * d + i];
    }
    if (v->sact) {
        double *vj = t->tmp; /* (A^{-1} sbar)_j over the samples */
        for (size_t j = 0; j < d; j++) {
            memset(vj, 0, n * sizeof *vj);
            for (size_t i = 0; i < d; i++)
                planar_axpy(n, t->ainv[j * d + i], v->SB + i * cap, vj);
            for (size_t i = 0; i < d; i++)
                tA[i * d + j] -= planar_sumprod(n, t->Sc + i * cap, vj);
        }
    }
}

static int planar_path_vjp(void *state, const double *theta, size_t n, void *tape,
                           const double *const *xbar, const double *const *ldbar,
                           const double *const *sbar, double *thetabar, wgf_error *err)
{
    const planar *m = state;
    planar_tape *t = tape;
    size_t d = m->d;
    int rc = planar_tape_ready(t, n, err);
    if (rc)
        return rc;
    size_t cap = t->cap;
    if (sbar && !t->have_score)
        for (size_t j = 1; j <= m->S; j++)
            if (sbar[j])
                return wgf_error_set(err, WGF_EINVAL,
                                     "planar: score cotangents need score() on this tape first");
    rc = planar_effective(m, theta, &t->lay, err);
    if (rc)
        return rc;
    planar_rev v = {.XB = t->xb, .LB = t->lb, .SB = t->sb};
    planar_rev_start(&v, n, d, cap);
    for (size_t k = m->L; k-- > 0;) {
        if ((k + 1) % m->B == 0) {
            size_t st = (k + 1) / m->B;
            planar_rev_stage(&v, n, d, cap, xbar ? xbar[st] : NULL, ldbar ? ldbar[st] : NULL,
                             sbar ? sbar[st] : NULL);
        }
        planar_rev_layer(m, t, k, n, theta, &v, thetabar);
    }
    if (m->affine)
        planar_rev_affine(m, t, n, &v, thetabar);
    return WGF_OK;
}

/* Sets swept together: each layer's tape rows (X, H, HP, Q, s) are read once for this many sets
 * while they are in cache, at (2 d + 1) x cap doubles of workspace per set. */
#define PLANAR_MANY 8

/* k last-stage cotangent sets, PLANAR_MANY at a time in one sweep each: per set the same
 * operations as planar_path_vjp, so the same results to the bit. */
static int planar_vjp_many(void *state, const double *theta, size_t n, void *tape, size_t k,
                           const double *const *xbar, const double *const *ldbar,
                           const double *const *sbar, double *const *thetabar, wgf_error *err)
{
    const planar *m = state;
    planar_tape *t = tape;
    size_t d = m->d;
    int rc = planar_tape_ready(t, n, err);
    if (rc)
        return rc;
    size_t cap = t->cap, per = (2 * d + 1) * cap;
    if (sbar && !t->have_score)
        for (size_t j = 0; j < k; j++)
            if (sbar[j])
                return wgf_error_set(err, WGF_EINVAL,
                                     "planar: score cotangents need score() on this tape first");
    size_t want = k < PLANAR_MANY ? k : PLANAR_MANY;
    if (t->nmany < want) { /* once per tape and size: later calls do not allocate */
        wgf_free(t->many);
        t->nmany = 0;
        t->many = wgf_alloc_doubles(want * per);
        if (!t->many)
            return wgf_error_set(err, WGF_ENOMEM, "planar: out of memory for %zu cotangent sets", want);
        t->nmany = want;
    }
    rc = planar_effective(m, theta, &t->lay, err);
    if (rc)
        return rc;
    planar_rev v[PLANAR_MANY];
    for (size_t j0 = 0; j0 < k; j0 += PLANAR_MANY) {
        size_t kk = k - j0 < PLANAR_MANY ? k - j0 : PLANAR_MANY;
        for (size_t j = 0; j < kk; j++) {
            double *base = t->many + j * per;
            v[j] = (planar_rev){.XB = base, .SB = base + d * cap, .LB = base + 2 * d * cap};
            planar_rev_start(&v[j], n, d, cap);
            size_t js = j0 + j;
            planar_rev_stage(&v[j], n, d, cap, xbar ? xbar[js] : NULL, ldbar ? ldbar[js] : NULL,
                             sbar ? sbar[js] : NULL);
        }
        for (size_t l = m->L; l-- > 0;)
            for (size_t j = 0; j < kk; j++)
                planar_rev_layer(m, t, l, n, theta, &v[j], thetabar[j0 + j]);
        if (m->affine)
            for (size_t j = 0; j < kk; j++)
                planar_rev_affine(m, t, n, &v[j], thetabar[j0 + j]);
    }
    return WGF_OK;
}

/* ------------------------------------------------------------ gram_blocks */

/* y = a x */
PLANAR_INLINE void planar_scale(size_t n, const double *restrict a, const double *restrict x,
                                double *restrict y)
{
    PLANAR_SIMD
    for (size_t s = 0; s < n; s++)
        y[s] = a[s] * x[s];
}

/* Layer k's block of sum_n J_n^T J_n in the effective (u, w, b) (doc/math.md 4.1). With
 * A = dx^(L)/dx^(k) (the layer's output to the map's, d x d per sample) and
 * c = h' A u, the layer's Jacobian is J_k = [h A, c x^T, c] (x = x^(k-1), the layer's input), so
 *   uu = sum h^2 A^T A,  uw = sum h (A^T c) x^T,  ub = sum h A^T c,
 *   ww = sum |c|^2 x x^T,  wb = sum |c|^2 x,  bb = sum |c|^2.
 * A is carried down the layers as A <- A (I + h' u w^T) = A + c w^T: O(d^2) per sample and
 * layer, and the uu sums O(d^3). On return A has moved to layer k's input. */
WGF_DISPATCH
static void planar_gram_layer(const planar *m, planar_tape *t, size_t k, size_t n,
                              const double *theta, double *A, double *C, double *V, double *R,
                              double *nc, double *G)
{
    size_t d = m->d, cap = t->cap, q = 2 * d + 1;
    const double *w = PLANAR_LAYER(theta, m, k) + d;
    const double *u = t->lay.u + k * d;
    const double *Xp = t->X + k * d * cap;
    const double *H = t->H + k * cap, *HP = t->HP + k * cap;
    /* c = h' A u, |c|^2, V = A^T c */
    memset(nc, 0, n * sizeof *nc);
    for (size_t r = 0; r < d; r++) {
        double *c = C + r * cap;
        memset(c, 0, n * sizeof *c);
        for (size_t j = 0; j < d; j++)
            planar_axpy(n, u[j], A + (r * d + j) * cap, c);
        PLANAR_SIMD
        for (size_t s = 0; s < n; s++) {
            c[s] *= HP[s];
            nc[s] += c[s] * c[s];
        }
    }
    for (size_t j = 0; j < d; j++) {
        double *v = V + j * cap;
        memset(v, 0, n * sizeof *v);
        for (size_t r = 0; r < d; r++)
            PLANAR_SIMD
            for (size_t s = 0; s < n; s++)
                v[s] += A[(r * d + j) * cap + s] * C[r * cap + s];
    }
    /* uu: row r of h A at a time */
    for (size_t r = 0; r < d; r++) {
        for (size_t i = 0; i < d; i++)
            planar_scale(n, H, A + (r * d + i) * cap, R + i * cap);
        for (size_t i = 0; i < d; i++)
            for (size_t j = i; j < d; j++)
                G[i * q + j] += planar_sumprod(n, R + i * cap, R + j * cap);
    }
    /* uw, ub */
    for (size_t i = 0; i < d; i++) {
        planar_scale(n, H, V + i * cap, R);
        for (size_t j = 0; j < d; j++)
            G[i * q + d + j] += planar_sumprod(n, R, Xp + j * cap);
        G[i * q + 2 * d] += planar_sum(n, R);
    }
    /* ww, wb, bb */
    for (size_t i = 0; i < d; i++) {
        planar_scale(n, nc, Xp + i * cap, R);
        for (size_t j = i; j < d; j++)
            G[(d + i) * q + d + j] += planar_sumprod(n, R, Xp + j * cap);
        G[(d + i) * q + 2 * d] += planar_sum(n, R);
    }
    G[2 * d * q + 2 * d] += planar_sum(n, nc);
    for (size_t i = 0; i < q; i++) /* the lower triangle */
        for (size_t j = 0; j < i; j++)
            G[i * q + j] = G[j * q + i];
    /* A to the layer's input */
    for (size_t r = 0; r < d; r++)
        for (size_t j = 0; j < d; j++)
            planar_axpy(n, w[j], C + r * cap, A + (r * d + j) * cap);
}

/* The per-layer diagonal blocks of sum_n J_n^T J_n, (2 d + 1) x (2 d + 1) each, in one reverse
 * sweep over the tape. Under reparam the effective block G is taken to the raw parameters as
 * D^T G D, D = d(u_hat, w, b)/d(u, w, b) (the same for every sample). */
static int planar_gram_blocks(void *state, const double *theta, size_t n, void *tape, size_t *size,
                              double *Gout, wgf_error *err)
{
    const planar *m = state;
    size_t d = m->d, q = 2 * d + 1;
    /* the affine part's d^2 + d parameters are not a layer's block: the
     * core's fallback (jacobi probes, block runs unpreconditioned) */
    if (m->affine)
        return wgf_error_set(err, WGF_EUNSUP, "planar: no Gram blocks with affine = true");
    /* nor with the coordinatewise part, whose 3d parameters a layer block would have to take
     * in: the same fallback */
    if (m->cwise)
        return wgf_error_set(err, WGF_EUNSUP, "planar: no Gram blocks with coordinatewise = true");
    *size = q;
    if (!Gout)
        return WGF_OK;
    planar_tape *t = tape;
    int rc = planar_tape_ready(t, n, err);
    if (rc)
        return rc;
    size_t cap = t->cap;
    if (!t->gram) {
        t->gram = wgf_alloc_doubles((d * d + 3 * d + 1) * cap + 3 * q * q);
        if (!t->gram)
            return wgf_error_set(err, WGF_ENOMEM, "planar: out of memory for the Gram blocks");
    }
    rc = planar_effective(m, theta, &t->lay, err);
    if (rc)
        return rc;
    double *A = t->gram, *C = A + d * d * cap, *V = C + d * cap, *R = V + d * cap, *nc = R + d * cap;
    double *G = nc + cap, *D = G + q * q, *T = D + q * q;
    for (size_t r = 0; r < d; r++)
        for (size_t j = 0; j < d; j++)
            for (size_t s = 0; s < n; s++)
                A[(r * d + j) * cap + s] = r == j ? 1.0 : 0.0;
    for (size_t k = m->L; k-- > 0;) {
        memset(G, 0, q * q * sizeof *G);
        planar_gram_layer(m, t, k, n, theta, A, C, V, R, nc, G);
        double *out = Gout + k * q * q;
        if (m->mode != PLANAR_REPARAM) {
            for (size_t i = 0; i < q * q; i++)
                out[i] += G[i];
            continue;
        }
        /* D's columns: the forward mode of (u_hat, w, b) along each raw parameter */
        const double *ru = PLANAR_LAYER(theta, m, k), *rw = ru + d;
        memset(D, 0, q * q * sizeof *D);
        double *e = T, *duh = T + q; /* T is free until D is complete */
        for (size_t j = 0; j < 2 * d; j++) {
            memset(e, 0, 2 * d * sizeof *e);
            e[j] = 1.0;
            planar_reparam_jvp(d, ru, rw, e, e + d, duh);
            for (size_t i = 0; i < d; i++)
                D[i * q + j] = duh[i];
        }
        for (size_t i = d; i < q; i++)
            D[i * q + i] = 1.0;
        for (size_t i = 0; i < q; i++) /* T = G D */
            for (size_t j = 0; j < q; j++) {
                double acc = 0.0;
                for (size_t l = 0; l < q; l++)
                    acc += G[i * q + l] * D[l * q + j];
                T[i * q + j] = acc;
            }
        for (size_t i = 0; i < q; i++) /* out += D^T T */
            for (size_t j = 0; j < q; j++) {
                double acc = 0.0;
                for (size_t l = 0; l < q; l++)
                    acc += D[l * q + i] * T[l * q + j];
                out[i * q + j] += acc;
            }
    }
    return WGF_OK;
}

static const wgf_map_vt planar_vt = {
    .create = planar_create,
    .destroy = planar_destroy,
    .nparams = planar_nparams,
    .nstages = planar_nstages,
    .init = planar_init,
    .check = planar_check,
    .project = planar_project,
    .tape_create = planar_tape_create,
    .tape_destroy = planar_tape_destroy,
    .forward = planar_forward,
    .score = planar_score,
    .jvp = planar_jvp,
    .path_vjp = planar_path_vjp,
    .gaussian_push = NULL,
    .vjp_many = planar_vjp_many,
    .gram_blocks = planar_gram_blocks,
};

static const wgf_plugin planar_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_MAP,
    .name = "planar",
    .summary = "planar flow x + u tanh(w.x + b), L layers in stages of B, initialised to the identity",
    .params = planar_params,
    .vtable = &planar_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &planar_plugin : NULL;
}
