/* bench_particles.c: the particles reference's integrators against a converged N-body system.
 * The experiment's particles (its [reference] section, the same initial particles for every
 * setting) are integrated to two times by each setting, Euler-Maruyama and Heun at several
 * steps (this file includes the plugin's source, so the particles themselves are in reach), and
 * compared particle by particle with Euler at a step ten times below the experiment's and, for a
 * noise-free interaction problem of the quartic kernel (genwgp_aggregation_2d.ini), with the
 * library's RK4 (wgf_particles_aggregation, an independent solver); drift evaluations and CPU
 * seconds beside. Not part of make check:
 *
 *     OMP_NUM_THREADS=1 WGF_PLUGIN_PATH=... bench/bench_particles EXPERIMENT.ini [T1 T2]
 *
 * (`make bench-particles` runs it on genwgp_aggregation_2d.ini; default times 1 and 8.5). */
#include <time.h>

#include <wgf/wgf.h>

#include "../core/internal.h" /* wgf_problem_reference */
#include "../plugins/references/particles.c"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int die(const char *what, const wgf_error *err)
{
    fprintf(stderr, "bench_particles: %s: %s\n", what, err->msg);
    return 1;
}

/* The experiment with reference.integrator and reference.particle_dt set. */
static wgf_problem *problem_with(const char *file, const char *integrator, double dt)
{
    char s1[64], s2[64];
    snprintf(s1, sizeof s1, "reference.integrator=%s", integrator);
    snprintf(s2, sizeof s2, "reference.particle_dt=%.17g", dt);
    const char *sets[] = {s1, s2};
    wgf_run_opts opts = {.file = file, .sets = sets, .nsets = 2};
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    wgf_problem *p = NULL;
    if (wgf_problem_create(&p, &opts, &diag, &err) != WGF_OK) {
        wgf_diag_print(&diag, stderr, "bench_particles: ");
        die("set-up", &err);
        p = NULL;
    }
    wgf_diag_free(&diag);
    return p;
}

/* the library's RK4 integrates x_n' = -1/(N-1) sum_k grad W(x_n - x_k) for the quartic W alone */
static int rk4_applies(const wgf_problem *p)
{
    const wgf_section *ts;
    const wgf_energy_vt *vt;
    void *es;
    return ref_single_term(p, "aggregation", &ts, &vt, &es) &&
           strcmp(wgf_section_string(ts, "kernel"), "quartic") == 0;
}

/* The particles at t1 and t2 (n x d each, into x1 and x2: [reference] particles x dim) by one
 * setting; its CPU seconds. NULL integrator: the library's RK4 from the same initial particles. Returns 0,
 * or 1 on a failure (reported). */
static int integrate(const char *file, const char *integrator, double dt, double t1, double t2, double *x1,
                     double *x2, size_t *n, size_t *d, double *cpu)
{
    wgf_problem *p = problem_with(file, integrator ? integrator : "euler", dt);
    if (!p)
        return 1;
    const wgf_plugin *pl;
    const wgf_section *sec;
    wgf_error err = {0};
    void *state = NULL;
    wgf_reference_setup setup = {.problem = p};
    int rc = 1;
    if (!wgf_problem_reference(p, &pl, &sec) || strcmp(pl->name, "particles") != 0)
        fprintf(stderr, "bench_particles: %s: [reference] is not particles\n", file);
    else if (!integrator && !rk4_applies(p))
        fprintf(stderr, "bench_particles: %s: RK4 needs a single aggregation term, quartic kernel, "
                "weight 1\n", file);
    else if (part_create(sec, &setup, &state, &err) != WGF_OK)
        die("particles", &err);
    else {
        particles *r = state;
        *n = r->np;
        *d = r->d;
        double c0 = cpu_now();
        if (integrator) {
            rc = advance(r, t1, &err) != WGF_OK;
            memcpy(x1, r->px, r->np * r->d * sizeof *x1);
            rc = rc || advance(r, t2, &err) != WGF_OK;
            memcpy(x2, r->px, r->np * r->d * sizeof *x2);
        } else {
            memcpy(x1, r->px, r->np * r->d * sizeof *x1);
            rc = wgf_particles_aggregation(r->np, r->d, x1, t1, dt, &err) != WGF_OK;
            memcpy(x2, x1, r->np * r->d * sizeof *x2);
            rc = rc || wgf_particles_aggregation(r->np, r->d, x2, t2 - t1, dt, &err) != WGF_OK;
        }
        *cpu = cpu_now() - c0;
        if (rc)
            die("integrating", &err);
        part_destroy(state);
    }
    wgf_problem_free(p);
    return rc;
}

/* mean over the particles of |x_n - y_n| */
static double mean_dist(size_t n, size_t d, const double *x, const double *y)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double r2 = 0;
        for (size_t j = 0; j < d; j++)
            r2 += (x[i * d + j] - y[i * d + j]) * (x[i * d + j] - y[i * d + j]);
        s += sqrt(r2);
    }
    return s / (double)n;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: bench_particles EXPERIMENT.ini [T1 T2]\n");
        return 2;
    }
    const char *file = argv[1];
    double t1 = argc == 4 ? atof(argv[2]) : 1.0, t2 = argc == 4 ? atof(argv[3]) : 8.5;
    /* the two references first, then the settings judged against them */
    static const struct {
        const char *integrator; /* NULL: RK4 */
        double dt;
    } set[] = {{"euler", 1e-4}, {NULL, 5e-3}, {"euler", 1e-3}, {"euler", 2e-3}, {"heun", 2e-2},
               {"heun", 1e-2},  {"heun", 5e-3}, {"heun", 2e-3}, {NULL, 1e-2}};
    enum { NSET = sizeof set / sizeof set[0] };
    size_t n = 0, d = 0, cap;
    double *x[NSET][2] = {{NULL}}, cpu[NSET];
    {
        wgf_problem *p = problem_with(file, "euler", 1e-3);
        const wgf_plugin *pl;
        const wgf_section *sec;
        if (!p || !wgf_problem_reference(p, &pl, &sec)) {
            fprintf(stderr, "bench_particles: %s: no reference\n", file);
            wgf_problem_free(p);
            return 1;
        }
        cap = (size_t)wgf_section_int(sec, "particles") * wgf_problem_get_info(p)->dim;
        wgf_problem_free(p);
    }
    int rc = 0;
    for (size_t s = 0; s < NSET && !rc; s++) {
        x[s][0] = malloc(cap * sizeof(double));
        x[s][1] = malloc(cap * sizeof(double));
        if (!x[s][0] || !x[s][1]) {
            fprintf(stderr, "bench_particles: out of memory\n");
            rc = 1;
        } else
            rc = integrate(file, set[s].integrator, set[s].dt, t1, t2, x[s][0], x[s][1], &n, &d, &cpu[s]);
        fprintf(stderr, "bench_particles: %s %g: %.1f s of CPU\n", set[s].integrator ? set[s].integrator : "rk4",
                set[s].dt, rc ? 0 : cpu[s]);
    }
    if (!rc) {
        printf("%s, %zu particles, t = %g and %g; distance: the mean over the particles of |x_n - y_n|\n\n",
               file, n, t1, t2);
        printf("| integrator | dt | drift evaluations to t = %g | CPU s | to Euler 1e-4 at t = %g | at t = %g "
               "| to RK4 5e-3 at t = %g | at t = %g |\n|---|---|---|---|---|---|---|---|\n",
               t2, t1, t2, t1, t2);
        for (size_t s = 0; s < NSET; s++) {
            /* steps to t2 (the last one shortened to land on it): one evaluation each for Euler,
             * two for Heun, four for RK4 */
            int per = !set[s].integrator ? 4 : strcmp(set[s].integrator, "heun") == 0 ? 2 : 1;
            printf("| %s | %g | %.0f | %.1f |", set[s].integrator ? set[s].integrator : "rk4 (library)", set[s].dt,
                   ceil(t2 / set[s].dt - 1e-9) * per, cpu[s]);
            for (size_t ref = 0; ref < 2; ref++)
                for (int k = 0; k < 2; k++)
                    printf(s == ref ? " - |" : " %.2e |", s == ref ? 0.0 : mean_dist(n, d, x[s][k], x[ref][k]));
            printf("\n");
        }
    }
    for (size_t s = 0; s < NSET; s++) {
        free(x[s][0]);
        free(x[s][1]);
    }
    return rc;
}
