#!/usr/bin/env bash
# Layer store benchmark: `strata pull` (download + unpack into the layer store) beside
# `skopeo copy docker:// oci:` + `umoci unpack` of the same image from strata-registry, in the
# same run. The image: 1 GiB in 5 gzip layers of ~2000 files each (incompressible content in
# stored deflate blocks, so generating it is quick and neither side is bound by inflate).
# Median of --runs (default 3) after one unmeasured warm-up of each; the order alternates.
#
# Usage: bench/layers.sh [--size-mib N] [--layers N] [--dir DIR] [--runs R]
#   --dir defaults to /dev/shm/strata-bench-layers (tmpfs: the disk is not what is measured).
# Needs (installed when missing, as root): skopeo, umoci, python3. Run as root (umoci keeps owners).
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=1024
layers=5
dir=/dev/shm/strata-bench-layers
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
command -v umoci >/dev/null || need+=(umoci)
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

python3 - "$dir/image" "$size_mib" "$layers" <<'PY'
import hashlib, io, json, os, sys, tarfile, zlib
root, size_mib, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{root}/blobs/sha256")
def put(chunks):
    h = hashlib.sha256(); tmp = f"{root}/blobs/tmp"; n = 0
    with open(tmp, "wb") as f:
        for d in chunks:
            h.update(d); f.write(d); n += len(d)
    os.rename(tmp, f"{root}/blobs/sha256/{h.hexdigest()}")
    return "sha256:" + h.hexdigest(), n
per_layer = size_mib * 1024 * 1024 // layers
files = 2000
descs, diff_ids = [], []
class Sink:
    """A file object for tarfile: hashes the tar and gzips it (stored blocks) into chunks."""
    def __init__(self):
        self.raw = hashlib.sha256(); self.z = zlib.compressobj(0, zlib.DEFLATED, 31); self.out = []
    def write(self, b):
        self.raw.update(b); self.out.append(self.z.compress(b)); return len(b)
for i in range(layers):
    sink = Sink()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as t:
        for d in range(20):
            info = tarfile.TarInfo(f"layer{i}/d{d}"); info.type = tarfile.DIRTYPE; info.mode = 0o755
            info.mtime = 1700000000; t.addfile(info)
        for f in range(files):
            data = os.urandom(per_layer // files)
            info = tarfile.TarInfo(f"layer{i}/d{f % 20}/f{f}"); info.size = len(data); info.mode = 0o644
            info.mtime = 1700000000
            t.addfile(info, io.BytesIO(data))
    sink.out.append(sink.z.flush())
    d, n = put(sink.out)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
    diff_ids.append("sha256:" + sink.raw.hexdigest())
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "config": {}}).encode()
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

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$registry_bin" --listen "127.0.0.1:$port" --root "$dir/registry" >/dev/null 2>"$dir/registry.log" &
pid=$!
host=127.0.0.1:$port
for _ in $(seq 100); do curl -fs "http://$host/v2/" >/dev/null && break; sleep 0.05; done
"$strata_bin" --home "$dir/push-home" -q copy "oci:$dir/image:v1" "$host/bench/img:v1" >/dev/null

now() { date +%s.%N; }
seconds() { took=$(python3 -c "print(f'{$2 - $1:.3f}')"); }
strata_run() {
    rm -rf "$dir/home"
    local t0 t1
    t0=$(now)
    /usr/bin/time -f %M -o "$dir/rss" "$strata_bin" --home "$dir/home" -q pull "$host/bench/img:v1" >/dev/null
    t1=$(now); seconds "$t0" "$t1"
}
peer_run() {
    rm -rf "$dir/out" "$dir/bundle" /var/lib/containers/cache
    local t0 t1
    t0=$(now)
    skopeo copy -q --src-tls-verify=false "docker://$host/bench/img:v1" "oci:$dir/out:v1" >/dev/null
    umoci unpack --image "$dir/out:v1" "$dir/bundle" >/dev/null
    t1=$(now); seconds "$t0" "$t1"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

strata_run; peer_run
ours=(); theirs=(); rss=()
for i in $(seq "$runs"); do
    if [ $((i % 2)) -eq 1 ]; then
        strata_run; ours+=("$took"); rss+=("$(cat "$dir/rss")"); peer_run; theirs+=("$took")
    else
        peer_run; theirs+=("$took"); strata_run; ours+=("$took"); rss+=("$(cat "$dir/rss")")
    fi
done
o=$(printf '%s\n' "${ours[@]}" | median)
t=$(printf '%s\n' "${theirs[@]}" | median)
echo "image: $(python3 -c "print(f'{$bytes/2**20:.0f}')") MiB in $layers layers of ~2000 files; median of $runs runs; storage in $dir"
python3 -c "
b=$bytes; o=$o; t=$t
print(f'pull+unpack: strata {o:.2f} s ({b/o/1e6:.0f} MB/s), skopeo copy + umoci unpack {t:.2f} s ({b/t/1e6:.0f} MB/s), strata is {t/o:.2f}x faster')"
echo "strata peak RSS: $(printf '%s\n' "${rss[@]}" | sort -g | tail -1) KiB"
