#!/usr/bin/env bash
# Container benchmark, as root:
#   1. start-to-exit latency of `strata run --rm IMAGE true` beside `runc run` of the same image
#      (unpacked by `umoci unpack` into an OCI bundle), measured by hyperfine in the same run;
#   2. `strata commit` of a container that changed 100 MB (100 files of 1 MiB): throughput.
# The image is busybox (Debian busybox-static) built here and served by strata-registry.
#
# Usage: bench/run.sh [--dir DIR] [--runs N]   (DIR defaults to /dev/shm/strata-bench-run)
# Needs (installed when missing): runc, umoci, hyperfine, busybox-static, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=/dev/shm/strata-bench-run
runs=30
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: $0 [--dir DIR] [--runs N]" >&2; exit 2 ;;
    esac
done
need=()
for tool in runc umoci hyperfine; do command -v "$tool" >/dev/null || need+=("$tool"); done
[ -x /bin/busybox ] || need+=(busybox-static)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p strata-registry -p strata-client
registry_bin=$PWD/target/release/strata-registry
strata="$PWD/target/release/strata --home $dir/home -q"

rm -rf "$dir" && mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
strata="$PWD/target/release/strata --home $dir/home -q"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

python3 - "$dir/image" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
root = sys.argv[1]; os.makedirs(f"{root}/blobs/sha256")
def put(b):
    h = hashlib.sha256(b).hexdigest(); open(f"{root}/blobs/sha256/{h}", "wb").write(b); return "sha256:" + h
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    for d in ["bin", "etc", "tmp"]:
        i = tarfile.TarInfo(d); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    data = open("/bin/busybox", "rb").read()
    i = tarfile.TarInfo("bin/busybox"); i.size = len(data); i.mode = 0o755; t.addfile(i, io.BytesIO(data))
    for a in ["sh", "true", "dd", "mkdir"]:
        i = tarfile.TarInfo("bin/" + a); i.type = tarfile.SYMTYPE; i.linkname = "busybox"; t.addfile(i)
    pw = b"root:x:0:0:root:/root:/bin/sh\n"
    i = tarfile.TarInfo("etc/passwd"); i.size = len(pw); i.mode = 0o644; t.addfile(i, io.BytesIO(pw))
raw = buf.getvalue(); gz = gzip.compress(raw, 1)
layer = put(gz)
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode()
cd = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": len(gz)}]}).encode()
md = put(manifest)
open(f"{root}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]},
    open(f"{root}/index.json", "w"))
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$registry_bin" --listen "127.0.0.1:$port" --root "$dir/registry" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.05; done
image=127.0.0.1:$port/bench/busybox:v1
$strata copy "oci:$dir/image:v1" "$image" >/dev/null
$strata pull "$image" >/dev/null

# The same image as an OCI runtime bundle for runc: umoci's rootfs and config, running `true`
# in the same namespaces strata uses (mount, pid, uts, ipc, network).
umoci unpack --image "$dir/image:v1" "$dir/bundle" >/dev/null
python3 - "$dir/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]; c = json.load(open(path))
c["process"]["args"] = ["true"]; c["process"]["terminal"] = False
c["linux"]["namespaces"] = [{"type": t} for t in ["pid", "network", "ipc", "uts", "mount"]]
json.dump(c, open(path, "w"))
PY

echo "== start-to-exit latency (hyperfine, $runs runs each after 3 warm-ups)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$dir/latency.json" \
    -n strata "$PWD/target/release/strata --home $dir/home -q run --rm $image true" \
    -n strata-userns "$PWD/target/release/strata --home $dir/home -q run --rm --userns auto $image true" \
    -n runc "sh -c 'exec runc run --bundle $dir/bundle bench-\$\$'" >/dev/null
python3 - "$dir/latency.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
s, u, c = r["strata"], r["strata-userns"], r["runc"]
print(f"strata run --rm: {s['mean']*1000:.1f} ms ± {s['stddev']*1000:.1f} (median {s['median']*1000:.1f})")
print(f"  --userns auto: {u['mean']*1000:.1f} ms ± {u['stddev']*1000:.1f} (median {u['median']*1000:.1f})")
print(f"runc run:        {c['mean']*1000:.1f} ms ± {c['stddev']*1000:.1f} (median {c['median']*1000:.1f})")
print(f"strata / runc (medians): {s['median']/c['median']:.2f}; with --userns auto {u['median']/c['median']:.2f}")
PY

echo "== commit of a container that changed 100 MB"
$strata run --name writer "$image" sh -c 'mkdir -p /data && i=0; while [ $i -lt 100 ]; do dd if=/dev/urandom of=/data/f$i bs=1M count=1 2>/dev/null; i=$((i+1)); done' >/dev/null
t0=$(date +%s.%N)
$strata commit writer bench/committed:v1 >/dev/null
t1=$(date +%s.%N)
python3 -c "t=$t1-$t0; print(f'commit: 100 MiB in {t:.2f} s ({100*1.048576/t:.0f} MB/s)')"
