/* bench_metric.c: the costs that dominate a relaxed PWGF step, for the planar
 * flow of the 10-D experiment (N = 1000, L = 20, d = 10): one G-hat product
 * (jvp + vjp on the stored tapes), the forward pass with scores, and the
 * energy gradient; then the product's arithmetic rate and how its time grows
 * with N, L and d (the exponent of a least-squares fit of log time against
 * log size: 1 is linear); one natural-gradient solve with each MINRES
 * preconditioner; and the product at the shapes of the experiments whose
 * run time it sets. Run by `make bench`; not part of make check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <wgf/wgf.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char ini[] = "[run]\ndim = 10\nsamples = 1000\nseed = 1\n"
                          "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1\n"
                          "[map]\nplugin = planar\nlayers = 20\n";

static int die(const char *what, const wgf_error *err)
{
    fprintf(stderr, "bench_metric: %s: %s\n", what, err->msg);
    return 1;
}

/* The problem of an experiment's text, its parameters moved away from the identity (admissibly,
 * as every measurement here starts); NULL, with the reason printed, when it cannot be set up. */
static wgf_problem *bench_problem(const char *text)
{
    char path[] = "/tmp/wgf-bench-XXXXXX.ini";
    int fd = mkstemps(path, 4);
    if (fd < 0) {
        fprintf(stderr, "bench_metric: cannot create %s\n", path);
        return NULL;
    }
    size_t len = strlen(text);
    int written = write(fd, text, len) == (ssize_t)len;
    close(fd);
    wgf_run_opts opts = {.file = path};
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    wgf_problem *p = NULL;
    int rc = written ? wgf_problem_create(&p, &opts, &diag, &err) : WGF_EIO;
    unlink(path);
    if (!written)
        fprintf(stderr, "bench_metric: cannot write %s\n", path);
    else if (rc != WGF_OK) {
        wgf_diag_print(&diag, stderr, "bench_metric: ");
        die("set-up", &err);
    }
    wgf_diag_free(&diag);
    if (rc != WGF_OK)
        return NULL;
    size_t P = wgf_problem_nparams(p);
    double *theta = wgf_problem_theta(p);
    for (size_t j = 0; j < P; j++)
        theta[j] += 0.05 * ((double)((j * 7919) % 13) / 13.0 - 0.5);
    if (wgf_problem_constrain(p, theta, &err) != WGF_OK) {
        die("constrain", &err);
        wgf_problem_free(p);
        return NULL;
    }
    return p;
}

/* n training samples (stream 0) with the given wgf_eval flags, pushed forward at the problem's
 * parameters; NULL, with the reason printed, on failure. */
static wgf_eval *bench_eval(wgf_problem *p, size_t n, unsigned flags)
{
    wgf_error err = {0};
    wgf_eval *ev = wgf_eval_create(p, n, flags, &err);
    if (!ev || wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, &err) != WGF_OK ||
        wgf_eval_forward(ev, wgf_problem_theta(p), &err) != WGF_OK) {
        die("eval", &err);
        wgf_eval_free(ev);
        return NULL;
    }
    return ev;
}

/* Floating-point operations of one G-hat product per sample and layer, as
 * plugins/maps/planar.c executes it (x cotangents only, no log-determinant
 * terms): the jvp forms da = dw.x + w.dx + db (4d), da *= h' (1) and
 * dx += du h + u h' da (4d); the reverse step forms u.xbar (2d),
 * abar = h' u.xbar (1), the sums over samples h xbar, abar x (4d) and abar
 * (1), and xbar += abar w (2d). */
static double gram_flops(size_t n, size_t layers, size_t d)
{
    return (double)n * (double)layers * (16.0 * (double)d + 3.0);
}

/* Milliseconds per G-hat product of the planar flow with n samples, the
 * given layers and dimension: the median of 5 timings of reps products. */
static int time_gram(size_t n, size_t layers, size_t d, double *ms)
{
    char ini_nld[256];
    int len = snprintf(ini_nld, sizeof ini_nld,
                       "[run]\ndim = %zu\nsamples = %zu\nseed = 1\n"
                       "[energy]\nplugin = fpe\npotential = quadratic\nmu = 1\n"
                       "[map]\nplugin = planar\nlayers = %zu\n",
                       d, n, layers);
    if (len < 0 || (size_t)len >= sizeof ini_nld)
        return 1;
    wgf_problem *p = bench_problem(ini_nld);
    if (!p)
        return 1;
    size_t P = wgf_problem_nparams(p);
    wgf_error err = {.msg = "out of memory"};
    wgf_eval *ev = bench_eval(p, n, 0);
    double *v = calloc(P, sizeof(double)), *out = calloc(P, sizeof(double));
    int rc = 1;
    if (!ev || !v || !out)
        goto done;
    for (size_t j = 0; j < P; j++)
        v[j] = 1.0 / (1.0 + (double)j);
    double work = gram_flops(n, layers, d);
    int reps = work > 4e8 ? 1 : (int)(4e8 / 20.0 / work) + 1; /* ~20 ms a timing at 1 GFLOP/s */
    double t[5];
    for (int k = 0; k < 5; k++) {
        double t0 = now();
        for (int r = 0; r < reps; r++)
            if (wgf_eval_gram(ev, v, out, &err) != WGF_OK)
                goto done;
        t[k] = 1e3 * (now() - t0) / reps;
    }
    for (int i = 1; i < 5; i++) /* insertion sort of five */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    *ms = t[2];
    rc = 0;
done:
    if (rc && ev)
        die("gram timing", &err);
    free(v);
    free(out);
    wgf_eval_free(ev);
    wgf_problem_free(p);
    return rc;
}

/* One natural-gradient solve of the 10-D experiment's metric (G-hat + 1e-3 I) with the given
 * [metric] preconditioner and tolerance: MINRES iterations, products, relative residual and time
 * (the preconditioner's set-up included). */
static int bench_solve(const char *pc, double tol)
{
    char text[512];
    int len = snprintf(text, sizeof text,
                       "%s[metric]\nplugin = lagrangian\ntikhonov = 1e-3\ntol = %g\nmaxiter = 200\n"
                       "preconditioner = %s\n",
                       ini, tol, pc);
    if (len < 0 || (size_t)len >= sizeof text)
        return 1;
    wgf_problem *p = bench_problem(text);
    if (!p)
        return 1;
    size_t P = wgf_problem_nparams(p);
    wgf_error err = {.msg = "out of memory"};
    wgf_eval *ev = bench_eval(p, 1000, WGF_EVAL_SCORE);
    double *g = calloc(2 * P, sizeof(double)), F;
    wgf_solve_stats st;
    int rc = 1;
    if (!ev || !g || wgf_problem_energy(p, ev, &F, g, &err) != WGF_OK)
        goto done;
    double t0 = now();
    if (wgf_problem_natgrad(p, ev, g, g + P, &st, &err) != WGF_OK)
        goto done;
    printf("  %-7s tol %-5g %4u iterations %4lu products, residual %.1e, %7.2f ms\n", pc, tol,
           st.iterations, st.products, st.residual, 1e3 * (now() - t0));
    rc = 0;
done:
    if (rc && ev)
        die("solve", &err);
    free(g);
    wgf_eval_free(ev);
    wgf_problem_free(p);
    return rc;
}

/* The slope of log ms against log size: the exponent of the cost in that size. */
static int print_exponent(const char *what, const size_t *sizes, size_t count, const size_t *n,
                          const size_t *layers, const size_t *d, size_t *vary)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    printf("  time in %s:", what);
    for (size_t i = 0; i < count; i++) {
        *vary = sizes[i];
        double ms;
        if (time_gram(*n, *layers, *d, &ms))
            return 1;
        printf(" %zu: %.3f ms%s", sizes[i], ms, i + 1 < count ? "," : "");
        double x = log((double)sizes[i]), y = log(ms);
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    double c = (double)count;
    printf("\n    exponent %.2f\n", (c * sxy - sx * sy) / (c * sxx - sx * sx));
    return 0;
}

int main(void)
{
    wgf_problem *p = bench_problem(ini);
    if (!p)
        return 1;
    size_t P = wgf_problem_nparams(p);
    double *theta = wgf_problem_theta(p);
    wgf_error err = {0};
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    wgf_eval *ev = bench_eval(p, 1000, 0);
    if (!ev)
        return 1;
    double *v = calloc(P, sizeof(double)), *out = calloc(P, sizeof(double)), F;
    for (size_t j = 0; j < P; j++)
        v[j] = 1.0 / (1.0 + (double)j);
    printf("planar flow: N = 1000, L = 20, d = 10, P = %zu, %d thread(s)\n", P, threads);

    int reps = 200;
    double t0 = now();
    for (int r = 0; r < reps; r++)
        if (wgf_eval_forward(ev, theta, &err) != WGF_OK)
            return die("forward", &err);
    printf("  forward pass              %8.3f ms\n", 1e3 * (now() - t0) / reps);

    t0 = now();
    for (int r = 0; r < reps; r++)
        if (wgf_problem_energy(p, ev, &F, out, &err) != WGF_OK)
            return die("energy", &err);
    printf("  energy + theta-gradient   %8.3f ms\n", 1e3 * (now() - t0) / reps);

    reps = 1000;
    t0 = now();
    for (int r = 0; r < reps; r++)
        if (wgf_eval_gram(ev, v, out, &err) != WGF_OK)
            return die("gram", &err);
    double ms = 1e3 * (now() - t0) / reps;
    printf("  G-hat product (jvp + vjp) %8.3f ms, %.1f GFLOP/s (%.0f flops per sample and layer)\n",
           ms, 1e-6 * gram_flops(1000, 20, 10) / ms, gram_flops(1, 1, 10));
    printf("  memory of the tapes: %.1f MB, 8 (L + 1)(d + 3) N bytes\n",
           8.0 * 21.0 * 13.0 * 1000.0 / 1e6);

    free(v);
    free(out);
    wgf_eval_free(ev);
    wgf_problem_free(p);

    printf("G-hat + 1e-3 I solve, MINRES with each preconditioner:\n");
    static const char *pcs[] = {"none", "jacobi", "block"};
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 3; k++)
            if (bench_solve(pcs[k], t == 0 ? 1e-8 : 1e-2))
                return 1;

    /* Scaling, one size at a time about N = 1000, L = 20, d = 10. */
    printf("G-hat product scaling (median of 5 timings each):\n");
    size_t N = 1000, Lk = 20, dk = 10;
    static const size_t ns[] = {500, 1000, 2000, 4000}, ls[] = {10, 20, 40}, ds[] = {5, 10, 20};
    if (print_exponent("N", ns, 4, &N, &Lk, &dk, &N))
        return 1;
    N = 1000;
    if (print_exponent("L", ls, 3, &N, &Lk, &dk, &Lk))
        return 1;
    Lk = 20;
    if (print_exponent("d", ds, 3, &N, &Lk, &dk, &dk))
        return 1;

    /* The shapes of the files whose run time is mostly products: times their
     * metric products (experiments/README.md) bound the run time from below. */
    printf("G-hat product at the shapes of experiments/ (median of 5 timings each):\n");
    static const struct {
        const char *file;
        size_t n, layers, d;
    } shapes[] = {{"aggregation_2d", 1000, 60, 2}, {"generative_gmm_10d", 500, 32, 10},
                  {"fpe_quartic_30d", 1000, 60, 30}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        double t_ms;
        if (time_gram(shapes[k].n, shapes[k].layers, shapes[k].d, &t_ms))
            return 1;
        double gflops = gram_flops(shapes[k].n, shapes[k].layers, shapes[k].d) / t_ms * 1e-6;
        printf("  %-20s N = %4zu, L = %2zu, d = %2zu: %7.3f ms, %.1f GFLOP/s\n", shapes[k].file, shapes[k].n,
               shapes[k].layers, shapes[k].d, t_ms, gflops);
    }
    return 0;
}
