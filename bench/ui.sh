#!/usr/bin/env bash
# Web UI benchmark: time to first byte (curl's time_starttransfer, in milliseconds) of the UI's
# pages and JSON API on a registry holding many repositories and a repository with many tags,
# and the registry's peak RSS, in one run on loopback with filesystem storage and no auth:
#   1. `GET /ui/` (the first page of 50 repositories) with --repositories repositories (default
#      10,000) of one image each, and `GET /ui/api/repositories`, the same view as JSON;
#   2. `GET /ui/r/bench/tags` (the first page of 100 tags) of a repository with --tags tags
#      (default 1,000), each pointing at its own manifest, and `GET /ui/api/tags?repository=`.
#   3. Peak RSS (VmHWM) of the registry after the pushes, and after the pages.
#   4. The file browser: `bench/files:tree`, one plain-tar layer of 200 directories of 100
#      files (20,000 files of a few bytes): the image's root (`?files=`; the first visit builds
#      the layer's file list), a directory (`?files=d000`), layer 1's root (`?layer=1&files=`)
#      and `GET /ui/api/files` of the root.
#   5. `bench/big:layer`, one plain-tar layer of --big-mib files of 1 MiB of pseudo-random bytes
#      (default 1024: 1 GiB), written to a file under --dir, hashed with sha256sum and pushed by
#      curl in one monolithic upload (then deleted): the time of the first `?files=` visit,
#      which reads the whole layer to index it, with the registry's VmRSS before it and the peak
#      of VmRSS sampled every 50 ms during it; then the second visit.
# The first visit of each page is measured once, right after filling (the UI keeps what it
# learns from manifests, so every later visit is warm); the second visit and the JSON figures
# are the median of --runs requests (default 5). Then the registry is restarted over the same
# data and the JSON calls are timed once more on the fresh process (the operating system's cache
# is warm by then, the UI's is empty), to compare with the pages' first visits; for
# /ui/api/files that first call reads the layer's file list stored by the first page visit.
# `ui-bench fill` pushes the images through the distribution API (monolithic uploads, 32 images
# in flight).
#
# Usage: bench/ui.sh [--repositories N] [--tags T] [--runs R] [--big-mib M] [--dir DIR]
# Needs (installed when missing, as root): curl, python3 (and sha256sum, from coreutils).
set -euo pipefail
cd "$(dirname "$0")/.."

repositories=10000
tags=1000
runs=5
big_mib=1024
dir=target/bench/ui
while [ $# -gt 0 ]; do
    case "$1" in
        --repositories) repositories=$2; shift 2 ;;
        --tags) tags=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --big-mib) big_mib=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "usage: $0 [--repositories N] [--tags T] [--runs R] [--big-mib M] [--dir DIR]" >&2; exit 2 ;;
    esac
done
for n in "$repositories" "$tags" "$runs" "$big_mib"; do
    case "$n" in
        '' | *[!0-9]* | 0) echo "$0: --repositories, --tags, --runs and --big-mib take numbers >= 1" >&2; exit 2 ;;
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
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -f "$dir/big.tar" # the 1 GiB layer, when a failure left it
}
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
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

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

files_repo=bench/files
echo "== file browser: $files_repo:tree, one layer of 200 directories of 100 files"
"$ui_bench" tree "$base" > "$dir/tree.json"
tree_digest=$(json_field "$dir/tree.json" digest)
tree_page="/ui/r/$files_repo@$tree_digest"
tree_api="/ui/api/files?repository=$files_repo&reference=$tree_digest&path="
first tree "$tree_page?files="
again tree "$tree_page?files="
first tree-dir "$tree_page?files=d000"
again tree-dir "$tree_page?files=d000"
first tree-layer "$tree_page?layer=1&files="
again tree-layer "$tree_page?layer=1&files="
again tree-api "$tree_api"
curl -sSf "$base$tree_api" -o "$dir/tree-root.json"
curl -sSf "$base/ui/api/files?repository=$files_repo&reference=$tree_digest&path=d000" -o "$dir/tree-d000.json"
grep -q 'f099' <(curl -sSf "$base$tree_page?files=d000") || { echo "$tree_page?files=d000 does not list f099" >&2; exit 1; }

big_repo=bench/big
if [ $((big_mib % 1024)) = 0 ]; then big_label="$((big_mib / 1024)) GiB"; else big_label="$big_mib MiB"; fi
echo "== file browser: $big_repo:layer, one $big_label layer of $big_mib files of 1 MiB"
"$ui_bench" big-tar "$dir/big.tar" --files "$big_mib" > "$dir/big-tar.json"
big_size=$(stat -c %s "$dir/big.tar")
big_layer="sha256:$(sha256sum "$dir/big.tar" | cut -d' ' -f1)"
# From stdin with its length (curl's -T FILE would append the file's name to the URL's
# trailing /; --data-binary @FILE would read the whole file into memory first).
read -r code push_secs < <(curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' -X POST -T - \
    -H 'Expect:' -H 'Transfer-Encoding:' -H "Content-Length: $big_size" \
    -H 'Content-Type: application/octet-stream' \
    "$base/v2/$big_repo/blobs/uploads/?digest=$big_layer" < "$dir/big.tar")
[ "$code" = 201 ] || { echo "pushing the big layer answered $code" >&2; exit 1; }
rm -f "$dir/big.tar"
"$ui_bench" image "$base" "$big_repo" layer "$big_layer" "$big_size" > "$dir/big.json"
big_digest=$(json_field "$dir/big.json" digest)
big_page="/ui/r/$big_repo@$big_digest"
# The first visit indexes the layer: its time, and VmRSS sampled every 50 ms meanwhile.
rss_kib() { # rss_kib PID -> VmRSS in KiB, read without a process of its own
    local key value _
    while read -r key value _; do
        if [ "$key" = VmRSS: ]; then echo "$value"; return; fi
    done < "/proc/$1/status"
}
# And the bytes the registry read meanwhile (rchar: every read, page cache or not).
rchar() { awk '$1 == "rchar:" {print $2}' "/proc/$1/io"; }
big_rss_before=$(rss_kib "$pid")
big_read_before=$(rchar "$pid")
curl -sS -o /dev/null -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}\n' \
    "$base$big_page?files=" > "$dir/big.visit" &
visit=$!
pids+=("$visit")
big_rss_peak=$big_rss_before
while kill -0 "$visit" 2>/dev/null; do
    r=$(rss_kib "$pid")
    [ "$r" -gt "$big_rss_peak" ] && big_rss_peak=$r
    sleep 0.05
done
wait "$visit"
read -r code big_ttfb big_total big_bytes < "$dir/big.visit"
[ "$code" = 200 ] || { echo "GET $big_page?files= answered $code" >&2; exit 1; }
big_rss_after=$(rss_kib "$pid")
big_read=$(( $(rchar "$pid") - big_read_before ))
awk -v s="$big_ttfb" -v b="$big_bytes" 'BEGIN {printf "%.1f %d\n", s * 1000, b}' > "$dir/big.first"
again big "$big_page?files="
curl -sSf "$base/ui/api/files?repository=$big_repo&reference=$big_digest&path=" -o "$dir/big-root.json"
python3 - "$dir" "$big_mib" <<'PY'
import json, sys
d, big = sys.argv[1], int(sys.argv[2])
root = json.load(open(f"{d}/tree-root.json"))["rows"]
sub = json.load(open(f"{d}/tree-d000.json"))["rows"]
b = json.load(open(f"{d}/big-root.json"))["rows"]
assert len(root) == 200 and all(r["kind"] == "dir" for r in root), f"tree root shows {len(root)} rows"
assert root[0]["name"] == "d000" and root[-1]["name"] == "d199", (root[0], root[-1])
assert len(sub) == 100 and all(r["kind"] == "file" for r in sub), f"d000 shows {len(sub)} rows"
assert len(b) == big and all(r["size"] == 1 << 20 for r in b), f"big root shows {len(b)} rows"
PY

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
first tree-api "$tree_api"

if grep -qiE 'error|panic' "$dir/strata.log"; then
    echo "the registry logged errors:" >&2; grep -iE 'error|panic' "$dir/strata.log" | head -5 >&2
fi

fill_secs=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["seconds"])' "$dir/fill.json")
echo
echo "ui bench: $repositories repositories + $tag_repo with $tags tags, filled in ${fill_secs}s ($du_data on disk)"
echo "TTFB in ms; \"first\" is one visit right after filling (JSON: on a restarted registry, UI caches"
echo "empty; a layer's first page visit builds its file list), \"again\" the median of $runs visits after it."
row() { printf '  %-46s %9s %9s %10s\n' "$@"; }
row "" first again bytes
row "GET /ui/ (50 of $repositories repositories)" \
    "$(ms "$dir/list.first")" "$(ms "$dir/list.runs")" "$(bytes "$dir/list.runs")"
row "GET /ui/api/repositories" \
    "$(ms "$dir/list-api.first")" "$(ms "$dir/list-api.runs")" "$(bytes "$dir/list-api.runs")"
row "GET /ui/r/$tag_repo (100 of $tags tags)" \
    "$(ms "$dir/tags.first")" "$(ms "$dir/tags.runs")" "$(bytes "$dir/tags.runs")"
row "GET /ui/api/tags?repository=$tag_repo" \
    "$(ms "$dir/tags-api.first")" "$(ms "$dir/tags-api.runs")" "$(bytes "$dir/tags-api.runs")"
row "GET layer tree, 20,000 files (root: 200 dirs)" \
    "$(ms "$dir/tree.first")" "$(ms "$dir/tree.runs")" "$(bytes "$dir/tree.runs")"
row "GET layer tree ?files=d000 (100 files)" \
    "$(ms "$dir/tree-dir.first")" "$(ms "$dir/tree-dir.runs")" "$(bytes "$dir/tree-dir.runs")"
row "GET layer tree ?layer=1&files= (layer 1 root)" \
    "$(ms "$dir/tree-layer.first")" "$(ms "$dir/tree-layer.runs")" "$(bytes "$dir/tree-layer.runs")"
row "GET /ui/api/files (layer tree root)" \
    "$(ms "$dir/tree-api.first")" "$(ms "$dir/tree-api.runs")" "$(bytes "$dir/tree-api.runs")"
row "GET $big_label layer ?files= (root: $big_mib files)" \
    "$(ms "$dir/big.first")" "$(ms "$dir/big.runs")" "$(bytes "$dir/big.runs")"
echo "peak RSS of the registry: $rss_fill MiB after the pushes, $rss_peak MiB after the visits" \
    "(resident then: $rss_now MiB)"
echo "index a $big_label layer (first visit; tar of $big_size bytes, pushed in" \
    "$(awk -v s="$push_secs" 'BEGIN {printf "%.1f", s}')s): $(awk -v s="$big_total" 'BEGIN {printf "%.2f", s}')s," \
    "VmRSS $(mib "$big_rss_before") MiB before, peak $(mib "$big_rss_peak") MiB during" \
    "(sampled every 50 ms), $(mib "$big_rss_after") MiB after; it read $(mib $((big_read / 1024))) MiB"
