# Helpers the registry benchmarks share. Expects $dir (scratch directory), $strata_bin (the
# strata-registry binary) and an array pids=() that the caller's cleanup kills.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_registry NAME -> sets $pid and $base
start_registry() {
    local name=$1 port
    port=$(free_port)
    rm -rf "$dir/$name-data"
    case "$name" in
        strata)
            RUST_LOG=warn "$strata_bin" --listen "127.0.0.1:$port" --root "$dir/$name-data" 2>"$dir/$name.log" &
            ;;
        distribution)
            cat > "$dir/distribution.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  filesystem: { rootdirectory: $dir/$name-data }
  delete: { enabled: true }
  maintenance: { uploadpurging: { enabled: false } }
http: { addr: 127.0.0.1:$port }
YAML
            docker-registry serve "$dir/distribution.yml" >"$dir/$name.log" 2>&1 &
            ;;
    esac
    pid=$!
    pids+=("$pid")
    base="http://127.0.0.1:$port"
    for _ in $(seq 100); do curl -sf -o /dev/null "$base/v2/" && return 0; sleep 0.1; done
    echo "$name did not start; log:" >&2; cat "$dir/$name.log" >&2; exit 1
}

peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# Blob pushes and pulls over plain HTTP, as any client does them (used by registry.sh, scale.sh).
make_blob() { # make_blob MIB FILE -> prints digest
    head -c "$(( $1 * 1024 * 1024 ))" /dev/urandom > "$2"
    echo "sha256:$(openssl dgst -sha256 -r "$2" | cut -d' ' -f1)"
}

# push BASE FILE DIGEST REPO -> prints seconds
push() {
    local base=$1 file=$2 digest=$3 repo=$4 location url
    location=$(curl -sS -D - -o /dev/null -X POST "$base/v2/$repo/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
    case "$location" in http*) url=$location ;; *) url=$base$location ;; esac
    case "$url" in *\?*) url="$url&digest=$digest" ;; *) url="$url?digest=$digest" ;; esac
    curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' -X PUT -T "$file" -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' "$url" | {
        read -r code secs
        [ "$code" = 201 ] || { echo "push to $base answered $code" >&2; exit 1; }
        echo "$secs"
    }
}

pull() { # pull BASE DIGEST REPO -> prints seconds
    curl -sS -o /dev/null -w '%{time_total}\n' "$1/v2/$3/blobs/$2"
}

push_manifest() { # push_manifest BASE REPO
    local base=$1 repo=$2 cfg layer cfgd layerd manifest
    cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer="a small layer"
    cfgd="sha256:$(printf '%s' "$cfg" | openssl dgst -sha256 -r | cut -d' ' -f1)"
    layerd="sha256:$(printf '%s' "$layer" | openssl dgst -sha256 -r | cut -d' ' -f1)"
    for pair in "$cfg|$cfgd" "$layer|$layerd"; do
        local body=${pair%|*} d=${pair##*|} location url
        location=$(curl -sS -D - -o /dev/null -X POST "$base/v2/$repo/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
        case "$location" in http*) url=$location ;; *) url=$base$location ;; esac
        case "$url" in *\?*) url="$url&digest=$d" ;; *) url="$url?digest=$d" ;; esac
        curl -sSf -o /dev/null -X PUT --data-binary "$body" -H 'Content-Type: application/octet-stream' "$url"
    done
    manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$cfgd\",\"size\":${#cfg}},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"$layerd\",\"size\":${#layer}}]}"
    curl -sSf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "$manifest" "$base/v2/$repo/manifests/latest"
}

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

manifest_rps() { # manifest_rps BASE REPO -> prints requests/s
    wrk -t2 -c32 -d"${seconds}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "$1/v2/$2/manifests/latest" | awk '/Requests\/sec/ {print $2}'
}
