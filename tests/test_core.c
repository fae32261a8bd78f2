/* test_core.c: the core's composition of plugins: batches in blocks, the
 * chain rule from energy partials to parameters, the G-hat product, the
 * natural-gradient solve, independence from the thread count, and the text
 * buffer every output file is formatted in. */
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <gsl/gsl_linalg.h>

#include "../core/internal.h"
#include "../core/strbuf.h"
#include "testutil.h"

/* Allocation counting: this program's malloc and calloc count calls while `counting` is set, and
 * pass every call on to glibc's allocator (which free() then releases as usual). Not under
 * AddressSanitizer, whose own malloc must see every call from the start. */
#if defined(__SANITIZE_ADDRESS__)
#define WGF_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WGF_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef WGF_COUNT_ALLOCATIONS
#define WGF_COUNT_ALLOCATIONS 1
#endif
#if WGF_COUNT_ALLOCATIONS
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
static int counting;
static unsigned long allocations;
void *malloc(size_t size)
{
    if (__atomic_load_n(&counting, __ATOMIC_RELAXED))
        __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED);
    return __libc_malloc(size);
}
void *calloc(size_t n, size_t size)
{
    if (__atomic_load_n(&counting, __ATOMIC_RELAXED))
        __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED);
    return __libc_calloc(n, size);
}
#endif

/* 3-D FPE with an anisotropic quadratic potential on a planar flow in two
 * stages; N = 600 spans three blocks, the last one partial. */
static const char planar_ini[] = "[run]\ndim = 3\nsamples = 600\nseed = 7\n"
                                 "[initial]\ntype = gaussian\nmean = 0.5 -0.2 0.1\n"
                                 "cov = diag 1 0.5 2\n"
                                 "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1 0 -1\n"
                                 "sigma = full 1 0.2 0 0.2 0.5 0.1 0 0.1 2\ndiffusion = 0.7\n"
                                 "[map]\nplugin = planar\nlayers = 4\nblock = 2\n"
                                 "[metric]\nplugin = lagrangian\ntol = 1e-12\nmaxiter = 500\n";

static wgf_eval *forward_eval(wgf_problem *p, size_t n)
{
    wgf_error err = {0};
    wgf_eval *ev = wgf_eval_create(p, n, WGF_EVAL_SCORE, &err);
    ck_assert_msg(ev != NULL, "%s", err.msg);
    ck_assert_msg(wgf_eval_draw(ev, WGF_STREAM_TRAIN, 3, &err) == WGF_OK, "%s", err.msg);
    ck_assert_msg(wgf_eval_forward(ev, wgf_problem_theta(p), &err) == WGF_OK, "%s", err.msg);
    return ev;
}

/* The chain rule (including the sign of the log-density cotangent) against
 * central differences of F in theta on fixed samples. */
START_TEST(test_energy_gradient_fd)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    test_perturb(p, 0.2);
    size_t P = wgf_problem_nparams(p);
    wgf_eval *ev = forward_eval(p, 600);
    double F, *grad = calloc(P, sizeof(double)), *th = calloc(P, sizeof(double));
    wgf_error err;
    ck_assert(wgf_problem_energy(p, ev, &F, grad, &err) == WGF_OK);
    memcpy(th, wgf_problem_theta(p), P * sizeof(double));
    double worst = 0, gmax = 0;
    for (size_t j = 0; j < P; j++) {
        double h = 1e-6, Fp, Fm, save = th[j];
        th[j] = save + h;
        ck_assert(wgf_eval_forward(ev, th, &err) == WGF_OK);
        ck_assert(wgf_problem_energy(p, ev, &Fp, NULL, &err) == WGF_OK);
        th[j] = save - h;
        ck_assert(wgf_eval_forward(ev, th, &err) == WGF_OK);
        ck_assert(wgf_problem_energy(p, ev, &Fm, NULL, &err) == WGF_OK);
        th[j] = save;
        double fd = (Fp - Fm) / (2 * h);
        worst = fmax(worst, fabs(fd - grad[j]));
        gmax = fmax(gmax, fabs(grad[j]));
    }
    /* central differences: O(h^2) truncation plus O(eps |F| / h) rounding */
    ck_assert_msg(worst <= 1e-6 * fmax(1, gmax), "worst |fd - grad| = %g (max |grad| %g)", worst, gmax);
    ck_assert(gmax > 1e-3); /* the test sees a real gradient */
    free(grad);
    free(th);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* G-hat v from the fused product against E[J^T J] formed column by column. */
START_TEST(test_gram_explicit)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    test_perturb(p, 0.3);
    size_t P = wgf_problem_nparams(p), n = 600, d = 3;
    wgf_eval *ev = forward_eval(p, n);
    double *cols = calloc(P * n * d, sizeof(double)), *e = calloc(P, sizeof(double));
    wgf_error err;
    for (size_t j = 0; j < P; j++) {
        e[j] = 1;
        ck_assert(wgf_eval_jvp(ev, e, cols + j * n * d, &err) == WGF_OK);
        e[j] = 0;
    }
    double *v = calloc(P, sizeof(double)), *out = calloc(P, sizeof(double));
    for (size_t j = 0; j < P; j++)
        v[j] = cos(0.9 * (double)j);
    ck_assert(wgf_eval_gram(ev, v, out, &err) == WGF_OK);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < P; i++) {
        double acc = 0;
        for (size_t j = 0; j < P; j++) {
            double gij = 0;
            for (size_t k = 0; k < n * d; k++)
                gij += cols[i * n * d + k] * cols[j * n * d + k];
            acc += gij / (double)n * v[j];
        }
        worst = fmax(worst, fabs(acc - out[i]));
        scale = fmax(scale, fabs(acc));
    }
    ck_assert_msg(worst <= 1e-12 * fmax(1, scale), "worst %g, scale %g", worst, scale);
    /* vjp is the adjoint of jvp: <xbar, J v> = <J^T xbar, v> */
    double *xbar = calloc(n * d, sizeof(double)), *jv = calloc(n * d, sizeof(double));
    for (size_t k = 0; k < n * d; k++)
        xbar[k] = sin(0.37 * (double)k);
    ck_assert(wgf_eval_jvp(ev, v, jv, &err) == WGF_OK);
    ck_assert(wgf_eval_vjp(ev, xbar, NULL, NULL, out, &err) == WGF_OK);
    double lhs = 0, rhs = 0;
    for (size_t k = 0; k < n * d; k++)
        lhs += xbar[k] * jv[k];
    for (size_t j = 0; j < P; j++)
        rhs += out[j] * v[j];
    ck_assert_close(lhs, rhs, 1e-11);
    free(xbar);
    free(jv);
    free(cols);
    free(e);
    free(v);
    free(out);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* The natural-gradient solve: G-hat zeta = grad F to the MINRES tolerance. */
START_TEST(test_natgrad_residual)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    test_perturb(p, 0.3);
    size_t P = wgf_problem_nparams(p);
    wgf_eval *ev = forward_eval(p, 600);
    double F, *g = calloc(P, sizeof(double)), *z = calloc(P, sizeof(double)), *mz = calloc(P, sizeof(double));
    wgf_error err;
    wgf_solve_stats st;
    ck_assert(wgf_problem_energy(p, ev, &F, g, &err) == WGF_OK);
    ck_assert_msg(wgf_problem_natgrad(p, ev, g, z, &st, &err) == WGF_OK, "%s", err.msg);
    ck_assert(wgf_problem_metric_apply(p, z, mz, &err) == WGF_OK);
    double r = 0, b = 0;
    for (size_t j = 0; j < P; j++) {
        r += (mz[j] - g[j]) * (mz[j] - g[j]);
        b += g[j] * g[j];
    }
    ck_assert_msg(st.converged, "MINRES did not converge: %u iterations, residual %g", st.iterations,
                  st.residual);
    ck_assert_msg(sqrt(r / b) <= 1e-9, "true relative residual %g", sqrt(r / b));
    ck_assert_close(st.residual, sqrt(r / b), 1e-6);
    free(g);
    free(z);
    free(mz);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* The dense (G-hat + eps I) of the metric as prepared, column by column from its products. */
static double *dense_metric(wgf_problem *p, size_t P, double eps)
{
    double *M = calloc(P * P, sizeof(double)), *e = calloc(P, sizeof(double));
    double *col = calloc(P, sizeof(double));
    wgf_error err;
    for (size_t j = 0; j < P; j++) {
        e[j] = 1.0;
        ck_assert(wgf_problem_metric_apply(p, e, col, &err) == WGF_OK);
        e[j] = 0.0;
        for (size_t i = 0; i < P; i++)
            M[i * P + j] = col[i] + (i == j ? eps : 0.0);
    }
    free(e);
    free(col);
    return M;
}

/* wgf_eval_gram_blocks on a batch of three blocks (the last partial) against the diagonal blocks of
 * the dense G-hat formed by products. */
START_TEST(test_gram_blocks_dense)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    test_perturb(p, 0.3);
    size_t P = wgf_problem_nparams(p), q = 0;
    wgf_eval *ev = forward_eval(p, 600);
    wgf_error err;
    ck_assert(wgf_problem_metric_prepare(p, ev, &err) == WGF_OK);
    double *M = dense_metric(p, P, 0.0);
    ck_assert_msg(wgf_eval_gram_blocks(ev, &q, NULL, &err) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(q, 7); /* 2 d + 1 */
    double *G = calloc(P * q, sizeof(double)), worst = 0.0, big = 0.0;
    ck_assert_msg(wgf_eval_gram_blocks(ev, &q, G, &err) == WGF_OK, "%s", err.msg);
    for (size_t b = 0; b < P / q; b++)
        for (size_t i = 0; i < q; i++)
            for (size_t j = 0; j < q; j++) {
                double ref = M[(b * q + i) * P + b * q + j];
                worst = fmax(worst, fabs(G[b * q * q + i * q + j] - ref));
                big = fmax(big, fabs(ref));
            }
    ck_assert_msg(worst <= 1e-12 * big, "blocks off by %g (largest entry %g)", worst, big);
    free(G);
    free(M);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* The natural-gradient solve with each [metric] preconditioner against GSL's LU solve of the dense
 * (G-hat + eps I): the same zeta; the preconditioner is built once per prepare, and jacobi on a map
 * without Gram blocks (affine) probes M's diagonal with P products, counted. */
START_TEST(test_natgrad_preconditioned)
{
    static const char *pcs[] = {"none", "jacobi", "block"};
    static const char *maps[] = {"planar\nlayers = 4\nblock = 2", "affine"};
    char ini[2048];
    for (size_t mi = 0; mi < 2; mi++)
        for (size_t k = 0; k < 3; k++) {
            const char *head = planar_ini, *cut = strstr(planar_ini, "[map]");
            snprintf(ini, sizeof ini, "%.*s[map]\nplugin = %s\n[metric]\nplugin = lagrangian\n"
                     "tol = 1e-12\nmaxiter = 500\ntikhonov = 1e-3\npreconditioner = %s\n",
                     (int)(cut - head), head, maps[mi], pcs[k]);
            wgf_problem *p = test_make_problem(ini, NULL, 0);
            test_perturb(p, 0.3);
            size_t P = wgf_problem_nparams(p);
            wgf_eval *ev = forward_eval(p, 600);
            double F, *g = calloc(3 * P, sizeof(double)), *z = g + P, *zd = g + 2 * P;
            wgf_error err;
            wgf_solve_stats st;
            ck_assert(wgf_problem_energy(p, ev, &F, g, &err) == WGF_OK);
            ck_assert_msg(wgf_problem_natgrad(p, ev, g, z, &st, &err) == WGF_OK, "%s", err.msg);
            ck_assert_msg(st.converged, "%s %s: %u iterations, residual %g", maps[mi], pcs[k],
                          st.iterations, st.residual);
            /* products: one per iteration and the final residual's, and P probes for the diagonal
             * when the map has no blocks */
            unsigned long probes = mi == 1 && k == 1 ? P : 0;
            ck_assert_uint_eq(st.products, st.iterations + 1 + probes);
            wgf_solve_stats again;
            ck_assert(wgf_problem_metric_solve(p, g, zd, &again, &err) == WGF_OK);
            ck_assert_uint_eq(again.products, again.iterations + 1);
            double *M = dense_metric(p, P, 1e-3);
            gsl_matrix_view Mv = gsl_matrix_view_array(M, P, P);
            gsl_permutation *perm = gsl_permutation_alloc(P);
            int sgn;
            gsl_linalg_LU_decomp(&Mv.matrix, perm, &sgn);
            gsl_vector_const_view gv = gsl_vector_const_view_array(g, P);
            gsl_vector_view zv = gsl_vector_view_array(zd, P);
            gsl_linalg_LU_solve(&Mv.matrix, perm, &gv.vector, &zv.vector);
            double num = 0.0, den = 0.0;
            for (size_t j = 0; j < P; j++) {
                num += (z[j] - zd[j]) * (z[j] - zd[j]);
                den += zd[j] * zd[j];
            }
            ck_assert_msg(sqrt(num / den) <= 1e-8, "%s %s: |zeta - direct| / |direct| = %g", maps[mi],
                          pcs[k], sqrt(num / den));
            gsl_permutation_free(perm);
            free(M);
            free(g);
            wgf_eval_free(ev);
            wgf_problem_free(p);
        }
}
END_TEST

/* A metric product, a vjp and a forward pass allocate nothing: MINRES makes hundreds of products
 * per step. */
#if WGF_COUNT_ALLOCATIONS
START_TEST(test_products_do_not_allocate)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    test_perturb(p, 0.3);
    size_t P = wgf_problem_nparams(p), n = 600, d = 3;
    wgf_eval *ev = forward_eval(p, n);
    double *v = calloc(P, sizeof(double)), *out = calloc(P, sizeof(double));
    double *xbar = calloc(n * d, sizeof(double));
    for (size_t j = 0; j < P; j++)
        v[j] = cos(0.9 * (double)j);
    for (size_t k = 0; k < n * d; k++)
        xbar[k] = sin(0.37 * (double)k);
    wgf_error err;
    ck_assert(wgf_eval_gram(ev, v, out, &err) == WGF_OK); /* first use: the map may set up */
    __atomic_store_n(&counting, 1, __ATOMIC_RELAXED);
    int rc1 = wgf_eval_gram(ev, v, out, &err);
    int rc2 = wgf_eval_vjp(ev, xbar, NULL, NULL, out, &err);
    int rc3 = wgf_eval_forward(ev, wgf_problem_theta(p), &err);
    __atomic_store_n(&counting, 0, __ATOMIC_RELAXED);
    ck_assert(rc1 == WGF_OK && rc2 == WGF_OK && rc3 == WGF_OK);
    ck_assert_msg(allocations == 0, "%lu allocations in a product, a vjp and a forward pass",
                  allocations);
    free(v);
    free(out);
    free(xbar);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST
#endif

/* ------------------------------------------------------------ needs */

/* An experiment on the test plugins (WGF_TEST_PLUGINS) and the built-in ones: [run] with the
 * plugin path, then body. Returns wgf_problem_create's status; *p is NULL on failure. */
static int try_problem(const char *body, wgf_problem **p, wgf_error *err, char *file, size_t size)
{
    const char *dir = getenv("WGF_TEST_PLUGINS");
    ck_assert_msg(dir != NULL, "WGF_TEST_PLUGINS is not set (run through make check)");
    size_t n = strlen(dir) + strlen(body) + 128;
    char *text = malloc(n);
    ck_assert_ptr_nonnull(text);
    snprintf(text, n, "[run]\ndim = 2\nsamples = 300\nseed = 4\nplugin_path = %s\n%s", dir, body);
    int rc = test_try_problem(text, NULL, 0, p, err, file, size);
    free(text);
    return rc;
}

/* The configuration's error, exactly. */
static void refused(const char *body, const char *expect_fmt)
{
    char file[256], expect[1024];
    wgf_problem *p;
    wgf_error err;
    int rc = try_problem(body, &p, &err, file, sizeof file);
    ck_assert_int_eq(rc, WGF_EINVAL);
    ck_assert_ptr_null(p);
    snprintf(expect, sizeof expect, expect_fmt, file);
    ck_assert_str_eq(err.msg, expect);
}

static const char score_body[] = "[initial]\ntype = gaussian\nmean = 0.3 -0.5\ncov = full 1 0.4 0.4 2\n"
                                 "[energy]\nplugin = scoreenergy\nw = 0.8\n"
                                 "[map]\nplugin = affine\n";

/* An energy that reads s: a batch made without asking for scores (as euler makes it) has them,
 * and the gradient includes the score path, against central differences in theta. */
START_TEST(test_score_energy_gradient_fd)
{
    char file[256];
    wgf_problem *p;
    wgf_error err;
    ck_assert_msg(try_problem(score_body, &p, &err, file, sizeof file) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(wgf_problem_energy_needs(p), WGF_NEEDS_S);
    test_perturb(p, 0.2);
    size_t P = wgf_problem_nparams(p);
    wgf_eval *ev = wgf_eval_create(p, 300, 0, &err);
    ck_assert_msg(ev != NULL, "%s", err.msg);
    ck_assert(wgf_eval_draw(ev, WGF_STREAM_TRAIN, 1, &err) == WGF_OK);
    ck_assert(wgf_eval_forward(ev, wgf_problem_theta(p), &err) == WGF_OK);
    ck_assert_ptr_nonnull(wgf_eval_batch(ev, 1)->s);
    double F, *grad = calloc(P, sizeof(double)), *th = calloc(P, sizeof(double));
    ck_assert_msg(wgf_problem_energy(p, ev, &F, grad, &err) == WGF_OK, "%s", err.msg);
    memcpy(th, wgf_problem_theta(p), P * sizeof(double));
    double worst = 0, gmax = 0;
    for (size_t j = 0; j < P; j++) {
        double h = 1e-6, Fp, Fm, save = th[j];
        th[j] = save + h;
        ck_assert(wgf_eval_forward(ev, th, &err) == WGF_OK);
        ck_assert(wgf_problem_energy(p, ev, &Fp, NULL, &err) == WGF_OK);
        th[j] = save - h;
        ck_assert(wgf_eval_forward(ev, th, &err) == WGF_OK);
        ck_assert(wgf_problem_energy(p, ev, &Fm, NULL, &err) == WGF_OK);
        th[j] = save;
        double fd = (Fp - Fm) / (2 * h);
        worst = fmax(worst, fabs(fd - grad[j]));
        gmax = fmax(gmax, fabs(grad[j]));
    }
    ck_assert_msg(worst <= 1e-6 * fmax(1, gmax), "worst |fd - grad| = %g (max |grad| %g)", worst, gmax);
    ck_assert(gmax > 1e-2);
    free(grad);
    free(th);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* An energy that reads s without eval_s could not give its gradient: refused at configuration. */
START_TEST(test_score_energy_without_eval_s)
{
    refused("[initial]\ntype = gaussian\n[energy]\nplugin = scorenoevals\n[map]\nplugin = affine\n",
            "%s:9: energy.plugin: energy 'scorenoevals' reads the score s in eval but has no eval_s, "
            "so its gradient in the parameters cannot be formed (an energy that reads s must give "
            "dF/ds through eval_s, plugin ABI 2)");
}
END_TEST

/* A scheme's needs against the energy, the law and the map, at configuration. */
START_TEST(test_scheme_needs)
{
    refused("[initial]\ntype = gaussian\n[energy]\nplugin = scoreenergy\n[map]\nplugin = affine\n"
            "[scheme]\nplugin = needyscheme\nneeds = wgrad\n",
            "%s:13: scheme.plugin: scheme 'needyscheme' needs the energy's Wasserstein gradient "
            "(wgrad), which energy 'scoreenergy' [energy] does not provide (choose another scheme, "
            "e.g. euler, or energy)");
    refused("[initial]\ntype = uniform\n[energy]\nplugin = fpe\n[map]\nplugin = affine\n"
            "[scheme]\nplugin = needyscheme\nneeds = scores\n",
            "%s:13: scheme.plugin: scheme 'needyscheme': the scheme needs scores, and the uniform "
            "initial law has no score (use gaussian or barenblatt)");
    refused("[initial]\ntype = gaussian\n[energy]\nplugin = fpe\n[map]\nplugin = abi1map\n"
            "[scheme]\nplugin = needyscheme\nneeds = wgrad\n",
            "%s:13: scheme.plugin: scheme 'needyscheme': the scheme needs the Wasserstein gradient, "
            "which reads the score, and map 'abi1map' cannot push scores forward (it has no score "
            "function)");
    refused("[initial]\ntype = gaussian\n[energy]\nplugin = scoreenergy\n[map]\nplugin = abi1map\n",
            "%s:11: map.plugin: map 'abi1map' cannot push scores forward (it has no score function), "
            "which the energy reads");
    /* what is there is accepted, and the batches carry what the scheme needs */
    char file[256];
    wgf_problem *p;
    wgf_error err;
    ck_assert_msg(try_problem("[initial]\ntype = gaussian\n[energy]\nplugin = fpe\n[map]\nplugin = affine\n"
                              "[scheme]\nplugin = needyscheme\nneeds = stages wgrad_vjp\n",
                              &p, &err, file, sizeof file) == WGF_OK, "%s", err.msg);
    wgf_eval *ev = wgf_eval_create(p, 10, 0, &err);
    ck_assert_ptr_nonnull(ev);
    ck_assert(wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    ck_assert(wgf_eval_forward(ev, wgf_problem_theta(p), &err) == WGF_OK);
    double g[20];
    ck_assert_msg(wgf_problem_wgrad(p, ev, 1, g, &err) == WGF_OK, "%s", err.msg);
    /* The output samples' batch (WGF_EVAL_AS_ASKED) has no scores all the same, and the same x
     * and l to the bit. */
    const wgf_batch *b = wgf_eval_batch(ev, 1);
    ck_assert_ptr_nonnull(b->s);
    wgf_eval *out = wgf_eval_create(p, 10, WGF_EVAL_AS_ASKED, &err);
    ck_assert_ptr_nonnull(out);
    ck_assert(wgf_eval_draw(out, WGF_STREAM_TRAIN, 0, &err) == WGF_OK);
    ck_assert(wgf_eval_forward(out, wgf_problem_theta(p), &err) == WGF_OK);
    const wgf_batch *bo = wgf_eval_batch(out, 1);
    ck_assert_ptr_null(bo->s);
    ck_assert_ptr_null(wgf_eval_batch(out, 0)->s);
    ck_assert(memcmp(bo->x, b->x, 10 * b->d * sizeof(double)) == 0);
    ck_assert(memcmp(bo->l, b->l, 10 * sizeof(double)) == 0);
    /* Without log-densities (wgf_eval_drop_l): no l, the same x to the bit. */
    wgf_eval_drop_l(out);
    ck_assert(wgf_eval_forward(out, wgf_problem_theta(p), &err) == WGF_OK);
    bo = wgf_eval_batch(out, 1);
    ck_assert_ptr_null(bo->l);
    ck_assert_ptr_null(wgf_eval_batch(out, 0)->l);
    ck_assert(memcmp(bo->x, b->x, 10 * b->d * sizeof(double)) == 0);
    wgf_eval_free(out);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* ------------------------------------------------------------ scheme helpers */

/* k vjps at once equal k single vjps: bitwise through the loop fallback (planar), to rounding
 * through a map's fused member (affine). Sets mix x-, l- and s-cotangents, and empty entries. */
static void check_vjp_many(wgf_problem *p, size_t n, double tol)
{
    size_t P = wgf_problem_nparams(p), d = wgf_problem_get_info(p)->dim, k = 3;
    wgf_eval *ev = forward_eval(p, n);
    double *buf = calloc(k * (2 * n * d + n), sizeof(double));
    double *many = calloc(2 * k * P, sizeof(double)), *one = many + k * P;
    const double *xb[3], *lb[3], *sb[3];
    double *out[3];
    for (size_t j = 0; j < k; j++) {
        double *x = buf + j * (2 * n * d + n), *l = x + n * d, *sv = l + n;
        for (size_t i = 0; i < n * d; i++) {
            x[i] = sin(0.37 * (double)i + (double)j);
            sv[i] = cos(0.21 * (double)i - (double)j);
        }
        for (size_t i = 0; i < n; i++)
            l[i] = cos(0.5 * (double)i * (double)(j + 1));
        xb[j] = j == 1 ? NULL : x;
        lb[j] = j == 2 ? NULL : l;
        sb[j] = j == 0 ? NULL : sv;
        out[j] = many + j * P;
    }
    wgf_error err;
    ck_assert_msg(wgf_eval_vjp_many(ev, k, xb, lb, sb, out, &err) == WGF_OK, "%s", err.msg);
    double worst = 0, scale = 0;
    for (size_t j = 0; j < k; j++) {
        ck_assert(wgf_eval_vjp(ev, xb[j], lb[j], sb[j], one, &err) == WGF_OK);
        for (size_t i = 0; i < P; i++) {
            worst = fmax(worst, fabs(one[i] - out[j][i]));
            scale = fmax(scale, fabs(one[i]));
        }
    }
    ck_assert_msg(worst <= tol * scale, "|many - loop| = %g, scale %g", worst, scale);
    ck_assert(scale > 1e-3);
    /* no l- or s-cotangents at all */
    ck_assert(wgf_eval_vjp_many(ev, 2, xb, NULL, NULL, out, &err) == WGF_OK);
    ck_assert(wgf_eval_vjp(ev, xb[0], NULL, NULL, one, &err) == WGF_OK);
    for (size_t i = 0; i < P; i++)
        ck_assert(fabs(one[i] - out[0][i]) <= tol * scale);
    free(buf);
    free(many);
    wgf_eval_free(ev);
}

START_TEST(test_vjp_many_equals_loop)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    test_perturb(p, 0.3);
    check_vjp_many(p, 600, 0.0);
    wgf_problem_free(p);
    p = test_make_problem("[run]\ndim = 3\nsamples = 600\nseed = 7\n"
                          "[initial]\ntype = gaussian\nmean = 0.5 -0.2 0.1\ncov = diag 1 0.5 2\n"
                          "[energy]\nplugin = fpe\n[map]\nplugin = affine\n",
                          NULL, 0);
    test_perturb(p, 0.3);
    check_vjp_many(p, 600, 1e-12);
    wgf_problem_free(p);
}
END_TEST

/* Prepare once, solve several right-hand sides: each solve is natgrad's, bitwise. */
START_TEST(test_metric_prepare_solve)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    test_perturb(p, 0.3);
    size_t P = wgf_problem_nparams(p);
    double *r = calloc(4 * P, sizeof(double)), *z1 = r + P, *z2 = r + 2 * P, *z3 = r + 3 * P;
    wgf_error err;
    wgf_solve_stats st;
    ck_assert_int_eq(wgf_problem_metric_solve(p, r, z1, &st, &err), WGF_EINVAL);
    ck_assert_str_eq(err.msg, "metric 'lagrangian' solved before it was prepared");
    wgf_eval *ev = forward_eval(p, 600);
    for (size_t j = 0; j < P; j++)
        r[j] = cos(0.3 * (double)j);
    ck_assert(wgf_problem_natgrad(p, ev, r, z1, &st, &err) == WGF_OK);
    ck_assert(wgf_problem_metric_prepare(p, ev, &err) == WGF_OK);
    ck_assert(wgf_problem_metric_solve(p, r, z2, &st, &err) == WGF_OK);
    ck_assert(wgf_problem_metric_solve(p, r, z3, &st, &err) == WGF_OK);
    ck_assert(st.products > 0);
    ck_assert(memcmp(z1, z2, P * sizeof(double)) == 0);
    ck_assert(memcmp(z1, z3, P * sizeof(double)) == 0);
    free(r);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* The identity metric (no metric): the natural gradient is the gradient itself, bit for bit, with
 * no product spent, and the metric applied to v is v. */
START_TEST(test_identity_metric)
{
    char *ini = malloc(sizeof planar_ini + 64);
    ck_assert_ptr_nonnull(ini);
    strcpy(ini, planar_ini);
    char *m = strstr(ini, "plugin = lagrangian");
    ck_assert_ptr_nonnull(m);
    memcpy(m, "plugin = identity  ", strlen("plugin = lagrangian"));
    wgf_problem *p = test_make_problem(ini, NULL, 0);
    free(ini);
    test_perturb(p, 0.2);
    size_t P = wgf_problem_nparams(p);
    wgf_eval *ev = forward_eval(p, 600);
    double F, *g = calloc(3 * P, sizeof(double)), *z = g + P, *out = g + 2 * P;
    wgf_error err;
    wgf_solve_stats st;
    ck_assert(wgf_problem_energy(p, ev, &F, g, &err) == WGF_OK);
    ck_assert_msg(wgf_problem_natgrad(p, ev, g, z, &st, &err) == WGF_OK, "%s", err.msg);
    ck_assert(memcmp(g, z, P * sizeof(double)) == 0);
    ck_assert_uint_eq(st.products, 0);
    ck_assert(wgf_problem_metric_apply(p, g, out, &err) == WGF_OK);
    ck_assert(memcmp(g, out, P * sizeof(double)) == 0);
    free(g);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* The check alone neither projects nor writes: planar layer 1 with u.w = -2. */
START_TEST(test_check_only)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    size_t P = wgf_problem_nparams(p);
    double *th = calloc(2 * P, sizeof(double)), *copy = th + P;
    memcpy(th, wgf_problem_theta(p), P * sizeof(double));
    th[0] = -2; /* u = (-2, 0, 0), w = (1, 0, 0) */
    th[1] = th[2] = 0;
    th[3] = 1;
    th[4] = th[5] = 0;
    memcpy(copy, th, P * sizeof(double));
    wgf_error err;
    ck_assert_int_eq(wgf_problem_check(p, th, &err), WGF_ENUMERIC);
    ck_assert_msg(strstr(err.msg, "planar layer 1: u.w = -2") != NULL, "%s", err.msg);
    ck_assert(memcmp(th, copy, P * sizeof(double)) == 0);
    ck_assert_int_eq(wgf_problem_constrain(p, th, &err), WGF_OK); /* projects */
    ck_assert(th[0] != -2);
    ck_assert_int_eq(wgf_problem_check(p, th, &err), WGF_OK);
    free(th);
    wgf_problem_free(p);
}
END_TEST

/* Blocks make sums independent of the thread count, to the bit. */
START_TEST(test_threads_bitwise)
{
#ifdef _OPENMP
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    test_perturb(p, 0.3);
    size_t P = wgf_problem_nparams(p);
    double *out1 = calloc(P, sizeof(double)), *out2 = calloc(P, sizeof(double));
    double *v = calloc(P, sizeof(double));
    for (size_t j = 0; j < P; j++)
        v[j] = 1.0 / (1.0 + (double)j);
    double F1, F2;
    wgf_error err;
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        wgf_eval *ev = forward_eval(p, 1000);
        double *out = t == 1 ? out1 : out2;
        ck_assert(wgf_eval_gram(ev, v, out, &err) == WGF_OK);
        ck_assert(wgf_problem_energy(p, ev, t == 1 ? &F1 : &F2, NULL, &err) == WGF_OK);
        wgf_eval_free(ev);
    }
    ck_assert(memcmp(out1, out2, P * sizeof(double)) == 0);
    ck_assert(memcmp(&F1, &F2, sizeof F1) == 0);
    free(out1);
    free(out2);
    free(v);
    wgf_problem_free(p);
#endif
}
END_TEST

/* A forward-only batch (a tape per thread, reused block after block) gives the batch of one
 * with a tape per block to the bit, x, l and s of every kept stage, with one thread or two (600
 * samples: three blocks, the last partial, so a lane serves blocks of two lengths), and refuses
 * derivatives. */
START_TEST(test_forward_only_batch)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    test_perturb(p, 0.3);
    wgf_eval *ref = forward_eval(p, 600);
    const wgf_batch *want = wgf_eval_batch(ref, wgf_eval_nstages(ref));
    wgf_error err = {0};
    for (int t = 1; t <= 2; t++) {
#ifdef _OPENMP
        omp_set_num_threads(t);
#endif
        wgf_eval *ev = wgf_eval_create(p, 600, WGF_EVAL_SCORE | WGF_EVAL_FORWARD_ONLY, &err);
        ck_assert_msg(ev != NULL, "%s", err.msg);
        ck_assert(wgf_eval_draw(ev, WGF_STREAM_TRAIN, 3, &err) == WGF_OK);
        for (int again = 0; again < 2; again++) { /* the second forward on used tapes */
            ck_assert_msg(wgf_eval_forward(ev, wgf_problem_theta(p), &err) == WGF_OK, "%s", err.msg);
            const wgf_batch *b = wgf_eval_batch(ev, wgf_eval_nstages(ev));
            ck_assert(memcmp(b->x, want->x, 600 * 3 * sizeof(double)) == 0);
            ck_assert(memcmp(b->l, want->l, 600 * sizeof(double)) == 0);
            ck_assert(memcmp(b->s, want->s, 600 * 3 * sizeof(double)) == 0);
        }
        double v[64] = {0}, jx[1800];
        ck_assert_int_le(wgf_problem_nparams(p), 64);
        ck_assert_int_eq(wgf_eval_jvp(ev, v, jx, &err), WGF_EINVAL);
        ck_assert_int_eq(wgf_eval_gram(ev, v, jx, &err), WGF_EINVAL);
        ck_assert_int_eq(wgf_eval_vjp(ev, jx, NULL, NULL, v, &err), WGF_EINVAL);
        wgf_eval_free(ev);
    }
    wgf_eval_free(ref);
    wgf_problem_free(p);
}
END_TEST

/* Samples of a block depend on (seed, family, step, block) only. */
START_TEST(test_draw_reproducible)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    wgf_error err;
    wgf_eval *a = wgf_eval_create(p, 700, 0, &err), *b = wgf_eval_create(p, 300, 0, &err);
    ck_assert(a && b);
    ck_assert(wgf_eval_draw(a, WGF_STREAM_TRAIN, 5, &err) == WGF_OK);
    ck_assert(wgf_eval_draw(b, WGF_STREAM_TRAIN, 5, &err) == WGF_OK);
    /* the first 256 samples (block 0) agree; a batch's size does not shift streams */
    ck_assert(memcmp(wgf_eval_z(a), wgf_eval_z(b), 256 * 3 * sizeof(double)) == 0);
    ck_assert(wgf_eval_draw(b, WGF_STREAM_TRAIN, 6, &err) == WGF_OK);
    ck_assert(memcmp(wgf_eval_z(a), wgf_eval_z(b), 3 * sizeof(double)) != 0);
    /* sample moments of N(m, diag(1, 0.5, 2)) with 700 samples: 5 sigma */
    double m[3], C[9];
    wgf_moments(700, 3, wgf_eval_z(a), m, C);
    ck_assert(fabs(m[0] - 0.5) < 5 * sqrt(1.0 / 700));
    ck_assert(fabs(m[2] - 0.1) < 5 * sqrt(2.0 / 700));
    ck_assert(fabs(C[4] - 0.5) < 5 * 0.5 * sqrt(2.0 / 700));
    wgf_eval_free(a);
    wgf_eval_free(b);
    wgf_problem_free(p);
}
END_TEST

/* The planar flow at its initial parameters is the identity: x = z and
 * l = log lambda(z) exactly. */
START_TEST(test_planar_initial_identity)
{
    wgf_problem *p = test_make_problem(planar_ini, NULL, 0);
    wgf_eval *ev = forward_eval(p, 600);
    const wgf_batch *b0 = wgf_eval_batch(ev, 0), *bS = wgf_eval_batch(ev, wgf_eval_nstages(ev));
    ck_assert(memcmp(b0->x, bS->x, 600 * 3 * sizeof(double)) == 0);
    ck_assert(memcmp(b0->l, bS->l, 600 * sizeof(double)) == 0);
    ck_assert(memcmp(b0->s, bS->s, 600 * 3 * sizeof(double)) == 0);
    wgf_eval_free(ev);
    wgf_problem_free(p);
}
END_TEST

/* wgf_strbuf_printf formats into the room left and again after growing when
 * that is too small: pieces of every length up to 700 characters (past the
 * first 256 bytes and many later doublings, some exactly filling the room)
 * give the text snprintf gives. */
START_TEST(test_strbuf_printf)
{
    static char want[400000];
    char pad[701];
    memset(pad, 'x', 700);
    pad[700] = '\0';
    wgf_strbuf b = {0};
    size_t len = 0;
    for (int k = 0; k <= 700; k++) {
        double v = 1.0 / (k + 3.0);
        int w = (k * 37) % 701;
        wgf_strbuf_printf(&b, "%.*s|%.10g,", w, pad, v);
        len += (size_t)snprintf(want + len, sizeof want - len, "%.*s|%.10g,", w, pad, v);
        ck_assert_uint_eq(b.len, len);
    }
    ck_assert(!b.failed);
    ck_assert_uint_eq(strlen(b.s), len);
    ck_assert(memcmp(b.s, want, len + 1) == 0);
    wgf_strbuf_free(&b);
}
END_TEST

/* wgf_strbuf_g10 writes what "%.10g" writes: values over the magnitudes of
 * its own digits (1e-10 to 1e10) and beyond, both signs, halfway cases of the
 * tenth digit and their neighbours, powers of ten and their neighbours, random
 * bit patterns (subnormals, huge, non-finite) and zeros of both signs. */
START_TEST(test_strbuf_g10)
{
    uint64_t st = UINT64_C(0x9e3779b97f4a7c15);
    char want[64];
    size_t n = 0;
    for (int i = 0; i < 250000; i++) {
        double v;
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        switch (i % 5) {
        case 0: v = pow(10.0, -13.0 + 26.0 * (double)(st >> 11) / 9007199254740992.0); break;
        case 1: memcpy(&v, &st, sizeof v); break;
        case 2: /* d.ddddddddd5 10^e: a tie at the tenth digit when exact, else close to one */
            v = ((double)(st % UINT64_C(9000000000) + UINT64_C(1000000000)) + 0.5) *
                pow(10.0, (double)((int)(st >> 40) % 21 - 19));
            break;
        case 3: v = (double)(st % UINT64_C(20000000001)) / 2.0; break; /* exact ties, integers */
        default: v = ldexp((double)(st >> 11), -(int)(st % 97)); break;
        }
        if (i & 1)
            v = -v;
        for (int k = -1; k <= 1; k++) {
            double w = k == 0 ? v : nextafter(v, k * INFINITY);
            wgf_strbuf b = {0};
            wgf_strbuf_g10(&b, w);
            snprintf(want, sizeof want, "%.10g", w);
            ck_assert_msg(!b.failed && strcmp(b.s, want) == 0, "%a: %s, %%.10g gives %s", w, b.s, want);
            wgf_strbuf_free(&b);
            n++;
        }
    }
    const double special[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 5e-324, 1e-10, 1e-5, 1e-4, 1e10,
                              9999999999.5, 9999999999.4, 0.99999999995, 1234567890.5, 1234567891.5};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++)
        for (int e = -12; e <= 12; e++) {
            double w = special[i] * (i < 6 ? 1.0 : pow(10.0, (double)e));
            wgf_strbuf b = {0};
            wgf_strbuf_g10(&b, w);
            snprintf(want, sizeof want, "%.10g", w);
            ck_assert_msg(strcmp(b.s, want) == 0, "%a: %s, %%.10g gives %s", w, b.s, want);
            wgf_strbuf_free(&b);
        }
    ck_assert_uint_eq(n, 750000);
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_energy_gradient_fd);
    tcase_add_test(tc, test_gram_explicit);
    tcase_add_test(tc, test_natgrad_residual);
    tcase_add_test(tc, test_gram_blocks_dense);
    tcase_add_test(tc, test_natgrad_preconditioned);
#if WGF_COUNT_ALLOCATIONS
    tcase_add_test(tc, test_products_do_not_allocate);
#endif
    tcase_add_test(tc, test_score_energy_gradient_fd);
    tcase_add_test(tc, test_score_energy_without_eval_s);
    tcase_add_test(tc, test_scheme_needs);
    tcase_add_test(tc, test_vjp_many_equals_loop);
    tcase_add_test(tc, test_metric_prepare_solve);
    tcase_add_test(tc, test_identity_metric);
    tcase_add_test(tc, test_check_only);
    tcase_add_test(tc, test_threads_bitwise);
    tcase_add_test(tc, test_draw_reproducible);
    tcase_add_test(tc, test_forward_only_batch);
    tcase_add_test(tc, test_planar_initial_identity);
    tcase_add_test(tc, test_strbuf_printf);
    tcase_add_test(tc, test_strbuf_g10);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_main(core_suite()); }
