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
# every key a section accepts: the plugin's and those the core adds
"$WGF" plugins lagrangian >"$tmp/out" 2>&1
for k in tol maxiter tikhonov; do
    grep -q "^  $k  " "$tmp/out" && ok || bad "wgf plugins lagrangian does not show [metric] $k"
done
grep -q "keys the core adds to \[metric\]" "$tmp/out" && ok || bad "wgf plugins lagrangian: no core keys heading"
expect 0 "keys the core adds to \[scheme\]" "$WGF" plugins euler
# the core's own sections and keys
"$WGF" plugins --core >"$tmp/out" 2>&1 && ok || bad "wgf plugins --core failed"
for sk in run:dim run:plugin_path initial:cov metric:tikhonov output:write_count reference:plugin energy:plugin; do
    sec=${sk%%:*} key=${sk#*:}
    awk -v s="[$sec]:" -v k="$key" 'index($0, s) == 1 { on = 1; next } /^\[/ { on = 0 } on && $1 == k { f = 1 } END { exit !f }' \
        "$tmp/out" && ok || bad "wgf plugins --core: no $key in [$sec]"
done
expect 2 "takes no plugin name" "$WGF" plugins euler --core
expect 2 "does not apply" "$WGF" check "$good" --core

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
# the misfit needs it too: misfit = on is refused where the energy has none, auto runs without
grep -v '^needs\|^plugin = needyscheme' "$tmp/needs.ini" >"$tmp/misfit.ini"
for sch in euler jko; do
    if "$WGF" plugins $sch >/dev/null 2>&1; then
        expect 2 "scheme.misfit: on, but an energy term has no Wasserstein gradient (auto or off)" \
            "$WGF" run "$tmp/misfit.ini" -o "$tmp/misfit_$sch" --quiet --set scheme.plugin=$sch \
            --set scheme.t_end=0.02 --set scheme.step=0.01 --set output.plots=false --set scheme.misfit=on
        expect 0 "" "$WGF" run "$tmp/misfit.ini" -o "$tmp/misfit_$sch" --quiet --set scheme.plugin=$sch \
            --set scheme.t_end=0.02 --set scheme.step=0.01 --set output.plots=false
        awk -F, 'NR > 1 && $10 != "nan" { bad = 1 } END { exit bad }' "$tmp/misfit_$sch/history.csv" && ok ||
            bad "$sch: a misfit without the Wasserstein gradient"
    fi
done
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
    for key in action t_end mu_s mu_eq mu_f terminal_end optimizer iterations samples lr lr_end beta1 beta2 m epsilon warmup; do
        grep -q "^  $key  *[a-z]*  *[^ ].*[a-z]" "$tmp/gw" && ok || { bad "genwgp: key $key not documented"; cat "$tmp/gw"; }
    done
    printf '[run]\ndim = 2\nsamples = 100\n[initial]\ntype = gaussian\n[energy]\nplugin = fpe\n[map]\nplugin = planar\nlayers = 4\nblock = 2\n[scheme]\nplugin = genwgp\noptimizer = lbfgs\nsamples = fresh\niterations = 5\n[output]\nplots = false\n' >"$tmp/gw.ini"
    expect 2 "gw.ini:15: scheme.samples: L-BFGS needs a deterministic loss (samples = fixed, or optimizer = adam)" \
        "$WGF" check "$tmp/gw.ini"
    # L-BFGS needs one loss: a falling terminal pull is refused, named where it is set
    sed 's/^samples = fresh$/samples = fixed\nterminal_end = 0.5/' "$tmp/gw.ini" >"$tmp/gwte.ini"
    expect 2 "gwte.ini:16: scheme.terminal_end: L-BFGS needs one loss throughout (terminal_end = 1, or optimizer = adam)" \
        "$WGF" check "$tmp/gwte.ini"
    expect 0 "finished" "$WGF" run "$tmp/gw.ini" -o "$tmp/gw1" --set scheme.samples=fixed
    [ "$(tail -n 3 "$tmp/gw1/path.csv" 2>/dev/null | cut -d, -f2 | tr -d '\n')" = 012 ] && ok ||
        bad "genwgp: path.csv does not end with the final path's 3 stages"
    # a step that leaves the gradient unchanged makes liblbfgs's next iterate NaN (0/0 scaling,
    # accepted by the Armijo test against a NaN slope), near iteration 232 here (the exact one
    # follows the build's rounding): L-BFGS ends at the last finite iterate, well before its 1500
    # iterations, with a finite energy, instead of diverging
    expect 0 "finished after [0-9]* steps" "$WGF" run "$SRC/experiments/genwgp_aggregation_2d.ini" \
        -o "$tmp/gw2" --threads 1 --set reference.plugin=none --set scheme.mu_s=1 --set scheme.optimizer=lbfgs \
        --set scheme.iterations=1500 --set output.plots=false
    steps=$(sed -n 's/^steps = //p' "$tmp/gw2/summary.ini" 2>/dev/null)
    [ -n "$steps" ] && [ "$steps" -gt 100 ] && [ "$steps" -lt 1500 ] && ok ||
        bad "genwgp lbfgs: $steps steps (the NaN iterate is near 232)"
    grep -q "^energy = -[0-9]" "$tmp/gw2/summary.ini" 2>/dev/null && ok || bad "genwgp lbfgs: energy not finite"
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
# the particle reference stops at its t_max rather than integrate for hours
# toward a far stage time; the steps before are diagnosed
expect 0 "" "$WGF" run "$SRC/experiments/aggregation_2d.ini" -o "$tmp/tmax" --quiet --threads 1 \
    --set scheme.t_end=0.02 --set reference.type=particles --set reference.particles=50 \
    --set reference.t_max=0.01 --set output.every=2 --set output.plots=false --set output.samples=100
grep -q "^diagnostics = not computed 2 times, first at step 4: .*time 0.02 is beyond t_max = 0.01" \
    "$tmp/tmax/summary.ini" 2>/dev/null && ok || bad "particles: no t_max message in summary.ini"
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
# ... and wgf check says so before the run: lambda_max = 90 (power iteration on Sigma^-1), step 0.05
expect 0 "scheme.step: step \* lambda_max = 0.05 \* 90 = 4.5 > 1: explicit steps are unstable" "$WGF" check \
    "$good" --set scheme.step=0.05 --set "energy.sigma=diag 0.0111111111111 1 1 1 1 1 1 1 1 1" --set scheme.t_end=0.9
# a full Sigma = [[1, .5], [.5, 1]]: eigenvalues 1.5 and 0.5, so Sigma^-1 has lambda_max 2
expect 0 "step \* lambda_max = 0.6 \* 2 = 1.2 > 1" "$WGF" check "$good" --set run.dim=2 --set energy.mu=0 \
    --set "energy.sigma=full 1 0.5 0.5 1" --set scheme.step=0.6 --set scheme.t_end=1.2
expect 0 "" "$WGF" check "$good" --set scheme.step=0.005 --set "energy.sigma=diag 0.0111111111111 1 1 1 1 1 1 1 1 1"
grep -q "warning" "$tmp/out" && bad "a stable step warned: $(cat "$tmp/out")" || ok
# no shipped experiment takes an explicit step beyond the limit
for f in "$SRC"/experiments/*.ini; do
    "$WGF" check "$f" >"$tmp/out" 2>&1
    grep -q "warning" "$tmp/out" && bad "$f warns: $(cat "$tmp/out")" || ok
done
# divergence = ignore lets it run (to an energy of about 1e21)
expect 0 "finished after 18 steps" "$WGF" run "$good" -o "$tmp/stiff3" --set scheme.step=0.05 \
    --set "energy.sigma=diag 0.0111111111111 1 1 1 1 1 1 1 1 1" --set scheme.t_end=0.9 --set output.plots=false \
    --set run.divergence=ignore
awk -F, 'NR > 1 { e = $3 } END { exit !(e > 1e15) }' "$tmp/stiff3/history.csv" && ok ||
    bad "with divergence = ignore the run was not let diverge"
# ---- bad input never crashes; plugin failures keep the error contract
TP=${WGF_TEST_PLUGINS:-./tests/plugins/.libs}
cat >"$tmp/small.ini" <<'EOF'
[run]
dim = 2
samples = 50
[energy]
plugin = goodenergy
[map]
plugin = affine
[scheme]
step = 0.01
t_end = 0.05
[output]
plots = false
samples = 50
EOF
# an empty plugin name, in the file and from --set: an error, not a NULL dereference
sed 's/^plugin = goodenergy/plugin =/' "$tmp/small.ini" >"$tmp/emptyplug.ini"
expect 2 "emptyplug.ini:5: energy.plugin: empty" "$WGF" check "$tmp/emptyplug.ini" --plugin-path "$TP"
expect 2 "emptyplug.ini:5: energy.plugin: empty" "$WGF" run "$tmp/emptyplug.ini" --plugin-path "$TP"
for s in energy map metric scheme; do
    expect 2 "$s.plugin: empty" "$WGF" check "$tmp/small.ini" --plugin-path "$TP" --set "$s.plugin="
done
# threads: a cap with a clear message, not a crash inside the OpenMP runtime
expect 2 "run.threads: 100000 is out of range" "$WGF" check "$tmp/small.ini" --plugin-path "$TP" \
    --set run.threads=100000
expect 2 "not a whole number from 1 to 1024" "$WGF" run "$tmp/small.ini" --threads 100000
# under a memory limit the OpenMP runtime cannot create 1024 thread stacks (it
# exited with "Thread creation failed"): refused with the reason (skipped where
# the command cannot start under the limit, as with AddressSanitizer)
if (ulimit -v 2097152 && "$WGF" --version) >/dev/null 2>&1; then
    (ulimit -v 2097152; exec "$WGF" run "$tmp/small.ini" --plugin-path "$TP" --threads 1024 -o "$tmp/t1024") \
        >"$tmp/out" 2>&1
    st=$?
    if [ $st -eq 2 ] && grep -q "^wgf: --threads: 1024 threads need .* GB of stacks" "$tmp/out"; then ok; else
        bad "1024 threads under ulimit -v: exit $st"; sed 's/^/    /' "$tmp/out"; fi
fi
# selftest sizes: bounded so that a check runs in seconds, not in the machine's memory
expect 2 "--dim: '4294967296' is not a whole number from 1 to 1000" timeout 10 "$WGF" selftest affine \
    --dim 4294967296
expect 2 "--samples: '1000000000000' is not a whole number from 2 to 100000" timeout 10 "$WGF" \
    selftest planar --samples 1000000000000
# a create() that refuses without a message: exit 2 naming the section
expect 2 "small.ini:4: \[energy\]: energy 'silentcreate': failed without a message" \
    "$WGF" check "$tmp/small.ini" --plugin-path "$TP" --set energy.plugin=silentcreate
# an eval() that fails without a message is a failure (exit 3), not a finished run
expect 3 "energy 'silenteval': failed without a message" "$WGF" run "$tmp/small.ini" \
    --plugin-path "$TP" --set energy.plugin=silenteval -o "$tmp/silent" --quiet
grep -q "status = finished" "$tmp/silent/summary.ini" 2>/dev/null && bad "silent failure marked finished" || ok
# a scheme whose run() fails without a message: exit 3 saying so
grep -v '^step\|^t_end' "$tmp/small.ini" >"$tmp/nosteps.ini"
expect 3 "scheme 'silentscheme': failed without a message" "$WGF" run "$tmp/nosteps.ini" \
    --plugin-path "$TP" --set scheme.plugin=silentscheme -o "$tmp/silent2" --quiet
# a map with no parameters: a configuration error, not "out of memory"
expect 2 "small.ini:6: \[map\]: map 'zeromap': it has no parameters" \
    "$WGF" check "$tmp/small.ini" --plugin-path "$TP" --set map.plugin=zeromap
# a map with 0 stages (the contract says at least one): refused, not a crash
expect 2 "small.ini:6: \[map\]: map 'zerostages': it has 0 stages" \
    "$WGF" run "$tmp/small.ini" --plugin-path "$TP" --set map.plugin=zerostages -o "$tmp/zs"
# a descriptor with params = NULL: no keys of its own; checks, runs and lists
expect 0 ": ok" "$WGF" check "$tmp/small.ini" --plugin-path "$TP" --set energy.plugin=noparams
expect 2 "energy.scale: unknown key (allowed: plugin)" "$WGF" check "$tmp/small.ini" \
    --plugin-path "$TP" --set energy.plugin=noparams --set energy.scale=1
expect 0 "finished" "$WGF" run "$tmp/small.ini" --plugin-path "$TP" --set energy.plugin=noparams \
    -o "$tmp/noparams"
expect 0 "no parameters of its own" "$WGF" plugins noparams --plugin-path "$TP"

# sizes that cannot run here: one line naming the key, at once (a heap
# overflow, a hang and 8 GB before)
for v in 4294967296 9223372036854775807 1000000000; do
    expect 2 "run.dim: $v is too large" timeout 10 "$WGF" check "$good" --set run.dim=$v
    n=$(grep -c "^wgf: " "$tmp/out"); [ "$n" -eq 1 ] && ok || bad "dim = $v: $n lines, expected 1"
done
expect 2 "dim: '1e9' is not an integer" "$WGF" check "$good" --set run.dim=1e9
# also when [run] has other errors (the dimension is then read as written)
expect 2 "run.dim: 4294967296 is too large" timeout 10 "$WGF" check "$good" --set run.dim=4294967296 \
    --set run.samples=many
expect 2 "run.samples: 1000000000000 is too large" timeout 10 "$WGF" check "$good" \
    --set run.samples=1000000000000
expect 2 "output.samples: 1000000000000 is too large" timeout 10 "$WGF" check "$good" \
    --set output.samples=1000000000000
# a large dimension checks in well under the old minute (a cache-hostile inversion of Sigma)
# (without the reference, which check now creates too: the OU reference's own set-up in 2000-D is
# a separate cost)
expect 0 ": ok" timeout 10 "$WGF" check "$good" --set run.dim=2000 --set energy.mu=0 \
    --set energy.sigma=identity --set initial.cov=identity --set reference.plugin=none
# devices are not experiment files, nor sample files
expect 2 "/dev/zero: not a regular file" timeout 10 "$WGF" check /dev/zero
printf '[run]\ndim = 2\n[initial]\ntype = file\nfile = /dev/zero\n[energy]\nplugin = goodenergy\n[map]\nplugin = affine\n' >"$tmp/devfile.ini"
expect 2 "devfile.ini:5: initial.file: /dev/zero is not a regular file" timeout 10 "$WGF" check \
    "$tmp/devfile.ini" --plugin-path "$TP"
# errors in a sample file name the experiment's key and the data file's line
printf 'x1,x2\n1,2\n3\n' >"$tmp/samples.csv"
sed 's|/dev/zero|samples.csv|' "$tmp/devfile.ini" >"$tmp/datafile.ini"
expect 2 "datafile.ini:5: initial.file: .*samples.csv:3: expected 2 finite numbers" "$WGF" check \
    "$tmp/datafile.ini" --plugin-path "$TP"

# a plugin's several errors all at once, each starting with FILE:LINE (not "energy 'fpe': FILE:LINE")
expect 2 "" "$WGF" check "$good" --set energy.V=x1 --set energy.separable=x --set "energy.sigma=full $(
    i=0; while [ $i -lt 100 ]; do printf '1 '; i=$((i + 1)); done)"
n=$(grep -c "^wgf: --set energy\.\(V\|separable\)\|^wgf: .*fpe_ou_10d_affine.ini:[0-9]*: energy\.sigma\|^wgf: --set energy\.sigma" "$tmp/out")
[ "$n" -eq 3 ] && ok || { bad "expected the 3 errors of [energy] at once, got $n"; cat "$tmp/out"; }
grep -q "energy 'fpe'" "$tmp/out" && bad "a located plugin message was prefixed" || ok
# a missing section is named as such
printf '[energy]\nplugin = fpe\n[map]\nplugin = affine\n' >"$tmp/norun.ini"
expect 2 "norun.ini: \[run\]: missing section (run.dim is required" "$WGF" check "$tmp/norun.ini"

# what a run refuses at its first step, check refuses
expect 2 "aggregation_2d.ini:[0-9]*: energy: pair interactions need at least 2 samples" "$WGF" check \
    "$SRC/experiments/aggregation_2d.ini" --set run.samples=1
# a reference's refusal at check names the experiment's key (an initial law outside the
# finite-volume grid of fpe1d)
expect 2 "fpe_quartic_30d.ini:[0-9]*: reference.type: reference 'fpe1d': finite volumes: initial density has mass 0" \
    "$WGF" check "$SRC/experiments/fpe_quartic_30d.ini" --set initial.mean=100
# a map's sizes: layers whose parameter count wraps, or whose tapes cannot fit
expect 2 "map.layers: 9223372036854775807 layers of dimension 10 on 51000 samples are too many" \
    timeout 10 "$WGF" check "$SRC/experiments/fpe_ou_10d.ini" --set map.layers=9223372036854775807
# (the output batch counts too: `wgf check` pushes it through the map, and a run holds both; the
# fuzzer found this one hanging the sanitized check, 500 training and 2000 output samples)
expect 2 "map.layers: 1000000 layers of dimension 2 on 2500 samples are too many" timeout 10 "$WGF" check \
    "$SRC/experiments/genwgp_aggregation_2d.ini" --set map.layers=1000000
expect 2 "map.layers: 1000000 layers of dimension 10 on 51000 samples are too many" \
    timeout 10 "$WGF" check "$SRC/experiments/fpe_ou_10d.ini" --set map.layers=1000000

# every configuration error names its place: a --set value as such, an initial law by its key's line
expect 2 "^wgf: --set metric.plugin: plugin 'nosuch' (metric) not found" "$WGF" check "$good" \
    --set metric.plugin=nosuch
printf '1,2\n3,4\n' >"$tmp/pts.csv"
printf '[run]\ndim = 2\n[initial]\ntype = file\nfile = pts.csv\n[energy]\nplugin = fpe\n[map]\nplugin = affine\n' \
    >"$tmp/nodensity.ini"
expect 2 "nodensity.ini:4: initial.type: the file law has no density" "$WGF" check "$tmp/nodensity.ini"

# ---- selftest: wgrad against the energy's own eval, and a NaN says where it came from
# (entropyenergy.so holds entropyenergy, entropynods and nanenergy: links name the other two)
if [ -n "${WGF_TEST_PLUGINS:-}" ] && [ -f "$WGF_TEST_PLUGINS/entropyenergy.so" ]; then
    mkdir -p "$tmp/ent"
    ln -s "$WGF_TEST_PLUGINS/entropyenergy.so" "$tmp/ent/entropyenergy.so"
    ln -s "$WGF_TEST_PLUGINS/entropyenergy.so" "$tmp/ent/entropynods.so"
    ln -s "$WGF_TEST_PLUGINS/entropyenergy.so" "$tmp/ent/nanenergy.so"
    expect 0 "wgrad vs eval: E\[g.v\] vs dF/de along v .* PASS" "$WGF" selftest entropyenergy --plugin-path "$tmp/ent"
    # a wgrad without its D s term passes every check of itself, not this one
    expect 3 "wgrad vs eval: E\[g.v\] vs dF/de along v .* FAIL" "$WGF" selftest entropynods --plugin-path "$tmp/ent"
    grep -q "wgrad_vjp: sbar vs FD .* PASS" "$tmp/out" && ok || bad "entropynods: its own checks should pass"
    # NaN where x_1 < -2.5: on the random batch of 1000, or on the transport check's batch
    expect 3 "wgf: selftest: eval gives F = nan on the random batch of 1000 samples (first at sample [0-9]*: x = (-2\.[5-9]" \
        "$WGF" selftest nanenergy --plugin-path "$tmp/ent" --samples 1000 --seed 2
    expect 3 "wgf: selftest: wgrad vs eval: eval gives F = nan on 4000 samples" \
        "$WGF" selftest nanenergy --plugin-path "$tmp/ent"
    grep -q "worst relative error 0.00e+00" "$tmp/out" && grep -vq "^wgf: " "$tmp/out" &&
        bad "a NaN energy fails without saying where" || ok
else
    bad "tests/plugins/entropyenergy.so not built"
fi

# ---- a map's tape_create has no error channel: NULL is reported as out of memory (exit 1),
# by selftest naming the function, by a run naming the batch (guide-map.md)
if [ -n "${WGF_TEST_PLUGINS:-}" ] && [ -f "$WGF_TEST_PLUGINS/nulltape.so" ]; then
    expect 1 "selftest: map 'nulltape': tape_create returned NULL for 7 samples (out of memory" \
        "$WGF" selftest nulltape --plugin-path "$WGF_TEST_PLUGINS"
    expect 1 "wgf: out of memory for a batch of [0-9]* samples" "$WGF" run "$good" -o "$tmp/nulltape" --quiet \
        --plugin-path "$WGF_TEST_PLUGINS" --set map.plugin=nulltape --set output.plots=false
else
    bad "tests/plugins/nulltape.so not built"
fi

# ---- plugins built against the frozen ABI-2 headers say so
if [ -n "${WGF_TEST_PLUGINS:-}" ] && [ -f "$WGF_TEST_PLUGINS/abi2lagrangian.so" ]; then
    expect 0 "ABI:  2$" "$WGF" plugins abi2lagrangian --plugin-path "$WGF_TEST_PLUGINS"
    expect 0 "ABI:  2$" "$WGF" plugins abi2affine --plugin-path "$WGF_TEST_PLUGINS"
    # an ABI-2 metric has no diagonal blocks: preconditioner = block says so before the run
    expect 0 "metric.preconditioner: metric 'abi2lagrangian' (plugin ABI 2) gives no diagonal blocks" \
        "$WGF" check "$good" --plugin-path "$WGF_TEST_PLUGINS" --set metric.plugin=abi2lagrangian \
        --set metric.preconditioner=block
else
    bad "tests/plugins/abi2lagrangian.so not built"
fi

# ---- a run's config.ini runs again from anywhere: a relative plugin_path is written absolute
if [ -n "${WGF_TEST_PLUGINS:-}" ] && [ -f "$WGF_TEST_PLUGINS/goodenergy.so" ]; then
    mkdir -p "$tmp/rel/myplugs"
    cp "$WGF_TEST_PLUGINS/goodenergy.so" "$tmp/rel/myplugs/"
    printf '[run]\ndim = 2\nsamples = 50\nplugin_path = myplugs:nothere\n[initial]\ntype = gaussian\n[energy]\nplugin = goodenergy\n[map]\nplugin = affine\n[scheme]\nplugin = euler\nstep = 0.01\nt_end = 0.02\n[output]\nplots = false\n[reference]\nplugin = none\n' >"$tmp/rel/rel.ini"
    (cd "$tmp/rel" && "$WGF" run rel.ini -q -o "$tmp/relrun") >"$tmp/out" 2>&1 || bad "the run with a relative plugin_path failed"
    expect 0 ": ok" "$WGF" check "$tmp/relrun/config.ini"
    expect 0 ": ok" sh -c 'cd / && "$0" check "$1"' "$WGF" "$tmp/relrun/config.ini"
    relreal=$(cd "$tmp/rel" && pwd -P)
    grep -qx "plugin_path = $relreal/myplugs:$relreal/nothere" "$tmp/relrun/config.ini" && ok ||
        bad "config.ini: plugin_path is not the absolute path: $(grep plugin_path "$tmp/relrun/config.ini")"
    # the particle reference takes any energy whose eval reads x alone (goodenergy: dx/dt = -x)
    expect 0 "finished" "$WGF" run "$tmp/rel/rel.ini" -o "$tmp/relpart" --set reference.plugin=particles \
        --set scheme.t_end=0.1
    awk -F' = ' '/^mean_err = / { v = $2 } END { exit !(v != "" && v + 0 < 0.2) }' "$tmp/relpart/summary.ini" &&
        ok || bad "particles on goodenergy: no small mean_err in summary.ini"
    # and refuses, naming the term, one whose eval reads the log-density
    if [ -f "$WGF_TEST_PLUGINS/entropyenergy.so" ]; then
        cp "$WGF_TEST_PLUGINS/entropyenergy.so" "$tmp/rel/myplugs/"
        expect 2 "reference.plugin: particles handles fpe terms and energies whose eval reads the samples alone (potentials, interactions); energy 'entropyenergy' reads the model's log-density" \
            "$WGF" run "$tmp/rel/rel.ini" -o "$tmp/relpart2" --set reference.plugin=particles --set energy.plugin=entropyenergy
        # at wgf check time, as the run would
        expect 2 "wgf: --set reference.plugin: particles handles fpe terms and energies whose eval reads the samples alone" \
            "$WGF" check "$tmp/rel/rel.ini" --set reference.plugin=particles --set energy.plugin=entropyenergy
    fi
fi

# ---- an installed wgf is installed wherever it lies: a copy of the command and libwgf inside
# the build tree (as ./quickstart test installs into build/_prefix) searches no build-tree plugins
bdir=$(cd "$(dirname "$WGF")/.." && pwd)
if [ -x "$bdir/cli/.libs/wgf" ] && [ -f "$bdir/core/.libs/libwgf.so.0" ]; then
    inst="$bdir/_clitest.$$"
    mkdir -p "$inst/bin" "$inst/lib"
    cp "$bdir/cli/.libs/wgf" "$inst/bin/wgf"
    cp -L "$bdir/core/.libs/libwgf.so.0" "$inst/lib/libwgf.so.0"
    env -u WGF_PLUGIN_PATH LD_LIBRARY_PATH="$inst/lib" "$inst/bin/wgf" plugins >"$tmp/out" 2>&1
    grep "^plugins on the search path:" "$tmp/out" | grep -q "$bdir/plugins/" &&
        bad "an installed copy under the build tree searches the build tree's plugins" || ok
    grep -q "shadowed" "$tmp/out" && bad "an installed copy warns of shadowed plugins" || ok
    rm -rf "$inst"
    # the build tree's own command does search them
    env -u WGF_PLUGIN_PATH "$WGF" plugins >"$tmp/out" 2>&1
    grep "^plugins on the search path:" "$tmp/out" | grep -q "$bdir/plugins/energies/.libs" && ok ||
        bad "the uninstalled command does not search the build tree's plugins"
fi

# [target]: a missing file, a file of another dimension, a bad generator, a 2-D generator in
# 3-D, neither or both of generator and file, more training samples than a file's rows, a target
# key of the energy beside [target]: exit 2, each at FILE:LINE: target.KEY (or energy.KEY)
gen="$SRC/experiments/generative_moons.ini"
expect 0 ": ok" "$WGF" check "$gen"
# the moons file with `generator = moons` replaced by the line $1
target_ini() { sed "s|^generator = moons\$|$1|" "$gen" >"$tmp/target.ini"; }
target_ini "file = no-such.csv"
expect 2 "target.ini:29: target.file: cannot open .*no-such.csv" "$WGF" check "$tmp/target.ini"
printf 'x1,x2,x3\n1,2,3\n4,5,6\n' >"$tmp/three.csv"
target_ini "file = three.csv"
expect 2 "three.csv:2: expected 2 numbers .* found more" "$WGF" check "$tmp/target.ini"
awk 'BEGIN { for (i = 0; i < 50; i++) print i / 50, 1 - i / 50 }' >"$tmp/two.csv"
target_ini "file = two.csv"
expect 2 "target.ini:[0-9]*: target.samples: 1000 training samples asked for, and the file has 40" \
    "$WGF" check "$tmp/target.ini"
expect 0 ": ok" "$WGF" check "$tmp/target.ini" --set target.samples=40
expect 2 "\-\-set target.heldout: 50 rows, 49 of them held out" \
    "$WGF" check "$tmp/target.ini" --set target.samples=40 --set target.heldout=49
target_ini "; no generator"
expect 2 "target.ini:[0-9]*: target.generator: the target needs generator = mixture" \
    "$WGF" check "$tmp/target.ini"
expect 2 "target.file: a target is a file or a generator" \
    "$WGF" check "$gen" --set target.file=two.csv
expect 2 "\-\-set target.generator: 'spirals' is not allowed" \
    "$WGF" check "$gen" --set target.generator=spirals
expect 2 "generative_moons.ini:[0-9]*: target.generator: moons is a 2-D target and the run has dim = 3" \
    "$WGF" check "$gen" --set run.dim=3
expect 2 "energy.noise: the target is the \[target\] section's" \
    "$WGF" check "$gen" --set energy.noise=0.1

# a busy machine: with every core taken by another process, a run with the
# default thread count takes one thread (two threads sharing two cores with a
# busy process ran 15 times slower than one, each region waiting for a turn)
if [ "$(nproc 2>/dev/null || echo 64)" -le 16 ]; then
    spin=""
    for i in $(seq "$(nproc)"); do
        sh -c 'while :; do :; done' &
        spin="$spin $!"
    done
    expect 0 "" "$WGF" run "$good" -o "$tmp/busy" --quiet --set scheme.t_end=0.01 --set output.plots=false
    kill $spin
    grep -q "^threads = 1$" "$tmp/busy/summary.ini" && ok ||
        bad "default threads with every core busy: $(grep threads "$tmp/busy/summary.ini")"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
