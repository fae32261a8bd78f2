/* setup.c: a problem built from an experiment file (wgf/problem.h): the
 * core's own section schemas, every section validated, the plugins loaded
 * and their components created in order (initial law, energy terms, map,
 * metric, scheme, reference) with what each needs checked before anything
 * runs; wgf_problem_create and wgf_problem_free; and the description of the
 * configured problem (its sections and energy terms) that references and
 * outputs read. The run-time helpers are problem.c's. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifdef _OPENMP
#include <dirent.h>
#endif

#include <gsl/gsl_errno.h>

#include "internal.h"

/* ------------------------------------------------------------ core schemas */

static const wgf_param run_schema[] = {
    {"dim", WGF_PARAM_INT, NULL, WGF_P_REQUIRED | WGF_P_MIN, 1, 0, NULL, "dimension d"},
    {"samples", WGF_PARAM_INT, "1000", WGF_P_MIN, 1, 0, NULL, "training samples N per step"},
    {"seed", WGF_PARAM_INT, "1", WGF_P_MIN, 0, 0, NULL, "seed of every random stream"},
    {"threads", WGF_PARAM_INT, "0", WGF_P_MIN | WGF_P_MAX, 0, WGF_THREADS_MAX, NULL,
     "threads (0: the OpenMP default); results do not depend on it"},
    {"plugin_path", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL,
     "extra plugin directories, ':'-separated, relative to the experiment file"},
    {"name", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL, "name of the experiment (default: file name)"},
    {"divergence", WGF_PARAM_CHOICE, "stop", 0, 0, 0, "stop|ignore",
     "a diverging run (non-finite numbers, the energy rising or the step growing geometrically) "
     "stops with status diverged, or is let run"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_param plugin_key_required[] = {
    {"plugin", WGF_PARAM_STRING, NULL, WGF_P_REQUIRED, 0, 0, NULL, "the plugin"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_param metric_schema[] = {
    {"plugin", WGF_PARAM_STRING, "lagrangian", 0, 0, 0, NULL, "the metric plugin"},
    {"tol", WGF_PARAM_DOUBLE, "1e-8", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "MINRES relative residual tolerance"},
    {"maxiter", WGF_PARAM_INT, "200", WGF_P_MIN, 1, 0, NULL, "MINRES iteration cap"},
    {"tikhonov", WGF_PARAM_DOUBLE, "0", WGF_P_MIN, 0, 0, NULL,
     "Tikhonov term eps: solve (M + eps I) zeta = grad F"},
    {"preconditioner", WGF_PARAM_CHOICE, "none", 0, 0, 0, "none|jacobi|block",
     "MINRES preconditioner: none; the metric's diagonal blocks (a layer each) plus eps, "
     "Cholesky-factored (block; none when the metric and map have no blocks); or their diagonal "
     "(jacobi; probed with P products without blocks)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_param scheme_schema[] = {
    {"plugin", WGF_PARAM_STRING, "euler", 0, 0, 0, NULL, "the scheme plugin"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_param output_schema[] = {
    {"every", WGF_PARAM_INT, "20", WGF_P_MIN, 1, 0, NULL, "samples and theta every this many steps"},
    {"samples", WGF_PARAM_INT, "5000", WGF_P_MIN, 1, 0, NULL,
     "fresh samples drawn for outputs and diagnostics"},
    {"diagnostics_every", WGF_PARAM_INT, "1", WGF_P_MIN, 1, 0, NULL,
     "diagnostics against the reference every this many steps"},
    {"moment_match", WGF_PARAM_BOOL, "true", 0, 0, 0, NULL,
     "moment-match the output samples of a Gaussian initial law (variance reduction)"},
    {"write_samples", WGF_PARAM_BOOL, "true", 0, 0, 0, NULL, "write samples/step-NNNNNN.csv"},
    {"write_count", WGF_PARAM_INT, "5000", WGF_P_MIN, 1, 0, NULL,
     "samples written per file (the first of the output samples)"},
    {"plots", WGF_PARAM_BOOL, "true", 0, 0, 0, NULL, "draw plots/*.png with gnuplot at the end"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

/* The core's keys of [reference]; the rest are the chosen plugin's. type is
 * the key's name before references were plugins, kept for experiment files
 * that use it. */
static const wgf_param reference_schema[] = {
    {"plugin", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL,
     "the reference plugin: ou (quadratic FPE, closed form), barenblatt (PME), aggregation (ring "
     "steady state), fpe1d (separable FPE, 1-D finite volumes), particles (fpe and aggregation: "
     "particles integrated alongside), or none"},
    {"type", WGF_PARAM_STRING, NULL, 0, 0, 0, NULL, "the same as plugin (its older name)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

const wgf_param *wgf_core_schema(const char *section)
{
    if (strcmp(section, "run") == 0)
        return run_schema;
    if (strcmp(section, "initial") == 0)
        return wgf_dist_schema();
    if (strcmp(section, "metric") == 0)
        return metric_schema;
    if (strcmp(section, "scheme") == 0)
        return scheme_schema;
    if (strcmp(section, "output") == 0)
        return output_schema;
    if (strcmp(section, "reference") == 0)
        return reference_schema;
    if (strcmp(section, "target") == 0)
        return wgf_target_schema();
    if (strcmp(section, "map") == 0 || strncmp(section, "energy", 6) == 0)
        return plugin_key_required;
    return NULL;
}

static int is_energy_section(const char *name)
{
    return strcmp(name, "energy") == 0 || (strncmp(name, "energy.", 7) == 0 && name[7] != '\0');
}

static int known_section(const char *name, void *user)
{
    (void)user;
    return is_energy_section(name) || wgf_core_schema(name) != NULL;
}

/* ------------------------------------------------------------ set-up */

/* Where a key of the experiment came from, for a message: "FILE:LINE: ",
 * "--set ", or for a default the section's "FILE:LINE: " ("FILE: " when the
 * section is absent too). */
static void key_where(const wgf_problem *p, const char *section, const char *key, char *buf, size_t size)
{
    int line = 0;
    const char *v = wgf_config_get(p->cfg, section, key, &line);
    int sline = wgf_config_section_line(p->cfg, section);
    if (line > 0)
        snprintf(buf, size, "%s:%d: ", wgf_config_file(p->cfg), line);
    else if (v)
        snprintf(buf, size, "--set ");
    else if (sline > 0) /* a default: the section's line, where the key would be written */
        snprintf(buf, size, "%s:%d: ", wgf_config_file(p->cfg), sline);
    else
        snprintf(buf, size, "%s: ", wgf_config_file(p->cfg));
}

/* Resolve `plugin` of a section and validate the section against the core's
 * keys and the plugin's schema. Problems go to diag; returns the section or
 * NULL. */
static wgf_section *component_section(wgf_problem *p, const char *section, wgf_kind kind,
                                      const wgf_plugin **plugin, const char **path, wgf_diag *diag)
{
    const wgf_param *core = wgf_core_schema(section);
    int line = 0;
    const char *name = wgf_config_get(p->cfg, section, "plugin", &line);
    if (!name && core != plugin_key_required) {
        /* the schema's default */
        for (const wgf_param *k = core; k->key; k++)
            if (strcmp(k->key, "plugin") == 0)
                name = k->def;
    }
    const wgf_param *schemas[3] = {core, NULL, NULL};
    if (name && !*name) {
        const char *file = wgf_config_file(p->cfg);
        if (line > 0)
            wgf_diag_add(diag, "%s:%d: %s.plugin: empty (the name of a %s plugin; `wgf plugins` lists them)",
                         file, line, section, wgf_kind_name(kind));
        else
            wgf_diag_add(diag, "--set %s.plugin: empty (the name of a %s plugin; `wgf plugins` lists them)",
                         section, wgf_kind_name(kind));
        *plugin = NULL;
    } else if (name) {
        wgf_error err;
        if (wgf_registry_find(p->reg, kind, name, plugin, path, &err) != WGF_OK) {
            char where[4200];
            key_where(p, section, "plugin", where, sizeof where);
            wgf_diag_add(diag, "%s%s.plugin: %s", where, section, err.msg);
            *plugin = NULL;
        } else if ((*plugin)->params)
            schemas[1] = (*plugin)->params; /* NULL: no keys of its own */
    }
    if (!*plugin && name) {
        /* Validate what we can; keys of the missing plugin are not reported. */
        return NULL;
    }
    return wgf_config_section(p->cfg, section, schemas, p->info.dim, diag);
}

/* Every ':'-separated entry of path relative to the directory of file (empty
 * entries dropped). */
static char *join_relative(const char *file, const char *path)
{
    wgf_strbuf b = {0};
    for (const char *s = path;; s++) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n > 0) {
            char *one = wgf_path_beside(file, s, n);
            if (!one)
                b.failed = 1;
            wgf_strbuf_printf(&b, "%s%s", b.len ? ":" : "", one ? one : "");
            free(one);
        }
        if (!e)
            break;
        s = e;
    }
    return wgf_strbuf_take(&b);
}

/* What the scheme will ask of the energy terms, the map and the initial law, checked before
 * anything runs (so that `wgf check` refuses it too): a missing member or a law without a score
 * is a configuration error naming the scheme's plugin key. */
static int check_needs(wgf_problem *p, wgf_error *err)
{
    unsigned s = p->scheme_needs, e = p->energy_needs;
    const char *scheme = p->scheme_plugin->name;
    const wgf_section *sec = p->scheme_sec;
    for (size_t i = 0; i < p->nterms; i++) {
        const wgf_energy_term *t = &p->terms[i];
        const char *what = (s & WGF_SCHEME_NEEDS_WGRAD) && !t->vt->wgrad ? "Wasserstein gradient (wgrad)"
                           : (s & WGF_SCHEME_NEEDS_WGRAD_VJP) && !t->vt->wgrad_vjp
                               ? "reverse pass of the Wasserstein gradient (wgrad_vjp)"
                               : NULL;
        if (what)
            return wgf_section_error(sec, "plugin", err,
                                     "scheme '%s' needs the energy's %s, which energy '%s' [%s] does "
                                     "not provide (choose another scheme, e.g. euler, or energy)",
                                     scheme, what, t->plugin->name, wgf_section_name(t->sec));
    }
    int wgrad = (s & (WGF_SCHEME_NEEDS_WGRAD | WGF_SCHEME_NEEDS_WGRAD_VJP)) != 0;
    unsigned has = wgf_dist_provides(p->dist);
    if (wgrad && (e & WGF_WGRAD_NEEDS_L) && !(has & WGF_DIST_DENSITY))
        return wgf_section_error(sec, "plugin", err,
                                 "scheme '%s' needs the Wasserstein gradient, which reads the "
                                 "log-density, and the %s initial law has no density (use gaussian, "
                                 "barenblatt or uniform)", scheme, wgf_dist_type(p->dist));
    if ((e & WGF_NEEDS_S) && !p->map->score) /* the law's score was checked with the energy */
        return wgf_section_error(p->map_sec, "plugin", err,
                                 "map '%s' cannot push scores forward (it has no score function), "
                                 "which the energy reads", p->map_plugin->name);
    const char *why = (s & WGF_SCHEME_NEEDS_SCORES) ? "the scheme needs scores"
                      : wgrad && (e & WGF_WGRAD_NEEDS_S) ? "the scheme needs the Wasserstein "
                                                           "gradient, which reads the score"
                      : NULL;
    if (why && !(has & WGF_DIST_SCORE))
        return wgf_section_error(sec, "plugin", err,
                                 "scheme '%s': %s, and the %s initial law has no score (use "
                                 "gaussian or barenblatt)", scheme, why, wgf_dist_type(p->dist));
    if (why && !p->map->score)
        return wgf_section_error(sec, "plugin", err,
                                 "scheme '%s': %s, and map '%s' cannot push scores forward (it has "
                                 "no score function)", scheme, why, p->map_plugin->name);
    return WGF_OK;
}

/* Every reference plugin's keys on the path, each once: what [reference]
 * may hold when it names no reference, so that switching one off (--set
 * reference.plugin=none) leaves the rest of the section valid and its
 * typos still reported. */
typedef struct {
    wgf_param *keys;
    size_t n, cap;
    int failed;
} key_union;

static void collect_reference_keys(const wgf_plugin *pl, const char *path, void *user)
{
    (void)path;
    key_union *u = user;
    if (pl->kind != WGF_REFERENCE || !pl->params)
        return;
    for (const wgf_param *k = pl->params; k->key && !u->failed; k++) {
        size_t i = 0;
        while (i < u->n && strcmp(u->keys[i].key, k->key) != 0)
            i++;
        if (i < u->n)
            continue;
        if (u->n + 1 >= u->cap) {
            size_t cap = u->cap ? 2 * u->cap : 16;
            wgf_param *nk = realloc(u->keys, cap * sizeof *nk);
            if (!nk) {
                u->failed = 1;
                return;
            }
            u->keys = nk;
            u->cap = cap;
        }
        u->keys[u->n] = *k;
        u->keys[u->n].flags &= ~WGF_P_REQUIRED;
        u->n++;
        memset(&u->keys[u->n], 0, sizeof u->keys[0]);
    }
}

/* [reference]: plugin (or type, its older name) names the reference plugin,
 * whose schema completes the section's; none (the default) names none. */
static void reference_section(wgf_problem *p, wgf_diag *diag)
{
    const char *file = wgf_config_file(p->cfg);
    int lp = 0, lt = 0;
    const char *name = wgf_config_get(p->cfg, "reference", "plugin", &lp);
    const char *type = wgf_config_get(p->cfg, "reference", "type", &lt);
    if (name && type && strcmp(name, type) != 0) {
        /* --set overrides the file whichever name either uses: the other
         * key follows, so that config.ini says one thing */
        wgf_error e2;
        if ((lp == 0) != (lt == 0)) {
            char *set = malloc(strlen(lp == 0 ? name : type) + 32);
            if (!set) {
                wgf_diag_add(diag, "out of memory");
                return;
            }
            sprintf(set, "reference.%s=%s", lp == 0 ? "type" : "plugin", lp == 0 ? name : type);
            int rc = wgf_config_set(p->cfg, set, &e2);
            free(set);
            if (rc != WGF_OK) {
                wgf_diag_add(diag, "%s", e2.msg);
                return;
            }
            name = wgf_config_get(p->cfg, "reference", "plugin", &lp);
            type = wgf_config_get(p->cfg, "reference", "type", &lt);
        } else {
            wgf_diag_add(diag, "%s:%d: reference.type: '%s' differs from reference.plugin = %s (type is "
                         "the older name of plugin: give one of them)", file, lt, type, name);
            return;
        }
    }
    if (!name)
        name = type;
    const wgf_param *schemas[3] = {reference_schema, NULL, NULL};
    int present = 0;
    for (size_t i = 0; i < wgf_config_nsections(p->cfg) && !present; i++)
        present = strcmp(wgf_config_section_name(p->cfg, i), "reference") == 0;
    if ((!name || !*name || strcmp(name, "none") == 0) && present) {
        key_union u = {0};
        wgf_diag warn;
        wgf_diag_init(&warn);
        wgf_error err;
        /* only reference files (ref_*.so), and none from the experiment's own plugin_path:
         * validating a switched-off section must not run code the user did not name */
        if (wgf_registry_list_own(p->reg, "ref_", collect_reference_keys, &u, &warn, &err) == WGF_OK && !u.failed &&
            u.keys) {
            p->reference_keys = u.keys;
            schemas[1] = u.keys;
        } else
            free(u.keys);
        wgf_diag_free(&warn);
    } else if (name && *name && strcmp(name, "none") != 0) {
        wgf_error err;
        int given = wgf_config_get(p->cfg, "reference", "plugin", NULL) != NULL;
        const char *key = given ? "plugin" : "type";
        int line = given ? lp : lt;
        if (wgf_registry_find(p->reg, WGF_REFERENCE, name, &p->reference_plugin, &p->reference_path,
                              &err) != WGF_OK) {
            if (line > 0)
                wgf_diag_add(diag, "%s:%d: reference.%s: %s", file, line, key, err.msg);
            else
                wgf_diag_add(diag, "%s: reference.%s: %s", file, key, err.msg);
            p->reference_plugin = NULL;
            return;
        }
        p->reference = p->reference_plugin->vtable;
        schemas[1] = p->reference_plugin->params;
    }
    p->reference_sec = wgf_config_section(p->cfg, "reference", schemas, p->info.dim, diag);
}

static void check_stability(wgf_problem *p, const wgf_run_opts *opts);
static void check_blocks(wgf_problem *p, const wgf_run_opts *opts);
static void warn_key(const wgf_run_opts *opts, const wgf_section *sec, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------ sizes */

/* Sizes from a file are hostile until checked: refuse, naming the key, a
 * run whose main allocations cannot fit in what this process may allocate,
 * before anything of that size is allocated. The estimates are in double
 * precision, so that no product of sizes wraps. */
static int size_refused(const wgf_problem *p, const char *section, const char *key, double bytes,
                        const char *what, wgf_diag *diag)
{
    double avail = (double)wgf_mem_available();
    if (bytes <= avail)
        return 0;
    char where[4200];
    key_where(p, section, key, where, sizeof where);
    wgf_diag_add(diag, "%s%s.%s: %s is too large: %s need about %.3g GB, more than the %.3g GB "
                       "this process may allocate",
                 where, section, key, wgf_config_get(p->cfg, section, key, NULL) ?
                 wgf_config_get(p->cfg, section, key, NULL) : "the default", what, bytes / 1e9, avail / 1e9);
    return 1;
}

/* [run]: dim x dim matrices (covariances, their factors, a potential's
 * inverse: a few of each) and the training batch (z, x, l, s, a, c and
 * their sums: about 8 N d doubles). */
static int run_sizes_refused(const wgf_problem *p, wgf_diag *diag)
{
    double d = (double)p->info.dim, n = (double)p->info.samples;
    return size_refused(p, "run", "dim", 8.0 * 4.0 * d * d, "its dim x dim matrices", diag) ||
           size_refused(p, "run", "samples", 8.0 * 8.0 * n * d, "batches of this many samples", diag);
}

/* A component's create or init returned rc. A message of its own that starts
 * with the experiment's FILE or with --set (it names a key, wgf_section_error)
 * is passed on as it is; any other
 * refusal, with or without a message, is located at the section's FILE:LINE. */
static int component_failed(const wgf_problem *p, const char *section, wgf_kind kind, const char *name,
                            int rc, wgf_error *err)
{
    const char *file = wgf_config_file(p->cfg);
    size_t fl = strlen(file);
    if (err && err->code == rc && wgf_error_known(rc) &&
        ((strncmp(err->msg, file, fl) == 0 && err->msg[fl] == ':') || strncmp(err->msg, "--set ", 6) == 0))
        return rc;
    int code = wgf_error_forward(err, rc, "%s '%s'", wgf_kind_name(kind), name);
    if (err && wgf_error_exit_status(code) == 2) {
        int line = wgf_config_section_line(p->cfg, section);
        if (line > 0)
            wgf_error_prefix(err, "%s:%d: [%s]", file, line, section);
        else
            wgf_error_prefix(err, "%s: [%s]", file, section);
    }
    return code;
}

static int problem_setup(wgf_problem *p, const wgf_run_opts *opts, wgf_diag *diag, wgf_error *err)
{
    gsl_set_error_handler_off(); /* a GSL error returns a status, never aborts (wgf_error_gsl) */
    int rc = wgf_config_load(&p->cfg, opts->file, diag, err);
    if (rc == WGF_EIO) /* a missing or unreadable experiment is bad input */
        rc = err ? (err->code = WGF_EINVAL) : WGF_EINVAL;
    if (rc != WGF_OK && rc != WGF_EINVAL)
        return rc;
    if (!p->cfg)
        return rc;
    for (size_t i = 0; i < opts->nsets; i++) {
        wgf_error e2;
        if (wgf_config_set(p->cfg, opts->sets[i], &e2) != WGF_OK)
            wgf_diag_add(diag, "%s", e2.msg);
    }
    const char *file = wgf_config_file(p->cfg);
    wgf_config_check_sections(p->cfg, known_section, NULL, diag);

    /* [run] first: the dimension types every vector and matrix. When [run]
     * has errors, go on with the dimension as written (if it reads as one),
     * so that every mistake in the file is reported at once. */
    const wgf_param *rs[2] = {run_schema, NULL};
    p->run_sec = wgf_config_section(p->cfg, "run", rs, 1, diag);
    if (p->run_sec) {
        p->info.dim = (size_t)wgf_section_int(p->run_sec, "dim");
        p->info.samples = (size_t)wgf_section_int(p->run_sec, "samples");
        p->info.seed = (unsigned long)wgf_section_int(p->run_sec, "seed");
        p->threads = (int)wgf_section_int(p->run_sec, "threads");
    } else {
        const char *dim = wgf_config_get(p->cfg, "run", "dim", NULL);
        char *end = NULL;
        long v = dim ? strtol(dim, &end, 10) : 0;
        p->info.dim = (dim && end && *end == '\0' && v >= 1) ? (size_t)v : 1;
    }
    int from_file = 0; /* the thread count came from [run] threads */
    if (run_sizes_refused(p, diag))
        return WGF_EINVAL; /* every other section would be typed with this dimension */
    if (opts->threads > WGF_THREADS_MAX)
        wgf_diag_add(diag, "--threads: %d is too many (1 to %d)", opts->threads, WGF_THREADS_MAX);
    else if (opts->threads > 0)
        p->threads = opts->threads;
    else if (p->threads > 0)
        from_file = 1;
    if (p->threads > 0) {
        /* each thread reserves a stack (RLIMIT_STACK, as the OpenMP runtime
         * does): under a memory limit the runtime fails to create them and
         * exits the process, so ask only for what can be had */
        struct rlimit rl;
        double stack = 8.0 * 1024 * 1024, avail = (double)wgf_mem_available();
        if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            stack = (double)rl.rlim_cur;
        if ((double)p->threads * stack > avail / 2) {
            char where[4200];
            if (from_file)
                key_where(p, "run", "threads", where, sizeof where);
            wgf_diag_add(diag, "%s%s: %d threads need %.3g GB of stacks, more than half of the %.3g GB "
                               "this process may allocate", from_file ? where : "",
                         from_file ? "run.threads" : "--threads", p->threads,
                         (double)p->threads * stack / 1e9, avail / 1e9);
        }
    }

    char *ini_path = NULL;
    if (p->run_sec && wgf_section_has(p->run_sec, "plugin_path")) {
        ini_path = join_relative(file, wgf_section_string(p->run_sec, "plugin_path"));
        if (!ini_path)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    }
    rc = wgf_problem_registry(p, opts, ini_path, diag, err); /* paths.c */
    free(ini_path);
    if (rc != WGF_OK)
        return rc;

    const wgf_param *is[2] = {wgf_dist_schema(), NULL};
    p->initial_sec = wgf_config_section(p->cfg, "initial", is, p->info.dim, diag);
    const wgf_param *os[2] = {output_schema, NULL};
    p->output_sec = wgf_config_section(p->cfg, "output", os, p->info.dim, diag);
    if (p->output_sec)
        p->info.output_samples = (size_t)wgf_section_int(p->output_sec, "samples");
    if (p->output_sec)
        size_refused(p, "output", "samples",
                     8.0 * 8.0 * (double)wgf_section_int(p->output_sec, "samples") * (double)p->info.dim,
                     "output batches of this many samples", diag);
    reference_section(p, diag);
    /* [target]: only when the experiment has one (or --set adds one); an energy
     * with a target then reads it, and its own target keys are refused */
    for (size_t i = 0; i < wgf_config_nsections(p->cfg) && !p->target_sec; i++)
        if (strcmp(wgf_config_section_name(p->cfg, i), "target") == 0) {
            const wgf_param *ts[2] = {wgf_target_schema(), NULL};
            p->target_sec = wgf_config_section(p->cfg, "target", ts, p->info.dim, diag);
            if (p->target_sec) {
                double d = (double)p->info.dim, n = (double)wgf_section_int(p->target_sec, "samples"),
                       nh = (double)wgf_section_int(p->target_sec, "heldout");
                size_refused(p, "target", "samples", 8.0 * n * d, "this many target samples", diag);
                size_refused(p, "target", "heldout", 8.0 * nh * d, "this many held-out samples", diag);
            }
        }

    /* Energy terms: [energy] and every [energy.NAME], in file order. */
    size_t ns = wgf_config_nsections(p->cfg);
    p->terms = calloc(ns + 1, sizeof *p->terms);
    if (!p->terms)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    for (size_t i = 0; i < ns; i++) {
        const char *name = wgf_config_section_name(p->cfg, i);
        if (!is_energy_section(name))
            continue;
        wgf_energy_term *t = &p->terms[p->nterms++];
        t->sec = component_section(p, name, WGF_ENERGY, &t->plugin, &t->path, diag);
        if (t->plugin)
            t->vt = t->plugin->vtable;
    }
    if (p->nterms == 0)
        wgf_diag_add(diag, "%s: [energy]: missing section (an experiment needs an energy: "
                           "[energy] plugin = fpe, pme, aggregation, ...)", file);
    if (wgf_config_section_line(p->cfg, "map") == 0 && !wgf_config_get(p->cfg, "map", "plugin", NULL))
        wgf_diag_add(diag, "%s: [map]: missing section (an experiment needs a map: "
                           "[map] plugin = affine or planar, ...)", file);
    else
        p->map_sec = component_section(p, "map", WGF_MAP, &p->map_plugin, &p->map_path, diag);
    p->metric_sec = component_section(p, "metric", WGF_METRIC, &p->metric_plugin, &p->metric_path, diag);
    p->scheme_sec = component_section(p, "scheme", WGF_SCHEME, &p->scheme_plugin, &p->scheme_path, diag);
    if (diag->n > 0)
        return WGF_EINVAL;

    /* Create, in order: law, energy terms, map, metric, scheme. */
    rc = wgf_dist_create(&p->dist, p->initial_sec, err);
    if (rc != WGF_OK)
        return rc;
    p->info.initial = p->dist;
    if (p->target_sec) {
        wgf_error_clear(err);
        if ((rc = wgf_target_create_section(&p->target, p->target_sec, err)) != WGF_OK)
            return rc;
        p->info.target = p->target;
    }
    for (size_t i = 0; i < p->nterms; i++) {
        wgf_energy_term *t = &p->terms[i];
        wgf_error_clear(err);
        rc = t->vt->create(t->sec, &p->info, &t->state, err);
        if (rc != WGF_OK)
            return component_failed(p, wgf_section_name(t->sec), WGF_ENERGY, t->plugin->name, rc, err);
        t->needs = t->vt->needs ? t->vt->needs(t->state) : 0;
        p->energy_needs |= t->needs;
        /* Without dF/ds the chain rule would drop the score path: a silently wrong gradient. */
        if ((t->needs & WGF_NEEDS_S) && !t->vt->eval_s)
            return wgf_section_error(t->sec, "plugin", err,
                                     "energy '%s' reads the score s in eval but has no eval_s, so "
                                     "its gradient in the parameters cannot be formed (an energy "
                                     "that reads s must give dF/ds through eval_s, plugin ABI 2)",
                                     t->plugin->name);
    }
    unsigned has = wgf_dist_provides(p->dist);
    if ((p->energy_needs & WGF_NEEDS_L) && !(has & WGF_DIST_DENSITY))
        return wgf_section_error(p->initial_sec, "type", err,
                                 "the %s law has no density, which the energy needs "
                                 "(use gaussian, barenblatt or uniform)", wgf_dist_type(p->dist));
    if ((p->energy_needs & WGF_NEEDS_S) && !(has & WGF_DIST_SCORE))
        return wgf_section_error(p->initial_sec, "type", err,
                                 "the %s law has no score, which the energy needs "
                                 "(use gaussian or barenblatt)", wgf_dist_type(p->dist));

    p->map = p->map_plugin->vtable;
    wgf_error_clear(err);
    rc = p->map->create(p->map_sec, &p->info, &p->map_state, err);
    if (rc != WGF_OK)
        return component_failed(p, "map", WGF_MAP, p->map_plugin->name, rc, err);
    p->nparams = p->map->nparams(p->map_state);
    if (p->nparams == 0) {
        wgf_error_set(err, WGF_EINVAL, "it has no parameters (a map needs at least one to learn)");
        return component_failed(p, "map", WGF_MAP, p->map_plugin->name, WGF_EINVAL, err);
    }
    p->nstages = p->map->nstages(p->map_state);
    if (p->nstages == 0) {
        wgf_error_set(err, WGF_EINVAL, "it has 0 stages (a map has at least one)");
        return component_failed(p, "map", WGF_MAP, p->map_plugin->name, WGF_EINVAL, err);
    }
    {
        /* the map's tapes keep every stage of the training batch and of the output samples
         * (both held during a run); parameters and their per-block partial gradients */
        double n = (double)p->info.samples + (double)p->info.output_samples, d = (double)p->info.dim;
        double bytes = 8.0 * (3.0 * n * d * ((double)p->nstages + 1.0) +
                              (double)p->nparams * (n / WGF_BLOCK + 8.0));
        double avail = (double)wgf_mem_available();
        if (bytes > avail) {
            wgf_error_set(err, WGF_EINVAL, "its %zu stages and %zu parameters on batches of %zu samples "
                          "of dimension %zu need about %.3g GB, more than the %.3g GB this process "
                          "may allocate", p->nstages, p->nparams, p->info.samples, p->info.dim,
                          bytes / 1e9, avail / 1e9);
            return component_failed(p, "map", WGF_MAP, p->map_plugin->name, WGF_EINVAL, err);
        }
    }
    p->map_project = p->map->project != NULL;
    p->theta = wgf_alloc_doubles(p->nparams);
    if (!p->theta)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    wgf_rng_set(r, p->info.seed, WGF_STREAM_INIT, 0, 0);
    wgf_error_clear(err);
    rc = p->map->init(p->map_state, r, p->theta, err);
    gsl_rng_free(r);
    if (rc != WGF_OK)
        return wgf_error_forward(err, rc, "map '%s': init", p->map_plugin->name);

    p->metric = p->metric_plugin->vtable;
    p->tol = wgf_section_double(p->metric_sec, "tol");
    p->maxiter = (unsigned)wgf_section_int(p->metric_sec, "maxiter");
    p->tikhonov = wgf_section_double(p->metric_sec, "tikhonov");
    {
        const char *pc = wgf_section_string(p->metric_sec, "preconditioner");
        p->precond = pc && strcmp(pc, "block") == 0    ? WGF_PC_BLOCK
                     : pc && strcmp(pc, "jacobi") == 0 ? WGF_PC_JACOBI
                                                       : WGF_PC_NONE;
    }
    wgf_error_clear(err);
    rc = p->metric->create(p->metric_sec, &p->info, &p->metric_state, err);
    if (rc != WGF_OK)
        return component_failed(p, "metric", WGF_METRIC, p->metric_plugin->name, rc, err);

    p->scheme = p->scheme_plugin->vtable;
    wgf_error_clear(err);
    rc = p->scheme->create(p->scheme_sec, &p->info, &p->scheme_state, err);
    if (rc != WGF_OK)
        return component_failed(p, "scheme", WGF_SCHEME, p->scheme_plugin->name, rc, err);
    p->scheme_needs = p->scheme->needs ? p->scheme->needs(p->scheme_state) : 0;
    if ((rc = check_needs(p, err)) != WGF_OK)
        return rc;
    check_stability(p, opts);
    check_blocks(p, opts);
    return WGF_OK;
}

/* preconditioner = block asks the metric for its diagonal blocks; a metric built before plugin
 * ABI 3 has no blocks member, and the solve then runs without a preconditioner. Say so before
 * the run rather than leave the user to find it in the product counts. */
static void check_blocks(wgf_problem *p, const wgf_run_opts *opts)
{
    if (!opts->warn || p->precond != WGF_PC_BLOCK || p->metric->blocks)
        return;
    warn_key(opts, p->metric_sec, "preconditioner",
             "metric '%s' (plugin ABI %u) gives no diagonal blocks: the solve runs without a "
             "preconditioner (jacobi works with any metric)",
             p->metric_plugin->name, p->metric_plugin->abi_version);
}

/* A warning before the run about one key: "FILE:LINE: SECTION.KEY: message" (no line when the
 * key has none, as when it comes from --set or its default). */
static void warn_key(const wgf_run_opts *opts, const wgf_section *sec, const char *key, const char *fmt, ...)
{
    char where[64] = "", msg[448], line[640];
    int at = wgf_section_line(sec, key);
    if (at > 0)
        snprintf(where, sizeof where, ":%d", at);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "%s%s: %s.%s: %s", wgf_section_file(sec), where, wgf_section_name(sec), key,
             msg);
    opts->warn(opts->warn_ctx, line);
}

/* An explicit scheme's step against the energies' stiffness: near equilibrium the law's spread
 * relaxes at rate 2 lambda_max, which explicit Euler follows only for step * lambda_max < 1
 * (doc/math.md section 5). A warning before the run, since the guard would only stop it later. */
static void check_stability(wgf_problem *p, const wgf_run_opts *opts)
{
    if (!opts->warn || !(p->scheme_needs & WGF_SCHEME_EXPLICIT) || !wgf_section_has(p->scheme_sec, "step"))
        return;
    double lambda = 0;
    for (size_t i = 0; i < p->nterms; i++) {
        double l = p->terms[i].vt->stiffness ? p->terms[i].vt->stiffness(p->terms[i].state) : NAN;
        if (isfinite(l) && l > 0)
            lambda += l; /* the Hessians add; each term's lambda_max bounds its share */
    }
    double h = wgf_section_double(p->scheme_sec, "step");
    if (!(lambda > 0) || !(h * lambda > 1))
        return;
    warn_key(opts, p->scheme_sec, "step",
             "step * lambda_max = %g * %g = %.3g > 1: explicit steps are unstable for this energy (near "
             "equilibrium the law's spread relaxes at rate 2 lambda_max); take step < %.3g, or an "
             "implicit scheme (jko)",
             h, lambda, h * lambda, 1.0 / lambda);
}

static void problem_teardown(wgf_problem *p)
{
    /* monitors first: their contexts may hold evaluations of this problem */
    for (size_t i = p->nmonitors; i-- > 0;)
        if (p->monitors[i].destroy)
            p->monitors[i].destroy(p->monitors[i].ctx);
    free(p->monitors);
    free(p->reference_keys);
    free(p->step_state);
    free(p->resume_state);
    if (p->scheme_state)
        p->scheme->destroy(p->scheme_state);
    if (p->metric_state)
        p->metric->destroy(p->metric_state);
    if (p->map_state)
        p->map->destroy(p->map_state);
    for (size_t i = 0; i < p->nterms; i++) {
        if (p->terms[i].state)
            p->terms[i].vt->destroy(p->terms[i].state);
        wgf_section_free(p->terms[i].sec);
    }
    free(p->terms);
    wgf_dist_free(p->dist);
    wgf_target_free(p->target); /* after the terms, which may borrow it */
    wgf_free(p->theta);
    wgf_free(p->pc);
    wgf_problem_scratch_free(p);
    wgf_section_free(p->run_sec);
    wgf_section_free(p->initial_sec);
    wgf_section_free(p->output_sec);
    wgf_section_free(p->reference_sec);
    wgf_section_free(p->target_sec);
    wgf_section_free(p->map_sec);
    wgf_section_free(p->metric_sec);
    wgf_section_free(p->scheme_sec);
    /* plugins are unloaded last: their code ran the destroys above */
    wgf_registry_free(p->reg);
    wgf_config_free(p->cfg);
    memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------ create and free */

#ifdef _OPENMP
/* Runnable threads of other processes now, or -1 where the system does not
 * say: the kernel's count of runnable threads (procs_running in /proc/stat)
 * less this process's own (state R in /proc/self/task/N/stat, which counts
 * OpenMP workers still spinning after a region). A look is a snapshot, so
 * the least of three looks 0.5 ms apart (at most 1 ms at start-up). */
static int count_running(FILE *f)
{
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "procs_running %d", &n) == 1)
            break;
    return n;
}

static int own_running(void)
{
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        char path[64], buf[512];
        if (e->d_name[0] == '.' ||
            snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name) >= (int)sizeof path)
            continue;
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *paren = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
        if (paren && paren[1] == ' ' && paren[2] == 'R')
            n++;
    }
    closedir(dir);
    return n;
}

static int busy_elsewhere(void)
{
    int least = -1;
    for (int look = 0; look < 3; look++) {
        if (look > 0)
            nanosleep(&(struct timespec){0, 500000}, NULL);
        FILE *f = fopen("/proc/stat", "r");
        if (!f)
            return -1;
        int all = count_running(f);
        fclose(f);
        int own = own_running();
        if (all < 0 || own < 0)
            return -1;
        int others = all > own ? all - own : 0;
        if (least < 0 || others < least)
            least = others;
        if (least == 0)
            break;
    }
    return least;
}
#endif

/* threads > 0: exactly that many. 0: one per core that no other process
 * is using when the run starts, and fewer later if the machine stays busy
 * (OpenMP's dynamic adjustment, which follows the 15-minute load average):
 * many short parallel regions (one per metric product) on oversubscribed
 * cores wait a scheduler slice at every barrier, and two threads sharing
 * two cores with one busy process measured three times slower than one
 * thread. Results do not depend on the count. */
static void set_threads(int threads)
{
#ifdef _OPENMP
    if (threads > 0) {
        omp_set_dynamic(0);
        omp_set_num_threads(threads);
    } else {
        int n = omp_get_max_threads(), others = busy_elsewhere();
        if (others > 0) {
            int free_cores = omp_get_num_procs() - others;
            n = free_cores < 1 ? 1 : free_cores < n ? free_cores : n;
            omp_set_num_threads(n);
        }
        omp_set_dynamic(1);
    }
#else
    (void)threads;
#endif
}

int wgf_problem_create(wgf_problem **out, const wgf_run_opts *opts, wgf_diag *diag, wgf_error *err)
{
    *out = NULL;
    wgf_problem *p = calloc(1, sizeof *p);
    if (!p)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    int rc = problem_setup(p, opts, diag, err);
    if (rc == WGF_OK && diag->n > 0)
        rc = WGF_EINVAL;
    if (rc != WGF_OK) {
        problem_teardown(p);
        free(p);
        return rc;
    }
    set_threads(p->threads);
    *out = p;
    return WGF_OK;
}

void wgf_problem_free(wgf_problem *p)
{
    if (!p)
        return;
    problem_teardown(p);
    free(p);
}

/* ------------------------------------------------------------ description */

const wgf_section *wgf_problem_section(const wgf_problem *p, const char *name)
{
    static const struct {
        const char *name;
        size_t off;
    } fixed[] = {
        {"run", offsetof(wgf_problem, run_sec)},       {"initial", offsetof(wgf_problem, initial_sec)},
        {"output", offsetof(wgf_problem, output_sec)}, {"reference", offsetof(wgf_problem, reference_sec)},
        {"map", offsetof(wgf_problem, map_sec)},       {"metric", offsetof(wgf_problem, metric_sec)},
        {"scheme", offsetof(wgf_problem, scheme_sec)}, {"target", offsetof(wgf_problem, target_sec)},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(name, fixed[i].name) == 0)
            return *(wgf_section *const *)((const char *)p + fixed[i].off);
    for (size_t k = 0; k < p->nterms; k++)
        if (p->terms[k].sec && strcmp(wgf_section_name(p->terms[k].sec), name) == 0)
            return p->terms[k].sec;
    return NULL;
}

size_t wgf_problem_nterms(const wgf_problem *p) { return p->nterms; }

int wgf_problem_term(const wgf_problem *p, size_t k, const char **plugin, const wgf_section **sec,
                     const wgf_energy_vt **vt, void **state)
{
    if (k >= p->nterms)
        return WGF_EINVAL;
    const wgf_energy_term *t = &p->terms[k];
    if (plugin)
        *plugin = t->plugin->name;
    if (sec)
        *sec = t->sec;
    if (vt)
        *vt = t->vt;
    if (state)
        *state = t->state;
    return WGF_OK;
}

int wgf_problem_term_section(const wgf_problem *p, size_t k, size_t dim, wgf_section **sec,
                             wgf_error *err)
{
    *sec = NULL;
    if (k >= p->nterms)
        return wgf_error_set(err, WGF_EINVAL, "no energy term %zu (the energy has %zu)", k, p->nterms);
    const wgf_energy_term *t = &p->terms[k];
    wgf_diag diag;
    wgf_diag_init(&diag);
    const wgf_param *schemas[3] = {plugin_key_required, t->plugin->params, NULL};
    *sec = wgf_config_section(p->cfg, wgf_section_name(t->sec), schemas, dim, &diag);
    int rc = WGF_OK;
    if (!*sec)
        rc = wgf_error_set(err, WGF_EINVAL, "%s", diag.n ? diag.msg[0] : "out of memory");
    wgf_diag_free(&diag);
    return rc;
}

int wgf_problem_reference(const wgf_problem *p, const wgf_plugin **plugin, const wgf_section **sec)
{
    *plugin = p->reference_plugin;
    *sec = p->reference_sec;
    return p->reference_plugin != NULL;
}
