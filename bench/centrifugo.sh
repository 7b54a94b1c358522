#!/usr/bin/env bash
# Centrifugo v6 (uni_sse) under the same load as the hive: fed the same
# ~2 KB event once a second through its HTTP API. Called by bench/fanout.sh.
set -euo pipefail
# With a fourth and fifth argument (certificate, key) and a sixth (the CA),
# it serves TLS, as the hive does under TLS=1.
bin=$1 clients=$2 window=$3 cert=${4:-} key=${5:-} ca=${6:-}
dir=$(mktemp -d)
scheme=http tls=""
if [ -n "$cert" ]; then
  scheme=https tls=", \"tls\": {\"enabled\": true, \"cert_pem\": \"$cert\", \"key_pem\": \"$key\"}"
fi
cat > "$dir/config.json" <<JSON
{
  "http_server": {"address": "127.0.0.1", "port": 17953$tls},
  "log": {"level": "error"},
  "client": {"token": {"hmac_secret_key": "bench-secret"}, "allowed_origins": ["*"]},
  "http_api": {"key": "bench-api-key"},
  "uni_sse": {"enabled": true},
  "usage_stats": {"disabled": true}
}
JSON
setsid "$bin" -c "$dir/config.json" & cf=$!
trap 'kill -9 "$cf" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf ${ca:+--cacert "$ca"} -o /dev/null $scheme://127.0.0.1:17953/health && break; sleep 0.1; done
bin/fanoutload -name "centrifugo $scheme" -url $scheme://127.0.0.1:17953/connection/uni_sse -jwt-secret bench-secret ${ca:+-ca-file "$ca"} \
  -publish-url $scheme://127.0.0.1:17953/api/publish -api-key bench-api-key -pid "$cf" -clients "$clients" -window "$window"
