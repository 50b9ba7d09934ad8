#!/usr/bin/env bash
# Pull-through cache benchmark: strata-registry's `[[upstream]]` mirror beside the reference
# registry's proxy (Debian's docker-registry, CNCF distribution 2.8, `proxy: remoteurl`), both in
# front of the same upstream (a third docker-registry), on loopback with filesystem storage in
# the same directory tree, measured in the same run. The upstream holds one image, `bench/app:v1`
# (an OCI manifest, a config and one random layer of --size-mib, default 1 GiB); what is timed is
# curl's GET of that layer (to /dev/null):
#   - directly from the upstream;
#   - cold through each cache: the cache restarted on an empty storage directory, the manifest
#     fetched through it first (as a client does), then the layer;
#   - warm through each cache: the same layer again, once the cache holds it.
# Every round does one of each, alternating which cache goes first; every round is printed and
# medians of --runs are reported (MB/s, time to first byte, ratios to direct and strata /
# distribution), with each cache's peak RSS (VmHWM, the highest over its restarts) and how many
# times the upstream served the layer for one cold pull (its access log).
#
# An unmeasured round first pipes one pull of each mode through `openssl dgst -sha256` and checks
# the digest. Each direct and cold pull starts after a `sync`: strata fsyncs what it stores and
# distribution does not, and a strata fsync (or the kernel's writeback during the next pull) would
# otherwise also write out distribution's dirty gigabyte (see bench/registry.sh).
#
# Usage: bench/proxy.sh [--runs N] [--size-mib N] [--dir DIR]
#   --dir defaults to target/bench/proxy (on disk); needs room for four copies of the layer.
# Needs (installed when missing, as root): curl, openssl, docker-registry.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
size_mib=1024
dir=target/bench/proxy
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --size-mib) size_mib=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "usage: $0 [--runs N] [--size-mib N] [--dir DIR]" >&2; exit 2 ;;
    esac
done

need=()
for tool in curl openssl docker-registry; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p strata-registry

rm -rf "$dir" && mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# A copy, so that a rebuild during the run does not change the binary between restarts.
strata_bin=$dir/strata-registry
cp target/release/strata-registry "$strata_bin"
pids=()
cache_pid=
cleanup() {
    for p in "${pids[@]}" $cache_pid; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    rm -rf "$dir"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source bench/lib.sh

wait_up() { # wait_up BASE NAME LOG
    for _ in $(seq 100); do curl -sf -o /dev/null "$1/v2/" && return 0; sleep 0.1; done
    echo "$2 did not start; log:" >&2; cat "$3" >&2; exit 1
}

# --- the upstream, with bench/app:v1 --------------------------------------------------------
up_port=$(free_port)
upstream=http://127.0.0.1:$up_port
cat > "$dir/upstream.yml" <<YAML
version: 0.1
log: { level: error }
storage:
  filesystem: { rootdirectory: $dir/upstream-data }
  maintenance: { uploadpurging: { enabled: false } }
http: { addr: 127.0.0.1:$up_port, secret: bench-upstream }
YAML
# Its access log (stdout) says how often each cache fetched the layer.
env -u AWS_CA_BUNDLE docker-registry serve "$dir/upstream.yml" >"$dir/upstream.log" 2>&1 &
pids+=($!)
wait_up "$upstream" upstream "$dir/upstream.log"

echo "creating a ${size_mib} MiB random layer in $dir and pushing bench/app:v1 to the upstream ..." >&2
layer=$dir/layer.bin
digest=$(make_blob "$size_mib" "$layer")
hex=${digest#sha256:}
size=$(( size_mib * 1024 * 1024 ))
printf '%s' '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$dir/config.json"
config_digest="sha256:$(openssl dgst -sha256 -r "$dir/config.json" | cut -d' ' -f1)"
push "$upstream" "$dir/config.json" "$config_digest" bench/app >/dev/null
push "$upstream" "$layer" "$digest" bench/app >/dev/null
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$config_digest\",\"size\":$(stat -c %s "$dir/config.json")},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"$digest\",\"size\":$size}]}"
curl -sSf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "$manifest" "$upstream/v2/bench/app/manifests/v1"

# --- the caches -----------------------------------------------------------------------------
# Where each cache serves the upstream's bench/app.
declare -A repo_of=([strata]=mirror/bench/app [distribution]=bench/app)

# start_cache NAME -> sets $cache_pid and $cache_base; storage starts empty.
start_cache() {
    local name=$1 port data=$dir/$1-data
    port=$(free_port)
    rm -rf "$data"
    case "$name" in
        strata)
            cat > "$dir/strata.toml" <<TOML
listen = "127.0.0.1:$port"

[[upstream]]
name = "upstream.bench"
url = "$upstream"
prefix = "mirror"
tag_ttl = "10m"
TOML
            RUST_LOG=warn "$strata_bin" --config "$dir/strata.toml" --root "$data" 2>"$dir/strata.log" &
            ;;
        distribution)
            cat > "$dir/distribution.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  filesystem: { rootdirectory: $data }
  maintenance: { uploadpurging: { enabled: false } }
http: { addr: 127.0.0.1:$port, secret: bench-proxy }
proxy: { remoteurl: $upstream }
YAML
            env -u AWS_CA_BUNDLE docker-registry serve "$dir/distribution.yml" >"$dir/distribution.log" 2>&1 &
            ;;
    esac
    cache_pid=$!
    cache_base=http://127.0.0.1:$port
    wait_up "$cache_base" "$name" "$dir/$name.log"
}
stop_cache() {
    kill "$cache_pid"; wait "$cache_pid" 2>/dev/null || true
    cache_pid=
}

accept='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'
get_manifest() { # get_manifest BASE REPO
    curl -sSf -o /dev/null -H "Accept: $accept" "$1/v2/$2/manifests/v1"
}
# timed BASE REPO -> prints "seconds first-byte-seconds" of a layer GET (checks status and size)
timed() {
    curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total} %{time_starttransfer}\n' \
        "$1/v2/$2/blobs/$digest" | {
        read -r code got secs first
        if [ "$code" != 200 ] || [ "$got" != "$size" ]; then
            echo "GET $1/v2/$2/blobs/$digest answered $code with $got bytes" >&2; exit 1
        fi
        echo "$secs $first"
    }
}
verify() { # verify BASE REPO WHAT: one GET of the layer through openssl
    local got
    got=$(curl -sSf "$1/v2/$2/blobs/$digest" | openssl dgst -sha256 -r | cut -d' ' -f1)
    [ "$got" = "$hex" ] || { echo "$3: the body's sha256 is $got, not $hex" >&2; exit 1; }
    echo "  verified: $3 body sha256 = digest" >&2
}
upstream_gets() { grep -c "\"GET /v2/bench/app/blobs/$digest " "$dir/upstream.log" || true; }
# Distribution's proxy stores the blob in a goroutine of its own; warm means once that is done.
wait_stored() { # wait_stored NAME -> prints seconds waited
    local started=$EPOCHREALTIME
    if [ "$1" = distribution ]; then
        local f=$dir/distribution-data/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data
        for _ in $(seq 1200); do
            [ -f "$f" ] && [ "$(stat -c %s "$f")" = "$size" ] && break
            sleep 0.05
        done
        if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" != "$size" ]; then
            echo "distribution did not store the layer within 60 s" >&2; exit 1
        fi
    fi
    awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}'
}

mb() { awk -v b="$size" -v s="$1" 'BEGIN {printf "%.0f", b / s / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
med() { tr ' ' '\n' <<<"$1" | grep . | median; }

declare -A t_cold t_warm f_cold f_warm rss gets_cold gets_warm store_lag
t_direct=
for name in strata distribution; do rss[$name]=0; done

# cache_round NAME RUN: a fresh cache, the manifest, a cold and a warm layer GET (run 0: verified)
cache_round() {
    local name=$1 run=$2 repo=${repo_of[$1]} before lag cold warm mid r
    sync
    start_cache "$name"
    get_manifest "$cache_base" "$repo"
    before=$(upstream_gets)
    if (( run == 0 )); then verify "$cache_base" "$repo" "$name cold"; else cold=$(timed "$cache_base" "$repo"); fi
    lag=$(wait_stored "$name")
    mid=$(upstream_gets)
    if (( run == 0 )); then verify "$cache_base" "$repo" "$name warm"; else warm=$(timed "$cache_base" "$repo"); fi
    r=$(peak_rss_mib "$cache_pid")
    stop_cache
    gets_cold[$name]+="$(( mid - before )) "
    gets_warm[$name]+="$(( $(upstream_gets) - mid )) "
    rss[$name]=$(awk -v a="${rss[$name]}" -v b="$r" 'BEGIN {print (b > a ? b : a)}')
    (( run == 0 )) && return 0
    t_cold[$name]+="${cold% *} "; f_cold[$name]+="${cold#* } "
    t_warm[$name]+="${warm% *} "; f_warm[$name]+="${warm#* } "
    store_lag[$name]+="$lag "
    line+=" | $name cold $(mb "${cold% *}") warm $(mb "${warm% *}")"
}

echo "round 0 (unmeasured): checking every body's digest ..." >&2
got=$(curl -sSf "$upstream/v2/bench/app/blobs/$digest" | openssl dgst -sha256 -r | cut -d' ' -f1)
[ "$got" = "$hex" ] || { echo "direct: the body's sha256 is $got, not $hex" >&2; exit 1; }
echo "  verified: direct body sha256 = digest" >&2
cache_round strata 0
cache_round distribution 0

for run in $(seq "$runs"); do
    if (( run % 2 )); then order="strata distribution"; else order="distribution strata"; fi
    sync
    d=$(timed "$upstream" bench/app)
    t_direct+="${d% *} "
    line="  round $run (MB/s): direct $(mb "${d% *}")"
    for name in $order; do cache_round "$name" "$run"; done
    echo "$line"
done

direct=$(mb "$(med "$t_direct")")
declare -A mbs
echo "proxy bench: ${size_mib} MiB layer, storage under $dir, loopback, same run, median of $runs"
printf '  %-36s %7s MB/s\n' "direct from the upstream" "$direct"
for name in strata distribution; do
    for mode in cold warm; do
        if [ "$mode" = cold ]; then t=${t_cold[$name]}; f=${f_cold[$name]}; else t=${t_warm[$name]}; f=${f_warm[$name]}; fi
        mbs[$name-$mode]=$(mb "$(med "$t")")
        printf '  %-36s %7s MB/s  %5.2fx direct  first byte after %.3f s\n' "$name $mode" \
            "${mbs[$name-$mode]}" "$(ratio "${mbs[$name-$mode]}" "$direct")" "$(med "$f")"
    done
done
echo "  strata / distribution: cold $(ratio "${mbs[strata-cold]}" "${mbs[distribution-cold]}")x," \
    "warm $(ratio "${mbs[strata-warm]}" "${mbs[distribution-warm]}")x"
echo "  peak RSS: strata ${rss[strata]} MiB, distribution ${rss[distribution]} MiB"
echo "  upstream GETs of the layer per cold pull (each round, 0 first): strata ${gets_cold[strata]% }, distribution ${gets_cold[distribution]% }" \
    "(per warm pull: strata ${gets_warm[strata]% }, distribution ${gets_warm[distribution]% })"
echo "  distribution's layer stored, after its client had the body: ${store_lag[distribution]% } s"
echo "  targets: strata cold >= 0.9x direct: $(awk -v a="${mbs[strata-cold]}" -v d="$direct" 'BEGIN {print (a >= 0.9 * d ? "met" : "missed")}')," \
    "strata warm >= 1x direct: $(awk -v a="${mbs[strata-warm]}" -v d="$direct" 'BEGIN {print (a >= d ? "met" : "missed")}')"
