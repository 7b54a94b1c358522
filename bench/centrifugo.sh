#!/usr/bin/env bash
# Centrifugo v6 (uni_sse) under the same load as the hive: fed the same
# ~2 KB event once a second through its HTTP API. Called by bench/fanout.sh.
set -euo pipefail
bin=$1 clients=$2 window=$3
dir=$(mktemp -d)
cat > "$dir/config.json" <<JSON
{
  "http_server": {"address": "127.0.0.1", "port": 17953},
  "log": {"level": "error"},
  "client": {"token": {"hmac_secret_key": "bench-secret"}, "allowed_origins": ["*"]},
  "http_api": {"key": "bench-api-key"},
  "uni_sse": {"enabled": true},
  "usage_stats": {"disabled": true}
}
JSON
setsid "$bin" -c "$dir/config.json" & cf=$!
trap 'kill -9 "$cf" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:17953/health && break; sleep 0.1; done
bin/fanoutload -name centrifugo -url http://127.0.0.1:17953/connection/uni_sse -jwt-secret bench-secret \
  -publish-url http://127.0.0.1:17953/api/publish -api-key bench-api-key -pid "$cf" -clients "$clients" -window "$window"
