#!/usr/bin/env bash
# make bench-fanout: the same load generator (bin/fanoutload) against the
# hive, the naive net/http floor (bin/floorfanout) and, where it is built,
# Centrifugo (uni_sse), one after the other in one run. Loopback only,
# bounded in clients and time.
set -euo pipefail
clients=${1:-1000}
window=${2:-20s}
cache=${HIVE_BENCH_CACHE:-$HOME/.cache/hive-bench}
ulimit -n "$(ulimit -Hn)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 -- "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_http() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# hive: eight idle workers make a ~2 KB event once a second.
for i in $(seq 8); do
  setsid sh -c 'sleep 100000; true' llm-worker-fanout --model "model-$i" --port "$((21000 + i))" & pids+=($!)
done
# TLS=1: the hive over HTTPS too (a throw-away CA and certificate), after
# the same run in plain HTTP.
run_hive() {
  local scheme=$1; shift
  setsid bin/hive --port 17951 --nats-listen "" --queen-url "" --gpu-source none --cgroup-root "" \
    --worker-match cmdline:llm-worker-fanout --log-level error \
    --http-max-conns 30000 --http-max-conns-per-ip 30000 "$@" & hive=$!; pids+=($hive)
  wait_http "$scheme://127.0.0.1:17951/health"
  bin/fanoutload -name "hive $scheme" -url "$scheme://127.0.0.1:17951/v1/heartbeats/stream" ${tlsca:+-ca-file "$tlsca"} \
    -pid "$hive" -clients "$clients" -window "$window"
  kill -9 "$hive"; sleep 1
}
tlsca=""
run_hive http
if [ "${TLS:-}" = 1 ]; then
  tlsdir=$(mktemp -d)
  (cd "$tlsdir" && umask 077 &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca -keyout ca.key -out ca.pem 2>/dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 -keyout hive.key -out hive.csr 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1\n' > ext && openssl x509 -req -in hive.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out hive.crt 2>/dev/null)
  tlsca=$tlsdir/ca.pem
  wait_http() { for _ in $(seq 100); do curl -sf --cacert "$tlsca" -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
  run_hive https --tls-cert-file "$tlsdir/hive.crt" --tls-key-file "$tlsdir/hive.key"
  tlsca=""
fi
tls_args=()
if [ "${TLS:-}" = 1 ]; then tls_args=("$tlsdir/hive.crt" "$tlsdir/hive.key" "$tlsdir/ca.pem"); fi

setsid bin/floorfanout -listen 127.0.0.1:17952 & floor=$!; pids+=($floor)
sleep 0.5
bin/fanoutload -name net/http -url http://127.0.0.1:17952/stream -pid "$floor" -clients "$clients" -window "$window"
kill -9 "$floor"

if [ -x "$cache/bin/centrifugo" ]; then
  bash bench/centrifugo.sh "$cache/bin/centrifugo" "$clients" "$window"
  if [ ${#tls_args[@]} -gt 0 ]; then bash bench/centrifugo.sh "$cache/bin/centrifugo" "$clients" "$window" "${tls_args[@]}"; fi
else
  echo "centrifugo: not built (GOBIN=$cache/bin go install github.com/centrifugal/centrifugo/v6@v6.9.1)"
fi
