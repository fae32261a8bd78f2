/* marker.c: a shared object whose constructor creates the file named by WGF_TEST_MARKER, so a
 * test can tell whether anything loaded it: dlopen runs constructors before any plugin code is
 * asked for. It holds no plugins. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void marker_loaded(void)
{
    const char *path = getenv("WGF_TEST_MARKER");
    if (!path)
        return;
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0)
        close(fd);
}

const void *wgf_plugin_entry(unsigned index);
const void *wgf_plugin_entry(unsigned index)
{
    (void)index;
    return NULL;
}
