#!/usr/bin/env bash
# A local 3-member balsad cluster driven by Debian's etcdctl (ETCDCTL_API=3):
# put/get/txn, endpoint status, SIGKILL of the leader, failover, restart and catch-up.
# Leaves nothing running unless KEEP_RUNNING=1. Binary: $BALSAD or ./build/src/balsad/balsad.
set -euo pipefail

BALSAD=${BALSAD:-./build/src/balsad/balsad}
[[ -x $BALSAD ]] || { echo "balsad binary not found at $BALSAD (set BALSAD=...)" >&2; exit 1; }
command -v etcdctl >/dev/null || { echo "etcdctl not found (apt-get install etcd-client)" >&2; exit 1; }
export ETCDCTL_API=3

DIR=$(mktemp -d /tmp/balsa-demo.XXXXXX)
# Ports below 32768 (outside the kernel's ephemeral range), reserved and probed; BASE_PORT=N
# uses N, N+1, ... instead.
# shellcheck source=lib/ports.sh
source "$(dirname "$0")/lib/ports.sh"
if [[ -n ${BASE_PORT:-} ]]; then
  PORTS=(); for i in $(seq 0 8); do PORTS+=($((BASE_PORT + i))); done
else
  reserve_ports 9
fi
NAMES=(m1 m2 m3)
declare -A PID CPORT PPORT MPORT
CLUSTER=""
for i in 0 1 2; do
  n=${NAMES[$i]}
  CPORT[$n]=${PORTS[$((3 * i))]}; PPORT[$n]=${PORTS[$((3 * i + 1))]}; MPORT[$n]=${PORTS[$((3 * i + 2))]}
  CLUSTER+="${CLUSTER:+,}$n=http://127.0.0.1:${PPORT[$n]}"
done
ENDPOINTS=127.0.0.1:${CPORT[m1]},127.0.0.1:${CPORT[m2]},127.0.0.1:${CPORT[m3]}

cleanup() {
  if [[ ${KEEP_RUNNING:-0} == 1 ]]; then
    echo "KEEP_RUNNING=1: cluster left running (pids ${PID[*]}), data and logs in $DIR"
    echo "  etcdctl --endpoints=$ENDPOINTS endpoint status -w table"
    return
  fi
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

start() {
  local n=$1
  "$BALSAD" --name "$n" --data-dir "$DIR/$n" \
    --listen-client-urls "http://127.0.0.1:${CPORT[$n]}" --advertise-client-urls "http://127.0.0.1:${CPORT[$n]}" \
    --listen-peer-urls "http://127.0.0.1:${PPORT[$n]}" --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$n]}" \
    --listen-metrics-urls "http://127.0.0.1:${MPORT[$n]}" \
    --initial-cluster "$CLUSTER" --initial-cluster-token demo --initial-cluster-state new \
    >>"$DIR/$n.log" 2>&1 &
  PID[$n]=$!
}

ctl() { echo "\$ etcdctl $*" >&2; etcdctl --endpoints="$ENDPOINTS" --command-timeout=5s "$@"; }

# Prints the leader's name once the live members agree on one (within ~10 s).
leader() {
  for _ in $(seq 100); do
    local -A ids=() leaders=()
    for n in "${NAMES[@]}"; do
      [[ -n ${PID[$n]:-} ]] || continue
      local out
      out=$(etcdctl --endpoints=127.0.0.1:${CPORT[$n]} --dial-timeout=1s --command-timeout=1s \
            endpoint status -w json 2>/dev/null) || continue
      local id ld
      id=$(grep -o '"member_id":[0-9]*' <<<"$out" | head -1 | cut -d: -f2)
      ld=$(grep -o '"leader":[0-9]*' <<<"$out" | head -1 | cut -d: -f2)
      [[ -n $id ]] || continue
      ids[$id]=$n
      leaders[${ld:-0}]=1
    done
    if [[ ${#leaders[@]} == 1 ]]; then
      local ld=${!leaders[*]}
      if [[ $ld != 0 && -n ${ids[$ld]:-} ]]; then echo "${ids[$ld]}"; return 0; fi
    fi
    sleep 0.1
  done
  return 1
}

echo "== starting 3 members in $DIR (client ports ${CPORT[m1]} ${CPORT[m2]} ${CPORT[m3]})"
for n in "${NAMES[@]}"; do start "$n"; done
L=$(leader) || { echo "no leader elected"; tail -n 20 "$DIR"/*.log; exit 1; }
echo "leader: $L"

echo; echo "== writes and reads"
ctl put greeting hello
ctl put /demo/a 1
ctl put /demo/b 2
ctl get greeting
ctl get --prefix /demo/
echo "== txn: if greeting == hello then put greeting bonjour else put greeting nope"
printf 'value("greeting") = "hello"\n\nput greeting bonjour\n\nput greeting nope\n\n' | ctl txn
ctl get greeting
ctl member list -w table
ctl endpoint status -w table

echo; echo "== SIGKILL the leader ($L, pid ${PID[$L]})"
kill -9 "${PID[$L]}"; wait "${PID[$L]}" 2>/dev/null || true; unset "PID[$L]"
T0=$(date +%s.%N)
NL=$(leader) || { echo "no new leader"; exit 1; }
echo "new leader: $NL after $(echo "$(date +%s.%N) - $T0" | bc) s"
ctl put after-failover yes
ctl get --prefix "" --keys-only
ctl endpoint status -w table || true   # the killed member's endpoint fails

echo; echo "== restart $L and let it catch up"
start "$L"
for _ in $(seq 100); do
  if etcdctl --endpoints=127.0.0.1:${CPORT[$L]} get after-failover --consistency=s 2>/dev/null | grep -q yes; then break; fi
  sleep 0.1
done
etcdctl --endpoints=127.0.0.1:${CPORT[$L]} get after-failover --consistency=s
ctl endpoint status -w table
ctl endpoint hashkv -w table
echo; echo "demo OK"
