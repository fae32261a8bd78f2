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
expect 3 "euler, step 0 (t = 0): energy .gslfail.: gslfail: Cholesky of the test matrix: input domain error (GSL status 1)" \
    "$WGF" run "$tmp/gsl.ini" -o "$tmp/gslrun" --quiet
expect 2 "energy.at: Cholesky of the test matrix: input domain error" \
    "$WGF" check "$tmp/gsl.ini" --set energy.at=create

# a scheme's needs are checked by `wgf check`: an energy without the Wasserstein gradient it needs
cat >"$tmp/needs.ini" <<EOF
[run]
dim = 2
plugin_path = ${WGF_TEST_PLUGINS:-tests/plugins/.libs}
[energy]
plugin = scoreenergy
[map]
plugin = affine
[scheme]
plugin = needyscheme
needs = wgrad
EOF
expect 2 "needs.ini:9: scheme.plugin: scheme 'needyscheme' needs the energy's Wasserstein gradient (wgrad)" \
    "$WGF" check "$tmp/needs.ini"
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
# the genwgp scheme (built with liblbfgs): every key documented; L-BFGS on fresh samples is
# refused at its line; a short run writes the path
if "$WGF" plugins genwgp >/dev/null 2>&1; then
    "$WGF" plugins genwgp >"$tmp/gw" 2>&1
    for key in action t_end mu_s mu_eq optimizer iterations samples lr lr_end beta1 beta2 m epsilon warmup; do
        grep -q "^  $key  *[a-z]*  *[^ ].*[a-z]" "$tmp/gw" && ok || { bad "genwgp: key $key not documented"; cat "$tmp/gw"; }
    done
    printf '[run]\ndim = 2\nsamples = 100\n[initial]\ntype = gaussian\n[energy]\nplugin = fpe\n[map]\nplugin = planar\nlayers = 4\nblock = 2\n[scheme]\nplugin = genwgp\noptimizer = lbfgs\nsamples = fresh\niterations = 5\n[output]\nplots = false\n' >"$tmp/gw.ini"
    expect 2 "gw.ini:15: scheme.samples: L-BFGS needs a deterministic loss (samples = fixed, or optimizer = adam)" \
        "$WGF" check "$tmp/gw.ini"
    expect 0 "finished" "$WGF" run "$tmp/gw.ini" -o "$tmp/gw1" --set scheme.samples=fixed
    [ "$(tail -n 3 "$tmp/gw1/path.csv" 2>/dev/null | cut -d, -f2 | tr -d '\n')" = 012 ] && ok ||
        bad "genwgp: path.csv does not end with the final path's 3 stages"
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

# ---- someone else's experiment or run directory runs no code of theirs
# with_run KEY=VALUE: the good experiment with one more [run] key, on line 6
with_run() { sed "/^\[run\]/a $1" "$good"; }
mkdir "$tmp/cwd"

# Strings from a file reach gnuplot as quoted data, never as script: a run
# name (plots are on by default), a history.csv header, a directory name.
if command -v gnuplot >/dev/null 2>&1; then
    with_run "name = x'; system(\"touch pwned\"); print '" >"$tmp/cwd/hostile.ini"
    (cd "$tmp/cwd" && "$WGF" run hostile.ini --quiet --set scheme.t_end=0.05) >"$tmp/out" 2>&1
    st=$?
    [ $st -eq 0 ] && ok || { bad "hostile run name: exit $st"; cat "$tmp/out"; }
    [ -e "$tmp/cwd/pwned" ] && bad "a run name ran a command in the plot script" || ok
    [ -s "$tmp/cwd/runs/x'; system(\"touch pwned\"); print '/plots/energy.png" ] && ok ||
        bad "no plots for a run name with quotes"

    mkdir "$tmp/cwd/recv"
    q="'; system(\"touch pwned2\"); print '"
    # (and the other gnuplot expansions: backquotes, @macros, backslashes in double quotes)
    { echo "step,t,energy,energy_ref,err_a$q,b$q,b${q}_ref,err_\`touch pwned2\`,err_@GPVAL_PWD,err_\\\"x"
      echo "0,0,2,2,1,1,1,1,1,1"; echo "1,0.1,1,1,0.5,1,1,1,1,1"; } >"$tmp/cwd/recv/history.csv"
    # (gnuplot itself cannot match a header with double quotes: the plot may fail, harmlessly)
    (cd "$tmp/cwd" && "$WGF" plot recv) >"$tmp/out" 2>&1
    [ -e "$tmp/cwd/pwned2" ] && bad "a history.csv header ran a command in the plot script" || ok
    grep -qF "'err_a''; system(\"touch pwned2\"); print '''" "$tmp/cwd/recv/plots/plot.gp" && ok ||
        bad "the column name is not quoted in plot.gp"

    # gnuplot reads a script or data file named '<cmd' from a shell command
    mkdir -p "$tmp/cwd/<recv2" "$tmp/cwd/recv2/plots"
    printf 'step,t,energy\n0,0,2\n1,0.1,1\n' >"$tmp/cwd/<recv2/history.csv"
    printf '#!/bin/sh\ntouch pwned3\n' >"$tmp/cwd/recv2/history.csv"
    cp "$tmp/cwd/recv2/history.csv" "$tmp/cwd/recv2/plots/plot.gp"
    chmod +x "$tmp/cwd/recv2/history.csv" "$tmp/cwd/recv2/plots/plot.gp"
    (cd "$tmp/cwd" && "$WGF" plot "<recv2") >"$tmp/out" 2>&1
    [ -e "$tmp/cwd/pwned3" ] && bad "a directory named '<...' ran a command" || ok
    # what cannot be quoted is refused
    mkdir "$tmp/cwd/ctl" && printf 'step,t,energy,err_\001x\n0,0,1,1\n' >"$tmp/cwd/ctl/history.csv"
    expect 2 "a column name in history.csv holds a control character" "$WGF" plot "$tmp/cwd/ctl"
fi

# [run] name is a name: no separators, no '..', no leading dot; -o chooses directories
with_run "name = ../../escaped" >"$tmp/cwd/escape.ini"
expect 2 "escape.ini:6: run.name: not a name: it contains a path separator" "$WGF" check "$tmp/cwd/escape.ini"
(cd "$tmp/cwd" && "$WGF" run escape.ini --quiet --set output.plots=false --set scheme.t_end=0.05) >/dev/null 2>&1
[ -e "$tmp/escaped" ] && bad "a run name wrote outside runs/" || ok
with_run "name = x'; system(\"touch $tmp/pwned4\"); print '" >"$tmp/cwd/slash.ini"
expect 2 "slash.ini:6: run.name: not a name: it contains a path separator" "$WGF" check "$tmp/cwd/slash.ini"
with_run 'name = a\\\\b' >"$tmp/cwd/bslash.ini"
expect 2 "bslash.ini:6: run.name: not a name: it contains a path separator" "$WGF" check "$tmp/cwd/bslash.ini"
with_run "name = a..b" >"$tmp/cwd/dots.ini"
expect 2 "dots.ini:6: run.name: not a name: it contains '..'" "$WGF" check "$tmp/cwd/dots.ini"
with_run "$(printf 'name = a\tb')" >"$tmp/cwd/tab.ini"
expect 2 "tab.ini:6: run.name: not a name: it contains a control character" "$WGF" check "$tmp/cwd/tab.ini"
expect 2 "run.name: not a name: it starts with '.'" "$WGF" check "$good" --set run.name=.hidden
expect 2 "run.name: not a name: it starts with '-'" "$WGF" check "$good" --set run.name=-rf
expect 2 "run.name: not a name: it is empty" "$WGF" check "$good" --set run.name=
expect 0 ": ok" "$WGF" check "$good" --set "run.name=ou 10-D (affine), h=0.005"

# An experiment's plugin_path loads code: marker.so's constructor creates
# $WGF_TEST_MARKER, so the tests see whether anything loaded it.
if [ -n "${WGF_TEST_PLUGINS:-}" ] && [ -f "$WGF_TEST_PLUGINS/marker.so" ]; then
    WGF_TEST_MARKER="$tmp/loaded"
    export WGF_TEST_MARKER
    mkdir "$tmp/cwd/plugs"
    cp "$WGF_TEST_PLUGINS/marker.so" "$tmp/cwd/plugs/fpe.so"
    cp "$WGF_TEST_PLUGINS/marker.so" "$tmp/cwd/plugs/markedenergy.so"
    loaded() { if [ -e "$tmp/loaded" ]; then bad "$1: marker.so was loaded"; rm -f "$tmp/loaded"; else ok; fi; }

    # a shadowing fpe.so does not replace the installed fpe; config.ini says which file ran
    with_run "plugin_path = plugs" >"$tmp/cwd/shadow.ini"
    expect 0 "finished" "$WGF" run "$tmp/cwd/shadow.ini" -o "$tmp/shadow" --set scheme.t_end=0.05 \
        --set output.plots=false
    loaded "an installed plugin shadowed by the experiment's plugin_path"
    grep "^; energy plugin fpe: " "$tmp/shadow/config.ini" | grep -q "/plugins/energies/" && ok ||
        bad "config.ini does not name the installed fpe.so"
    # unless the user trusts the file: then its fpe.so is the one found (and loaded)
    expect 2 "plugs/fpe.so holds no plugin named 'fpe'" "$WGF" check "$tmp/cwd/shadow.ini" --trust-plugin-path
    [ -e "$tmp/loaded" ] && ok || bad "--trust-plugin-path did not search the experiment's plugin_path first"
    rm -f "$tmp/loaded"

    # a mistyped name: a suggestion from file names, without loading anything
    sed 's/^plugin = fpe$/plugin = markedenrgy/' "$tmp/cwd/shadow.ini" >"$tmp/cwd/typo.ini"
    expect 2 "did you mean 'markedenergy'?" "$WGF" check "$tmp/cwd/typo.ini"
    loaded "a did-you-mean suggestion"

    # a switched-off [reference] is validated against the installed references only: no
    # reference file from the experiment's plugin_path is loaded to learn its keys
    cp "$WGF_TEST_PLUGINS/marker.so" "$tmp/cwd/plugs/ref_marked.so"
    expect 0 ": ok" "$WGF" check "$tmp/cwd/shadow.ini" --set reference.plugin=none
    loaded "validating a [reference] section that names no reference"
    rm -f "$tmp/cwd/plugs/ref_marked.so"

    # check and run can refuse plugin_path from the file: option and environment
    sed 's/^plugin = fpe$/plugin = markedenergy/' "$tmp/cwd/shadow.ini" >"$tmp/cwd/refuse.ini"
    refused="refuse.ini:6: run.plugin_path: plugin directories from the experiment are refused"
    expect 2 "$refused" "$WGF" check "$tmp/cwd/refuse.ini" --no-file-plugins
    loaded "wgf check --no-file-plugins"
    expect 2 "$refused" "$WGF" run "$tmp/cwd/refuse.ini" -o "$tmp/refused" --no-file-plugins
    loaded "wgf run --no-file-plugins"
    [ -e "$tmp/refused" ] && bad "a refused run created its directory" || ok
    expect 2 "$refused" env WGF_NO_FILE_PLUGINS=1 "$WGF" check "$tmp/cwd/refuse.ini"
    loaded "WGF_NO_FILE_PLUGINS=1 wgf check"
    expect 2 "$refused" env WGF_NO_FILE_PLUGINS=1 "$WGF" run "$tmp/cwd/refuse.ini" -o "$tmp/refused"
    loaded "WGF_NO_FILE_PLUGINS=1 wgf run"
    unset WGF_TEST_MARKER
else
    bad "tests/plugins/marker.so not built (WGF_TEST_PLUGINS=${WGF_TEST_PLUGINS:-unset})"
fi

# ---- a run directory claims no more than it holds
# summary.ini comes last, and only when everything before it was written:
# here reference.csv cannot be written (a directory holds its name)
mkdir -p "$tmp/full/reference.csv/x"
expect 1 "reference.csv" "$WGF" run "$good" -o "$tmp/full" --quiet --set scheme.t_end=0.05 \
    --set output.plots=false
[ -e "$tmp/full/summary.ini" ] && bad "summary.ini written although reference.csv was not" || ok
# a reused directory: a run killed there leaves no summary and no samples of
# the earlier run; temporary files of killed writes are removed at start
expect 0 "" "$WGF" run "$good" -o "$tmp/reuse" --quiet --set scheme.t_end=0.05 \
    --set output.every=1 --set output.plots=false
[ -s "$tmp/reuse/samples/step-000005.csv" ] && ok || bad "no samples at step 5 in the first run"
touch "$tmp/reuse/samples/step-000010.csv.tmp.999999" "$tmp/reuse/history.csv.tmp.77" \
    "$tmp/reuse/theta/step-000002.bin.tmp.12" "$tmp/reuse/notes.txt" "$tmp/reuse/notes.tmp.5"
"$WGF" run "$SRC/experiments/fpe_ou_10d.ini" -o "$tmp/reuse" --quiet --threads 1 --set output.plots=false \
    --set scheme.t_end=1000 --set output.every=1000 >"$tmp/out" 2>&1 &
pid=$!
i=0
while ! grep -q "fpe_ou_10d.ini" "$tmp/reuse/config.ini" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i + 1))
done
kill -9 $pid
wait $pid 2>/dev/null
[ -e "$tmp/reuse/summary.ini" ] && bad "a killed run left the earlier run's summary.ini" || ok
[ -e "$tmp/reuse/samples/step-000005.csv" ] && bad "a killed run left the earlier run's samples" || ok
[ -e "$tmp/reuse/theta/step-000005.bin" ] && bad "a killed run left the earlier run's parameters" || ok
for f in samples/step-000010.csv.tmp.999999 history.csv.tmp.77 theta/step-000002.bin.tmp.12; do
    [ -e "$tmp/reuse/$f" ] && bad "stale temporary file $f not removed" || ok
done
[ -e "$tmp/reuse/notes.txt" ] && [ -e "$tmp/reuse/notes.tmp.5" ] && ok || bad "a file not wgf's was removed"

# ---- a diagnostic that cannot be computed is reported, not fatal; a numerical
# failure names its step. One output sample has no covariance:
expect 0 "warning: step 0: diagnostics not computed" "$WGF" run "$SRC/experiments/fpe_ou_10d.ini" \
    -o "$tmp/diag" --threads 1 --set output.samples=1 --set scheme.t_end=0.05 --set output.plots=false
grep -q "^status = finished" "$tmp/diag/summary.ini" 2>/dev/null && ok || bad "the run did not finish"
grep -q "^diagnostics = not computed 2 times, first at step 0: " "$tmp/diag/summary.ini" 2>/dev/null && ok ||
    bad "summary.ini does not report the diagnostics that failed"
# (an energy that overflows at the first step)
expect 3 "numerical failure: euler, step 0 (t = 0): energy 'fpe': the potential is inf" "$WGF" run "$good" \
    -o "$tmp/inf" --quiet --set energy.mu=1e200 --set output.plots=false
grep -q "^message = euler, step 0 (t = 0): " "$tmp/inf/summary.ini" 2>/dev/null && ok || bad "summary.ini message names no step"

# ---- a run that blows up says so. The 10-D OU with Sigma = diag(1/90, 1, ..., 1): the step 0.05
# is 4.5 times the explicit limit 2/90 (an amplification of 3.5 per step); 0.005 is stable.
expect 3 "numerical failure: step 1 (t = 0.05): diverged: the energy rose" "$WGF" run "$good" \
    -o "$tmp/stiff" --quiet --set scheme.step=0.05 --set "energy.sigma=diag 0.0111111111111 1 1 1 1 1 1 1 1 1" \
    --set scheme.t_end=0.9 --set output.plots=false
grep -q "^status = diverged" "$tmp/stiff/summary.ini" 2>/dev/null && ok || bad "a diverging run's summary does not say diverged"
grep -q "^1,0.05," "$tmp/stiff/history.csv" 2>/dev/null && ok || bad "the diverging step is not in history.csv"
expect 0 "finished after 180 steps" "$WGF" run "$good" -o "$tmp/stiff2" --set scheme.step=0.005 \
    --set "energy.sigma=diag 0.0111111111111 1 1 1 1 1 1 1 1 1" --set scheme.t_end=0.9 --set output.plots=false
grep -q "^status = finished" "$tmp/stiff2/summary.ini" 2>/dev/null && ok || bad "the stable run did not finish"
# divergence = ignore lets it run (to an energy of about 1e21)
expect 0 "finished after 18 steps" "$WGF" run "$good" -o "$tmp/stiff3" --set scheme.step=0.05 \
    --set "energy.sigma=diag 0.0111111111111 1 1 1 1 1 1 1 1 1" --set scheme.t_end=0.9 --set output.plots=false \
    --set run.divergence=ignore
awk -F, 'NR > 1 { e = $3 } END { exit !(e > 1e15) }' "$tmp/stiff3/history.csv" && ok ||
    bad "with divergence = ignore the run was not let diverge"

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
