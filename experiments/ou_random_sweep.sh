#!/bin/sh
# ou_random_sweep.sh: the random-OU table of experiments/README.md. For each
# dimension d and map, runs experiments/fpe_ou_random.ini on problems
# `random 1` .. `random K` (K seeds) with a planar flow of L = 3d layers or the
# affine map, and prints the median, min and max of the symmetric KL (skl) at
# t = 0.9 and the median wall time.
#
#   experiments/ou_random_sweep.sh [-w WGF] [-d "2 5 10"] [-k "15 15 15"] [-m "affine planar"]
#                                  [-o DIR] [-- --set section.key=value ...]
#
# -k gives the seed count per dimension (one number: every dimension). Extra
# arguments after -- go to every planar run (the cures of the README are
# such --set options). Runs are one thread each, one after another.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
wgf=$here/../build/cli/wgf
dims="2 5 10 20 30"
seeds=15
maps="affine planar"
out=${TMPDIR:-/tmp}/ou_random_sweep
while [ $# -gt 0 ]; do
    case $1 in
    -w) wgf=$2; shift 2 ;;
    -d) dims=$2; shift 2 ;;
    -k) seeds=$2; shift 2 ;;
    -m) maps=$2; shift 2 ;;
    -o) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "ou_random_sweep.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
# the affine map has no layers key: its own copy of the file without it
grep -v '^layers' "$here/fpe_ou_random.ini" >"$out/affine.ini"
printf '%-4s %-7s %5s %12s %12s %12s %9s\n' d map seeds median_skl min_skl max_skl median_s
i=0
for d in $dims; do
    i=$((i + 1))
    k=$(echo "$seeds" | awk -v i=$i '{ print (NF >= i) ? $i : $NF }')
    for map in $maps; do
        : >"$out/$map-$d.txt"
        s=1
        while [ "$s" -le "$k" ]; do
            dir=$out/$map-$d-$s
            if [ "$map" = affine ]; then
                "$wgf" run "$out/affine.ini" -o "$dir" --threads 1 --set run.dim="$d" \
                    --set map.plugin=affine --set energy.mu="random $s" --set energy.sigma="random $s" \
                    >/dev/null
            else
                "$wgf" run "$here/fpe_ou_random.ini" -o "$dir" --threads 1 --set run.dim="$d" \
                    --set map.layers=$((3 * d)) --set energy.mu="random $s" \
                    --set energy.sigma="random $s" "$@" >/dev/null
            fi
            awk -F' = ' '$1 == "skl" { skl = $2 } $1 == "wall_seconds" { w = $2 }
                         END { print skl, w }' "$dir/summary.ini" >>"$out/$map-$d.txt"
            s=$((s + 1))
        done
        mw=$(sort -g -k2,2 "$out/$map-$d.txt" | awk '{ w[NR] = $2 }
            END { print (NR % 2) ? w[(NR + 1) / 2] : (w[NR / 2] + w[NR / 2 + 1]) / 2 }')
        sort -g "$out/$map-$d.txt" | awk -v d="$d" -v map="$map" -v mw="$mw" '
            { skl[NR] = $1 }
            END {
                m = (NR % 2) ? skl[(NR + 1) / 2] : (skl[NR / 2] + skl[NR / 2 + 1]) / 2
                printf "%-4s %-7s %5d %12.3g %12.3g %12.3g %9.1f\n", d, map, NR, m, skl[1], skl[NR], mw
            }'
    done
done
