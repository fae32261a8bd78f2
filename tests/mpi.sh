#!/bin/sh
# mpi.sh: a run over MPI ranks writes the serial run's files, byte for byte
# (history.csv but its wall_s column, samples, theta, summary.ini but its
# wall time): short runs of the affine and planar Ornstein-Uhlenbeck flows,
# aggregation, a generative MMD flow, the Wasserstein metric G, adaptive
# steps, JKO steps, GenWGP and the particles reference, each serial (no launcher), on 1 and on
# 2 ranks, and one on 3 ranks (blocks split unevenly); a killed serial run
# resumed on 2 ranks; an error ends every rank with one message. Skipped (77) unless wgf was built with --with-mpi.
# Run by make check (WGF_CLI, WGF_SRCDIR, WGF_PLUGIN_PATH, WGF_HAVE_MPI set there).
set -u
WGF=${WGF_CLI:-./cli/wgf}
SRC=${WGF_SRCDIR:-.}
if [ "${WGF_HAVE_MPI:-no}" != yes ]; then
    echo "SKIP: wgf was built without MPI (configure --with-mpi)"
    exit 77
fi
if ! command -v mpirun >/dev/null 2>&1; then
    echo "SKIP: wgf was built with MPI but mpirun is not on PATH"
    exit 77
fi
if [ "$(id -u)" = 0 ]; then # Open MPI refuses root unless told
    OMPI_ALLOW_RUN_AS_ROOT=1
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
fi
# Open MPI: no core binding (the tests share the machine), and 3 ranks on 2 cores
flags=
if mpirun --version 2>&1 | grep -q "Open MPI"; then
    flags="--bind-to none --oversubscribe"
fi
tmp=$(mktemp -d /tmp/wgf-mpi-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# same A B WHAT: B holds what A holds (wall times aside)
same() {
    a=$1 b=$2 what=$3
    cut -d, -f9 --complement "$a/history.csv" >"$tmp/ha"
    cut -d, -f9 --complement "$b/history.csv" >"$tmp/hb" 2>/dev/null
    cmp -s "$tmp/ha" "$tmp/hb" || { bad "$what: history.csv differs"; diff "$tmp/ha" "$tmp/hb" | head -4; return; }
    grep -v '^wall_seconds\|^threads' "$a/summary.ini" >"$tmp/sa"
    grep -v '^wall_seconds\|^threads' "$b/summary.ini" >"$tmp/sb" 2>/dev/null
    cmp -s "$tmp/sa" "$tmp/sb" || { bad "$what: summary.ini differs"; diff "$tmp/sa" "$tmp/sb" | head -4; return; }
    for sub in samples theta; do
        [ -d "$a/$sub" ] || continue
        (cd "$a/$sub" && ls) >"$tmp/la"
        (cd "$b/$sub" && ls) >"$tmp/lb"
        cmp -s "$tmp/la" "$tmp/lb" || { bad "$what: $sub/ holds other files"; return; }
        [ -s "$tmp/la" ] || { bad "$what: $sub/ is empty"; return; }
        for f in $(cat "$tmp/la"); do
            cmp -s "$a/$sub/$f" "$b/$sub/$f" || { bad "$what: $sub/$f differs"; return; }
        done
    done
    pass=$((pass + 1))
}

# trial NAME FILE RANKS... -- SETS...: the serial run, then one on each number of ranks
trial() {
    name=$1 file=$2
    shift 2
    ranks=
    while [ "$1" != -- ]; do
        ranks="$ranks $1"
        shift
    done
    shift
    if ! "$WGF" run "$file" -o "$tmp/$name-serial" --quiet --threads 1 --set output.plots=false "$@" \
        >"$tmp/out" 2>&1; then
        bad "$name: the serial run failed"
        cat "$tmp/out"
        return
    fi
    for r in $ranks; do
        if ! mpirun $flags -np "$r" "$WGF" run "$file" -o "$tmp/$name-$r" --quiet --threads 1 \
            --set output.plots=false "$@" >"$tmp/out" 2>&1; then
            bad "$name: the run on $r ranks failed"
            cat "$tmp/out"
            continue
        fi
        same "$tmp/$name-serial" "$tmp/$name-$r" "$name on $r ranks"
    done
}

E=$SRC/experiments
# 700 samples: three blocks of 256 (the last short), split 1 + 2 over two ranks
trial affine "$E/fpe_ou_10d_affine.ini" 1 2 -- --set scheme.t_end=0.05 --set run.samples=700 \
    --set output.every=5 --set output.samples=600
trial planar "$E/fpe_ou_10d.ini" 2 3 -- --set scheme.t_end=0.03 --set map.layers=4 --set run.samples=700 \
    --set output.every=3 --set output.samples=600 --set output.diagnostics_every=3
# the per-layer Gram blocks of the MINRES preconditioner: per-block sums gathered
trial precond "$E/fpe_ou_10d.ini" 2 3 -- --set scheme.t_end=0.03 --set map.layers=4 --set run.samples=700 \
    --set metric.preconditioner=block --set metric.tol=1e-6 --set metric.maxiter=50 \
    --set output.every=3 --set output.samples=600
trial aggregation "$E/aggregation_2d.ini" 2 -- --set scheme.t_end=0.03 --set map.layers=8 \
    --set run.samples=600 --set output.every=3 --set output.samples=600 --set output.diagnostics_every=3
trial mmd "$E/generative_moons.ini" 2 -- --set scheme.t_end=0.5 --set map.layers=8 --set run.samples=600 \
    --set output.every=2 --set output.samples=600 --set output.diagnostics_every=2 \
    --set reference.samples=300 --set target.samples=500
trial metric_g "$E/fpe_ou_10d_g.ini" 2 -- --set scheme.t_end=0.02 --set run.samples=700 \
    --set output.every=2 --set output.samples=600
# step control: rejected tries are decided by sums, the same on every rank
trial adaptive "$E/fpe_ou_10d_affine.ini" 2 -- --set scheme.plugin=adaptive --set scheme.t_end=0.1 \
    --set scheme.tol=1e-3 --set scheme.step=0.05 --set run.samples=700 --set output.samples=600
trial particles "$E/fpe_ou_10d_affine.ini" 2 -- --set scheme.t_end=0.03 --set run.samples=600 \
    --set output.every=3 --set output.samples=600 --set reference.type=particles \
    --set reference.particles=300 --set reference.particle_dt=0.005
if "$WGF" plugins jko >/dev/null 2>&1; then
    trial jko "$E/fpe_ou_10d_jko.ini" 1 2 -- --set scheme.t_end=0.15 --set run.samples=700 \
        --set output.every=1 --set output.samples=600
    trial genwgp "$E/genwgp_ou_2d.ini" 2 -- --set scheme.iterations=12 --set map.layers=8 \
        --set run.samples=600 --set output.every=4 --set output.samples=600 --set output.diagnostics_every=4
fi

# a serial run killed at step 20, resumed on 2 ranks (every rank reads the checkpoint, rank 0
# clears what will be written again): the uninterrupted run's files
sets="--quiet --threads 1 --set output.plots=false --set scheme.t_end=0.5 --set run.samples=600 --set output.every=10"
"$WGF" run "$E/fpe_ou_10d_affine.ini" -o "$tmp/resume-serial" $sets >"$tmp/out" 2>&1 || bad "resume: the serial run failed"
"$WGF" run "$E/fpe_ou_10d_affine.ini" -o "$tmp/resume-2" $sets >"$tmp/out" 2>&1 &
pid=$!
i=0
while kill -0 $pid 2>/dev/null && [ "$(cat "$tmp/resume-2/history.csv" 2>/dev/null | wc -l)" -lt 21 ] &&
    [ $i -lt 3000 ]; do
    sleep 0.01
    i=$((i + 1))
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
if mpirun $flags -np 2 "$WGF" run --resume "$tmp/resume-2" --quiet --threads 1 >"$tmp/out" 2>&1; then
    same "$tmp/resume-serial" "$tmp/resume-2" "a serial run resumed on 2 ranks"
else
    bad "resume on 2 ranks failed"
    cat "$tmp/out"
fi

# an error every rank meets: said once, exit status 2 (bad input), every rank ended
printf '[run]\ndim = 2\n[energy]\nplugin = nosuch\n' >"$tmp/bad.ini"
mpirun $flags -np 2 "$WGF" run "$tmp/bad.ini" -o "$tmp/bad" --quiet >"$tmp/out" 2>&1
st=$?
n=$(grep -c "energy.plugin" "$tmp/out")
if [ $st -ne 2 ] || [ "$n" -ne 1 ]; then
    bad "a bad experiment on 2 ranks: exit $st (2 expected), its message $n times (once expected)"
    cat "$tmp/out"
else
    pass=$((pass + 1))
fi

echo "mpi.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
