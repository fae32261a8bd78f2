/* refcommon.h: small pieces the shipped reference plugins share (not
 * installed; a reference written elsewhere needs only wgf/plugin.h,
 * wgf/problem.h and wgf/reference.h). */
#ifndef REFCOMMON_H
#define REFCOMMON_H

#include <string.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>
#include <wgf/reference.h>

/* A problem this reference does not describe: "FILE:LINE: reference.plugin:
 * what" (or reference.type, when the file names it so). */
static inline int ref_refuse(const wgf_section *sec, wgf_error *err, const char *what)
{
    const char *key = wgf_section_has(sec, "plugin") || !wgf_section_has(sec, "type") ? "plugin" : "type";
    return wgf_section_error(sec, key, err, "%s", what);
}

/* The problem's single energy term when it is plugin with weight 1 (NULL
 * otherwise); its section and live energy in *sec, *vt, *state. */
static inline int ref_single_term(const wgf_problem *p, const char *plugin, const wgf_section **sec,
                                  const wgf_energy_vt **vt, void **state)
{
    const char *name;
    if (wgf_problem_nterms(p) != 1 || wgf_problem_term(p, 0, &name, sec, vt, state) != WGF_OK ||
        strcmp(name, plugin) != 0)
        return 0;
    return !wgf_section_has(*sec, "weight") || wgf_section_double(*sec, "weight") == 1.0;
}

/* needs_samples of a reference that reads the output samples' x alone. */
static inline int ref_samples_x(void *state)
{
    (void)state;
    return WGF_REF_SAMPLES_X;
}

#endif
