#!/usr/bin/env bash
# Load benchmark: --clients concurrent clients (default 500) for --seconds (default 60) against
# strata-registry and the reference registry (Debian's docker-registry, CNCF distribution 2.8),
# one after the other in the same run, each with filesystem storage under --dir. The mix, from
# bench/src/load.rs: 60 % manifest GETs, 30 % GETs of 64 KiB blobs, 10 % small pushes (config
# blob, layer blob, manifest). Prints requests/s, p50/p99 latency, errors and peak RSS of each.
#
# Usage: bench/load.sh [--clients N] [--seconds S] [--dir DIR]
# Needs (installed when missing, as root): curl, docker-registry, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

clients=500
seconds=60
dir=target/bench/load
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) clients=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "usage: $0 [--clients N] [--seconds S] [--dir DIR]" >&2; exit 2 ;;
    esac
done

need=()
for tool in curl docker-registry python3; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p strata-registry -p strata-bench
strata_bin=target/release/strata-registry
load_bin=target/release/load-bench
# The load generator holds one socket per client.
ulimit -n "$(ulimit -Hn)"

rm -rf "$dir" && mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source bench/lib.sh

for name in distribution strata; do
    start_registry "$name"
    "$load_bin" "$base" --clients "$clients" --seconds "$seconds" > "$dir/$name.json"
    echo "$(peak_rss_mib "$pid")" > "$dir/$name.rss"
    kill "$pid"; wait "$pid" 2>/dev/null || true
done

python3 - "$dir" "$clients" "$seconds" <<'PY'
import json, sys
d, clients, seconds = sys.argv[1], sys.argv[2], sys.argv[3]
r = {n: json.load(open(f"{d}/{n}.json")) for n in ("distribution", "strata")}
rss = {n: float(open(f"{d}/{n}.rss").read()) for n in r}
print(f"load bench: {clients} clients for {seconds} s each, same run (60 % manifest GET, 30 % blob GET, 10 % push)")
print(f"  {'':28} {'distribution':>14} {'strata':>14} {'ratio':>8}")
def row(label, a, b, unit, better_high=True):
    ratio = (b / a) if a else float('inf')
    print(f"  {label:28} {a:>10.1f} {unit:3} {b:>10.1f} {unit:3} {ratio:>7.2f}x")
row("requests/s", r["distribution"]["rps"], r["strata"]["rps"], "")
row("p50 latency", r["distribution"]["p50_ms"], r["strata"]["p50_ms"], "ms")
row("p99 latency", r["distribution"]["p99_ms"], r["strata"]["p99_ms"], "ms")
for kind in ("manifest_get", "blob_get", "push"):
    row(f"  {kind} p99", r["distribution"]["kinds"][kind]["p99_ms"], r["strata"]["kinds"][kind]["p99_ms"], "ms")
print(f"  {'errors':28} {r['distribution']['errors']:>14} {r['strata']['errors']:>14}")
row("peak RSS", rss["distribution"], rss["strata"], "MiB")
PY
