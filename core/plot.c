/* plot.c: the figures of a run directory (wgf_plot, `wgf plot DIR`): a
 * gnuplot script written from history.csv's columns and the latest samples,
 * with every string that reaches gnuplot quoted as data, then gnuplot run on
 * it when it is installed. */
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

static int have_gnuplot(void)
{
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    const char *s = path;
    while (*s) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n > 0) {
            wgf_strbuf exe = {0};
            wgf_strbuf_addn(&exe, s, n);
            wgf_strbuf_add(&exe, "/gnuplot");
            int found = !exe.failed && access(exe.s, X_OK) == 0;
            wgf_strbuf_free(&exe);
            if (found)
                return 1;
        }
        if (!e)
            break;
        s = e + 1;
    }
    return 0;
}

/* The header of history.csv, split into column names. */
static int history_columns(const char *dir, char ***cols, size_t *ncols)
{
    char *path = wgf_path_join(dir, "history.csv");
    FILE *f = path ? fopen(path, "r") : NULL;
    free(path);
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k = getline(&line, &cap, f);
    fclose(f);
    if (k <= 0) {
        free(line);
        return -1;
    }
    *ncols = 0;
    *cols = NULL;
    char *save = NULL;
    for (char *tok = strtok_r(line, ",\r\n", &save); tok; tok = strtok_r(NULL, ",\r\n", &save)) {
        char **nc = realloc(*cols, (*ncols + 1) * sizeof *nc);
        if (!nc)
            break;
        *cols = nc;
        if (!((*cols)[*ncols] = strdup(tok)))
            break;
        (*ncols)++;
    }
    free(line);
    return 0;
}

static int column_index(char **cols, size_t ncols, const char *name)
{
    for (size_t i = 0; i < ncols; i++)
        if (strcmp(cols[i], name) == 0)
            return (int)i;
    return -1;
}

static int is_error_column(const char *c)
{
    return strncmp(c, "err_", 4) == 0 || strstr(c, "w2") != NULL || strcmp(c, "mean_err") == 0 ||
           strcmp(c, "centre_drift") == 0 || strcmp(c, "radius_sd") == 0;
}

/* reference.csv starts with "# curve" (x1, x2) or "# density" (x1, rho). */
static int reference_kind(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[64] = "";
    int kind = 0;
    if (fgets(line, sizeof line, f))
        kind = strncmp(line, "# curve", 7) == 0 ? 1 : strncmp(line, "# density", 9) == 0 ? 2 : 0;
    fclose(f);
    return kind;
}

static long last_samples_step(const char *dir)
{
    char *path = wgf_path_join(dir, "samples");
    DIR *d = path ? opendir(path) : NULL;
    free(path);
    if (!d)
        return -1;
    long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        if (sscanf(e->d_name, "step-%ld.csv", &s) == 1 && s > best)
            best = s;
    }
    closedir(d);
    return best;
}

/* ------------------------------------------------------------ gnuplot strings
 *
 * Every string that reaches the script (the run directory, file names,
 * column names from history.csv, titles) is data, never code: it is written
 * as a gnuplot single-quoted string, inside which gnuplot expands nothing
 * (no `backquotes`, no @macros, no backslash escapes) and a quote is
 * written twice. Control characters are refused, since a newline would end
 * the command. Paths are made to start with '/' or "./": gnuplot reads a
 * data file named '<cmd' from a shell command and writes output named
 * '|cmd' to one. The strings are kept in a list freed at the end. */
typedef struct gp_strings {
    char **s;
    size_t n, cap;
    int refused, nomem;
    const char *bad; /* the first refused string (not owned) */
} gp_strings;

static void gp_strings_free(gp_strings *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->s[i]);
    free(g->s);
}

/* s (a prefix "./" when dot) as a single-quoted string, kept in g; "''" after a failure, which
 * g records, so that the script is built to the end and then discarded. */
static const char *gp_quote2(gp_strings *g, const char *s, int dot)
{
    size_t n = 3 + (dot ? 2 : 0);
    for (const char *c = s; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            if (!g->refused)
                g->bad = s;
            g->refused = 1;
            return "''";
        }
        n += *c == '\'' ? 2 : 1;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        char **ns = realloc(g->s, cap * sizeof *ns);
        if (!ns) {
            g->nomem = 1;
            return "''";
        }
        g->s = ns;
        g->cap = cap;
    }
    char *q = malloc(n), *o = q;
    if (!q) {
        g->nomem = 1;
        return "''";
    }
    *o++ = '\'';
    if (dot) {
        *o++ = '.';
        *o++ = '/';
    }
    for (const char *c = s; *c; c++) {
        if (*c == '\'')
            *o++ = '\'';
        *o++ = *c;
    }
    *o++ = '\'';
    *o = '\0';
    g->s[g->n++] = q;
    return q;
}

/* A string: a column name, a title. */
static const char *gp_str(gp_strings *g, const char *s)
{
    return gp_quote2(g, s, 0);
}

/* The path dir/rel (rel may be empty). */
static const char *gp_path(gp_strings *g, const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 1;
    char *p = malloc(n);
    if (!p) {
        g->nomem = 1;
        return "''";
    }
    snprintf(p, n, "%s%s", dir, rel);
    const char *q = gp_quote2(g, p, p[0] != '/');
    if (g->bad == p)
        g->bad = dir; /* the part that can hold a control character */
    free(p);
    return q;
}

/* The plot script for a run directory (cols: history.csv's columns). */
static void plot_script(const char *dir, char **cols, size_t ncols, gp_strings *g, wgf_strbuf *gp)
{
    const char *history = gp_path(g, dir, "/history.csv");
    wgf_strbuf_printf(gp, "set datafile separator ','\nset terminal pngcairo size 900,600 noenhanced\n"
                          "set key outside right\nset grid\nset xlabel 't'\n");
    int has_eref = column_index(cols, ncols, "energy_ref") >= 0;
    wgf_strbuf_printf(gp, "set output %s\nset ylabel 'energy'\n"
                          "plot %s using 't':'energy' with lines lw 2 title 'energy'",
                      gp_path(g, dir, "/plots/energy.png"), history);
    if (has_eref)
        wgf_strbuf_printf(gp, ", '' using 't':'energy_ref' with lines dt 2 lw 2 title 'reference'");
    wgf_strbuf_printf(gp, "\n");
    /* Errors (log scale): the columns that measure a distance to the reference. */
    int first = 1;
    for (size_t i = 0; i < ncols; i++) {
        if (!is_error_column(cols[i]))
            continue;
        if (first)
            wgf_strbuf_printf(gp, "set output %s\nset logscale y\nset yrange [1e-6<*:*]\nset ylabel "
                                  "'distance to the reference'\nplot ",
                              gp_path(g, dir, "/plots/errors.png"));
        const char *c = gp_str(g, cols[i]);
        wgf_strbuf_printf(gp, "%s%s using 't':%s with linespoints pt 7 ps 0.4 lw 2 title %s",
                          first ? "" : ", ", history, c, c);
        first = 0;
    }
    if (!first)
        wgf_strbuf_printf(gp, "\nunset logscale y\nset autoscale y\n");
    /* Diagnostics with a reference value: X against X_ref. */
    first = 1;
    for (size_t i = 0; i < ncols; i++) {
        size_t n = strlen(cols[i]);
        if (n < 5 || strcmp(cols[i] + n - 4, "_ref") != 0 || strcmp(cols[i], "energy_ref") == 0)
            continue;
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(n - 4), cols[i]);
        if (column_index(cols, ncols, base) < 0) {
            snprintf(base, sizeof base, "%.*s_mean", (int)(n - 4), cols[i]);
            if (column_index(cols, ncols, base) < 0)
                continue;
        }
        if (first)
            wgf_strbuf_printf(gp, "set output %s\nset ylabel 'value'\nplot ",
                              gp_path(g, dir, "/plots/diagnostics.png"));
        const char *b = gp_str(g, base), *c = gp_str(g, cols[i]);
        wgf_strbuf_printf(gp, "%s%s using 't':%s with linespoints pt 7 ps 0.4 lw 2 title %s, "
                              "'' using 't':%s with lines dt 2 lw 2 title %s",
                          first ? "" : ", ", history, b, b, c, c);
        first = 0;
    }
    if (!first)
        wgf_strbuf_printf(gp, "\n");
    long last = last_samples_step(dir);
    if (last >= 0) {
        char *ref = wgf_path_join(dir, "reference.csv");
        int kind = ref ? reference_kind(ref) : 0; /* 0 none, 1 curve, 2 density */
        if (!ref)
            g->nomem = 1;
        free(ref);
        char rel[64];
        snprintf(rel, sizeof rel, "/samples/step-%06ld.csv", last);
        const char *samples = gp_path(g, dir, rel), *qref = gp_path(g, dir, "/reference.csv");
        wgf_strbuf_printf(gp, "set output %s\nset key inside top right\nstats %s using 1 nooutput\n",
                          gp_path(g, dir, "/plots/samples.png"), samples);
        wgf_strbuf_printf(gp, "if (STATS_columns >= 2 && %d != 2) {\n"
                              "  set size ratio -1; set xlabel 'x1'; set ylabel 'x2'\n"
                              "  plot %s using 1:2 with points pt 7 ps 0.3 title 'samples at step %ld'%s%s%s\n"
                              "} else {\n"
                              "  set size noratio; set xlabel 'x1'; set ylabel 'density'\n"
                              "  binw = (STATS_max - STATS_min)/60.0 + 1e-12\n"
                              "  bin(x) = binw*floor(x/binw) + binw/2\n"
                              "  set style fill solid 0.4\n"
                              "  plot %s using (bin($1)):(1.0/(binw*STATS_records)) smooth frequency "
                              "with boxes title 'samples at step %ld'%s%s%s\n}\n",
                          kind, samples, last, kind == 1 ? ", " : "", kind == 1 ? qref : "",
                          kind == 1 ? " using 1:2 with lines lw 2 title 'reference'" : "", samples, last,
                          kind == 2 ? ", " : "", kind == 2 ? qref : "",
                          kind == 2 ? " using 1:2 with lines lw 2 title 'reference'" : "");
    }
    /* A path scheme's path.csv: energy and the reference's errors per stage
     * (the same diagnostics columns as history.csv). */
    char *pathcsv = wgf_path_join(dir, "path.csv");
    int have_path = pathcsv && access(pathcsv, R_OK) == 0;
    if (!pathcsv)
        g->nomem = 1;
    free(pathcsv);
    if (have_path) {
        const char *path = gp_path(g, dir, "/path.csv");
        wgf_strbuf_printf(gp, "set output %s\nset key outside right\nset size noratio\n"
                              "set xlabel 't (path)'\nset ylabel 'energy'\nset y2label 'distance to the reference'\n"
                              "set ytics nomirror\nset y2tics\nset logscale y2\nset y2range [1e-6<*:*]\n"
                              "plot %s using 't':'energy' with linespoints pt 7 lw 2 title 'energy'",
                          gp_path(g, dir, "/plots/path.png"), path);
        for (size_t i = 0; i < ncols; i++)
            if (is_error_column(cols[i])) {
                const char *c = gp_str(g, cols[i]);
                wgf_strbuf_printf(gp, ", '' using 't':%s axes x1y2 with linespoints pt 6 lw 1 title %s", c, c);
            }
        wgf_strbuf_printf(gp, "\nunset logscale y2\nunset y2tics\nunset y2label\nset ytics mirror\n");
    }
}

int wgf_plot(const char *dir, wgf_error *err)
{
    if (!have_gnuplot())
        return wgf_error_set(err, WGF_EUNSUP, "gnuplot is not installed: no plots drawn");
    char **cols = NULL;
    size_t ncols = 0;
    if (history_columns(dir, &cols, &ncols) != 0)
        return wgf_error_set(err, WGF_EIO, "%s/history.csv: cannot read", dir);
    char *plots = wgf_path_join(dir, "plots");
    int rc = plots ? wgf_mkdir_p(plots, err) : wgf_error_set(err, WGF_ENOMEM, "out of memory");
    free(plots);
    wgf_strbuf gp = {0};
    gp_strings g = {0};
    plot_script(dir, cols, ncols, &g, &gp);
    if (rc == WGF_OK && g.refused)
        rc = wgf_error_set(err, WGF_EINVAL, "%s: no plots drawn: %s holds a control character (a plot "
                           "script takes printable text only)", dir,
                           g.bad == dir ? "the directory's name" : "a column name in history.csv");
    else if (rc == WGF_OK && g.nomem)
        gp.failed = 1;
    gp_strings_free(&g);
    for (size_t i = 0; i < ncols; i++)
        free(cols[i]);
    free(cols);
    if (rc != WGF_OK || gp.failed) {
        wgf_strbuf_free(&gp);
        return rc != WGF_OK ? rc : wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    /* gnuplot takes a script named '<cmd' for a command, and one named '-x' for an option */
    wgf_strbuf name = {0};
    wgf_strbuf_printf(&name, "%s%s/plots/plot.gp", dir[0] == '/' ? "" : "./", dir);
    char *script = wgf_strbuf_take(&name);
    rc = script ? wgf_write_atomic(script, gp.s, gp.len, err) : wgf_error_set(err, WGF_ENOMEM, "out of memory");
    wgf_strbuf_free(&gp);
    pid_t pid = rc == WGF_OK ? fork() : 0;
    if (rc == WGF_OK && pid < 0)
        rc = wgf_error_set(err, WGF_EIO, "cannot run gnuplot: %s", strerror(errno));
    if (rc != WGF_OK) {
        free(script);
        return rc;
    }
    if (pid == 0) {
        /* gnuplot's chatter goes nowhere; its exit status says it all */
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(127);
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        rc = wgf_error_set(err, WGF_EIO, "gnuplot failed on %s (exit %d)", script,
                           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    free(script);
    return rc;
}
