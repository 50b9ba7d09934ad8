#!/usr/bin/env bash
# Garbage-collection benchmark, in one run:
#   1. One cycle over 10,000 blobs / 1,000 manifests in 10 repositories, half of the manifests
#      untagged (so 500 manifests and 5,000 blobs are garbage): `strata-registry gc` against the
#      filesystem and against the in-process S3 server of the tests (its own process), wall time
#      and peak RSS; beside it the reference registry's offline collector (`docker-registry
#      garbage-collect --delete-untagged`, registry stopped) over the same images on the
#      filesystem.
#   2. Push throughput (3 alternating rounds of --seconds; 8 clients, images of 2 x 64 KiB layers, each push retagging `latest` so
#      the previous image becomes garbage) with a collector running every second vs none.
#      Target: >= 0.9x.
#
# Usage: bench/gc.sh [--manifests N] [--seconds S] [--dir DIR]
# Needs (installed when missing, as root): curl, docker-registry, python3, time.
set -euo pipefail
cd "$(dirname "$0")/.."

manifests=1000
seconds=10
dir=target/bench/gc
while [ $# -gt 0 ]; do
    case "$1" in
        --manifests) manifests=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "usage: $0 [--manifests N] [--seconds S] [--dir DIR]" >&2; exit 2 ;;
    esac
done
need=()
for tool in curl docker-registry python3; do command -v "$tool" >/dev/null || need+=("$tool"); done
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p strata-registry -p strata-bench
strata_bin=$PWD/target/release/strata-registry
gc_bench=$PWD/target/release/gc-bench

rm -rf "$dir" && mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh

# Collection settings for every strata process here: no grace, the shortest claim window,
# untagged manifests collected, no background cycles unless STRATA_GC_INTERVAL says so.
export STRATA_GC_INTERVAL=0s STRATA_GC_GRACE=0s STRATA_GC_CLAIM_TTL=4s STRATA_GC_DELETE_UNTAGGED=true

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
# timed NAME CMD... -> NAME.time: "seconds peak-KiB"; NAME.out, NAME.err: its output
timed() {
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$dir/$name.time" "$@" > "$dir/$name.out" 2> "$dir/$name.err"
}

echo "== populating: $manifests manifests x 10 blobs, on the filesystem (strata, distribution) and S3 (strata)"
start_registry strata
"$gc_bench" populate "$base" --manifests "$manifests" > "$dir/populate-fs.json"
stop
start_registry distribution
"$gc_bench" populate "$base" --manifests "$manifests" > "$dir/populate-dist.json"
stop

"$gc_bench" s3 > "$dir/s3.endpoint" 2>"$dir/s3.log" &
pids+=("$!")
for _ in $(seq 100); do [ -s "$dir/s3.endpoint" ] && break; sleep 0.1; done
s3_env=(env STRATA_STORAGE_TYPE=s3 STRATA_STORAGE_S3_BUCKET=bench STRATA_STORAGE_S3_PATH_STYLE=true
    "STRATA_STORAGE_S3_ENDPOINT=$(head -1 "$dir/s3.endpoint")"
    STRATA_STORAGE_S3_ACCESS_KEY_ID=strata-test-access STRATA_STORAGE_S3_SECRET_ACCESS_KEY=strata-test-secret)
port=$(free_port)
RUST_LOG=warn "${s3_env[@]}" "$strata_bin" --listen "127.0.0.1:$port" 2>"$dir/strata-s3.log" &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
"$gc_bench" populate "http://127.0.0.1:$port" --manifests "$manifests" > "$dir/populate-s3.json"
stop

echo "== one cycle each (claims from the pushes expire first)"
sleep 5
RUST_LOG=warn timed strata-fs "$strata_bin" gc --json --root "$dir/strata-data"
RUST_LOG=warn timed strata-s3 "${s3_env[@]}" "$strata_bin" gc --json
timed distribution docker-registry garbage-collect --delete-untagged "$dir/distribution.yml"

echo "== push throughput, ${seconds}s each, alternating: no collector, a cycle every second (3 rounds)"
for round in 1 2 3; do
    for mode in off on; do
        if [ "$mode" = on ]; then export STRATA_GC_INTERVAL=1s; else export STRATA_GC_INTERVAL=0s; fi
        start_registry strata
        "$gc_bench" push "$base" --seconds "$seconds" > "$dir/push-$mode-$round.json"
        if [ "$mode" = on ]; then
            curl -sf "$base/metrics" | grep -E '^strata_gc_(cycles_total|deleted_total)' > "$dir/push-on-$round.metrics" || true
        fi
        stop
    done
done

python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
def timing(name):
    seconds, kib = open(f"{d}/{name}.time").read().split()[-2:]
    return float(seconds), int(kib) / 1024
pop = json.load(open(f"{d}/populate-fs.json"))
print(f"gc bench: one cycle over {pop['blobs']} blobs / {pop['manifests']} manifests (half untagged), same run")
print(f"  {'':34} {'seconds':>9} {'peak RSS':>10}  freed")
for name, label in (("strata-fs", "strata-registry gc (filesystem)"), ("strata-s3", "strata-registry gc (in-process S3)")):
    s, rss = timing(name)
    r = json.load(open(f"{d}/{name}.out"))
    print(f"  {label:34} {s:>9.2f} {rss:>7.1f} MiB  {r['blobs_deleted']} blobs, {r['manifests_deleted']} manifests, {r['bytes_freed']/1048576:.1f} MiB")
s, rss = timing("distribution")
out = open(f"{d}/distribution.out").read() + open(f"{d}/distribution.err").read()
deleted = out.count("blob eligible for deletion")
print(f"  {'distribution garbage-collect (fs)':34} {s:>9.2f} {rss:>7.1f} MiB  {deleted} blobs (offline: registry stopped)")
rates = {m: [json.load(open(f"{d}/push-{m}-{r}.json")) for r in (1, 2, 3)] for m in ("off", "on")}
errors = {m: sum(x["errors"] for x in rates[m]) for m in rates}
ratios = sorted(on["pushes_per_second"] / off["pushes_per_second"] for off, on in zip(rates["off"], rates["on"]))
print("push throughput (pushes/s, 3 alternating rounds): without a collector "
      + " ".join(f"{x['pushes_per_second']:.1f}" for x in rates["off"])
      + "; with a cycle every second " + " ".join(f"{x['pushes_per_second']:.1f}" for x in rates["on"]))
print(f"  ratio per round {' '.join(f'{r:.2f}' for r in ratios)}; median {ratios[1]:.2f}x (errors: {errors['off']} / {errors['on']})")
print("  during the last round: " + open(f"{d}/push-on-3.metrics").read().replace("\n", "; ").rstrip("; "))
PY
