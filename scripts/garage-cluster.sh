# A 3-node Garage cluster (replication 3) on loopback, for scripts/test-scale and bench/scale.sh.
# Source it, then: garage_cluster DIR  -> S3 on 127.0.0.1:3900, :3910, :3920, bucket `registry`,
# and $key_id / $key_secret of a key allowed on it; garage_start I restarts node I. The caller
# stops the nodes (their pids are in DIR/gI/pid). Needs garage on PATH or in /opt/garage/bin.
PATH="$PATH:/opt/garage/bin"

garage_start() {
    local i=$1
    garage -c "$garage_dir/g$i/garage.toml" server >> "$garage_dir/g$i/log" 2>&1 &
    echo $! > "$garage_dir/g$i/pid"
}

garage_stop() {
    local i
    for i in 0 1 2; do [ -f "$garage_dir/g$i/pid" ] && kill "$(cat "$garage_dir/g$i/pid")" 2>/dev/null || true; done
}

garage_cluster() {
    garage_dir=$1
    command -v garage >/dev/null || { echo "garage not found (cargo install garage --locked --root /opt/garage)" >&2; return 1; }
    local secret i id short keyinfo
    secret=$(openssl rand -hex 32)
    for i in 0 1 2; do
        mkdir -p "$garage_dir/g$i"
        cat > "$garage_dir/g$i/garage.toml" <<TOML
metadata_dir = "$garage_dir/g$i/meta"
data_dir = "$garage_dir/g$i/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:39${i}1"
rpc_public_addr = "127.0.0.1:39${i}1"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:39${i}0"
root_domain = ".s3.garage.localhost"
TOML
        garage_start "$i"
    done
    local g0=(garage -c "$garage_dir/g0/garage.toml")
    # Every node up (its key written, which `node id` reads) before they are connected.
    for i in 0 1 2; do
        for _ in $(seq 100); do
            garage -c "$garage_dir/g$i/garage.toml" node id -q >/dev/null 2>&1 && break
            sleep 0.2
        done
    done
    for _ in $(seq 100); do "${g0[@]}" status >/dev/null 2>&1 && break; sleep 0.2; done
    for i in 1 2; do
        id=$(garage -c "$garage_dir/g$i/garage.toml" node id -q)
        "${g0[@]}" node connect "$id" >/dev/null
    done
    for i in 0 1 2; do
        short=$(garage -c "$garage_dir/g$i/garage.toml" node id -q | cut -d@ -f1)
        "${g0[@]}" layout assign -z "dc$i" -c 10G "$short" >/dev/null
    done
    "${g0[@]}" layout apply --version 1 >/dev/null
    "${g0[@]}" bucket create registry >/dev/null
    keyinfo=$("${g0[@]}" key create strata)
    "${g0[@]}" bucket allow --read --write --owner registry --key strata >/dev/null
    key_id=$(awk '/Key ID/ {print $NF}' <<<"$keyinfo")
    key_secret=$(awk '/Secret key/ {print $NF}' <<<"$keyinfo")
}
