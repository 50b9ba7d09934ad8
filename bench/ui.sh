#!/usr/bin/env bash
# Web UI benchmark: time to first byte (curl's time_starttransfer, in milliseconds) of the UI's
# pages and JSON API on a registry holding many repositories and a repository with many tags,
# and the registry's peak RSS, in one run on loopback with filesystem storage and no auth:
#   1. `GET /ui/` (the first page of 50 repositories) with --repositories repositories (default
#      10,000) of one image each, and `GET /ui/api/repositories`, the same view as JSON;
#   2. `GET /ui/r/bench/tags` (the first page of 100 tags) of a repository with --tags tags
#      (default 1,000), each pointing at its own manifest, and `GET /ui/api/tags?repository=`.
#   3. Peak RSS (VmHWM) of the registry after the pushes, and after the pages.
# The first visit of each page is measured once, right after filling (the UI keeps what it
# learns from manifests, so every later visit is warm); the second visit and the JSON figures
# are the median of --runs requests (default 5). Then the registry is restarted over the same
# data and the JSON calls are timed once more on the fresh process (the operating system's cache
# is warm by then, the UI's is empty), to compare with the pages' first visits.
# `ui-bench fill` pushes the images through the distribution API (monolithic uploads, 32 images
# in flight).
#
# Usage: bench/ui.sh [--repositories N] [--tags T] [--runs R] [--dir DIR]
# Needs (installed when missing, as root): curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

repositories=10000
tags=1000
runs=5
dir=target/bench/ui
while [ $# -gt 0 ]; do
    case "$1" in
        --repositories) repositories=$2; shift 2 ;;
        --tags) tags=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "usage: $0 [--repositories N] [--tags T] [--runs R] [--dir DIR]" >&2; exit 2 ;;
    esac
done
for n in "$repositories" "$tags" "$runs"; do
    case "$n" in
        '' | *[!0-9]* | 0) echo "$0: --repositories, --tags and --runs take numbers >= 1" >&2; exit 2 ;;
    esac
done

need=()
for tool in curl python3; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p strata-registry -p strata-bench
strata_bin=$PWD/target/release/strata-registry
ui_bench=$PWD/target/release/ui-bench

rm -rf "$dir" && mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh

# ttfb PATH -> prints "milliseconds bytes" of one GET; fails unless it answers 200
ttfb() {
    local out code secs bytes
    out=$(curl -sS -o /dev/null -w '%{http_code} %{time_starttransfer} %{size_download}' "$base$1")
    read -r code secs bytes <<<"$out"
    [ "$code" = 200 ] || { echo "GET $1 answered $code" >&2; exit 1; }
    awk -v s="$secs" -v b="$bytes" 'BEGIN {printf "%.1f %d\n", s * 1000, b}'
}
# first NAME PATH: one visit, recorded as NAME
first() { ttfb "$2" > "$dir/$1.first"; }
# again NAME PATH: --runs visits, each recorded
again() { for _ in $(seq "$runs"); do ttfb "$2"; done > "$dir/$1.runs"; }
ms() { cut -d' ' -f1 "$1" | median; }
bytes() { tail -1 "$1" | cut -d' ' -f2; }
rss_now_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

tag_repo=bench/tags
echo "== filling: $repositories repositories of one image, $tag_repo with $tags tags"
start_registry strata
"$ui_bench" fill "$base" --repositories "$repositories" --tags "$tags" > "$dir/fill.json"
rss_fill=$(peak_rss_mib "$pid")
du_data=$(du -sh "$dir/strata-data" | cut -f1)

echo "== visits: first once, then $runs more of each page and JSON call"
first list /ui/
again list /ui/
again list-api /ui/api/repositories
first tags "/ui/r/$tag_repo"
again tags "/ui/r/$tag_repo"
again tags-api "/ui/api/tags?repository=$tag_repo"
rss_peak=$(peak_rss_mib "$pid")
rss_now=$(rss_now_mib "$pid")

# What the pages showed: 50 repositories, 100 tags, and the next page.
curl -sSf "$base/ui/api/repositories" -o "$dir/repositories.json"
curl -sSf "$base/ui/api/tags?repository=$tag_repo" -o "$dir/tags.json"
python3 - "$dir" "$repositories" "$tags" <<'PY'
import json, sys
d, repositories, tags = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(f"{d}/repositories.json"))
t = json.load(open(f"{d}/tags.json"))
want_r, want_t = min(50, repositories + 1), min(100, tags)
assert len(r["repositories"]) == want_r, f"repository page shows {len(r['repositories'])}, not {want_r}"
assert r["repositories"][0]["name"] == "bench/repo-00000", r["repositories"][0]
assert len(t["tags"]) == want_t, f"tag page shows {len(t['tags'])}, not {want_t}"
assert t["tags"][0]["tag"] == "t0000", t["tags"][0]
assert len({x["digest"] for x in t["tags"]}) == want_t, "tags do not point at distinct manifests"
PY
grep -q 'bench/repo-00000' <(curl -sSf "$base/ui/") || { echo "/ui/ does not list bench/repo-00000" >&2; exit 1; }
grep -q 't0000' <(curl -sSf "$base/ui/r/$tag_repo") || { echo "/ui/r/$tag_repo does not list t0000" >&2; exit 1; }

echo "== the JSON calls once more, on a fresh registry process over the same data"
kill "$pid"; wait "$pid" 2>/dev/null || true
port=$(free_port)
RUST_LOG=warn "$strata_bin" --listen "127.0.0.1:$port" --root "$dir/strata-data" 2>>"$dir/strata.log" &
pid=$!
pids+=("$pid")
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf -o /dev/null "$base/v2/" && break; sleep 0.1; done
first list-api /ui/api/repositories
first tags-api "/ui/api/tags?repository=$tag_repo"

if grep -qiE 'error|panic' "$dir/strata.log"; then
    echo "the registry logged errors:" >&2; grep -iE 'error|panic' "$dir/strata.log" | head -5 >&2
fi

fill_secs=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["seconds"])' "$dir/fill.json")
echo
echo "ui bench: $repositories repositories + $tag_repo with $tags tags, filled in ${fill_secs}s ($du_data on disk)"
echo "TTFB in ms; \"first\" is one visit right after filling (JSON: on a restarted registry, UI caches"
echo "empty), \"again\" the median of $runs visits after it."
printf '  %-42s %9s %9s %10s\n' "" first again bytes
printf '  %-42s %9s %9s %10s\n' "GET /ui/ (50 of $repositories repositories)" \
    "$(ms "$dir/list.first")" "$(ms "$dir/list.runs")" "$(bytes "$dir/list.runs")"
printf '  %-42s %9s %9s %10s\n' "GET /ui/api/repositories" \
    "$(ms "$dir/list-api.first")" "$(ms "$dir/list-api.runs")" "$(bytes "$dir/list-api.runs")"
printf '  %-42s %9s %9s %10s\n' "GET /ui/r/$tag_repo (100 of $tags tags)" \
    "$(ms "$dir/tags.first")" "$(ms "$dir/tags.runs")" "$(bytes "$dir/tags.runs")"
printf '  %-42s %9s %9s %10s\n' "GET /ui/api/tags?repository=$tag_repo" \
    "$(ms "$dir/tags-api.first")" "$(ms "$dir/tags-api.runs")" "$(bytes "$dir/tags-api.runs")"
echo "peak RSS of the registry: $rss_fill MiB after the pushes, $rss_peak MiB after the visits" \
    "(resident then: $rss_now MiB)"
