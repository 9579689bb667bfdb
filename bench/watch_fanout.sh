#!/usr/bin/env bash
# Watch fan-out benchmark: 1,000 watchers on one prefix under 1,000 puts/s, against a single
# balsad member and a single Debian etcd 3.4.23 member, one after the other in the same run,
# each on its own data dir under /tmp (fsync on), loopback, kernel-chosen ports.
# Usage: bench/watch_fanout.sh build/src/balsad/balsad [watchers] [rate] [seconds]
set -uo pipefail
BALSAD=${1:?usage: watch_fanout.sh <balsad> [watchers] [rate] [seconds]}
WATCHERS=${2:-1000}
RATE=${3:-1000}
SECONDS_=${4:-10}
TOOL=$(dirname "$BALSAD")/../../bench/watch_fanout
DIR=$(mktemp -d /tmp/watch-fanout.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$DIR"' EXIT
ports() { python3 -c 'import socket;s=[socket.socket() for _ in range(2)];[x.bind(("127.0.0.1",0)) for x in s];print(*[x.getsockname()[1] for x in s])'; }
ready() { for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints="$1" put /bench-ready x >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
read -r C P <<<"$(ports)"
"$BALSAD" --name b --data-dir "$DIR/b" --listen-client-urls "http://127.0.0.1:$C" --advertise-client-urls "http://127.0.0.1:$C" \
  --listen-peer-urls "http://127.0.0.1:$P" --initial-advertise-peer-urls "http://127.0.0.1:$P" --initial-cluster "b=http://127.0.0.1:$P" \
  >"$DIR/balsad.log" 2>&1 &
BP=$!; PIDS+=("$BP")
ready "127.0.0.1:$C" || { echo "balsad did not start"; exit 1; }
"$TOOL" --endpoint "127.0.0.1:$C" --watchers "$WATCHERS" --rate "$RATE" --seconds "$SECONDS_" --server-pid "$BP" --label balsad
kill -9 "$BP"; wait "$BP" 2>/dev/null
echo "load average between: $(cut -d' ' -f1-3 /proc/loadavg)"

read -r C P <<<"$(ports)"
etcd --name e --data-dir "$DIR/e" --listen-client-urls "http://127.0.0.1:$C" --advertise-client-urls "http://127.0.0.1:$C" \
  --listen-peer-urls "http://127.0.0.1:$P" --initial-advertise-peer-urls "http://127.0.0.1:$P" --initial-cluster "e=http://127.0.0.1:$P" \
  >"$DIR/etcd.log" 2>&1 &
EP=$!; PIDS+=("$EP")
ready "127.0.0.1:$C" || { echo "etcd did not start"; exit 1; }
"$TOOL" --endpoint "127.0.0.1:$C" --watchers "$WATCHERS" --rate "$RATE" --seconds "$SECONDS_" --server-pid "$EP" --label "etcd $(etcd --version | head -1 | awk '{print $3}')"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
