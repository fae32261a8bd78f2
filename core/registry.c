/* registry.c: finding plugins along the search path and loading them.
 *
 * A name resolves to the first <dir>/<name>.so along the path (ARCHITECTURE.md, Discovery), and
 * that file alone decides: when it does not load, or holds no plugin of that name and kind, the
 * lookup fails with the reason instead of falling through to a later directory, so a shadowed
 * plugin is never picked by accident. Loaded objects stay open until wgf_registry_free, because
 * names, schemas and functions point into them. The core sees copies of the descriptors whose
 * vtables are in the current layout, whatever ABI version a plugin was built with (lib_plugin).
 * A registry is not meant to be shared between threads without a lock. */
#define _GNU_SOURCE /* dladdr; realpath, strdup */

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "wgf/registry.h"
#include "internal.h"
#include "suggest.h"

/* Both come from the build (core_libwgf_la_CPPFLAGS); the fallbacks keep the file compilable on
 * its own: no build tree, and the usual pkglibdir. */
#ifndef WGF_PKGLIBDIR
#define WGF_PKGLIBDIR "/usr/local/lib/wgf"
#endif
#ifndef WGF_BUILDDIR
#define WGF_BUILDDIR ""
#endif

/* A descriptor as the core sees it: a copy of the plugin's, whose vtable is a core-owned copy in
 * the current layout (members the plugin's ABI lacks are NULL). */
typedef struct wgf_loaded {
    wgf_plugin desc;
    void *vtable; /* owned; NULL when desc.vtable is the plugin's own (malformed: refused later) */
} wgf_loaded;

/* One dlopen'ed file. entry is NULL when the file has no entry point; the handle is kept anyway,
 * so that a second look-up of the same file does not load it again. loaded[i] is descriptor i,
 * converted on first use (NULL: not yet). */
typedef struct wgf_lib {
    char *path;
    void *handle;
    wgf_plugin_entry_fn entry;
    wgf_loaded **loaded;
    size_t nloaded;
} wgf_lib;

struct wgf_registry {
    char **dirs;
    size_t ndirs, capdirs;
    size_t nown; /* dirs before the first appended one (an experiment's plugin_path): all when none */
    wgf_lib **libs;
    size_t nlibs, caplibs;
};

const char *wgf_kind_name(wgf_kind k)
{
    switch (k) {
    case WGF_ENERGY: return "energy";
    case WGF_MAP: return "map";
    case WGF_METRIC: return "metric";
    case WGF_SCHEME: return "scheme";
    case WGF_REFERENCE: return "reference";
    }
    return "unknown kind";
}

/* ------------------------------------------------------------ the ABI's growth */

/* The end of member m of vtable type t: the size of the vtable that ends after m. */
#define VT_END(t, m) (offsetof(t, m) + sizeof(((t *)0)->m))

/* How each kind's vtable grew (plugin.h, the growth rules): from ABI version `since` on, until the
 * kind's next line, a vtable of that kind is `size` bytes. A kind exists from its first line on.
 * Appending members in a new ABI version, or adding a kind, is one line here. */
static const struct vt_layout {
    wgf_kind kind;
    unsigned since;
    size_t size;
} vt_layouts[] = {
    {WGF_ENERGY, 1, VT_END(wgf_energy_vt, wgrad_vjp)},
    {WGF_ENERGY, 2, VT_END(wgf_energy_vt, stiffness)},
    {WGF_MAP, 1, VT_END(wgf_map_vt, gaussian_push)},
    {WGF_MAP, 2, VT_END(wgf_map_vt, vjp_many)},
    {WGF_MAP, 3, VT_END(wgf_map_vt, gram_blocks)},
    {WGF_METRIC, 1, VT_END(wgf_metric_vt, solve)},
    {WGF_METRIC, 3, VT_END(wgf_metric_vt, blocks)},
    {WGF_SCHEME, 1, VT_END(wgf_scheme_vt, run)},
    {WGF_SCHEME, 2, VT_END(wgf_scheme_vt, needs)},
    {WGF_REFERENCE, 2, VT_END(wgf_reference_vt, summary_extra)},
};

size_t wgf_registry_vtable_size(wgf_kind kind, unsigned version)
{
    size_t size = 0;
    unsigned best = 0;
    for (size_t i = 0; i < sizeof vt_layouts / sizeof vt_layouts[0]; i++) {
        const struct vt_layout *l = &vt_layouts[i];
        if (l->kind == kind && l->since <= version && l->since > best) {
            best = l->since;
            size = l->size;
        }
    }
    return version <= WGF_ABI_VERSION ? size : 0;
}

/* The kind exists in ABI version (a long: a descriptor's kind may hold anything). */
static int kind_valid(long k, unsigned version)
{
    return k > 0 && k <= 0xffff && wgf_registry_vtable_size((wgf_kind)k, version) > 0;
}

/* "an energy", "a map": for the wrong-kind message. */
static const char *kind_article(wgf_kind k)
{
    return k == WGF_ENERGY ? "an" : "a";
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* ------------------------------------------------------------ the search path */

/* Append the directory s[0..len), without trailing slashes. An empty component is ignored, and so
 * is a directory already on the path: searching it twice finds nothing new and would report every
 * plugin in it as shadowed by itself. A directory that does not exist is kept, so that a not-found
 * message says where it looked. */
static int add_dir(wgf_registry *reg, const char *s, size_t len)
{
    while (len > 1 && s[len - 1] == '/')
        len--;
    if (len == 0)
        return WGF_OK;
    for (size_t i = 0; i < reg->ndirs; i++)
        if (strlen(reg->dirs[i]) == len && memcmp(reg->dirs[i], s, len) == 0)
            return WGF_OK;
    if (reg->ndirs == reg->capdirs) {
        size_t cap = reg->capdirs ? 2 * reg->capdirs : 8;
        char **d = realloc(reg->dirs, cap * sizeof *d);
        if (!d)
            return WGF_ENOMEM;
        reg->dirs = d;
        reg->capdirs = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return WGF_ENOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    reg->dirs[reg->ndirs++] = copy;
    return WGF_OK;
}

/* Append every directory of a ':'-separated list (NULL: none). */
static int add_path_list(wgf_registry *reg, const char *list)
{
    if (!list)
        return WGF_OK;
    for (;;) {
        const char *colon = strchr(list, ':');
        size_t len = colon ? (size_t)(colon - list) : strlen(list);
        int rc = add_dir(reg, list, len);
        if (rc != WGF_OK || !colon)
            return rc;
        list = colon + 1;
    }
}

/* The file of the libwgf this code runs from (NULL in *lib when the loader cannot say: then the
 * library is taken as installed). */
static int self_lib(char **lib)
{
    *lib = NULL;
    Dl_info info;
    if (!dladdr((void *)(uintptr_t)&wgf_registry_create, &info) || !info.dli_fname)
        return WGF_OK;
    char *real = realpath(info.dli_fname, NULL);
    if (!real)
        return errno == ENOMEM ? WGF_ENOMEM : WGF_OK;
    *lib = real;
    return WGF_OK;
}

/* 1 when path lies inside directory dir. */
static int path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return n > 0 && strncmp(path, dir, n) == 0 && (path[n] == '/' || (n == 1 && dir[0] == '/'));
}

/* wgf runs uninstalled when this libwgf is the one libtool built in the build tree's core/.libs:
 * the build tree's programs (the command, the tests) load it from there, and an installed wgf,
 * even one installed under the build tree (./quickstart test's build/_prefix), loads its own
 * copy from libdir. Where the program file lies does not decide it. */
static int running_uninstalled(int *yes)
{
    *yes = 0;
    if (WGF_BUILDDIR[0] == '\0')
        return WGF_OK;
    char *lib;
    int rc = self_lib(&lib);
    if (rc != WGF_OK || !lib)
        return rc;
    char *libs = realpath(WGF_BUILDDIR "/core/.libs", NULL);
    if (libs) {
        *yes = path_under(lib, libs);
        free(libs);
    } else if (errno == ENOMEM) {
        rc = WGF_ENOMEM;
    }
    free(lib);
    return rc;
}

static int add_build_tree(wgf_registry *reg)
{
    static const char *const sub[] = {"energies/.libs", "maps/.libs", "metrics/.libs", "schemes/.libs",
                                       "references/.libs"};
    int yes, rc = running_uninstalled(&yes);
    if (rc != WGF_OK || !yes)
        return rc;
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        char *dir = wgf_path_join(WGF_BUILDDIR "/plugins", sub[i]);
        if (!dir)
            return WGF_ENOMEM;
        rc = add_dir(reg, dir, strlen(dir));
        free(dir);
        if (rc != WGF_OK)
            return rc;
    }
    return WGF_OK;
}

static int registry_new(wgf_registry **reg, wgf_error *err)
{
    /* GSL's default handler aborts the process: plugins get GSL's status codes instead
     * (wgf_error_gsl). Every way into plugins (a run, a check, a self-test) loads them here. */
    gsl_set_error_handler_off();
    *reg = calloc(1, sizeof **reg);
    if (!*reg)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory creating the plugin registry");
    (*reg)->nown = (size_t)-1;
    return WGF_OK;
}

int wgf_registry_create(wgf_registry **reg, const char *cli_path, const char *ini_path, wgf_error *err)
{
    int rc = registry_new(reg, err);
    if (rc != WGF_OK)
        return rc;
    rc = add_path_list(*reg, cli_path);
    if (rc == WGF_OK)
        rc = add_path_list(*reg, ini_path);
    if (rc == WGF_OK)
        rc = add_path_list(*reg, getenv("WGF_PLUGIN_PATH"));
    if (rc == WGF_OK)
        rc = add_build_tree(*reg);
    if (rc == WGF_OK)
        rc = add_dir(*reg, WGF_PKGLIBDIR, strlen(WGF_PKGLIBDIR));
    if (rc != WGF_OK) {
        wgf_registry_free(*reg);
        *reg = NULL;
        return wgf_error_set(err, rc, "out of memory building the plugin search path");
    }
    return WGF_OK;
}

int wgf_registry_append(wgf_registry *reg, const char *path, wgf_error *err)
{
    if (reg->nown == (size_t)-1)
        reg->nown = reg->ndirs;
    if (add_path_list(reg, path) != WGF_OK)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory building the plugin search path");
    return WGF_OK;
}

int wgf_registry_create_path(wgf_registry **reg, const char *path, wgf_error *err)
{
    int rc = registry_new(reg, err);
    if (rc != WGF_OK)
        return rc;
    if (add_path_list(*reg, path) != WGF_OK) {
        wgf_registry_free(*reg);
        *reg = NULL;
        return wgf_error_set(err, WGF_ENOMEM, "out of memory building the plugin search path");
    }
    return WGF_OK;
}

void wgf_registry_free(wgf_registry *reg)
{
    if (!reg)
        return;
    /* Last loaded first: a later file may use an earlier one. */
    for (size_t i = reg->nlibs; i-- > 0;) {
        wgf_lib *lib = reg->libs[i];
        for (size_t j = 0; j < lib->nloaded; j++) {
            if (lib->loaded[j])
                free(lib->loaded[j]->vtable);
            free(lib->loaded[j]);
        }
        free(lib->loaded);
        dlclose(lib->handle);
        free(lib->path);
        free(lib);
    }
    free(reg->libs);
    for (size_t i = 0; i < reg->ndirs; i++)
        free(reg->dirs[i]);
    free(reg->dirs);
    free(reg);
}

size_t wgf_registry_ndirs(const wgf_registry *reg)
{
    return reg ? reg->ndirs : 0;
}

const char *wgf_registry_dir(const wgf_registry *reg, size_t i)
{
    return reg && i < reg->ndirs ? reg->dirs[i] : NULL;
}

/* ------------------------------------------------------------ loading */

/* dlopen path (once per registry) and find its entry point. WGF_EPLUGIN when it will not load or
 * has no entry point, WGF_ENOMEM on allocation failure; *lib is set in every other case. */
static int registry_load(wgf_registry *reg, const char *path, wgf_lib **lib, wgf_error *err)
{
    *lib = NULL;
    wgf_lib *found = NULL;
    for (size_t i = 0; i < reg->nlibs && !found; i++)
        if (strcmp(reg->libs[i]->path, path) == 0)
            found = reg->libs[i];
    if (!found) {
        if (reg->nlibs == reg->caplibs) {
            size_t cap = reg->caplibs ? 2 * reg->caplibs : 8;
            wgf_lib **l = realloc(reg->libs, cap * sizeof *l);
            if (!l)
                return wgf_error_set(err, WGF_ENOMEM, "out of memory loading %s", path);
            reg->libs = l;
            reg->caplibs = cap;
        }
        found = calloc(1, sizeof *found);
        if (found)
            found->path = strdup(path);
        if (!found || !found->path) {
            free(found);
            return wgf_error_set(err, WGF_ENOMEM, "out of memory loading %s", path);
        }
        dlerror(); /* clear a stale message */
        found->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!found->handle) {
            const char *why = dlerror();
            wgf_error_set(err, WGF_EPLUGIN, "cannot load %s: %s", path, why ? why : "unknown error");
            free(found->path);
            free(found);
            return WGF_EPLUGIN;
        }
        /* ISO C has no conversion from an object pointer to a function pointer; POSIX guarantees
         * that the bytes of dlsym's result are the function's address. */
        void *sym = dlsym(found->handle, WGF_PLUGIN_ENTRY);
        _Static_assert(sizeof sym == sizeof found->entry, "dlsym result fits a function pointer");
        memcpy(&found->entry, &sym, sizeof sym);
        reg->libs[reg->nlibs++] = found;
    }
    if (!found->entry)
        return wgf_error_set(err, WGF_EPLUGIN, "%s is not a wgf plugin: no symbol %s", path,
                             WGF_PLUGIN_ENTRY);
    *lib = found;
    return WGF_OK;
}

/* ------------------------------------------------------------ descriptors */

/* The version is the first field of every ABI's descriptor; nothing else of a descriptor of a
 * newer version can be trusted, so this check comes before any other read. Older versions load
 * (plugin.h: the growth rules). */
static int check_abi(const wgf_plugin *p, const char *path, wgf_error *err)
{
    if (p->abi_version > WGF_ABI_VERSION)
        return wgf_error_set(err, WGF_EPLUGIN,
                             "%s: built for plugin ABI %u, newer than this wgf's ABI %u: update wgf, "
                             "or rebuild the plugin against this wgf",
                             path, p->abi_version, WGF_ABI_VERSION);
    if (p->abi_version == 0)
        return wgf_error_set(err, WGF_EPLUGIN,
                             "%s: malformed plugin: abi_version is 0 (set it to WGF_ABI_VERSION)", path);
    return WGF_OK;
}

/* Descriptor i of lib as the core uses it (NULL in *plugin past the last one): ABI checked, and
 * the vtable copied into the current layout with the members its ABI lacks NULL. */
static int lib_plugin(wgf_lib *lib, unsigned i, const wgf_plugin **plugin, wgf_error *err)
{
    *plugin = NULL;
    if (i < lib->nloaded && lib->loaded[i]) {
        *plugin = &lib->loaded[i]->desc;
        return WGF_OK;
    }
    const wgf_plugin *p = lib->entry(i);
    if (!p)
        return WGF_OK;
    int rc = check_abi(p, lib->path, err);
    if (rc != WGF_OK)
        return rc;
    if (i >= lib->nloaded) {
        wgf_loaded **l = realloc(lib->loaded, ((size_t)i + 1) * sizeof *l);
        if (!l)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory loading %s", lib->path);
        for (size_t j = lib->nloaded; j <= i; j++)
            l[j] = NULL;
        lib->loaded = l;
        lib->nloaded = (size_t)i + 1;
    }
    wgf_loaded *c = calloc(1, sizeof *c);
    if (!c)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory loading %s", lib->path);
    c->desc = *p;
    /* An unknown kind or a missing vtable is left for check_descriptor to report. */
    if (p->vtable && kind_valid((long)p->kind, p->abi_version)) {
        size_t have = wgf_registry_vtable_size(p->kind, p->abi_version);
        size_t now = wgf_registry_vtable_size(p->kind, WGF_ABI_VERSION);
        c->vtable = calloc(1, now);
        if (!c->vtable) {
            free(c);
            return wgf_error_set(err, WGF_ENOMEM, "out of memory loading %s", lib->path);
        }
        memcpy(c->vtable, p->vtable, have);
        c->desc.vtable = c->vtable;
    }
    lib->loaded[i] = c;
    *plugin = &c->desc;
    return WGF_OK;
}

/* Name of the first mandatory function missing from p's vtable, or NULL. Optional functions
 * (energy needs, wgrad, wgrad_vjp, eval_s; map score, project, gaussian_push, vjp_many; metric
 * solve, velocity; scheme needs) are checked by whoever needs them, with a message saying what needed
 * them. Every member appended to the ABI is optional (plugin.h). */
static const char *missing_function(const wgf_plugin *p)
{
    switch (p->kind) {
    case WGF_ENERGY: {
        const wgf_energy_vt *v = p->vtable;
        return !v->create ? "create" : !v->destroy ? "destroy" : !v->eval ? "eval" : NULL;
    }
    case WGF_MAP: {
        const wgf_map_vt *v = p->vtable;
        return !v->create         ? "create"
               : !v->destroy      ? "destroy"
               : !v->nparams      ? "nparams"
               : !v->nstages      ? "nstages"
               : !v->init         ? "init"
               : !v->check        ? "check"
               : !v->tape_create  ? "tape_create"
               : !v->tape_destroy ? "tape_destroy"
               : !v->forward      ? "forward"
               : !v->jvp          ? "jvp"
               : !v->path_vjp     ? "path_vjp"
                                  : NULL;
    }
    case WGF_METRIC: {
        const wgf_metric_vt *v = p->vtable;
        return !v->create    ? "create"
               : !v->destroy ? "destroy"
               : !v->prepare ? "prepare"
               : !v->apply   ? "apply"
                             : NULL;
    }
    case WGF_SCHEME: {
        const wgf_scheme_vt *v = p->vtable;
        return !v->create ? "create" : !v->destroy ? "destroy" : !v->run ? "run" : NULL;
    }
    case WGF_REFERENCE: {
        const wgf_reference_vt *v = p->vtable;
        return !v->create     ? "create"
               : !v->destroy  ? "destroy"
               : !v->ncolumns ? "ncolumns"
               : !v->column   ? "column"
               : !v->eval     ? "eval"
                              : NULL;
    }
    }
    return NULL;
}

/* The core's keys of the section a plugin of kind k configures (wgf_core_schema). */
static const wgf_param *core_keys(wgf_kind k)
{
    return wgf_core_schema(k == WGF_ENERGY ? "energy" : wgf_kind_name(k));
}

/* One default of a schema, parsed and range-checked as a user's value would be, so that a bad
 * default blames the plugin and not the experiment that left the key out. Vector and matrix
 * defaults depend on the run's dimension and are checked when a section is read. */
static int check_default(const wgf_plugin *p, const wgf_param *k, const char *path, wgf_error *err)
{
    if (!k->def || k->type == WGF_PARAM_VECTOR || k->type == WGF_PARAM_MATRIX)
        return WGF_OK;
    wgf_param one[2] = {*k, {0}};
    one[0].flags &= ~WGF_P_REQUIRED;
    const wgf_param *schemas[2] = {one, NULL};
    wgf_diag diag;
    wgf_diag_init(&diag);
    wgf_config *cfg = NULL;
    wgf_error e;
    int rc = wgf_config_load_string(&cfg, "", path, &diag, &e);
    if (rc != WGF_OK) {
        wgf_diag_free(&diag);
        wgf_config_free(cfg);
        return wgf_error_set(err, WGF_ENOMEM, "out of memory loading %s", path);
    }
    wgf_section *sec = wgf_config_section(cfg, p->name, schemas, 1, &diag);
    if (!sec && diag.n > 0) {
        /* "PATH: NAME.KEY: what is wrong": keep what is wrong */
        const char *msg = diag.msg[0];
        size_t pre = strlen(path) + strlen(p->name) + strlen(k->key) + 5;
        if (strlen(msg) > pre)
            msg += pre;
        rc = wgf_error_set(err, WGF_EPLUGIN,
                           "%s: malformed plugin '%s': the default of its key '%s' is refused: %s", path,
                           p->name, k->key, msg);
    } else if (!sec) {
        rc = wgf_error_set(err, WGF_ENOMEM, "out of memory loading %s", path);
    }
    wgf_section_free(sec);
    wgf_diag_free(&diag);
    wgf_config_free(cfg);
    return rc;
}

/* A schema the core can validate sections against: named keys, none of them the core's own keys
 * of the section (`plugin`, and [metric] tol, maxiter, tikhonov, ...) nor given twice, choices
 * for a choice, a range that is not empty, defaults that are allowed values. */
static int check_schema(const wgf_plugin *p, const char *path, wgf_error *err)
{
    const wgf_param *core = core_keys(p->kind);
    for (const wgf_param *k = p->params; k && k->key; k++) {
        const char *bad = NULL;
        if (!k->key[0])
            bad = "a key with an empty name";
        else if (k->type < WGF_PARAM_INT || k->type > WGF_PARAM_MATRIX)
            bad = "a key of no known type";
        else if (k->type == WGF_PARAM_CHOICE && (!k->choices || !k->choices[0]))
            bad = "a choice without choices";
        else if ((k->flags & WGF_P_MIN) && (k->flags & WGF_P_MAX) && k->min > k->max)
            bad = "a range whose min exceeds its max";
        if (bad)
            return wgf_error_set(err, WGF_EPLUGIN, "%s: malformed plugin '%s': its key '%s' is %s", path,
                                 p->name, k->key, bad);
        for (const wgf_param *c = core; c && c->key; c++)
            if (strcmp(c->key, k->key) == 0)
                return wgf_error_set(err, WGF_EPLUGIN,
                                     "%s: malformed plugin '%s': its schema declares '%s', a key the "
                                     "core adds to [%s] itself (remove it from the schema)",
                                     path, p->name, k->key, wgf_kind_name(p->kind));
        for (const wgf_param *j = p->params; j < k; j++)
            if (strcmp(j->key, k->key) == 0)
                return wgf_error_set(err, WGF_EPLUGIN,
                                     "%s: malformed plugin '%s': its schema declares '%s' twice", path,
                                     p->name, k->key);
        int rc = check_default(p, k, path, err);
        if (rc != WGF_OK)
            return rc;
    }
    return WGF_OK;
}

/* Everything the core relies on before calling into a plugin (ABI already checked). */
static int check_descriptor(const wgf_plugin *p, unsigned index, const char *path, wgf_error *err)
{
    if (!p->name || !p->name[0])
        return wgf_error_set(err, WGF_EPLUGIN, "%s: malformed plugin: descriptor %u has no name", path,
                             index);
    if (!kind_valid((long)p->kind, p->abi_version))
        return wgf_error_set(err, WGF_EPLUGIN,
                             "%s: malformed plugin '%s': kind %ld is none of energy (1), map (2), "
                             "metric (3), scheme (4), reference (5)",
                             path, p->name, (long)p->kind);
    if (!p->vtable)
        return wgf_error_set(err, WGF_EPLUGIN, "%s: malformed plugin '%s': no vtable", path, p->name);
    const char *fn = missing_function(p);
    if (fn)
        return wgf_error_set(err, WGF_EPLUGIN,
                             "%s: malformed plugin '%s': its %s vtable has no %s function", path,
                             p->name, wgf_kind_name(p->kind), fn);
    return check_schema(p, path, err);
}

/* ------------------------------------------------------------ directories */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The *.so entries of dir, sorted by name so that listings do not depend on the file system's
 * order. A directory that cannot be opened gives no names, with its errno in *dir_errno. */
static int so_files(const char *dir, char ***names, size_t *n, int *dir_errno)
{
    *names = NULL;
    *n = 0;
    *dir_errno = 0;
    DIR *d = opendir(dir);
    if (!d) {
        *dir_errno = errno;
        return WGF_OK;
    }
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!has_suffix(e->d_name, ".so"))
            continue;
        if (*n == cap) {
            size_t c = cap ? 2 * cap : 16;
            char **l = realloc(*names, c * sizeof *l);
            if (!l)
                goto nomem;
            *names = l;
            cap = c;
        }
        if (!((*names)[*n] = strdup(e->d_name)))
            goto nomem;
        (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(*names, *n, sizeof **names, cmp_names);
    return WGF_OK;
nomem:
    closedir(d);
    free_names(*names, *n);
    *names = NULL;
    *n = 0;
    return WGF_ENOMEM;
}

/* A regular file (or a link to one) at path; directories named x.so are not plugins. */
static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* ------------------------------------------------------------ find */

/* The closest file name on the path, within a couple of typos (NULL: none). A name written with
 * its .so suffix is compared without it. Ties go to the first directory, then to the first name
 * in it. Names only: loading a file to learn its kind would run its constructors, and a failed
 * look-up must not run code from every similarly named file on the path. */
static int suggest(wgf_registry *reg, const char *name, char **best)
{
    *best = NULL;
    size_t nn = strlen(name);
    if (has_suffix(name, ".so"))
        nn -= 3;
    size_t maxd = nn <= 3 ? 1 : 2, bestd = maxd + 1;
    for (size_t i = 0; i < reg->ndirs; i++) {
        char **files;
        size_t nfiles;
        int dir_errno;
        int rc = so_files(reg->dirs[i], &files, &nfiles, &dir_errno);
        if (rc != WGF_OK)
            return rc;
        for (size_t j = 0; j < nfiles && rc == WGF_OK; j++) {
            size_t ns = strlen(files[j]) - 3, dist;
            if ((ns > nn ? ns - nn : nn - ns) >= bestd)
                continue;
            dist = wgf_edit_distance(name, nn, files[j], ns, 0);
            if (dist == SIZE_MAX)
                rc = WGF_ENOMEM;
            if (rc != WGF_OK || dist >= bestd)
                continue;
            char *path = wgf_path_join(reg->dirs[i], files[j]);
            if (!path) {
                rc = WGF_ENOMEM;
                continue;
            }
            files[j][ns] = '\0';
            if (is_file(path)) {
                free(*best);
                *best = strdup(files[j]);
                bestd = dist;
                if (!*best)
                    rc = WGF_ENOMEM;
            }
            free(path);
        }
        free_names(files, nfiles);
        if (rc != WGF_OK) {
            free(*best);
            *best = NULL;
            return rc;
        }
    }
    return WGF_OK;
}

static int not_found(wgf_registry *reg, wgf_kind kind, const char *name, wgf_error *err)
{
    char *hint;
    if (suggest(reg, name, &hint) != WGF_OK)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory looking for plugin '%s'", name);
    wgf_strbuf b = {0};
    wgf_strbuf_printf(&b, "plugin '%s'", name);
    if (kind)
        wgf_strbuf_printf(&b, " (%s)", wgf_kind_name(kind));
    if (reg->ndirs == 0)
        wgf_strbuf_printf(&b, " not found: the plugin search path is empty");
    else
        wgf_strbuf_printf(&b, " not found; looked for %s%s.so in: ", kind == WGF_REFERENCE ? "ref_" : "", name);
    for (size_t i = 0; i < reg->ndirs; i++)
        wgf_strbuf_printf(&b, "%s%s", i ? ", " : "", reg->dirs[i]);
    if (hint)
        wgf_strbuf_printf(&b, "; did you mean '%s'?", hint);
    free(hint);
    int rc = b.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory looking for plugin '%s'", name)
                      : wgf_error_set(err, WGF_EPLUGIN, "%s", b.s);
    free(b.s);
    return rc;
}

/* The file exists and loads but has no descriptor with that name: say what it holds. */
static int not_in_file(wgf_lib *lib, const char *name, wgf_error *err)
{
    wgf_strbuf b = {0};
    wgf_strbuf_printf(&b, "%s holds no plugin named '%s'", lib->path, name);
    unsigned i = 0;
    for (const wgf_plugin *p; (p = lib->entry(i)) != NULL; i++)
        wgf_strbuf_printf(&b, "%s%s (%s)", i ? ", " : "; it holds: ", p->name, wgf_kind_name(p->kind));
    if (i == 0)
        wgf_strbuf_printf(&b, "; it holds no plugins");
    int rc = b.failed ? wgf_error_set(err, WGF_ENOMEM, "out of memory looking for plugin '%s'", name)
                      : wgf_error_set(err, WGF_EPLUGIN, "%s", b.s);
    free(b.s);
    return rc;
}

int wgf_registry_find(wgf_registry *reg, wgf_kind kind, const char *name, const wgf_plugin **plugin,
                      const char **path, wgf_error *err)
{
    if (plugin)
        *plugin = NULL;
    if (path)
        *path = NULL;
    if (!reg || !name || !plugin)
        return wgf_error_set(err, WGF_EINVAL,
                             "wgf_registry_find: registry, name and plugin are required");
    if (kind != 0 && !kind_valid((long)kind, WGF_ABI_VERSION))
        return wgf_error_set(err, WGF_EINVAL, "wgf_registry_find: %ld is not a plugin kind", (long)kind);
    if (!name[0] || strchr(name, '/'))
        return wgf_error_set(err, WGF_EPLUGIN,
                             "invalid plugin name '%s': a plugin is named by its file name without "
                             "directory or .so",
                             name);

    /* A reference is named after the equation it solves, often an energy's
     * name (aggregation): its file is ref_NAME.so, so that both install side
     * by side. Any kind: NAME.so first, then ref_NAME.so. */
    char *file = NULL;
    const char *const prefixes[2] = {kind == WGF_REFERENCE ? "ref_" : "", kind == 0 ? "ref_" : NULL};
    for (size_t k = 0; k < 2 && prefixes[k] && !file; k++) {
        for (size_t i = 0; i < reg->ndirs && !file; i++) {
            size_t n = strlen(reg->dirs[i]) + strlen(prefixes[k]) + strlen(name) + 5;
            file = malloc(n);
            if (!file)
                return wgf_error_set(err, WGF_ENOMEM, "out of memory looking for plugin '%s'", name);
            snprintf(file, n, "%s/%s%s.so", reg->dirs[i], prefixes[k], name);
            if (!is_file(file)) {
                free(file);
                file = NULL;
            }
        }
    }
    if (!file)
        return not_found(reg, kind, name, err);

    wgf_lib *lib;
    int rc = registry_load(reg, file, &lib, err);
    free(file);
    if (rc != WGF_OK)
        return rc;

    /* A descriptor of another kind with this name is an error only when no descriptor of the
     * right kind follows; a nameless one is reported only when nothing matched at all. One with
     * this name and no valid kind is malformed whatever was asked for. */
    const wgf_plugin *other_kind = NULL, *nameless = NULL;
    unsigned other_index = 0, nameless_index = 0;
    for (unsigned i = 0;; i++) {
        const wgf_plugin *p;
        if ((rc = lib_plugin(lib, i, &p, err)) != WGF_OK)
            return rc;
        if (!p)
            break;
        if (!p->name) {
            if (!nameless) {
                nameless = p;
                nameless_index = i;
            }
            continue;
        }
        if (strcmp(p->name, name) != 0)
            continue;
        if (kind == 0 || p->kind == kind || !kind_valid((long)p->kind, p->abi_version)) {
            if ((rc = check_descriptor(p, i, lib->path, err)) != WGF_OK)
                return rc;
            *plugin = p;
            if (path)
                *path = lib->path;
            return WGF_OK;
        }
        if (!other_kind) {
            other_kind = p;
            other_index = i;
        }
    }
    if (other_kind) {
        if ((rc = check_descriptor(other_kind, other_index, lib->path, err)) != WGF_OK)
            return rc;
        return wgf_error_set(err, WGF_EPLUGIN, "plugin '%s' (%s) is %s %s, not %s %s", name, lib->path,
                             kind_article(other_kind->kind), wgf_kind_name(other_kind->kind),
                             kind_article(kind), wgf_kind_name(kind));
    }
    if (nameless)
        return check_descriptor(nameless, nameless_index, lib->path, err);
    return not_in_file(lib, name, err);
}

/* ------------------------------------------------------------ list */

typedef struct seen_plugin {
    const char *name, *path; /* owned by the loaded file and the registry */
    wgf_kind kind;           /* a reference may share its energy's name */
} seen_plugin;

static void warn_line(wgf_diag *warn, const char *msg)
{
    if (warn)
        wgf_diag_add(warn, "%s", msg);
}

/* Visit every valid plugin of the file at path that is not shadowed by one seen before. */
static int list_file(wgf_registry *reg, const char *path, seen_plugin **seen, size_t *nseen,
                     size_t *capseen, wgf_registry_visit_fn visit, void *user, wgf_diag *warn,
                     wgf_error *err)
{
    wgf_lib *lib;
    wgf_error why;
    int rc = registry_load(reg, path, &lib, &why);
    if (rc == WGF_ENOMEM)
        return wgf_error_set(err, rc, "%s", why.msg);
    if (rc != WGF_OK) {
        warn_line(warn, why.msg);
        return WGF_OK;
    }
    for (unsigned i = 0;; i++) {
        const wgf_plugin *p;
        rc = lib_plugin(lib, i, &p, &why);
        if (rc == WGF_ENOMEM)
            return wgf_error_set(err, rc, "%s", why.msg);
        if (rc != WGF_OK) {
            warn_line(warn, why.msg);
            break;
        }
        if (!p)
            break;
        if (check_descriptor(p, i, lib->path, &why) != WGF_OK) {
            warn_line(warn, why.msg);
            continue;
        }
        const seen_plugin *first = NULL;
        for (size_t k = 0; k < *nseen && !first; k++)
            if (strcmp((*seen)[k].name, p->name) == 0 && (*seen)[k].kind == p->kind)
                first = &(*seen)[k];
        if (first) {
            if (warn) {
                if (first->path == lib->path)
                    wgf_diag_add(warn, "plugin '%s' appears twice in %s; only the first is used",
                                 p->name, lib->path);
                else
                    wgf_diag_add(warn, "plugin '%s' in %s is shadowed by %s", p->name, lib->path,
                                 first->path);
            }
            continue;
        }
        if (*nseen == *capseen) {
            size_t cap = *capseen ? 2 * *capseen : 16;
            seen_plugin *s = realloc(*seen, cap * sizeof *s);
            if (!s)
                return wgf_error_set(err, WGF_ENOMEM, "out of memory listing plugins");
            *seen = s;
            *capseen = cap;
        }
        (*seen)[(*nseen)++] = (seen_plugin){p->name, lib->path, p->kind};
        if (visit)
            visit(p, lib->path, user);
    }
    return WGF_OK;
}

static int registry_list(wgf_registry *reg, size_t ndirs, const char *prefix, wgf_registry_visit_fn visit,
                         void *user, wgf_diag *warn, wgf_error *err)
{
    if (!reg)
        return wgf_error_set(err, WGF_EINVAL, "wgf_registry_list: no registry");
    seen_plugin *seen = NULL;
    size_t nseen = 0, capseen = 0;
    int rc = WGF_OK;
    for (size_t i = 0; i < ndirs && rc == WGF_OK; i++) {
        char **files;
        size_t nfiles;
        int dir_errno;
        if (so_files(reg->dirs[i], &files, &nfiles, &dir_errno) != WGF_OK) {
            rc = wgf_error_set(err, WGF_ENOMEM, "out of memory listing plugins in %s", reg->dirs[i]);
            break;
        }
        /* A directory that does not exist is normal (the build tree of an installed program, an
         * optional directory); one that exists but cannot be read deserves a word. */
        if (dir_errno && dir_errno != ENOENT && warn)
            wgf_diag_add(warn, "cannot read plugin directory %s: %s", reg->dirs[i], strerror(dir_errno));
        for (size_t j = 0; j < nfiles && rc == WGF_OK; j++) {
            if (prefix && strncmp(files[j], prefix, strlen(prefix)) != 0)
                continue;
            char *path = wgf_path_join(reg->dirs[i], files[j]);
            if (!path)
                rc = wgf_error_set(err, WGF_ENOMEM, "out of memory listing plugins in %s", reg->dirs[i]);
            else if (is_file(path))
                rc = list_file(reg, path, &seen, &nseen, &capseen, visit, user, warn, err);
            free(path);
        }
        free_names(files, nfiles);
    }
    free(seen);
    return rc;
}

int wgf_registry_list(wgf_registry *reg, wgf_registry_visit_fn visit, void *user, wgf_diag *warn,
                      wgf_error *err)
{
    return registry_list(reg, reg ? reg->ndirs : 0, NULL, visit, user, warn, err);
}

int wgf_registry_list_own(wgf_registry *reg, const char *prefix, wgf_registry_visit_fn visit, void *user,
                          wgf_diag *warn, wgf_error *err)
{
    size_t n = reg && reg->nown != (size_t)-1 ? reg->nown : reg ? reg->ndirs : 0;
    return registry_list(reg, n, prefix, visit, user, warn, err);
}
