/* path.c: path text, allocated to size (no fixed path buffers): a name in a
 * directory, and a path written in a file (an experiment's data file or
 * plugin directory) taken relative to that file's directory. A leaf: it
 * calls no other core file. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

char *wgf_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

char *wgf_path_beside(const char *file, const char *path, size_t n)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    size_t dir = path[0] == '/' || !slash ? 0 : (size_t)(slash - file) + 1;
    char *out = malloc(dir + n + 1);
    if (!out)
        return NULL;
    if (dir)
        memcpy(out, file, dir);
    memcpy(out + dir, path, n);
    out[dir + n] = '\0';
    return out;
}
