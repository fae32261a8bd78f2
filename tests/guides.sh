#!/bin/sh
# guides.sh: the installed plugin guides (doc/guide-KIND.md) keep up with the ABI: each names every
# member of its kind's vtable in <wgf/plugin.h>, so a member appended to the ABI fails this test
# until its guide says what it does; and the complete examples the guides hold compile as C11
# with the project's warnings. Run by make check (WGF_SRCDIR, WGF_CC, WGF_HEADER_CFLAGS set there).
set -u
SRC=${WGF_SRCDIR:-.}
CC=${WGF_CC:-cc}
tmp=$(mktemp -d /tmp/wgf-guides-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

for kind in energy map metric scheme reference; do
    guide="$SRC/doc/guide-$kind.md"
    [ -f "$guide" ] || { bad "no $guide"; continue; }
    members=$(awk -v k="$kind" '
        $0 ~ "^typedef struct wgf_" k "_vt \\{" { on = 1; next }
        on && /^\}/ { on = 0 }
        on { while (match($0, /\(\*[a-z_0-9]+\)/)) { print substr($0, RSTART + 2, RLENGTH - 3); $0 = substr($0, RSTART + RLENGTH) } }
    ' "$SRC/core/wgf/plugin.h")
    [ -n "$members" ] || { bad "no members of wgf_${kind}_vt found in plugin.h"; continue; }
    for m in $members; do
        grep -q "\*\*$m(" "$guide" && ok || bad "guide-$kind.md does not describe $m (no '**$m(')"
    done
    # every complete C example in the guide compiles
    awk '/^```c$/ { on = 1; next } /^```$/ { on = 0 } on' "$guide" >"$tmp/$kind.c"
    if [ -s "$tmp/$kind.c" ]; then
        # shellcheck disable=SC2086
        if $CC -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$SRC/core" ${WGF_HEADER_CFLAGS:-} \
            -fsyntax-only "$tmp/$kind.c" >"$tmp/out" 2>&1; then ok; else
            bad "the example in guide-$kind.md does not compile:"; sed 's/^/    /' "$tmp/out"
        fi
    fi
done
echo "guides: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
