/* plugins/energies/fpe.c: not written yet. */
#include <wgf/plugin.h>
WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { (void)index; return NULL; }
