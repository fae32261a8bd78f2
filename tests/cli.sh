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
expect 0 ": ok" timeout 10 "$WGF" check "$good" --set run.dim=2000 --set energy.mu=0 \
    --set energy.sigma=identity --set initial.cov=identity
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
# a map's sizes: layers whose parameter count wraps, or whose tapes cannot fit
expect 2 "map.layers: 9223372036854775807 layers of dimension 10 on 1000 samples are too many" \
    timeout 10 "$WGF" check "$SRC/experiments/fpe_ou_10d.ini" --set map.layers=9223372036854775807
expect 2 "map.layers: 1000000 layers of dimension 10 on 1000 samples are too many" \
    timeout 10 "$WGF" check "$SRC/experiments/fpe_ou_10d.ini" --set map.layers=1000000

# every configuration error names its place: a --set value as such, an initial law by its key's line
expect 2 "^wgf: --set metric.plugin: plugin 'nosuch' (metric) not found" "$WGF" check "$good" \
    --set metric.plugin=nosuch
printf '1,2\n3,4\n' >"$tmp/pts.csv"
printf '[run]\ndim = 2\n[initial]\ntype = file\nfile = pts.csv\n[energy]\nplugin = fpe\n[map]\nplugin = affine\n' \
    >"$tmp/nodensity.ini"
expect 2 "nodensity.ini:4: initial.type: the file law has no density" "$WGF" check "$tmp/nodensity.ini"

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
