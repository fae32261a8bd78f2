/* bench_metric.c: the costs that dominate a relaxed PWGF step, for the planar
 * flow of the 10-D experiment (N = 1000, L = 20, d = 10): one G-hat product
 * (jvp + vjp on the stored tapes), the forward pass with scores, and the
 * energy gradient. Run by `make bench`; not part of make check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(void)
{
    char path[] = "/tmp/wgf-bench-XXXXXX.ini";
    int fd = mkstemps(path, 4);
    if (fd < 0 || write(fd, ini, sizeof ini - 1) != (ssize_t)(sizeof ini - 1))
        return 1;
    close(fd);
    wgf_run_opts opts = {.file = path};
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    wgf_problem *p = NULL;
    int rc = wgf_problem_create(&p, &opts, &diag, &err);
    unlink(path);
    if (rc != WGF_OK) {
        wgf_diag_print(&diag, stderr, "bench_metric: ");
        wgf_diag_free(&diag);
        return die("set-up", &err);
    }
    wgf_diag_free(&diag);
    size_t P = wgf_problem_nparams(p);
    double *theta = wgf_problem_theta(p);
    for (size_t j = 0; j < P; j++) /* away from the identity, admissibly */
        theta[j] += 0.05 * ((double)((j * 7919) % 13) / 13.0 - 0.5);
    if (wgf_problem_constrain(p, theta, &err) != WGF_OK)
        return die("constrain", &err);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    wgf_eval *ev = wgf_eval_create(p, 1000, 0, &err);
    if (!ev || wgf_eval_draw(ev, WGF_STREAM_TRAIN, 0, &err) != WGF_OK)
        return die("eval", &err);
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
    printf("  G-hat product (jvp + vjp) %8.3f ms\n", 1e3 * (now() - t0) / reps);

    free(v);
    free(out);
    wgf_eval_free(ev);
    wgf_problem_free(p);
    return 0;
}
