/* scaleshift.c: a map plugin built outside the wgf tree.
 *
 * K elementwise affine layers ("scale and shift"), one stage each:
 *
 *     x^(k) = exp(s_k) * x^(k-1) + b_k    (elementwise),   x^(0) = z,
 *
 * theta = [s_1, b_1, s_2, b_2, ..., s_K, b_K] (d numbers each), P = 2 d K.
 * The Jacobian of a layer is diag(exp(s_k)), so (MATH.md 1, 3)
 *
 *     ld^(k) = ld^(k-1) + sum_i s_k,i         (cumulative log|det|, ld^(0) = 0)
 *     s^(k)  = exp(-s_k) * s^(k-1)            (score: the inverse transpose
 *                                              Jacobian times the previous one)
 *
 * The map is affine, so N(m0, S0) is pushed to a Gaussian exactly
 * (gaussian_push), and for a Fokker-Planck equation with a quadratic
 * potential, diagonal Sigma and a diagonal initial covariance (an
 * Ornstein-Uhlenbeck process with independent coordinates) it contains the
 * exact solution. One layer is enough for that; more layers compose to the
 * same family, and show how a map with several stages fills them.
 *
 * Build:  make            (pkg-config finds the installed wgf)
 * Check:  make check      (wgf selftest scaleshift: every derivative by FD)
 * Use:    wgf run ou_diag.ini */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>

/* exp(s) of a whole map stays within [exp(-300), exp(300)], far from
 * overflow even when squared (a covariance): create() refuses
 * stages * max_log_scale above this. */
#define SCALESHIFT_TOTAL_LOG_SCALE 300.0

static const wgf_param scaleshift_params[] = {
    {"stages", WGF_PARAM_INT, "1", WGF_P_MIN, 1.0, 0.0, NULL,
     "K layers x <- exp(s) * x + b, one stage each (P = 2 d K)"},
    {"max_log_scale", WGF_PARAM_DOUBLE, "20", WGF_P_MIN | WGF_P_MIN_OPEN, 0.0, 0.0, NULL,
     "admissible parameters: |s_k,i| <= this (stages * max_log_scale <= 300)"},
    {"constraint", WGF_PARAM_CHOICE, "check", 0, 0.0, 0.0, "check|project",
     "a log-scale out of range: stop the run (check), or clip it to the range (project)"},
    {NULL, 0, NULL, 0, 0.0, 0.0, NULL, NULL}};

typedef struct scaleshift {
    size_t d, K;
    double smax; /* |s_k,i| <= smax */
    int project; /* constraint = project */
} scaleshift;

/* Everything one evaluation needs lives on the tape, never in the state:
 * the core runs blocks of samples on several threads, one tape each. */
typedef struct scaleshift_tape {
    size_t cap;     /* samples the tape holds */
    size_t n;       /* samples of the last forward (0: none yet) */
    int have_score; /* score() ran after that forward */
    double *in;     /* K x n x d: the input x^(k-1) of layer k */
    double *sc;     /* K x n x d: the score s^(k) after layer k */
    double *a;      /* K x d: exp(s_k) of the last forward */
    double *xb;     /* n x d: running cotangent of x^(k), path_vjp */
    double *sb;     /* n x d: running cotangent of s^(k), path_vjp */
} scaleshift_tape;

/* Layer k (0-based) of theta: its log-scales, then its shifts. */
static const double *layer_s(const scaleshift *m, const double *theta, size_t k)
{
    return theta + 2 * m->d * k;
}

static const double *layer_b(const scaleshift *m, const double *theta, size_t k)
{
    return theta + 2 * m->d * k + m->d;
}

/* ------------------------------------------------------------ life cycle */

static int scaleshift_create(const wgf_section *sec, const wgf_problem_info *info, void **state,
                             wgf_error *err)
{
    long K = wgf_section_int(sec, "stages");
    double smax = wgf_section_double(sec, "max_log_scale");
    size_t d = info->dim;

    /* Relations the schema cannot express are reported against the key,
     * with the experiment's file and line. */
    if ((double)K * smax > SCALESHIFT_TOTAL_LOG_SCALE)
        return wgf_section_error(sec, "max_log_scale", err,
                                 "stages * max_log_scale = %g exceeds %g (exp of it would overflow)",
                                 (double)K * smax, SCALESHIFT_TOTAL_LOG_SCALE);
    if (d == 0 || (size_t)K > SIZE_MAX / 2 / d)
        return wgf_section_error(sec, "stages", err, "%ld layers in dimension %zu: too many parameters",
                                 K, d);
    scaleshift *m = malloc(sizeof *m);
    if (m == NULL)
        return wgf_error_set(err, WGF_ENOMEM, "scaleshift: out of memory");
    m->d = d;
    m->K = (size_t)K;
    m->smax = smax;
    m->project = strcmp(wgf_section_string(sec, "constraint"), "project") == 0;
    *state = m;
    return WGF_OK;
}

static void scaleshift_destroy(void *state)
{
    free(state);
}

static size_t scaleshift_nparams(void *state)
{
    const scaleshift *m = state;
    return 2 * m->d * m->K;
}

static size_t scaleshift_nstages(void *state)
{
    const scaleshift *m = state;
    return m->K;
}

/* The identity: s = 0, b = 0. */
static int scaleshift_init(void *state, gsl_rng *rng, double *theta, wgf_error *err)
{
    (void)rng;
    (void)err;
    memset(theta, 0, scaleshift_nparams(state) * sizeof *theta);
    return WGF_OK;
}

/* Every number finite and every log-scale within [-smax, smax]. */
static int scaleshift_check(void *state, const double *theta, wgf_error *err)
{
    const scaleshift *m = state;
    size_t d = m->d;
    for (size_t k = 0; k < m->K; k++) {
        const double *s = layer_s(m, theta, k), *b = layer_b(m, theta, k);
        for (size_t i = 0; i < d; i++) {
            if (!(fabs(s[i]) <= m->smax))
                return wgf_error_set(err, WGF_ENUMERIC,
                                     "scaleshift: layer %zu: log-scale s[%zu] = %g is outside "
                                     "[-%g, %g] (take smaller steps, raise max_log_scale, or "
                                     "constraint = project)",
                                     k + 1, i + 1, s[i], m->smax, m->smax);
            if (!isfinite(b[i]))
                return wgf_error_set(err, WGF_ENUMERIC, "scaleshift: layer %zu: shift b[%zu] = %g is not finite",
                                     k + 1, i + 1, b[i]);
        }
    }
    return WGF_OK;
}

/* constraint = project: clip the log-scales into [-smax, smax] (the nearest
 * admissible theta). The core calls project whenever the vtable has it, so
 * the section's choice is made here; constraint = check leaves theta alone.
 * A NaN stays a NaN, for check to report. */
static int scaleshift_project(void *state, double *theta, wgf_error *err)
{
    const scaleshift *m = state;
    (void)err;
    if (!m->project)
        return WGF_OK;
    for (size_t k = 0; k < m->K; k++) {
        double *s = theta + 2 * m->d * k;
        for (size_t i = 0; i < m->d; i++)
            if (fabs(s[i]) > m->smax)
                s[i] = copysign(m->smax, s[i]);
    }
    return WGF_OK;
}

/* ------------------------------------------------------------ tapes */

static void scaleshift_tape_destroy(void *state, void *tape)
{
    scaleshift_tape *t = tape;
    (void)state;
    if (t == NULL)
        return;
    wgf_free(t->in);
    wgf_free(t->sc);
    wgf_free(t->a);
    wgf_free(t->xb);
    wgf_free(t->sb);
    free(t);
}

/* tape_create has no wgf_error: the core reports a NULL tape as "out of
 * memory", so NULL must mean exactly that. Sizes that would overflow are
 * memory the machine cannot give either. n = 0 is a valid, empty tape
 * (wgf_alloc_doubles returns NULL for 0 doubles, hence the + 1). */
static void *scaleshift_tape_create(void *state, size_t n)
{
    const scaleshift *m = state;
    size_t nd, knd;
    if (__builtin_mul_overflow(n, m->d, &nd) || __builtin_mul_overflow(nd, m->K, &knd) ||
        knd == SIZE_MAX)
        return NULL;
    scaleshift_tape *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->cap = n;
    t->in = wgf_alloc_doubles(knd + 1);
    t->sc = wgf_alloc_doubles(knd + 1);
    t->a = wgf_alloc_doubles(m->K * m->d);
    t->xb = wgf_alloc_doubles(nd + 1);
    t->sb = wgf_alloc_doubles(nd + 1);
    if (!t->in || !t->sc || !t->a || !t->xb || !t->sb) {
        scaleshift_tape_destroy(state, t);
        return NULL;
    }
    return t;
}

/* The derivative calls need a forward on this tape with at least n samples. */
static int scaleshift_tape_ready(const scaleshift_tape *t, size_t n, wgf_error *err)
{
    if (t == NULL)
        return wgf_error_set(err, WGF_EINVAL, "scaleshift: no tape");
    if (t->n == 0 || n != t->n)
        return wgf_error_set(err, WGF_EINVAL, "scaleshift: the tape holds %zu samples from forward(), %zu asked",
                             t->n, n);
    return WGF_OK;
}

/* ------------------------------------------------------------ evaluation */

/* Fills x[k] and ld[k] for every k = 0..K whose pointer is not NULL,
 * stage 0 included (x[0] = z, ld[0] = 0): the core does not ask for stage 0
 * (it has z), `wgf selftest` does. Records every layer's input on the tape. */
static int scaleshift_forward(void *state, const double *theta, size_t n, const double *z, void *tape,
                              double *const *x, double *const *ld, wgf_error *err)
{
    const scaleshift *m = state;
    scaleshift_tape *t = tape;
    size_t d = m->d, nd = n * d, K = m->K;

    if (t == NULL || n > t->cap)
        return wgf_error_set(err, WGF_EINVAL, "scaleshift: %zu samples on a tape for %zu", n,
                             t ? t->cap : 0);
    t->n = 0; /* until this forward succeeds, the tape holds nothing usable */
    t->have_score = 0;
    int rc = scaleshift_check(state, theta, err);
    if (rc != WGF_OK)
        return rc;
    if (x != NULL && x[0] != NULL)
        memcpy(x[0], z, nd * sizeof *z);
    if (ld != NULL && ld[0] != NULL)
        memset(ld[0], 0, n * sizeof *ld[0]);

    double ldsum = 0.0; /* ld^(k) is the same for every sample */
    memcpy(t->in, z, nd * sizeof *z);
    for (size_t k = 0; k < K; k++) {
        const double *s = layer_s(m, theta, k), *b = layer_b(m, theta, k);
        double *a = t->a + k * d;
        for (size_t i = 0; i < d; i++) {
            a[i] = exp(s[i]);
            ldsum += s[i];
        }
        /* the output of layer k is the input of layer k + 1 on the tape,
         * and otherwise goes only to x[k + 1] */
        const double *in = t->in + k * nd;
        double *out = k + 1 < K ? t->in + (k + 1) * nd : (x != NULL ? x[K] : NULL);
        if (out != NULL)
            for (size_t j = 0; j < n; j++)
                for (size_t i = 0; i < d; i++)
                    out[j * d + i] = a[i] * in[j * d + i] + b[i];
        if (x != NULL && x[k + 1] != NULL && x[k + 1] != out)
            memcpy(x[k + 1], out, nd * sizeof *out);
        if (ld != NULL && ld[k + 1] != NULL)
            for (size_t j = 0; j < n; j++)
                ld[k + 1][j] = ldsum;
    }
    t->n = n;
    return WGF_OK;
}

/* s^(k) = exp(-s_k) * s^(k-1) from s0 = grad log lambda(z), for every stage
 * (stage 0 is s0 itself); all of them go on the tape for path_vjp. */
static int scaleshift_score(void *state, const double *theta, size_t n, void *tape, const double *s0,
                            double *const *s, wgf_error *err)
{
    const scaleshift *m = state;
    scaleshift_tape *t = tape;
    size_t d = m->d, nd = n * d;
    (void)theta; /* the tape has exp(s_k) of the forward */
    int rc = scaleshift_tape_ready(t, n, err);
    if (rc != WGF_OK)
        return rc;
    if (s != NULL && s[0] != NULL)
        memcpy(s[0], s0, nd * sizeof *s0);
    for (size_t k = 0; k < m->K; k++) {
        const double *a = t->a + k * d, *prev = k == 0 ? s0 : t->sc + (k - 1) * nd;
        double *cur = t->sc + k * nd;
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < d; i++)
                cur[j * d + i] = prev[j * d + i] / a[i];
        if (s != NULL && s[k + 1] != NULL)
            memcpy(s[k + 1], cur, nd * sizeof *cur);
    }
    t->have_score = 1;
    return WGF_OK;
}

/* ------------------------------------------------------------ derivatives */

/* Tangent of the last stage along v = [ds_1, db_1, ...]:
 *     dx^(k) = a_k * (dx^(k-1) + ds_k * x^(k-1)) + db_k,   dx^(0) = 0,
 *     d ld^(K) = sum_k sum_i ds_k,i   (the same for every sample).
 * jx itself holds the running tangent. */
static int scaleshift_jvp(void *state, const double *theta, size_t n, void *tape, const double *v,
                          double *jx, double *jld, wgf_error *err)
{
    const scaleshift *m = state;
    scaleshift_tape *t = tape;
    size_t d = m->d, nd = n * d;
    (void)theta;
    int rc = scaleshift_tape_ready(t, n, err);
    if (rc != WGF_OK)
        return rc;
    double dld = 0.0;
    memset(jx, 0, nd * sizeof *jx);
    for (size_t k = 0; k < m->K; k++) {
        const double *a = t->a + k * d, *in = t->in + k * nd;
        const double *ds = layer_s(m, v, k), *db = layer_b(m, v, k);
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < d; i++)
                jx[j * d + i] = a[i] * (jx[j * d + i] + ds[i] * in[j * d + i]) + db[i];
        for (size_t i = 0; i < d; i++)
            dld += ds[i];
    }
    if (jld != NULL)
        for (size_t j = 0; j < n; j++)
            jld[j] = dld;
    return WGF_OK;
}

/* Cotangent k of an array of S + 1 (NULL array or NULL entry: zero). */
static const double *cot(const double *const *c, size_t k)
{
    return c != NULL ? c[k] : NULL;
}

/* One reverse sweep from stage K down to 1, with running cotangents X (of
 * x^(k)) and Sb (of s^(k)) to which each stage's own cotangents are added
 * as the sweep reaches it, and L = sum over stages >= k of the summed
 * ld-cotangents (ld^(k) contains s_k for every later stage too). At layer k:
 *     sbar_k += sum_n X * a_k * x^(k-1) - Sb * s^(k) + L,   bbar_k += sum_n X,
 *     X <- a_k * X,   Sb <- Sb / a_k.
 * ACCUMULATES into thetabar; stage 0 does not depend on theta. */
static int scaleshift_path_vjp(void *state, const double *theta, size_t n, void *tape,
                               const double *const *xbar, const double *const *ldbar,
                               const double *const *sbar, double *thetabar, wgf_error *err)
{
    const scaleshift *m = state;
    scaleshift_tape *t = tape;
    size_t d = m->d, nd = n * d, K = m->K;
    (void)theta;
    int rc = scaleshift_tape_ready(t, n, err);
    if (rc != WGF_OK)
        return rc;
    int with_s = 0;
    for (size_t k = 1; k <= K; k++)
        with_s |= cot(sbar, k) != NULL;
    if (with_s && !t->have_score)
        return wgf_error_set(err, WGF_EINVAL, "scaleshift: score cotangents need score() on this tape first");

    double *X = t->xb, *Sb = t->sb, L = 0.0;
    memset(X, 0, nd * sizeof *X);
    memset(Sb, 0, nd * sizeof *Sb);
    for (size_t k = K; k >= 1; k--) {
        const double *xk = cot(xbar, k), *lk = cot(ldbar, k), *sk = cot(sbar, k);
        const double *a = t->a + (k - 1) * d, *in = t->in + (k - 1) * nd, *sc = t->sc + (k - 1) * nd;
        double *gs = thetabar + 2 * d * (k - 1), *gb = gs + d;
        if (xk != NULL)
            for (size_t q = 0; q < nd; q++)
                X[q] += xk[q];
        if (sk != NULL)
            for (size_t q = 0; q < nd; q++)
                Sb[q] += sk[q];
        if (lk != NULL)
            for (size_t j = 0; j < n; j++)
                L += lk[j];
        for (size_t i = 0; i < d; i++)
            gs[i] += L;
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < d; i++) {
                size_t q = j * d + i;
                gs[i] += X[q] * a[i] * in[q];
                gb[i] += X[q];
                if (with_s)
                    gs[i] -= Sb[q] * sc[q];
                X[q] *= a[i];
                Sb[q] /= a[i];
            }
    }
    return WGF_OK;
}

/* The whole map is x = c + D z with D = diag(prod_k a_k) and c built layer
 * by layer (c <- a_k * c + b_k): N(m0, S0) goes to N(D m0 + c, D S0 D). */
static int scaleshift_gaussian_push(void *state, const double *theta, const double *m0,
                                    const double *S0, double *mean, double *S, wgf_error *err)
{
    const scaleshift *m = state;
    size_t d = m->d;
    int rc = scaleshift_check(state, theta, err);
    if (rc != WGF_OK)
        return rc;
    double *D = malloc(2 * d * sizeof *D);
    if (D == NULL)
        return wgf_error_set(err, WGF_ENOMEM, "scaleshift: out of memory");
    double *c = D + d;
    for (size_t i = 0; i < d; i++) {
        D[i] = 1.0;
        c[i] = 0.0;
    }
    for (size_t k = 0; k < m->K; k++) {
        const double *s = layer_s(m, theta, k), *b = layer_b(m, theta, k);
        for (size_t i = 0; i < d; i++) {
            double a = exp(s[i]);
            D[i] *= a;
            c[i] = a * c[i] + b[i];
        }
    }
    for (size_t i = 0; i < d; i++) {
        mean[i] = D[i] * m0[i] + c[i];
        for (size_t j = 0; j < d; j++)
            S[i * d + j] = D[i] * S0[i * d + j] * D[j];
    }
    free(D);
    return WGF_OK;
}

/* Designated initialisers: members appended to wgf_map_vt by a later ABI
 * are NULL here, which the core reads as "not provided". */
static const wgf_map_vt scaleshift_vt = {
    .create = scaleshift_create,
    .destroy = scaleshift_destroy,
    .nparams = scaleshift_nparams,
    .nstages = scaleshift_nstages,
    .init = scaleshift_init,
    .check = scaleshift_check,
    .project = scaleshift_project,
    .tape_create = scaleshift_tape_create,
    .tape_destroy = scaleshift_tape_destroy,
    .forward = scaleshift_forward,
    .score = scaleshift_score,
    .jvp = scaleshift_jvp,
    .path_vjp = scaleshift_path_vjp,
    .gaussian_push = scaleshift_gaussian_push,
};

static const wgf_plugin scaleshift_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_MAP,
    .name = "scaleshift",
    .summary = "elementwise affine layers x <- exp(s) * x + b, initialised to the identity",
    .params = scaleshift_params,
    .vtable = &scaleshift_vt,
};

/* The one symbol the shared object exports (the Makefile hides the rest). */
WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &scaleshift_plugin : NULL;
}
