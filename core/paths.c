/* paths.c: the [run] keys that name places. name becomes a directory,
 * runs/NAME, so it must be a name and not a path; plugin_path names
 * directories of code that wgf loads and runs, so an experiment file
 * received from someone else must not be able to replace the installed
 * plugins with its own (README.md, wgf(1)). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Why name is not a directory name, or NULL when it is one. */
static const char *bad_run_name(const char *name)
{
    if (!name[0])
        return "it is empty";
    for (const char *c = name; *c; c++) {
        if (*c == '/' || *c == '\\')
            return "it contains a path separator";
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return "it contains a control character";
    }
    if (strstr(name, ".."))
        return "it contains '..'";
    if (name[0] == '.')
        return "it starts with '.'";
    if (name[0] == '-')
        return "it starts with '-'";
    if (strlen(name) > 200)
        return "it is longer than 200 bytes";
    return NULL;
}

static void check_run_name(const wgf_problem *p, wgf_diag *diag)
{
    if (!p->run_sec || !wgf_section_has(p->run_sec, "name"))
        return;
    const char *why = bad_run_name(wgf_section_string(p->run_sec, "name"));
    if (!why)
        return;
    wgf_error e;
    wgf_section_error(p->run_sec, "name", &e,
                      "not a name: %s (a name: no '/', '\\', '..' or control characters, not starting "
                      "with '.' or '-'; choose the output directory with -o DIR)",
                      why);
    wgf_diag_add(diag, "%s", e.msg);
}

int wgf_problem_registry(wgf_problem *p, const wgf_run_opts *opts, const char *ini_path, wgf_diag *diag,
                         wgf_error *err)
{
    check_run_name(p, diag);
    if (ini_path && opts->no_file_plugins) {
        wgf_error e;
        wgf_section_error(p->run_sec, "plugin_path", &e,
                          "plugin directories from the experiment are refused (--no-file-plugins or "
                          "WGF_NO_FILE_PLUGINS): loading a plugin runs its code (allowed: installed "
                          "plugins, --plugin-path, WGF_PLUGIN_PATH)");
        wgf_diag_add(diag, "%s", e.msg);
        ini_path = NULL;
    }
    if (ini_path && opts->trust_plugin_path)
        return wgf_registry_create(&p->reg, opts->plugin_path, ini_path, err);
    int rc = wgf_registry_create(&p->reg, opts->plugin_path, NULL, err);
    if (rc == WGF_OK && ini_path)
        rc = wgf_registry_append(p->reg, ini_path, err);
    return rc;
}
