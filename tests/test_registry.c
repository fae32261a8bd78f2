/* test_registry.c: plugin discovery and loading (ARCHITECTURE.md, Discovery; wgf/registry.h).
 *
 * The test plugins live in WGF_TEST_PLUGINS (tests/plugins/.libs, set by make check):
 * goodenergy.so (a correct energy), noentry.so (no entry point), badabi.so (a descriptor built
 * for the next ABI, preceded by malformed descriptors named badkind, novtable, noeval and one
 * without a name), badschema.so (complete vtables, schemas with one mistake each). Temporary directories hold links and copies of them under other names. */
#define _XOPEN_SOURCE 700 /* mkdtemp, symlink, readlink, setenv */

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static const char *plugdir(void)
{
    const char *d = getenv("WGF_TEST_PLUGINS");
    ck_assert_msg(d != NULL, "WGF_TEST_PLUGINS is not set (run through make check)");
    return d;
}

/* A fresh temporary directory; the caller frees the name after rmtree. */
static char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *t = malloc(4096);
    ck_assert_ptr_nonnull(t);
    snprintf(t, 4096, "%s/wgf-registry-XXXXXX", base && base[0] ? base : "/tmp");
    ck_assert_msg(mkdtemp(t) != NULL, "mkdtemp %s: %s", t, strerror(errno));
    return t;
}

/* Remove a directory made by make_tmpdir (flat: files and links only) and free its name. */
static void rmtree(char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ck_assert_msg(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
    }
    closedir(d);
    ck_assert_msg(rmdir(dir) == 0, "rmdir %s: %s", dir, strerror(errno));
    free(dir);
}

/* dir/name as a symbolic link to the test plugin file target (e.g. "goodenergy.so"). */
static void link_plugin(const char *dir, const char *name, const char *target)
{
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s/%s", dir, name);
    snprintf(to, sizeof to, "%s/%s", plugdir(), target);
    ck_assert_msg(symlink(to, from) == 0, "symlink %s: %s", from, strerror(errno));
}

static void copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    ck_assert_msg(in && out, "copy %s to %s: %s", src, dst, strerror(errno));
    char buf[8192];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, k, out), k);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static wgf_registry *registry_on(const char *path)
{
    wgf_registry *reg = NULL;
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_create_path(&reg, path, &err) == WGF_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(reg);
    return reg;
}

/* A failed look-up: WGF_EPLUGIN, no plugin, and a one-line message (returned in err). */
static void find_fails(wgf_registry *reg, wgf_kind kind, const char *name, wgf_error *err)
{
    const wgf_plugin *p = (const wgf_plugin *)1;
    const char *path = "unset";
    wgf_error_clear(err);
    int rc = wgf_registry_find(reg, kind, name, &p, &path, err);
    ck_assert_msg(rc == WGF_EPLUGIN, "find '%s': rc %d (%s)", name, rc, err->msg);
    ck_assert_int_eq(err->code, WGF_EPLUGIN);
    ck_assert_ptr_null(p);
    ck_assert_ptr_null(path);
    ck_assert_msg(err->msg[0] != '\0', "empty message");
    ck_assert_msg(strchr(err->msg, '\n') == NULL, "message is not one line: %s", err->msg);
}

#define ck_assert_has(msg, part)                                                                    \
    ck_assert_msg(strstr((msg), (part)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (part))
#define ck_assert_lacks(msg, part)                                                                  \
    ck_assert_msg(strstr((msg), (part)) == NULL, "message \"%s\" has \"%s\"", (msg), (part))

/* What wgf_registry_list visited. */
typedef struct visits {
    size_t n;
    const wgf_plugin *plugin[64];
    char path[64][4096];
} visits;

static void record(const wgf_plugin *p, const char *path, void *user)
{
    visits *v = user;
    ck_assert_uint_lt(v->n, 64);
    v->plugin[v->n] = p;
    snprintf(v->path[v->n], sizeof v->path[v->n], "%s", path);
    v->n++;
}

/* How many visits had that plugin name. */
static size_t visited(const visits *v, const char *name, size_t *at)
{
    size_t k = 0;
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->plugin[i]->name, name) == 0) {
            if (at)
                *at = i;
            k++;
        }
    return k;
}

/* How many visits had that plugin name and kind (a reference may share an energy's name). */
static size_t visited_kind(const visits *v, const char *name, wgf_kind kind, size_t *at)
{
    size_t k = 0;
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->plugin[i]->name, name) == 0 && v->plugin[i]->kind == kind) {
            if (at)
                *at = i;
            k++;
        }
    return k;
}

/* Index of the first warning containing part, or -1. */
static long warning_with(const wgf_diag *d, const char *part)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->msg[i], part))
            return (long)i;
    return -1;
}

/* ------------------------------------------------------------ finding */

START_TEST(test_kind_names)
{
    ck_assert_str_eq(wgf_kind_name(WGF_ENERGY), "energy");
    ck_assert_str_eq(wgf_kind_name(WGF_MAP), "map");
    ck_assert_str_eq(wgf_kind_name(WGF_METRIC), "metric");
    ck_assert_str_eq(wgf_kind_name(WGF_SCHEME), "scheme");
    ck_assert_ptr_nonnull(wgf_kind_name((wgf_kind)0));
}
END_TEST

START_TEST(test_find_good)
{
    wgf_registry *reg = registry_on(plugdir());
    ck_assert_uint_eq(wgf_registry_ndirs(reg), 1);
    ck_assert_str_eq(wgf_registry_dir(reg, 0), plugdir());
    ck_assert_ptr_null(wgf_registry_dir(reg, 1));

    char expect[4096];
    snprintf(expect, sizeof expect, "%s/goodenergy.so", plugdir());
    const wgf_plugin *p = NULL, *q = NULL;
    const char *path = NULL, *path2 = NULL;
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_find(reg, WGF_ENERGY, "goodenergy", &p, &path, &err) == WGF_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(p->abi_version, WGF_ABI_VERSION);
    ck_assert_int_eq(p->kind, WGF_ENERGY);
    ck_assert_str_eq(p->name, "goodenergy");
    ck_assert_str_eq(path, expect);
    ck_assert_str_eq(p->params[0].key, "scale");
    ck_assert_int_eq(p->params[0].type, WGF_PARAM_DOUBLE);
    ck_assert_str_eq(p->params[0].def, "1");
    ck_assert_ptr_null(p->params[1].key);

    /* Any kind, and a second look-up: the same descriptor from the same loaded file. */
    ck_assert_msg(wgf_registry_find(reg, 0, "goodenergy", &q, &path2, &err) == WGF_OK, "%s", err.msg);
    ck_assert_ptr_eq(p, q);
    ck_assert_ptr_eq(path, path2);
    /* path is optional. */
    ck_assert_int_eq(wgf_registry_find(reg, WGF_ENERGY, "goodenergy", &q, NULL, &err), WGF_OK);
    ck_assert_ptr_eq(p, q);
    wgf_registry_free(reg);
}
END_TEST

/* goodenergy is reused by other tests: check it against its closed form (tests/plugins/goodenergy.c)
 * and finite differences. */
START_TEST(test_goodenergy_values)
{
    wgf_registry *reg = registry_on(plugdir());
    const wgf_plugin *p;
    wgf_error err = {0};
    ck_assert_int_eq(wgf_registry_find(reg, WGF_ENERGY, "goodenergy", &p, NULL, &err), WGF_OK);
    const wgf_energy_vt *vt = p->vtable;
    void *st = NULL;
    ck_assert_int_eq(vt->create(NULL, NULL, &st, &err), WGF_OK);
    ck_assert_uint_eq(vt->needs(st), 0);

    enum { N = 3, D = 2 };
    double x[N * D] = {0.5, -1.0, 2.0, 0.25, -0.75, 1.5};
    wgf_batch b = {.n = N, .d = D, .x = x};
    double F, a[N * D], c[N], g[N * D], xbar[N * D], gbar[N * D];
    for (size_t n = 0; n < N; n++)
        c[n] = NAN;
    ck_assert_int_eq(vt->eval(st, &b, &F, a, c, &err), WGF_OK);
    double s = 0;
    for (size_t k = 0; k < N * D; k++)
        s += x[k] * x[k];
    ck_assert_close(F, s / (2.0 * N), 1e-14);
    for (size_t n = 0; n < N; n++)
        ck_assert_close(c[n], 0.0, 0.0);
    const double h = 1e-6;
    for (size_t k = 0; k < N * D; k++) {
        double keep = x[k], Fp, Fm;
        x[k] = keep + h;
        ck_assert_int_eq(vt->eval(st, &b, &Fp, NULL, NULL, &err), WGF_OK);
        x[k] = keep - h;
        ck_assert_int_eq(vt->eval(st, &b, &Fm, NULL, NULL, &err), WGF_OK);
        x[k] = keep;
        ck_assert_close(a[k], (Fp - Fm) / (2 * h), 1e-8);
    }
    /* g = grad dF/drho = x; its reverse pass accumulates gbar into xbar. */
    ck_assert_int_eq(vt->wgrad(st, &b, g, &err), WGF_OK);
    for (size_t k = 0; k < N * D; k++) {
        ck_assert_close(g[k], x[k], 1e-15);
        xbar[k] = 1.0;
        gbar[k] = 0.1 * (double)k - 0.2;
    }
    ck_assert_int_eq(vt->wgrad_vjp(st, &b, gbar, xbar, NULL, NULL, &err), WGF_OK);
    for (size_t k = 0; k < N * D; k++)
        ck_assert_close(xbar[k], 1.0 + gbar[k], 1e-15);
    vt->destroy(st);
    wgf_registry_free(reg);
}
END_TEST

START_TEST(test_not_found)
{
    char path[4096], expect[8192];
    snprintf(path, sizeof path, "/nonexistent-wgf-a:%s:/nonexistent-wgf-c", plugdir());
    wgf_registry *reg = registry_on(path);
    ck_assert_uint_eq(wgf_registry_ndirs(reg), 3);
    wgf_error err;

    find_fails(reg, WGF_ENERGY, "goodenrgy", &err);
    snprintf(expect, sizeof expect,
             "plugin 'goodenrgy' (energy) not found; looked for goodenrgy.so in: /nonexistent-wgf-a, %s, "
             "/nonexistent-wgf-c",
             plugdir());
    ck_assert_has(err.msg, expect);
    ck_assert_has(err.msg, "; did you mean 'goodenergy'?");

    /* Suggestions come from file names alone: learning a file's kind would mean loading it,
     * which runs its code. So an energy's name is suggested for a map too. */
    find_fails(reg, WGF_MAP, "goodenrgy", &err);
    ck_assert_has(err.msg,
                  "plugin 'goodenrgy' (map) not found; looked for goodenrgy.so in: /nonexistent-wgf-a, ");
    ck_assert_has(err.msg, "; did you mean 'goodenergy'?");

    /* Any kind: no kind in the message; nothing similar: no suggestion. */
    find_fails(reg, 0, "zzzz", &err);
    ck_assert_has(err.msg, "plugin 'zzzz' not found; looked for zzzz.so in: /nonexistent-wgf-a, ");
    ck_assert_lacks(err.msg, "did you mean");

    /* A name written as a file. */
    find_fails(reg, WGF_ENERGY, "goodenergy.so", &err);
    ck_assert_has(err.msg, "looked for goodenergy.so.so in:");
    ck_assert_has(err.msg, "did you mean 'goodenergy'?");

    /* A name with a directory is refused before any search. */
    find_fails(reg, WGF_ENERGY, "../goodenergy", &err);
    ck_assert_has(err.msg, "invalid plugin name '../goodenergy'");
    wgf_registry_free(reg);

    reg = registry_on("::");
    ck_assert_uint_eq(wgf_registry_ndirs(reg), 0);
    find_fails(reg, WGF_MAP, "planar", &err);
    ck_assert_str_eq(err.msg, "plugin 'planar' (map) not found: the plugin search path is empty");
    wgf_registry_free(reg);
}
END_TEST

/* A plain text file named x.so: dlopen fails and its message is passed on. */
START_TEST(test_not_a_shared_object)
{
    char *dir = make_tmpdir();
    char file[4096], expect[4200];
    snprintf(file, sizeof file, "%s/x.so", dir);
    write_text(file, "this is not a shared object\n");
    wgf_registry *reg = registry_on(dir);
    wgf_error err;
    find_fails(reg, WGF_ENERGY, "x", &err);
    snprintf(expect, sizeof expect, "cannot load %s: ", file);
    ck_assert_msg(strncmp(err.msg, expect, strlen(expect)) == 0, "message \"%s\"", err.msg);
    ck_assert_msg(strlen(err.msg) > strlen(expect), "no dlerror text in \"%s\"", err.msg);
    wgf_registry_free(reg);
    rmtree(dir);
}
END_TEST

START_TEST(test_no_entry_point)
{
    char expect[4096];
    wgf_registry *reg = registry_on(plugdir());
    wgf_error err;
    find_fails(reg, WGF_ENERGY, "noentry", &err);
    snprintf(expect, sizeof expect, "%s/noentry.so is not a wgf plugin: no symbol wgf_plugin_entry",
             plugdir());
    ck_assert_str_eq(err.msg, expect);
    /* Again, from the loaded file. */
    find_fails(reg, 0, "noentry", &err);
    ck_assert_str_eq(err.msg, expect);
    wgf_registry_free(reg);
}
END_TEST

START_TEST(test_abi_mismatch)
{
    char expect[4096];
    wgf_registry *reg = registry_on(plugdir());
    wgf_error err;
    find_fails(reg, WGF_ENERGY, "badabi", &err);
    snprintf(expect, sizeof expect,
             "%s/badabi.so: built for plugin ABI %u, newer than this wgf's ABI %u: update wgf, or "
             "rebuild the plugin against this wgf",
             plugdir(), WGF_ABI_VERSION + 1, WGF_ABI_VERSION);
    ck_assert_str_eq(err.msg, expect);
    wgf_registry_free(reg);
}
END_TEST

START_TEST(test_wrong_kind)
{
    char expect[4096];
    wgf_registry *reg = registry_on(plugdir());
    wgf_error err;
    find_fails(reg, WGF_MAP, "goodenergy", &err);
    snprintf(expect, sizeof expect, "plugin 'goodenergy' (%s/goodenergy.so) is an energy, not a map",
             plugdir());
    ck_assert_str_eq(err.msg, expect);
    find_fails(reg, WGF_SCHEME, "goodenergy", &err);
    ck_assert_has(err.msg, "is an energy, not a scheme");
    /* The right kind still works after a wrong one. */
    const wgf_plugin *p;
    ck_assert_int_eq(wgf_registry_find(reg, WGF_ENERGY, "goodenergy", &p, NULL, &err), WGF_OK);
    wgf_registry_free(reg);
}
END_TEST

/* other.so is goodenergy.so under another name: it loads but holds no plugin 'other'. */
START_TEST(test_name_not_in_file)
{
    char *dir = make_tmpdir();
    char expect[4096];
    link_plugin(dir, "other.so", "goodenergy.so");
    wgf_registry *reg = registry_on(dir);
    wgf_error err;
    find_fails(reg, WGF_ENERGY, "other", &err);
    snprintf(expect, sizeof expect,
             "%s/other.so holds no plugin named 'other'; it holds: goodenergy (energy)", dir);
    ck_assert_str_eq(err.msg, expect);
    wgf_registry_free(reg);
    rmtree(dir);
}
END_TEST

/* The malformed descriptors of badabi.so, reached through links named after them. */
START_TEST(test_malformed)
{
    char *dir = make_tmpdir();
    char expect[4096];
    link_plugin(dir, "badkind.so", "badabi.so");
    link_plugin(dir, "novtable.so", "badabi.so");
    link_plugin(dir, "noeval.so", "badabi.so");
    wgf_registry *reg = registry_on(dir);
    wgf_error err;

    find_fails(reg, 0, "badkind", &err);
    snprintf(expect, sizeof expect,
             "%s/badkind.so: malformed plugin 'badkind': kind 9 is none of energy (1), map (2), "
             "metric (3), scheme (4), reference (5)",
             dir);
    ck_assert_str_eq(err.msg, expect);
    /* Asked for a kind, it is still reported as malformed, not as of another kind. */
    find_fails(reg, WGF_ENERGY, "badkind", &err);
    ck_assert_str_eq(err.msg, expect);

    find_fails(reg, WGF_MAP, "novtable", &err);
    snprintf(expect, sizeof expect, "%s/novtable.so: malformed plugin 'novtable': no vtable", dir);
    ck_assert_str_eq(err.msg, expect);

    find_fails(reg, WGF_ENERGY, "noeval", &err);
    snprintf(expect, sizeof expect,
             "%s/noeval.so: malformed plugin 'noeval': its energy vtable has no eval function", dir);
    ck_assert_str_eq(err.msg, expect);
    wgf_registry_free(reg);
    rmtree(dir);
}
END_TEST

/* A schema is checked when its plugin loads: the core's own keys, keys given twice, defaults that
 * are not allowed values. The message names the plugin's file, not an experiment. */
START_TEST(test_bad_schema)
{
    static const char *const cases[][2] = {
        {"pluginkey", "malformed plugin 'pluginkey': its schema declares 'plugin', a key the core adds "
                      "to [energy] itself (remove it from the schema)"},
        {"tikhonovkey", "malformed plugin 'tikhonovkey': its schema declares 'tikhonov', a key the core "
                        "adds to [metric] itself (remove it from the schema)"},
        {"baddefault", "malformed plugin 'baddefault': the default of its key 'm' is refused: "},
        {"badrange", "malformed plugin 'badrange': the default of its key 'layers' is refused: "},
        {"badchoice", "malformed plugin 'badchoice': the default of its key 'kind' is refused: "},
        {"twice", "malformed plugin 'twice': its schema declares 'a' twice"},
    };
    char *dir = make_tmpdir();
    char so[256], expect[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(so, sizeof so, "%s.so", cases[i][0]);
        link_plugin(dir, so, "badschema.so");
    }
    wgf_registry *reg = registry_on(dir);
    wgf_error err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        find_fails(reg, 0, cases[i][0], &err);
        snprintf(expect, sizeof expect, "%s/%s.so: %s", dir, cases[i][0], cases[i][1]);
        ck_assert_msg(strncmp(err.msg, expect, strlen(expect)) == 0, "\"%s\" does not start with \"%s\"",
                      err.msg, expect);
    }
    /* what is wrong with a default, as a user's value would be told */
    find_fails(reg, 0, "baddefault", &err);
    ck_assert_has(err.msg, "'1.o'");
    find_fails(reg, 0, "badrange", &err);
    ck_assert_has(err.msg, ">= 1");
    find_fails(reg, 0, "badchoice", &err);
    ck_assert_has(err.msg, "'c' is not allowed (allowed: a, b");
    wgf_registry_free(reg);
    rmtree(dir);
}
END_TEST

/* ------------------------------------------------------------ the search path */

START_TEST(test_path_components)
{
    wgf_registry *reg = registry_on("::/nonexistent-wgf-a//::/nonexistent-wgf-b:/nonexistent-wgf-a/:/:");
    ck_assert_uint_eq(wgf_registry_ndirs(reg), 3);
    ck_assert_str_eq(wgf_registry_dir(reg, 0), "/nonexistent-wgf-a");
    ck_assert_str_eq(wgf_registry_dir(reg, 1), "/nonexistent-wgf-b");
    ck_assert_str_eq(wgf_registry_dir(reg, 2), "/");
    wgf_registry_free(reg);
    reg = registry_on(NULL);
    ck_assert_uint_eq(wgf_registry_ndirs(reg), 0);
    wgf_registry_free(reg);
}
END_TEST

static void assert_found_in(wgf_registry *reg, const char *dir)
{
    const wgf_plugin *p;
    const char *path;
    char expect[4096];
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_find(reg, WGF_ENERGY, "goodenergy", &p, &path, &err) == WGF_OK, "%s", err.msg);
    snprintf(expect, sizeof expect, "%s/goodenergy.so", dir);
    ck_assert_str_eq(path, expect);
}

/* --plugin-path, then the experiment's plugin_path, then WGF_PLUGIN_PATH, then the build tree
 * when running from it, then pkglibdir. */
START_TEST(test_search_order)
{
    char *a = make_tmpdir(), *b = make_tmpdir(), *b2 = make_tmpdir(), *c = make_tmpdir();
    char cli[8192], ini[8192], slashed[4200];
    snprintf(cli, sizeof cli, "%s::", a);
    snprintf(slashed, sizeof slashed, "%s/", b2);
    snprintf(ini, sizeof ini, "%s:%s", b, slashed);
    const char *saved = getenv("WGF_PLUGIN_PATH");
    char *keep = saved ? strdup(saved) : NULL;
    ck_assert_int_eq(setenv("WGF_PLUGIN_PATH", c, 1), 0);

    wgf_registry *reg = NULL;
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_create(&reg, cli, ini, &err) == WGF_OK, "%s", err.msg);
    size_t nd = wgf_registry_ndirs(reg);
    ck_assert_uint_ge(nd, 5);
    ck_assert_str_eq(wgf_registry_dir(reg, 0), a);
    ck_assert_str_eq(wgf_registry_dir(reg, 1), b);
    ck_assert_str_eq(wgf_registry_dir(reg, 2), b2);
    ck_assert_str_eq(wgf_registry_dir(reg, 3), c);

    /* This program runs from the build tree (tests/.libs) under make check; the build tree is
     * the parent of WGF_TEST_PLUGINS = <builddir>/tests/plugins/.libs. */
    char top[4096], exe[4096];
    snprintf(top, sizeof top, "%s", plugdir());
    char *cut = strstr(top, "/tests/plugins/.libs");
    ck_assert_ptr_nonnull(cut);
    *cut = '\0';
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[k > 0 ? k : 0] = '\0';
    int uninstalled = strncmp(exe, top, strlen(top)) == 0 && exe[strlen(top)] == '/';
    if (uninstalled) {
        static const char *const sub[] = {"energies", "maps", "metrics", "schemes", "references"};
        ck_assert_uint_eq(nd, 10);
        for (size_t i = 0; i < 5; i++) {
            char d[4200];
            snprintf(d, sizeof d, "%s/plugins/%s/.libs", top, sub[i]);
            ck_assert_str_eq(wgf_registry_dir(reg, 4 + i), d);
        }
    } else {
        ck_assert_uint_eq(nd, 5);
    }
    /* pkglibdir comes last. */
    ck_assert_msg(wgf_registry_dir(reg, nd - 1)[0] == '/', "pkglibdir %s", wgf_registry_dir(reg, nd - 1));
    ck_assert_lacks(wgf_registry_dir(reg, nd - 1), "/plugins/schemes/.libs");

    /* Resolution follows that order. */
    link_plugin(c, "goodenergy.so", "goodenergy.so");
    assert_found_in(reg, c);
    link_plugin(b2, "goodenergy.so", "goodenergy.so");
    assert_found_in(reg, b2);
    link_plugin(b, "goodenergy.so", "goodenergy.so");
    assert_found_in(reg, b);
    link_plugin(a, "goodenergy.so", "goodenergy.so");
    assert_found_in(reg, a);
    wgf_registry_free(reg);

    /* Without cli and ini paths the environment comes first. */
    ck_assert_msg(wgf_registry_create(&reg, NULL, NULL, &err) == WGF_OK, "%s", err.msg);
    ck_assert_str_eq(wgf_registry_dir(reg, 0), c);
    ck_assert_uint_eq(wgf_registry_ndirs(reg), nd - 3);
    /* An untrusted experiment's plugin_path is appended: after pkglibdir, so an installed
     * plugin wins (a directory already on the path stays where it was). */
    ck_assert_msg(wgf_registry_append(reg, ini, &err) == WGF_OK, "%s", err.msg);
    ck_assert_uint_eq(wgf_registry_ndirs(reg), nd - 1);
    ck_assert_str_eq(wgf_registry_dir(reg, nd - 3), b);
    ck_assert_str_eq(wgf_registry_dir(reg, nd - 2), b2);
    assert_found_in(reg, c);
    wgf_registry_free(reg);

    if (keep) {
        setenv("WGF_PLUGIN_PATH", keep, 1);
        free(keep);
    } else {
        unsetenv("WGF_PLUGIN_PATH");
    }
    rmtree(a);
    rmtree(b);
    rmtree(b2);
    rmtree(c);
}
END_TEST

/* ------------------------------------------------------------ listing */

START_TEST(test_list)
{
    char *dir = make_tmpdir();
    char path[8192], file[4096], part[4200];
    snprintf(file, sizeof file, "%s/x.so", dir);
    write_text(file, "not a shared object either\n");
    snprintf(path, sizeof path, "/nonexistent-wgf-a:%s:%s", plugdir(), dir);
    wgf_registry *reg = registry_on(path);
    visits v = {0};
    wgf_diag warn;
    wgf_diag_init(&warn);
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_list(reg, record, &v, &warn, &err) == WGF_OK, "%s", err.msg);

    /* The good plugin is visited, once; nothing from the broken files. */
    size_t at = 0;
    ck_assert_uint_eq(visited(&v, "goodenergy", &at), 1);
    snprintf(part, sizeof part, "%s/goodenergy.so", plugdir());
    ck_assert_str_eq(v.path[at], part);
    ck_assert_uint_eq(visited(&v, "badabi", NULL), 0);
    ck_assert_uint_eq(visited(&v, "badkind", NULL), 0);
    ck_assert_uint_eq(visited(&v, "novtable", NULL), 0);
    ck_assert_uint_eq(visited(&v, "noeval", NULL), 0);
    for (size_t i = 0; i < v.n; i++)
        ck_assert_uint_le(v.plugin[i]->abi_version, WGF_ABI_VERSION);

    /* One warning line per problem, in path order (sorted within a directory). */
    snprintf(part, sizeof part, "%s/badabi.so: malformed plugin: descriptor 0 has no name", plugdir());
    long nameless = warning_with(&warn, part);
    long badkind = warning_with(&warn, "malformed plugin 'badkind': kind 9");
    long novtable = warning_with(&warn, "malformed plugin 'novtable': no vtable");
    long noeval = warning_with(&warn, "malformed plugin 'noeval': its energy vtable has no eval function");
    snprintf(part, sizeof part, "%s/badabi.so: built for plugin ABI %u, newer than this wgf's ABI %u",
             plugdir(),
             WGF_ABI_VERSION + 1, WGF_ABI_VERSION);
    long abi = warning_with(&warn, part);
    snprintf(part, sizeof part, "%s/noentry.so is not a wgf plugin: no symbol wgf_plugin_entry", plugdir());
    long noentry = warning_with(&warn, part);
    snprintf(part, sizeof part, "cannot load %s: ", file);
    long notso = warning_with(&warn, part);
    wgf_diag_print(&warn, stderr, "test_list warning: ");
    ck_assert_int_ge(nameless, 0);
    ck_assert_int_gt(badkind, nameless);
    ck_assert_int_gt(novtable, badkind);
    ck_assert_int_gt(noeval, novtable);
    ck_assert_int_gt(abi, noeval);
    ck_assert_int_gt(noentry, abi);
    ck_assert_int_gt(notso, noentry);
    /* and one per descriptor of badschema.so (test_bad_schema) */
    ck_assert_int_gt(warning_with(&warn, "badschema.so: malformed plugin 'twice'"), abi);
    ck_assert_uint_eq(warn.n, 13);
    ck_assert_int_lt(warning_with(&warn, "nonexistent-wgf-a"), 0);
    ck_assert_int_lt(warning_with(&warn, "goodenergy"), 0);
    for (size_t i = 0; i < warn.n; i++)
        ck_assert_msg(strchr(warn.msg[i], '\n') == NULL, "warning is not one line: %s", warn.msg[i]);
    wgf_diag_free(&warn);

    /* Neither the visitor nor the warnings are required. */
    ck_assert_int_eq(wgf_registry_list(reg, NULL, NULL, NULL, &err), WGF_OK);
    wgf_registry_free(reg);
    rmtree(dir);
}
END_TEST

/* A directory on the path that is a file deserves a warning; a missing one does not. */
START_TEST(test_list_unreadable_dir)
{
    char path[8192];
    snprintf(path, sizeof path, "/nonexistent-wgf-a:%s/goodenergy.so", plugdir());
    wgf_registry *reg = registry_on(path);
    wgf_diag warn;
    wgf_diag_init(&warn);
    wgf_error err = {0};
    visits v = {0};
    ck_assert_int_eq(wgf_registry_list(reg, record, &v, &warn, &err), WGF_OK);
    ck_assert_uint_eq(v.n, 0);
    ck_assert_uint_eq(warn.n, 1);
    ck_assert_has(warn.msg[0], "cannot read plugin directory ");
    ck_assert_has(warn.msg[0], "/goodenergy.so: ");
    wgf_diag_free(&warn);
    wgf_registry_free(reg);
}
END_TEST

/* A copy of goodenergy.so earlier on the path shadows the original. */
START_TEST(test_shadowing)
{
    char *dir = make_tmpdir();
    char src[4096], dst[4096], expect[8300], path[8300];
    snprintf(src, sizeof src, "%s/goodenergy.so", plugdir());
    snprintf(dst, sizeof dst, "%s/goodenergy.so", dir);
    copy_file(src, dst);
    snprintf(path, sizeof path, "%s:%s", dir, plugdir());
    wgf_registry *reg = registry_on(path);
    visits v = {0};
    wgf_diag warn;
    wgf_diag_init(&warn);
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_list(reg, record, &v, &warn, &err) == WGF_OK, "%s", err.msg);
    size_t at = 0;
    ck_assert_uint_eq(visited(&v, "goodenergy", &at), 1);
    ck_assert_str_eq(v.path[at], dst);
    snprintf(expect, sizeof expect, "plugin 'goodenergy' in %s is shadowed by %s", src, dst);
    ck_assert_msg(warning_with(&warn, expect) >= 0, "no warning \"%s\"", expect);
    ck_assert_int_eq(warning_with(&warn, "shadowed"), warning_with(&warn, expect));
    wgf_diag_free(&warn);

    /* find agrees with list. */
    const wgf_plugin *p;
    const char *found;
    ck_assert_int_eq(wgf_registry_find(reg, WGF_ENERGY, "goodenergy", &p, &found, &err), WGF_OK);
    ck_assert_str_eq(found, dst);
    ck_assert_ptr_eq(p, v.plugin[at]);
    wgf_registry_free(reg);
    rmtree(dir);
}
END_TEST

/* ------------------------------------------------------------ the real plugins */

/* Every plugin the build installs is found on WGF_PLUGIN_PATH under its name and kind, and
 * listed once. A plugin whose entry returns no descriptor at all is skipped. */
START_TEST(test_real_plugins)
{
    static const struct {
        wgf_kind kind;
        const char *name;
    } real[] = {
        {WGF_ENERGY, "fpe"}, {WGF_ENERGY, "pme"}, {WGF_ENERGY, "aggregation"}, {WGF_MAP, "affine"},
        {WGF_MAP, "planar"}, {WGF_METRIC, "lagrangian"}, {WGF_SCHEME, "euler"},
        {WGF_REFERENCE, "ou"}, {WGF_REFERENCE, "barenblatt"}, {WGF_REFERENCE, "aggregation"},
        {WGF_REFERENCE, "fpe1d"}, {WGF_REFERENCE, "particles"},
    };
    wgf_registry *reg = test_registry();
    visits v = {0};
    wgf_diag warn;
    wgf_diag_init(&warn);
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_list(reg, record, &v, &warn, &err) == WGF_OK, "%s", err.msg);
    size_t checked = 0;
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
        const wgf_plugin *p;
        const char *path;
        int rc = wgf_registry_find(reg, real[i].kind, real[i].name, &p, &path, &err);
        if (rc != WGF_OK && strstr(err.msg, "; it holds no plugins")) {
            fprintf(stderr, "test_real_plugins: %s has no descriptor yet, skipped\n", real[i].name);
            continue;
        }
        if (rc != WGF_OK && strstr(err.msg, " not found; ")) {
            fprintf(stderr, "test_real_plugins: %s is not built, skipped\n", real[i].name);
            continue;
        }
        ck_assert_msg(rc == WGF_OK, "%s", err.msg);
        ck_assert_int_eq(p->kind, real[i].kind);
        ck_assert_str_eq(p->name, real[i].name);
        ck_assert_ptr_nonnull(p->summary);
        char tail[256];
        snprintf(tail, sizeof tail, "/%s%s.so", real[i].kind == WGF_REFERENCE ? "ref_" : "", real[i].name);
        ck_assert_str_eq(path + strlen(path) - strlen(tail), tail);
        size_t at = 0;
        ck_assert_msg(visited_kind(&v, real[i].name, real[i].kind, &at) == 1, "%s listed %zu times",
                      real[i].name, visited_kind(&v, real[i].name, real[i].kind, NULL));
        ck_assert_ptr_eq(v.plugin[at], p);
        ck_assert_str_eq(v.path[at], path);
        snprintf(tail, sizeof tail, "'%s'", real[i].name);
        ck_assert_msg(warning_with(&warn, tail) < 0, "warning: %s", warn.msg[warning_with(&warn, tail)]);
        checked++;
    }
    fprintf(stderr, "test_real_plugins: %zu of %zu plugins checked\n", checked, sizeof real / sizeof real[0]);
    wgf_diag_free(&warn);
    wgf_registry_free(reg);
}
END_TEST

/* ------------------------------------------------------------ ABI growth */

/* The layout table: the current layout of every kind is its vtable type, whole (a member appended
 * without its table line would be read past the copy), ABI 1's vtables held 6, 14, 5 and 3
 * function pointers (tests/plugins/abi1/wgf/plugin.h), and ABI 2's maps 15 and metrics still 5
 * (tests/plugins/abi2/wgf/plugin.h). */
START_TEST(test_abi_layouts)
{
    size_t fp = sizeof(void (*)(void));
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_ENERGY, WGF_ABI_VERSION), sizeof(wgf_energy_vt));
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_MAP, WGF_ABI_VERSION), sizeof(wgf_map_vt));
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_METRIC, WGF_ABI_VERSION), sizeof(wgf_metric_vt));
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_SCHEME, WGF_ABI_VERSION), sizeof(wgf_scheme_vt));
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_ENERGY, 1), 6 * fp);
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_MAP, 1), 14 * fp);
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_METRIC, 1), 5 * fp);
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_SCHEME, 1), 3 * fp);
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_MAP, 2), 15 * fp);
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_METRIC, 2), 5 * fp);
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_ENERGY, 0), 0);
    ck_assert_uint_eq(wgf_registry_vtable_size(WGF_ENERGY, WGF_ABI_VERSION + 1), 0);
    ck_assert_uint_eq(wgf_registry_vtable_size((wgf_kind)9, WGF_ABI_VERSION), 0);
}
END_TEST

/* A plugin found, built with the given ABI version. */
static const wgf_plugin *find_ok(wgf_registry *reg, wgf_kind kind, const char *name, unsigned abi)
{
    const wgf_plugin *p = NULL;
    wgf_error err = {0};
    ck_assert_msg(wgf_registry_find(reg, kind, name, &p, NULL, &err) == WGF_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(p->abi_version, abi);
    return p;
}

/* Binaries built against the frozen ABI-1 headers load; their vtables come in the current layout
 * with what they have, and NULL for the members appended since. */
START_TEST(test_abi1_plugins_load)
{
    wgf_registry *reg = registry_on(plugdir());
    const wgf_energy_vt *e = find_ok(reg, WGF_ENERGY, "abi1energy", 1)->vtable;
    ck_assert(e->create && e->destroy && e->needs && e->eval && e->wgrad && e->wgrad_vjp);
    ck_assert(e->eval_s == NULL);
    const wgf_map_vt *m = find_ok(reg, WGF_MAP, "abi1map", 1)->vtable;
    ck_assert(m->create && m->nparams && m->forward && m->jvp && m->path_vjp);
    ck_assert(m->score == NULL && m->project == NULL && m->gaussian_push == NULL);
    ck_assert(m->vjp_many == NULL);
    const wgf_metric_vt *x = find_ok(reg, WGF_METRIC, "abi1metric", 1)->vtable;
    ck_assert(x->create && x->prepare && x->apply && x->solve == NULL);
    const wgf_scheme_vt *s = find_ok(reg, WGF_SCHEME, "abi1scheme", 1)->vtable;
    ck_assert(s->create && s->destroy && s->run);
    ck_assert(s->needs == NULL);
    wgf_registry_free(reg);
}
END_TEST

static int abi1_run(const char *text, wgf_run_result *res, wgf_error *err)
{
    char *outdir = test_temp_dir("abi1");
    wgf_run_opts opts = {.outdir = outdir, .plugin_path = plugdir(), .quiet = 1};
    int rc = test_run_text(text, opts, res, err);
    test_remove_tree(outdir);
    free(outdir);
    return rc;
}

/* A short run made of the four ABI-1 fixtures equals the same run made of the built-in fpe,
 * affine, lagrangian and euler (to rounding: the fixtures add in another order). */
#define ABI1_RUN(energy, map, metric, scheme)                                                      \
    "[run]\ndim = 2\nsamples = 600\nseed = 5\n[initial]\ntype = gaussian\n"                     \
    "[energy]\n" energy "mu = 0.5\ndiffusion = 0.7\n[map]\nplugin = " map "\n"                  \
    "[metric]\nplugin = " metric "\ntol = 1e-12\nmaxiter = 100\n"                               \
    "[scheme]\nplugin = " scheme "\nstep = 0.05\nt_end = 0.5\n"                                 \
    "[output]\nevery = 10\nsamples = 200\nplots = false\nwrite_samples = false\n"
START_TEST(test_abi1_run_equals_builtin)
{
    wgf_run_result old, now;
    wgf_error err = {0};
    int rc = abi1_run(ABI1_RUN("plugin = abi1energy\n", "abi1map", "abi1metric", "abi1scheme"), &old,
                      &err);
    ck_assert_msg(rc == WGF_OK, "ABI-1 run: %s", err.msg);
    rc = abi1_run(ABI1_RUN("plugin = fpe\npotential = quadratic\n", "affine", "lagrangian", "euler"),
                  &now, &err);
    ck_assert_msg(rc == WGF_OK, "built-in run: %s", err.msg);
    ck_assert_uint_eq(old.steps, 10);
    ck_assert_uint_eq(now.steps, 10);
    ck_assert_close(old.t, 0.5, 1e-15);
    ck_assert_close(old.energy, now.energy, 1e-10);
    ck_assert_uint_eq(old.metric_products, now.metric_products);
}
END_TEST

/* Binaries built against the frozen ABI-2 headers (the lagrangian metric and the affine map as
 * they were then) load as ABI 2, with NULL for what ABI 3 appended: a map's gram_blocks, a
 * metric's velocity and blocks. */
START_TEST(test_abi2_plugins_load)
{
    wgf_registry *reg = registry_on(plugdir());
    const wgf_map_vt *m = find_ok(reg, WGF_MAP, "abi2affine", 2)->vtable;
    ck_assert(m->create && m->nparams && m->forward && m->score && m->jvp && m->path_vjp);
    ck_assert(m->gaussian_push && m->vjp_many);
    ck_assert(m->project == NULL && m->gram_blocks == NULL);
    const wgf_metric_vt *x = find_ok(reg, WGF_METRIC, "abi2lagrangian", 2)->vtable;
    ck_assert(x->create && x->destroy && x->prepare && x->apply);
    ck_assert(x->solve == NULL && x->velocity == NULL && x->blocks == NULL);
    wgf_registry_free(reg);
}
END_TEST

/* experiments/fpe_ou_10d_affine.ini shortened (N = 300, 20 steps to t = 0.1) with the test
 * plugins on the path and the caller's overrides after these; the run's directory (remove and
 * free it) in *dir. */
static void ou_10d_run(const char *const *extra, size_t nextra, char **dir, wgf_run_result *res)
{
    enum { NSHORT = 5, MAXSETS = NSHORT + 4 };
    const char *sets[MAXSETS] = {"run.samples=300", "scheme.t_end=0.1", "output.every=10",
                                 "output.samples=300", "output.plots=false"};
    ck_assert(NSHORT + nextra <= MAXSETS);
    for (size_t i = 0; i < nextra; i++)
        sets[NSHORT + i] = extra[i];
    char file[4096];
    *dir = test_temp_dir("abi2");
    wgf_run_opts opts = {.file = test_srcpath("experiments/fpe_ou_10d_affine.ini", file, sizeof file),
                         .outdir = *dir, .sets = sets, .nsets = NSHORT + nextra, .quiet = 1,
                         .plugin_path = plugdir()};
    wgf_error err = {0};
    ck_assert_msg(test_run(&opts, res, &err) == WGF_OK, "%s: %s", extra[0], err.msg);
    ck_assert_uint_eq(res->steps, 20);
}

/* Two runs' history.csv (wall_s aside) and final parameters, byte for byte. */
static void same_run(const char *a, const char *b, const char *what)
{
    char *ha = test_read_file(a, "history.csv", NULL), *hb = test_read_file(b, "history.csv", NULL);
    test_strip_wall(ha);
    test_strip_wall(hb);
    size_t at = 0, line = 1;
    while (ha[at] && ha[at] == hb[at])
        line += ha[at++] == '\n';
    if (ha[at] != hb[at]) {
        while (at > 0 && ha[at - 1] != '\n')
            at--;
        ck_abort_msg("%s: history.csv differs at line %zu:\n%.*s\n%.*s", what, line,
                     (int)strcspn(ha + at, "\n"), ha + at, (int)strcspn(hb + at, "\n"), hb + at);
    }
    free(ha);
    free(hb);
    size_t na, nb;
    char *ta = test_read_file(a, "theta/step-000020.bin", &na);
    char *tb = test_read_file(b, "theta/step-000020.bin", &nb);
    ck_assert_msg(na == nb && memcmp(ta, tb, na) == 0, "%s: the final parameters differ", what);
    free(ta);
    free(tb);
}

static void remove_run(char *dir)
{
    test_remove_tree(dir);
    free(dir);
}

/* The ABI-2 lagrangian in place of the built-in one gives the same run, bit for bit: the metric's
 * product is the same wgf_eval_gram, and the core's MINRES does the rest. */
START_TEST(test_abi2_metric_run_equals_builtin)
{
    const char *old_sets[] = {"metric.plugin=abi2lagrangian"}, *new_sets[] = {"metric.plugin=lagrangian"};
    char *old_dir, *new_dir;
    wgf_run_result old, now;
    ou_10d_run(old_sets, 1, &old_dir, &old);
    ou_10d_run(new_sets, 1, &new_dir, &now);
    same_run(old_dir, new_dir, "abi2lagrangian against lagrangian");
    ck_assert_uint_gt(now.metric_products, 20);
    ck_assert_uint_eq(old.metric_products, now.metric_products);
    remove_run(old_dir);
    remove_run(new_dir);
}
END_TEST

/* The ABI-2 affine map in place of the built-in one gives the same run, bit for bit (the built-in
 * one has since only moved its LU factorisation into a shared header). */
START_TEST(test_abi2_map_run_equals_builtin)
{
    const char *old_sets[] = {"map.plugin=abi2affine"}, *new_sets[] = {"map.plugin=affine"};
    char *old_dir, *new_dir;
    wgf_run_result old, now;
    ou_10d_run(old_sets, 1, &old_dir, &old);
    ou_10d_run(new_sets, 1, &new_dir, &now);
    same_run(old_dir, new_dir, "abi2affine against affine");
    ck_assert_uint_eq(old.metric_products, now.metric_products);
    remove_run(old_dir);
    remove_run(new_dir);
}
END_TEST

/* ABI 3's MINRES preconditioners ask the metric for its diagonal blocks (and lagrangian asks the
 * map for gram_blocks). ABI-2 binaries have neither member, and the core takes the documented
 * fallbacks (doc/guide-metric.md, blocks) instead of reading past their vtables: block runs
 * unpreconditioned, the same run as preconditioner = none bit for bit, with an ABI-2 metric or
 * an ABI-2 map; jacobi probes the diagonal with P products a step more than from the blocks.
 * A 4-layer planar flow (P = 84), whose blocks the built-in lagrangian has: there block changes
 * the solves, so the fallback is seen. */
START_TEST(test_abi2_preconditioners_fall_back)
{
    const char *none[] = {"map.plugin=planar", "map.layers=4"};
    const char *block[] = {"map.plugin=planar", "map.layers=4", "metric.preconditioner=block"};
    const char *block2[] = {"map.plugin=planar", "map.layers=4", "metric.preconditioner=block",
                            "metric.plugin=abi2lagrangian"};
    char *dn, *db, *db2;
    wgf_run_result rn, rb, rb2;
    ou_10d_run(none, 2, &dn, &rn);
    ou_10d_run(block, 3, &db, &rb);
    ou_10d_run(block2, 4, &db2, &rb2);
    ck_assert_msg(rb.metric_products != rn.metric_products,
                  "block had no effect with lagrangian: %lu products", rb.metric_products);
    same_run(db2, dn, "abi2lagrangian with block against lagrangian without");
    ck_assert_uint_eq(rb2.metric_products, rn.metric_products);
    remove_run(db);
    remove_run(db2);
    remove_run(dn);

    const char *amap[] = {"map.plugin=abi2affine"};
    const char *amap_block[] = {"map.plugin=abi2affine", "metric.preconditioner=block"};
    ou_10d_run(amap, 1, &dn, &rn);
    ou_10d_run(amap_block, 2, &db, &rb);
    same_run(db, dn, "abi2affine with block against without");
    remove_run(dn);
    remove_run(db);

    const char *jac[] = {"map.plugin=planar", "map.layers=4", "metric.preconditioner=jacobi"};
    const char *jac2[] = {"map.plugin=planar", "map.layers=4", "metric.preconditioner=jacobi",
                          "metric.plugin=abi2lagrangian"};
    char *dj, *dj2;
    wgf_run_result rj, rj2;
    ou_10d_run(jac, 3, &dj, &rj);
    ou_10d_run(jac2, 4, &dj2, &rj2);
    char *hj = test_read_file(dj, "history.csv", NULL), *hj2 = test_read_file(dj2, "history.csv", NULL);
    size_t n, n2;
    double *pj = test_history_column(hj, "products", &n), *ij = test_history_column(hj, "iterations", &n);
    double *pj2 = test_history_column(hj2, "products", &n2);
    double *ij2 = test_history_column(hj2, "iterations", &n2);
    ck_assert_uint_eq(n, 21);
    ck_assert_uint_eq(n2, 21);
    for (size_t k = 0; k < 20; k++) /* the last row takes no step */
        ck_assert_msg(pj2[k] - ij2[k] == pj[k] - ij[k] + 84, "step %zu: %g products for %g iterations, "
                      "against %g for %g from the blocks", k, pj2[k], ij2[k], pj[k], ij[k]);
    free(pj), free(ij), free(pj2), free(ij2), free(hj), free(hj2);
    remove_run(dj);
    remove_run(dj2);
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("find");
    tcase_add_test(tc, test_kind_names);
    tcase_add_test(tc, test_find_good);
    tcase_add_test(tc, test_goodenergy_values);
    tcase_add_test(tc, test_not_found);
    tcase_add_test(tc, test_not_a_shared_object);
    tcase_add_test(tc, test_no_entry_point);
    tcase_add_test(tc, test_abi_mismatch);
    tcase_add_test(tc, test_wrong_kind);
    tcase_add_test(tc, test_name_not_in_file);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_bad_schema);
    suite_add_tcase(s, tc);
    tc = tcase_create("abi");
    tcase_add_test(tc, test_abi_layouts);
    tcase_add_test(tc, test_abi1_plugins_load);
    tcase_add_test(tc, test_abi1_run_equals_builtin);
    tcase_add_test(tc, test_abi2_plugins_load);
    tcase_add_test(tc, test_abi2_metric_run_equals_builtin);
    tcase_add_test(tc, test_abi2_map_run_equals_builtin);
    tcase_add_test(tc, test_abi2_preconditioners_fall_back);
    suite_add_tcase(s, tc);
    tc = tcase_create("path");
    tcase_add_test(tc, test_path_components);
    tcase_add_test(tc, test_search_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("list");
    tcase_add_test(tc, test_list);
    tcase_add_test(tc, test_list_unreadable_dir);
    tcase_add_test(tc, test_shadowing);
    tcase_add_test(tc, test_real_plugins);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(registry_suite());
}
