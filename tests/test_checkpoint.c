/* test_checkpoint.c: the checkpoint file (exact round trip, hostile and torn
 * files refused), the configuration comparison that guards a resume, the
 * clean-up of a resumed run's directory, and a run interrupted at a step off
 * the output cadence and resumed through the library (wgf_run_opts.resume). */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/internal.h"
#include "testutil.h"

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fputs(text, f);
    fclose(f);
}

static int exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

START_TEST(test_round_trip_exact)
{
    char *dir = test_temp_dir("ckpt");
    double theta[5] = {1.0 / 3.0, -0.0, 4.9e-324, -1.7976931348623157e308, NAN};
    double times[3] = {0.0, 0.005, 0.1 + 0.2};
    double state[2] = {0.1 + 0.2, 1.0 / 3.0}; /* a scheme's own (wgf_problem_save_state) */
    static const char config[] = "\n[run]\ndim = 2\n\n[energy.a]\nplugin = fpe\n";
    static const char hist[] = "step,t\n0,0\n1,0.005\n";
    static const char path[] = "step,stage,t,energy\n0,0,0,1.5\n";
    wgf_checkpoint ck = {.step = 2, .t = 0.01, .wall = 1.5, .metric_products = 77, .steps_seen = 2,
                         .first_energy = -3.25, .diag_failed = 1, .diag_first = 1, .has_guard = 1,
                         .nparams = 5, .theta = theta, .ntimes = 3, .diag_times = times,
                         .config = (char *)config, .config_len = sizeof config - 1,
                         .history = (char *)hist, .history_len = sizeof hist - 1, .nstate = 2,
                         .state = state, .path = (char *)path, .path_len = sizeof path - 1};
    snprintf(ck.diag_msg, sizeof ck.diag_msg, "two\nlines");
    wgf_guard_init(&ck.guard, NULL);
    ck.guard.seen = 2;
    ck.guard.f0 = 1.0 / 7.0;
    ck.guard.fmin = -2.0;
    ck.guard.rises = 3;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_checkpoint_write(dir, &ck, &err), WGF_OK);
    wgf_checkpoint r;
    ck_assert_int_eq(wgf_checkpoint_read(dir, &r, &err), WGF_OK);
    ck_assert_uint_eq(r.step, 2);
    ck_assert(memcmp(&r.t, &ck.t, sizeof r.t) == 0 && memcmp(&r.wall, &ck.wall, sizeof r.wall) == 0);
    ck_assert_uint_eq(r.metric_products, 77);
    ck_assert_uint_eq(r.steps_seen, 2);
    ck_assert(r.first_energy == -3.25);
    ck_assert_uint_eq(r.diag_failed, 1);
    ck_assert_str_eq(r.diag_msg, "two lines"); /* one line */
    ck_assert_int_eq(r.has_guard, 1);
    ck_assert_uint_eq(r.guard.seen, 2);
    ck_assert(r.guard.f0 == 1.0 / 7.0 && r.guard.fmin == -2.0 && r.guard.rises == 3);
    ck_assert(isnan(r.guard.norm_prev)); /* NaN survives */
    ck_assert_uint_eq(r.nparams, 5);
    ck_assert(memcmp(r.theta, theta, 4 * sizeof *theta) == 0); /* bit for bit, -0 and subnormals */
    ck_assert(signbit(r.theta[1]) && isnan(r.theta[4]));
    ck_assert_uint_eq(r.ntimes, 3);
    ck_assert(memcmp(r.diag_times, times, sizeof times) == 0);
    ck_assert_uint_eq(r.path_len, sizeof path - 1);
    ck_assert(memcmp(r.path, path, sizeof path - 1) == 0);
    ck_assert_uint_eq(r.nstate, 2);
    ck_assert(memcmp(r.state, state, sizeof state) == 0);
    ck_assert_uint_eq(r.config_len, sizeof config - 1);
    ck_assert(memcmp(r.config, config, sizeof config - 1) == 0);
    ck_assert_uint_eq(r.history_len, sizeof hist - 1);
    ck_assert(memcmp(r.history, hist, sizeof hist - 1) == 0);
    wgf_checkpoint_free(&r);
    test_remove_tree(dir);
    free(dir);
}
END_TEST

/* A missing, torn or hostile file is refused with WGF_EINVAL and a message,
 * without allocating what its counts claim. */
START_TEST(test_bad_files_refused)
{
    char *dir = test_temp_dir("ckpt");
    wgf_checkpoint r;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_checkpoint_read(dir, &r, &err), WGF_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "no checkpoint: nothing to resume"));
    static const char head[] = "wgf checkpoint 1\nstep 1\nt 0x0p+0\nwall 0x0p+0\nmetric_products 0\n"
                               "steps_seen 1\nfirst_energy 0x1p+0\ndiag_failed 0\ndiag_first 0\ndiag_msg \n"
                               "guard none\n";
    char head2[sizeof head];
    memcpy(head2, head, sizeof head);
    const char *bad[] = {
        "not a checkpoint\n",
        "wgf checkpoint 3\nstep 1\n", /* a newer format */
        "wgf checkpoint 1\nstep -1\n",
        "wgf checkpoint 1\nstep 1\n",                      /* torn */
        "theta 18446744073709551615\n",                     /* a count no file holds */
        "theta 1\n0x1p+0\ndiag_times 0\nconfig 100\nabc\n", /* a blob past the end */
        "theta 1\nzero\ndiag_times 0\nconfig 0\n\nhistory 0\n\nend\n",
        "theta 1\n0x1p+0\ndiag_times 0\nconfig 0\n\nhistory 0\n\n", /* no end */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s", i >= 4 ? head : "", bad[i]);
        write_text(dir, "checkpoint", text);
        memset(&err, 0, sizeof err);
        ck_assert_msg(wgf_checkpoint_read(dir, &r, &err) == WGF_EINVAL, "file %zu read", i);
        ck_assert_msg(strstr(err.msg, "not a complete wgf checkpoint") != NULL, "file %zu: %s", i, err.msg);
        ck_assert_ptr_null(r.theta);
    }
    char text[1024];
    snprintf(text, sizeof text, "%stheta 1\n0x1p+0\ndiag_times 0\nconfig 0\n\nhistory 0\n\nend\n", head);
    write_text(dir, "checkpoint", text); /* the same, complete: read */
    ck_assert_int_eq(wgf_checkpoint_read(dir, &r, &err), WGF_OK);
    ck_assert(r.theta[0] == 1.0 && r.nparams == 1 && r.config_len == 0 && r.nstate == 0);
    wgf_checkpoint_free(&r);
    /* version 2 holds the scheme's state after the times and path.csv after the history;
     * without them, it is torn */
    head2[15] = '2';
    snprintf(text, sizeof text, "%stheta 1\n0x1p+0\ndiag_times 0\nstate 1\n0x1.8p+1\nconfig 0\n\nhistory 0\n\npath 0\n\nend\n",
             head2);
    write_text(dir, "checkpoint", text);
    ck_assert_int_eq(wgf_checkpoint_read(dir, &r, &err), WGF_OK);
    ck_assert(r.nstate == 1 && r.state[0] == 3.0);
    wgf_checkpoint_free(&r);
    snprintf(text, sizeof text, "%stheta 1\n0x1p+0\ndiag_times 0\nconfig 0\n\nhistory 0\n\npath 0\n\nend\n",
             head2);
    write_text(dir, "checkpoint", text);
    ck_assert_int_eq(wgf_checkpoint_read(dir, &r, &err), WGF_EINVAL);
    snprintf(text, sizeof text, "%stheta 1\n0x1p+0\ndiag_times 0\nstate 0\nconfig 0\n\nhistory 0\n\nend\n",
             head2);
    write_text(dir, "checkpoint", text);
    ck_assert_int_eq(wgf_checkpoint_read(dir, &r, &err), WGF_EINVAL);
    test_remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_config_diff)
{
    static const char a[] = "\n[run]\ndim = 2\nseed = 1\n\n[energy.b.c]\nmu = 1 2\n";
    char *key, *va, *vb;
    ck_assert_int_eq(wgf_checkpoint_config_diff(a, strlen(a), a, strlen(a), &key, &va, &vb), 0);
    static const char b[] = "\n[run]\ndim = 2\nseed = 1\n\n[energy.b.c]\nmu = 1 3\n";
    ck_assert_int_eq(wgf_checkpoint_config_diff(a, strlen(a), b, strlen(b), &key, &va, &vb), 1);
    ck_assert_str_eq(key, "energy.b.c.mu");
    ck_assert_str_eq(va, "1 2");
    ck_assert_str_eq(vb, "1 3");
    free(key), free(va), free(vb);
    /* a key only the second has, and one only the first has */
    static const char c[] = "\n[run]\ndim = 2\nseed = 1\nname = x\n\n[energy.b.c]\nmu = 1 2\n";
    ck_assert_int_eq(wgf_checkpoint_config_diff(a, strlen(a), c, strlen(c), &key, &va, &vb), 1);
    ck_assert_str_eq(key, "run.name");
    ck_assert_ptr_null(va);
    ck_assert_str_eq(vb, "x");
    free(key), free(va), free(vb);
    ck_assert_int_eq(wgf_checkpoint_config_diff(c, strlen(c), a, strlen(a), &key, &va, &vb), 1);
    ck_assert_str_eq(key, "run.name");
    ck_assert_str_eq(va, "x");
    ck_assert_ptr_null(vb);
    free(key), free(va), free(vb);
    /* the same key in another section is another key */
    static const char d[] = "\n[run]\ndim = 2\n\n[initial]\nseed = 1\n\n[energy.b.c]\nmu = 1 2\n";
    ck_assert_int_eq(wgf_checkpoint_config_diff(a, strlen(a), d, strlen(d), &key, &va, &vb), 1);
    ck_assert_str_eq(key, "run.seed");
    free(key), free(va), free(vb);
}
END_TEST

/* What a resumed run writes again, or what the uninterrupted run would not
 * have written, goes; the rest of the directory stays. */
START_TEST(test_clear_after)
{
    char *dir = test_temp_dir("ckpt");
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/samples", dir);
    ck_assert_int_eq(mkdir(sub, 0777), 0);
    snprintf(sub, sizeof sub, "%s/theta", dir);
    ck_assert_int_eq(mkdir(sub, 0777), 0);
    const char *files[] = {"summary.ini", "reference.csv", "history.csv", "config.ini", "notes.txt",
                           "history.csv.tmp.123", "samples/step-000000.csv", "samples/step-000005.csv",
                           "samples/step-000010.csv", "samples/step-000020.csv",
                           "samples/step-000010.csv.tmp.9", "theta/step-000000.bin", "theta/step-000007.bin",
                           "theta/step-000030.bin", "theta/mine.bin", "path.csv", "path.csv.tmp.77",
                           "samples/stage-03.csv", "samples/stage-03.csv.tmp.5", "samples/stage-x.csv.tmp.5"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        write_text(dir, files[i], "x");
    wgf_error err = {0};
    ck_assert_int_eq(wgf_checkpoint_clear_after(dir, 10, 10, &err), WGF_OK);
    /* (a path scheme's path.csv and stage files stay: the next path rewrites them) */
    const char *kept[] = {"history.csv", "config.ini", "notes.txt", "samples/step-000000.csv",
                          "theta/step-000000.bin", "theta/mine.bin", "path.csv", "samples/stage-03.csv",
                          "samples/stage-x.csv.tmp.5"};
    const char *gone[] = {"summary.ini", "reference.csv", "history.csv.tmp.123", "samples/step-000005.csv",
                          "samples/step-000010.csv", "samples/step-000020.csv", "samples/step-000010.csv.tmp.9",
                          "theta/step-000007.bin", "theta/step-000030.bin", "path.csv.tmp.77",
                          "samples/stage-03.csv.tmp.5"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        ck_assert_msg(exists(dir, kept[i]), "%s was removed", kept[i]);
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        ck_assert_msg(!exists(dir, gone[i]), "%s was left", gone[i]);
    test_remove_tree(dir);
    free(dir);
}
END_TEST

/* ---- a run interrupted at a step off the output cadence, resumed ---- */

typedef struct {
    volatile sig_atomic_t *flag;
    unsigned long at;
} stopper;

static int stop_at(void *ctx, wgf_step_info *info, wgf_error *err)
{
    (void)err;
    stopper *s = ctx;
    if (info->step == s->at)
        *s->flag = 1;
    return WGF_OK;
}

/* A run of the affine OU experiment with sets, stopped after step `at`
 * (off the output cadence, 10) by a monitor after the outputs: the
 * checkpoint is still step at's start, the interrupted run's last files,
 * step at's, are not the uninterrupted run's, and the resumed run ends with
 * the uninterrupted run's outputs. *ck gets the checkpoint. */
static void interrupt_and_resume(const char **sets, size_t nsets, unsigned long at, wgf_checkpoint *ck)
{
    char file[4096];
    test_srcpath("experiments/fpe_ou_10d_affine.ini", file, sizeof file);
    char *full = test_temp_dir("ckfull"), *part = test_temp_dir("ckpart");
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    wgf_run_result res;
    wgf_run_opts opts = {.file = file, .outdir = full, .sets = sets, .nsets = nsets, .quiet = 1};
    ck_assert_int_eq(wgf_run(&opts, &res, &diag, &err), WGF_OK);
    unsigned long steps = res.steps;
    ck_assert_uint_gt(steps, at + 1);
    volatile sig_atomic_t flag = 0;
    stopper st = {.flag = &flag, .at = at};
    opts.outdir = part;
    opts.interrupt = &flag;
    opts.monitor = stop_at;
    opts.monitor_ctx = &st;
    ck_assert_int_eq(wgf_run(&opts, &res, &diag, &err), WGF_EINTR);
    ck_assert_int_eq((int)diag.n, 0);
    char name[64];
    snprintf(name, sizeof name, "theta/step-%06lu.bin", at);
    ck_assert(exists(part, name)); /* the interrupted run's last state */
    ck_assert_int_eq(wgf_checkpoint_read(part, ck, &err), WGF_OK);
    ck_assert_uint_eq(ck->step, at);
    ck_assert_uint_eq(ck->steps_seen, at);
    /* resumed: from part/config.ini, with no sets (they are in it) */
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/config.ini", part);
    wgf_run_opts ropts = {.file = cfg, .outdir = part, .quiet = 1, .resume = 1};
    int rc = wgf_run(&ropts, &res, &diag, &err);
    ck_assert_msg(rc == WGF_OK, "resume: %s", diag.n ? diag.msg[0] : err.msg);
    ck_assert_uint_eq(res.steps, steps);
    ck_assert(!exists(part, name)); /* not the uninterrupted run's */
    char *a = test_read_file(full, "history.csv", NULL), *b = test_read_file(part, "history.csv", NULL);
    test_strip_wall(a);
    test_strip_wall(b);
    ck_assert_str_eq(a, b);
    free(a), free(b);
    a = test_read_file(full, "summary.ini", NULL);
    b = test_read_file(part, "summary.ini", NULL);
    test_strip_line(a, "wall_seconds = ");
    test_strip_line(b, "wall_seconds = ");
    test_strip_line(a, "\nthreads = ");
    test_strip_line(b, "\nthreads = ");
    ck_assert_str_eq(a, b);
    free(a), free(b);
    snprintf(name, sizeof name, "theta/step-%06lu.bin", steps); /* the final state */
    a = test_read_file(full, name, NULL);
    b = test_read_file(part, name, NULL);
    ck_assert(memcmp(a, b, 110 * sizeof(double)) == 0);
    free(a), free(b);
    /* finished: nothing to resume */
    ck_assert_int_eq(wgf_run(&ropts, &res, &diag, &err), WGF_EINVAL);
    ck_assert_int_eq((int)diag.n, 1);
    ck_assert_ptr_nonnull(strstr(diag.msg[0], "nothing to resume"));
    wgf_diag_free(&diag);
    test_remove_tree(full);
    test_remove_tree(part);
    free(full);
    free(part);
}

START_TEST(test_interrupt_and_resume)
{
    const char *sets[] = {"scheme.t_end=0.2", "output.every=10", "output.plots=false"};
    wgf_checkpoint ck;
    interrupt_and_resume(sets, 3, 13, &ck);
    ck_assert_uint_eq(ck.nstate, 0); /* euler's state is theta and the step */
    wgf_checkpoint_free(&ck);
}
END_TEST

/* Controlled steps: the checkpoint holds t, the first size tried and the
 * output times reached at the step's start; a first step of 0.3 is
 * rejected, and with safety = 1 a try cut to an output time is rejected
 * too, so the sizes tried after the resume are the step control's. */
START_TEST(test_interrupt_and_resume_adaptive)
{
    const char *sets[] = {"scheme.plugin=adaptive", "scheme.tol=1e-3", "scheme.t_end=0.5",
                          "scheme.every_t=0.25", "scheme.step=0.3", "scheme.safety=1", "scheme.fac_max=3",
                          "output.every=10", "output.plots=false"};
    wgf_checkpoint ck;
    interrupt_and_resume(sets, 9, 13, &ck);
    ck_assert_uint_eq(ck.nstate, 3);
    ck_assert(ck.state[0] == ck.t);                   /* t_13 */
    ck_assert(ck.state[1] > 0 && ck.state[1] < 0.25); /* the size step 13 tried first */
    ck_assert(ck.state[2] == 0.0);                    /* before the first output time 0.25 */
    wgf_checkpoint_free(&ck);
}
END_TEST

static Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip_exact);
    tcase_add_test(tc, test_bad_files_refused);
    tcase_add_test(tc, test_config_diff);
    tcase_add_test(tc, test_clear_after);
    tcase_add_test(tc, test_interrupt_and_resume);
    tcase_add_test(tc, test_interrupt_and_resume_adaptive);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_main(checkpoint_suite()); }
