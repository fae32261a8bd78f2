/* noentry.c: a valid shared object that is not a wgf plugin: it exports a function, but not
 * wgf_plugin_entry. The loader must refuse it by name, not crash or pick another symbol. */
#include <wgf/plugin.h>

WGF_EXPORT double wgf_test_noentry_answer(void);

double wgf_test_noentry_answer(void)
{
    return 42.0;
}
