/* files.c: what a run writes on disk: directories (mkdir -p), whole files
 * written atomically (a temporary name, then rename: a killed run leaves no
 * torn file), and the clearing of a reused run directory, which removes
 * only wgf's own file names. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
int wgf_mkdir_p(const char *path, wgf_error *err)
{
    if (!wgf_mpi_writer()) /* rank 0 writes a run's files (mpi.c) */
        return WGF_OK;
    size_t n = strlen(path);
    char *buf = malloc(n + 1);
    if (!buf)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            int rc = wgf_error_set(err, WGF_EIO, "cannot create directory %s: %s", buf, strerror(errno));
            free(buf);
            return rc;
        }
        buf[i] = c;
    }
    free(buf);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return wgf_error_set(err, WGF_EIO, "%s is not a directory", path);
    return WGF_OK;
}

int wgf_write_atomic(const char *path, const char *data, size_t len, wgf_error *err)
{
    if (!wgf_mpi_writer())
        return WGF_OK;
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = wgf_error_set(err, WGF_EIO, "cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    size_t w = len ? fwrite(data, 1, len, f) : 0;
    int bad = w != len;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0 && errno != EINVAL;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int rc = wgf_error_set(err, WGF_EIO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    return WGF_OK;
}

/* ------------------------------------------------------------ a reused run directory */

/* 1 when name is "<prefix>NNNNNN<suffix>" with at least one digit. */
static int numbered(const char *name, const char *prefix, const char *suffix)
{
    size_t np = strlen(prefix), ns = strlen(suffix), n = strlen(name);
    if (n <= np + ns || strncmp(name, prefix, np) != 0 || strcmp(name + n - ns, suffix) != 0)
        return 0;
    for (size_t i = np; i < n - ns; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    return 1;
}

/* A temporary file that wgf_write_atomic left for a file keep() selects: "<name>.tmp.<pid>". */
static int atomic_leftover(const char *name, int (*keep)(const char *name))
{
    size_t n = strlen(name), k = n;
    while (k > 0 && name[k - 1] >= '0' && name[k - 1] <= '9')
        k--;
    if (k == n || k < 6 || strncmp(name + k - 5, ".tmp.", 5) != 0)
        return 0;
    char *base = strdup(name);
    if (!base)
        return 0;
    base[k - 5] = '\0';
    int yes = keep(base);
    free(base);
    return yes;
}

/* Remove dir/name when it is a file (a directory or a missing file is left alone). */
static int remove_file(const char *dir, const char *name, wgf_error *err)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    snprintf(path, n, "%s/%s", dir, name);
    struct stat st;
    int rc = WGF_OK;
    if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode) && unlink(path) != 0 && errno != ENOENT)
        rc = wgf_error_set(err, WGF_EIO, "cannot remove %s, left by an earlier run: %s", path,
                           strerror(errno));
    free(path);
    return rc;
}

/* Remove the files of dir that keep(name) selects, and every leftover temporary file. */
static int remove_matching(const char *dir, int (*keep)(const char *name), wgf_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return WGF_OK; /* not there yet: nothing to clear */
    int rc = WGF_OK;
    struct dirent *e;
    while (rc == WGF_OK && (e = readdir(d)))
        if (keep(e->d_name) || atomic_leftover(e->d_name, keep))
            rc = remove_file(dir, e->d_name, err);
    closedir(d);
    return rc;
}

static int top_file(const char *name)
{
    static const char *const own[] = {"summary.ini", "config.ini", "history.csv", "reference.csv"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcmp(name, own[i]) == 0)
            return 1;
    return 0;
}
static int samples_file(const char *name) { return numbered(name, "step-", ".csv"); }
static int theta_file(const char *name) { return numbered(name, "step-", ".bin"); }
static int plots_file(const char *name)
{
    size_t n = strlen(name);
    return strcmp(name, "plot.gp") == 0 || (n > 4 && strcmp(name + n - 4, ".png") == 0);
}

int wgf_outdir_clear(const char *dir, wgf_error *err)
{
    if (!wgf_mpi_writer())
        return WGF_OK;
    /* summary.ini first: from here on the directory claims no finished run */
    int rc = remove_file(dir, "summary.ini", err);
    static const char *const sub[] = {"", "/samples", "/theta", "/plots"};
    int (*const keep[])(const char *) = {top_file, samples_file, theta_file, plots_file};
    for (size_t i = 0; rc == WGF_OK && i < sizeof sub / sizeof sub[0]; i++) {
        size_t n = strlen(dir) + strlen(sub[i]) + 1;
        char *path = malloc(n);
        if (!path)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
        snprintf(path, n, "%s%s", dir, sub[i]);
        rc = remove_matching(path, keep[i], err);
        free(path);
    }
    return rc;
}
