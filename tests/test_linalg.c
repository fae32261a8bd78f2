/* test_linalg.c: MINRES against direct solves (Cholesky, LU, the
 * pseudo-inverse from an SVD) and the dense helpers against hand values. */
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_randist.h>

#include "testutil.h"

/* ---------------------------------------------------------------- operators */

/* A dense symmetric operator; calls counts applications, nan_at makes the
 * nan_at-th application return NaN, fail_at makes it fail. */
typedef struct dense_op {
    size_t n;
    const double *A;
    unsigned calls, nan_at, fail_at;
} dense_op;

static int dense_apply(void *user, const double *v, double *out, wgf_error *err)
{
    dense_op *op = user;
    op->calls++;
    if (op->fail_at && op->calls == op->fail_at)
        return wgf_error_set(err, WGF_EINTR, "interrupted inside the product");
    for (size_t i = 0; i < op->n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < op->n; j++)
            s += op->A[i * op->n + j] * v[j];
        out[i] = s;
    }
    if (op->nan_at && op->calls == op->nan_at)
        out[op->n / 2] = NAN;
    return WGF_OK;
}

/* A = Q diag(lambda) Q^T with Q a random orthogonal matrix (QR of a Gaussian
 * matrix), so the spectrum is exactly what the test asks for. */
static double *sym_with_spectrum(size_t n, const double *lambda, gsl_rng *r)
{
    gsl_matrix *G = gsl_matrix_alloc(n, n), *Q = gsl_matrix_alloc(n, n), *R = gsl_matrix_alloc(n, n);
    gsl_vector *tau = gsl_vector_alloc(n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            gsl_matrix_set(G, i, j, gsl_ran_gaussian(r, 1.0));
    gsl_linalg_QR_decomp(G, tau);
    gsl_linalg_QR_unpack(G, tau, Q, R);
    double *A = malloc(n * n * sizeof *A);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0.0;
            for (size_t k = 0; k < n; k++)
                s += gsl_matrix_get(Q, i, k) * lambda[k] * gsl_matrix_get(Q, j, k);
            A[i * n + j] = s;
        }
    /* Exactly symmetric. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            A[i * n + j] = A[j * n + i];
    gsl_matrix_free(G);
    gsl_matrix_free(Q);
    gsl_matrix_free(R);
    gsl_vector_free(tau);
    return A;
}

static double vnorm(size_t n, const double *a)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * a[i];
    return sqrt(s);
}

static double vdiff(size_t n, const double *a, const double *b)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s);
}

/* |b - (A + shift) x| / |b| computed independently of the solver. */
static double true_residual(size_t n, const double *A, double shift, const double *b, const double *x)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r = b[i] - shift * x[i];
        for (size_t j = 0; j < n; j++)
            r -= A[i * n + j] * x[j];
        s += r * r;
    }
    return sqrt(s) / vnorm(n, b);
}

/* x = (A + shift I)^{-1} b by GSL's LU (no symmetry or definiteness assumed). */
static void lu_solve(size_t n, const double *A, double shift, const double *b, double *x)
{
    gsl_matrix *M = gsl_matrix_alloc(n, n);
    gsl_permutation *perm = gsl_permutation_alloc(n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            gsl_matrix_set(M, i, j, A[i * n + j] + (i == j ? shift : 0.0));
    int sgn;
    gsl_linalg_LU_decomp(M, perm, &sgn);
    gsl_vector_const_view bv = gsl_vector_const_view_array(b, n);
    gsl_vector_view xv = gsl_vector_view_array(x, n);
    gsl_linalg_LU_solve(M, perm, &bv.vector, &xv.vector);
    gsl_matrix_free(M);
    gsl_permutation_free(perm);
}

/* ---------------------------------------------------------------- MINRES */

START_TEST(minres_spd_matches_cholesky)
{
    const size_t n = 40;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 11);
    double lambda[40], b[40], x[40], xc[40];
    for (size_t i = 0; i < n; i++) {
        lambda[i] = 0.1 + 10.0 * (double)i / (double)n; /* condition number ~100 */
        b[i] = gsl_ran_gaussian(r, 1.0);
    }
    double *A = sym_with_spectrum(n, lambda, r);

    /* Reference: GSL's Cholesky solve. */
    gsl_matrix *M = gsl_matrix_alloc(n, n);
    memcpy(M->data, A, n * n * sizeof *A);
    ck_assert_int_eq(gsl_linalg_cholesky_decomp1(M), GSL_SUCCESS);
    gsl_vector_const_view bv = gsl_vector_const_view_array(b, n);
    gsl_vector_view xv = gsl_vector_view_array(xc, n);
    gsl_linalg_cholesky_solve(M, &bv.vector, &xv.vector);

    dense_op op = {.n = n, .A = A};
    wgf_solve_stats st;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_minres(n, dense_apply, &op, 0.0, b, x, 1e-12, 500, &st, &err), WGF_OK);
    ck_assert_int_eq(st.converged, 1);
    ck_assert_uint_le(st.iterations, 100);
    ck_assert_uint_eq(st.products, st.iterations + 1); /* + the true-residual product */
    ck_assert_uint_eq(op.calls, st.products);
    ck_assert_double_le(st.residual, 1e-11);
    ck_assert_close(st.residual, true_residual(n, A, 0.0, b, x), 1e-13);
    ck_assert_double_le(vdiff(n, x, xc) / vnorm(n, xc), 1e-10);
    gsl_matrix_free(M);
    free(A);
    gsl_rng_free(r);
}
END_TEST

/* A preconditioner given as its inverse: the Cholesky factors of the diagonal blocks of size q of
 * (A + shift I) (q = 1: Jacobi), from GSL. */
typedef struct block_pc {
    size_t n, q;
    double *L; /* n q: lower factors, block j at j q^2 */
    unsigned calls;
    double sign; /* -1: a negative definite "preconditioner", to be refused */
} block_pc;

static void block_pc_init(block_pc *pc, size_t n, size_t q, const double *A, double shift)
{
    pc->n = n;
    pc->q = q;
    pc->calls = 0;
    pc->sign = 1.0;
    pc->L = malloc(n * q * sizeof *pc->L);
    gsl_matrix *B = gsl_matrix_alloc(q, q);
    for (size_t j = 0; j < n / q; j++) {
        for (size_t a = 0; a < q; a++)
            for (size_t b = 0; b < q; b++)
                gsl_matrix_set(B, a, b, A[(j * q + a) * n + j * q + b] + (a == b ? shift : 0.0));
        ck_assert_int_eq(gsl_linalg_cholesky_decomp1(B), GSL_SUCCESS);
        for (size_t a = 0; a < q; a++)
            for (size_t b = 0; b < q; b++)
                pc->L[j * q * q + a * q + b] = b <= a ? gsl_matrix_get(B, a, b) : 0.0;
    }
    gsl_matrix_free(B);
}

static int block_pc_apply(void *user, const double *r, double *z, wgf_error *err)
{
    (void)err;
    block_pc *pc = user;
    size_t q = pc->q;
    pc->calls++;
    for (size_t j = 0; j < pc->n / q; j++) {
        gsl_matrix_const_view L = gsl_matrix_const_view_array(pc->L + j * q * q, q, q);
        gsl_vector_view zv = gsl_vector_view_array(z + j * q, q);
        memcpy(z + j * q, r + j * q, q * sizeof *z);
        gsl_linalg_cholesky_svx(&L.matrix, &zv.vector);
        for (size_t i = 0; i < q; i++)
            z[j * q + i] *= pc->sign;
    }
    return WGF_OK;
}

/* Preconditioned MINRES against GSL's LU on a random SPD system whose diagonal blocks carry most of
 * its ill-conditioning (block scales 1e-3 .. 1e3, as a flow's layers do): the same solution to
 * 1e-9 with either preconditioner, and fewer products with the blocks than without; the exact
 * inverse as preconditioner converges in one iteration; a negative definite one is refused. */
START_TEST(minres_preconditioned_matches_lu)
{
    const size_t n = 48, q = 6;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 21);
    double lambda[48], b[48], x[48], xd[48];
    for (size_t i = 0; i < n; i++) {
        lambda[i] = 1.0 + (double)i / (double)n; /* well conditioned core */
        b[i] = gsl_ran_gaussian(r, 1.0);
    }
    double *C = sym_with_spectrum(n, lambda, r), *A = malloc(n * n * sizeof *A);
    /* A = D C D with D = diag of block scales: cond(A) ~ 1e6 * 2, block-Jacobi undoes D */
    double D[48];
    for (size_t i = 0; i < n; i++)
        D[i] = pow(10.0, -3.0 + 6.0 * (double)(i / q) / (double)(n / q - 1));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            A[i * n + j] = D[i] * C[i * n + j] * D[j];
    const double shift = 1e-4;
    lu_solve(n, A, shift, b, xd);

    dense_op op = {.n = n, .A = A};
    wgf_solve_stats st, plain;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_minres(n, dense_apply, &op, shift, b, x, 1e-12, 2000, &plain, &err), WGF_OK);

    size_t qs[2] = {q, 1};
    for (int t = 0; t < 2; t++) {
        block_pc pc;
        block_pc_init(&pc, n, qs[t], A, shift);
        op.calls = 0;
        ck_assert_int_eq(wgf_minres_prec(n, dense_apply, &op, shift, block_pc_apply, &pc, b, x, 1e-12,
                                         500, &st, &err),
                         WGF_OK);
        ck_assert_int_eq(st.converged, 1);
        ck_assert_uint_eq(st.products, st.iterations + 1);
        ck_assert_uint_eq(op.calls, st.products);
        ck_assert_uint_eq(pc.calls, st.iterations + 1); /* b, then each new Lanczos vector */
        ck_assert_close(st.residual, true_residual(n, A, shift, b, x), 1e-12);
        ck_assert_double_le(vdiff(n, x, xd) / vnorm(n, xd), 1e-9);
        if (t == 0)
            ck_assert_uint_lt(4 * st.products, plain.products);
        free(pc.L);
    }

    /* M = A + shift I itself: the preconditioned operator is I, one iteration */
    block_pc exact;
    block_pc_init(&exact, n, n, A, shift);
    ck_assert_int_eq(wgf_minres_prec(n, dense_apply, &op, shift, block_pc_apply, &exact, b, x, 1e-10,
                                     50, &st, &err),
                     WGF_OK);
    ck_assert_int_eq(st.converged, 1);
    ck_assert_uint_eq(st.iterations, 1);
    ck_assert_double_le(vdiff(n, x, xd) / vnorm(n, xd), 1e-9);
    exact.sign = -1.0;
    ck_assert_int_eq(wgf_minres_prec(n, dense_apply, &op, shift, block_pc_apply, &exact, b, x, 1e-10,
                                     50, &st, &err),
                     WGF_ENUMERIC);
    ck_assert_msg(strstr(err.msg, "not positive definite"), "%s", err.msg);
    free(exact.L);
    free(A);
    free(C);
    gsl_rng_free(r);
}
END_TEST

/* A rank-deficient consistent system has infinitely many solutions; MINRES
 * from zero must return the one of least norm, A^+ b, here from an SVD. */
START_TEST(minres_singular_gives_minimum_norm)
{
    const size_t n = 30, rank = 18;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 12);
    double lambda[30], z[30], b[30], x[30], xp[30];
    for (size_t i = 0; i < n; i++)
        lambda[i] = i < rank ? (i % 2 ? -1.0 : 1.0) * (0.5 + (double)i) : 0.0; /* indefinite too */
    double *A = sym_with_spectrum(n, lambda, r);
    for (size_t i = 0; i < n; i++)
        z[i] = gsl_ran_gaussian(r, 1.0);
    for (size_t i = 0; i < n; i++) { /* b = A z: consistent */
        b[i] = 0.0;
        for (size_t j = 0; j < n; j++)
            b[i] += A[i * n + j] * z[j];
    }

    /* Pseudo-inverse solution from the SVD A = U S V^T: V S^+ U^T b. */
    gsl_matrix *U = gsl_matrix_alloc(n, n), *V = gsl_matrix_alloc(n, n);
    gsl_vector *S = gsl_vector_alloc(n), *work = gsl_vector_alloc(n);
    memcpy(U->data, A, n * n * sizeof *A);
    gsl_linalg_SV_decomp(U, V, S, work);
    double smax = gsl_vector_get(S, 0);
    for (size_t i = 0; i < n; i++)
        xp[i] = 0.0;
    for (size_t k = 0; k < n; k++) {
        double sk = gsl_vector_get(S, k);
        if (sk <= 1e-10 * smax)
            continue;
        double c = 0.0;
        for (size_t i = 0; i < n; i++)
            c += gsl_matrix_get(U, i, k) * b[i];
        for (size_t i = 0; i < n; i++)
            xp[i] += gsl_matrix_get(V, i, k) * c / sk;
    }

    dense_op op = {.n = n, .A = A};
    wgf_solve_stats st;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_minres(n, dense_apply, &op, 0.0, b, x, 1e-12, 500, &st, &err), WGF_OK);
    ck_assert_int_eq(st.converged, 1);
    ck_assert_double_le(st.residual, 1e-11);
    ck_assert_double_le(vdiff(n, x, xp) / vnorm(n, xp), 1e-9);
    /* z itself solves the system but has a null-space component: x is shorter. */
    ck_assert_double_lt(vnorm(n, x), vnorm(n, z) - 0.1);
    gsl_matrix_free(U);
    gsl_matrix_free(V);
    gsl_vector_free(S);
    gsl_vector_free(work);
    free(A);
    gsl_rng_free(r);
}
END_TEST

/* (A + shift I) x = b: a positive shift that makes a singular A definite (the
 * Tikhonov use), and a negative one that leaves it indefinite. */
START_TEST(minres_shift)
{
    const size_t n = 25;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 13);
    double lambda[25], b[25], x[25], xl[25];
    for (size_t i = 0; i < n; i++) {
        lambda[i] = i < 5 ? 0.0 : (double)i / 5.0;
        b[i] = gsl_ran_gaussian(r, 1.0);
    }
    double *A = sym_with_spectrum(n, lambda, r);
    const double shifts[] = {1e-2, 0.5, -1.1, -3.3};
    for (size_t s = 0; s < sizeof shifts / sizeof *shifts; s++) {
        dense_op op = {.n = n, .A = A};
        wgf_solve_stats st;
        wgf_error err = {0};
        ck_assert_int_eq(wgf_minres(n, dense_apply, &op, shifts[s], b, x, 1e-12, 1000, &st, &err),
                         WGF_OK);
        ck_assert_int_eq(st.converged, 1);
        ck_assert_double_le(st.residual, 1e-10);
        ck_assert_close(st.residual, true_residual(n, A, shifts[s], b, x), 1e-12);
        lu_solve(n, A, shifts[s], b, xl);
        ck_assert_msg(vdiff(n, x, xl) / vnorm(n, xl) <= 1e-8, "shift %g: relative error %g", shifts[s],
                      vdiff(n, x, xl) / vnorm(n, xl));
    }
    free(A);
    gsl_rng_free(r);
}
END_TEST

/* b has a component in the null space: no x solves the system. MINRES must
 * not claim convergence, must stop cleanly, and what it returns is a
 * least-squares solution (A r = 0). */
START_TEST(minres_inconsistent)
{
    /* By hand: A = diag(1, 2, 3, 0), b = 1: min |b - Ax| = 1 (relative 1/2). */
    const double A4[16] = {1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0};
    const double b4[4] = {1, 1, 1, 1};
    double x4[4];
    dense_op op = {.n = 4, .A = A4};
    wgf_solve_stats st;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_minres(4, dense_apply, &op, 0.0, b4, x4, 1e-10, 100, &st, &err), WGF_OK);
    ck_assert_int_eq(st.converged, 0);
    ck_assert_uint_le(st.iterations, 100);
    ck_assert_close(st.residual, 0.5, 1e-12);
    ck_assert_close(x4[0], 1.0, 1e-12);
    ck_assert_close(x4[1], 0.5, 1e-12);
    ck_assert_close(x4[2], 1.0 / 3.0, 1e-12);
    ck_assert(isfinite(x4[3]));

    /* A larger one with a random basis. */
    const size_t n = 30;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 14);
    double lambda[30], b[30], x[30], res[30];
    for (size_t i = 0; i < n; i++) {
        lambda[i] = i < 4 ? 0.0 : 1.0 + (double)i;
        b[i] = gsl_ran_gaussian(r, 1.0);
    }
    double *A = sym_with_spectrum(n, lambda, r);
    op = (dense_op){.n = n, .A = A};
    ck_assert_int_eq(wgf_minres(n, dense_apply, &op, 0.0, b, x, 1e-10, 200, &st, &err), WGF_OK);
    ck_assert_int_eq(st.converged, 0);
    ck_assert_uint_le(st.iterations, 200);
    ck_assert_double_gt(st.residual, 0.1);
    ck_assert_close(st.residual, true_residual(n, A, 0.0, b, x), 1e-12);
    for (size_t i = 0; i < n; i++) {
        res[i] = b[i];
        for (size_t j = 0; j < n; j++)
            res[i] -= A[i * n + j] * x[j];
    }
    double Ar = 0.0;
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += A[i * n + j] * res[j];
        Ar += s * s;
    }
    ck_assert_msg(sqrt(Ar) <= 1e-8 * vnorm(n, b) * (1.0 + n), "|A r| = %g", sqrt(Ar));
    /* No drift along the null space: MINRES's least-squares solution has a
     * null-space part, but a modest one; |A^+ b| <= |b| / lambda_min+ = |b|/5. */
    ck_assert_msg(vnorm(n, x) <= 10.0 * vnorm(n, b) / 5.0, "|x| = %g, |x+| <= %g", vnorm(n, x),
                  vnorm(n, b) / 5.0);
    free(A);
    gsl_rng_free(r);
}
END_TEST

START_TEST(minres_maxiter_cap)
{
    /* Condition number 1e6: five iterations are far from enough. */
    const size_t n = 200;
    double *A = calloc(n * n, sizeof *A), *b = malloc(n * sizeof *b), *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        A[i * n + i] = pow(10.0, 6.0 * (double)i / (double)(n - 1));
        b[i] = 1.0;
    }
    dense_op op = {.n = n, .A = A};
    wgf_solve_stats st;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_minres(n, dense_apply, &op, 0.0, b, x, 1e-12, 5, &st, &err), WGF_OK);
    ck_assert_uint_eq(st.iterations, 5);
    ck_assert_uint_eq(st.products, 6);
    ck_assert_int_eq(st.converged, 0);
    ck_assert_double_gt(st.residual, 1e-6);
    ck_assert_double_lt(st.residual, 1.0); /* MINRES never increases |r| */
    ck_assert_close(st.residual, true_residual(n, A, 0.0, b, x), 1e-12);
    /* maxiter = 0: nothing happens, x = 0. */
    ck_assert_int_eq(wgf_minres(n, dense_apply, &op, 0.0, b, x, 1e-12, 0, &st, &err), WGF_OK);
    ck_assert_uint_eq(st.iterations, 0);
    ck_assert_int_eq(st.converged, 0);
    ck_assert_double_eq(st.residual, 1.0);
    ck_assert_double_eq(vnorm(n, x), 0.0);
    free(A);
    free(b);
    free(x);
}
END_TEST

START_TEST(minres_zero_rhs)
{
    const double A[4] = {2, 1, 1, 3}, b[2] = {0, 0};
    double x[2] = {5, 5};
    dense_op op = {.n = 2, .A = A};
    wgf_solve_stats st;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_minres(2, dense_apply, &op, 0.0, b, x, 1e-10, 10, &st, &err), WGF_OK);
    ck_assert_double_eq(x[0], 0.0);
    ck_assert_double_eq(x[1], 0.0);
    ck_assert_int_eq(st.converged, 1);
    ck_assert_uint_eq(st.iterations, 0);
    ck_assert_uint_eq(op.calls, 0);
}
END_TEST

START_TEST(minres_nan_and_operator_errors)
{
    const size_t n = 20;
    double *A = calloc(n * n, sizeof *A), b[20], x[20];
    for (size_t i = 0; i < n; i++) {
        A[i * n + i] = 1.0 + (double)i;
        if (i + 1 < n)
            A[i * n + i + 1] = A[(i + 1) * n + i] = 0.3;
        b[i] = sin((double)i);
    }
    dense_op op = {.n = n, .A = A, .nan_at = 3};
    wgf_solve_stats st;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_minres(n, dense_apply, &op, 0.0, b, x, 1e-12, 100, &st, &err), WGF_ENUMERIC);
    ck_assert_int_eq(err.code, WGF_ENUMERIC);
    ck_assert_msg(strstr(err.msg, "iteration 3") != NULL, "message: %s", err.msg);
    for (size_t i = 0; i < n; i++) /* the last finite iterate */
        ck_assert(isfinite(x[i]));

    op = (dense_op){.n = n, .A = A, .fail_at = 2};
    wgf_error_clear(&err);
    ck_assert_int_eq(wgf_minres(n, dense_apply, &op, 0.0, b, x, 1e-12, 100, &st, &err), WGF_EINTR);
    ck_assert_msg(strstr(err.msg, "interrupted inside the product") != NULL, "message: %s", err.msg);
    ck_assert_msg(strstr(err.msg, "iteration 2") != NULL, "message: %s", err.msg);

    /* A non-finite right-hand side. */
    b[4] = INFINITY;
    op = (dense_op){.n = n, .A = A};
    ck_assert_int_eq(wgf_minres(n, dense_apply, &op, 0.0, b, x, 1e-12, 100, &st, &err), WGF_ENUMERIC);
    free(A);
}
END_TEST

/* ---------------------------------------------------------------- dense helpers */

START_TEST(sym_eigen_hand_and_random)
{
    const double A[4] = {2, 1, 1, 2};
    double w[2], V[4];
    wgf_error err = {0};
    ck_assert_int_eq(wgf_sym_eigen(2, A, w, V, &err), WGF_OK);
    ck_assert_close(w[0], 1.0, 1e-14);
    ck_assert_close(w[1], 3.0, 1e-14);
    /* Columns (up to sign): (1, -1)/sqrt 2 and (1, 1)/sqrt 2. */
    ck_assert_close(fabs(V[0]), M_SQRT1_2, 1e-14);
    ck_assert_close(V[2], -V[0], 1e-14);
    ck_assert_close(V[1], V[3], 1e-14);
    ck_assert_close(fabs(V[1]), M_SQRT1_2, 1e-14);
    ck_assert_double_eq(A[1], 1.0); /* input unchanged */

    /* Random 6 x 6: A V = V diag(w), V^T V = I, ascending. */
    const size_t d = 6;
    double B[36], W[6], Q[36];
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j <= i; j++)
            B[i * d + j] = B[j * d + i] = sin(1.0 + 3.0 * (double)i + 7.0 * (double)j);
    ck_assert_int_eq(wgf_sym_eigen(d, B, W, Q, &err), WGF_OK);
    for (size_t k = 0; k < d; k++) {
        if (k)
            ck_assert_double_le(W[k - 1], W[k]);
        for (size_t i = 0; i < d; i++) {
            double s = 0.0;
            for (size_t j = 0; j < d; j++)
                s += B[i * d + j] * Q[j * d + k];
            ck_assert_close(s, W[k] * Q[i * d + k], 1e-13);
        }
        for (size_t l = 0; l < d; l++) {
            double s = 0.0;
            for (size_t i = 0; i < d; i++)
                s += Q[i * d + k] * Q[i * d + l];
            ck_assert_close(s, k == l ? 1.0 : 0.0, 1e-13);
        }
    }
}
END_TEST

static double f_sqrt(double x, void *user)
{
    (void)user;
    return sqrt(x);
}

static double f_pow(double x, void *user)
{
    return pow(x, *(double *)user);
}

START_TEST(sym_fun_hand)
{
    /* sqrt([[2,1],[1,2]]) = [[(sqrt3+1)/2, (sqrt3-1)/2], ...]. */
    const double A[4] = {2, 1, 1, 2};
    double B[4], C[4];
    wgf_error err = {0};
    ck_assert_int_eq(wgf_sym_fun(2, A, f_sqrt, NULL, B, &err), WGF_OK);
    ck_assert_close(B[0], (sqrt(3.0) + 1.0) / 2.0, 1e-14);
    ck_assert_close(B[1], (sqrt(3.0) - 1.0) / 2.0, 1e-14);
    ck_assert_close(B[2], B[1], 0.0);
    ck_assert_close(B[3], B[0], 1e-14);
    wgf_matmul(2, B, B, C);
    for (int i = 0; i < 4; i++)
        ck_assert_close(C[i], A[i], 1e-14);
    /* A^-1 = [[2,-1],[-1,2]]/3, and B may alias A. */
    double e = -1.0, D[4] = {2, 1, 1, 2};
    ck_assert_int_eq(wgf_sym_fun(2, D, f_pow, &e, D, &err), WGF_OK);
    ck_assert_close(D[0], 2.0 / 3.0, 1e-14);
    ck_assert_close(D[1], -1.0 / 3.0, 1e-14);
    ck_assert_close(D[3], 2.0 / 3.0, 1e-14);
}
END_TEST

START_TEST(cholesky_hand_and_errors)
{
    const double A[9] = {4, 2, -2, 2, 10, 5, -2, 5, 6};
    /* L = [[2,0,0],[1,3,0],[-1,2,1]] by hand. */
    const double Lx[9] = {2, 0, 0, 1, 3, 0, -1, 2, 1};
    double L[9];
    wgf_error err = {0};
    ck_assert_int_eq(wgf_cholesky(3, A, L, &err), WGF_OK);
    for (int i = 0; i < 9; i++)
        ck_assert_close(L[i], Lx[i], 1e-14);

    const double indef[4] = {1, 2, 2, 1};
    ck_assert_int_eq(wgf_cholesky(2, indef, L, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "not positive definite") != NULL, "message: %s", err.msg);
    /* Singular PSD: not definite either, and GSL must not be reached (it would abort). */
    const double sing[4] = {1, 1, 1, 1};
    ck_assert_int_eq(wgf_cholesky(2, sing, L, &err), WGF_EINVAL);
    ck_assert_msg(strstr(err.msg, "not positive definite") != NULL, "message: %s", err.msg);
    const double bad[4] = {1, NAN, NAN, 1};
    ck_assert_int_eq(wgf_cholesky(2, bad, L, &err), WGF_EINVAL);
}
END_TEST

START_TEST(matmul_hand)
{
    const double A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
    double C[4];
    wgf_matmul(2, A, B, C);
    ck_assert_double_eq(C[0], 19.0);
    ck_assert_double_eq(C[1], 22.0);
    ck_assert_double_eq(C[2], 43.0);
    ck_assert_double_eq(C[3], 50.0);
}
END_TEST

/* The one 2-norm: exact on a 3-4-5 triangle, of a difference, and with
 * entries whose squares overflow or underflow a double. */
START_TEST(nrm2_scaled)
{
    const double a[2] = {3, 4}, b[2] = {1, 1}, big[2] = {3e200, 4e200}, tiny[2] = {3e-200, 4e-200};
    ck_assert_double_eq(wgf_nrm2(2, a, NULL), 5.0);
    ck_assert_double_eq_tol(wgf_nrm2(2, a, b), sqrt(13.0), 1e-15);
    ck_assert_double_eq_tol(wgf_nrm2(2, big, NULL) / 5e200, 1.0, 1e-15);
    ck_assert_double_eq_tol(wgf_nrm2(2, tiny, NULL) / 5e-200, 1.0, 1e-15);
    ck_assert_double_eq(wgf_nrm2(0, a, NULL), 0.0);
    const double bad[2] = {1, NAN};
    ck_assert(isnan(wgf_nrm2(2, bad, NULL)));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("linalg");
    TCase *tc = tcase_create("minres");
    tcase_add_test(tc, minres_spd_matches_cholesky);
    tcase_add_test(tc, minres_singular_gives_minimum_norm);
    tcase_add_test(tc, minres_preconditioned_matches_lu);
    tcase_add_test(tc, minres_shift);
    tcase_add_test(tc, minres_inconsistent);
    tcase_add_test(tc, minres_maxiter_cap);
    tcase_add_test(tc, minres_zero_rhs);
    tcase_add_test(tc, minres_nan_and_operator_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("dense");
    tcase_add_test(tc, sym_eigen_hand_and_random);
    tcase_add_test(tc, sym_fun_hand);
    tcase_add_test(tc, cholesky_hand_and_errors);
    tcase_add_test(tc, nrm2_scaled);
    tcase_add_test(tc, matmul_hand);
    suite_add_tcase(s, tc);
    return test_main(s);
}
