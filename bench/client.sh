#!/usr/bin/env bash
# Client benchmark: `strata` beside `skopeo copy` (Debian's skopeo, containers/image) moving the
# same 1 GiB image of 5 gzip layers between an OCI layout and strata-registry, in the same run:
#   - push: oci:LAYOUT -> registry   (strata copy   vs skopeo copy oci: docker://)
#   - pull: registry -> local layout (strata pull   vs skopeo copy docker:// oci:)
# Each registry run starts from empty storage (so nothing is skipped or mounted), skopeo's blob
# cache is removed before each skopeo run, and the order alternates. Median of --runs (default 3)
# after one unmeasured warm-up of each. Also reports strata's peak RSS (GNU time).
#
# Usage: bench/client.sh [--size-mib N] [--layers N] [--dir DIR] [--runs R]
#   --dir defaults to /dev/shm/strata-bench-client (tmpfs: the disk is not what is measured).
# Needs (installed when missing, as root): skopeo, GNU time, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=1024
layers=5
dir=/dev/shm/strata-bench-client
runs=3
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mib) size_mib=$2; shift 2 ;;
        --layers) layers=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: $0 [--size-mib N] [--layers N] [--dir DIR] [--runs R]" >&2; exit 2 ;;
    esac
done

need=()
command -v skopeo >/dev/null || need+=(skopeo)
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p strata-registry -p strata-client
registry_bin=$PWD/target/release/strata-registry
strata_bin=$PWD/target/release/strata

rm -rf "$dir" && mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

# The image: gzip layers (stored deflate blocks over random bytes, so neither tool recompresses
# and generation is quick), a config with the right diff_ids, a manifest, index.json.
python3 - "$dir/image" "$size_mib" "$layers" <<'PY'
import hashlib, json, os, sys, zlib
root, size_mib, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{root}/blobs/sha256")
def put(data_iter):
    h = hashlib.sha256(); tmp = f"{root}/blobs/tmp"; n = 0
    with open(tmp, "wb") as f:
        for d in data_iter:
            h.update(d); f.write(d); n += len(d)
    os.rename(tmp, f"{root}/blobs/sha256/{h.hexdigest()}")
    return "sha256:" + h.hexdigest(), n
per_layer = size_mib * 1024 * 1024 // layers
descs, diff_ids = [], []
for i in range(layers):
    raw = hashlib.sha256()
    def gz():
        c = zlib.compressobj(0, zlib.DEFLATED, 31)
        left = per_layer
        while left:
            chunk = os.urandom(min(left, 4 << 20)); left -= len(chunk)
            raw.update(chunk)
            yield c.compress(chunk)
        yield c.flush()
    d, n = put(gz())
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
    diff_ids.append("sha256:" + raw.hexdigest())
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
cd, cn = put([config])
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
    "layers": descs}).encode()
md, mn = put([manifest])
open(f"{root}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]},
    open(f"{root}/index.json", "w"))
PY
bytes=$(du -sb "$dir/image/blobs" | cut -f1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Fresh registry with empty storage; sets $pid and $host.
start_registry() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$dir/registry"
    local port
    port=$(free_port)
    RUST_LOG=warn "$registry_bin" --listen "127.0.0.1:$port" --root "$dir/registry" >/dev/null 2>"$dir/registry.log" &
    pid=$!
    host=127.0.0.1:$port
    for _ in $(seq 100); do curl -fs "http://$host/v2/" >/dev/null && return; sleep 0.05; done
    echo "registry did not start" >&2; exit 1
}

now() { date +%s.%N; }
# Each run function leaves the seconds it took in $took.
seconds() { took=$(python3 -c "print(f'{$2 - $1:.3f}')"); }
strata_push() {
    start_registry
    local t0 t1
    t0=$(now)
    /usr/bin/time -f %M -o "$dir/rss" "$strata_bin" --home "$dir/home" -q copy "oci:$dir/image:v1" "$host/bench/img:v1" >/dev/null
    t1=$(now); seconds "$t0" "$t1"
}
skopeo_push() {
    start_registry
    rm -rf /var/lib/containers/cache
    local t0 t1
    t0=$(now)
    skopeo copy -q --dest-tls-verify=false "oci:$dir/image:v1" "docker://$host/bench/img:v1" >/dev/null
    t1=$(now); seconds "$t0" "$t1"
}
# Pulls read the image a push left in the registry.
strata_pull() {
    rm -rf "$dir/home"
    local t0 t1
    t0=$(now)
    /usr/bin/time -f %M -o "$dir/rss" "$strata_bin" --home "$dir/home" -q pull --no-unpack "$host/bench/img:v1" >/dev/null
    t1=$(now); seconds "$t0" "$t1"
}
skopeo_pull() {
    rm -rf "$dir/skopeo-out" /var/lib/containers/cache
    local t0 t1
    t0=$(now)
    skopeo copy -q --src-tls-verify=false "docker://$host/bench/img:v1" "oci:$dir/skopeo-out:v1" >/dev/null
    t1=$(now); seconds "$t0" "$t1"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Warm-up (page cache, binaries), unmeasured.
strata_push; strata_pull; skopeo_push; skopeo_pull

sp=(); sk_p=(); spl=(); sk_pl=(); rss_push=(); rss_pull=()
run_strata() {
    strata_push; sp+=("$took"); rss_push+=("$(cat "$dir/rss")")
    strata_pull; spl+=("$took"); rss_pull+=("$(cat "$dir/rss")")
}
run_skopeo() { skopeo_push; sk_p+=("$took"); skopeo_pull; sk_pl+=("$took"); }
for i in $(seq "$runs"); do
    if [ $((i % 2)) -eq 1 ]; then run_strata; run_skopeo; else run_skopeo; run_strata; fi
done

report() {
    local what=$1 ours theirs
    ours=$(printf '%s\n' "${@:2:$runs}" | median)
    theirs=$(printf '%s\n' "${@:$((2 + runs)):$runs}" | median)
    python3 -c "
b=$bytes; o=$ours; t=$theirs
print(f'$what: strata {o:.2f} s ({b/o/1e6:.0f} MB/s), skopeo {t:.2f} s ({b/t/1e6:.0f} MB/s), strata is {t/o:.2f}x faster')"
}
echo "image: $(python3 -c "print(f'{$bytes/2**20:.0f}')") MiB in $layers layers; median of $runs runs; storage in $dir"
report push "${sp[@]}" "${sk_p[@]}"
report pull "${spl[@]}" "${sk_pl[@]}"
echo "strata peak RSS: push $(printf '%s\n' "${rss_push[@]}" | sort -g | tail -1) KiB, pull $(printf '%s\n' "${rss_pull[@]}" | sort -g | tail -1) KiB"
