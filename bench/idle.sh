#!/usr/bin/env bash
# make bench-idle: what an idle hive costs, against the floor collector.
# Each configuration runs alone for WINDOW (default 40 s) with one SSE
# client (curl) and one NATS subscriber (bin/nats) attached to the hive:
# CPU (perf task-clock, or utime+stime from /proc/<pid>/stat; % of one
# core) and context switches from every thread's /proc/<pid>/task/*/status
# (voluntary + involuntary, per second): the wake-ups.
set -euo pipefail
window=${1:-40}
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 -- "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
hz=$(getconf CLK_TCK)

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s+=$2} END {print s}'; }
# CPU time: perf's task-clock where perf runs (exact), else utime+stime
# from /proc/<pid>/stat (in clock ticks: 1/(CLK_TCK*window) per tick,
# 0.025 % at 40 s).
if perf stat -x, -e task-clock true >/dev/null 2>&1; then clock=perf; else clock=ticks; fi
measure() { # name pid
  sleep 3 # started, clients attached
  local t0 s0 t1 s1 cpu
  s0=$(switches "$2")
  if [ "$clock" = perf ]; then
    cpu=$(perf stat -x, -e task-clock -p "$2" -- sleep "$window" 2>&1 | awk -F, -v w="$window" '/task-clock/ {printf "%.3f", $1/10/w}')
  else
    t0=$(ticks "$2"); sleep "$window"; t1=$(ticks "$2")
    cpu=$(awk -v dt="$((t1 - t0))" -v w="$window" -v hz="$hz" 'BEGIN {printf "%.3f", 100*dt/hz/w}')
  fi
  s1=$(switches "$2")
  awk -v n="$1" -v cpu="$cpu" -v ds="$((s1 - s0))" -v w="$window" -v th="$(ls /proc/"$2"/task | wc -l)" -v clk="$clock" \
    'BEGIN {printf "%-26s cpu %6s %% (%s)  switches %7.1f /s  threads %d\n", n, cpu, clk, ds/w, th}'
}

workers() { # n: demo workers with /health, as a GPU host's few servers
  for i in $(seq "$1"); do
    setsid bin/demo-worker --model "idle-$i" --port "$((22000 + i))" --cpu 0 --mem-mib 1 >/dev/null &
    pids+=($!)
  done
}

hive_run() { # name, then hive flags
  local name=$1; shift
  setsid bin/hive --queen-url "" --gpu-source none --port 17961 --nats-listen 127.0.0.1:14961 --log-level warn "$@" & local h=$!
  pids+=($h)
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:17961/health && break; sleep 0.1; done
  setsid curl -sN http://127.0.0.1:17961/v1/heartbeats/stream >/dev/null & pids+=($!)
  setsid bin/nats --server nats://127.0.0.1:14961 sub hive.telemetry >/dev/null 2>&1 & pids+=($!)
  measure "$name" "$h"
  kill -9 -- "-$h" 2>/dev/null || kill -9 "$h"; wait "$h" 2>/dev/null || true
}

floor_run() {
  setsid bin/floorcollector -match '^(llm-worker|worker-rbee)|demo-worker' & local f=$!
  pids+=($f)
  measure "$1" "$f"
  kill -9 "$f"; wait "$f" 2>/dev/null || true
}

echo "idle cost, ${window} s each, $(nproc) CPUs, $(uname -r)"
hive_run "hive idle (defaults)"
floor_run "floor idle"
workers 10
hive_run "hive, 10 workers" --worker-match 'cmdline:demo-worker'
floor_run "floor, 10 workers"
