/* test_guard.c: the divergence detectors on explicit steps of quadratic
 * energies, stable and unstable, with and without batch noise. */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "../core/guard.h"
#include "testutil.h"

/* Explicit gradient steps x <- x - h lambda_i x_i on F(x) = sum lambda_i x_i^2 / 2,
 * with Gaussian noise of relative size `noise` on the reported energy (a
 * batch estimate). Returns the step at which the guard stopped the run, or
 * steps + 1 when it never did. */
static unsigned long explicit_run(const double *lambda, size_t d, double h, unsigned long steps, double noise,
                                  unsigned long seed, wgf_error *err)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    double x[8];
    for (size_t i = 0; i < d; i++)
        x[i] = 1.0;
    wgf_guard g;
    wgf_guard_init(&g, NULL);
    for (unsigned long k = 0; k <= steps; k++) {
        double F = 0, step2 = 0;
        for (size_t i = 0; i < d; i++)
            F += 0.5 * lambda[i] * x[i] * x[i];
        F += noise * gsl_ran_gaussian(r, 1.0);
        for (size_t i = 0; i < d; i++) {
            double s = h * lambda[i] * x[i];
            step2 += s * s;
            x[i] -= s;
        }
        /* the step norm of a batch estimate wanders too */
        double norm = k == steps ? NAN : sqrt(step2) + 1e-3 * noise * fabs(gsl_ran_gaussian(r, 1.0));
        if (wgf_guard_step(&g, k, (double)k * h, F, norm, x, d, err) != WGF_OK) {
            gsl_rng_free(r);
            return k;
        }
    }
    gsl_rng_free(r);
    return steps + 1;
}

/* The stiff OU case in miniature: lambda_max = 90, h = 0.05 gives
 * h lambda = 4.5 (an amplification of 3.5 per step): stopped within a few
 * steps with the energy or the growth named; h = 0.005 runs to the end. */
START_TEST(stiff_quadratic_unstable_and_stable)
{
    const double lambda[4] = {90, 1, 1, 1};
    wgf_error err = {0};
    unsigned long k = explicit_run(lambda, 4, 0.05, 18, 0.0, 1, &err);
    ck_assert_msg(k <= 10, "stopped at %lu", k);
    ck_assert_int_eq(err.code, WGF_EDIVERGED);
    ck_assert_msg(strstr(err.msg, "diverged") && strstr(err.msg, "smaller step"), "%s", err.msg);
    char want[32];
    snprintf(want, sizeof want, "step %lu ", k);
    ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    ck_assert_uint_eq(explicit_run(lambda, 4, 0.005, 180, 0.0, 1, &err), 181);
}
END_TEST

/* Just past the limit (amplification 1.1 per step): the slow growth is
 * caught before the numbers overflow. */
START_TEST(slow_growth_caught)
{
    const double lambda[2] = {1, 2.1};
    wgf_error err = {0};
    unsigned long k = explicit_run(lambda, 2, 1.0, 5000, 0.0, 1, &err);
    ck_assert_msg(k < 200, "stopped at %lu", k);
}
END_TEST

/* Near equilibrium the reported energy is mostly batch noise and the step
 * norm wanders: no false alarm in 200000 steps of a stable run with energy
 * noise as large as the energy itself. */
START_TEST(noise_is_not_divergence)
{
    const double lambda[3] = {5, 1, 0.2};
    wgf_error err = {0};
    unsigned long k = explicit_run(lambda, 3, 0.1, 200000, 1.0, 7, &err);
    ck_assert_msg(k == 200001, "false alarm at step %lu: %s", k, err.msg);
}
END_TEST

/* A flow that speeds up while it dissipates (steps growing 1000x over twenty
 * steps, the energy falling) is not diverging. */
START_TEST(accelerating_descent_is_not_divergence)
{
    wgf_guard g;
    wgf_guard_init(&g, NULL);
    wgf_error err = {0};
    double theta[1] = {0};
    for (unsigned long k = 0; k < 40; k++) {
        double norm = k < 20 ? 1e-6 * pow(1.5, (double)k) : 1e-3 * pow(0.8, (double)(k - 20));
        ck_assert_msg(wgf_guard_step(&g, k, 0.01 * (double)k, 10.0 - 0.2 * (double)k, norm, theta, 1, &err) ==
                          WGF_OK,
                      "%s", err.msg);
    }
}
END_TEST

/* Non-finite numbers stop the run at once, naming the step and the quantity. */
START_TEST(non_finite)
{
    wgf_guard g;
    wgf_error err = {0};
    double theta[2] = {1, 2};
    wgf_guard_init(&g, NULL);
    ck_assert_int_eq(wgf_guard_step(&g, 0, 0, 1.0, 0.1, theta, 2, &err), WGF_OK);
    ck_assert_int_eq(wgf_guard_step(&g, 1, 0.1, NAN, 0.1, theta, 2, &err), WGF_EDIVERGED);
    ck_assert_msg(strstr(err.msg, "step 1 (t = 0.1)") && strstr(err.msg, "energy is nan"), "%s", err.msg);
    wgf_guard_init(&g, NULL);
    theta[1] = INFINITY;
    ck_assert_int_eq(wgf_guard_step(&g, 3, 0.3, 1.0, 0.1, theta, 2, &err), WGF_EDIVERGED);
    ck_assert_msg(strstr(err.msg, "parameter 1 is inf"), "%s", err.msg);
    theta[1] = 0;
    wgf_guard_init(&g, NULL);
    ck_assert_int_eq(wgf_guard_step(&g, 4, 0.4, 1.0, INFINITY, theta, 2, &err), WGF_EDIVERGED);
    ck_assert_msg(strstr(err.msg, "step norm is inf"), "%s", err.msg);
}
END_TEST

/* The energy detector alone: a jump of more than ten energy scales. */
START_TEST(energy_rise_threshold)
{
    wgf_guard g;
    wgf_error err = {0};
    double theta[1] = {0};
    wgf_guard_init(&g, NULL);
    ck_assert_int_eq(wgf_guard_step(&g, 0, 0, -2.0, NAN, theta, 1, &err), WGF_OK);
    ck_assert_int_eq(wgf_guard_step(&g, 1, 0, -3.0, NAN, theta, 1, &err), WGF_OK);
    /* scale = max(2, 3, 1) = 3: a rise to 26.9 (29.9 above the minimum) is allowed */
    ck_assert_int_eq(wgf_guard_step(&g, 2, 0, 26.9, NAN, theta, 1, &err), WGF_OK);
    ck_assert_int_eq(wgf_guard_step(&g, 3, 0, 27.1, NAN, theta, 1, &err), WGF_EDIVERGED);
    ck_assert_msg(strstr(err.msg, "energy rose to 27.1"), "%s", err.msg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guard");
    TCase *tc = tcase_create("detectors");
    tcase_add_test(tc, stiff_quadratic_unstable_and_stable);
    tcase_add_test(tc, slow_growth_caught);
    tcase_add_test(tc, noise_is_not_divergence);
    tcase_add_test(tc, accelerating_descent_is_not_divergence);
    tcase_add_test(tc, non_finite);
    tcase_add_test(tc, energy_rise_threshold);
    suite_add_tcase(s, tc);
    return test_main(s);
}
