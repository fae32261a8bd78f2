/* testutil.h: shared helpers for the Check suites. */
#ifndef WGF_TESTUTIL_H
#define WGF_TESTUTIL_H

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wgf/wgf.h>

/* |a - b| <= tol * max(1, |b|), with both values in the message. */
#define ck_assert_close(a, b, tol)                                                                  \
    do {                                                                                            \
        double ck_a_ = (a), ck_b_ = (b), ck_t_ = (tol);                                             \
        ck_assert_msg(fabs(ck_a_ - ck_b_) <= ck_t_ * fmax(1.0, fabs(ck_b_)),                         \
                      "%s = %.15g, expected %s = %.15g (tol %g)", #a, ck_a_, #b, ck_b_, ck_t_);      \
    } while (0)

/* A registry on the build tree's plugins (WGF_PLUGIN_PATH, set by make check). */
static inline wgf_registry *test_registry(void)
{
    wgf_registry *reg = NULL;
    wgf_error err = {0};
    const char *path = getenv("WGF_PLUGIN_PATH");
    ck_assert_msg(path != NULL, "WGF_PLUGIN_PATH is not set (run through make check)");
    ck_assert_msg(wgf_registry_create_path(&reg, path, &err) == WGF_OK, "%s", err.msg);
    return reg;
}

/* Path of a file in the source tree. */
static inline const char *test_srcpath(const char *rel, char *buf, size_t size)
{
    const char *top = getenv("WGF_SRCDIR");
    snprintf(buf, size, "%s/%s", top ? top : WGF_TEST_SRCDIR, rel);
    return buf;
}

/* An experiment written to a temporary file (unlink and free it). */
static inline char *test_write_ini(const char *text)
{
    char *path = strdup("/tmp/wgf-test-XXXXXX");
    ck_assert(path != NULL);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(text);
    ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

/* A fresh directory /tmp/wgf-TAG-XXXXXX (free the name). */
static inline char *test_temp_dir(const char *tag)
{
    size_t n = strlen(tag) + 24;
    char *dir = malloc(n);
    ck_assert(dir != NULL);
    snprintf(dir, n, "/tmp/wgf-%s-XXXXXX", tag);
    ck_assert(mkdtemp(dir) != NULL);
    return dir;
}

/* Remove a run directory and everything in it. */
static inline void test_remove_tree(const char *dir)
{
    DIR *dp = opendir(dir);
    ck_assert_msg(dp != NULL, "cannot open %s", dir);
    struct dirent *e;
    struct stat st;
    while ((e = readdir(dp)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(n);
        ck_assert(path != NULL);
        memcpy(path, dir, strlen(dir));
        path[strlen(dir)] = '/';
        memcpy(path + strlen(dir) + 1, e->d_name, strlen(e->d_name) + 1);
        ck_assert(lstat(path, &st) == 0);
        if (S_ISDIR(st.st_mode))
            test_remove_tree(path);
        else
            ck_assert_msg(unlink(path) == 0, "cannot remove %s", path);
        free(path);
    }
    closedir(dp);
    ck_assert_msg(rmdir(dir) == 0, "cannot remove %s", dir);
}

/* Run a suite; exit status for the test driver. */
static inline int test_main(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
