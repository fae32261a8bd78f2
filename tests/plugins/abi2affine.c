/* abi2affine.c: plugins/maps/affine.c as it was at plugin ABI 2 (commit 829e3a6), renamed
 * abi2affine (name and summary), built against the frozen ABI-2 headers (tests/plugins/abi2): a
 * map binary whose vtable ends at vjp_many, without the gram_blocks ABI 3 appended.
 *
 * The affine map T(z) = A z + b (MATH.md 3.1). theta = [A row-major (d x d), b (d)], P = d^2 + d,
 * one stage. The log-determinant log|det A| is the same for every sample; it and A^{-1} come from
 * one LU factorisation (GSL) per forward call, kept on the tape so that tapes used by different
 * threads never share a workspace. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_permutation.h>

#include <wgf/plugin.h>

typedef struct affine {
    size_t d;
} affine;

typedef struct affine_tape {
    size_t cap;        /* samples the tape holds */
    size_t n;          /* samples of the last forward (0: none yet) */
    int have_score;    /* score() ran after the last forward */
    double ld;         /* log|det A| */
    double *z;         /* n x d, the inputs */
    double *s;         /* n x d, the scores of stage 1 */
    double *lu;        /* d x d, LU factors of A */
    double *ainv;      /* d x d, A^{-1} */
    double *work;      /* d, scratch */
    gsl_permutation *perm;
} affine_tape;

/* ------------------------------------------------------------ helpers */

/* LU-factorise A (d x d, row-major) into lu; on success, *ld = log|det A|.
 * WGF_ENUMERIC when A has a non-finite entry or is singular to working
 * precision: a pivot of at most d u max|A_ij| (u the unit roundoff) is what
 * partial pivoting leaves of an exactly singular matrix, and the map's
 * inverse would be meaningless past that. This also ensures that
 * gsl_linalg_LU_invert (whose singular case would go to the GSL error
 * handler) only sees invertible factors. */
static int affine_factor(size_t d, const double *A, double *lu, gsl_permutation *perm, double *ld,
                         wgf_error *err)
{
    double amax = 0.0;
    for (size_t i = 0; i < d * d; i++) {
        if (!isfinite(A[i]))
            return wgf_error_set(err, WGF_ENUMERIC,
                                 "affine: A[%zu][%zu] = %g is not finite (the map is undefined)",
                                 i / d + 1, i % d + 1, A[i]);
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
                                 "affine: A is singular (pivot %zu of %zu in its LU factorisation "
                                 "is %.3g, max|A_ij| = %.3g): the map is not invertible (start from "
                                 "an invertible A, or take smaller steps)",
                                 i + 1, d, p, amax);
        sum += log(fabs(p));
    }
    *ld = sum;
    return WGF_OK;
}

static int affine_tape_ready(const affine_tape *t, size_t n, wgf_error *err)
{
    if (!t)
        return wgf_error_set(err, WGF_EINVAL, "affine: no tape");
    if (t->n == 0 || n > t->n)
        return wgf_error_set(err, WGF_EINVAL,
                             "affine: the tape holds %zu samples from forward(), %zu asked", t->n, n);
    return WGF_OK;
}

/* ------------------------------------------------------------ vtable */

static int affine_create(const wgf_section *sec, const wgf_problem_info *info, void **state,
                         wgf_error *err)
{
    (void)sec;
    if (!info || info->dim == 0)
        return wgf_error_set(err, WGF_EINVAL, "affine: the dimension must be at least 1");
    affine *m = malloc(sizeof *m);
    if (!m)
        return wgf_error_set(err, WGF_ENOMEM, "affine: out of memory");
    m->d = info->dim;
    *state = m;
    return WGF_OK;
}

static void affine_destroy(void *state)
{
    free(state);
}

static size_t affine_nparams(void *state)
{
    const affine *m = state;
    return m->d * m->d + m->d;
}

static size_t affine_nstages(void *state)
{
    (void)state;
    return 1;
}

static int affine_init(void *state, gsl_rng *rng, double *theta, wgf_error *err)
{
    (void)rng;
    (void)err;
    const affine *m = state;
    size_t d = m->d;
    memset(theta, 0, (d * d + d) * sizeof *theta);
    for (size_t i = 0; i < d; i++)
        theta[i * d + i] = 1.0;
    return WGF_OK;
}

static int affine_check(void *state, const double *theta, wgf_error *err)
{
    const affine *m = state;
    size_t d = m->d;
    for (size_t i = 0; i < d; i++)
        if (!isfinite(theta[d * d + i]))
            return wgf_error_set(err, WGF_ENUMERIC, "affine: b[%zu] = %g is not finite", i + 1,
                                 theta[d * d + i]);
    double *lu = malloc(d * d * sizeof *lu);
    gsl_permutation *perm = gsl_permutation_alloc(d);
    int rc;
    if (!lu || !perm) {
        rc = wgf_error_set(err, WGF_ENOMEM, "affine: out of memory");
    } else {
        double ld = 0.0;
        rc = affine_factor(d, theta, lu, perm, &ld, err);
    }
    free(lu);
    if (perm)
        gsl_permutation_free(perm);
    return rc;
}

static void affine_tape_destroy(void *state, void *tape)
{
    (void)state;
    affine_tape *t = tape;
    if (!t)
        return;
    wgf_free(t->z);
    wgf_free(t->s);
    wgf_free(t->lu);
    wgf_free(t->ainv);
    wgf_free(t->work);
    if (t->perm)
        gsl_permutation_free(t->perm);
    free(t);
}

static void *affine_tape_create(void *state, size_t n)
{
    const affine *m = state;
    size_t d = m->d;
    if (n == 0)
        return NULL;
    affine_tape *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cap = n;
    t->z = wgf_alloc_doubles(n * d);
    t->s = wgf_alloc_doubles(n * d);
    t->lu = wgf_alloc_doubles(d * d);
    t->ainv = wgf_alloc_doubles(d * d);
    t->work = wgf_alloc_doubles(d);
    t->perm = gsl_permutation_alloc(d);
    if (!t->z || !t->s || !t->lu || !t->ainv || !t->work || !t->perm) {
        affine_tape_destroy(state, t);
        return NULL;
    }
    return t;
}

static int affine_forward(void *state, const double *theta, size_t n, const double *z, void *tape,
                          double *const *x, double *const *ld, wgf_error *err)
{
    const affine *m = state;
    affine_tape *t = tape;
    size_t d = m->d;
    const double *A = theta, *b = theta + d * d;
    if (!t || n > t->cap)
        return wgf_error_set(err, WGF_EINVAL, "affine: %zu samples on a tape for %zu", n,
                             t ? t->cap : 0);
    t->n = 0;
    t->have_score = 0;
    int rc = affine_factor(d, A, t->lu, t->perm, &t->ld, err);
    if (rc)
        return rc;
    gsl_matrix_view lu = gsl_matrix_view_array(t->lu, d, d);
    gsl_matrix_view inv = gsl_matrix_view_array(t->ainv, d, d);
    gsl_linalg_LU_invert(&lu.matrix, t->perm, &inv.matrix);
    memcpy(t->z, z, n * d * sizeof *z);
    t->n = n;

    if (x && x[0])
        memcpy(x[0], z, n * d * sizeof *z);
    if (ld && ld[0])
        memset(ld[0], 0, n * sizeof *ld[0]);
    if (x && x[1]) {
        double *y = x[1];
        for (size_t s = 0; s < n; s++) {
            const double *zs = z + s * d;
            for (size_t i = 0; i < d; i++) {
                const double *Ai = A + i * d;
                double acc = b[i];
                for (size_t j = 0; j < d; j++)
                    acc += Ai[j] * zs[j];
                y[s * d + i] = acc;
            }
        }
    }
    if (ld && ld[1])
        for (size_t s = 0; s < n; s++)
            ld[1][s] = t->ld;
    return WGF_OK;
}

/* s = A^{-T} s0 (MATH.md 3.1): the log-determinant is constant in z, so
 * the score only changes by the inverse transpose of the Jacobian. */
static int affine_score(void *state, const double *theta, size_t n, void *tape, const double *s0,
                        double *const *s, wgf_error *err)
{
    (void)theta;
    const affine *m = state;
    affine_tape *t = tape;
    size_t d = m->d;
    int rc = affine_tape_ready(t, n, err);
    if (rc)
        return rc;
    const double *Ai = t->ainv;
    for (size_t k = 0; k < n; k++) {
        double *sk = t->s + k * d;
        const double *s0k = s0 + k * d;
        memset(sk, 0, d * sizeof *sk);
        for (size_t j = 0; j < d; j++) {
            const double *row = Ai + j * d; /* (A^{-T})_{ij} = (A^{-1})_{ji} */
            double v = s0k[j];
            for (size_t i = 0; i < d; i++)
                sk[i] += row[i] * v;
        }
    }
    t->have_score = 1;
    if (s && s[0])
        memcpy(s[0], s0, n * d * sizeof *s0);
    if (s && s[1])
        memcpy(s[1], t->s, n * d * sizeof *s0);
    return WGF_OK;
}

/* J v = dA z + db; d log|det A| = tr(A^{-1} dA). */
static int affine_jvp(void *state, const double *theta, size_t n, void *tape, const double *v,
                      double *jx, double *jld, wgf_error *err)
{
    (void)theta;
    const affine *m = state;
    affine_tape *t = tape;
    size_t d = m->d;
    int rc = affine_tape_ready(t, n, err);
    if (rc)
        return rc;
    const double *dA = v, *db = v + d * d;
    for (size_t k = 0; k < n; k++) {
        const double *zk = t->z + k * d;
        for (size_t i = 0; i < d; i++) {
            const double *row = dA + i * d;
            double acc = db[i];
            for (size_t j = 0; j < d; j++)
                acc += row[j] * zk[j];
            jx[k * d + i] = acc;
        }
    }
    if (jld) {
        double tr = 0.0;
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                tr += t->ainv[j * d + i] * dA[i * d + j];
        for (size_t k = 0; k < n; k++)
            jld[k] = tr;
    }
    return WGF_OK;
}

/* Reverse pass (MATH.md 3.1, with ldbar the cotangent of +log|det A|):
 *   Abar += sum_n xbar_n z_n^T + (sum_n ldbar_n) A^{-T} - sum_n s_n (A^{-1} sbar_n)^T,
 *   bbar += sum_n xbar_n.
 * Stage 0 (z, 0, s0) does not depend on theta. */
static int affine_path_vjp(void *state, const double *theta, size_t n, void *tape,
                           const double *const *xbar, const double *const *ldbar,
                           const double *const *sbar, double *thetabar, wgf_error *err)
{
    (void)theta;
    const affine *m = state;
    affine_tape *t = tape;
    size_t d = m->d;
    int rc = affine_tape_ready(t, n, err);
    if (rc)
        return rc;
    double *Abar = thetabar, *bbar = thetabar + d * d;
    const double *xb = xbar ? xbar[1] : NULL;
    const double *lb = ldbar ? ldbar[1] : NULL;
    const double *sb = sbar ? sbar[1] : NULL;
    if (xb) {
        for (size_t k = 0; k < n; k++) {
            const double *xk = xb + k * d, *zk = t->z + k * d;
            for (size_t i = 0; i < d; i++) {
                double xi = xk[i];
                double *row = Abar + i * d;
                for (size_t j = 0; j < d; j++)
                    row[j] += xi * zk[j];
                bbar[i] += xi;
            }
        }
    }
    if (lb) {
        double sum = 0.0;
        for (size_t k = 0; k < n; k++)
            sum += lb[k];
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                Abar[i * d + j] += sum * t->ainv[j * d + i];
    }
    if (sb) {
        if (!t->have_score)
            return wgf_error_set(err, WGF_EINVAL,
                                 "affine: score cotangents need score() on this tape first");
        double *y = t->work;
        for (size_t k = 0; k < n; k++) {
            const double *sbk = sb + k * d, *sk = t->s + k * d;
            for (size_t i = 0; i < d; i++) {
                const double *row = t->ainv + i * d;
                double acc = 0.0;
                for (size_t j = 0; j < d; j++)
                    acc += row[j] * sbk[j];
                y[i] = acc;
            }
            for (size_t i = 0; i < d; i++) {
                double si = sk[i];
                double *row = Abar + i * d;
                for (size_t j = 0; j < d; j++)
                    row[j] -= si * y[j];
            }
        }
    }
    return WGF_OK;
}

/* k cotangent sets of the last stage in one pass over the tape: each sample's z and s are read
 * once for all sets, and the log-determinant term is one A^{-T} per set. The same sums as
 * affine_path_vjp per set, added in another order. */
static int affine_vjp_many(void *state, const double *theta, size_t n, void *tape, size_t k,
                           const double *const *xbar, const double *const *ldbar,
                           const double *const *sbar, double *const *thetabar, wgf_error *err)
{
    (void)theta;
    const affine *m = state;
    affine_tape *t = tape;
    size_t d = m->d;
    int rc = affine_tape_ready(t, n, err);
    if (rc)
        return rc;
    for (size_t j = 0; j < k; j++) {
        if (sbar && sbar[j] && !t->have_score)
            return wgf_error_set(err, WGF_EINVAL,
                                 "affine: score cotangents need score() on this tape first");
        if (!ldbar || !ldbar[j])
            continue;
        double sum = 0.0, *Abar = thetabar[j];
        for (size_t s = 0; s < n; s++)
            sum += ldbar[j][s];
        for (size_t i = 0; i < d; i++)
            for (size_t c = 0; c < d; c++)
                Abar[i * d + c] += sum * t->ainv[c * d + i];
    }
    double *y = t->work;
    for (size_t s = 0; s < n; s++) {
        const double *zs = t->z + s * d, *ss = t->s + s * d;
        for (size_t j = 0; j < k; j++) {
            double *Abar = thetabar[j], *bbar = Abar + d * d;
            if (xbar && xbar[j]) {
                const double *xs = xbar[j] + s * d;
                for (size_t i = 0; i < d; i++) {
                    double xi = xs[i], *row = Abar + i * d;
                    for (size_t c = 0; c < d; c++)
                        row[c] += xi * zs[c];
                    bbar[i] += xi;
                }
            }
            if (sbar && sbar[j]) {
                const double *sbs = sbar[j] + s * d;
                for (size_t i = 0; i < d; i++) {
                    const double *row = t->ainv + i * d;
                    double acc = 0.0;
                    for (size_t c = 0; c < d; c++)
                        acc += row[c] * sbs[c];
                    y[i] = acc;
                }
                for (size_t i = 0; i < d; i++) {
                    double si = ss[i], *row = Abar + i * d;
                    for (size_t c = 0; c < d; c++)
                        row[c] -= si * y[c];
                }
            }
        }
    }
    return WGF_OK;
}

/* N(m0, S0) pushed by z -> A z + b is N(A m0 + b, A S0 A^T), exactly. */
static int affine_gaussian_push(void *state, const double *theta, const double *m0,
                                const double *S0, double *mean, double *S, wgf_error *err)
{
    const affine *m = state;
    size_t d = m->d;
    const double *A = theta, *b = theta + d * d;
    double *AS = malloc(d * d * sizeof *AS);
    if (!AS)
        return wgf_error_set(err, WGF_ENOMEM, "affine: out of memory");
    for (size_t i = 0; i < d; i++) {
        double acc = b[i];
        for (size_t j = 0; j < d; j++)
            acc += A[i * d + j] * m0[j];
        mean[i] = acc;
    }
    /* AS = A S0 by rows of S0 (i, k, j order): the same sums in the same
     * order as a dot product per entry, without walking S0 down its columns
     * (a stride of d: minutes at d = 2000) */
    for (size_t i = 0; i < d; i++) {
        double *asi = AS + i * d;
        for (size_t j = 0; j < d; j++)
            asi[j] = 0.0;
        for (size_t k = 0; k < d; k++) {
            double a = A[i * d + k];
            const double *s0k = S0 + k * d;
            for (size_t j = 0; j < d; j++)
                asi[j] += a * s0k[j];
        }
    }
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double acc = 0.0;
            for (size_t k = 0; k < d; k++)
                acc += AS[i * d + k] * A[j * d + k];
            S[i * d + j] = acc;
        }
    /* Symmetric to the last bit, whatever the rounding above. */
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < i; j++) {
            double v = 0.5 * (S[i * d + j] + S[j * d + i]);
            S[i * d + j] = S[j * d + i] = v;
        }
    free(AS);
    return WGF_OK;
}

static const wgf_map_vt affine_vt = {
    .create = affine_create,
    .destroy = affine_destroy,
    .nparams = affine_nparams,
    .nstages = affine_nstages,
    .init = affine_init,
    .check = affine_check,
    .project = NULL,
    .tape_create = affine_tape_create,
    .tape_destroy = affine_tape_destroy,
    .forward = affine_forward,
    .score = affine_score,
    .jvp = affine_jvp,
    .path_vjp = affine_path_vjp,
    .gaussian_push = affine_gaussian_push,
    .vjp_many = affine_vjp_many,
};

static const wgf_param affine_params[] = {{0}};

static const wgf_plugin affine_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_MAP,
    .name = "abi2affine",
    .summary = "ABI-2 fixture: the affine map A z + b as it was at ABI 2",
    .params = affine_params,
    .vtable = &affine_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &affine_plugin : NULL;
}
