/* wgf: the command. wgf run | check | plugins | selftest | plot. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wgf/wgf.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    if (interrupted) /* a second Ctrl-C: stop now */
        _exit(130);
    interrupted = 1;
}

static const char usage[] =
    "usage: wgf run FILE [-o DIR] [--set section.key=value]... [--threads N] [--quiet]\n"
    "                    [--plugin-path DIRS] [--no-file-plugins | --trust-plugin-path]\n"
    "       wgf run --resume DIR [--threads N] [--quiet] [--plugin-path DIRS]\n"
    "                    [--no-file-plugins | --trust-plugin-path]\n"
    "       wgf check FILE [--set section.key=value]... [--plugin-path DIRS]\n"
    "                    [--no-file-plugins | --trust-plugin-path]\n"
    "       wgf plugins [NAME] [--plugin-path DIRS]\n"
    "       wgf plugins --core\n"
    "       wgf selftest PLUGIN [--dim D] [--samples N] [--seed S] [--set kind.key=value]...\n"
    "                    [--plugin-path DIRS]\n"
    "       wgf plot DIR\n"
    "       wgf --help | --version\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "wgf: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

typedef struct {
    const char *positional;
    const char *outdir;
    const char *resume;
    const char *plugin_path;
    const char **sets;
    size_t nsets;
    long threads, dim, samples, seed;
    int quiet;
    int trust_plugin_path, no_file_plugins;
    int core;
} cli_args;

static int parse_long(const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "wgf: %s: '%s' is not a whole number from %ld to %ld\n", opt, s, min, max);
        return 2;
    }
    *out = v;
    return 0;
}

/* An error record as lines "wgf: ...": a component may report several
 * problems at once, one a line; an empty record still says something. */
static void print_error(const wgf_error *err, int rc)
{
    const char *m = err->msg;
    if (!memchr(m, '\0', sizeof err->msg) || !*m) {
        fprintf(stderr, "wgf: %s (no message)\n", wgf_strerror(rc));
        return;
    }
    while (*m) {
        const char *nl = strchr(m, '\n');
        int n = nl ? (int)(nl - m) : (int)strlen(m);
        if (n > 0)
            fprintf(stderr, "wgf: %.*s\n", n, m);
        m += n + (nl != NULL);
    }
}

/* Options shared by the subcommands; which ones a subcommand accepts is in
 * `allowed` (letters: o set threads quiet plugin-path dim samples seed,
 * T trust-plugin-path, N no-file-plugins, C core, R resume). */
static int parse_args(int argc, char **argv, const char *allowed, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    if (!a->sets) {
        fprintf(stderr, "wgf: out of memory\n");
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
        int takes = 0;
        char key = 0;
        if (strcmp(s, "-o") == 0 || strcmp(s, "--output") == 0)
            key = 'o', takes = 1;
        else if (strcmp(s, "--set") == 0)
            key = 's', takes = 1;
        else if (strcmp(s, "--resume") == 0)
            key = 'R', takes = 1;
        else if (strncmp(s, "--set=", 6) == 0)
            key = 's', val = s + 6;
        else if (strcmp(s, "--threads") == 0)
            key = 't', takes = 1;
        else if (strcmp(s, "--quiet") == 0 || strcmp(s, "-q") == 0)
            key = 'q';
        else if (strcmp(s, "--plugin-path") == 0)
            key = 'p', takes = 1;
        else if (strcmp(s, "--trust-plugin-path") == 0)
            key = 'T';
        else if (strcmp(s, "--no-file-plugins") == 0)
            key = 'N';
        else if (strcmp(s, "--core") == 0)
            key = 'C';
        else if (strcmp(s, "--dim") == 0)
            key = 'd', takes = 1;
        else if (strcmp(s, "--samples") == 0)
            key = 'n', takes = 1;
        else if (strcmp(s, "--seed") == 0)
            key = 'r', takes = 1;
        else if (s[0] == '-' && s[1] != '\0')
            return usage_error("unknown option '%s'", s);
        else {
            if (a->positional)
                return usage_error("unexpected argument '%s'", s);
            a->positional = s;
            continue;
        }
        if (!strchr(allowed, key))
            return usage_error("option '%s' does not apply to this command", s);
        if (takes) {
            if (i + 1 >= argc)
                return usage_error("option '%s' needs a value", s);
            val = argv[++i];
        }
        int rc = 0;
        switch (key) {
        case 'o': a->outdir = val; break;
        case 'R': a->resume = val; break;
        case 's': a->sets[a->nsets++] = val; break;
        case 't': rc = parse_long("--threads", val, 1, WGF_THREADS_MAX, &a->threads); break;
        case 'q': a->quiet = 1; break;
        case 'p': a->plugin_path = val; break;
        case 'T': a->trust_plugin_path = 1; break;
        case 'N': a->no_file_plugins = 1; break;
        case 'C': a->core = 1; break;
        case 'd': rc = parse_long("--dim", val, 1, 1000, &a->dim); break;
        case 'n': rc = parse_long("--samples", val, 2, 100000, &a->samples); break;
        case 'r': rc = parse_long("--seed", val, 0, LONG_MAX, &a->seed); break;
        default: break;
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* An environment switch: set, and neither empty nor "0". */
static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] && strcmp(v, "0") != 0;
}

/* A configuration warning, as found (before the run starts). */
static void show_warning(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "wgf: warning: %s\n", line);
}

/* The progress line on a terminal: a monitor on the run (the library
 * prints nothing itself). */
static int show_progress(void *ctx, struct wgf_step_info *info, wgf_error *err)
{
    (void)ctx;
    (void)err;
    fprintf(stderr, "\r  step %6lu  t = %-9.5g  energy = %-12.6g", info->step, info->t, info->energy);
    if (info->ndiag > 0 && !isnan(info->diag[0]))
        fprintf(stderr, "  %s %.4g", info->diag_names[0], info->diag[0]);
    fprintf(stderr, "\033[K");
    fflush(stderr);
    return 0;
}

static void print_row(const char *name, double v)
{
    if (isfinite(v))
        printf("  %-22s %.6g\n", name, v);
}

static int cmd_run(int argc, char **argv, int check_only)
{
    cli_args a;
    int rc = parse_args(argc, argv, check_only ? "spTN" : "ostqpTNR", &a);
    if (rc) {
        free(a.sets);
        return rc;
    }
    /* --resume DIR: the run's own resolved configuration, outputs in DIR */
    char *resume_file = NULL;
    if (a.resume) {
        const char *clash = a.positional ? a.positional : a.outdir ? "-o" : NULL;
        if (clash) {
            free(a.sets);
            return usage_error("run --resume DIR continues the run in DIR with DIR/config.ini: '%s' "
                               "does not apply", clash);
        }
        size_t n = strlen(a.resume) + sizeof "/config.ini";
        resume_file = malloc(n);
        if (!resume_file) {
            free(a.sets);
            fprintf(stderr, "wgf: out of memory\n");
            return 1;
        }
        snprintf(resume_file, n, "%s/config.ini", a.resume);
        a.positional = resume_file;
        a.outdir = a.resume;
    }
    if (!a.positional) {
        free(a.sets);
        return usage_error("%s: which experiment file?", check_only ? "check" : "run");
    }
    wgf_run_opts opts = {
        .file = a.positional,
        .outdir = a.outdir,
        .sets = a.sets,
        .nsets = a.nsets,
        .plugin_path = a.plugin_path,
        .threads = (int)a.threads,
        .quiet = a.quiet,
        .check_only = check_only,
        .interrupt = &interrupted,
        .trust_plugin_path = a.trust_plugin_path,
        .no_file_plugins = a.no_file_plugins || env_set("WGF_NO_FILE_PLUGINS"),
        .warn = show_warning,
        .resume = a.resume != NULL,
    };
    int progress = !check_only && !a.quiet && isatty(STDERR_FILENO);
    if (progress)
        opts.monitor = show_progress;
    if (!check_only) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_error err = {0};
    wgf_run_result res;
    rc = wgf_run(&opts, &res, &diag, &err);
    free(a.sets);
    if (progress)
        fprintf(stderr, "\r\033[K");
    if (diag.n > 0) {
        wgf_diag_print(&diag, stderr, "wgf: ");
        wgf_diag_free(&diag);
        free(resume_file);
        return 2;
    }
    wgf_diag_free(&diag);
    if (rc != WGF_OK && rc != WGF_EINTR && rc != WGF_ENUMERIC && rc != WGF_EDIVERGED) {
        print_error(&err, rc);
        free(resume_file);
        return wgf_error_exit_status(rc);
    }
    if (check_only) {
        printf("%s: ok\n", opts.file);
        free(resume_file);
        return 0;
    }
    if (res.warning[0] && !a.quiet)
        fprintf(stderr, "wgf: warning: %s\n", res.warning);
    if (rc == WGF_ENUMERIC || rc == WGF_EDIVERGED)
        fprintf(stderr, "wgf: numerical failure: %s\nwgf: outputs so far are in %s\n", err.msg,
                res.outdir);
    else if (rc == WGF_EINTR)
        fprintf(stderr, "wgf: %s; outputs so far are in %s\n", err.msg, res.outdir);
    if (!a.quiet || rc != WGF_OK) {
        printf("%s: %s after %lu steps, t = %g, %.2f s\n", opts.file,
               rc == WGF_OK         ? "finished"
               : rc == WGF_EINTR    ? "interrupted"
               : rc == WGF_EDIVERGED ? "diverged"
                                    : "stopped",
               res.steps, res.t,
               res.wall_seconds);
        print_row("energy", res.energy);
        for (size_t i = 0; i < res.nfigures; i++)
            print_row(res.figures[i].name, res.figures[i].value);
        printf("  %-22s %lu\n", "metric products", res.metric_products);
        printf("  %-22s %s\n", "outputs", res.outdir);
    }
    free(resume_file);
    return wgf_error_exit_status(rc);
}

static void list_visit(const wgf_plugin *pl, const char *path, void *user)
{
    (void)user;
    printf("%-9s %-14s %s\n          %s\n", wgf_kind_name(pl->kind), pl->name, pl->summary ? pl->summary : "",
           path);
}

/* A schema without its `plugin` key (printed on its own line): 0 when nothing is left. */
static int print_schema_but_plugin(const wgf_param *schema)
{
    size_t n = 0;
    for (const wgf_param *k = schema; k && k->key; k++)
        n += strcmp(k->key, "plugin") != 0;
    if (n == 0)
        return 0;
    wgf_param *rest = calloc(n + 1, sizeof *rest);
    if (!rest)
        return -1;
    n = 0;
    for (const wgf_param *k = schema; k->key; k++)
        if (strcmp(k->key, "plugin") != 0)
            rest[n++] = *k;
    wgf_param_print(rest, stdout);
    free(rest);
    return 1;
}

/* wgf plugins --core: the sections of an experiment and the keys the core reads in each; a
 * component section's other keys are its plugin's (wgf plugins NAME). */
static int print_core_sections(void)
{
    static const char *const sections[] = {"run",    "initial", "energy", "map",      "metric",
                                           "scheme", "output",  "target", "reference"};
    static const char *const notes[] = {
        "the run as a whole",
        "the initial law lambda; type chooses which of the other keys apply",
        "one energy term; [energy.NAME] sections add terms (plugin required; the rest: wgf plugins NAME)",
        "the push-forward map (plugin required; the rest: wgf plugins NAME)",
        "the metric; the core solves M zeta = grad F with MINRES on the metric's products unless the "
        "plugin solves itself",
        "the scheme, which owns the time loop (the rest: wgf plugins NAME)",
        "what a run writes",
        "the target nu of a generative run, known by samples (optional): the energy reads its "
        "training samples, the reference its held-out ones",
        "what a run is compared with (the rest: wgf plugins NAME)"};
    printf("sections of an experiment file and the keys the core reads in each\n");
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        const wgf_param *schema = wgf_core_schema(sections[i]);
        printf("\n[%s]: %s\n", sections[i], notes[i]);
        if (schema)
            wgf_param_print(schema, stdout);
    }
    return 0;
}

static int cmd_plugins(int argc, char **argv)
{
    cli_args a;
    int rc = parse_args(argc, argv, "pC", &a);
    free(a.sets);
    if (rc)
        return rc;
    if (a.core) {
        if (a.positional || a.plugin_path)
            return usage_error("%s: --core takes no plugin name and no --plugin-path", "plugins");
        return print_core_sections();
    }
    wgf_registry *reg = NULL;
    wgf_error err = {0};
    if (wgf_registry_create(&reg, a.plugin_path, NULL, &err) != WGF_OK) {
        fprintf(stderr, "wgf: %s\n", err.msg);
        return 2;
    }
    if (a.positional) {
        const wgf_plugin *pl;
        const char *path;
        if (wgf_registry_find(reg, 0, a.positional, &pl, &path, &err) != WGF_OK) {
            fprintf(stderr, "wgf: %s\n", err.msg);
            wgf_registry_free(reg);
            return 2;
        }
        printf("%s (%s): %s\n  file: %s\n  ABI:  %u\n\nparameters of [%s]:\n", pl->name,
               wgf_kind_name(pl->kind), pl->summary ? pl->summary : "", path, pl->abi_version,
               wgf_kind_name(pl->kind));
        printf("  plugin = %s\n", pl->name);
        const char *sec = pl->kind == WGF_ENERGY ? "energy" : wgf_kind_name(pl->kind);
        printf("\n  keys of %s:\n", pl->name);
        if (pl->params && pl->params[0].key)
            wgf_param_print(pl->params, stdout);
        else
            printf("  (no parameters of its own)\n");
        printf("\n  keys the core adds to [%s] (every %s):\n", sec, wgf_kind_name(pl->kind));
        rc = print_schema_but_plugin(wgf_core_schema(sec));
        if (rc == 0)
            printf("  (none but plugin)\n");
        wgf_registry_free(reg);
        if (rc < 0) {
            fprintf(stderr, "wgf: out of memory\n");
            return 1;
        }
        return 0;
    }
    wgf_diag warn;
    wgf_diag_init(&warn);
    printf("plugins on the search path:");
    for (size_t i = 0; i < wgf_registry_ndirs(reg); i++)
        printf("%s%s", i ? ":" : " ", wgf_registry_dir(reg, i));
    printf("\n\n");
    rc = wgf_registry_list(reg, list_visit, NULL, &warn, &err);
    wgf_diag_print(&warn, stderr, "wgf: warning: ");
    wgf_diag_free(&warn);
    wgf_registry_free(reg);
    if (rc != WGF_OK) {
        fprintf(stderr, "wgf: %s\n", err.msg);
        return wgf_error_exit_status(rc);
    }
    return 0;
}

static int cmd_selftest(int argc, char **argv)
{
    cli_args a;
    int rc = parse_args(argc, argv, "sdnrp", &a);
    if (rc) {
        free(a.sets);
        return rc;
    }
    if (!a.positional) {
        free(a.sets);
        return usage_error("%s: which plugin?", "selftest");
    }
    wgf_registry *reg = NULL;
    wgf_error err = {0};
    if (wgf_registry_create(&reg, a.plugin_path, NULL, &err) != WGF_OK) {
        free(a.sets);
        fprintf(stderr, "wgf: %s\n", err.msg);
        return 2;
    }
    wgf_selftest_opts so = {
        .dim = a.dim ? (size_t)a.dim : 3,
        .samples = a.samples ? (size_t)a.samples : 7,
        .seed = (unsigned long)a.seed,
        .sets = a.sets,
        .nsets = a.nsets,
    };
    if (!so.seed)
        so.seed = 1;
    double worst = 0;
    rc = wgf_selftest(reg, a.positional, &so, stdout, &worst, &err);
    free(a.sets);
    wgf_registry_free(reg);
    if (rc == WGF_OK) {
        printf("%s: all derivative checks passed (worst relative error %.2e)\n", a.positional, worst);
        return 0;
    }
    if (rc == WGF_ENUMERIC) {
        /* a failed comparison has its FAIL line; anything else (a NaN, a failing call) says where */
        if (!strstr(err.msg, "a derivative check failed"))
            fprintf(stderr, "wgf: %s\n", err.msg);
        printf("%s: derivative checks FAILED (worst relative error %.2e)\n", a.positional, worst);
        return 3;
    }
    fprintf(stderr, "wgf: %s\n", err.msg);
    return wgf_error_exit_status(rc);
}

static int cmd_plot(int argc, char **argv)
{
    cli_args a;
    int rc = parse_args(argc, argv, "", &a);
    free(a.sets);
    if (rc)
        return rc;
    if (!a.positional)
        return usage_error("%s: which run directory?", "plot");
    wgf_error err = {0};
    rc = wgf_plot(a.positional, &err);
    if (rc != WGF_OK) {
        fprintf(stderr, "wgf: %s\n", err.msg);
        return wgf_error_exit_status(rc);
    }
    printf("plots written to %s/plots\n", a.positional);
    return 0;
}

/* wgf run under mpirun or srun: every rank runs the experiment and holds the same results,
 * rank 0 prints and writes. The other ranks' messages are set aside in a temporary file and
 * shown only when one of them fails: a failure that every rank meets (most are: the ranks
 * compute the same things) is printed by rank 0, whose MPI_Abort ends the others before they
 * print it again; one a rank meets alone (a file missing on its node) is printed by that rank.
 * Any failure ends every rank, since the others would wait for it forever. */
static int cmd_run_ranks(int argc, char **argv)
{
    int rc = wgf_mpi_init(&argc, &argv);
    if (rc == WGF_EUNSUP) {
        fprintf(stderr, "wgf: started by an MPI launcher on several processes, but this wgf was built "
                        "without MPI (configure --with-mpi)\n");
        return 2;
    }
    if (rc != WGF_OK) {
        fprintf(stderr, "wgf: MPI initialisation failed\n");
        return 1;
    }
    FILE *aside = NULL;
    int tty = -1;
    if (wgf_mpi_rank() > 0) {
        fflush(NULL);
        aside = tmpfile();
        tty = aside ? dup(STDERR_FILENO) : -1;
        if (tty >= 0)
            dup2(fileno(aside), STDERR_FILENO);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, STDOUT_FILENO);
            close(null);
        }
    }
    int status = cmd_run(argc - 2, argv + 2, 0);
    if (status != 0 && wgf_mpi_size() > 1) {
        if (tty >= 0) {
            sleep(2); /* rank 0, if it failed too, ends this process meanwhile */
            fflush(stderr);
            rewind(aside);
            char buf[4096];
            size_t n;
            while ((n = fread(buf, 1, sizeof buf, aside)) > 0)
                if (write(tty, buf, n) < 0)
                    break;
        }
        wgf_mpi_abort(status);
    }
    if (aside)
        fclose(aside);
    wgf_mpi_finalize();
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("%s", "a command is needed");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        printf("wgf %s: Wasserstein gradient flows with push-forward models\n\n%s\n"
               "  run       run an experiment file; outputs in DIR (default runs/NAME)\n"
               "  check     validate an experiment file (every error at once) without running\n"
               "  plugins   list the plugins found, the parameters of one, or (--core) the\n"
               "            sections and keys the core reads ([run], [initial], [output],\n"
               "            [target] of a generative run, ...)\n"
               "  selftest  check an energy's or map's derivatives by finite differences\n"
               "  plot      redraw the plots of a run directory (needs gnuplot)\n\n"
               "Exit status: 0 ok, 2 bad input, 3 numerical failure, 130 interrupted, 1 other.\n"
               "See wgf(1).\n",
               wgf_version(), usage);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("wgf %s (plugin ABI %u)\n", wgf_version(), WGF_ABI_VERSION);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run_ranks(argc, argv);
    if (strcmp(cmd, "check") == 0)
        return cmd_run(argc - 2, argv + 2, 1);
    if (strcmp(cmd, "plugins") == 0)
        return cmd_plugins(argc - 2, argv + 2);
    if (strcmp(cmd, "selftest") == 0)
        return cmd_selftest(argc - 2, argv + 2);
    if (strcmp(cmd, "plot") == 0)
        return cmd_plot(argc - 2, argv + 2);
    return usage_error("unknown command '%s'", cmd);
}
