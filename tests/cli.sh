#!/bin/sh
# cli.sh: the command as a user meets it: exit statuses, one-line errors with
# file:line, every configuration error at once, plugin listing, Ctrl-C.
# Run by make check (WGF_CLI, WGF_SRCDIR and WGF_PLUGIN_PATH set there).
set -u
WGF=${WGF_CLI:-./cli/wgf}
SRC=${WGF_SRCDIR:-.}
tmp=$(mktemp -d /tmp/wgf-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect STATUS PATTERN -- command...: exit status and a line of stderr+stdout
expect() {
    want=$1 pattern=$2
    shift 2
    "$@" >"$tmp/out" 2>&1
    got=$?
    if [ "$got" -ne "$want" ]; then
        bad "$* exited $got, expected $want"; sed 's/^/    /' "$tmp/out"; return
    fi
    if [ -n "$pattern" ] && ! grep -q -- "$pattern" "$tmp/out"; then
        bad "$*: no line matching '$pattern'"; sed 's/^/    /' "$tmp/out"; return
    fi
    ok
}

good="$SRC/experiments/fpe_ou_10d_affine.ini"

# a valid file checks; --help and --version answer
expect 0 ": ok" "$WGF" check "$good"
expect 0 "usage: wgf run" "$WGF" --help
expect 0 "plugin ABI" "$WGF" --version

# bad command lines: exit 2 with usage
expect 2 "unknown command" "$WGF" frobnicate
expect 2 "unknown option" "$WGF" run "$good" --frob
expect 2 "does not apply" "$WGF" check "$good" --threads 2
expect 2 "not a whole number" "$WGF" run "$good" --threads zero

# every configuration error at once, each as FILE:LINE: section.key: message
cat >"$tmp/bad.ini" <<'EOF'
[run]
dim = 3
samples = many
[initial]
type = gaussian
cov = full 1 0 0 1
[energy]
plugin = fpe
diffusoin = 1
[map]
plugin = planar
layers = 0
[scheme]
plugin = euler
step = 0.1
t_end = 1
EOF
expect 2 "bad.ini:3: run.samples: 'many' is not an integer" "$WGF" check "$tmp/bad.ini"
n=$(grep -c "^wgf: .*bad.ini:[0-9]*: " "$tmp/out")
if [ "$n" -ge 4 ]; then ok; else bad "expected 4 errors at once, got $n"; cat "$tmp/out"; fi
grep -q "bad.ini:9: energy.diffusoin: unknown key" "$tmp/out" && ok || bad "unknown key not reported"
grep -q "bad.ini:12: map.layers" "$tmp/out" && ok || bad "range error not reported"
grep -q "bad.ini:6: initial.cov" "$tmp/out" && ok || bad "matrix error not reported"

# a plugin that does not exist: where it looked
printf '[run]\ndim = 2\n[energy]\nplugin = fp\n[map]\nplugin = affine\n' >"$tmp/noplug.ini"
expect 2 "noplug.ini:4: energy.plugin: plugin 'fp' (energy) not found" "$WGF" check "$tmp/noplug.ini"
# a plugin of the wrong kind
printf '[run]\ndim = 2\n[energy]\nplugin = affine\n[map]\nplugin = affine\n' >"$tmp/kind.ini"
expect 2 "is a map, not an energy" "$WGF" check "$tmp/kind.ini"
# missing sections
printf '[run]\ndim = 2\n' >"$tmp/empty.ini"
expect 2 "missing section" "$WGF" check "$tmp/empty.ini"
# a missing file
expect 2 "cannot open" "$WGF" check "$tmp/nope.ini"
# --set overrides, and reports its own mistakes
expect 2 "expected section.key=value" "$WGF" check "$good" --set oops
expect 2 "run.dim" "$WGF" check "$good" --set run.dim=0

# plugins: the list and one plugin's parameters
expect 0 "planar" "$WGF" plugins
expect 0 "layers" "$WGF" plugins planar
expect 2 "not found" "$WGF" plugins nosuchplugin

# selftest of a map and an energy
expect 0 "passed" "$WGF" selftest planar --dim 3
expect 0 "passed" "$WGF" selftest fpe --dim 2 --set energy.potential=quartic

# a GSL error in a plugin is an error, not an abort: exit 2 from create, 3 from a step
cat >"$tmp/gsl.ini" <<EOF
[run]
dim = 2
samples = 50
plugin_path = ${WGF_TEST_PLUGINS:-tests/plugins/.libs}
[initial]
type = gaussian
[energy]
plugin = gslfail
at = eval
[map]
plugin = affine
[scheme]
plugin = euler
step = 0.1
t_end = 0.2
[output]
plots = false
EOF
expect 3 "gslfail: Cholesky of the test matrix: input domain error (GSL status 1)" \
    "$WGF" run "$tmp/gsl.ini" -o "$tmp/gslrun" --quiet
expect 2 "energy.at: Cholesky of the test matrix: input domain error" \
    "$WGF" check "$tmp/gsl.ini" --set energy.at=create

# the jko scheme (built when liblbfgs is found): every key documented; a step whose inner
# solve accepts nothing (one trial per line search, beyond the planar bound) exits 3 naming it
if "$WGF" plugins jko >/dev/null 2>&1; then
    "$WGF" plugins jko >"$tmp/jko" 2>&1
    for key in step t_end samples proximal epsilon m max_iterations max_linesearch; do
        grep -q "^  $key  *[a-z]*  *[^ ].*[a-z]" "$tmp/jko" && ok || { bad "jko: key $key not documented"; cat "$tmp/jko"; }
    done
    expect 0 "finished" "$WGF" run "$SRC/experiments/fpe_ou_10d_jko.ini" -o "$tmp/jko1" \
        --set scheme.t_end=0.1 --set output.plots=false
    printf '[run]\ndim = 1\nsamples = 100\n[initial]\ntype = gaussian\n[energy]\nplugin = fpe\nsigma = full 0.01\n[map]\nplugin = planar\nlayers = 1\ninvertibility = check\ndelta = 0.9\ninit_scale = 10\n[scheme]\nplugin = jko\nstep = 10\nt_end = 10\nmax_linesearch = 1\n[output]\nplots = false\n' >"$tmp/jkofail.ini"
    expect 3 "jko: step 1 (t = 10): inner L-BFGS failed" "$WGF" run "$tmp/jkofail.ini" -o "$tmp/jko2" --quiet
fi

# a short run writes its outputs; Ctrl-C finishes the step, writes, exits 130
expect 0 "finished" "$WGF" run "$good" -o "$tmp/run1" --set scheme.t_end=0.05 --set output.plots=false
[ -s "$tmp/run1/summary.ini" ] && ok || bad "no summary.ini"
"$WGF" run "$SRC/experiments/fpe_ou_10d.ini" -o "$tmp/run2" --quiet --set output.plots=false \
    --set scheme.t_end=1000 >"$tmp/out" 2>&1 &
pid=$!
i=0
while [ ! -s "$tmp/run2/history.csv" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -INT $pid
wait $pid
st=$?
[ $st -eq 130 ] && ok || { bad "interrupted run exited $st, expected 130"; cat "$tmp/out"; }
grep -q "status = interrupted" "$tmp/run2/summary.ini" 2>/dev/null && ok || bad "no summary after Ctrl-C"
ls "$tmp/run2"/history.csv.tmp.* >/dev/null 2>&1 && bad "a temporary file was left" || ok

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
