#!/bin/sh
# mathrefs.sh: the section numbers of doc/math.md are an interface. Code,
# headers and documents cite them ("MATH.md 3.3", "MATH.md 6 and 7",
# "doc/math.md section 2"), and doc/math.md cites itself ("section 6.2"):
# every cited section must exist, and the seven top-level sections keep
# their numbers. Run by make check (WGF_SRCDIR set there).
set -u
SRC=${WGF_SRCDIR:-.}
doc="$SRC/doc/math.md"
tmp=$(mktemp -d /tmp/wgf-mathrefs-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

if [ ! -f "$doc" ]; then
    echo "FAIL: $doc is missing"
    exit 1
fi

# the top-level sections, in the numbering the code cites
for title in "1. Wasserstein gradient flows" "2. Energies" "3. Maps" "4. Metrics" "5. Schemes" \
    "6. Reference solutions" "7. Diagnostics"; do
    if grep -q "^## $title" "$doc"; then ok; else bad "doc/math.md has no section '## $title'"; fi
done

# has_section N: a heading "## N. Title" or "### N Title" (N like 3 or 3.3)
has_section() {
    re=$(printf '%s' "$1" | sed 's/\./\\./g')
    grep -Eq "^#{2,4} $re(\.| )" "$doc"
}

# check FILE:LINE:TEXT lines, TEXT holding the cited numbers
num='[0-9]+(\.[0-9]+)*'
check_cites() {
    while IFS= read -r line; do
        where=${line%%:*}:$(printf '%s' "${line#*:}" | cut -d: -f1)
        text=${line#*:*:}
        for n in $(printf '%s\n' "$text" | sed 's/^[^0-9]*//' | grep -Eo "$num"); do
            if has_section "$n"; then ok; else bad "$where cites section $n, which doc/math.md lacks"; fi
        done
    done
}

# citations in the sources and documents
find "$SRC/core" "$SRC/cli" "$SRC/plugins" "$SRC/tests" "$SRC/examples" "$SRC/experiments" \
    "$SRC/bench" "$SRC/doc" "$SRC/README.md" -type f \
    \( -name '*.c' -o -name '*.h' -o -name '*.md' -o -name '*.ini' -o -name '*.sh' -o -name '*.1' \) \
    2>/dev/null | sort >"$tmp/files"
while IFS= read -r f; do
    grep -HnEo "(MATH|math)\.md,?( sections?)? $num((,| and) $num)*" "$f"
done <"$tmp/files" >"$tmp/cites"
check_cites <"$tmp/cites"

# doc/math.md's references to its own sections
grep -HnEo "[Ss]ections? $num((,| and) $num)*" "$doc" >"$tmp/self"
check_cites <"$tmp/self"

# the check must have found citations to check, or it checks nothing
if [ -s "$tmp/cites" ] && [ -s "$tmp/self" ]; then ok; else bad "no section citations found"; fi

echo "mathrefs.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
