/* suggest.h: the edit distance behind every "did you mean" (unknown keys and
 * choices in experiment files, plugin names on the search path). */
#ifndef WGF_SUGGEST_H
#define WGF_SUGGEST_H

#include <stddef.h>

/* Optimal string alignment distance (edits and adjacent transpositions)
 * between a[0..na) and b[0..nb), ignoring ASCII case when fold_case is set.
 * SIZE_MAX when out of memory. */
size_t wgf_edit_distance(const char *a, size_t na, const char *b, size_t nb, int fold_case);

#endif
