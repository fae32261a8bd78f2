/* badschema.c: plugins whose vtables are complete but whose schemas the loader must refuse, one
 * mistake each; tests reach them by name through links named after them. Never created. */
#include <wgf/plugin.h>

static int stub_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec;
    (void)info;
    (void)err;
    *state = NULL;
    return WGF_EUNSUP;
}

static void stub_destroy(void *state)
{
    (void)state;
}

static int stub_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    (void)state;
    (void)b;
    (void)F;
    (void)a;
    (void)c;
    (void)err;
    return WGF_EUNSUP;
}

static int stub_prepare(void *state, wgf_eval *ev, wgf_error *err)
{
    (void)state;
    (void)ev;
    (void)err;
    return WGF_EUNSUP;
}

static int stub_apply(void *state, const double *v, double *out, wgf_error *err)
{
    (void)state;
    (void)v;
    (void)out;
    (void)err;
    return WGF_EUNSUP;
}

static const wgf_energy_vt energy_vt = {.create = stub_create, .destroy = stub_destroy, .eval = stub_eval};
static const wgf_metric_vt metric_vt = {
    .create = stub_create, .destroy = stub_destroy, .prepare = stub_prepare, .apply = stub_apply};

static const wgf_param pluginkey_params[] = {
    {.key = "scale", .type = WGF_PARAM_DOUBLE, .def = "1", .doc = "a good key"},
    {.key = "plugin", .type = WGF_PARAM_STRING, .doc = "the core's own key"},
    {0}};
static const wgf_param tikhonov_params[] = {
    {.key = "tikhonov", .type = WGF_PARAM_DOUBLE, .def = "0", .doc = "a key the core adds to [metric]"},
    {0}};
static const wgf_param baddefault_params[] = {
    {.key = "m", .type = WGF_PARAM_DOUBLE, .def = "1.o", .doc = "a default that is no number"},
    {0}};
static const wgf_param badrange_params[] = {
    {.key = "layers", .type = WGF_PARAM_INT, .def = "0", .flags = WGF_P_MIN, .min = 1,
     .doc = "a default out of its range"},
    {0}};
static const wgf_param badchoice_params[] = {
    {.key = "kind", .type = WGF_PARAM_CHOICE, .def = "c", .choices = "a|b", .doc = "a default not a choice"},
    {0}};
static const wgf_param twice_params[] = {
    {.key = "a", .type = WGF_PARAM_INT, .def = "1", .doc = "once"},
    {.key = "a", .type = WGF_PARAM_INT, .def = "2", .doc = "twice"},
    {0}};

#define ENERGY(n, p)                                                                                \
    {.abi_version = WGF_ABI_VERSION, .kind = WGF_ENERGY, .name = n, .summary = n, .params = p,      \
     .vtable = &energy_vt}
static const wgf_plugin plugins[] = {
    ENERGY("pluginkey", pluginkey_params),
    {.abi_version = WGF_ABI_VERSION, .kind = WGF_METRIC, .name = "tikhonovkey", .summary = "tikhonovkey",
     .params = tikhonov_params, .vtable = &metric_vt},
    ENERGY("baddefault", baddefault_params),
    ENERGY("badrange", badrange_params),
    ENERGY("badchoice", badchoice_params),
    ENERGY("twice", twice_params),
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index < sizeof plugins / sizeof plugins[0] ? &plugins[index] : NULL;
}
