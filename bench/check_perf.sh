#!/usr/bin/env bash
# etcd's own benchmark against balsad and against Debian's etcd, started the same way:
# 3 members on loopback, fsync on, data dirs on the real disk (not tmpfs), one after the other
# in the same session. Prints `etcdctl check perf`'s verdict lines for each system and load,
# plus the 1-minute load average before each run (other builds on the machine skew the figures).
#
# Usage: bench/check_perf.sh [path to balsad]            (default build/src/balsad/balsad)
#   LOADS="m l"          loads to run (etcdctl check perf --load=...)
#   SYSTEMS="balsad etcd"
#   DATA_ROOT=/var/tmp   where the data dirs go (must be a real disk for fsync to mean anything)
#   BALSAD_ARGS=...      extra balsad flags
#   KEEP_LOGS=DIR        copy each run's member logs to DIR/<system>-<load>/ before cleaning up
set -uo pipefail

BALSAD=${1:-build/src/balsad/balsad}
LOADS=${LOADS:-m l}
SYSTEMS=${SYSTEMS:-balsad etcd}
export ETCDCTL_API=3
command -v etcdctl >/dev/null || { echo "no etcdctl (apt-get install etcd-client)"; exit 2; }
ROOT=$(mktemp -d "${DATA_ROOT:-/var/tmp}/check-perf.XXXXXX")
declare -a PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$ROOT"
}
trap cleanup EXIT

# Ports below 32768, reserved and probed (scripts/lib/ports.sh).
# shellcheck source=../scripts/lib/ports.sh
source "$(dirname "$0")/../scripts/lib/ports.sh"

# start_cluster <system> <dir>: starts 3 members, sets ENDPOINTS.
start_cluster() {
  local sys=$1 dir=$2 bin
  reserve_ports 6 || exit 1
  local P=("${PORTS[@]}")
  local cluster="" i
  for i in 0 1 2; do cluster+="${cluster:+,}n$i=http://127.0.0.1:${P[$((2 * i + 1))]}"; done
  ENDPOINTS=""
  for i in 0 1 2; do
    local c=http://127.0.0.1:${P[$((2 * i))]} p=http://127.0.0.1:${P[$((2 * i + 1))]}
    ENDPOINTS+="${ENDPOINTS:+,}127.0.0.1:${P[$((2 * i))]}"
    if [[ $sys == balsad ]]; then bin=$BALSAD; else bin=etcd; fi
    # shellcheck disable=SC2086
    "$bin" --name "n$i" --data-dir "$dir/n$i" --listen-client-urls "$c" --advertise-client-urls "$c" \
      --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "$cluster" \
      --initial-cluster-token "check-perf-$sys" --initial-cluster-state new \
      $([[ $sys == balsad ]] && echo "${BALSAD_ARGS:-}") >"$dir/n$i.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 100); do
    etcdctl --endpoints="$ENDPOINTS" --command-timeout=2s put /check-perf-ready x >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$sys: cluster did not come up"; tail -5 "$dir"/*.log; return 1
}

stop_cluster() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}

echo "$(date -u +%FT%TZ) $(nproc) cores; $(etcd --version 2>/dev/null | head -1); balsad $BALSAD; data in $ROOT"
for sys in $SYSTEMS; do
  for load in $LOADS; do
    dir=$ROOT/$sys-$load
    mkdir -p "$dir"
    start_cluster "$sys" "$dir" || continue
    echo "== $sys --load=$load (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
    etcdctl --endpoints="$ENDPOINTS" check perf --load="$load" 2>&1 | tr '\r' '\n' |
      grep -E 'PASS|FAIL|Slowest|Stddev|Throughput|Error|error' | sed "s/^/$sys $load: /"
    echo "($sys $load: load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
    stop_cluster
    if [[ $sys == balsad ]]; then
      grep -ho 'saved snapshot at index [0-9]* in [0-9.]* ms' "$dir"/*.log | sed "s/^/$sys $load: /" | sort -u -k7,7n | tail -3
    fi
    if [[ -n ${KEEP_LOGS:-} ]]; then mkdir -p "$KEEP_LOGS/$sys-$load" && cp "$dir"/*.log "$KEEP_LOGS/$sys-$load/"; fi
    rm -rf "$dir"
  done
done
