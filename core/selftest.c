/* selftest.c: derivative checks of an energy or map plugin against finite
 * differences at random points (wgf/selftest.h).
 *
 * Finite differences. Every reference derivative is a central difference
 * D(h) = (f(p + h v) - f(p - h v)) / 2h, refined by Ridders' extrapolation
 * (D at h0, h0/1.4, h0/1.4^2, ... extrapolated to h -> 0 in the Neville
 * tableau, keeping for each output the entry with the smallest error
 * estimate; Numerical Recipes 5.7). h0 = 1e-3 times the size of the point
 * (at least 1e-3). A single central difference at h = 1e-5 has a truncation
 * error h^2 |f'''| / 6 that is 1e-10 relative for data of order one but
 * reaches 1e-4 where the point is badly scaled (a planar layer under
 * reparam with |w| ~ 0.01, whose u_hat varies like 1/|w|); the
 * extrapolation removes the h^2, h^4, ... terms and ends near the rounding
 * level u |f| / h ~ 1e-12, so a correct derivative agrees to ~1e-10 at any
 * reasonable point, while a wrong term or sign shows at 1e-3..1.
 *
 * Tolerances. WGF_SELFTEST_TOL = 1e-6 for comparisons with finite
 * differences: four orders above what correct derivatives reach, far below
 * what a bug gives. Identities without finite differences (the dot-product
 * test of jvp against path_vjp) hold to rounding: WGF_SELFTEST_TOL_EXACT = 1e-9.
 *
 * Errors are relative, max|a - b| / max(1, max|b|) over the compared
 * entries: absolute for small values, where rounding of the difference
 * quotient dominates, relative for large ones. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "wgf/config.h"
#include "wgf/plugin.h"
#include "wgf/registry.h"
#include "wgf/rng.h"
#include "wgf/selftest.h"

#define WGF_SELFTEST_TOL 1e-6
#define WGF_SELFTEST_TOL_EXACT 1e-9
#define ST_H0 1e-4    /* first step of the extrapolation */
#define ST_NTAB 10    /* steps h0 / ST_CON^i, i < ST_NTAB */
#define ST_CON 2.0    /* step ratio */
#define ST_SAFE 2.0   /* stop when the tableau's error grows by this */
#define ST_DIRS 2     /* random directions in theta */
#define ST_FAMILY 0x5e1f7e57ul /* random stream family of the selftest */

/* ------------------------------------------------------------ bookkeeping */

/* Every allocation of one selftest, freed together. */
typedef struct st_pool {
    void **p;
    size_t n, cap;
    int failed;
} st_pool;

static void *st_alloc(st_pool *pool, size_t bytes)
{
    if (pool->n == pool->cap) {
        size_t cap = pool->cap ? 2 * pool->cap : 32;
        void **np = realloc(pool->p, cap * sizeof *np);
        if (!np) {
            pool->failed = 1;
            return NULL;
        }
        pool->p = np;
        pool->cap = cap;
    }
    void *a = calloc(1, bytes ? bytes : 1);
    if (!a) {
        pool->failed = 1;
        return NULL;
    }
    pool->p[pool->n++] = a;
    return a;
}

static double *st_doubles(st_pool *pool, size_t n)
{
    return st_alloc(pool, n * sizeof(double));
}

static void st_pool_free(st_pool *pool)
{
    for (size_t i = 0; i < pool->n; i++)
        free(pool->p[i]);
    free(pool->p);
    memset(pool, 0, sizeof *pool);
}

typedef struct st_report {
    FILE *out;
    double worst;
    int failed;
} st_report;

static void st_line(st_report *r, const char *what, double e, double tol)
{
    int ok = e <= tol; /* NaN fails */
    if (!ok)
        r->failed = 1;
    if (!(e <= r->worst))
        r->worst = e;
    if (r->out)
        fprintf(r->out, "  %-52s %10.2e  tol %7.1e  %s\n", what, e, tol, ok ? "PASS" : "FAIL");
}

/* max that keeps a NaN (fmax drops it). */
static double st_worse(double a, double b)
{
    return isnan(a) || isnan(b) ? NAN : (a > b ? a : b);
}

/* max|a - b| / max(1, max|b|) over n entries; NaN if any entry is NaN. */
static double st_relerr(size_t n, const double *a, const double *b)
{
    double num = 0.0, den = 1.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]);
        if (isnan(e))
            return NAN;
        if (e > num)
            num = e;
        if (fabs(b[i]) > den)
            den = fabs(b[i]);
    }
    return num / den;
}

static double st_rel1(double a, double b)
{
    return st_relerr(1, &a, &b);
}

static double st_dot(size_t n, const double *a, const double *b)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void st_gauss(gsl_rng *rng, size_t n, double mean, double sd, double *a)
{
    for (size_t i = 0; i < n; i++)
        a[i] = mean + gsl_ran_gaussian(rng, sd);
}

static double st_maxabs(size_t n, const double *a)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m)
            m = fabs(a[i]);
    return m;
}

/* ------------------------------------------------------------ Ridders */

/* f(t) -> out (len doubles): a function of one real variable. */
typedef int (*st_fn)(void *ctx, double t, double *out, wgf_error *err);

typedef struct st_fd {
    size_t len;
    double *prev, *cur; /* ST_NTAB x len: two columns of the tableau */
    double *fp, *fm;    /* len */
    double *errest;     /* len */
    unsigned char *done;
} st_fd;

static int st_fd_init(st_fd *fd, st_pool *pool, size_t len)
{
    fd->len = len;
    fd->prev = st_doubles(pool, ST_NTAB * len);
    fd->cur = st_doubles(pool, ST_NTAB * len);
    fd->fp = st_doubles(pool, len);
    fd->fm = st_doubles(pool, len);
    fd->errest = st_doubles(pool, len);
    fd->done = st_alloc(pool, len);
    return pool->failed ? WGF_ENOMEM : WGF_OK;
}

/* deriv = f'(0) for every output, by Ridders' extrapolation of central
 * differences with steps h0, h0/ST_CON, ... */
static int st_ridders(st_fd *fd, st_fn f, void *ctx, double h0, double *deriv, wgf_error *err)
{
    size_t len = fd->len;
    double *prev = fd->prev, *cur = fd->cur;
    const double con2 = ST_CON * ST_CON;
    memset(fd->done, 0, len);
    for (size_t c = 0; c < len; c++)
        fd->errest[c] = HUGE_VAL;
    double h = h0;
    for (int i = 0; i < ST_NTAB; i++, h /= ST_CON) {
        int rc = f(ctx, h, fd->fp, err);
        if (rc == WGF_OK)
            rc = f(ctx, -h, fd->fm, err);
        if (rc)
            return rc;
        size_t active = 0;
        for (size_t c = 0; c < len; c++) {
            cur[c] = (fd->fp[c] - fd->fm[c]) / (2.0 * h);
            if (fd->done[c])
                continue;
            if (i == 0) {
                deriv[c] = cur[c];
                active++;
                continue;
            }
            double fac = con2;
            for (int j = 1; j <= i; j++, fac *= con2) {
                double aj = (cur[(j - 1) * len + c] * fac - prev[(j - 1) * len + c]) / (fac - 1.0);
                cur[j * len + c] = aj;
                double e1 = fabs(aj - cur[(j - 1) * len + c]), e2 = fabs(aj - prev[(j - 1) * len + c]);
                double errt = e1 > e2 ? e1 : e2;
                if (errt <= fd->errest[c]) {
                    fd->errest[c] = errt;
                    deriv[c] = aj;
                }
            }
            /* higher orders getting worse: rounding has taken over */
            if (fabs(cur[i * len + c] - prev[(i - 1) * len + c]) >= ST_SAFE * fd->errest[c])
                fd->done[c] = 1;
            else
                active++;
        }
        double *t = prev;
        prev = cur;
        cur = t;
        if (active == 0)
            break;
    }
    return WGF_OK;
}

/* ------------------------------------------------------------ maps */

typedef struct st_map {
    const wgf_map_vt *vt;
    void *state;
    size_t d, n, P, S;
    void *tape;
    int with_score;
    st_pool *pool;
    /* the point */
    double *theta, *z, *s0;
    /* scratch for evaluations */
    double *tp, *zp;
    double **x, **ld, **s; /* S + 1 arrays each */
    /* direction of the current function */
    const double *v;  /* theta direction (P) */
    size_t j;         /* z coordinate */
    const double *zs; /* per-sample scale of the z step */
} st_map;

static double **st_stages(st_pool *pool, size_t S, size_t n)
{
    double **a = st_alloc(pool, (S + 1) * sizeof *a);
    if (!a)
        return NULL;
    for (size_t k = 0; k <= S; k++)
        a[k] = st_doubles(pool, n);
    return a;
}

/* forward, and score from s0 when s is not NULL, on the map's tape. */
static int st_map_eval(st_map *m, const double *theta, const double *z, double **s, wgf_error *err)
{
    int rc = m->vt->forward(m->state, theta, m->n, z, m->tape, m->x, m->ld, err);
    if (rc == WGF_OK && s)
        rc = m->vt->score(m->state, theta, m->n, m->tape, m->s0, s, err);
    return rc;
}

/* Layout of a map's outputs for finite differences: for k = 0..S,
 * x^(k) (n d), ld^(k) (n) and, with scores, s^(k) (n d). */
static size_t st_map_stride(const st_map *m)
{
    return m->n * m->d * (m->with_score ? 2 : 1) + m->n;
}

static void st_map_pack(const st_map *m, int with_s, double *out)
{
    size_t nd = m->n * m->d;
    for (size_t k = 0; k <= m->S; k++) {
        memcpy(out, m->x[k], nd * sizeof *out);
        out += nd;
        memcpy(out, m->ld[k], m->n * sizeof *out);
        out += m->n;
        if (with_s) {
            memcpy(out, m->s[k], nd * sizeof *out);
            out += nd;
        }
    }
}

/* t -> everything at theta + t v. */
static int st_map_fn_theta(void *ctx, double t, double *out, wgf_error *err)
{
    st_map *m = ctx;
    for (size_t i = 0; i < m->P; i++)
        m->tp[i] = m->theta[i] + t * m->v[i];
    int rc = st_map_eval(m, m->tp, m->z, m->with_score ? m->s : NULL, err);
    if (rc)
        return wgf_error_prefix(err, "selftest: at theta + %g v", t);
    st_map_pack(m, m->with_score, out);
    return WGF_OK;
}

/* t -> x^(k), ld^(k) with z_{n j} moved by t zs_n. */
static int st_map_fn_z(void *ctx, double t, double *out, wgf_error *err)
{
    st_map *m = ctx;
    memcpy(m->zp, m->z, m->n * m->d * sizeof *m->zp);
    for (size_t s = 0; s < m->n; s++)
        m->zp[s * m->d + m->j] += t * m->zs[s];
    int rc = st_map_eval(m, m->theta, m->zp, NULL, err);
    if (rc)
        return wgf_error_prefix(err, "selftest: at a perturbed z");
    st_map_pack(m, 0, out);
    return WGF_OK;
}

/* log|det| of the d x d matrix J (destroyed). */
static double st_logdet(size_t d, double *J, gsl_permutation *perm)
{
    gsl_matrix_view v = gsl_matrix_view_array(J, d, d);
    int signum = 0;
    gsl_linalg_LU_decomp(&v.matrix, perm, &signum);
    double s = 0.0;
    for (size_t i = 0; i < d; i++)
        s += log(fabs(J[i * d + i]));
    return s;
}

/* In z, every stage k >= 1: ld^(k) against log|det dx^(k)/dz|, and the
 * score against J^T s^(k) = grad_z (log lambda(z) - ld^(k)(z)) with
 * lambda = N(0, I) (MATH.md 1, 3.3); dx/dz and grad_z ld by differences. */
static int st_map_z_checks(st_map *m, double **ld0, double **sc0, st_report *rep, wgf_error *err)
{
    size_t d = m->d, n = m->n, S = m->S, nd = n * d, stride = n * d + n;
    st_pool *pool = m->pool;
    double *zs = st_doubles(pool, n), *D = st_doubles(pool, (S + 1) * stride);
    double *J = st_doubles(pool, (S + 1) * n * d * d), *gl = st_doubles(pool, (S + 1) * nd);
    double *work = st_doubles(pool, d * d), *lhs = st_doubles(pool, d), *rhs = st_doubles(pool, d);
    st_fd fd;
    int rc = st_fd_init(&fd, pool, (S + 1) * stride);
    gsl_permutation *perm = gsl_permutation_alloc(d);
    if (rc || pool->failed || !perm) {
        rc = wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
        goto done;
    }
    m->zs = zs;
    for (size_t j = 0; j < d; j++) {
        for (size_t s = 0; s < n; s++)
            zs[s] = fmax(1.0, fabs(m->z[s * d + j]));
        m->j = j;
        rc = st_ridders(&fd, st_map_fn_z, m, ST_H0, D, err);
        if (rc)
            goto done;
        for (size_t k = 0; k <= S; k++) {
            const double *Dx = D + k * stride, *Dl = Dx + nd;
            for (size_t s = 0; s < n; s++) {
                for (size_t i = 0; i < d; i++)
                    J[((k * n + s) * d + i) * d + j] = Dx[s * d + i] / zs[s];
                gl[(k * n + s) * d + j] = Dl[s] / zs[s];
            }
        }
    }
    double eld = 0.0, esc = 0.0;
    for (size_t k = 1; k <= S; k++)
        for (size_t s = 0; s < n; s++) {
            const double *Js = J + (k * n + s) * d * d;
            memcpy(work, Js, d * d * sizeof *work);
            eld = st_worse(eld, st_rel1(ld0[k][s], st_logdet(d, work, perm)));
            if (!sc0)
                continue;
            for (size_t jj = 0; jj < d; jj++) {
                double acc = 0.0;
                for (size_t i = 0; i < d; i++)
                    acc += Js[i * d + jj] * sc0[k][s * d + i];
                lhs[jj] = acc;
                rhs[jj] = -m->z[s * d + jj] - gl[(k * n + s) * d + jj];
            }
            esc = st_worse(esc, st_relerr(d, lhs, rhs));
        }
    st_line(rep, "ld vs log|det dx/dz| (FD in z), every stage", eld, WGF_SELFTEST_TOL);
    if (sc0)
        st_line(rep, "score: J^T s vs grad_z(log lambda - ld) (FD)", esc, WGF_SELFTEST_TOL);
done:
    if (perm)
        gsl_permutation_free(perm);
    return rc;
}

/* path_vjp with the given cotangents (arrays of S + 1, NULL entries zero)
 * onto thetabar = 0; returns <thetabar, v> in *out. */
static int st_map_vjp_dot(st_map *m, const double *const *xb, const double *const *lb,
                          const double *const *sb, double *tb, const double *v, double *out,
                          wgf_error *err)
{
    memset(tb, 0, m->P * sizeof *tb);
    int rc = m->vt->path_vjp(m->state, m->theta, m->n, m->tape, xb, lb, sb, tb, err);
    if (rc == WGF_OK)
        *out = st_dot(m->P, tb, v);
    return rc;
}

/* In theta along random directions v: jvp against differences and against
 * path_vjp (dot-product identity), and path_vjp with cotangents on x, ld
 * and s of each stage against the difference of <cotangent, quantity>. */
static int st_map_theta_checks(st_map *m, gsl_rng *rng, st_report *rep, wgf_error *err)
{
    size_t d = m->d, n = m->n, P = m->P, S = m->S, nd = n * d;
    size_t stride = st_map_stride(m);
    st_pool *pool = m->pool;
    double *v = st_doubles(pool, P), *tb = st_doubles(pool, P), *r0 = st_doubles(pool, P);
    double *jx = st_doubles(pool, nd), *jld = st_doubles(pool, n);
    double *D = st_doubles(pool, (S + 1) * stride), *c = st_doubles(pool, (S + 1) * stride);
    const double **ax = st_alloc(pool, (S + 1) * sizeof *ax);
    const double **al = st_alloc(pool, (S + 1) * sizeof *al);
    const double **as = st_alloc(pool, (S + 1) * sizeof *as);
    st_fd fd;
    if (st_fd_init(&fd, pool, (S + 1) * stride) || pool->failed)
        return wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
    double ejx = 0, ejl = 0, edx = 0, edl = 0, evx = 0, evl = 0, evs = 0, eall = 0;
    double h0 = ST_H0; /* v has max-norm 1; see the top of the file */
    int rc;
    m->v = v;
    for (int dir = 0; dir < ST_DIRS; dir++) {
        st_gauss(rng, P, 0.0, 1.0, v);
        double vm = st_maxabs(P, v);
        for (size_t i = 0; i < P; i++)
            v[i] /= vm;
        rc = st_ridders(&fd, st_map_fn_theta, m, h0, D, err);
        /* back to theta on the tape, for the analytic derivatives */
        if (rc == WGF_OK)
            rc = st_map_eval(m, m->theta, m->z, m->with_score ? m->s : NULL, err);
        if (rc == WGF_OK)
            rc = m->vt->jvp(m->state, m->theta, n, m->tape, v, jx, jld, err);
        if (rc)
            return rc;
        const double *DxS = D + S * stride, *DlS = DxS + nd;
        ejx = st_worse(ejx, st_relerr(nd, jx, DxS));
        ejl = st_worse(ejl, st_relerr(n, jld, DlS));

        /* random cotangents in the layout of D */
        st_gauss(rng, (S + 1) * stride, 0.0, 1.0, c);
        for (size_t k = 0; k <= S; k++)
            ax[k] = al[k] = as[k] = NULL;

        /* dot-product identity at the last stage: <xbar, J v> = <J^T xbar, v> */
        const double *cxS = c + S * stride, *clS = cxS + nd;
        double dv;
        ax[S] = cxS;
        rc = st_map_vjp_dot(m, ax, NULL, NULL, tb, v, &dv, err);
        if (rc)
            return rc;
        edx = st_worse(edx, st_rel1(dv, st_dot(nd, cxS, jx)));
        ax[S] = NULL;
        al[S] = clS;
        rc = st_map_vjp_dot(m, NULL, al, NULL, tb, v, &dv, err);
        if (rc)
            return rc;
        edl = st_worse(edl, st_rel1(dv, st_dot(n, clS, jld)));
        al[S] = NULL;

        /* one stage and one kind at a time, against differences */
        for (size_t k = 1; k <= S; k++) {
            const double *ck = c + k * stride, *Dk = D + k * stride;
            ax[k] = ck;
            rc = st_map_vjp_dot(m, ax, NULL, NULL, tb, v, &dv, err);
            ax[k] = NULL;
            if (rc)
                return rc;
            evx = st_worse(evx, st_rel1(dv, st_dot(nd, ck, Dk)));
            al[k] = ck + nd;
            rc = st_map_vjp_dot(m, NULL, al, NULL, tb, v, &dv, err);
            al[k] = NULL;
            if (rc)
                return rc;
            evl = st_worse(evl, st_rel1(dv, st_dot(n, ck + nd, Dk + nd)));
            if (m->with_score) {
                as[k] = ck + nd + n;
                rc = st_map_vjp_dot(m, NULL, NULL, as, tb, v, &dv, err);
                as[k] = NULL;
                if (rc)
                    return rc;
                evs = st_worse(evs, st_rel1(dv, st_dot(nd, ck + nd + n, Dk + nd + n)));
            }
        }

        /* every cotangent on every stage at once, accumulated onto a random thetabar */
        for (size_t k = 0; k <= S; k++) {
            ax[k] = c + k * stride;
            al[k] = c + k * stride + nd;
            as[k] = m->with_score ? c + k * stride + nd + n : NULL;
        }
        st_gauss(rng, P, 0.0, 1.0, r0);
        memcpy(tb, r0, P * sizeof *tb);
        rc = m->vt->path_vjp(m->state, m->theta, n, m->tape, ax, al, m->with_score ? as : NULL, tb, err);
        if (rc)
            return rc;
        for (size_t i = 0; i < P; i++)
            tb[i] -= r0[i];
        eall = st_worse(eall, st_rel1(st_dot(P, tb, v), st_dot((S + 1) * stride, c, D)));
    }
    st_line(rep, "jvp: dx/dtheta v vs FD", ejx, WGF_SELFTEST_TOL);
    st_line(rep, "jvp: d ld/dtheta v vs FD", ejl, WGF_SELFTEST_TOL);
    st_line(rep, "path_vjp xbar vs jvp (dot-product identity)", edx, WGF_SELFTEST_TOL_EXACT);
    st_line(rep, "path_vjp ldbar vs jvp (dot-product identity)", edl, WGF_SELFTEST_TOL_EXACT);
    st_line(rep, "path_vjp xbar vs FD, each stage", evx, WGF_SELFTEST_TOL);
    st_line(rep, "path_vjp ldbar vs FD, each stage", evl, WGF_SELFTEST_TOL);
    if (m->with_score)
        st_line(rep, "path_vjp sbar vs FD, each stage", evs, WGF_SELFTEST_TOL);
    st_line(rep, "path_vjp all stages at once, accumulated, vs FD", eall, WGF_SELFTEST_TOL);
    return WGF_OK;
}

/* A random admissible theta: init, a seeded perturbation of scale 0.3,
 * project when the map can, check; the perturbation is halved until check
 * accepts it. */
static int st_map_theta(st_map *m, gsl_rng *rng, wgf_error *err)
{
    size_t P = m->P;
    double *t0 = st_doubles(m->pool, P);
    if (!t0)
        return wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
    int rc = m->vt->init(m->state, rng, t0, err);
    if (rc)
        return wgf_error_prefix(err, "selftest: init");
    double scale = 0.3;
    for (int attempt = 0; attempt < 12; attempt++, scale *= 0.5) {
        for (size_t i = 0; i < P; i++)
            m->theta[i] = t0[i] + gsl_ran_gaussian(rng, scale);
        if (m->vt->project) {
            rc = m->vt->project(m->state, m->theta, err);
            if (rc)
                return wgf_error_prefix(err, "selftest: project");
        }
        rc = m->vt->check(m->state, m->theta, err);
        if (rc == WGF_OK)
            return WGF_OK;
    }
    return wgf_error_prefix(err, "selftest: no admissible random parameters near the initial ones");
}

static int st_map_run(const wgf_plugin *pl, const wgf_section *sec, size_t d, size_t n,
                      unsigned long seed, st_report *rep, wgf_error *err)
{
    const wgf_map_vt *vt = pl->vtable;
    wgf_problem_info info = {.dim = d, .samples = n, .seed = seed, .initial = NULL};
    st_pool pool = {0};
    st_map m = {.vt = vt, .d = d, .n = n, .pool = &pool, .with_score = vt->score != NULL};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng)
        return wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
    wgf_rng_set(rng, seed, ST_FAMILY, 0, 0);
    int rc = vt->create(sec, &info, &m.state, err);
    if (rc) {
        gsl_rng_free(rng);
        return rc;
    }
    m.P = vt->nparams(m.state);
    m.S = vt->nstages(m.state);
    size_t P = m.P, S = m.S, nd = n * d;
    m.theta = st_doubles(&pool, P);
    m.tp = st_doubles(&pool, P);
    m.z = st_doubles(&pool, nd);
    m.zp = st_doubles(&pool, nd);
    m.s0 = st_doubles(&pool, nd);
    m.x = st_stages(&pool, S, nd);
    m.ld = st_stages(&pool, S, n);
    m.s = st_stages(&pool, S, nd);
    double **ld0 = st_stages(&pool, S, n), **s0k = st_stages(&pool, S, nd);
    if (pool.failed) {
        rc = wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
        goto done;
    }
    /* tape_create has no error channel: NULL means out of memory (guide-map.md) */
    m.tape = vt->tape_create(m.state, n);
    if (!m.tape) {
        rc = wgf_error_set(err, WGF_ENOMEM,
                           "selftest: map '%s': tape_create returned NULL for %zu samples (out of "
                           "memory; tape_create only allocates)",
                           pl->name, n);
        goto done;
    }
    if (rep->out)
        fprintf(rep->out, "map %s: d = %zu, samples = %zu, parameters = %zu, stages = %zu, seed = %lu\n",
                pl->name, d, n, P, S, seed);
    rc = st_map_theta(&m, rng, err);
    if (rc)
        goto done;
    st_gauss(rng, nd, 0.0, 1.0, m.z);
    for (size_t i = 0; i < nd; i++)
        m.s0[i] = -m.z[i]; /* grad log N(0, I) */
    rc = st_map_eval(&m, m.theta, m.z, m.with_score ? m.s : NULL, err);
    if (rc)
        goto done;
    for (size_t k = 0; k <= S; k++) {
        memcpy(ld0[k], m.ld[k], n * sizeof **ld0);
        if (m.with_score)
            memcpy(s0k[k], m.s[k], nd * sizeof **s0k);
    }
    rc = st_map_z_checks(&m, ld0, m.with_score ? s0k : NULL, rep, err);
    if (rc == WGF_OK)
        rc = st_map_theta_checks(&m, rng, rep, err);
done:
    if (m.tape)
        vt->tape_destroy(m.state, m.tape);
    vt->destroy(m.state);
    gsl_rng_free(rng);
    st_pool_free(&pool);
    return rc;
}

/* ------------------------------------------------------------ energies */

typedef struct st_energy {
    const wgf_energy_vt *vt;
    void *state;
    wgf_batch b;
    double *a;          /* the entry being moved (in x, l or s) */
    double a0;          /* its value */
    const double *gbar; /* for <gbar, wgrad> */
    double *g;          /* n x d scratch */
} st_energy;

/* t -> F with the entry moved by t. */
static int st_energy_fn_F(void *ctx, double t, double *out, wgf_error *err)
{
    st_energy *e = ctx;
    *e->a = e->a0 + t;
    int rc = e->vt->eval(e->state, &e->b, out, NULL, NULL, err);
    *e->a = e->a0;
    return rc;
}

/* t -> <gbar, wgrad> with the entry moved by t. */
static int st_energy_fn_phi(void *ctx, double t, double *out, wgf_error *err)
{
    st_energy *e = ctx;
    *e->a = e->a0 + t;
    int rc = e->vt->wgrad(e->state, &e->b, e->g, err);
    *e->a = e->a0;
    if (rc == WGF_OK)
        *out = st_dot(e->b.n * e->b.d, e->gbar, e->g);
    return rc;
}

/* Differences of f in every entry of arr (len) into out. */
static int st_energy_grad(st_energy *e, st_fd *fd, st_fn f, double *arr, size_t len, double *out,
                          wgf_error *err)
{
    for (size_t i = 0; i < len; i++) {
        e->a = arr + i;
        e->a0 = arr[i];
        int rc = st_ridders(fd, f, e, ST_H0 * fmax(1.0, fabs(arr[i])), out + i, err);
        if (rc)
            return rc;
    }
    return WGF_OK;
}

/* Where eval is not finite: the first sample whose one-sample batch gives a non-finite F (or
 * partial), as " (first at sample N: x = (..), l = ..)" in buf; empty when none does alone. */
static void st_nan_where(const wgf_energy_vt *vt, void *state, const wgf_batch *b, char *buf, size_t size)
{
    buf[0] = '\0';
    double a[64], c;
    for (size_t n = 0; n < b->n; n++) {
        wgf_batch one = {.n = 1, .d = b->d, .x = b->x + n * b->d, .l = b->l ? b->l + n : NULL,
                         .s = b->s ? b->s + n * b->d : NULL};
        wgf_error e;
        double F = 0;
        int small = b->d <= sizeof a / sizeof a[0];
        if (vt->eval(state, &one, &F, small ? a : NULL, &c, &e) != WGF_OK)
            continue;
        int bad = !isfinite(F) || !isfinite(c);
        for (size_t i = 0; small && i < b->d; i++)
            bad |= !isfinite(a[i]);
        if (!bad)
            continue;
        size_t k = (size_t)snprintf(buf, size, " (first at sample %zu: x = (", n);
        for (size_t i = 0; i < b->d && i < 8 && k < size; i++)
            k += (size_t)snprintf(buf + k, size - k, "%s%.4g", i ? ", " : "", one.x[i]);
        if (k < size)
            k += (size_t)snprintf(buf + k, size - k, "%s)", b->d > 8 ? ", ..." : "");
        if (k < size && one.l)
            k += (size_t)snprintf(buf + k, size - k, ", l = %.4g", one.l[0]);
        if (k < size)
            snprintf(buf + k, size - k, ")");
        return;
    }
}

/* The first non-finite entry of a (len), as its index, or len. */
static size_t st_first_nonfinite(size_t len, const double *a)
{
    for (size_t i = 0; i < len; i++)
        if (!isfinite(a[i]))
            return i;
    return len;
}

/* wgrad against the energy's own eval (doc/math.md 2): moving the samples of a law along a
 * velocity field v changes F at the rate E[g . v], g the Wasserstein gradient. The law is N(0, I),
 * its samples z pushed by x -> (I + eA) z + e b with A = I + R / (2 sqrt d), b random; the moved
 * law is Gaussian, so the batch at e holds its exact l and s:
 *     x = (I + eA) z + e b,  l = log N(z; 0, I) - log|det(I + eA)|,  s = -(I + eA)^-T z.
 * dF/de at 0 (Ridders) is compared with (1/m) sum_n g_n . (A z_n + b). The z are antithetic and
 * whitened (sample mean 0, sample covariance I), which makes the identity exact on the batch for
 * potential, entropy (sum s.v = -m tr A) and pairwise interaction terms; for other energies it
 * holds in expectation, to Monte Carlo error: hence ST_TRANSPORT_M samples and ST_TRANSPORT_TOL.
 * A wgrad that drops a term (the D s of an entropy) misses by O(1). */
#define ST_TRANSPORT_M 4000
#define ST_TRANSPORT_TOL 0.05

typedef struct st_transport {
    const wgf_energy_vt *vt;
    void *state;
    size_t d, m;
    double *z, *A, *bv;      /* the samples, the field's matrix and shift */
    wgf_batch b;             /* the moved batch */
    gsl_matrix *T;           /* I + eA, then its LU */
    gsl_permutation *perm;
    double *col;             /* d scratch */
} st_transport;

/* The batch moved by e: x, l, s of the pushed Gaussian. */
static int st_transport_move(st_transport *t, double e, wgf_error *err)
{
    size_t d = t->d;
    /* T = (I + eA)^T: its LU gives the log-determinant and the scores */
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            gsl_matrix_set(t->T, i, j, (i == j ? 1.0 : 0.0) + e * t->A[j * d + i]);
    for (size_t n = 0; n < t->m; n++) {
        const double *z = t->z + n * d;
        double *x = t->b.x + n * d, zz = 0;
        for (size_t i = 0; i < d; i++) {
            double v = z[i] + e * t->bv[i];
            for (size_t j = 0; j < d; j++)
                v += e * t->A[i * d + j] * z[j];
            x[i] = v;
            zz += z[i] * z[i];
        }
        t->b.l[n] = -0.5 * zz - 0.5 * (double)d * log(2.0 * M_PI);
    }
    int sgn;
    if (gsl_linalg_LU_decomp(t->T, t->perm, &sgn) != GSL_SUCCESS)
        return wgf_error_set(err, WGF_ENUMERIC, "selftest: transport: I + eA is singular");
    double logdet = gsl_linalg_LU_lndet(t->T);
    gsl_vector_view cv = gsl_vector_view_array(t->col, d);
    for (size_t n = 0; n < t->m; n++) {
        t->b.l[n] -= logdet;
        for (size_t i = 0; i < d; i++)
            t->col[i] = -t->z[n * d + i];
        /* (I + eA)^T s = -z */
        if (gsl_linalg_LU_svx(t->T, t->perm, &cv.vector) != GSL_SUCCESS)
            return wgf_error_set(err, WGF_ENUMERIC, "selftest: transport: I + eA is singular");
        memcpy(t->b.s + n * d, t->col, d * sizeof(double));
    }
    return WGF_OK;
}

static int st_transport_F(void *ctx, double e, double *out, wgf_error *err)
{
    st_transport *t = ctx;
    int rc = st_transport_move(t, e, err);
    if (rc == WGF_OK)
        rc = t->vt->eval(t->state, &t->b, out, NULL, NULL, err);
    if (rc == WGF_OK && !isfinite(*out)) {
        char where[256];
        st_nan_where(t->vt, t->state, &t->b, where, sizeof where);
        rc = wgf_error_set(err, WGF_ENUMERIC,
                           "selftest: wgrad vs eval: eval gives F = %g on %zu samples of a moved "
                           "N(0, I)%s", *out, t->m, where);
    }
    return rc;
}

/* Antithetic N(0, I) draws with sample mean 0 and sample covariance I. */
static int st_whitened(gsl_rng *rng, size_t m, size_t d, double *z, wgf_error *err)
{
    for (size_t n = 0; n < m / 2; n++)
        for (size_t i = 0; i < d; i++) {
            z[n * d + i] = gsl_ran_gaussian(rng, 1.0);
            z[(n + m / 2) * d + i] = -z[n * d + i];
        }
    gsl_matrix *C = gsl_matrix_calloc(d, d);
    if (!C)
        return wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
    for (size_t n = 0; n < m; n++)
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j <= i; j++)
                *gsl_matrix_ptr(C, i, j) += z[n * d + i] * z[n * d + j] / (double)m;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < i; j++)
            gsl_matrix_set(C, j, i, gsl_matrix_get(C, i, j));
    int rc = WGF_OK;
    if (gsl_linalg_cholesky_decomp1(C) != GSL_SUCCESS) {
        rc = wgf_error_set(err, WGF_ENUMERIC, "selftest: transport: degenerate draws");
    } else {
        for (size_t n = 0; n < m; n++) {
            gsl_vector_view zv = gsl_vector_view_array(z + n * d, d);
            gsl_blas_dtrsv(CblasLower, CblasNoTrans, CblasNonUnit, C, &zv.vector); /* L^-1 z */
        }
    }
    gsl_matrix_free(C);
    return rc;
}

static int st_energy_transport(const wgf_energy_vt *vt, void *state, size_t d, gsl_rng *rng, st_pool *pool,
                               st_report *rep, wgf_error *err)
{
    st_transport t = {.vt = vt, .state = state, .d = d, .m = ST_TRANSPORT_M};
    if (t.m < 4 * d)
        t.m = 4 * d;
    size_t md = t.m * d;
    t.z = st_doubles(pool, md);
    t.A = st_doubles(pool, d * d);
    t.bv = st_doubles(pool, d);
    t.col = st_doubles(pool, d);
    t.b = (wgf_batch){.n = t.m, .d = d, .x = st_doubles(pool, md), .l = st_doubles(pool, t.m),
                      .s = st_doubles(pool, md)};
    double *g = st_doubles(pool, md);
    st_fd fd;
    if (st_fd_init(&fd, pool, 1) || pool->failed)
        return wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
    t.T = gsl_matrix_alloc(d, d);
    t.perm = gsl_permutation_alloc(d);
    int rc = t.T && t.perm ? WGF_OK : wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
    if (rc == WGF_OK)
        rc = st_whitened(rng, t.m, d, t.z, err);
    if (rc == WGF_OK) {
        for (size_t i = 0; i < d; i++) {
            t.bv[i] = gsl_ran_gaussian(rng, 1.0);
            for (size_t j = 0; j < d; j++)
                t.A[i * d + j] = (i == j ? 1.0 : 0.0) + gsl_ran_gaussian(rng, 1.0) / (2.0 * sqrt((double)d));
        }
        rc = st_transport_move(&t, 0.0, err);
    }
    if (rc == WGF_OK)
        rc = vt->wgrad(state, &t.b, g, err);
    double rhs = 0, lhs = 0;
    if (rc == WGF_OK) {
        for (size_t n = 0; n < t.m; n++)
            for (size_t i = 0; i < d; i++) {
                double v = t.bv[i];
                for (size_t j = 0; j < d; j++)
                    v += t.A[i * d + j] * t.z[n * d + j];
                rhs += g[n * d + i] * v / (double)t.m;
            }
        size_t at = st_first_nonfinite(md, g);
        if (at < md)
            rc = wgf_error_set(err, WGF_ENUMERIC,
                               "selftest: wgrad vs eval: wgrad gives g = %g at sample %zu, coordinate "
                               "%zu, of %zu samples of N(0, I) (x = %g there)",
                               g[at], at / d, at % d, t.m, t.b.x[at]);
    }
    if (rc == WGF_OK)
        rc = st_ridders(&fd, st_transport_F, &t, 1e-3, &lhs, err);
    if (rc == WGF_OK && !isfinite(lhs))
        rc = wgf_error_set(err, WGF_ENUMERIC, "selftest: wgrad vs eval: dF/de = %g", lhs);
    if (rc == WGF_OK) {
        /* its own tolerance: kept out of the worst finite-difference error */
        double worst = rep->worst;
        st_line(rep, "wgrad vs eval: E[g.v] vs dF/de along v", st_rel1(rhs, lhs), ST_TRANSPORT_TOL);
        rep->worst = worst;
    }
    gsl_matrix_free(t.T);
    gsl_permutation_free(t.perm);
    return rc;
}

static int st_energy_run(const wgf_plugin *pl, const wgf_section *sec, size_t d, size_t n,
                         unsigned long seed, st_report *rep, wgf_error *err)
{
    const wgf_energy_vt *vt = pl->vtable;
    wgf_problem_info info = {.dim = d, .samples = n, .seed = seed, .initial = NULL};
    st_pool pool = {0};
    st_energy e = {.vt = vt};
    size_t nd = n * d;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng)
        return wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
    wgf_rng_set(rng, seed, ST_FAMILY, 0, 1);
    int rc = vt->create(sec, &info, &e.state, err);
    if (rc) {
        gsl_rng_free(rng);
        return rc;
    }
    /* The batch holds l and s only when the energy says it reads them, as
     * in a run. */
    unsigned needs = vt->needs ? vt->needs(e.state) : 0;
    int with_l = (needs & (WGF_NEEDS_L | WGF_WGRAD_NEEDS_L)) != 0;
    int with_s = (needs & (WGF_NEEDS_S | WGF_WGRAD_NEEDS_S)) != 0;
    e.b.n = n;
    e.b.d = d;
    e.b.x = st_doubles(&pool, nd);
    e.b.l = with_l ? st_doubles(&pool, n) : NULL;
    e.b.s = with_s ? st_doubles(&pool, nd) : NULL;
    e.g = st_doubles(&pool, nd);
    double *a = st_doubles(&pool, nd), *c = st_doubles(&pool, n);
    double *fa = st_doubles(&pool, nd), *fc = st_doubles(&pool, n);
    double *gbar = st_doubles(&pool, nd);
    double *xb = st_doubles(&pool, nd), *lb = st_doubles(&pool, n), *sb = st_doubles(&pool, nd);
    double *r0 = st_doubles(&pool, 2 * nd + n);
    st_fd fd;
    if (st_fd_init(&fd, &pool, 1) || pool.failed) {
        rc = wgf_error_set(err, WGF_ENOMEM, "selftest: out of memory");
        goto done;
    }
    if (rep->out)
        fprintf(rep->out, "energy %s: d = %zu, samples = %zu, reads: x%s%s%s%s, seed = %lu\n", pl->name,
                d, n, (needs & WGF_NEEDS_L) ? " l" : "", (needs & WGF_NEEDS_S) ? " s" : "",
                (needs & WGF_WGRAD_NEEDS_L) ? " l(wgrad)" : "",
                (needs & WGF_WGRAD_NEEDS_S) ? " s(wgrad)" : "", seed);
    /* x ~ N(0, I), l ~ N(-1, 0.3^2) (a log-density of a spread law), s ~ N(0, I) */
    st_gauss(rng, nd, 0.0, 1.0, e.b.x);
    if (e.b.l)
        st_gauss(rng, n, -1.0, 0.3, e.b.l);
    if (e.b.s)
        st_gauss(rng, nd, 0.0, 1.0, e.b.s);

    double F = 0.0;
    int want_c = (needs & WGF_NEEDS_L) != 0;
    rc = vt->eval(e.state, &e.b, &F, a, want_c ? c : NULL, err);
    size_t bad_a = rc == WGF_OK ? st_first_nonfinite(nd, a) : nd;
    size_t bad_c = rc == WGF_OK && want_c ? st_first_nonfinite(n, c) : n;
    if (rc == WGF_OK && (!isfinite(F) || bad_a < nd || bad_c < n)) {
        char where[256];
        st_nan_where(vt, e.state, &e.b, where, sizeof where);
        if (!isfinite(F))
            rc = wgf_error_set(err, WGF_ENUMERIC, "selftest: eval gives F = %g on the random batch of %zu "
                               "samples%s", F, n, where);
        else if (bad_a < nd)
            rc = wgf_error_set(err, WGF_ENUMERIC, "selftest: eval gives a = dF/dx = %g at sample %zu, "
                               "coordinate %zu, of the random batch%s", a[bad_a], bad_a / d, bad_a % d, where);
        else
            rc = wgf_error_set(err, WGF_ENUMERIC, "selftest: eval gives c = dF/dl = %g at sample %zu of "
                               "the random batch%s", c[bad_c], bad_c, where);
    }
    if (rc == WGF_OK)
        rc = st_energy_grad(&e, &fd, st_energy_fn_F, e.b.x, nd, fa, err);
    if (rc)
        goto done;
    st_line(rep, "eval: a = dF/dx vs FD", st_relerr(nd, a, fa), WGF_SELFTEST_TOL);
    if (want_c) {
        rc = st_energy_grad(&e, &fd, st_energy_fn_F, e.b.l, n, fc, err);
        if (rc)
            goto done;
        st_line(rep, "eval: c = dF/dl vs FD", st_relerr(n, c, fc), WGF_SELFTEST_TOL);
    }

    if (!vt->wgrad || !vt->wgrad_vjp) {
        if (rep->out)
            fprintf(rep->out, "  (no %s: its checks are skipped)\n", vt->wgrad ? "wgrad_vjp" : "wgrad");
        goto done;
    }
    int wl = (needs & WGF_WGRAD_NEEDS_L) != 0, ws = (needs & WGF_WGRAD_NEEDS_S) != 0;
    st_gauss(rng, nd, 0.0, 1.0, gbar);
    e.gbar = gbar;
    /* accumulate onto random values, subtracted afterwards */
    st_gauss(rng, 2 * nd + n, 0.0, 1.0, r0);
    memcpy(xb, r0, nd * sizeof *xb);
    memcpy(sb, r0 + nd, nd * sizeof *sb);
    memcpy(lb, r0 + 2 * nd, n * sizeof *lb);
    rc = vt->wgrad_vjp(e.state, &e.b, gbar, xb, wl ? lb : NULL, ws ? sb : NULL, err);
    if (rc)
        goto done;
    for (size_t i = 0; i < nd; i++) {
        xb[i] -= r0[i];
        sb[i] -= r0[nd + i];
    }
    for (size_t i = 0; i < n; i++)
        lb[i] -= r0[2 * nd + i];
    rc = st_energy_grad(&e, &fd, st_energy_fn_phi, e.b.x, nd, fa, err);
    if (rc)
        goto done;
    st_line(rep, "wgrad_vjp: xbar vs FD of <gbar, g> in x", st_relerr(nd, xb, fa), WGF_SELFTEST_TOL);
    if (wl) {
        rc = st_energy_grad(&e, &fd, st_energy_fn_phi, e.b.l, n, fc, err);
        if (rc)
            goto done;
        st_line(rep, "wgrad_vjp: lbar vs FD of <gbar, g> in l", st_relerr(n, lb, fc), WGF_SELFTEST_TOL);
    }
    if (ws) {
        rc = st_energy_grad(&e, &fd, st_energy_fn_phi, e.b.s, nd, fa, err);
        if (rc)
            goto done;
        st_line(rep, "wgrad_vjp: sbar vs FD of <gbar, g> in s", st_relerr(nd, sb, fa), WGF_SELFTEST_TOL);
    }
    rc = st_energy_transport(vt, e.state, d, rng, &pool, rep, err);
done:
    vt->destroy(e.state);
    gsl_rng_free(rng);
    st_pool_free(&pool);
    return rc;
}

/* ------------------------------------------------------------ set-up */

/* The diag's lines as one error message. */
static int st_diag_error(const wgf_diag *diag, wgf_error *err)
{
    char msg[WGF_ERROR_MSG_MAX] = "";
    size_t used = 0;
    for (size_t i = 0; i < diag->n && used + 1 < sizeof msg; i++) {
        int k = snprintf(msg + used, sizeof msg - used, "%s%s", i ? "; " : "", diag->msg[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }
    return wgf_error_set(err, WGF_EINVAL, "%s", msg[0] ? msg : "invalid configuration");
}

static const wgf_param st_plugin_key[] = {
    {"plugin", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL, "the plugin"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

int wgf_selftest(wgf_registry *reg, const char *name, const wgf_selftest_opts *opts, FILE *out,
                 double *worst, wgf_error *err)
{
    size_t d = opts && opts->dim ? opts->dim : 3;
    size_t n = opts && opts->samples ? opts->samples : 7;
    unsigned long seed = opts && opts->seed ? opts->seed : 1;
    if (worst)
        *worst = 0.0;
    if (!reg || !name)
        return wgf_error_set(err, WGF_EINVAL, "selftest: no registry or plugin name");
    const wgf_plugin *pl = NULL;
    int rc = wgf_registry_find(reg, (wgf_kind)0, name, &pl, NULL, err);
    if (rc)
        return rc;
    if (pl->kind != WGF_ENERGY && pl->kind != WGF_MAP)
        return wgf_error_set(err, WGF_EUNSUP,
                             "selftest: '%s' is a %s plugin; selftest checks energies and maps", name,
                             wgf_kind_name(pl->kind));
    const char *secname = wgf_kind_name(pl->kind);

    wgf_config *cfg = NULL;
    wgf_section *sec = NULL;
    wgf_diag diag;
    wgf_diag_init(&diag);
    if (opts && opts->ini)
        rc = wgf_config_load(&cfg, opts->ini, &diag, err);
    else
        rc = wgf_config_load_string(&cfg, "", "selftest", &diag, err);
    if (rc == WGF_EINVAL && diag.n)
        rc = st_diag_error(&diag, err);
    for (size_t i = 0; rc == WGF_OK && opts && i < opts->nsets; i++)
        rc = wgf_config_set(cfg, opts->sets[i], err);
    if (rc)
        goto done;
    const char *given = wgf_config_get(cfg, secname, "plugin", NULL);
    if (given && strcmp(given, name) != 0) {
        rc = wgf_error_set(err, WGF_EINVAL, "selftest: the [%s] section is for plugin '%s', not '%s'",
                           secname, given, name);
        goto done;
    }
    const wgf_param *schemas[3] = {pl->params, st_plugin_key, NULL};
    sec = wgf_config_section(cfg, secname, schemas, d, &diag);
    if (!sec || diag.n) {
        rc = st_diag_error(&diag, err);
        goto done;
    }
    st_report rep = {.out = out, .worst = 0.0, .failed = 0};
    if (pl->kind == WGF_MAP)
        rc = st_map_run(pl, sec, d, n, seed, &rep, err);
    else
        rc = st_energy_run(pl, sec, d, n, seed, &rep, err);
    if (worst)
        *worst = rep.worst;
    if (rc == WGF_OK && rep.failed)
        rc = wgf_error_set(err, WGF_ENUMERIC,
                           "selftest: %s: a derivative check failed (worst relative error %.2e)", name,
                           rep.worst);
done:
    wgf_section_free(sec);
    wgf_config_free(cfg);
    wgf_diag_free(&diag);
    return rc;
}
