#!/usr/bin/env bash
# Registry benchmark: strata-registry beside the reference registry (Debian's docker-registry,
# CNCF distribution 2.8), both on loopback with filesystem storage in the same directory tree,
# measured in the same run:
#   - monolithic push of a 1 GiB blob (POST, then PUT ?digest= with the whole body, via curl)
#   - GET of that blob (curl to /dev/null)
#   - manifest GET requests/s (wrk, 32 connections, 2 threads)
#   - peak RSS (VmHWM) of each registry process after a 1 GiB push and after a 4 GiB push
#
# Both registries run side by side; push and GET are repeated --runs times (default 5, after one
# unmeasured warm-up push each), alternating which registry goes first in each round, every round
# is printed, and the median is reported.
#
# Each push starts after a `sync`: strata fsyncs what it stores and distribution does not, and on
# ext4 (data=ordered) an fsync commits the journal, which first writes out the dirty data of every
# file in the transaction - so without the sync, a strata push that follows a distribution push
# pays for writing distribution's gigabyte to disk too. `--no-sync` measures it that way, to see
# the effect (it is what made an older version of this script report 1.55x instead of 3-4x).
#
# Usage: bench/registry.sh [--size-mib N] [--dir DIR] [--seconds S] [--runs R] [--no-sync]
#   --dir defaults to target/bench/registry (on disk); pass a tmpfs path (/dev/shm/x) to take the
#   disk out of the comparison.
# Needs (installed when missing, as root): curl, wrk, docker-registry.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=1024
dir=target/bench/registry
seconds=10
runs=5
sync_between=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-sync) sync_between=0; shift ;;
        --size-mib) size_mib=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: $0 [--size-mib N] [--dir DIR] [--seconds S] [--runs R] [--no-sync]" >&2; exit 2 ;;
    esac
done

need=()
for tool in curl wrk docker-registry; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p strata-registry
strata_bin=target/release/strata-registry

rm -rf "$dir" && mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source bench/lib.sh

blob=$dir/blob.bin
big=$dir/big.bin
echo "creating a ${size_mib} MiB and a $(( size_mib * 4 )) MiB random blob in $dir ..." >&2
digest=$(make_blob "$size_mib" "$blob")
big_digest=$(make_blob "$(( size_mib * 4 ))" "$big")

mb() { awk -v b="$(( size_mib * 1024 * 1024 ))" -v s="$1" 'BEGIN {printf "%.0f", b / s / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

declare -A base_of pid_of push_t pull_t push_s pull_s rps rss rss_big
for name in distribution strata; do
    start_registry "$name"
    base_of[$name]=$base
    pid_of[$name]=$pid
    # One unmeasured push first: a VM pays for the first touch of guest memory (page cache,
    # tmpfs), which would otherwise land on whichever registry happens to go first.
    push "$base" "$blob" "$digest" warmup >/dev/null
done
# round OP -> runs OP (push or pull) on both registries, alternating which goes first, and
# prints each round.
rounds() {
    local op=$1 run name order t line
    for run in $(seq "$runs"); do
        if (( run % 2 )); then order="distribution strata"; else order="strata distribution"; fi
        line="  $op round $run:"
        for name in $order; do
            if [ "$op" = push ]; then
                if (( sync_between )); then sync; fi
                t=$(push "${base_of[$name]}" "$blob" "$digest" "bench$run")
                push_t[$name]+="$t "
            else
                t=$(pull "${base_of[$name]}" "$digest" "bench$run")
                pull_t[$name]+="$t "
            fi
            line+=" $name $(mb "$t") MB/s"
        done
        echo "$line"
    done
}
rounds push
for name in distribution strata; do
    rss[$name]=$(peak_rss_mib "${pid_of[$name]}")
    push_s[$name]=$(printf '%s\n' ${push_t[$name]} | median)
done
rounds pull
for name in distribution strata; do
    pull_s[$name]=$(printf '%s\n' ${pull_t[$name]} | median)
    push_manifest "${base_of[$name]}" bench
    rps[$name]=$(manifest_rps "${base_of[$name]}" bench)
done
for name in distribution strata; do
    kill "${pid_of[$name]}"; wait "${pid_of[$name]}" 2>/dev/null || true
done
for name in distribution strata; do
    start_registry "$name"
    push "$base" "$big" "$big_digest" bench >/dev/null
    rss_big[$name]=$(peak_rss_mib "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
done

echo "registry bench: ${size_mib} MiB blob, storage under $dir, loopback, same run, median of $runs$( (( sync_between )) || echo ', no sync between pushes')"
printf '  %-34s %14s %14s %8s\n' "" "distribution" "strata" "ratio"
d_push=$(mb "${push_s[distribution]}"); s_push=$(mb "${push_s[strata]}")
d_pull=$(mb "${pull_s[distribution]}"); s_pull=$(mb "${pull_s[strata]}")
printf '  %-34s %11s MB/s %9s MB/s %7sx\n' "push (POST + PUT, curl)" "$d_push" "$s_push" "$(ratio "$s_push" "$d_push")"
printf '  %-34s %11s MB/s %9s MB/s %7sx\n' "blob GET (curl)" "$d_pull" "$s_pull" "$(ratio "$s_pull" "$d_pull")"
printf '  %-34s %12s rps %10s rps %7sx\n' "manifest GET (wrk -c32)" "${rps[distribution]}" "${rps[strata]}" "$(ratio "${rps[strata]}" "${rps[distribution]}")"
printf '  %-34s %10s MiB %10s MiB %7sx\n' "peak RSS after ${size_mib} MiB push" "${rss[distribution]}" "${rss[strata]}" "$(ratio "${rss[strata]}" "${rss[distribution]}")"
printf '  %-34s %10s MiB %10s MiB %7sx\n' "peak RSS after $(( size_mib * 4 )) MiB push" "${rss_big[distribution]}" "${rss_big[strata]}" "$(ratio "${rss_big[strata]}" "${rss_big[distribution]}")"
