#!/bin/sh
# mpi_scaling.sh [BUILD [CASE]]: strong and weak scaling of `wgf run` over MPI
# ranks, one thread per rank: N samples on 1 rank, N on 2 ranks (strong), 2N
# on 2 ranks (weak). CASE ou (the default): the 10-D planar Ornstein-Uhlenbeck
# run (experiments/fpe_ou_10d.ini, 3 steps) for N = 1e4 and 1e5, where the
# map's passes are nearly all of the work; aggregation: the 2-D aggregation
# run (experiments/aggregation_2d.ini, 10 steps) for N = 1e4, where the
# energy's O(N^2) pair sums weigh more than the map's passes. BUILD is a
# build directory configured with --with-mpi (default build-mpi). Prints, per
# run, the run's wall time (summary.ini) and every rank's CPU time (user +
# system, from /usr/bin/time): on a machine that other work keeps busy, the
# CPU times show how the work is shared when the wall times cannot.
# Run from the source directory: sh bench/mpi_scaling.sh build-mpi [CASE]
set -u
BUILD=${1:-build-mpi}
CASE=${2:-ou}
WGF=$BUILD/cli/wgf
tmp=$(mktemp -d /tmp/wgf-scaling-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ "$(id -u)" = 0 ]; then
    OMPI_ALLOW_RUN_AS_ROOT=1
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
fi
# Open MPI: a rank that waits in a collective yields its core rather than spin (the machine's
# other work gets it), and ranks are not bound to cores (the system places them where it can),
# unless the environment says otherwise
OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
OMPI_MCA_hwloc_base_binding_policy=${OMPI_MCA_hwloc_base_binding_policy:-none}
export OMPI_MCA_mpi_yield_when_idle OMPI_MCA_hwloc_base_binding_policy
# each rank's CPU time into its own file ($PMI_RANK under MPICH)
cat >"$tmp/timed" <<'EOF'
#!/bin/sh
out=$1
shift
exec /usr/bin/time -f "%U %S" -o "$out.${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}" "$@"
EOF
chmod +x "$tmp/timed"

# run R N FILE SETS...: FILE with N samples on R ranks
run() {
    R=$1 N=$2 file=$3
    shift 3
    out=$tmp/run-$R-$N
    mpirun -np "$R" "$tmp/timed" "$out.cpu" "$WGF" run "$file" -o "$out" --threads 1 --quiet \
        --set run.samples="$N" --set output.every=1000 --set output.samples=1000 \
        --set output.diagnostics_every=1000 --set output.plots=false "$@" \
        >/dev/null 2>"$tmp/err" || { echo "R=$R N=$N failed:"; cat "$tmp/err"; return; }
    wall=$(sed -n 's/^wall_seconds = //p' "$out/summary.ini")
    cpu=$(for f in "$out".cpu.*; do awk '{printf "%.2f ", $1 + $2}' "$f"; done)
    printf 'ranks %d  N %7d  wall %6.2f s  cpu per rank %s s  (load %s)\n' "$R" "$N" "$wall" "$cpu" \
        "$(cut -d' ' -f1 /proc/loadavg)"
    rm -rf "$out" "$out".cpu.*
}
# three runs of one case: N on 1 rank, N on 2, 2N on 2
scaling() {
    N=$1
    shift
    run 1 "$N" "$@"
    run 2 "$N" "$@"
    run 2 $((2 * N)) "$@"
}
case $CASE in
ou)
    for N in 10000 100000; do
        scaling $N experiments/fpe_ou_10d.ini --set scheme.t_end=0.015
    done
    ;;
aggregation)
    scaling 10000 experiments/aggregation_2d.ini --set scheme.t_end=0.05
    ;;
*)
    echo "mpi_scaling.sh: CASE is ou or aggregation (got '$CASE')" >&2
    exit 2
    ;;
esac
