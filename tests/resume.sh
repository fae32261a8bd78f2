#!/bin/sh
# resume.sh: `wgf run --resume DIR` continues a killed or interrupted run and
# ends with the uninterrupted run's outputs, byte for byte (history.csv but
# its wall_s column, samples, theta, summary.ini but wall_seconds). Runs are
# killed with SIGKILL at pseudo-random steps (a fixed seed), resumed, killed
# again, and resumed to the end (Euler, JKO and adaptive steps, GenWGP with Adam); a changed configuration, a finished run and
# a scheme that cannot resume are refused.
# Run by make check (WGF_CLI, WGF_SRCDIR and WGF_PLUGIN_PATH set there).
set -u
WGF=${WGF_CLI:-./cli/wgf}
SRC=${WGF_SRCDIR:-.}
tmp=$(mktemp -d /tmp/wgf-resume-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
kills=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# same A B: B holds what A holds (wall times aside)
same() {
    a=$1 b=$2 what=$3
    cut -d, -f9 --complement "$a/history.csv" >"$tmp/ha"
    cut -d, -f9 --complement "$b/history.csv" >"$tmp/hb"
    cmp -s "$tmp/ha" "$tmp/hb" || { bad "$what: history.csv differs"; diff "$tmp/ha" "$tmp/hb" | head -4; }
    if [ -f "$a/path.csv" ] || [ -f "$b/path.csv" ]; then
        cmp -s "$a/path.csv" "$b/path.csv" || { bad "$what: path.csv differs"; diff "$a/path.csv" "$b/path.csv" | head -4; }
    fi
    # (the wall time, and the thread count a default run takes from how busy the machine is, are
    # the run's circumstances, not its results)
    grep -v '^wall_seconds\|^threads' "$a/summary.ini" >"$tmp/sa"
    grep -v '^wall_seconds\|^threads' "$b/summary.ini" 2>/dev/null >"$tmp/sb"
    cmp -s "$tmp/sa" "$tmp/sb" || { bad "$what: summary.ini differs"; diff "$tmp/sa" "$tmp/sb" | head -4; }
    for sub in samples theta; do
        (cd "$a/$sub" && ls) >"$tmp/la"
        (cd "$b/$sub" && ls) >"$tmp/lb"
        cmp -s "$tmp/la" "$tmp/lb" || { bad "$what: $sub/ holds other files"; diff "$tmp/la" "$tmp/lb" | head -4; }
        for f in $(cat "$tmp/la"); do
            cmp -s "$a/$sub/$f" "$b/$sub/$f" || bad "$what: $sub/$f differs"
        done
    done
    ok
}

# rows DIR: lines of DIR/history.csv (0 while there is none)
rows() { if [ -f "$1/history.csv" ]; then wc -l <"$1/history.csv"; else echo 0; fi; }

# killat K SIG DIR -- command...: run the command, send SIG once DIR/history.csv
# has K lines (or the command ended), wait for it
killat() {
    k=$1 sig=$2 dir=$3
    shift 4
    "$@" >"$tmp/out" 2>&1 &
    pid=$!
    i=0
    while kill -0 $pid 2>/dev/null && [ "$(rows "$dir")" -lt "$k" ] && [ $i -lt 3000 ]; do
        sleep 0.01
        i=$((i + 1))
    done
    sleep "0.0$((k % 7))" # history.csv grows at the output cadence: land anywhere between
    kill -"$sig" $pid 2>/dev/null
    wait $pid 2>/dev/null
}

# points SEED N MAX: N pseudo-random kill points in [2, MAX], ascending
points() { awk -v s="$1" -v n="$2" -v m="$3" 'BEGIN { srand(s); for (i = 0; i < n; i++) print 2 + int(rand() * (m - 1)) }' | sort -n; }

# trial NAME FILE ROWS SEED SETS...: the uninterrupted run, then a run killed
# (SIGKILL) at two pseudo-random steps and resumed after each, to the end
trial() {
    name=$1 file=$2 max=$3 seed=$4
    shift 4
    "$WGF" run "$file" -o "$tmp/$name.ref" --quiet "$@" >"$tmp/out" 2>&1 ||
        { bad "$name: the uninterrupted run failed"; cat "$tmp/out"; return; }
    dir="$tmp/$name"
    rm -rf "$dir"
    first=1
    for k in $(points "$seed" 2 "$max"); do
        if [ $first -eq 1 ]; then
            killat "$k" KILL "$dir" -- "$WGF" run "$file" -o "$dir" --quiet "$@"
            first=0
        else
            killat "$k" KILL "$dir" -- "$WGF" run --resume "$dir" --quiet
        fi
        if grep -qs "status = finished" "$dir/summary.ini"; then
            continue # the run was faster than the kill
        fi
        kills=$((kills + 1))
        [ -f "$dir/checkpoint" ] || { bad "$name: killed after $k rows without a checkpoint"; return; }
        echo "$name: killed at $(($(rows "$dir") - 1)) rows written, resumed from step $(sed -n '2s/^step //p' "$dir/checkpoint")"
    done
    if ! grep -qs "status = finished" "$dir/summary.ini"; then
        "$WGF" run --resume "$dir" --quiet >"$tmp/out" 2>&1 ||
            { bad "$name: resume failed"; cat "$tmp/out"; return; }
    fi
    same "$tmp/$name.ref" "$dir" "$name"
}

affine="$SRC/experiments/fpe_ou_10d_affine.ini"
planar="$SRC/experiments/fpe_ou_10d.ini"
quiet_sets="--set output.plots=false"

# the affine OU experiment (Euler steps), three pairs of kill points; with
# lambda, history.csv's bound B(t) goes on from the row before the checkpoint
for seed in 1 2 3; do
    trial "affine$seed" "$affine" 150 $seed $quiet_sets --set scheme.t_end=0.75 --set output.every=10 \
        --set scheme.lambda=1
done
# a planar flow, short
trial planar "$planar" 40 4 $quiet_sets --set scheme.t_end=0.2 --set map.layers=4 --set run.samples=200 \
    --set output.samples=1000 --set output.every=5 --set output.diagnostics_every=2 --set scheme.lambda=1
# diagnostics that cannot be computed (one output sample): summary.ini's count
# and first failure carry over
trial diagfail "$planar" 80 7 $quiet_sets --set scheme.t_end=0.4 --set map.layers=4 --set run.samples=200 \
    --set output.samples=1 --set output.every=5 --set output.diagnostics_every=2
grep -q "^diagnostics = not computed [0-9]* times, first at step 0: " "$tmp/diagfail/summary.ini" && ok ||
    bad "diagfail: summary.ini does not count the diagnostics that failed"
# a reference that integrates in time (particles, steps that do not divide
# the scheme's): resumed, it is taken through the same times again
trial particles "$affine" 80 5 $quiet_sets --set scheme.t_end=0.4 --set output.every=10 \
    --set reference.type=particles --set reference.particles=300 --set reference.particle_dt=0.003
# implicit steps (jko), when built
if [ -f "${WGF_PLUGIN_PATH%%:*}/jko.so" ] || "$WGF" plugins jko >/dev/null 2>&1; then
    trial jko "$SRC/experiments/fpe_ou_10d_jko.ini" 16 6 $quiet_sets --set scheme.t_end=1 --set scheme.lambda=1
fi

# controlled steps (adaptive): t, the size tried first and the output times
# reached go on from the checkpoint; a first try of 0.3 and safety = 1 make
# rejected tries (history.csv's iterations), also of steps cut to an output time
for s in fresh fixed; do
    trial "adaptive-$s" "$affine" 75 8 $quiet_sets --set scheme.plugin=adaptive --set scheme.tol=1e-3 \
        --set scheme.t_end=0.75 --set scheme.every_t=0.25 --set output.every=3 --set scheme.samples=$s \
        --set scheme.step=0.3 --set scheme.safety=1 --set scheme.fac_max=3
done

# Ctrl-C: the checkpoint is the interrupted step's; resuming ends as the uninterrupted run
dir="$tmp/int"
killat 60 INT "$dir" -- "$WGF" run "$affine" -o "$dir" --quiet $quiet_sets --set scheme.t_end=0.75 --set output.every=10 \
    --set scheme.lambda=1
st=$?
[ $st -eq 130 ] && ok || bad "interrupted run exited $st, expected 130"
grep -q "status = interrupted" "$dir/summary.ini" && ok || bad "no interrupted summary"
step=$(sed -n 's/^steps = //p' "$dir/summary.ini")
grep -qx "step $step" "$dir/checkpoint" && ok || bad "the checkpoint is not the interrupted step $step's"
"$WGF" run --resume "$dir" --quiet >"$tmp/out" 2>&1 && ok || { bad "resume after Ctrl-C failed"; cat "$tmp/out"; }
same "$tmp/affine1.ref" "$dir" "Ctrl-C"

# refusals, exit 2 and one line each
expect() {
    want=$1 pattern=$2
    shift 2
    "$@" >"$tmp/out" 2>&1
    got=$?
    if [ "$got" -ne "$want" ]; then
        bad "$* exited $got, expected $want"; sed 's/^/    /' "$tmp/out"; return
    fi
    grep -q -- "$pattern" "$tmp/out" && ok || { bad "$*: no line matching '$pattern'"; sed 's/^/    /' "$tmp/out"; }
}
expect 2 "the run there finished (summary.ini: status = finished): nothing to resume" \
    "$WGF" run --resume "$tmp/affine1"
dir="$tmp/changed"
killat 40 KILL "$dir" -- "$WGF" run "$affine" -o "$dir" --quiet $quiet_sets --set scheme.t_end=0.75 --set output.every=10
expect 2 "config.ini: scheme.step: '0.01' (--set) differs from the checkpoint's '0.005'" \
    "$WGF" run --resume "$dir" --set scheme.step=0.01
sed 's/^tikhonov = .*/tikhonov = 0.002/' "$dir/config.ini" >"$tmp/edited" && cp "$tmp/edited" "$dir/config.ini"
expect 2 "config.ini:[0-9]*: metric.tikhonov: '0.002' differs from the checkpoint's '1e-3'" \
    "$WGF" run --resume "$dir"
mkdir "$tmp/empty"
expect 2 "config.ini" "$WGF" run --resume "$tmp/empty"
cp "$tmp/int/config.ini" "$tmp/empty/config.ini"
expect 2 "no checkpoint: nothing to resume" "$WGF" run --resume "$tmp/empty"
printf 'wgf checkpoint 1\nstep 3\n' >"$tmp/empty/checkpoint"
expect 2 "not a complete wgf checkpoint" "$WGF" run --resume "$tmp/empty"
expect 2 "does not apply" "$WGF" run "$affine" --resume "$tmp/int"
# GenWGP with Adam resumes (its moments, the betas' powers and the evaluation count go with the
# checkpoint; path.csv goes on from the checkpoint's); with L-BFGS, whose memory lives in
# liblbfgs, it writes no checkpoint and a killed run is refused; when built
if "$WGF" plugins genwgp >/dev/null 2>&1; then
    for s in fixed fresh; do
        trial "genwgp-$s" "$SRC/experiments/genwgp_ou_2d.ini" 150 9 $quiet_sets --set scheme.iterations=150 \
            --set output.every=10 --set scheme.samples=$s
    done
    dir="$tmp/genwgp"
    "$WGF" run "$SRC/experiments/genwgp_ou_2d.ini" -o "$dir" --quiet $quiet_sets --set scheme.iterations=20 \
        --set scheme.optimizer=lbfgs >/dev/null 2>&1
    rm -f "$dir/summary.ini" # as if killed
    [ -f "$dir/checkpoint" ] && bad "genwgp with L-BFGS wrote a checkpoint" || ok
    expect 2 "scheme.plugin: scheme 'genwgp' cannot resume a run" "$WGF" run --resume "$dir"
fi
if [ -n "${WGF_TEST_PLUGINS:-}" ] && [ -f "$WGF_TEST_PLUGINS/ownscheme.so" ]; then
    dir="$tmp/own"
    "$WGF" run "$affine" -o "$dir" --quiet --plugin-path "$WGF_TEST_PLUGINS" $quiet_sets \
        --set scheme.plugin=ownscheme --set scheme.t_end=0.05 >/dev/null 2>&1
    rm -f "$dir/summary.ini" # as if killed
    [ -f "$dir/checkpoint" ] && bad "a scheme that cannot resume wrote a checkpoint" || ok
    expect 2 "scheme.plugin: scheme 'ownscheme' cannot resume a run" \
        "$WGF" run --resume "$dir" --plugin-path "$WGF_TEST_PLUGINS"
fi

echo "resume.sh: $kills kill points, $pass passed, $fail failed"
[ $fail -eq 0 ]
