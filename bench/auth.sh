#!/usr/bin/env bash
# Access-control benchmark: strata-registry over plain HTTP without auth, with token auth over
# plain HTTP, and with token auth over TLS, in the same run, same storage medium:
#   - manifest GET requests/s (wrk, 32 connections; with a Bearer token over HTTPS, the token
#     verified on every request)
#   - 1 GiB blob push (POST + PUT with curl, and `strata copy` of a one-layer image) and GET
#     (curl), median of --runs
# Targets: token auth costs at most 25 % of manifest GET throughput; TLS push >= 0.8x plain.
#
# Usage: bench/auth.sh [--size-mib N] [--dir DIR] [--seconds S] [--runs R]
# Needs (installed when missing, as root): curl, wrk, openssl, apache2-utils (htpasswd).
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=1024
dir=/dev/shm/strata-bench-auth
seconds=10
runs=3
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mib) size_mib=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: $0 [--size-mib N] [--dir DIR] [--seconds S] [--runs R]" >&2; exit 2 ;;
    esac
done

need=()
command -v curl >/dev/null || need+=(curl)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
command -v htpasswd >/dev/null || need+=(apache2-utils)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p strata-registry -p strata-client
strata_bin=target/release/strata-registry
client_bin=$PWD/target/release/strata

rm -rf "$dir" && mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh

# The secure registry: TLS with a certificate from a CA made here, htpasswd, the token service.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -days 2 -out "$dir/tls.crt" \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE') 2>/dev/null
mkdir -p "$dir/certs" && cp "$dir/ca.crt" "$dir/certs/ca.crt"
htpasswd -B -b -c "$dir/htpasswd" bench bench-password 2>/dev/null
cat > "$dir/token.toml" <<TOML
[auth]
htpasswd = "$dir/htpasswd"
[auth.token]
key = "$dir/token.pem"
[[access]]
repositories = ["**"]
users = ["bench"]
actions = ["pull", "push"]
TOML
{ printf '[tls]\ncert = "%s"\nkey = "%s"\n' "$dir/tls.crt" "$dir/tls.key"; cat "$dir/token.toml"; } > "$dir/secure.toml"

start_registry strata
plain=$base
secure_port=$(free_port)
RUST_LOG=warn "$strata_bin" --config "$dir/secure.toml" --listen "127.0.0.1:$secure_port" --root "$dir/secure-data" \
    2>"$dir/secure.log" &
pids+=("$!")
secure="https://127.0.0.1:$secure_port"
for _ in $(seq 100); do curl -sf --cacert "$dir/ca.crt" -o /dev/null "$secure/healthz" && break; sleep 0.1; done
token=$(curl -sf --cacert "$dir/ca.crt" -u bench:bench-password \
    "$secure/token?service=strata-registry&scope=repository:bench:pull,push" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
auth=(-H "Authorization: Bearer $token")
token_port=$(free_port)
RUST_LOG=warn "$strata_bin" --config "$dir/token.toml" --listen "127.0.0.1:$token_port" --root "$dir/token-data" \
    2>"$dir/token.log" &
pids+=("$!")
tokened="http://127.0.0.1:$token_port"
for _ in $(seq 100); do curl -sf -o /dev/null "$tokened/healthz" && break; sleep 0.1; done
http_token=$(curl -sf -u bench:bench-password \
    "$tokened/token?service=strata-registry&scope=repository:bench:pull,push" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
hauth=(-H "Authorization: Bearer $http_token")

blob=$dir/blob.bin
head -c "$(( size_mib * 1024 * 1024 ))" /dev/urandom > "$blob"
digest="sha256:$(openssl dgst -sha256 -r "$blob" | cut -d' ' -f1)"
# The same blob as the one layer of an image in an OCI layout, for `strata copy`.
python3 - "$dir" "$digest" <<'PY'
import hashlib, json, os, sys
d, digest = sys.argv[1], sys.argv[2]
os.makedirs(f"{d}/layout/blobs/sha256", exist_ok=True)
os.link(f"{d}/blob.bin", f"{d}/layout/blobs/sha256/{digest[7:]}")
def put(data):
    h = hashlib.sha256(data).hexdigest()
    open(f"{d}/layout/blobs/sha256/{h}", "wb").write(data)
    return "sha256:" + h
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest,
                "size": os.path.getsize(f"{d}/blob.bin")}]}).encode()
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": put(manifest), "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
open(f"{d}/layout/index.json", "w").write(json.dumps(index))
open(f"{d}/layout/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
export DOCKER_CONFIG=$dir/docker
strata_client() { "$client_bin" --home "$dir/client-home" -q "$@"; }
strata_client login --cert-dir "$dir/certs" -u bench -p bench-password "127.0.0.1:$secure_port"
strata_client login -u bench -p bench-password "127.0.0.1:$token_port"
# strata_push HOSTPORT ROUND [args...] -> seconds (a fresh repository each time: nothing to skip)
strata_push() {
    local target=$1 round=$2; shift 2
    local start end
    start=$(date +%s.%N)
    strata_client copy --chunk-size 4GiB "$@" "oci:$dir/layout:v1" "$target/bench/copy$round:v1" >/dev/null
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f\n", b - a}'
}

# push BASE [curl args...] -> seconds
push() {
    local base=$1; shift
    local location url
    location=$(curl -sS "$@" -D - -o /dev/null -X POST "$base/v2/bench/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
    case "$location" in http*) url=$location ;; *) url=$base$location ;; esac
    curl -sS "$@" -o /dev/null -w '%{http_code} %{time_total}\n' -X PUT -T "$blob" -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' "$url?digest=$digest" | {
        read -r code secs
        [ "$code" = 201 ] || { echo "push to $base answered $code" >&2; exit 1; }
        echo "$secs"
    }
}
pull() { local base=$1; shift; curl -sS "$@" -o /dev/null -w '%{time_total}\n' "$base/v2/bench/blobs/$digest"; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
manifest() { # manifest BASE [curl args...]: a small image at bench:latest
    local base=$1; shift
    local cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' d location url
    d="sha256:$(printf '%s' "$cfg" | openssl dgst -sha256 -r | cut -d' ' -f1)"
    location=$(curl -sS "$@" -D - -o /dev/null -X POST "$base/v2/bench/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
    case "$location" in http*) url=$location ;; *) url=$base$location ;; esac
    curl -sSf "$@" -o /dev/null -X PUT --data-binary "$cfg" "$url?digest=$d"
    curl -sSf "$@" -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$d\",\"size\":${#cfg}},\"layers\":[]}" \
        "$base/v2/bench/manifests/latest"
}
rps() { # rps URL [wrk args...]
    local url=$1; shift
    wrk -t2 -c32 -d"${seconds}s" "$@" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$url" | awk '/Requests\/sec/ {print $2}'
}

tls=(--cacert "$dir/ca.crt" "${auth[@]}")
manifest "$plain"
manifest "$tokened" "${hauth[@]}"
manifest "$secure" "${tls[@]}"
# Warm-up pushes (first touch of memory), then alternate the three in each round.
push "$plain" >/dev/null
push "$tokened" "${hauth[@]}" >/dev/null
push "$secure" "${tls[@]}" >/dev/null
p_push=() t_push=() s_push=() p_pull=() t_pull=() s_pull=()
for _ in $(seq "$runs"); do
    p_push+=("$(push "$plain")"); t_push+=("$(push "$tokened" "${hauth[@]}")"); s_push+=("$(push "$secure" "${tls[@]}")")
    p_pull+=("$(pull "$plain")"); t_pull+=("$(pull "$tokened" "${hauth[@]}")"); s_pull+=("$(pull "$secure" "${tls[@]}")")
done
p_copy=() t_copy=() s_copy=()
for round in $(seq "$runs"); do
    p_copy+=("$(strata_push "${plain#http://}" "$round")")
    t_copy+=("$(strata_push "127.0.0.1:$token_port" "$round")")
    s_copy+=("$(strata_push "127.0.0.1:$secure_port" "$round" --cert-dir "$dir/certs")")
done
p_rps=$(rps "$plain/v2/bench/manifests/latest")
t_rps=$(rps "$tokened/v2/bench/manifests/latest" -H "Authorization: Bearer $http_token")
s_rps=$(rps "$secure/v2/bench/manifests/latest" -H "Authorization: Bearer $token")

mb() { awk -v b="$(( size_mib * 1024 * 1024 ))" -v s="$1" 'BEGIN {printf "%.0f", b / s / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
med() { printf '%s\n' "$@" | median; }
pp=$(med "${p_push[@]}"); tp=$(med "${t_push[@]}"); sp=$(med "${s_push[@]}")
pl=$(med "${p_pull[@]}"); tl=$(med "${t_pull[@]}"); sl=$(med "${s_pull[@]}")
pc=$(med "${p_copy[@]}"); tc=$(med "${t_copy[@]}"); sc=$(med "${s_copy[@]}")
echo "auth bench: ${size_mib} MiB blob under $dir, loopback, same run, median of $runs"
printf '  %-26s %14s %14s %14s %10s %10s\n' "" "plain, no auth" "HTTP + token" "TLS + token" "token/pl" "TLS+t/pl"
row() { printf '  %-26s %9s %-4s %9s %-4s %9s %-4s %9sx %9sx\n' "$1" "$2" "$5" "$3" "$5" "$4" "$5" "$(ratio "$3" "$2")" "$(ratio "$4" "$2")"; }
row "push (POST + PUT, curl)" "$(mb "$pp")" "$(mb "$tp")" "$(mb "$sp")" "MB/s"
row "push (strata copy)" "$(mb "$pc")" "$(mb "$tc")" "$(mb "$sc")" "MB/s"
row "blob GET (curl)" "$(mb "$pl")" "$(mb "$tl")" "$(mb "$sl")" "MB/s"
row "manifest GET (wrk -c32)" "$p_rps" "$t_rps" "$s_rps" "rps"
