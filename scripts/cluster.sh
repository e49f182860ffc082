#!/usr/bin/env bash
# Try cluster mode on this machine: Redis (Debian's redis-server), N workers and one web process,
# all sharing ./outputs. Ctrl+C stops them all.
# Usage: scripts/cluster.sh [--workers N] [--port PORT] [--redis-port PORT] [-- extra worker flags, e.g. --model X]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=2 port=7860 redis_port=6380 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --redis-port) redis_port=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "cluster.sh: unknown option $1 (see the usage line at the top of this script)" >&2; exit 2 ;;
  esac
done
WANT_REDIS=1 scripts/setup.sh

state=outputs/.cluster  # Redis's append-only file and the processes' logs
mkdir -p "$state"
broker="redis://127.0.0.1:$redis_port/0"
pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop INT TERM EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$PWD/$state" --appendonly yes --save "" \
  --logfile "$PWD/$state/redis.log" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$redis_port" ping >/dev/null || { echo "cluster.sh: redis-server did not start; see $state/redis.log" >&2; exit 1; }

# One torch thread per worker unless told otherwise, so workers on one machine do not fight for cores.
threads=${OMP_NUM_THREADS:-$(( $(nproc) / workers > 0 ? $(nproc) / workers : 1 ))}
for i in $(seq 1 "$workers"); do
  OMP_NUM_THREADS=$threads .venv/bin/python -m server worker --broker "$broker" --name "worker$i" "${extra[@]}" \
    >"$state/worker$i.log" 2>&1 &
  pids+=($!)
done
echo "cluster: redis on $broker, $workers workers (logs in $state/)"
.venv/bin/python -m server serve --broker "$broker" --port "$port" &
pids+=($!)
wait -n "${pids[@]}"
echo "cluster.sh: a process stopped; see $state/ for its log. Stopping the rest." >&2
