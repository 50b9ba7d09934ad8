#!/usr/bin/env bash
# One-time Garage setup for compose.yaml: a layout for its single node, the `registry` bucket and
# a key allowed on it, written to .env for the registries.
set -euo pipefail
cd "$(dirname "$0")"
garage() { docker compose -f compose.yaml exec -T garage /garage "$@"; }
node=$(garage node id -q | cut -d@ -f1)
garage layout assign -z dc1 -c 10G "$node"
garage layout apply --version 1 || true   # already applied on a second run
garage bucket create registry 2>/dev/null || true
key=$(garage key create strata-registry)
id=$(awk '/Key ID/ {print $3}' <<<"$key")
secret=$(awk '/Secret key/ {print $3}' <<<"$key")
garage bucket allow --read --write --owner registry --key "$id"
printf 'GARAGE_KEY_ID=%s\nGARAGE_SECRET=%s\n' "$id" "$secret" > .env
echo "wrote deploy/compose/.env"
