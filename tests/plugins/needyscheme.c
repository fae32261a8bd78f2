/* needyscheme.c: a scheme that declares what its `needs` key lists (scores, stages, wgrad,
 * wgrad_vjp, space-separated), for the configuration-time checks of scheme needs. Its run only
 * reports the initial state. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>
#include <wgf/problem.h>

static int ns_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    unsigned *needs = malloc(sizeof *needs);
    if (!needs)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    const char *s = wgf_section_string(sec, "needs");
    *needs = (strstr(s, "scores") ? WGF_SCHEME_NEEDS_SCORES : 0u) |
             (strstr(s, "stages") ? WGF_SCHEME_NEEDS_STAGES : 0u) |
             (strstr(s, "wgrad") ? WGF_SCHEME_NEEDS_WGRAD : 0u) |
             (strstr(s, "wgrad_vjp") ? WGF_SCHEME_NEEDS_WGRAD_VJP : 0u);
    *state = needs;
    return WGF_OK;
}

static void ns_destroy(void *state) { free(state); }
static unsigned ns_needs(void *state) { return *(unsigned *)state; }

static int ns_run(void *state, wgf_problem *p, wgf_error *err)
{
    (void)state;
    wgf_step_info info = {.step = 0, .t = 0, .energy = NAN, .dissipation = NAN, .step_norm = NAN};
    return wgf_problem_observe(p, &info, err);
}

static const wgf_scheme_vt ns_vt = {
    .create = ns_create, .destroy = ns_destroy, .run = ns_run, .needs = ns_needs};

static const wgf_param ns_params[] = {
    {"needs", WGF_PARAM_STRING, "", 0, 0, 0, NULL, "scores stages wgrad wgrad_vjp"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin ns_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "needyscheme",
    .summary = "test scheme declaring needs",
    .params = ns_params,
    .vtable = &ns_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &ns_plugin : NULL; }
