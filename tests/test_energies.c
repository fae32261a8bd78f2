/* test_energies.c: the energy plugins fpe, pme and aggregation (MATH.md 2),
 * loaded through the registry: partials and reverse passes against central
 * finite differences, closed forms, the expression parser, error messages,
 * and independence of the thread count. */
#include <float.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "testutil.h"

/* ------------------------------------------------------------- helpers */

typedef struct energy {
    wgf_registry *reg;
    wgf_config *cfg;
    wgf_section *sec;
    const wgf_energy_vt *vt;
    void *st;
} energy;

/* Create energy `name` from the body of its section, in dimension d; returns
 * create()'s status, err saying why. */
static int energy_try(energy *e, const char *name, const char *body, size_t d, wgf_error *err)
{
    memset(e, 0, sizeof *e);
    e->reg = test_registry();
    const wgf_plugin *pl = NULL;
    ck_assert_msg(wgf_registry_find(e->reg, WGF_ENERGY, name, &pl, NULL, err) == WGF_OK, "%s", err->msg);
    size_t len = strlen(body) + 32;
    char *text = malloc(len);
    ck_assert_ptr_nonnull(text);
    snprintf(text, len, "[energy]\n%s\n", body);
    wgf_diag diag;
    wgf_diag_init(&diag);
    ck_assert_msg(wgf_config_load_string(&e->cfg, text, "test.ini", &diag, err) == WGF_OK, "%s",
                  diag.n ? diag.msg[0] : err->msg);
    free(text);
    const wgf_param *const schemas[] = {pl->params, NULL};
    e->sec = wgf_config_section(e->cfg, "energy", schemas, d, &diag);
    ck_assert_msg(e->sec != NULL && diag.n == 0, "%s", diag.n ? diag.msg[0] : "no section");
    wgf_diag_free(&diag);
    e->vt = pl->vtable;
    wgf_problem_info info = {.dim = d, .samples = 7, .seed = 1, .initial = NULL};
    return e->vt->create(e->sec, &info, &e->st, err);
}

static void energy_open(energy *e, const char *name, const char *body, size_t d)
{
    wgf_error err = {0};
    int rc = energy_try(e, name, body, d, &err);
    ck_assert_msg(rc == WGF_OK, "%s: %s", name, err.msg);
}

static void energy_close(energy *e)
{
    if (e->st)
        e->vt->destroy(e->st);
    wgf_section_free(e->sec);
    wgf_config_free(e->cfg);
    wgf_registry_free(e->reg);
}

/* The message of a create() that must fail, which must contain want. */
static void expect_error(const char *name, const char *body, size_t d, const char *want)
{
    energy e;
    wgf_error err = {0};
    int rc = energy_try(&e, name, body, d, &err);
    ck_assert_msg(rc == WGF_EINVAL, "%s with [%s]: expected an error, got %d", name, body, rc);
    ck_assert_msg(strstr(err.msg, want) != NULL, "message \"%s\" lacks \"%s\"", err.msg, want);
    ck_assert_msg(strncmp(err.msg, "test.ini", 8) == 0, "message \"%s\" does not name the file",
                  err.msg);
    ck_assert_ptr_null(e.st);
    energy_close(&e);
}

/* A batch with x ~ N(0, sx^2), l uniform in [-2, 0.5], s ~ N(0, 1). */
static void random_batch(wgf_batch *b, size_t N, size_t d, double sx, unsigned long seed)
{
    ck_assert_int_eq(wgf_batch_alloc(b, N, d, 1, 1), WGF_OK);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (size_t k = 0; k < N * d; k++) {
        b->x[k] = sx * gsl_ran_gaussian(r, 1.0);
        b->s[k] = gsl_ran_gaussian(r, 1.0);
    }
    for (size_t n = 0; n < N; n++)
        b->l[n] = -2.0 + 2.5 * gsl_rng_uniform(r);
    gsl_rng_free(r);
}

static double *filled(size_t n, double v)
{
    double *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t k = 0; k < n; k++)
        a[k] = v;
    return a;
}

static double F_of(const energy *e, const wgf_batch *b)
{
    double F = NAN;
    wgf_error err = {0};
    ck_assert_msg(e->vt->eval(e->st, b, &F, NULL, NULL, &err) == WGF_OK, "%s", err.msg);
    return F;
}

static double max_abs(const double *a, size_t n)
{
    double m = 0.0;
    for (size_t k = 0; k < n; k++)
        m = fmax(m, fabs(a[k]));
    return m;
}

/* Central difference of f along coordinate *v, step relative to |*v|. */
typedef double (*scalar_fn)(const energy *e, const wgf_batch *b, const void *user);

static double central(const energy *e, const wgf_batch *b, double *v, scalar_fn f, const void *user)
{
    double v0 = *v, h = 1e-5 * fmax(1.0, fabs(v0));
    *v = v0 + h;
    double fp = f(e, b, user);
    *v = v0 - h;
    double fm = f(e, b, user);
    *v = v0;
    return (fp - fm) / (2.0 * h);
}

static double F_fn(const energy *e, const wgf_batch *b, const void *user)
{
    (void)user;
    return F_of(e, b);
}

/* |fd - an| <= tol max|an| for every coordinate: the analytic array an
 * against central differences of f in the n coordinates v. */
static void compare_fd(const energy *e, const wgf_batch *b, double *v, const double *an, size_t n,
                       scalar_fn f, const void *user, double tol, const char *what)
{
    double scale = fmax(max_abs(an, n), DBL_MIN);
    for (size_t k = 0; k < n; k++) {
        double fd = central(e, b, v + k, f, user);
        ck_assert_msg(fabs(fd - an[k]) <= tol * scale,
                      "%s[%zu]: analytic %.12g, finite difference %.12g", what, k, an[k], fd);
    }
}

/* a and c (overwritten, whatever was there) against differences of F; the F
 * of a call that wants a and c is the F of one that does not. */
static void check_partials(const energy *e, wgf_batch *b, double tol)
{
    size_t N = b->n, d = b->d;
    double *a = filled(N * d, NAN), *c = filled(N, NAN), F = NAN;
    wgf_error err = {0};
    ck_assert_msg(e->vt->eval(e->st, b, &F, a, c, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(F == F_of(e, b), "F depends on whether a and c are wanted");
    compare_fd(e, b, b->x, a, N * d, F_fn, NULL, tol, "a");
    compare_fd(e, b, b->l, c, N, F_fn, NULL, tol, "c");
    free(a);
    free(c);
}

/* <gbar, g(x, l, s)> */
static double gdot_fn(const energy *e, const wgf_batch *b, const void *user)
{
    const double *gbar = user;
    size_t n = b->n * b->d;
    double *g = filled(n, NAN), s = 0.0;
    wgf_error err = {0};
    ck_assert_msg(e->vt->wgrad(e->st, b, g, &err) == WGF_OK, "%s", err.msg);
    for (size_t k = 0; k < n; k++)
        s += gbar[k] * g[k];
    free(g);
    return s;
}

/* wgrad_vjp accumulates into xbar, lbar, sbar what differences of
 * <gbar, g> in x, l and s say. */
static void check_vjp(const energy *e, wgf_batch *b, double tol, unsigned long seed)
{
    size_t N = b->n, d = b->d;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    double *gbar = filled(N * d, 0.0), *x0 = filled(N * d, 0.0), *l0 = filled(N, 0.0),
           *s0 = filled(N * d, 0.0);
    for (size_t k = 0; k < N * d; k++) {
        gbar[k] = gsl_ran_gaussian(r, 1.0);
        x0[k] = gsl_ran_gaussian(r, 1.0);
        s0[k] = gsl_ran_gaussian(r, 1.0);
    }
    for (size_t n = 0; n < N; n++)
        l0[n] = gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
    double *xbar = filled(N * d, 0.0), *lbar = filled(N, 0.0), *sbar = filled(N * d, 0.0);
    memcpy(xbar, x0, N * d * sizeof *xbar);
    memcpy(lbar, l0, N * sizeof *lbar);
    memcpy(sbar, s0, N * d * sizeof *sbar);
    wgf_error err = {0};
    ck_assert_msg(e->vt->wgrad_vjp(e->st, b, gbar, xbar, lbar, sbar, &err) == WGF_OK, "%s", err.msg);
    for (size_t k = 0; k < N * d; k++) {
        xbar[k] -= x0[k];
        sbar[k] -= s0[k];
    }
    for (size_t n = 0; n < N; n++)
        lbar[n] -= l0[n];
    compare_fd(e, b, b->x, xbar, N * d, gdot_fn, gbar, tol, "xbar");
    compare_fd(e, b, b->l, lbar, N, gdot_fn, gbar, tol, "lbar");
    compare_fd(e, b, b->s, sbar, N * d, gdot_fn, gbar, tol, "sbar");
    free(gbar);
    free(x0);
    free(l0);
    free(s0);
    free(xbar);
    free(lbar);
    free(sbar);
}

/* Both checks on a random batch. */
static void check_derivatives(const char *name, const char *body, size_t d, size_t N, double sx)
{
    energy e;
    energy_open(&e, name, body, d);
    wgf_batch b;
    random_batch(&b, N, d, sx, 7);
    check_partials(&e, &b, 1e-6);
    check_vjp(&e, &b, 1e-6, 11);
    wgf_batch_free(&b);
    energy_close(&e);
}

/* Everything an energy returns on b, for comparisons. */
typedef struct outputs {
    double F;
    double *a, *c, *g, *xbar, *lbar, *sbar;
} outputs;

static void outputs_of(const energy *e, const wgf_batch *b, outputs *o)
{
    size_t N = b->n, d = b->d;
    o->a = filled(N * d, NAN);
    o->c = filled(N, NAN);
    o->g = filled(N * d, NAN);
    o->xbar = filled(N * d, 0.5);
    o->lbar = filled(N, 0.5);
    o->sbar = filled(N * d, 0.5);
    double *gbar = filled(N * d, 0.0);
    for (size_t k = 0; k < N * d; k++)
        gbar[k] = sin(1.0 + (double)k);
    wgf_error err = {0};
    ck_assert_msg(e->vt->eval(e->st, b, &o->F, o->a, o->c, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(e->vt->wgrad(e->st, b, o->g, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(e->vt->wgrad_vjp(e->st, b, gbar, o->xbar, o->lbar, o->sbar, &err) == WGF_OK, "%s",
                  err.msg);
    free(gbar);
}

static void outputs_free(outputs *o)
{
    free(o->a);
    free(o->c);
    free(o->g);
    free(o->xbar);
    free(o->lbar);
    free(o->sbar);
}

static void close_arrays(const double *u, const double *v, size_t n, double tol, const char *what)
{
    double scale = fmax(max_abs(v, n), 1.0);
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(fabs(u[k] - v[k]) <= tol * scale, "%s[%zu]: %.17g vs %.17g", what, k, u[k], v[k]);
}

/* Two energies agree on b to rounding (value, gradient, Hessian products). */
static void compare_energies(const energy *e1, const energy *e2, const wgf_batch *b, double tol)
{
    outputs o1, o2;
    outputs_of(e1, b, &o1);
    outputs_of(e2, b, &o2);
    size_t N = b->n, d = b->d;
    ck_assert_close(o1.F, o2.F, tol);
    close_arrays(o1.a, o2.a, N * d, tol, "a");
    close_arrays(o1.c, o2.c, N, tol, "c");
    close_arrays(o1.g, o2.g, N * d, tol, "g");
    close_arrays(o1.xbar, o2.xbar, N * d, tol, "xbar");
    close_arrays(o1.lbar, o2.lbar, N, tol, "lbar");
    close_arrays(o1.sbar, o2.sbar, N * d, tol, "sbar");
    outputs_free(&o1);
    outputs_free(&o2);
}

static void identical_outputs(const outputs *o1, const outputs *o2, size_t N, size_t d)
{
    ck_assert_msg(memcmp(&o1->F, &o2->F, sizeof o1->F) == 0, "F: %.17g vs %.17g", o1->F, o2->F);
    ck_assert(memcmp(o1->a, o2->a, N * d * sizeof(double)) == 0);
    ck_assert(memcmp(o1->c, o2->c, N * sizeof(double)) == 0);
    ck_assert(memcmp(o1->g, o2->g, N * d * sizeof(double)) == 0);
    ck_assert(memcmp(o1->xbar, o2->xbar, N * d * sizeof(double)) == 0);
    ck_assert(memcmp(o1->lbar, o2->lbar, N * sizeof(double)) == 0);
    ck_assert(memcmp(o1->sbar, o2->sbar, N * d * sizeof(double)) == 0);
}

/* The outputs with 1 and with 2 threads, bit for bit. */
static void check_threads(const char *name, const char *body, size_t d, size_t N)
{
    energy e;
    energy_open(&e, name, body, d);
    wgf_batch b;
    random_batch(&b, N, d, 1.0, 3);
    outputs o1, o2;
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    outputs_of(&e, &b, &o1);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    outputs_of(&e, &b, &o2);
    identical_outputs(&o1, &o2, N, d);
    outputs_free(&o1);
    outputs_free(&o2);
    wgf_batch_free(&b);
    energy_close(&e);
}

/* The separable quartic of MATH.md 2 written out for d = 3. */
#define QUARTIC3                                                                                     \
    "0.06*(x1^4 - 16*x1^2 + 5*x1) + 0.06*(x2^4 - 16*x2^2 + 5*x2) + 0.06*(x3^4 - 16*x3^2 + 5*x3)"

/* ----------------------------------------------------------------- fpe */

START_TEST(fpe_derivatives)
{
    check_derivatives("fpe", "diffusion = 0.7\nweight = 1.3\nmu = 1 -0.5 0.25\n"
                             "sigma = full 2 0.5 0.1  0.5 1 -0.2  0.1 -0.2 0.5",
                      3, 6, 1.0);
    check_derivatives("fpe", "potential = quartic\nscale = 0.06\ndiffusion = 1", 3, 6, 2.0);
    check_derivatives("fpe", "potential = expression\ndiffusion = 0.5\nV = " QUARTIC3, 3, 6, 2.0);
    check_derivatives("fpe", "potential = expression\nseparable = 0.06*(x^4-16*x^2+5*x)", 3, 6, 2.0);
    check_derivatives("fpe", "potential = quadratic\ndiffusion = 0", 2, 5, 1.0);
}
END_TEST

/* Every operation and function of the expression language, against the
 * same formula in C. */
#define EXPR_ALL                                                                                     \
    "exp(x1)*sin(x2) + log(1 + x1^2) + sqrt(2 + cos(x2)) + tanh(x1*x3) + abs(x1 - x2)^3"         \
    " + x1/(1 + x2^2) + 2^x3 + pi*(1 + x3^2)^-2 + (2 + x3^2)^(x1/3) + (1 + x2^2)^0.75 - -x1 + 3"

static double expr_all(const double *x)
{
    double x1 = x[0], x2 = x[1], x3 = x[2];
    return exp(x1) * sin(x2) + log(1 + x1 * x1) + sqrt(2 + cos(x2)) + tanh(x1 * x3) +
           pow(fabs(x1 - x2), 3) + x1 / (1 + x2 * x2) + pow(2, x3) +
           3.14159265358979323846 * pow(1 + x3 * x3, -2) + pow(2 + x3 * x3, x1 / 3) +
           pow(1 + x2 * x2, 0.75) + x1 + 3;
}

START_TEST(fpe_expression_all)
{
    check_derivatives("fpe", "potential = expression\ndiffusion = 0.3\nV = " EXPR_ALL, 3, 5, 1.0);
    energy e;
    energy_open(&e, "fpe", "potential = expression\ndiffusion = 0\nV = " EXPR_ALL, 3);
    wgf_batch b;
    random_batch(&b, 1, 3, 1.0, 5);
    for (int rep = 0; rep < 5; rep++) {
        for (size_t i = 0; i < 3; i++)
            b.x[i] = 0.3 * rep - 0.5 + 0.4 * (double)i;
        ck_assert_close(F_of(&e, &b), expr_all(b.x), 1e-13);
    }
    wgf_batch_free(&b);
    energy_close(&e);
}
END_TEST

/* Precedence and associativity: the value of V at x = (3, -1). */
START_TEST(fpe_expression_syntax)
{
    static const struct {
        const char *V;
        double want;
    } cases[] = {
        {"-x1^2", -9.0},
        {"2^3^2", 512.0},
        {"x1^-2", 1.0 / 9.0},
        {"2*-x1", -6.0},
        {"(x1 + 1) * 2 - 4 / 2 / 2", 7.0},
        {"x1 - 2 - 3", -2.0},
        {"1.5e1 + .5 + 2E-1", 15.7},
        {"  x1   ", 3.0},
        {"abs(-x1) + abs(x2)", 4.0},
        {"exp(0) + log(1) + cos(pi)", 0.0},
        {"x2", -1.0},
        {"(-x1)^3", -27.0},
        {"x2^3 + x2^-3", -2.0},
        {"x1^0 + x1^1", 4.0},
        {"4^0.5 + sqrt(x1*3)", 5.0},
        {"+x1 - +x2", 4.0},
        {"tanh(0) + sin(0)", 0.0},
    };
    wgf_batch b;
    ck_assert_int_eq(wgf_batch_alloc(&b, 1, 2, 1, 1), WGF_OK);
    b.x[0] = 3.0;
    b.x[1] = -1.0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char body[256];
        snprintf(body, sizeof body, "potential = expression\ndiffusion = 0\nV = %s", cases[k].V);
        energy e;
        energy_open(&e, "fpe", body, 2);
        double F = F_of(&e, &b);
        ck_assert_msg(fabs(F - cases[k].want) <= 1e-14 * fmax(1.0, fabs(cases[k].want)),
                      "V = %s: %.17g, expected %.17g", cases[k].V, F, cases[k].want);
        energy_close(&e);
    }
    wgf_batch_free(&b);
}
END_TEST

/* V = 1/2 (x-mu)^T Sigma^{-1} (x-mu) with Sigma = [2 .5; .5 1] at given points. */
START_TEST(fpe_quadratic_closed_form)
{
    energy e;
    energy_open(&e, "fpe", "mu = 1 -0.5\nsigma = full 2 0.5 0.5 1\ndiffusion = 0.5\nweight = 2", 2);
    const double x[] = {0, 0, 1, -0.5, 2, 1}, l[] = {-1, 0.5, 2}, s[] = {1, 2, -3, 0.5, 0, 1};
    const double mu[] = {1, -0.5}, det = 2.0 * 1.0 - 0.25;
    const double Si[] = {1.0 / det, -0.5 / det, -0.5 / det, 2.0 / det};
    wgf_batch b;
    ck_assert_int_eq(wgf_batch_alloc(&b, 3, 2, 1, 1), WGF_OK);
    memcpy(b.x, x, sizeof x);
    memcpy(b.l, l, sizeof l);
    memcpy(b.s, s, sizeof s);
    double F, a[6], c[3], g[6], Fw = 0.0;
    wgf_error err = {0};
    ck_assert_msg(e.vt->eval(e.st, &b, &F, a, c, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(e.vt->wgrad(e.st, &b, g, &err) == WGF_OK, "%s", err.msg);
    for (size_t n = 0; n < 3; n++) {
        double r0 = x[2 * n] - mu[0], r1 = x[2 * n + 1] - mu[1];
        double q0 = Si[0] * r0 + Si[1] * r1, q1 = Si[2] * r0 + Si[3] * r1;
        Fw += 0.5 * (r0 * q0 + r1 * q1) + 0.5 * l[n];
        ck_assert_close(a[2 * n], 2.0 * q0 / 3.0, 1e-14);
        ck_assert_close(a[2 * n + 1], 2.0 * q1 / 3.0, 1e-14);
        ck_assert_close(c[n], 2.0 * 0.5 / 3.0, 1e-15);
        ck_assert_close(g[2 * n], 2.0 * (q0 + 0.5 * s[2 * n]), 1e-14);
        ck_assert_close(g[2 * n + 1], 2.0 * (q1 + 0.5 * s[2 * n + 1]), 1e-14);
    }
    ck_assert_close(F, 2.0 * Fw / 3.0, 1e-14);
    /* at mu, V = 0 exactly */
    ck_assert_close(a[2], 0.0, 1e-15);
    ck_assert_uint_eq(e.vt->needs(e.st), WGF_NEEDS_L | WGF_WGRAD_NEEDS_S);
    wgf_batch_free(&b);
    energy_close(&e);

    energy_open(&e, "fpe", "diffusion = 0", 2);
    ck_assert_uint_eq(e.vt->needs(e.st), 0u);
    energy_close(&e);
}
END_TEST

static double quartic_V(const double *x, size_t d, double scale)
{
    double V = 0.0;
    for (size_t i = 0; i < d; i++)
        V += pow(x[i], 4) - 16.0 * x[i] * x[i] + 5.0 * x[i];
    return scale * V;
}

START_TEST(fpe_quartic_closed_form)
{
    energy e;
    energy_open(&e, "fpe", "potential = quartic\nscale = 0.02\ndiffusion = 0", 3);
    const double x[] = {1, -2, 0.5, -2.9035, 2.7468, 0};
    wgf_batch b;
    ck_assert_int_eq(wgf_batch_alloc(&b, 2, 3, 1, 1), WGF_OK);
    memcpy(b.x, x, sizeof x);
    double F, a[6], g[6];
    wgf_error err = {0};
    ck_assert_msg(e.vt->eval(e.st, &b, &F, a, NULL, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(e.vt->wgrad(e.st, &b, g, &err) == WGF_OK, "%s", err.msg);
    ck_assert_close(F, (quartic_V(x, 3, 0.02) + quartic_V(x + 3, 3, 0.02)) / 2.0, 1e-14);
    /* V(1, -2, .5) = (1 - 16 + 5) + (16 - 64 - 10) + (1/16 - 4 + 5/2) = -69.4375 */
    ck_assert_close(quartic_V(x, 3, 1.0), -69.4375, 1e-15);
    for (size_t k = 0; k < 6; k++) {
        double gk = 0.02 * (4.0 * pow(x[k], 3) - 32.0 * x[k] + 5.0);
        ck_assert_close(g[k], gk, 1e-14);
        ck_assert_close(a[k], gk / 2.0, 1e-14);
    }
    wgf_batch_free(&b);
    energy_close(&e);
}
END_TEST

START_TEST(fpe_expression_matches_quartic)
{
    energy q, v, s;
    energy_open(&q, "fpe", "potential = quartic\nscale = 0.06\ndiffusion = 0.8\nweight = 1.5", 3);
    energy_open(&v, "fpe", "potential = expression\ndiffusion = 0.8\nweight = 1.5\nV = " QUARTIC3, 3);
    energy_open(
        &s, "fpe",
        "potential = expression\ndiffusion = 0.8\nweight = 1.5\nseparable = 0.06*(x^4 - 16*x^2 + 5*x)",
        3);
    wgf_batch b;
    random_batch(&b, 50, 3, 2.5, 9);
    compare_energies(&q, &v, &b, 1e-13);
    compare_energies(&q, &s, &b, 1e-13);
    wgf_batch_free(&b);
    energy_close(&q);
    energy_close(&v);
    energy_close(&s);
}
END_TEST

START_TEST(fpe_errors)
{
    expect_error("fpe", "sigma = full 1 2 2 1", 2, "energy.sigma: not symmetric positive definite");
    expect_error("fpe", "sigma = full 1 0.5 0 1", 2,
                 "energy.sigma: not symmetric positive definite: not symmetric");
    expect_error("fpe", "sigma = diag 1 0 2", 3, "energy.sigma: not symmetric positive definite");
    expect_error("fpe", "potential = expression\nV = x1 + * 2", 2, "energy.V: parse error at column 6:");
    expect_error("fpe", "potential = expression\nV = (x1 + 2", 2,
                 "energy.V: parse error at column 8: expected ')' to close '(' at column 1");
    expect_error("fpe", "potential = expression\nV = x1 + x12^2", 10,
                 "energy.V: parse error at column 6: unknown variable 'x12' (the dimension is 10");
    expect_error("fpe", "potential = expression\nV = x0", 2, "unknown variable 'x0'");
    expect_error("fpe", "potential = expression\nV = foo(x1)", 2,
                 "parse error at column 1: unknown name 'foo'");
    expect_error("fpe", "potential = expression\nV = exp x1", 2,
                 "column 5: function exp needs an argument");
    expect_error("fpe", "potential = expression\nV = x1 x2", 2, "column 4: unexpected 'x2'");
    expect_error("fpe", "potential = expression\nV = 2 $ 3", 2, "column 3: unexpected '$'");
    expect_error("fpe", "potential = expression\nV = 1e+ x1", 2, "column 2: malformed number");
    expect_error("fpe", "potential = expression\nV = x^2", 2, "unknown name 'x'");
    expect_error("fpe", "potential = expression\nseparable = x1^2", 2,
                 "energy.separable: parse error at column 1");
    expect_error("fpe", "potential = expression", 2, "energy.potential: expression needs V");
    expect_error("fpe", "potential = expression\nV = x1\nseparable = x", 2,
                 "energy.separable: give V or separable");
    expect_error("fpe", "V = x1^2", 2, "energy.V: only read with potential = expression");
    char deep[2048] = "potential = expression\nV = ";
    for (int k = 0; k < 300; k++)
        strcat(deep, "(");
    strcat(deep, "x1");
    for (int k = 0; k < 300; k++)
        strcat(deep, ")");
    expect_error("fpe", deep, 2, "nested too deeply");
    /* Every problem of the section at once, one line each, each located */
    {
        energy e;
        wgf_error err = {0};
        ck_assert_int_eq(energy_try(&e, "fpe", "V = x1\nseparable = x\nsigma = full 1 2 2 1", 2, &err),
                         WGF_EINVAL);
        const char *want[] = {"energy.V: only read with potential = expression",
                              "energy.separable: only read with potential = expression",
                              "energy.sigma: not symmetric positive definite"};
        char *line = err.msg;
        for (size_t k = 0; k < 3; k++) {
            ck_assert_msg(line != NULL, "line %zu missing in \"%s\"", k + 1, err.msg);
            char *nl = strchr(line, '\n');
            ck_assert_msg(strncmp(line, "test.ini:", 9) == 0 && strstr(line, want[k]) &&
                              (!nl || strstr(line, want[k]) < nl),
                          "line %zu of \"%s\" is not \"%s\"", k + 1, err.msg, want[k]);
            line = nl ? nl + 1 : NULL;
        }
        ck_assert_ptr_null(line);
        ck_assert_ptr_null(e.st);
        energy_close(&e);
    }
    /* Every nesting counts, not only parentheses and signs: a chain
     * x1^x1^...^x1 150000 links long overflowed the stack, and so would one
     * of function calls or of alternating signs and powers. */
    const char *links[] = {"^x1", "^-x1", "^exp(x1"};
    for (size_t k = 0; k < sizeof links / sizeof *links; k++) {
        size_t n = 150000, ll = strlen(links[k]);
        char *chain = malloc(32 + n * (ll + 1));
        ck_assert_ptr_nonnull(chain);
        char *q = chain + sprintf(chain, "potential = expression\nV = x1");
        for (size_t i = 0; i < n; i++, q += ll)
            memcpy(q, links[k], ll);
        for (size_t i = 0; k == 2 && i < n; i++)
            *q++ = ')';
        *q = '\0';
        expect_error("fpe", chain, 2, "nested too deeply");
        free(chain);
    }
}
END_TEST

START_TEST(fpe_threads)
{
    check_threads("fpe", "potential = expression\nV = " QUARTIC3 " + x1*x2", 3, 3000);
    check_threads("fpe", "mu = 1\nsigma = full 2 0.5 0.1  0.5 1 -0.2  0.1 -0.2 0.5", 3, 10000);
    check_threads("fpe", "potential = expression\nseparable = 0.06*(x^4 - 16*x^2 + 5*x)", 3, 3000);
}
END_TEST

/* ----------------------------------------------------------------- pme */

START_TEST(pme_derivatives)
{
    check_derivatives("pme", "m = 2", 3, 6, 1.0);
    check_derivatives("pme", "m = 1.5\nweight = 0.7", 2, 5, 1.0);
}
END_TEST

/* rho^(m-1) = 1/4, 1, 4 for m = 3: Fhat = w/((m-1)N) sum = 1.5/6 * 5.25. */
START_TEST(pme_closed_form)
{
    energy e;
    energy_open(&e, "pme", "m = 3\nweight = 1.5", 2);
    ck_assert_uint_eq(e.vt->needs(e.st), WGF_NEEDS_L | WGF_WGRAD_NEEDS_L | WGF_WGRAD_NEEDS_S);
    const double l[] = {log(0.5), 0.0, log(2.0)}, rho2[] = {0.25, 1.0, 4.0};
    const double s[] = {1, 2, -3, 0.5, 0, 1}, gbar[] = {0.5, -1, 2, 1, -1, 3};
    wgf_batch b;
    ck_assert_int_eq(wgf_batch_alloc(&b, 3, 2, 1, 1), WGF_OK);
    memcpy(b.l, l, sizeof l);
    memcpy(b.s, s, sizeof s);
    double F, a[6], c[3], g[6], xbar[6] = {0}, lbar[3] = {1, 1, 1}, sbar[6] = {0};
    for (size_t k = 0; k < 6; k++)
        a[k] = NAN;
    wgf_error err = {0};
    ck_assert_msg(e.vt->eval(e.st, &b, &F, a, c, &err) == WGF_OK, "%s", err.msg);
    ck_assert_close(F, 1.3125, 1e-15);
    ck_assert_msg(e.vt->wgrad(e.st, &b, g, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(e.vt->wgrad_vjp(e.st, &b, gbar, xbar, lbar, sbar, &err) == WGF_OK, "%s", err.msg);
    for (size_t n = 0; n < 3; n++) {
        ck_assert_close(c[n], 0.5 * rho2[n], 1e-15);
        double sg = s[2 * n] * gbar[2 * n] + s[2 * n + 1] * gbar[2 * n + 1];
        ck_assert_close(lbar[n], 1.0 + 9.0 * rho2[n] * sg, 1e-14);
        for (size_t i = 0; i < 2; i++) {
            ck_assert(a[2 * n + i] == 0.0);
            ck_assert_close(g[2 * n + i], 4.5 * rho2[n] * s[2 * n + i], 1e-14);
            ck_assert_close(sbar[2 * n + i], 4.5 * rho2[n] * gbar[2 * n + i], 1e-14);
            ck_assert(xbar[2 * n + i] == 0.0);
        }
    }
    wgf_batch_free(&b);
    energy_close(&e);
}
END_TEST

/* --------------------------------------------------------- aggregation */

START_TEST(aggregation_derivatives)
{
    check_derivatives("aggregation", "", 3, 7, 1.0);
    check_derivatives("aggregation", "weight = 0.5", 2, 5, 0.5);
    check_derivatives("aggregation", "kernel = power\na = 3\nb = 1.5", 2, 6, 1.0);
    check_derivatives("aggregation", "kernel = power\na = 2\nb = 0.5", 3, 6, 1.0);
    check_derivatives("aggregation", "kernel = power\na = 2\nb = 1", 2, 6, 1.0);
    check_derivatives("aggregation", "kernel = power\na = 6\nb = 4\nweight = 0.3", 2, 6, 1.0);
}
END_TEST

/* x = (0,0), (1,0), (0,2): |y|^2 = 1, 4, 5 with W = -1/4, 2, 15/4 and
 * grad W = (|y|^2 - 1) y. */
START_TEST(aggregation_three_points)
{
    energy e;
    energy_open(&e, "aggregation", "", 2);
    ck_assert_uint_eq(e.vt->needs(e.st), 0u);
    wgf_batch b;
    ck_assert_int_eq(wgf_batch_alloc(&b, 3, 2, 0, 0), WGF_OK);
    const double x[] = {0, 0, 1, 0, 0, 2}, g_want[] = {0, -3, 2, -4, -2, 7};
    memcpy(b.x, x, sizeof x);
    double F, a[6], c[3], g[6];
    wgf_error err = {0};
    ck_assert_msg(e.vt->eval(e.st, &b, &F, a, c, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(e.vt->wgrad(e.st, &b, g, &err) == WGF_OK, "%s", err.msg);
    ck_assert_close(F, 5.5 / 6.0, 1e-15);
    for (size_t k = 0; k < 6; k++) {
        ck_assert_close(g[k], g_want[k], 1e-15);
        ck_assert_close(a[k], g_want[k] / 3.0, 1e-15); /* a = g/N */
    }
    for (size_t n = 0; n < 3; n++)
        ck_assert(c[n] == 0.0);
    wgf_batch_free(&b);
    energy_close(&e);
}
END_TEST

/* The plugin's tiled pair sums against plain double loops over pairs, with
 * several tiles per row (N above the tile length) and a tile length that is
 * not a power of two (d = 12). W = |y|^a/a - |y|^b/b, grad W = psi y,
 * Hess W u = psi u + chi (y . u) y (kernel.h). */
static void check_pairs(const char *body, double pa, double pb, size_t N, size_t d)
{
    energy e;
    energy_open(&e, "aggregation", body, d);
    wgf_batch b;
    random_batch(&b, N, d, 1.0, 21);
    outputs o;
    outputs_of(&e, &b, &o);
    double *gbar = filled(N * d, 0.0), *g = filled(N * d, 0.0), *h = filled(N * d, 0.0), *y = filled(d, 0.0);
    for (size_t k = 0; k < N * d; k++)
        gbar[k] = sin(1.0 + (double)k); /* as in outputs_of */
    double F = 0.0;
    for (size_t n = 0; n < N; n++)
        for (size_t k = 0; k < N; k++) {
            if (k == n)
                continue;
            double r2 = 0.0, yu = 0.0;
            for (size_t i = 0; i < d; i++) {
                y[i] = b.x[n * d + i] - b.x[k * d + i];
                r2 += y[i] * y[i];
                yu += y[i] * (gbar[n * d + i] - gbar[k * d + i]);
            }
            double r = sqrt(r2);
            double psi = pow(r, pa - 2) - pow(r, pb - 2);
            double chi = (pa - 2) * pow(r, pa - 4) - (pb - 2) * pow(r, pb - 4);
            F += pow(r, pa) / pa - pow(r, pb) / pb;
            for (size_t i = 0; i < d; i++) {
                g[n * d + i] += psi * y[i] / (double)(N - 1);
                h[n * d + i] += (psi * (gbar[n * d + i] - gbar[k * d + i]) + chi * yu * y[i]) / (double)(N - 1);
            }
        }
    F /= 2.0 * (double)N * (double)(N - 1);
    ck_assert_close(o.F, F, 1e-12);
    for (size_t k = 0; k < N * d; k++) {
        o.a[k] *= (double)N; /* a = g/N */
        h[k] += 0.5;         /* outputs_of accumulates onto 0.5 */
    }
    close_arrays(o.a, g, N * d, 1e-12, "N a");
    close_arrays(o.g, g, N * d, 1e-12, "g");
    close_arrays(o.xbar, h, N * d, 1e-12, "xbar");
    free(gbar);
    free(g);
    free(h);
    free(y);
    outputs_free(&o);
    wgf_batch_free(&b);
    energy_close(&e);
}

START_TEST(aggregation_pair_sums)
{
    check_pairs("", 4.0, 2.0, 1100, 3);
    check_pairs("kernel = power\na = 2\nb = 1", 2.0, 1.0, 600, 12);
}
END_TEST

/* Energy of N(mu, s^2 I) (MATH.md 6): (s^4 d(d+2) - s^2 d)/2. Fhat is a
 * U-statistic, F = mean_n h_n / 2 with h_n the row means of W; to first
 * order in 1/N its variance is Var(h(X))/N (Hoeffding), estimated here from
 * the h_n. The tolerance is 5 standard errors (a normal tail of 6e-7; the
 * seed is fixed, so the test is deterministic). The same loop checks Fhat
 * against a plain double sum to rounding. */
START_TEST(aggregation_gaussian_energy)
{
    const size_t N = 2000, d = 5;
    const double sd = 0.7, mu[] = {1.0, -2.0, 0.5, 0.0, 3.0};
    energy e;
    energy_open(&e, "aggregation", "", d);
    wgf_batch b;
    ck_assert_int_eq(wgf_batch_alloc(&b, N, d, 0, 0), WGF_OK);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 2024);
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < d; i++)
            b.x[n * d + i] = mu[i] + gsl_ran_gaussian(r, sd);
    gsl_rng_free(r);
    double F = F_of(&e, &b);
    double *h = filled(N, 0.0), total = 0.0;
    for (size_t n = 0; n < N; n++)
        for (size_t k = n + 1; k < N; k++) {
            double r2 = 0.0;
            for (size_t i = 0; i < d; i++)
                r2 += (b.x[n * d + i] - b.x[k * d + i]) * (b.x[n * d + i] - b.x[k * d + i]);
            double W = r2 * r2 / 4.0 - r2 / 2.0;
            h[n] += W / (double)(N - 1);
            h[k] += W / (double)(N - 1);
            total += W;
        }
    ck_assert_close(F, total / ((double)N * (double)(N - 1)), 1e-12);
    double hm = 0.0, hv = 0.0;
    for (size_t n = 0; n < N; n++)
        hm += h[n] / (double)N;
    for (size_t n = 0; n < N; n++)
        hv += (h[n] - hm) * (h[n] - hm) / (double)(N - 1);
    double se = sqrt(hv / (double)N), s2 = sd * sd;
    double exact = (s2 * s2 * (double)(d * (d + 2)) - s2 * (double)d) / 2.0;
    ck_assert_msg(fabs(F - exact) <= 5.0 * se, "F = %g, exact %g, standard error %g", F, exact, se);
    ck_assert_msg(se < 0.05 * exact, "standard error %g too large for a useful test", se);
    free(h);
    wgf_batch_free(&b);
    energy_close(&e);
}
END_TEST

/* The power kernel with a = 4, b = 2 is the quartic, also at coincident
 * samples (y = 0: psi = -1, the limit). Another power kernel stays finite
 * there. */
START_TEST(aggregation_power_matches_quartic)
{
    energy q, p;
    energy_open(&q, "aggregation", "weight = 2", 3);
    energy_open(&p, "aggregation", "kernel = power\na = 4\nb = 2\nweight = 2", 3);
    wgf_batch b;
    random_batch(&b, 40, 3, 1.0, 13);
    memcpy(b.x + 3, b.x, 3 * sizeof(double)); /* sample 1 = sample 0 */
    compare_energies(&q, &p, &b, 1e-14);
    energy_close(&p);
    energy_open(&p, "aggregation", "kernel = power\na = 3\nb = 1.5", 3);
    outputs o;
    outputs_of(&p, &b, &o);
    ck_assert(isfinite(o.F));
    for (size_t k = 0; k < 40 * 3; k++)
        ck_assert(isfinite(o.g[k]) && isfinite(o.xbar[k]));
    outputs_free(&o);
    wgf_batch_free(&b);
    energy_close(&q);
    energy_close(&p);
}
END_TEST

START_TEST(aggregation_errors)
{
    expect_error("aggregation", "kernel = power\na = 2\nb = 3", 2, "energy.a: must be greater than b");
}
END_TEST

START_TEST(aggregation_threads)
{
    check_threads("aggregation", "", 3, 403);
    check_threads("aggregation", "kernel = power\na = 3\nb = 1.5", 2, 301);
}
END_TEST

/* ------------------------------------------------------------ selftest */

/* wgf_selftest (the check `wgf selftest` runs) passes on every energy and
 * every potential and kernel. */
START_TEST(selftest_energies)
{
    static const char *const quadratic[] = {"energy.mu=1 0 -1",
                                            "energy.sigma=full 2 0.5 0.1 0.5 1 -0.2 0.1 -0.2 0.5",
                                            "energy.diffusion=0.7", "energy.weight=1.5"};
    static const char *const quartic[] = {"energy.potential=quartic", "energy.scale=0.06"};
    static const char *const expression[] = {"energy.potential=expression", "energy.V=" EXPR_ALL};
    static const char *const separable[] = {"energy.potential=expression",
                                            "energy.separable=0.06*(x^4 - 16*x^2 + 5*x) + sin(x)"};
    static const char *const nodiffusion[] = {"energy.potential=quartic", "energy.diffusion=0"};
    static const char *const pme[] = {"energy.m=1.7", "energy.weight=0.5"};
    static const char *const power[] = {"energy.kernel=power", "energy.a=3", "energy.b=1.5"};
    /* the multi-scale critic with its frequency ridge: the reverse pass goes through w*(x), whose
     * Hessian must be that of the objective with every feature's own ridge */
    static const char *const fdiv[] = {"energy.bandwidth=0.5 1", "energy.ridge_frequency=0.1",
                                       "energy.target_samples=50", "energy.count=16"};
    static const struct {
        const char *name;
        const char *const *sets;
        size_t nsets;
    } cases[] = {
        {"fpe", NULL, 0},
        {"fpe", quadratic, 4},
        {"fpe", quartic, 2},
        {"fpe", expression, 2},
        {"fpe", separable, 2},
        {"fpe", nodiffusion, 2},
        {"pme", NULL, 0},
        {"pme", pme, 2},
        {"aggregation", NULL, 0},
        {"aggregation", power, 3},
        {"fdiv", fdiv, 4},
    };
    wgf_registry *reg = test_registry();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        wgf_selftest_opts opts = {.dim = 3, .samples = 7, .seed = 1 + k, .sets = cases[k].sets,
                                  .nsets = cases[k].nsets};
        wgf_error err = {0};
        double worst = 1.0;
        int rc = wgf_selftest(reg, cases[k].name, &opts, NULL, &worst, &err);
        ck_assert_msg(rc == WGF_OK, "selftest %s (case %zu): %s", cases[k].name, k, err.msg);
        ck_assert_msg(worst < 1e-6, "selftest %s (case %zu): worst relative error %g", cases[k].name, k,
                      worst);
    }
    wgf_registry_free(reg);
}
END_TEST

static Suite *energies_suite(void)
{
    Suite *s = suite_create("energies");
    TCase *t = tcase_create("fpe");
    tcase_add_test(t, fpe_derivatives);
    tcase_add_test(t, fpe_expression_all);
    tcase_add_test(t, fpe_expression_syntax);
    tcase_add_test(t, fpe_quadratic_closed_form);
    tcase_add_test(t, fpe_quartic_closed_form);
    tcase_add_test(t, fpe_expression_matches_quartic);
    tcase_add_test(t, fpe_errors);
    tcase_add_test(t, fpe_threads);
    suite_add_tcase(s, t);
    t = tcase_create("pme");
    tcase_add_test(t, pme_derivatives);
    tcase_add_test(t, pme_closed_form);
    suite_add_tcase(s, t);
    t = tcase_create("aggregation");
    tcase_add_test(t, aggregation_derivatives);
    tcase_add_test(t, aggregation_three_points);
    tcase_add_test(t, aggregation_pair_sums);
    tcase_add_test(t, aggregation_gaussian_energy);
    tcase_add_test(t, aggregation_power_matches_quartic);
    tcase_add_test(t, aggregation_errors);
    tcase_add_test(t, aggregation_threads);
    suite_add_tcase(s, t);
    t = tcase_create("selftest");
    tcase_add_test(t, selftest_energies);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return test_main(energies_suite());
}
