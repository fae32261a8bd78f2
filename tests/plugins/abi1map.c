/* abi1map.c: the affine map T(z) = A z + b of plugins/maps/affine.c (theta = [A row-major, b],
 * initially the identity, one stage), built against the frozen ABI-1 headers
 * (tests/plugins/abi1). No score, projection or Gaussian push: what the tests need of an ABI-1
 * map is its mandatory members. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>

#include <wgf/plugin.h>

typedef struct {
    size_t d;
} aff;

typedef struct {
    size_t cap;
    double ld;     /* log|det A| */
    double *z;     /* cap x d */
    double *ainv;  /* d x d */
    double *lu;    /* d x d */
    gsl_permutation *perm;
} aff_tape;

static int aff_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec;
    aff *m = malloc(sizeof *m);
    if (!m)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    m->d = info->dim;
    *state = m;
    return WGF_OK;
}

static void aff_destroy(void *state) { free(state); }
static size_t aff_nparams(void *state) { return ((aff *)state)->d * (((aff *)state)->d + 1); }
static size_t aff_nstages(void *state)
{
    (void)state;
    return 1;
}

static int aff_init(void *state, gsl_rng *rng, double *theta, wgf_error *err)
{
    (void)rng;
    (void)err;
    size_t d = ((aff *)state)->d;
    memset(theta, 0, d * (d + 1) * sizeof *theta);
    for (size_t i = 0; i < d; i++)
        theta[i * d + i] = 1.0;
    return WGF_OK;
}

/* LU of A into lu, perm; log|det A| in *ld. WGF_ENUMERIC when a pivot is zero or not finite. */
static int aff_factor(size_t d, const double *A, double *lu, gsl_permutation *perm, double *ld,
                      wgf_error *err)
{
    memcpy(lu, A, d * d * sizeof *lu);
    gsl_matrix_view m = gsl_matrix_view_array(lu, d, d);
    int signum;
    gsl_linalg_LU_decomp(&m.matrix, perm, &signum);
    double s = 0;
    for (size_t i = 0; i < d; i++) {
        double p = fabs(lu[i * d + i]);
        if (!(p > 0) || !isfinite(p))
            return wgf_error_set(err, WGF_ENUMERIC, "abi1map: A is singular (pivot %zu)", i + 1);
        s += log(p);
    }
    *ld = s;
    return WGF_OK;
}

static int aff_check(void *state, const double *theta, wgf_error *err)
{
    size_t d = ((aff *)state)->d;
    double *lu = malloc(d * d * sizeof *lu), ld;
    gsl_permutation *perm = gsl_permutation_alloc(d);
    int rc = lu && perm ? aff_factor(d, theta, lu, perm, &ld, err)
                        : wgf_error_set(err, WGF_ENOMEM, "out of memory");
    free(lu);
    if (perm)
        gsl_permutation_free(perm);
    return rc;
}

static void aff_tape_destroy(void *state, void *tape)
{
    (void)state;
    aff_tape *t = tape;
    if (!t)
        return;
    free(t->z);
    free(t->ainv);
    free(t->lu);
    if (t->perm)
        gsl_permutation_free(t->perm);
    free(t);
}

static void *aff_tape_create(void *state, size_t n)
{
#ifdef NULL_TAPE /* nulltape.so: a map whose tapes cannot be had (guide-map.md: NULL is out of memory) */
    (void)state;
    (void)n;
    return NULL;
#endif
    size_t d = ((aff *)state)->d;
    aff_tape *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cap = n;
    t->z = malloc(n * d * sizeof *t->z);
    t->ainv = malloc(d * d * sizeof *t->ainv);
    t->lu = malloc(d * d * sizeof *t->lu);
    t->perm = gsl_permutation_alloc(d);
    if (!t->z || !t->ainv || !t->lu || !t->perm) {
        aff_tape_destroy(state, t);
        return NULL;
    }
    return t;
}

static int aff_forward(void *state, const double *theta, size_t n, const double *z, void *tape,
                       double *const *x, double *const *ld, wgf_error *err)
{
    size_t d = ((aff *)state)->d;
    aff_tape *t = tape;
    int rc = aff_factor(d, theta, t->lu, t->perm, &t->ld, err);
    if (rc != WGF_OK)
        return rc;
    gsl_matrix_view lu = gsl_matrix_view_array(t->lu, d, d), inv = gsl_matrix_view_array(t->ainv, d, d);
    gsl_linalg_LU_invert(&lu.matrix, t->perm, &inv.matrix);
    memcpy(t->z, z, n * d * sizeof *z);
    const double *A = theta, *b = theta + d * d;
    if (x && x[0])
        memcpy(x[0], z, n * d * sizeof *z);
    if (ld && ld[0])
        memset(ld[0], 0, n * sizeof *ld[0]);
    for (size_t k = 0; k < n; k++) {
        if (x && x[1])
            for (size_t i = 0; i < d; i++) {
                double s = b[i];
                for (size_t j = 0; j < d; j++)
                    s += A[i * d + j] * z[k * d + j];
                x[1][k * d + i] = s;
            }
        if (ld && ld[1])
            ld[1][k] = t->ld;
    }
    return WGF_OK;
}

static int aff_jvp(void *state, const double *theta, size_t n, void *tape, const double *v, double *jx,
                   double *jld, wgf_error *err)
{
    (void)theta;
    (void)err;
    size_t d = ((aff *)state)->d;
    aff_tape *t = tape;
    const double *dA = v, *db = v + d * d;
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < d; i++) {
            double s = db[i];
            for (size_t j = 0; j < d; j++)
                s += dA[i * d + j] * t->z[k * d + j];
            jx[k * d + i] = s;
        }
    if (jld) {
        double tr = 0; /* d log|det A| = tr(A^-1 dA) */
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                tr += t->ainv[j * d + i] * dA[i * d + j];
        for (size_t k = 0; k < n; k++)
            jld[k] = tr;
    }
    return WGF_OK;
}

static int aff_path_vjp(void *state, const double *theta, size_t n, void *tape, const double *const *xbar,
                        const double *const *ldbar, const double *const *sbar, double *thetabar,
                        wgf_error *err)
{
    (void)theta;
    size_t d = ((aff *)state)->d;
    aff_tape *t = tape;
    if (sbar && (sbar[0] || sbar[1]))
        return wgf_error_set(err, WGF_EUNSUP, "abi1map: no scores");
    double *Abar = thetabar, *bbar = thetabar + d * d;
    if (xbar && xbar[1])
        for (size_t k = 0; k < n; k++)
            for (size_t i = 0; i < d; i++) {
                double xb = xbar[1][k * d + i];
                bbar[i] += xb;
                for (size_t j = 0; j < d; j++)
                    Abar[i * d + j] += xb * t->z[k * d + j];
            }
    if (ldbar && ldbar[1]) {
        double s = 0; /* d log|det A| / dA = A^-T */
        for (size_t k = 0; k < n; k++)
            s += ldbar[1][k];
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                Abar[i * d + j] += s * t->ainv[j * d + i];
    }
    return WGF_OK;
}

static const wgf_map_vt aff_vt = {
    .create = aff_create,
    .destroy = aff_destroy,
    .nparams = aff_nparams,
    .nstages = aff_nstages,
    .init = aff_init,
    .check = aff_check,
    .tape_create = aff_tape_create,
    .tape_destroy = aff_tape_destroy,
    .forward = aff_forward,
    .jvp = aff_jvp,
    .path_vjp = aff_path_vjp,
};

static const wgf_param aff_params[] = {{NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin aff_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_MAP,
#ifdef NULL_TAPE
    .name = "nulltape",
    .summary = "fixture: the affine map A z + b whose tape_create returns NULL",
#else
    .name = "abi1map",
    .summary = "ABI-1 fixture: the affine map A z + b",
#endif
    .params = aff_params,
    .vtable = &aff_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &aff_plugin : NULL; }
