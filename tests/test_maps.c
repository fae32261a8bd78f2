/* test_maps.c: the affine and planar maps through their vtables (MATH.md 3).
 *
 * Every derivative is compared with fourth-order central differences
 * (-f(2h) + 8 f(h) - 8 f(-h) + f(-2h)) / 12h at h = 1e-4: truncation
 * h^4 |f^(5)| / 30 ~ 1e-17 |f^(5)| and rounding ~ u |f| / h ~ 1e-12 for
 * data of order one, so correct derivatives agree to ~1e-10 and the
 * tolerance 1e-6 leaves room for the curvature of the random points while
 * any wrong term shows at 1e-3 or more. */
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "testutil.h"

#define FD_H 1e-4
#define FD_TOL 1e-6

static const wgf_param plugin_key[] = {
    {"plugin", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL, "the plugin"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* ------------------------------------------------------------ fixtures */

typedef struct tmap {
    wgf_registry *reg;
    wgf_config *cfg;
    wgf_section *sec;
    const wgf_plugin *pl;
    const wgf_map_vt *vt;
    void *st;
    size_t d, P, S;
} tmap;

/* Create map `name` in dimension d from the [map] keys in body ("k = v\n"...).
 * Returns create()'s code; err says why. */
static int tmap_try(tmap *m, const char *name, const char *body, size_t d, wgf_error *err)
{
    memset(m, 0, sizeof *m);
    m->reg = test_registry();
    m->d = d;
    ck_assert_msg(wgf_registry_find(m->reg, WGF_MAP, name, &m->pl, NULL, err) == WGF_OK, "%s", err->msg);
    m->vt = m->pl->vtable;
    char text[1024];
    snprintf(text, sizeof text, "[map]\nplugin = %s\n%s\n", name, body);
    wgf_diag diag;
    wgf_diag_init(&diag);
    ck_assert_int_eq(wgf_config_load_string(&m->cfg, text, "test.ini", &diag, err), WGF_OK);
    const wgf_param *schemas[3] = {m->pl->params, plugin_key, NULL};
    m->sec = wgf_config_section(m->cfg, "map", schemas, d, &diag);
    if (diag.n)
        wgf_diag_print(&diag, stderr, "test_maps: ");
    ck_assert_msg(m->sec != NULL && diag.n == 0, "the [map] section of %s does not validate", name);
    wgf_diag_free(&diag);
    wgf_problem_info info = {.dim = d, .samples = 8, .seed = 1, .initial = NULL};
    int rc = m->vt->create(m->sec, &info, &m->st, err);
    if (rc == WGF_OK) {
        m->P = m->vt->nparams(m->st);
        m->S = m->vt->nstages(m->st);
    } else
        m->st = NULL;
    return rc;
}

static void tmap_open(tmap *m, const char *name, const char *body, size_t d)
{
    wgf_error err = {0};
    int rc = tmap_try(m, name, body, d, &err);
    ck_assert_msg(rc == WGF_OK, "%s: %s", name, err.msg);
}

static void tmap_close(tmap *m)
{
    if (m->st)
        m->vt->destroy(m->st);
    wgf_section_free(m->sec);
    wgf_config_free(m->cfg);
    wgf_registry_free(m->reg);
}

static gsl_rng *test_rng(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    ck_assert_ptr_nonnull(r);
    gsl_rng_set(r, seed);
    return r;
}

static void gauss(gsl_rng *r, size_t n, double sd, double *a)
{
    for (size_t i = 0; i < n; i++)
        a[i] = gsl_ran_gaussian(r, sd);
}

static double *dalloc(size_t n)
{
    double *a = calloc(n ? n : 1, sizeof *a);
    ck_assert_ptr_nonnull(a);
    return a;
}

/* S + 1 arrays of len doubles, in one block: a[k] = base + k len. */
static double **stages(size_t S, size_t len)
{
    double **a = malloc((S + 1) * sizeof *a);
    double *base = dalloc((S + 1) * len);
    ck_assert_ptr_nonnull(a);
    for (size_t k = 0; k <= S; k++)
        a[k] = base + k * len;
    return a;
}

static void stages_free(double **a)
{
    if (a) {
        free(a[0]);
        free(a);
    }
}

/* A random admissible theta near the initial one: init, perturb, project,
 * and halve the perturbation until check accepts. */
static void random_theta(tmap *m, gsl_rng *r, double *theta)
{
    wgf_error err = {0};
    double *t0 = dalloc(m->P);
    ck_assert_int_eq(m->vt->init(m->st, r, t0, &err), WGF_OK);
    double scale = 0.4;
    for (int attempt = 0;; attempt++, scale *= 0.5) {
        ck_assert_int_lt(attempt, 10);
        for (size_t i = 0; i < m->P; i++)
            theta[i] = t0[i] + gsl_ran_gaussian(r, scale);
        if (m->vt->project)
            ck_assert_int_eq(m->vt->project(m->st, theta, &err), WGF_OK);
        if (m->vt->check(m->st, theta, &err) == WGF_OK)
            break;
    }
    free(t0);
}

/* Everything of every stage, packed per stage: x (n d), ld (n), s (n d). */
typedef struct outs {
    size_t n, d, S, stride;
    double **x, **ld, **s;
} outs;

static void outs_init(outs *o, size_t n, size_t d, size_t S)
{
    o->n = n;
    o->d = d;
    o->S = S;
    o->stride = 2 * n * d + n;
    o->x = stages(S, n * d);
    o->ld = stages(S, n);
    o->s = stages(S, n * d);
}

static void outs_free(outs *o)
{
    stages_free(o->x);
    stages_free(o->ld);
    stages_free(o->s);
}

static void outs_pack(const outs *o, double *v)
{
    size_t nd = o->n * o->d;
    for (size_t k = 0; k <= o->S; k++) {
        memcpy(v, o->x[k], nd * sizeof *v);
        memcpy(v + nd, o->ld[k], o->n * sizeof *v);
        memcpy(v + nd + o->n, o->s[k], nd * sizeof *v);
        v += o->stride;
    }
}

/* forward and score (s0 = -z, the score of N(0, I)) on tape, into o. */
static void eval_all(tmap *m, const double *theta, size_t n, const double *z, void *tape, outs *o)
{
    wgf_error err = {0};
    double *s0 = dalloc(n * m->d);
    for (size_t i = 0; i < n * m->d; i++)
        s0[i] = -z[i];
    ck_assert_msg(m->vt->forward(m->st, theta, n, z, tape, o->x, o->ld, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(m->vt->score(m->st, theta, n, tape, s0, o->s, &err) == WGF_OK, "%s", err.msg);
    free(s0);
}

/* max|a - b| / max(1, max|b|) */
static double relerr(size_t n, const double *a, const double *b)
{
    double num = 0.0, den = 1.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]);
        if (isnan(e))
            return NAN;
        num = fmax(num, e);
        den = fmax(den, fabs(b[i]));
    }
    return num / den;
}

/* max that keeps a NaN */
static double worse(double a, double b)
{
    return isnan(a) || isnan(b) ? NAN : fmax(a, b);
}

static double dot(size_t n, const double *a, const double *b)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------ configurations */

static const struct {
    const char *name, *body;
} configs[] = {
    {"affine", ""},
    {"planar", "layers = 4\nblock = 1\ninvertibility = check"},
    {"planar", "layers = 4\nblock = 2\ninvertibility = check"},
    {"planar", "layers = 3\ninvertibility = check"},
    {"planar", "layers = 4\nblock = 1\ninvertibility = project"},
    {"planar", "layers = 4\nblock = 2\ninvertibility = project\ndelta = 0.1"},
    {"planar", "layers = 3\ninvertibility = project"},
    {"planar", "layers = 4\nblock = 1\ninvertibility = reparam"},
    {"planar", "layers = 4\nblock = 2\ninvertibility = reparam"},
    {"planar", "layers = 3\ninvertibility = reparam\ninit_scale = 0.5"},
    {"planar", "layers = 4\nblock = 2\ninvertibility = project\naffine = true"},
    {"planar", "layers = 3\ninvertibility = reparam\naffine = true"},
    {"planar", "layers = 4\nblock = 1\ninvertibility = check\ncoordinatewise = true"},
    {"planar", "layers = 4\nblock = 2\ninvertibility = project\ncoordinatewise = true\ninit_bias = 0.3"},
    {"planar", "layers = 4\nblock = 2\ninvertibility = project\naffine = true\ncoordinatewise = true"},
};
#define NCONFIGS (sizeof configs / sizeof configs[0])
static const size_t dims[] = {1, 3, 5};

/* ------------------------------------------------------------ derivatives in theta */

/* For every parameter i, D_i = d(everything)/d theta_i by differences, then:
 * jvp(e_i) against D_i at the last stage; path_vjp with random cotangents on
 * x, on ld, on s, and on all of them (every stage) against sum <c, D_i>. */
START_TEST(test_fd_theta)
{
    size_t c = (size_t)_i / 3, d = dims[_i % 3], n = 5;
    tmap m;
    tmap_open(&m, configs[c].name, configs[c].body, d);
    size_t P = m.P, S = m.S, nd = n * d;
    gsl_rng *r = test_rng(100 + (unsigned long)_i);
    double *theta = dalloc(P), *tp = dalloc(P), *z = dalloc(nd), *e = dalloc(P);
    random_theta(&m, r, theta);
    gauss(r, nd, 1.0, z);
    void *tape = m.vt->tape_create(m.st, n);
    ck_assert_ptr_nonnull(tape);
    outs o;
    outs_init(&o, n, d, S);
    size_t len = (S + 1) * o.stride;
    double *D = dalloc(P * len), *f = dalloc(len);
    static const double wgt[4] = {-1.0, 8.0, -8.0, 1.0}, off[4] = {2.0, 1.0, -1.0, -2.0};
    for (size_t i = 0; i < P; i++) {
        for (int q = 0; q < 4; q++) {
            memcpy(tp, theta, P * sizeof *tp);
            tp[i] += off[q] * FD_H;
            eval_all(&m, tp, n, z, tape, &o);
            outs_pack(&o, f);
            for (size_t j = 0; j < len; j++)
                D[i * len + j] += wgt[q] * f[j] / (12.0 * FD_H);
        }
    }
    eval_all(&m, theta, n, z, tape, &o);
    wgf_error err = {0};

    /* jvp, column by column */
    double *jx = dalloc(nd), *jld = dalloc(n), ejx = 0, ejl = 0;
    for (size_t i = 0; i < P; i++) {
        memset(e, 0, P * sizeof *e);
        e[i] = 1.0;
        ck_assert_int_eq(m.vt->jvp(m.st, theta, n, tape, e, jx, jld, &err), WGF_OK);
        const double *Di = D + i * len + S * o.stride;
        ejx = worse(ejx, relerr(nd, jx, Di));
        ejl = worse(ejl, relerr(n, jld, Di + nd));
    }
    ck_assert_msg(ejx <= FD_TOL, "%s d=%zu: jvp x vs FD: %g", configs[c].body, d, ejx);
    ck_assert_msg(ejl <= FD_TOL, "%s d=%zu: jvp ld vs FD: %g", configs[c].body, d, ejl);

    /* path_vjp: one kind at a time on every stage, then everything */
    double *cot = dalloc(len), *tb = dalloc(P), *fd = dalloc(P);
    gauss(r, len, 1.0, cot);
    const double **ax = calloc(S + 1, sizeof *ax), **al = calloc(S + 1, sizeof *al),
                 **as = calloc(S + 1, sizeof *as);
    for (int kind = 0; kind < 4; kind++) {
        for (size_t k = 0; k <= S; k++) {
            const double *ck = cot + k * o.stride;
            ax[k] = (kind == 0 || kind == 3) ? ck : NULL;
            al[k] = (kind == 1 || kind == 3) ? ck + nd : NULL;
            as[k] = (kind == 2 || kind == 3) ? ck + nd + n : NULL;
        }
        for (size_t i = 0; i < P; i++) {
            double acc = 0.0;
            for (size_t k = 0; k <= S; k++) {
                const double *Dk = D + i * len + k * o.stride;
                if (ax[k])
                    acc += dot(nd, ax[k], Dk);
                if (al[k])
                    acc += dot(n, al[k], Dk + nd);
                if (as[k])
                    acc += dot(nd, as[k], Dk + nd + n);
            }
            fd[i] = acc;
            tb[i] = 0.5 * (double)i; /* path_vjp accumulates */
        }
        ck_assert_int_eq(m.vt->path_vjp(m.st, theta, n, tape, ax, al, as, tb, &err), WGF_OK);
        for (size_t i = 0; i < P; i++)
            tb[i] -= 0.5 * (double)i;
        double ev = relerr(P, tb, fd);
        ck_assert_msg(ev <= FD_TOL, "%s %s d=%zu: path_vjp (%s) vs FD: %g", configs[c].name,
                      configs[c].body, d, kind == 0 ? "xbar" : kind == 1 ? "ldbar" : kind == 2 ? "sbar" : "all", ev);
    }
    free(ax);
    free(al);
    free(as);
    free(cot);
    free(tb);
    free(fd);
    free(jx);
    free(jld);
    free(D);
    free(f);
    outs_free(&o);
    m.vt->tape_destroy(m.st, tape);
    free(theta);
    free(tp);
    free(z);
    free(e);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

/* ------------------------------------------------------------ derivatives in z */

/* ld^(k) = log|det dx^(k)/dz| and J^T s^(k) = -z - grad_z ld^(k) (lambda =
 * N(0, I)), with dx/dz and grad_z ld by differences, every stage; s^(k) is
 * compared with the solution of that system. */
START_TEST(test_fd_z)
{
    size_t c = (size_t)_i / 3, d = dims[_i % 3], n = 4;
    tmap m;
    tmap_open(&m, configs[c].name, configs[c].body, d);
    size_t S = m.S, nd = n * d;
    gsl_rng *r = test_rng(200 + (unsigned long)_i);
    double *theta = dalloc(m.P), *z = dalloc(nd), *zp = dalloc(nd);
    random_theta(&m, r, theta);
    gauss(r, nd, 1.0, z);
    void *tape = m.vt->tape_create(m.st, n);
    outs o, o0;
    outs_init(&o, n, d, S);
    outs_init(&o0, n, d, S);
    double *J = dalloc((S + 1) * n * d * d), *gl = dalloc((S + 1) * nd);
    static const double wgt[4] = {-1.0, 8.0, -8.0, 1.0}, off[4] = {2.0, 1.0, -1.0, -2.0};
    for (size_t j = 0; j < d; j++)
        for (int q = 0; q < 4; q++) {
            memcpy(zp, z, nd * sizeof *zp);
            for (size_t s = 0; s < n; s++)
                zp[s * d + j] += off[q] * FD_H;
            eval_all(&m, theta, n, zp, tape, &o);
            for (size_t k = 0; k <= S; k++)
                for (size_t s = 0; s < n; s++) {
                    for (size_t i = 0; i < d; i++)
                        J[((k * n + s) * d + i) * d + j] += wgt[q] * o.x[k][s * d + i] / (12.0 * FD_H);
                    gl[(k * n + s) * d + j] += wgt[q] * o.ld[k][s] / (12.0 * FD_H);
                }
        }
    eval_all(&m, theta, n, z, tape, &o0);
    gsl_permutation *perm = gsl_permutation_alloc(d);
    double *lu = dalloc(d * d), *rhs = dalloc(d), *sol = dalloc(d);
    double eld = 0, esc = 0;
    for (size_t k = 0; k <= S; k++)
        for (size_t s = 0; s < n; s++) {
            const double *Js = J + (k * n + s) * d * d;
            /* LU of J^T: log|det J| and the solution of J^T s = rhs */
            for (size_t i = 0; i < d; i++)
                for (size_t j = 0; j < d; j++)
                    lu[i * d + j] = Js[j * d + i];
            gsl_matrix_view L = gsl_matrix_view_array(lu, d, d);
            int signum;
            gsl_linalg_LU_decomp(&L.matrix, perm, &signum);
            double ldfd = gsl_linalg_LU_lndet(&L.matrix);
            eld = worse(eld, fabs(o0.ld[k][s] - ldfd) / fmax(1.0, fabs(ldfd)));
            for (size_t j = 0; j < d; j++)
                rhs[j] = -z[s * d + j] - gl[(k * n + s) * d + j];
            gsl_vector_view b = gsl_vector_view_array(rhs, d), x = gsl_vector_view_array(sol, d);
            gsl_linalg_LU_solve(&L.matrix, perm, &b.vector, &x.vector);
            esc = worse(esc, relerr(d, o0.s[k] + s * d, sol));
        }
    ck_assert_msg(eld <= FD_TOL, "%s %s d=%zu: ld vs log|det dx/dz|: %g", configs[c].name, configs[c].body, d, eld);
    ck_assert_msg(esc <= FD_TOL, "%s %s d=%zu: score vs FD: %g", configs[c].name, configs[c].body, d, esc);
    gsl_permutation_free(perm);
    free(lu);
    free(rhs);
    free(sol);
    free(J);
    free(gl);
    outs_free(&o);
    outs_free(&o0);
    m.vt->tape_destroy(m.st, tape);
    free(theta);
    free(z);
    free(zp);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

/* ------------------------------------------------------------ one tape or two */

/* The same x, ld, s, jvp and (summed) path_vjp from one tape of n samples
 * as from two tapes of n/2 used in interleaved calls: nothing of an
 * evaluation lives outside its tape. */
START_TEST(test_two_tapes)
{
    size_t c = (size_t)_i / 3, d = dims[_i % 3], n = 8, h = n / 2;
    tmap m;
    tmap_open(&m, configs[c].name, configs[c].body, d);
    size_t P = m.P, S = m.S, nd = n * d;
    wgf_error err = {0};
    gsl_rng *r = test_rng(300 + (unsigned long)_i);
    double *theta = dalloc(P), *z = dalloc(nd), *s0 = dalloc(nd), *v = dalloc(P);
    random_theta(&m, r, theta);
    gauss(r, nd, 1.0, z);
    gauss(r, P, 1.0, v);
    for (size_t i = 0; i < nd; i++)
        s0[i] = -z[i];
    void *t1 = m.vt->tape_create(m.st, n), *ta = m.vt->tape_create(m.st, h),
         *tb = m.vt->tape_create(m.st, h);
    ck_assert(t1 && ta && tb);
    outs o1, oa, ob;
    outs_init(&o1, n, d, S);
    outs_init(&oa, h, d, S);
    outs_init(&ob, h, d, S);
    /* cotangents on every stage */
    double **cx = stages(S, nd), **cl = stages(S, n), **cs = stages(S, nd);
    for (size_t k = 0; k <= S; k++) {
        gauss(r, nd, 1.0, cx[k]);
        gauss(r, n, 1.0, cl[k]);
        gauss(r, nd, 1.0, cs[k]);
    }
    const double **hx = calloc(S + 1, sizeof *hx), **hl = calloc(S + 1, sizeof *hl),
                 **hs = calloc(S + 1, sizeof *hs);
    double *jx1 = dalloc(nd), *jl1 = dalloc(n), *jx2 = dalloc(nd), *jl2 = dalloc(n);
    double *g1 = dalloc(P), *g2 = dalloc(P);

    ck_assert_int_eq(m.vt->forward(m.st, theta, n, z, t1, o1.x, o1.ld, &err), WGF_OK);
    ck_assert_int_eq(m.vt->score(m.st, theta, n, t1, s0, o1.s, &err), WGF_OK);
    ck_assert_int_eq(m.vt->jvp(m.st, theta, n, t1, v, jx1, jl1, &err), WGF_OK);
    ck_assert_int_eq(m.vt->path_vjp(m.st, theta, n, t1, (const double *const *)cx,
                                    (const double *const *)cl, (const double *const *)cs, g1, &err),
                     WGF_OK);

    /* interleaved: forward a, forward b, score a, score b, jvp b, jvp a, vjp a, vjp b */
    ck_assert_int_eq(m.vt->forward(m.st, theta, h, z, ta, oa.x, oa.ld, &err), WGF_OK);
    ck_assert_int_eq(m.vt->forward(m.st, theta, h, z + h * d, tb, ob.x, ob.ld, &err), WGF_OK);
    ck_assert_int_eq(m.vt->score(m.st, theta, h, ta, s0, oa.s, &err), WGF_OK);
    ck_assert_int_eq(m.vt->score(m.st, theta, h, tb, s0 + h * d, ob.s, &err), WGF_OK);
    ck_assert_int_eq(m.vt->jvp(m.st, theta, h, tb, v, jx2 + h * d, jl2 + h, &err), WGF_OK);
    ck_assert_int_eq(m.vt->jvp(m.st, theta, h, ta, v, jx2, jl2, &err), WGF_OK);
    for (int half = 0; half < 2; half++) {
        for (size_t k = 0; k <= S; k++) {
            hx[k] = cx[k] + half * h * d;
            hl[k] = cl[k] + half * h;
            hs[k] = cs[k] + half * h * d;
        }
        ck_assert_int_eq(m.vt->path_vjp(m.st, theta, h, half ? tb : ta, hx, hl, hs, g2, &err), WGF_OK);
    }
    for (size_t k = 0; k <= S; k++) {
        ck_assert_double_le(relerr(h * d, oa.x[k], o1.x[k]), 1e-14);
        ck_assert_double_le(relerr(h * d, ob.x[k], o1.x[k] + h * d), 1e-14);
        ck_assert_double_le(relerr(h, oa.ld[k], o1.ld[k]), 1e-14);
        ck_assert_double_le(relerr(h, ob.ld[k], o1.ld[k] + h), 1e-14);
        ck_assert_double_le(relerr(h * d, oa.s[k], o1.s[k]), 1e-14);
        ck_assert_double_le(relerr(h * d, ob.s[k], o1.s[k] + h * d), 1e-14);
    }
    ck_assert_double_le(relerr(nd, jx2, jx1), 1e-14);
    ck_assert_double_le(relerr(n, jl2, jl1), 1e-14);
    ck_assert_double_le(relerr(P, g2, g1), 1e-12);

    free(hx);
    free(hl);
    free(hs);
    stages_free(cx);
    stages_free(cl);
    stages_free(cs);
    free(jx1);
    free(jl1);
    free(jx2);
    free(jl2);
    free(g1);
    free(g2);
    outs_free(&o1);
    outs_free(&oa);
    outs_free(&ob);
    m.vt->tape_destroy(m.st, t1);
    m.vt->tape_destroy(m.st, ta);
    m.vt->tape_destroy(m.st, tb);
    free(theta);
    free(z);
    free(s0);
    free(v);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

/* forward without ld (the array pointer NULL: the output samples of a reference that reads x
 * alone) gives the same x of every stage to the bit, and leaves a tape on which score, jvp and
 * path_vjp give what they give after a forward with ld, to the bit. */
START_TEST(test_forward_without_ld)
{
    size_t c = (size_t)_i / 3, d = dims[_i % 3], n = 7;
    tmap m;
    tmap_open(&m, configs[c].name, configs[c].body, d);
    size_t P = m.P, S = m.S, nd = n * d;
    wgf_error err = {0};
    gsl_rng *r = test_rng(700 + (unsigned long)_i);
    double *theta = dalloc(P), *z = dalloc(nd), *s0 = dalloc(nd), *v = dalloc(P);
    random_theta(&m, r, theta);
    gauss(r, nd, 1.0, z);
    gauss(r, P, 1.0, v);
    for (size_t i = 0; i < nd; i++)
        s0[i] = -z[i];
    double **cx = stages(S, nd), **cl = stages(S, n), **cs = stages(S, nd);
    for (size_t k = 0; k <= S; k++) {
        gauss(r, nd, 1.0, cx[k]);
        gauss(r, n, 1.0, cl[k]);
        gauss(r, nd, 1.0, cs[k]);
    }
    outs o[2];
    double *jx[2], *jl[2], *g[2];
    for (int w = 0; w < 2; w++) { /* w = 1: with ld */
        void *tape = m.vt->tape_create(m.st, n);
        ck_assert_ptr_nonnull(tape);
        outs_init(&o[w], n, d, S);
        jx[w] = dalloc(nd);
        jl[w] = dalloc(n);
        g[w] = dalloc(P);
        ck_assert_int_eq(m.vt->forward(m.st, theta, n, z, tape, o[w].x, w ? o[w].ld : NULL, &err), WGF_OK);
        ck_assert_int_eq(m.vt->score(m.st, theta, n, tape, s0, o[w].s, &err), WGF_OK);
        ck_assert_int_eq(m.vt->jvp(m.st, theta, n, tape, v, jx[w], jl[w], &err), WGF_OK);
        ck_assert_int_eq(m.vt->path_vjp(m.st, theta, n, tape, (const double *const *)cx,
                                        (const double *const *)cl, (const double *const *)cs, g[w], &err),
                         WGF_OK);
        m.vt->tape_destroy(m.st, tape);
    }
    for (size_t k = 0; k <= S; k++) {
        ck_assert(memcmp(o[0].x[k], o[1].x[k], nd * sizeof(double)) == 0);
        ck_assert(memcmp(o[0].s[k], o[1].s[k], nd * sizeof(double)) == 0);
    }
    ck_assert(memcmp(jx[0], jx[1], nd * sizeof(double)) == 0);
    ck_assert(memcmp(jl[0], jl[1], n * sizeof(double)) == 0);
    ck_assert(memcmp(g[0], g[1], P * sizeof(double)) == 0);
    /* the metric product's passes: jvp without jld gives jx to the bit; path_vjp with x
     * cotangents alone gives what it gives with zero ld and score cotangents */
    {
        void *tape = m.vt->tape_create(m.st, n);
        double *jx2 = dalloc(nd), *g0 = dalloc(P), *g2 = dalloc(P);
        double **zl = stages(S, n), **zs = stages(S, nd);
        ck_assert_int_eq(m.vt->forward(m.st, theta, n, z, tape, o[0].x, NULL, &err), WGF_OK);
        ck_assert_int_eq(m.vt->score(m.st, theta, n, tape, s0, o[0].s, &err), WGF_OK);
        ck_assert_int_eq(m.vt->jvp(m.st, theta, n, tape, v, jx2, NULL, &err), WGF_OK);
        ck_assert(memcmp(jx2, jx[1], nd * sizeof(double)) == 0);
        ck_assert_int_eq(m.vt->path_vjp(m.st, theta, n, tape, (const double *const *)cx, NULL, NULL, g0, &err),
                         WGF_OK);
        ck_assert_int_eq(m.vt->path_vjp(m.st, theta, n, tape, (const double *const *)cx,
                                        (const double *const *)zl, (const double *const *)zs, g2, &err),
                         WGF_OK);
        for (size_t i = 0; i < P; i++)
            ck_assert_msg(g0[i] == g2[i], "theta %zu: %.17g against %.17g", i, g0[i], g2[i]);
        stages_free(zl);
        stages_free(zs);
        free(jx2);
        free(g0);
        free(g2);
        m.vt->tape_destroy(m.st, tape);
    }
    for (int w = 0; w < 2; w++) {
        outs_free(&o[w]);
        free(jx[w]);
        free(jl[w]);
        free(g[w]);
    }
    stages_free(cx);
    stages_free(cl);
    stages_free(cs);
    free(theta);
    free(z);
    free(s0);
    free(v);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

/* ------------------------------------------------------------ planar specifics */

/* At its initial parameters the flow is the identity on every stage: exactly
 * for u = 0; under reparam u_hat = 0 up to rounding. */
START_TEST(test_planar_identity)
{
    static const char *bodies[] = {
        "layers = 4\nblock = 1\ninvertibility = check",
        "layers = 6\nblock = 2\ninvertibility = project",
        "layers = 5\ninvertibility = reparam",
    };
    size_t d = dims[_i % 3], n = 6;
    const char *body = bodies[_i / 3];
    int exact = _i / 3 < 2;
    tmap m;
    tmap_open(&m, "planar", body, d);
    size_t S = m.S, nd = n * d;
    gsl_rng *r = test_rng(7);
    double *theta = dalloc(m.P), *z = dalloc(nd);
    wgf_error err = {0};
    ck_assert_int_eq(m.vt->init(m.st, r, theta, &err), WGF_OK);
    ck_assert_int_eq(m.vt->check(m.st, theta, &err), WGF_OK);
    /* seeded, nonzero w and zero b */
    for (size_t k = 0; k < m.P / (2 * d + 1); k++) {
        const double *w = theta + k * (2 * d + 1) + d;
        ck_assert(dot(d, w, w) > 0.0);
        ck_assert(w[d] == 0.0);
    }
    gauss(r, nd, 1.5, z);
    void *tape = m.vt->tape_create(m.st, n);
    outs o;
    outs_init(&o, n, d, S);
    eval_all(&m, theta, n, z, tape, &o);
    double tol = exact ? 0.0 : 1e-14;
    for (size_t k = 0; k <= S; k++) {
        for (size_t i = 0; i < nd; i++) {
            ck_assert_double_le(fabs(o.x[k][i] - z[i]), tol * fmax(1.0, fabs(z[i])));
            ck_assert_double_le(fabs(o.s[k][i] + z[i]), tol * fmax(1.0, fabs(z[i])));
        }
        for (size_t s = 0; s < n; s++)
            ck_assert_double_le(fabs(o.ld[k][s]), tol);
    }
    outs_free(&o);
    m.vt->tape_destroy(m.st, tape);
    free(theta);
    free(z);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

static double layer_sigma(size_t d, const double *theta, size_t k)
{
    const double *u = theta + k * (2 * d + 1);
    return dot(d, u, u + d);
}

/* Violate u.w >= -1 + delta in layers 2 and 4 (those of L that exist):
 * u.w = -3 and -1. */
static void violate(size_t d, size_t L, double *theta)
{
    for (size_t k = 1; k < L; k += 2) {
        double *u = theta + k * (2 * d + 1), *w = u + d;
        double ww = dot(d, w, w), sig = dot(d, u, w);
        double target = k == 1 ? -3.0 : -1.0;
        for (size_t i = 0; i < d; i++)
            u[i] += (target - sig) / ww * w[i];
    }
}

/* project() puts sigma = -1 + delta exactly where it was violated, moving u
 * along w only, and leaves every other parameter alone; check() then passes. */
START_TEST(test_planar_project)
{
    size_t d = dims[_i];
    tmap m;
    tmap_open(&m, "planar", "layers = 4\ninvertibility = project\ndelta = 0.05", d);
    gsl_rng *r = test_rng(11);
    double *theta = dalloc(m.P), *t0 = dalloc(m.P);
    wgf_error err = {0};
    ck_assert_int_eq(m.vt->init(m.st, r, theta, &err), WGF_OK);
    for (size_t i = 0; i < m.P; i++)
        theta[i] += gsl_ran_gaussian(r, 0.2);
    violate(d, 4, theta);
    memcpy(t0, theta, m.P * sizeof *t0);
    ck_assert_int_eq(m.vt->check(m.st, theta, &err), WGF_ENUMERIC);
    ck_assert_int_eq(m.vt->project(m.st, theta, &err), WGF_OK);
    for (size_t k = 0; k < 4; k++) {
        double *u = theta + k * (2 * d + 1), *u0 = t0 + k * (2 * d + 1), *w = u0 + d;
        if (k % 2 == 1) {
            ck_assert_double_le(fabs(layer_sigma(d, theta, k) - (-1.0 + 0.05)), 1e-14);
            /* u - u0 is parallel to w */
            double du[8], ww = dot(d, w, w), a = 0.0;
            for (size_t i = 0; i < d; i++)
                du[i] = u[i] - u0[i];
            a = dot(d, du, w) / ww;
            for (size_t i = 0; i < d; i++)
                ck_assert_double_le(fabs(du[i] - a * w[i]), 1e-12 * fmax(1.0, fabs(a * w[i])));
            ck_assert(a > 0.0);
        } else
            for (size_t i = 0; i < d; i++)
                ck_assert(u[i] == u0[i]);
        for (size_t i = d; i < 2 * d + 1; i++)
            ck_assert(u[i] == u0[i]);
    }
    ck_assert_msg(m.vt->check(m.st, theta, &err) == WGF_OK, "%s", err.msg);
    /* a second projection changes nothing that check would see */
    ck_assert_int_eq(m.vt->project(m.st, theta, &err), WGF_OK);
    ck_assert_int_eq(m.vt->check(m.st, theta, &err), WGF_OK);
    free(theta);
    free(t0);
    gsl_rng_free(r);
    tmap_close(&m);

    /* invertibility = check: project leaves theta alone, check names layer 2 */
    tmap_open(&m, "planar", "layers = 4\ninvertibility = check", d);
    theta = dalloc(m.P);
    t0 = dalloc(m.P);
    r = test_rng(12);
    ck_assert_int_eq(m.vt->init(m.st, r, theta, &err), WGF_OK);
    violate(d, 4, theta);
    memcpy(t0, theta, m.P * sizeof *t0);
    ck_assert_int_eq(m.vt->project(m.st, theta, &err), WGF_OK);
    ck_assert(memcmp(theta, t0, m.P * sizeof *t0) == 0);
    ck_assert_int_eq(m.vt->check(m.st, theta, &err), WGF_ENUMERIC);
    ck_assert_msg(strstr(err.msg, "planar layer 2:") && strstr(err.msg, "u.w = -3") &&
                      strstr(err.msg, "not invertible"),
                  "%s", err.msg);
    free(theta);
    free(t0);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

/* Under reparam any u is admissible, but w = 0 is not. */
START_TEST(test_planar_reparam_check)
{
    tmap m;
    tmap_open(&m, "planar", "layers = 3\ninvertibility = reparam", 3);
    gsl_rng *r = test_rng(13);
    double *theta = dalloc(m.P);
    wgf_error err = {0};
    ck_assert_int_eq(m.vt->init(m.st, r, theta, &err), WGF_OK);
    violate(3, 3, theta); /* raw u.w = -3 in layer 2 is fine */
    ck_assert_msg(m.vt->check(m.st, theta, &err) == WGF_OK, "%s", err.msg);
    memset(theta + 2 * 7 + 3, 0, 3 * sizeof *theta);
    ck_assert_int_eq(m.vt->check(m.st, theta, &err), WGF_ENUMERIC);
    ck_assert_msg(strstr(err.msg, "planar layer 3:") != NULL, "%s", err.msg);
    void *tape = m.vt->tape_create(m.st, 2);
    double z[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    ck_assert_int_eq(m.vt->forward(m.st, theta, 2, z, tape, NULL, NULL, &err), WGF_ENUMERIC);
    m.vt->tape_destroy(m.st, tape);
    free(theta);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

START_TEST(test_planar_create)
{
    tmap m;
    wgf_error err = {0};
    tmap_open(&m, "planar", "layers = 6\nblock = 2", 3);
    ck_assert_uint_eq(m.P, 6 * 7);
    ck_assert_uint_eq(m.S, 3);
    ck_assert(m.vt->project != NULL);
    ck_assert(m.vt->gaussian_push == NULL);
    tmap_close(&m);
    tmap_open(&m, "planar", "", 2);
    ck_assert_uint_eq(m.P, 20 * 5); /* default 20 layers, one stage */
    ck_assert_uint_eq(m.S, 1);
    tmap_close(&m);
    ck_assert_int_eq(tmap_try(&m, "planar", "layers = 6\nblock = 4", 3, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "map.block") && strstr(err.msg, "multiple"), "%s", err.msg);
    tmap_close(&m);
    ck_assert_int_eq(tmap_try(&m, "planar", "invertibility = reparam\ninit_scale = 0", 3, &err),
                     WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "map.init_scale") != NULL, "%s", err.msg);
    tmap_close(&m);
    tmap_open(&m, "planar", "layers = 6\nblock = 2\ncoordinatewise = true\naffine = true", 3);
    ck_assert_uint_eq(m.P, 6 * 16 + 12);
    tmap_close(&m);
    ck_assert_int_eq(tmap_try(&m, "planar", "coordinatewise = true\ninvertibility = reparam", 3, &err),
                     WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "map.invertibility") && strstr(err.msg, "coordinatewise") &&
                      strstr(err.msg, "check or project"),
                  "%s", err.msg);
    tmap_close(&m);
}
END_TEST

/* coordinatewise = true: at init a = 0, c seeded and nonzero, beta = 0 (or seeded with
 * init_bias), and the flow is the identity on every stage, exactly. A layer draws its w and b
 * before its c, so layer 1's planar part is the one of the same seed without the key. */
START_TEST(test_planar_cw_identity)
{
    size_t d = dims[_i % 3], n = 6, q = 5 * d + 1;
    int bias = _i / 3;
    tmap m, m0;
    tmap_open(&m, "planar", bias ? "layers = 4\nblock = 2\ncoordinatewise = true\ninit_bias = 0.2"
                                 : "layers = 4\nblock = 2\ncoordinatewise = true",
              d);
    tmap_open(&m0, "planar", bias ? "layers = 4\ninit_bias = 0.2" : "layers = 4", d);
    ck_assert_uint_eq(m.P, 4 * q);
    size_t S = m.S, nd = n * d;
    gsl_rng *r = test_rng(7), *r0 = test_rng(7);
    double *theta = dalloc(m.P), *theta0 = dalloc(m0.P), *z = dalloc(nd);
    wgf_error err = {0};
    ck_assert_int_eq(m.vt->init(m.st, r, theta, &err), WGF_OK);
    ck_assert_int_eq(m0.vt->init(m0.st, r0, theta0, &err), WGF_OK);
    ck_assert_int_eq(m.vt->check(m.st, theta, &err), WGF_OK);
    ck_assert(memcmp(theta, theta0, (2 * d + 1) * sizeof *theta) == 0);
    for (size_t k = 0; k < 4; k++) {
        const double *a = theta + k * q + 2 * d + 1, *c = a + d, *beta = c + d;
        for (size_t i = 0; i < d; i++) {
            ck_assert(a[i] == 0.0);
            ck_assert(c[i] != 0.0);
            ck_assert(bias ? beta[i] != 0.0 : beta[i] == 0.0);
        }
    }
    gauss(r, nd, 1.5, z);
    void *tape = m.vt->tape_create(m.st, n);
    outs o;
    outs_init(&o, n, d, S);
    eval_all(&m, theta, n, z, tape, &o);
    for (size_t k = 0; k <= S; k++) {
        for (size_t i = 0; i < nd; i++) {
            ck_assert(o.x[k][i] == z[i]);
            ck_assert(o.s[k][i] == -z[i]);
        }
        for (size_t s = 0; s < n; s++)
            ck_assert(o.ld[k][s] == 0.0);
    }
    outs_free(&o);
    m.vt->tape_destroy(m.st, tape);
    free(theta);
    free(theta0);
    free(z);
    gsl_rng_free(r);
    gsl_rng_free(r0);
    tmap_close(&m);
    tmap_close(&m0);
}
END_TEST

/* The log-determinant is a product of the layers' factors with its log taken
 * where the product leaves [2^-480, 2^480] and at each stage: in d = 300 at
 * z = 0 (h = 0, h' = 1), layer 1's planar part u = 0 (factor 1) and a_i c_i =
 * 63 (factor 64 per coordinate, 2^1800 a layer), layer 2's a_i c_i = -3/4
 * (factor 1/4, 2^-600), so the product passes both bounds within a layer; ld is
 * 1800 ln 2, then 1200 ln 2, every x stays 0. */
START_TEST(test_planar_ld_range)
{
    size_t d = 300, n = 3, q = 5 * d + 1;
    tmap m;
    tmap_open(&m, "planar", "layers = 2\nblock = 1\ncoordinatewise = true", d);
    double *theta = dalloc(m.P), *z = dalloc(n * d);
    for (size_t i = 0; i < d; i++) {
        theta[2 * d + 1 + i] = 63.0;           /* layer 1: a_i */
        theta[3 * d + 1 + i] = 1.0;            /* c_i */
        theta[q + 2 * d + 1 + i] = -0.75;      /* layer 2: a_i */
        theta[q + 3 * d + 1 + i] = 1.0;
    }
    wgf_error err = {0};
    ck_assert_int_eq(m.vt->check(m.st, theta, &err), WGF_OK);
    void *tape = m.vt->tape_create(m.st, n);
    outs o;
    outs_init(&o, n, d, m.S);
    eval_all(&m, theta, n, z, tape, &o);
    for (size_t s = 0; s < n; s++) {
        ck_assert(o.ld[0][s] == 0.0);
        ck_assert_msg(fabs(o.ld[1][s] - 1800.0 * M_LN2) < 1e-12 * 1800.0, "ld %.17g", o.ld[1][s]);
        ck_assert_msg(fabs(o.ld[2][s] - 1200.0 * M_LN2) < 1e-12 * 1800.0, "ld %.17g", o.ld[2][s]);
    }
    for (size_t k = 0; k <= m.S; k++)
        for (size_t i = 0; i < n * d; i++)
            ck_assert(o.x[k][i] == 0.0);
    outs_free(&o);
    m.vt->tape_destroy(m.st, tape);
    free(theta);
    free(z);
    tmap_close(&m);
}
END_TEST

/* coordinatewise = true: a_i c_i < -1 + delta (layer 2, coordinate d; layer 3, every
 * coordinate) fails check, naming the first; project sets a_i = (-1 + delta)/c_i there and
 * changes nothing else; check then passes. Under invertibility = check project is a no-op. */
START_TEST(test_planar_cw_project)
{
    size_t d = dims[_i % 3], q = 5 * d + 1;
    int mode_check = _i / 3;
    tmap m;
    tmap_open(&m, "planar",
              mode_check ? "layers = 4\ninvertibility = check\ncoordinatewise = true"
                         : "layers = 4\ninvertibility = project\ndelta = 0.05\ncoordinatewise = true",
              d);
    double bound = mode_check ? -0.99 : -0.95;
    gsl_rng *r = test_rng(21);
    double *theta = dalloc(m.P), *t0 = dalloc(m.P);
    wgf_error err = {0};
    ck_assert_int_eq(m.vt->init(m.st, r, theta, &err), WGF_OK);
    for (size_t k = 0; k < 4; k++) /* admissible a: |a_i c_i| <= 0.5 */
        for (size_t i = 0; i < d; i++) {
            double *a = theta + k * q + 2 * d + 1, *c = a + d;
            a[i] = gsl_ran_flat(r, -0.5, 0.5) / c[i];
        }
    ck_assert_msg(m.vt->check(m.st, theta, &err) == WGF_OK, "%s", err.msg);
    double *a2 = theta + q + 2 * d + 1, *a3 = theta + 2 * q + 2 * d + 1;
    a2[d - 1] = -3.0 / a2[2 * d - 1];
    for (size_t i = 0; i < d; i++)
        a3[i] = (i % 2 ? -1.0 : -1.5) / a3[d + i];
    memcpy(t0, theta, m.P * sizeof *t0);
    ck_assert_int_eq(m.vt->check(m.st, theta, &err), WGF_ENUMERIC);
    char want[64];
    snprintf(want, sizeof want, "planar layer 2, coordinate %zu:", d);
    ck_assert_msg(strstr(err.msg, want) && strstr(err.msg, "a.c = -3") && strstr(err.msg, "not invertible"),
                  "%s", err.msg);
    ck_assert_int_eq(m.vt->project(m.st, theta, &err), WGF_OK);
    if (mode_check) {
        ck_assert(memcmp(theta, t0, m.P * sizeof *t0) == 0);
    } else {
        for (size_t j = 0; j < m.P; j++) {
            size_t k = j / q, o = j % q, i = o - (2 * d + 1);
            int moved = o >= 2 * d + 1 && o < 3 * d + 1 && ((k == 1 && i == d - 1) || k == 2);
            if (!moved) {
                ck_assert(theta[j] == t0[j]);
                continue;
            }
            double c = theta[j + d];
            ck_assert_double_le(fabs(theta[j] * c - bound), 1e-15);
            ck_assert(theta[j] * c > t0[j] * c); /* a moved towards admissible */
        }
        ck_assert_msg(m.vt->check(m.st, theta, &err) == WGF_OK, "%s", err.msg);
        memcpy(t0, theta, m.P * sizeof *t0); /* a second projection changes nothing */
        ck_assert_int_eq(m.vt->project(m.st, theta, &err), WGF_OK);
        ck_assert(memcmp(theta, t0, m.P * sizeof *t0) == 0);
    }
    free(theta);
    free(t0);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

/* ------------------------------------------------------------ affine specifics */

/* gaussian_push is the exact law: pushing the sample moments of z gives the
 * sample moments of x = A z + b to rounding, and N(m0, S0) pushed agrees
 * with the moments of many pushed samples within their sampling error. */
START_TEST(test_affine_moments)
{
    size_t d = dims[_i], n = 20000, nd = n * d;
    tmap m;
    tmap_open(&m, "affine", "", d);
    gsl_rng *r = test_rng(17);
    wgf_error err = {0};
    double *theta = dalloc(m.P), *z = dalloc(nd), *x = dalloc(nd), *L = dalloc(d * d);
    double *m0 = dalloc(d), *S0 = dalloc(d * d), *mz = dalloc(d), *Cz = dalloc(d * d);
    double *mx = dalloc(d), *Cx = dalloc(d * d), *pm = dalloc(d), *pS = dalloc(d * d);
    random_theta(&m, r, theta);
    gauss(r, d, 1.0, m0);
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j <= i; j++)
            L[i * d + j] = i == j ? 0.5 + gsl_rng_uniform(r) : gsl_ran_gaussian(r, 0.3);
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            S0[i * d + j] = dot(d, L + i * d, L + j * d); /* L L^T */
    for (size_t s = 0; s < n; s++) {
        double e[8];
        gauss(r, d, 1.0, e);
        for (size_t i = 0; i < d; i++)
            z[s * d + i] = m0[i] + dot(i + 1, L + i * d, e);
    }
    void *tape = m.vt->tape_create(m.st, n);
    double *xs[2] = {NULL, x};
    ck_assert_int_eq(m.vt->forward(m.st, theta, n, z, tape, xs, NULL, &err), WGF_OK);
    /* sample moments of z and x */
    for (int w = 0; w < 2; w++) {
        const double *a = w ? x : z;
        double *mu = w ? mx : mz, *C = w ? Cx : Cz;
        for (size_t s = 0; s < n; s++)
            for (size_t i = 0; i < d; i++)
                mu[i] += a[s * d + i] / (double)n;
        for (size_t s = 0; s < n; s++)
            for (size_t i = 0; i < d; i++)
                for (size_t j = 0; j < d; j++)
                    C[i * d + j] += (a[s * d + i] - mu[i]) * (a[s * d + j] - mu[j]) / (double)n;
    }
    ck_assert_int_eq(m.vt->gaussian_push(m.st, theta, mz, Cz, pm, pS, &err), WGF_OK);
    ck_assert_double_le(relerr(d, pm, mx), 1e-12);
    ck_assert_double_le(relerr(d * d, pS, Cx), 1e-12);
    ck_assert_int_eq(m.vt->gaussian_push(m.st, theta, m0, S0, pm, pS, &err), WGF_OK);
    for (size_t i = 0; i < d; i++) {
        double sd = sqrt(pS[i * d + i] / (double)n);
        ck_assert_double_le(fabs(pm[i] - mx[i]), 5.0 * sd);
        for (size_t j = 0; j < d; j++) {
            double sdc = sqrt((pS[i * d + i] * pS[j * d + j] + pS[i * d + j] * pS[i * d + j]) / (double)n);
            ck_assert_double_le(fabs(pS[i * d + j] - Cx[i * d + j]), 5.0 * sdc);
            ck_assert(pS[i * d + j] == pS[j * d + i]);
        }
    }
    m.vt->tape_destroy(m.st, tape);
    free(theta);
    free(z);
    free(x);
    free(L);
    free(m0);
    free(S0);
    free(mz);
    free(Cz);
    free(mx);
    free(Cx);
    free(pm);
    free(pS);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

/* The identity at init; a singular A is refused by check and forward. */
START_TEST(test_affine_check)
{
    size_t d = 3, n = 2;
    tmap m;
    tmap_open(&m, "affine", "", d);
    ck_assert_uint_eq(m.P, 12);
    ck_assert_uint_eq(m.S, 1);
    wgf_error err = {0};
    double theta[12], z[6] = {0.3, -1.0, 2.0, 0.5, 0.25, -0.75}, x[6], ld[2];
    double *xs[2] = {NULL, x}, *lds[2] = {NULL, ld};
    ck_assert_int_eq(m.vt->init(m.st, NULL, theta, &err), WGF_OK);
    void *tape = m.vt->tape_create(m.st, n);
    ck_assert_int_eq(m.vt->forward(m.st, theta, n, z, tape, xs, lds, &err), WGF_OK);
    for (size_t i = 0; i < 6; i++)
        ck_assert(x[i] == z[i]);
    ck_assert(ld[0] == 0.0 && ld[1] == 0.0);
    /* row 3 = row 1 + row 2: singular */
    double A[12] = {1, 2, 3, 0.5, -1, 4, 1.5, 1, 7, 0, 0, 0};
    ck_assert_int_eq(m.vt->check(m.st, A, &err), WGF_ENUMERIC);
    ck_assert_msg(strstr(err.msg, "singular") != NULL, "%s", err.msg);
    ck_assert_int_eq(m.vt->forward(m.st, A, n, z, tape, xs, lds, &err), WGF_ENUMERIC);
    A[8] = 7.5;
    ck_assert_msg(m.vt->check(m.st, A, &err) == WGF_OK, "%s", err.msg);
    A[9] = NAN;
    ck_assert_int_eq(m.vt->check(m.st, A, &err), WGF_ENUMERIC);
    m.vt->tape_destroy(m.st, tape);
    tmap_close(&m);
}
END_TEST

/* Score cotangents without score() on the tape are refused, not garbage. */
START_TEST(test_sbar_needs_score)
{
    size_t d = 2, n = 3;
    for (int c = 0; c < 2; c++) {
        tmap m;
        tmap_open(&m, c ? "planar" : "affine", c ? "layers = 2" : "", d);
        gsl_rng *r = test_rng(19);
        wgf_error err = {0};
        double *theta = dalloc(m.P), *tb = dalloc(m.P), z[6] = {0.1, 0.2, 0.3, -0.4, 0.5, 0.6};
        double sb[6] = {1, 1, 1, 1, 1, 1};
        const double *sbar[2] = {NULL, sb};
        random_theta(&m, r, theta);
        void *tape = m.vt->tape_create(m.st, n);
        ck_assert_int_eq(m.vt->forward(m.st, theta, n, z, tape, NULL, NULL, &err), WGF_OK);
        ck_assert_int_eq(m.vt->path_vjp(m.st, theta, n, tape, NULL, NULL, sbar, tb, &err), WGF_EINVAL);
        ck_assert_msg(strstr(err.msg, "score") != NULL, "%s", err.msg);
        m.vt->tape_destroy(m.st, tape);
        free(theta);
        free(tb);
        gsl_rng_free(r);
        tmap_close(&m);
    }
}
END_TEST

/* ------------------------------------------------------------ selftest */

START_TEST(test_selftest)
{
    wgf_registry *reg = test_registry();
    wgf_error err = {0};
    double worst = -1.0;
    static const char *const planar_sets[] = {"map.layers=6", "map.block=2", "map.invertibility=reparam"};
    static const char *const cw_sets[] = {"map.layers=4", "map.block=2", "map.coordinatewise=true",
                                          "map.affine=true"};
    static const char *const bad_sets[] = {"map.layers=6", "map.block=4"};
    static const char *const unknown_sets[] = {"map.nonsense=1"};
    wgf_selftest_opts o = {.dim = 3, .samples = 7, .seed = 1};
    ck_assert_msg(wgf_selftest(reg, "affine", &o, stdout, &worst, &err) == WGF_OK, "%s", err.msg);
    ck_assert(worst >= 0.0 && worst < 1e-6);
    ck_assert_msg(wgf_selftest(reg, "planar", &o, stdout, &worst, &err) == WGF_OK, "%s", err.msg);
    ck_assert(worst >= 0.0 && worst < 1e-6);
    o.dim = 1;
    o.sets = planar_sets;
    o.nsets = 3;
    ck_assert_msg(wgf_selftest(reg, "planar", &o, stdout, &worst, &err) == WGF_OK, "%s", err.msg);
    o.dim = 3;
    o.samples = 13; /* the coordinatewise reverse pass's blocks of 8 samples and its tail */
    o.sets = cw_sets;
    o.nsets = 4;
    ck_assert_msg(wgf_selftest(reg, "planar", &o, stdout, &worst, &err) == WGF_OK, "%s", err.msg);
    ck_assert(worst >= 0.0 && worst < 1e-6);
    o.samples = 7;
    o.sets = bad_sets;
    o.nsets = 2;
    ck_assert_int_eq(wgf_selftest(reg, "planar", &o, NULL, &worst, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "block") != NULL, "%s", err.msg);
    o.sets = unknown_sets;
    o.nsets = 1;
    ck_assert_int_eq(wgf_selftest(reg, "planar", &o, NULL, &worst, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "nonsense") != NULL, "%s", err.msg);
    ck_assert_int_ne(wgf_selftest(reg, "no-such-plugin", NULL, NULL, &worst, &err), WGF_OK);
    wgf_registry_free(reg);
}
END_TEST

/* gram_blocks against the explicit Jacobian: J's columns from jvp on unit vectors (jvp itself is
 * checked by differences above), then every diagonal block of sum_n J_n^T J_n formed from them;
 * the blocks accumulate, and a map without them (affine) leaves the member NULL; planar with an
 * affine or a coordinatewise part says it has none (WGF_EUNSUP). */
START_TEST(test_gram_blocks)
{
    size_t c = (size_t)_i / 3, d = dims[_i % 3], n = 7;
    tmap m;
    tmap_open(&m, configs[c].name, configs[c].body, d);
    if (!m.vt->gram_blocks) {
        ck_assert_str_eq(configs[c].name, "affine");
        tmap_close(&m);
        return;
    }
    size_t P = m.P, nd = n * d, q = 0;
    wgf_error err = {0};
    /* blocks of planar layers only: none with an affine or a coordinatewise part */
    if (strstr(configs[c].body, "affine = true") || strstr(configs[c].body, "coordinatewise = true")) {
        ck_assert_int_eq(m.vt->gram_blocks(m.st, NULL, 0, NULL, &q, NULL, &err), WGF_EUNSUP);
        tmap_close(&m);
        return;
    }
    ck_assert_int_eq(m.vt->gram_blocks(m.st, NULL, 0, NULL, &q, NULL, &err), WGF_OK);
    ck_assert_uint_eq(q, 2 * d + 1);
    ck_assert_uint_eq(P % q, 0);
    gsl_rng *r = test_rng(300 + (unsigned long)_i);
    double *theta = dalloc(P), *z = dalloc(nd), *e = dalloc(P), *J = dalloc(P * nd);
    double *G = dalloc(P * q), *Gj = dalloc(P * q);
    random_theta(&m, r, theta);
    gauss(r, nd, 1.0, z);
    void *tape = m.vt->tape_create(m.st, n);
    ck_assert_ptr_nonnull(tape);
    ck_assert_int_eq(m.vt->forward(m.st, theta, n, z, tape, NULL, NULL, &err), WGF_OK);
    for (size_t i = 0; i < P; i++) { /* J[i]: column i, n x d */
        e[i] = 1.0;
        ck_assert_msg(m.vt->jvp(m.st, theta, n, tape, e, J + i * nd, NULL, &err) == WGF_OK, "%s",
                      err.msg);
        e[i] = 0.0;
    }
    for (size_t b = 0; b < P / q; b++)
        for (size_t i = 0; i < q; i++)
            for (size_t j = 0; j < q; j++)
                Gj[b * q * q + i * q + j] = dot(nd, J + (b * q + i) * nd, J + (b * q + j) * nd);
    for (size_t i = 0; i < P * q; i++)
        G[i] = 1.0; /* accumulates: 1 + the blocks */
    ck_assert_msg(m.vt->gram_blocks(m.st, theta, n, tape, &q, G, &err) == WGF_OK, "%s", err.msg);
    for (size_t i = 0; i < P * q; i++)
        G[i] -= 1.0;
    ck_assert_msg(relerr(P * q, G, Gj) < 1e-12, "%s d = %zu: gram_blocks off by %g", configs[c].body, d,
                  relerr(P * q, G, Gj));
    double big = 0.0; /* not trivially zero */
    for (size_t i = 0; i < P * q; i++)
        big = fmax(big, fabs(Gj[i]));
    ck_assert_double_gt(big, 1e-3);
    m.vt->tape_destroy(m.st, tape);
    free(theta);
    free(z);
    free(e);
    free(J);
    free(G);
    free(Gj);
    gsl_rng_free(r);
    tmap_close(&m);
}
END_TEST

static Suite *maps_suite(void)
{
    Suite *s = suite_create("maps");
    TCase *tc = tcase_create("derivatives");
    tcase_add_loop_test(tc, test_fd_theta, 0, (int)(3 * NCONFIGS));
    tcase_add_loop_test(tc, test_fd_z, 0, (int)(3 * NCONFIGS));
    tcase_add_loop_test(tc, test_two_tapes, 0, (int)(3 * NCONFIGS));
    tcase_add_loop_test(tc, test_forward_without_ld, 0, (int)(3 * NCONFIGS));
    tcase_add_loop_test(tc, test_gram_blocks, 0, (int)(3 * NCONFIGS));
    suite_add_tcase(s, tc);
    tc = tcase_create("planar");
    tcase_add_loop_test(tc, test_planar_identity, 0, 9);
    tcase_add_loop_test(tc, test_planar_project, 0, 3);
    tcase_add_test(tc, test_planar_reparam_check);
    tcase_add_test(tc, test_planar_create);
    tcase_add_loop_test(tc, test_planar_cw_identity, 0, 6);
    tcase_add_test(tc, test_planar_ld_range);
    tcase_add_loop_test(tc, test_planar_cw_project, 0, 6);
    suite_add_tcase(s, tc);
    tc = tcase_create("affine");
    tcase_add_loop_test(tc, test_affine_moments, 0, 3);
    tcase_add_test(tc, test_affine_check);
    tcase_add_test(tc, test_sbar_needs_score);
    suite_add_tcase(s, tc);
    tc = tcase_create("selftest");
    tcase_add_test(tc, test_selftest);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(maps_suite());
}
