#!/usr/bin/env bash
# Assembles the image deploy/Dockerfile describes, without docker: a root with the registry
# binary, the shared libraries it links, CA certificates, the nonroot user 65532 and
# deploy/container.toml, imported into strata's local store as one layer with the same config
# (user, entrypoint, port, volume). Push it anywhere with `strata push`.
#
# Usage: deploy/image.sh [--binary PATH] [NAME]
#   --binary   the strata-registry to put in (default: target/release/strata-registry)
#   NAME       image name (default: strata-registry:latest)
# Uses `strata` from PATH, or $STRATA; the store is $STRATA_HOME's, as for any strata command.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=target/release/strata-registry
name=strata-registry:latest
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) name=$1; shift ;;
    esac
done
strata=${STRATA:-strata}
[ -x "$binary" ] || { echo "deploy/image.sh: no $binary (cargo build --release -p strata-registry)" >&2; exit 1; }

root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$binary" "$root/usr/local/bin/strata-registry"
# Every shared library the binary loads, and the loader, at the paths it looks for them.
ldd "$binary" | awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]+ \(/ {print $1}' | while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
install -D -m 0644 deploy/container.toml "$root/etc/strata/registry.toml"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
install -d -m 0755 -o 65532 -g 65532 "$root/var/lib/strata" "$root/home/nonroot"
install -d -m 1777 "$root/tmp"

"$strata" import "$root" "$name" \
    --change 'USER 65532:65532' \
    --change 'EXPOSE 5000/tcp' \
    --change 'VOLUME /var/lib/strata' \
    --change 'ENTRYPOINT ["/usr/local/bin/strata-registry", "--config", "/etc/strata/registry.toml"]' \
    --message "strata-registry $("$binary" --version | awk '{print $2}')"
