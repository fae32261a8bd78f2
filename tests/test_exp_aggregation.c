/* test_exp_aggregation.c: the aggregation experiment (experiments/aggregation_2d.ini),
 * shortened, against the ring steady state and the N-body particle system
 * (MATH.md 6).
 *
 * W = |x|^4/4 - |x|^2/2 in 2-D from N((5/4, 5/4), (3/5)^2 I). The exact flow
 * keeps the mass centre and settles on the circle of radius 1/sqrt(3) about
 * it, energy -1/12. The initial law has mean radius 0.6 sqrt(pi/2) = 0.752,
 * radial spread 0.39 and energy 0.158; the best Gaussian, N(m, I/8), has
 * energy -1/16, so an energy below -1/16 is a shape no affine map reaches.
 *
 * The short run is the experiment file with SHORT_SETS: 10 layers instead of
 * 60, one fixed batch of the experiment's N = 1000 training samples (so that
 * the recorded energy is one deterministic function of theta), the
 * experiment's step h = 0.005, t = 1 instead of 10, 500 output samples. About
 * 2 s on one core; the suite runs it three times.
 *
 * The tolerances come from 20 seeds of this short run (the test itself runs
 * seed 1). At t = 1/4, flow minus particles (same 500 initial points):
 * radius mean -0.011 .. +0.002, radius spread -0.001 .. +0.020, energy
 * -0.0014 .. +0.0078 (spread and energy lag: 10 planar layers sharpen the law
 * more slowly than the particles do); the flow's centre moved by 0.001 ..
 * 0.046. At t = 1, in 19 seeds: radius mean 0.532 .. 0.568, spread 0.160 ..
 * 0.216, energy -0.0777 .. -0.0756; in the 20th the centre had drifted by
 * 0.58 (a layer on its invertibility bound; README, aggregation_2d). The
 * energy never rose from one step to the next. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wgf/reference.h>

#include "testutil.h"

/* ------------------------------------------------------------ the short run */

#define CX 1.25 /* the centre of mass, conserved */
#define T_END 1.0
#define STEPS 200
#define T_EARLY 0.25 /* the particle comparison */
#define STEP_EARLY 50
#define M 500 /* output samples (all written), and particles */

#define SHORT_SETS                                                                                  \
    "run.seed=1", "map.layers=10", "scheme.samples=fixed", "scheme.step=0.005", "scheme.t_end=1", \
        "output.every=50", "output.diagnostics_every=50", "output.samples=500",                    \
        "output.write_count=500", "output.plots=false"
#define NSHORT 10
#define MAXSETS (NSHORT + 4)

typedef struct agg_run {
    wgf_run_result res;
    size_t nsteps;                          /* rows of history.csv */
    double energy[STEPS + 1];               /* the training energy at every step */
    double x0[M * 2], xe[M * 2], xT[M * 2]; /* output samples at t = 0, T_EARLY, T_END */
} agg_run;

static void read_samples(const char *dir, unsigned step, double *x)
{
    char path[4400], line[256];
    snprintf(path, sizeof path, "%s/samples/step-%06u.csv", dir, step);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert(fgets(line, sizeof line, f) != NULL); /* header */
    size_t k = 0;
    while (k < M && fgets(line, sizeof line, f))
        if (sscanf(line, "%lf,%lf", &x[2 * k], &x[2 * k + 1]) == 2)
            k++;
    fclose(f);
    ck_assert_msg(k == M, "%s: %zu samples, expected %d", path, k, M);
}

static void read_history(const char *dir, agg_run *r)
{
    char path[4400], line[1024];
    snprintf(path, sizeof path, "%s/history.csv", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert(fgets(line, sizeof line, f) != NULL);
    ck_assert_msg(strncmp(line, "step,t,energy,", 14) == 0, "header: %s", line);
    r->nsteps = 0;
    unsigned long step;
    double t, e;
    while (fgets(line, sizeof line, f) && sscanf(line, "%lu,%lf,%lf", &step, &t, &e) == 3) {
        ck_assert_int_eq(step, r->nsteps);
        ck_assert(r->nsteps <= STEPS);
        r->energy[r->nsteps++] = e;
    }
    fclose(f);
}

/* Run the shortened experiment, with the caller's overrides after SHORT_SETS. */
static void run_short(const char *const *extra, size_t nextra, agg_run *r)
{
    char file[4096];
    test_srcpath("experiments/aggregation_2d.ini", file, sizeof file);
    const char *sets[MAXSETS] = {SHORT_SETS};
    ck_assert(NSHORT + nextra <= MAXSETS);
    for (size_t i = 0; i < nextra; i++)
        sets[NSHORT + i] = extra[i];
    char *dir = test_temp_dir("agg");
    wgf_run_opts opts = {.file = file, .outdir = dir, .sets = sets, .nsets = NSHORT + nextra,
                         .threads = 1, .quiet = 1};
    wgf_error err = {0};
    int rc = test_run(&opts, &r->res, &err);
    ck_assert_msg(rc == WGF_OK, "%s", err.msg);
    ck_assert_int_eq(r->res.steps, STEPS);
    ck_assert_close(r->res.t, T_END, 1e-12);
    read_history(dir, r);
    ck_assert_int_eq(r->nsteps, STEPS + 1);
    read_samples(dir, 0, r->x0);
    read_samples(dir, STEP_EARLY, r->xe);
    read_samples(dir, STEPS, r->xT);
    test_remove_tree(dir);
    free(dir);
}

static double figure(const wgf_run_result *res, const char *name)
{
    for (size_t i = 0; i < res->nfigures; i++)
        if (strcmp(res->figures[i].name, name) == 0)
            return res->figures[i].value;
    ck_abort_msg("no figure %s in the run's result", name);
    return NAN;
}

/* ------------------------------------------------------------ statistics */

typedef struct stats {
    double mean[2];    /* of x */
    double drift;      /* |mean - centre| */
    double rmean, rsd; /* of |x - centre| (rsd: the sample standard deviation, n - 1) */
    double energy;     /* 1/(2 n(n-1)) sum_{j != k} W(x_j - x_k) */
} stats;

static stats stats_of(size_t n, const double *x)
{
    stats s = {0};
    double mx = 0, my = 0, r1 = 0, r2 = 0;
    for (size_t k = 0; k < n; k++) {
        double r = hypot(x[2 * k] - CX, x[2 * k + 1] - CX);
        mx += x[2 * k];
        my += x[2 * k + 1];
        r1 += r;
        r2 += r * r;
    }
    s.mean[0] = mx / (double)n;
    s.mean[1] = my / (double)n;
    s.drift = hypot(s.mean[0] - CX, s.mean[1] - CX);
    s.rmean = r1 / (double)n;
    s.rsd = sqrt(fmax(r2 - (double)n * s.rmean * s.rmean, 0.0) / (double)(n - 1));
    for (size_t j = 0; j < n; j++)
        for (size_t k = j + 1; k < n; k++) {
            double a = x[2 * j] - x[2 * k], b = x[2 * j + 1] - x[2 * k + 1], q = a * a + b * b;
            s.energy += q * q / 4.0 - q / 2.0;
        }
    s.energy /= (double)n * (double)(n - 1);
    return s;
}

/* The particles start at the flow's output samples at t = 0 (the map is the
 * identity there) and follow the N-body ODE to T_EARLY (RK4, dt = 0.01: its
 * error is far below the 1/sqrt(M) of the particle system itself); the
 * flow's output samples at T_EARLY are the same latent points pushed through
 * T_theta, so both sides share the initial sample. */
static stats particles_early(const agg_run *r)
{
    static double xp[M * 2];
    memcpy(xp, r->x0, sizeof xp);
    wgf_error err = {0};
    ck_assert_msg(wgf_particles_aggregation(M, 2, xp, T_EARLY, 0.01, &err) == WGF_OK, "%s", err.msg);
    return stats_of(M, xp);
}

/* Flow minus particles at T_EARLY, within the band of the 20 seeds (file
 * comment) widened by about 0.01 on each side (0.005 for the energy): radius
 * mean +- 0.02, spread -0.015 .. +0.035, energy -0.005 .. +0.012. Running
 * the flow at the wrong speed moves these by (energy weight 2, as a scheme
 * that steps 2h per step h of its clock) -0.048, -0.025 .. -0.046, -0.015 ..
 * -0.019, or (weight 1/2) +0.042, +0.05, +0.04: test_wrong_speed. */
static int early_agrees(const stats *f, const stats *p, char *why, size_t size)
{
    double dm = f->rmean - p->rmean, ds = f->rsd - p->rsd, de = f->energy - p->energy;
    snprintf(why, size, "at t = %g flow - particles: radius mean %+.4f, spread %+.4f, energy %+.5f", T_EARLY,
             dm, ds, de);
    return fabs(dm) <= 0.02 && ds >= -0.015 && ds <= 0.035 && de >= -0.005 && de <= 0.012;
}

/* ------------------------------------------------------------ tests */

/* The experiment file as it stands: valid, with the ring reference. */
START_TEST(test_file)
{
    char file[4096];
    test_srcpath("experiments/aggregation_2d.ini", file, sizeof file);
    wgf_run_opts opts = {.file = file, .quiet = 1, .check_only = 1};
    wgf_run_result res;
    wgf_error err = {0};
    int rc = test_run(&opts, &res, &err);
    ck_assert_msg(rc == WGF_OK, "%s", err.msg);
}
END_TEST

START_TEST(test_short)
{
    static agg_run r;
    run_short(NULL, 0, &r);
    stats s0 = stats_of(M, r.x0), se = stats_of(M, r.xe), sT = stats_of(M, r.xT);

    /* the start: the output samples are moment-matched, so their mean is the
     * centre to rounding; radius and spread near the law's 0.752 and 0.39
     * (standard errors of 500 samples about 0.017: three of them) */
    ck_assert_msg(s0.drift < 1e-9, "initial mean off the centre by %g", s0.drift);
    ck_assert_msg(fabs(s0.rmean - 0.752) < 0.05 && fabs(s0.rsd - 0.39) < 0.05, "initial radius %g, spread %g",
                  s0.rmean, s0.rsd);

    /* The reference's figures are those of the final output samples (all 500
     * of them are in the file, written with 10 digits) about the centre. */
    ck_assert_close(figure(&r.res, "radius_ref"), 1.0 / sqrt(3.0), 1e-12);
    ck_assert_close(figure(&r.res, "energy_ref"), -1.0 / 12.0, 1e-12);
    ck_assert_close(figure(&r.res, "centre_drift"), sT.drift, 1e-7);
    ck_assert_close(figure(&r.res, "radius_mean"), sT.rmean, 1e-7);
    ck_assert_close(figure(&r.res, "radius_sd"), sT.rsd, 1e-7);
    ck_assert_close(figure(&r.res, "energy_gap"), r.res.energy + 1.0 / 12.0, 1e-12);

    /* Monotone energy. With one fixed batch the recorded energy is F(theta_k)
     * on the same samples, and an Euler step along -(G-hat + eps I)^{-1}
     * grad F lowers it by about h times the dissipation, >= 1e-6 per step
     * here, against rounding of about 1e-16: 1e-9 allows no real rise. (A
     * step of a layer pushed back onto its invertibility bound can raise it
     * by some 1e-5; none happened in 20 seeds.) */
    for (size_t k = 1; k < r.nsteps; k++)
        ck_assert_msg(r.energy[k] <= r.energy[k - 1] + 1e-9, "energy rose at step %zu: %.12g -> %.12g", k,
                      r.energy[k - 1], r.energy[k]);

    /* The centre of mass. The particles keep it exactly (pair forces cancel,
     * and RK4 keeps linear invariants): to rounding. (The samples file
     * holds 10 digits, so their mean is the centre only to about 1e-11.) The flow keeps it only
     * as well as its velocity field J zeta, a fit of -grad W * rho in the
     * span of the planar flow's derivatives, which holds no exact
     * translation, and the Euler step allow: 0.001 .. 0.046 at t = 1/4 in 20
     * seeds, against a displacement of each sample of about 0.2 by then;
     * 0.06. (Later a layer on its invertibility bound can make it drift by
     * much more; the experiment reports it as centre_drift.) */
    stats sp = particles_early(&r);
    double pm = hypot(sp.mean[0] - s0.mean[0], sp.mean[1] - s0.mean[1]);
    ck_assert_msg(pm < 1e-12, "particles' centre moved by %g", pm);
    ck_assert_msg(se.drift < 0.06, "centre moved by %g at t = %g", se.drift, T_EARLY);

    /* The early dynamics against the particle system. */
    char why[256];
    ck_assert_msg(early_agrees(&se, &sp, why, sizeof why), "%s", why);

    /* Towards the ring at t = 1: energy below every Gaussian's by 0.01
     * (0.158 at the start; 19 seeds end at -0.0756 or lower, the drifting
     * one at -0.0737), radius mean within 0.06 of 1/sqrt(3) (0.175 away at
     * the start, the 19 seeds 0.01 .. 0.045), spread below 0.25 (0.39 at the
     * start, the 19 seeds 0.22 at most). The energy of the 500 output
     * samples and that of the training batch differ by sampling error (and
     * the fixed batch is fitted a little better): -0.0008 .. +0.0016 in the
     * seeds; 0.004. */
    double R = 1.0 / sqrt(3.0);
    ck_assert_msg(r.res.energy < -1.0 / 16.0 - 0.01, "energy %g", r.res.energy);
    ck_assert_msg(r.res.energy > -1.0 / 12.0, "energy %g below the minimum -1/12", r.res.energy);
    ck_assert_msg(fabs(sT.energy - r.res.energy) < 0.004, "energy on the output samples %g, batch %g",
                  sT.energy, r.res.energy);
    ck_assert_msg(fabs(sT.rmean - R) < 0.06, "radius mean %g", sT.rmean);
    ck_assert_msg(sT.rsd < 0.25, "radius spread %g", sT.rsd);
}
END_TEST

/* The comparison with the particles catches a flow at the wrong speed: the
 * energy's weight scales the velocity (weight 2 is an Euler step of 2h per
 * step h of the clock). The ring reference needs weight 1, so these runs go
 * without it. */
START_TEST(test_wrong_speed)
{
    static agg_run r;
    const char *weight = _i == 0 ? "energy.weight=2" : "energy.weight=0.5";
    const char *extra[] = {"reference.type=none", weight};
    run_short(extra, 2, &r);
    stats se = stats_of(M, r.xe), sp = particles_early(&r);
    char why[256];
    ck_assert_msg(!early_agrees(&se, &sp, why, sizeof why), "%s: not caught: %s", weight, why);
}
END_TEST

static Suite *agg_suite(void)
{
    Suite *s = suite_create("exp_aggregation");
    TCase *tc = tcase_create("ring");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_file);
    tcase_add_test(tc, test_short);
    tcase_add_loop_test(tc, test_wrong_speed, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(agg_suite());
}
