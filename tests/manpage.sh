#!/bin/sh
# manpage.sh: doc/wgf.1 keeps up with the command. Every plugin `wgf plugins` lists has its entry
# under SHIPPED PLUGINS, in its kind's subsection, naming every key `wgf plugins NAME` prints;
# every option and command `wgf --help` names is on the page; and the page renders without a
# groff warning. Run by make check (WGF_CLI, WGF_SRCDIR and WGF_PLUGIN_PATH set there).
set -u
WGF=${WGF_CLI:-./cli/wgf}
SRC=${WGF_SRCDIR:-.}
page="$SRC/doc/wgf.1"
tmp=$(mktemp -d /tmp/wgf-manpage-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

[ -f "$page" ] || { echo "FAIL: $page is missing"; exit 1; }

# the page as plain text of its requests: groff's \- becomes -
sed 's/\\-/-/g' "$page" >"$tmp/page"

# the section SHIPPED PLUGINS, and in it the subsection of each kind
awk '/^\.SH SHIPPED PLUGINS/ { on = 1; next } /^\.SH / { on = 0 } on' "$tmp/page" >"$tmp/shipped"
[ -s "$tmp/shipped" ] && ok || bad "doc/wgf.1 has no section SHIPPED PLUGINS"
subsection() { # KIND: the lines of the subsection '.SS "Kinds ([KIND] plugin = NAME)"'
    awk -v k="[$1]" '/^\.SS / { on = index($0, k) > 0; next } on' "$tmp/shipped"
}
entry() { # KIND NAME: the lines of NAME's entry in KIND's subsection
    subsection "$1" | awk -v n=".B $2" '$0 == n { on = 1; next } /^\.B / { on = 0 } on'
}

"$WGF" plugins >"$tmp/list" 2>"$tmp/err" || { bad "wgf plugins failed"; sed 's/^/    /' "$tmp/err"; }
grep -E '^(energy|map|metric|scheme|reference) ' "$tmp/list" | awk '{ print $1, $2 }' >"$tmp/plugins"
# the shipped plugins are found (in the build tree), so the loop below checks something: 18,
# or 16 when configure did not find liblbfgs (no jko, no genwgp)
n=$(wc -l <"$tmp/plugins")
[ "$n" -ge 16 ] && ok || bad "wgf plugins lists $n plugins, expected the 16 or 18 shipped at least"

while read -r kind name; do
    if subsection "$kind" | grep -qxF ".B $name"; then ok; else
        bad "doc/wgf.1: no entry '.B $name' under the $kind plugins of SHIPPED PLUGINS"; continue
    fi
    "$WGF" plugins "$name" >"$tmp/one" 2>/dev/null || { bad "wgf plugins $name failed"; continue; }
    # a name shared by two kinds (the aggregation energy and reference) prints the first found
    head -n 1 "$tmp/one" | grep -q "^$name ($kind)" || continue
    entry "$kind" "$name" >"$tmp/entry"
    awk -v n="$name" '$0 == "  keys of " n ":" { on = 1; getline; next } on && /^ *$/ { exit }
        on && !/^  \(no / { print $1 }' "$tmp/one" >"$tmp/keys"
    while read -r key; do
        if grep -q "^\.BR $key \"" "$tmp/entry"; then ok; else
            bad "doc/wgf.1: the entry of $name ($kind) does not name its key $key"
        fi
    done <"$tmp/keys"
done <"$tmp/plugins"

# every option and command of wgf --help
"$WGF" --help >"$tmp/help" 2>&1
opts=$(grep -Eo -- '(^| |\[|\|)--?[a-z][a-z-]*' "$tmp/help" | sed 's/^[ [|]*//' | sort -u)
[ -n "$opts" ] && ok || bad "no options found in wgf --help"
for o in $opts; do
    if grep -qF -- "$o" "$tmp/page"; then ok; else bad "doc/wgf.1 does not mention the option $o"; fi
done
for c in $(awk '/^  [a-z]+  / { print $1 }' "$tmp/help"); do
    if grep -qE "^\.BR? \"?$c( |\"|$)|^\.BI \"?$c[ \"]" "$tmp/page"; then ok; else
        bad "doc/wgf.1 does not describe the command $c"
    fi
done
# wgf plugins --core and the exit statuses wgf --help names
grep -q -- '--core' "$tmp/page" && ok || bad "doc/wgf.1 does not describe wgf plugins --core"
for s in 0 1 2 3 130; do
    awk '/^\.SH EXIT STATUS/ { on = 1; next } /^\.SH / { on = 0 } on' "$tmp/page" | grep -qx "\.B $s" &&
        ok || bad "doc/wgf.1 EXIT STATUS lacks $s"
done

# it renders without warnings
if command -v groff >/dev/null 2>&1; then
    if groff -man -Tutf8 -ww -z "$page" >"$tmp/groff" 2>&1 && [ ! -s "$tmp/groff" ]; then ok; else
        bad "groff -man -ww warns on doc/wgf.1:"; sed 's/^/    /' "$tmp/groff"
    fi
fi

echo "manpage.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
