#!/bin/sh
# headers.sh: every public header <wgf/X.h> compiles on its own, included twice, as C11 with
# the project's warnings as errors: a plugin author includes any one of them first.
# Run by make check (WGF_SRCDIR, WGF_CC and WGF_HEADER_CFLAGS set there).
set -u
SRC=${WGF_SRCDIR:-.}
CC=${WGF_CC:-cc}
tmp=$(mktemp -d /tmp/wgf-headers-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
n=0
for h in "$SRC"/core/wgf/*.h; do
    name=$(basename "$h")
    n=$((n + 1))
    printf '#include <wgf/%s>\n#include <wgf/%s>\nint wgf_header_test(void);\nint wgf_header_test(void) { return 0; }\n' \
        "$name" "$name" >"$tmp/t.c"
    # shellcheck disable=SC2086
    if $CC -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$SRC/core" ${WGF_HEADER_CFLAGS:-} \
        -c "$tmp/t.c" -o "$tmp/t.o" >"$tmp/out" 2>&1; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: <wgf/$name> does not compile on its own:"
        sed 's/^/    /' "$tmp/out"
    fi
done
[ "$n" -gt 0 ] || { echo "FAIL: no headers in $SRC/core/wgf"; exit 1; }
echo "headers: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
