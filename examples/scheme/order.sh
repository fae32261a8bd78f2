#!/bin/sh
# order.sh: the order of convergence of heun, with explicit Euler beside it.
#
# ou_heun.ini with one fixed batch of 200 training samples (then every run
# integrates the same ODE theta' = -M(theta)^-1 grad F(theta)) up to
# t = 0.4, at steps h and h/2 and, as the reference, with Heun at a step of
# 0.0005. The error is |theta(0.4) - theta_ref(0.4)| / |theta_ref(0.4)|; a
# method of order p divides it by 2^p when h is halved: 4 for Heun, 2 for
# Euler. Exit status 1 when a ratio is off.
#
# usage: [WGF=wgf] ./order.sh     (about 2 s)
set -eu

WGF=${WGF:-wgf}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/heun-order.XXXXXX")
trap 'rm -rf "$out"' EXIT

h=0.02
h2=0.01
href=0.0005

# run SCHEME STEP: into $out/SCHEME-STEP, writing only the first and the last theta
run() {
    "$WGF" run "$here/ou_heun.ini" --quiet -o "$out/$1-$2" \
        --set run.samples=200 --set scheme.samples=fixed --set scheme.t_end=0.4 \
        --set scheme.plugin="$1" --set scheme.step="$2" --set metric.tol=1e-12 \
        --set output.every=1000000 --set output.samples=100 --set output.write_samples=false \
        --set output.plots=false
}

# the final parameters of a run, one number a line
final_theta() {
    last=$(ls "$out/$1"/theta/step-*.bin | tail -n 1)
    od -An -v -tf8 -w8 "$last"
}

# relative distance of run $1's final theta from the reference's
error_of() {
    final_theta "$1" >"$out/a.txt"
    paste "$out/a.txt" "$out/ref.txt" | awk '
        NF != 2 { bad = 1 }
        { d = $1 - $2; e += d * d; r += $2 * $2 }
        END { if (bad || NR == 0 || r == 0) exit 1; printf "%.6e\n", sqrt(e / r) }'
}

run heun "$href"
final_theta "heun-$href" >"$out/ref.txt"

status=0
for scheme in heun euler; do
    run "$scheme" "$h"
    run "$scheme" "$h2"
    e1=$(error_of "$scheme-$h")
    e2=$(error_of "$scheme-$h2")
    case $scheme in
    heun) lo=3.5 hi=4.5 ;;
    euler) lo=1.75 hi=2.25 ;;
    esac
    verdict=$(awk -v a="$e1" -v b="$e2" -v lo="$lo" -v hi="$hi" \
        'BEGIN { r = a / b; printf "%.3f %s", r, (r >= lo && r <= hi) ? "ok" : "FAILED" }')
    printf '%-5s  error at h = %s: %s, at h = %s: %s, ratio %s (expected %s..%s)\n' \
        "$scheme" "$h" "$e1" "$h2" "$e2" "$verdict" "$lo" "$hi"
    case $verdict in *FAILED) status=1 ;; esac
done
exit $status
