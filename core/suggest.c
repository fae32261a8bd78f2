/* suggest.c: the edit distance behind every "did you mean" (suggest.h). Three
 * rows of the dynamic programme, so that long names cost O(n) memory. A leaf:
 * it calls no other core file. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>

#include "suggest.h"

static int fold(char c, int fold_case) { return fold_case ? tolower((unsigned char)c) : (unsigned char)c; }

size_t wgf_edit_distance(const char *a, size_t na, const char *b, size_t nb, int fold_case)
{
    size_t *rows = malloc(3 * (nb + 1) * sizeof *rows);
    if (!rows)
        return SIZE_MAX;
    size_t *pp = rows, *p = rows + nb + 1, *c = rows + 2 * (nb + 1);
    for (size_t j = 0; j <= nb; j++)
        p[j] = j;
    for (size_t i = 1; i <= na; i++) {
        c[0] = i;
        int ca = fold(a[i - 1], fold_case);
        for (size_t j = 1; j <= nb; j++) {
            int cb = fold(b[j - 1], fold_case);
            size_t v = p[j - 1] + (ca != cb);
            if (p[j] + 1 < v)
                v = p[j] + 1;
            if (c[j - 1] + 1 < v)
                v = c[j - 1] + 1;
            if (i > 1 && j > 1 && ca == fold(b[j - 2], fold_case) && fold(a[i - 2], fold_case) == cb &&
                pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            c[j] = v;
        }
        size_t *t = pp;
        pp = p;
        p = c;
        c = t;
    }
    size_t d = p[nb];
    free(rows);
    return d;
}
