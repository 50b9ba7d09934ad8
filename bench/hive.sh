#!/usr/bin/env bash
# Registry hive benchmark: `strata reg query -r HKLM\SOFTWARE` of a Windows image whose base
# layer has a SOFTWARE hive of about --mib MiB (default 50) and whose three layers above each
# carry a delta hive (`hive-bench generate`, bench/src/hive.rs: 49,600 version keys, ten values
# each; every delta changes about 1% of them), against `hivexregedit --export` of the base hive
# alone (Debian libwin-hivex-perl over libhivex), in the same run:
#   - wall time, the median of --runs runs (hyperfine), output to /dev/null;
#   - peak RSS (GNU time's %M) of one run of each;
#   - strata with --layer 0 (the base alone, the same work as hivex's) beside the merged query.
# Before timing, the base-only outputs are checked to name the same number of keys.
#
# Usage: bench/hive.sh [--runs N] [--mib N] [--dir DIR]
# Needs (installed when missing, as root): hyperfine, time, libwin-hivex-perl.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
mib=50
dir=target/bench/hive
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --mib) mib=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "usage: $0 [--runs N] [--mib N] [--dir DIR]" >&2; exit 2 ;;
    esac
done

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
command -v hivexregedit >/dev/null || need+=(libwin-hivex-perl)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p strata-client --bin strata -p strata-bench --bin hive-bench
rm -rf "$dir" && mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
trap 'rm -rf "$dir"' EXIT
target/release/hive-bench generate "$dir" --mib "$mib"

strata="$PWD/target/release/strata --home $dir/home"
$strata import "$dir/base.tar" win:0 >/dev/null
for d in 1 2 3; do
    $strata import --parent "win:$((d - 1))" "$dir/delta$d.tar" "win:$d" >/dev/null
done

key='HKLM\SOFTWARE'
ours=$($strata reg query -r --layer 0 win:3 "$key" | grep -c '^HKLM')
theirs=$(hivexregedit --export "$dir/SOFTWARE" "\\" 2>/dev/null | grep -c '^\[')
[ "$ours" = "$theirs" ] || { echo "base-only key counts differ: strata $ours, hivex $theirs" >&2; exit 1; }
merged=$($strata reg query -r win:3 "$key" | grep -c '^HKLM')
echo "keys: base $ours (strata and hivex agree), merged over 3 deltas $merged" >&2

hyperfine --runs "$runs" --warmup 1 --style none --export-json "$dir/times.json" \
    -n "strata, base + 3 deltas" "$strata reg query -r win:3 '$key' >/dev/null" \
    -n "strata, base alone" "$strata reg query -r --layer 0 win:3 '$key' >/dev/null" \
    -n "hivexregedit, base alone" "hivexregedit --export $dir/SOFTWARE '\\' >/dev/null 2>&1" >/dev/null

rss() { /usr/bin/time -f %M sh -c "$1 >/dev/null 2>&1" 2>&1 | tail -1; }
rss_merged=$(rss "$strata reg query -r win:3 '$key'")
rss_base=$(rss "$strata reg query -r --layer 0 win:3 '$key'")
rss_hivex=$(rss "hivexregedit --export $dir/SOFTWARE '\\'")

python3 - "$dir/times.json" "$rss_merged" "$rss_base" "$rss_hivex" "$(stat -c %s "$dir/SOFTWARE")" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
rss = [int(x) / 1024 for x in sys.argv[2:5]]
size = int(sys.argv[5]) / 1048576
print(f"reg query -r HKLM\\SOFTWARE: base hive {size:.1f} MiB, median of {len(results[0]['times'])} runs")
for r, m in zip(results, rss):
    print(f"  {r['command']:<28} {r['median']:7.3f} s   peak RSS {m:6.1f} MiB")
hivex = results[2]["median"]
print(f"  hivexregedit / strata (base + 3 deltas): {hivex / results[0]['median']:.1f}x time, "
      f"{rss[2] / rss[0]:.2f}x RSS")
PY
