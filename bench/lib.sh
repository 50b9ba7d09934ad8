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

