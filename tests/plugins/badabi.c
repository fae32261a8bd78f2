/* badabi.c: broken plugins for the loader's checks.
 *
 * The file's last descriptor was built for the next plugin ABI: the loader must refuse it before
 * reading anything but abi_version (its vtable is NULL on purpose, so that a loader validating
 * first would report the wrong problem). Before it come descriptors of this ABI that are
 * malformed in one way each; tests reach them by name through links named after them. */
#include <wgf/plugin.h>

static int stub_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec;
    (void)info;
    *state = NULL;
    /* Not linked against libwgf (nor is noentry.so): no wgf_error_set here. Never called. */
    if (err) {
        err->code = WGF_EUNSUP;
        err->msg[0] = '\0';
    }
    return WGF_EUNSUP;
}

static void stub_destroy(void *state)
{
    (void)state;
}

/* An energy without eval, its one mandatory computation. */
static const wgf_energy_vt noeval_vt = {.create = stub_create, .destroy = stub_destroy};

static const wgf_plugin plugins[] = {
    {.abi_version = WGF_ABI_VERSION, .kind = WGF_ENERGY, .name = NULL, .summary = "no name",
     .vtable = &noeval_vt},
    {.abi_version = WGF_ABI_VERSION, .kind = (wgf_kind)9, .name = "badkind", .summary = "kind 9",
     .vtable = &noeval_vt},
    {.abi_version = WGF_ABI_VERSION, .kind = WGF_MAP, .name = "novtable", .summary = "no vtable",
     .vtable = NULL},
    {.abi_version = WGF_ABI_VERSION, .kind = WGF_ENERGY, .name = "noeval", .summary = "no eval",
     .vtable = &noeval_vt},
    {.abi_version = WGF_ABI_VERSION + 1, .kind = WGF_ENERGY, .name = "badabi",
     .summary = "built for the next ABI", .vtable = NULL},
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index < sizeof plugins / sizeof plugins[0] ? &plugins[index] : NULL;
}
