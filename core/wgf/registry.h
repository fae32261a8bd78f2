/* wgf/registry.h: finding and loading plugins.
 *
 * A plugin name resolves to <dir>/<name>.so along the search path, in order:
 * --plugin-path, WGF_PLUGIN_PATH, the build tree (when the command runs
 * uninstalled), the installed pkglibdir, then the experiment's [run]
 * plugin_path (wgf_run puts it second only when told to trust it).
 * --plugin-path, WGF_PLUGIN_PATH and plugin_path may hold several
 * directories separated by ':'. Loading a plugin runs its code. */
#ifndef WGF_REGISTRY_H
#define WGF_REGISTRY_H

#include <stdio.h>
#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wgf_registry wgf_registry;

/* A registry searching, in order: cli_path, ini_path (either may be NULL),
 * then WGF_PLUGIN_PATH, the build tree if running uninstalled, pkglibdir. */
int wgf_registry_create(wgf_registry **reg, const char *cli_path, const char *ini_path, wgf_error *err);
/* Append the directories of path (':'-separated) to the end of the search:
 * how an experiment's plugin_path comes after the installed plugins. */
int wgf_registry_append(wgf_registry *reg, const char *path, wgf_error *err);
/* A registry searching exactly path (':'-separated); for tests. */
int wgf_registry_create_path(wgf_registry **reg, const char *path, wgf_error *err);
void wgf_registry_free(wgf_registry *reg); /* dlcloses what it loaded */

/* The directories searched, in order. */
size_t wgf_registry_ndirs(const wgf_registry *reg);
const char *wgf_registry_dir(const wgf_registry *reg, size_t i);

/* Find plugin `name` of the given kind (0: any kind). On failure err says
 * why: not found (and where it looked), dlopen's message, no entry point,
 * built for a newer ABI, or that the plugin is of another kind. *plugin is
 * the core's copy of the descriptor, its vtable in the current layout (the
 * members a plugin of an older ABI lacks are NULL), owned by the registry;
 * *path (if not NULL) gets the file it came from (owned by the registry). */
int wgf_registry_find(wgf_registry *reg, wgf_kind kind, const char *name, const wgf_plugin **plugin,
                      const char **path, wgf_error *err);

/* Every plugin on the search path, in search order; problems (a .so that
 * will not load, a name found twice) are reported through warn, one line
 * each, and do not stop the listing. */
typedef void (*wgf_registry_visit_fn)(const wgf_plugin *plugin, const char *path, void *user);
int wgf_registry_list(wgf_registry *reg, wgf_registry_visit_fn visit, void *user, wgf_diag *warn,
                      wgf_error *err);

/* The keys the core itself reads in a section of an experiment file: "run",
 * "initial", "energy" (and "energy.NAME"), "map", "metric", "scheme",
 * "output", "reference"; NULL for any other name. A component section's
 * other keys are its plugin's schema. The core adds these keys to the
 * section, so a plugin's schema must not declare them (the loader refuses
 * one that does). */
const wgf_param *wgf_core_schema(const char *section);

/* Bytes of a vtable of kind built against plugin ABI version (0 when the
 * kind did not exist in that version, or the version is newer than this
 * wgf's). The loader copies that much of an older plugin's vtable into one of
 * the current layout (plugin.h, the growth rules). */
size_t wgf_registry_vtable_size(wgf_kind kind, unsigned version);

#ifdef __cplusplus
}
#endif
#endif
