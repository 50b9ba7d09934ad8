#!/usr/bin/env bash
# Scale-out benchmark on one Garage cluster (3 nodes, replication 3): strata-registry x2 and the
# reference registry (Debian's docker-registry, CNCF distribution 2.8) x2, each pair over its own
# prefix of the same bucket behind its own nginx, measured in the same run:
#   - a 1 GiB blob push and pull through the balancer, and a pull from one replica directly
#     (median of --runs);
#   - 4 concurrent 256 MiB pushes through the balancer (wall time);
#   - manifest GET requests per second (wrk, 2 threads, 32 connections);
#   - peak RSS of each replica.
# Prints each figure and strata / distribution ratios (higher is better for strata, except RSS),
# and, when boto3 is installed, what the object store does on its own.
#
# Usage: bench/scale.sh [--runs N] [--seconds S]   (as root; needs garage: see
# scripts/garage-cluster.sh; STRATA_BUFFER_BUDGET=BYTES sets strata's storage.s3.buffer_budget;
# installs docker-registry, nginx-light, wrk when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
seconds=10
size_mib=1024
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        *) echo "usage: $0 [--runs N] [--seconds S]" >&2; exit 2 ;;
    esac
done
need=()
for tool in docker-registry nginx wrk curl; do command -v "$tool" >/dev/null || need+=("$tool"); done
[ "${#need[@]}" -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${need[@]/nginx/nginx-light}" >/dev/null

dir=/tmp/strata-bench-scale
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    declare -F garage_stop >/dev/null && garage_stop
    sleep 0.5
    rm -rf "$dir"
}
trap cleanup EXIT
rm -rf "$dir" && mkdir -p "$dir"
source bench/lib.sh
source scripts/garage-cluster.sh

cargo build --release -q -p strata-registry
strata_bin=$PWD/target/release/strata-registry
garage_cluster "$dir"
endpoints='"http://127.0.0.1:3900", "http://127.0.0.1:3910", "http://127.0.0.1:3920"'

declare -A replica_pids direct
start_pair() { # start_pair NAME PORT1 PORT2 LB_PORT
    local name=$1 lb=$4 port
    direct[$name]=http://127.0.0.1:$2
    for port in "$2" "$3"; do
        case "$name" in
            strata)
                cat > "$dir/$name-$port.toml" <<TOML
listen = "127.0.0.1:$port"
[storage]
type = "s3"
bucket = "registry"
prefix = "strata"
region = "garage"
endpoints = [$endpoints]
path_style = true
access_key_id = "$key_id"
secret_access_key = "$key_secret"
${STRATA_BUFFER_BUDGET:+buffer_budget = $STRATA_BUFFER_BUDGET}
TOML
                RUST_LOG=warn "$strata_bin" --config "$dir/$name-$port.toml" 2>"$dir/$name-$port.log" &
                ;;
            distribution)
                cat > "$dir/$name-$port.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  s3:
    region: garage
    regionendpoint: http://127.0.0.1:3900
    bucket: registry
    rootdirectory: /distribution
    accesskey: $key_id
    secretkey: $key_secret
    forcepathstyle: true
    secure: false
    v4auth: true
  delete: { enabled: true }
  maintenance: { uploadpurging: { enabled: false } }
  redirect: { disable: true }
http: { addr: 127.0.0.1:$port, secret: shared-by-the-replicas }
YAML
                # distribution's S3 driver panics when AWS_CA_BUNDLE is set (environment.md).
                env -u AWS_CA_BUNDLE docker-registry serve "$dir/$name-$port.yml" >"$dir/$name-$port.log" 2>&1 &
                ;;
        esac
        pids+=($!)
        replica_pids[$name]+="$! "
    done
    cat > "$dir/nginx-$name.conf" <<NGINX
daemon off;
pid $dir/nginx-$name.pid;
error_log $dir/nginx-$name.log;
events {}
http {
    access_log off;
    upstream r { server 127.0.0.1:$2; server 127.0.0.1:$3; keepalive 64; }
    server {
        listen 127.0.0.1:$lb;
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        location / {
            proxy_pass http://r;
            proxy_set_header Host \$http_host;
            proxy_set_header Connection "";
        }
    }
}
NGINX
    nginx -c "$dir/nginx-$name.conf" -p "$dir" &
    pids+=($!)
    for _ in $(seq 200); do curl -sf -o /dev/null "127.0.0.1:$lb/v2/" && return 0; sleep 0.1; done
    echo "$name did not start" >&2; tail -5 "$dir/$name"-*.log >&2; exit 1
}

start_pair strata "$(free_port)" "$(free_port)" 5100
start_pair distribution "$(free_port)" "$(free_port)" 5200
declare -A lb=([strata]=http://127.0.0.1:5100 [distribution]=http://127.0.0.1:5200)

echo "creating a $size_mib MiB and four 256 MiB random blobs in $dir ..." >&2
blob=$dir/blob.bin
digest=$(make_blob "$size_mib" "$blob")
declare -a small small_digest
for n in 0 1 2 3; do
    small[$n]=$dir/small$n.bin
    small_digest[$n]=$(make_blob 256 "${small[$n]}")
done

# The object store on its own, without a registry (boto3, when installed: pip install boto3):
# a multipart put in 16 MiB parts, 4 at once, and a download (ranged GETs in parallel).
if python3 -c 'import boto3' 2>/dev/null; then
    python3 - "$key_id" "$key_secret" "$blob" <<'PY'
import sys, time, boto3
from boto3.s3.transfer import TransferConfig
kid, secret, path = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:3900", aws_access_key_id=kid,
                  aws_secret_access_key=secret, region_name="garage",
                  config=boto3.session.Config(s3={"addressing_style": "path"}))
size = __import__("os").path.getsize(path)
cfg = TransferConfig(multipart_threshold=16 << 20, multipart_chunksize=16 << 20, max_concurrency=4)
put = float("inf")
for i in range(2):  # the best of two: the first write to a fresh cluster is slower
    t = time.time(); s3.upload_file(path, "registry", "floor/blob", Config=cfg); put = min(put, time.time() - t)
t = time.time(); s3.download_file("registry", "floor/blob", "/dev/null"); get = time.time() - t
print(f"the object store through boto3 (no registry): put {size / put / 1e6:.0f} MB/s, get {size / get / 1e6:.0f} MB/s")
PY
fi

declare -A push_t pull_t direct_t par_t rps
for run in $(seq "$runs"); do
    if (( run % 2 )); then order="distribution strata"; else order="strata distribution"; fi
    for name in $order; do
        push_t[$name]+="$(push "${lb[$name]}" "$blob" "$digest" "bench$run") "
        pull_t[$name]+="$(pull "${lb[$name]}" "$digest" "bench$run") "
        direct_t[$name]+="$(pull "${direct[$name]}" "$digest" "bench$run") "
    done
done
for name in distribution strata; do
    started=$(date +%s.%N)
    concurrent=()
    for n in 0 1 2 3; do
        push "${lb[$name]}" "${small[$n]}" "${small_digest[$n]}" "par$n" >/dev/null &
        concurrent+=($!)
    done
    for j in "${concurrent[@]}"; do wait "$j"; done
    par_t[$name]=$(python3 -c "print($(date +%s.%N) - $started)")
    push_manifest "${lb[$name]}" manifests
    rps[$name]=$(manifest_rps "${lb[$name]}" manifests)
done

mbps() { awk -v b="$(( $1 * 1024 * 1024 ))" -v s="$2" 'BEGIN {printf "%.0f", b / s / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "== results (medians of $runs; MB/s through the balancer)"
for name in distribution strata; do
    p=$(tr ' ' '\n' <<<"${push_t[$name]}" | grep . | median)
    l=$(tr ' ' '\n' <<<"${pull_t[$name]}" | grep . | median)
    d=$(tr ' ' '\n' <<<"${direct_t[$name]}" | grep . | median)
    printf '%-13s push %5s MB/s  pull %5s MB/s (one replica directly %5s)  4x256 MiB %6.1f s  manifest GET %8s rps  peak RSS' \
        "$name" "$(mbps "$size_mib" "$p")" "$(mbps "$size_mib" "$l")" "$(mbps "$size_mib" "$d")" "${par_t[$name]}" "${rps[$name]}"
    for pid in ${replica_pids[$name]}; do printf ' %s MiB' "$(peak_rss_mib "$pid")"; done
    echo
    declare "med_push_$name=$p" "med_pull_$name=$l" "med_direct_$name=$d"
done
echo "strata / distribution: push $(ratio "$med_push_distribution" "$med_push_strata")x," \
    "pull $(ratio "$med_pull_distribution" "$med_pull_strata")x" \
    "(directly $(ratio "$med_direct_distribution" "$med_direct_strata")x)," \
    "4 concurrent pushes $(ratio "${par_t[distribution]}" "${par_t[strata]}")x," \
    "manifest GET $(ratio "${rps[strata]}" "${rps[distribution]}")x"
