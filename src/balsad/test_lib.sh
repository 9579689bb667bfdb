# Shared helpers for balsad's multi-process tests (sourced, not run). The sourcing script sets
# BALSAD (the binary) and may set NAMES (default t1 t2 t3), TOKEN, ELECTION_MS, SNAPSHOT_COUNT.
# Every member gets a client, a peer and a metrics port on loopback; data lives in $DIR.

export ETCDCTL_API=3
NAMES=(${NAMES[@]:-t1 t2 t3})
TOKEN=${TOKEN:-balsad-test}
ELECTION_MS=${ELECTION_MS:-1000}
DIR=$(mktemp -d /tmp/balsad-test.XXXXXX)
declare -A PID CPORT PPORT MPORT
FAILED=0
EXTRA_PIDS=()

cleanup() {
  for p in "${EXTRA_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null; done
  wait 2>/dev/null
  if [[ $FAILED != 0 && -n ${KEEP_LOGS:-} ]]; then echo "logs kept in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  FAILED=1
  for f in "$DIR"/*.log; do echo "--- $f"; tail -n 15 "$f"; done
  exit 1
}

# Ports below 32768, reserved for this shell and probed (scripts/lib/ports.sh).
# shellcheck source=../../scripts/lib/ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/ports.sh"
reserve_ports $((3 * ${#NAMES[@]})) || exit 1
_PORTS=("${PORTS[@]}")
CLUSTER=""
ENDPOINTS=""
for _i in "${!NAMES[@]}"; do
  _n=${NAMES[$_i]}
  CPORT[$_n]=${_PORTS[$((3 * _i))]}; PPORT[$_n]=${_PORTS[$((3 * _i + 1))]}; MPORT[$_n]=${_PORTS[$((3 * _i + 2))]}
  CLUSTER+="${CLUSTER:+,}$_n=http://127.0.0.1:${PPORT[$_n]}"
  ENDPOINTS+="${ENDPOINTS:+,}127.0.0.1:${CPORT[$_n]}"
done

ep() { echo "127.0.0.1:${CPORT[$1]}"; }

# member_args <name> [extra balsad flags...]: sets ARGS to the member's balsad flags. DATA_DIR,
# INITIAL_CLUSTER and CLUSTER_TOKEN override the defaults ($DIR/<name>, $CLUSTER, $TOKEN).
member_args() {
  local n=$1
  shift
  ARGS=(--name "$n" --data-dir "${DATA_DIR:-$DIR/$n}" --initial-cluster-token "${CLUSTER_TOKEN:-$TOKEN}" \
    --listen-client-urls "http://127.0.0.1:${CPORT[$n]}" --advertise-client-urls "http://127.0.0.1:${CPORT[$n]}" \
    --listen-peer-urls "http://127.0.0.1:${PPORT[$n]}" --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$n]}" \
    --listen-metrics-urls "http://127.0.0.1:${MPORT[$n]}" \
    --initial-cluster "${INITIAL_CLUSTER:-$CLUSTER}" --log-level "${LOG_LEVEL:-info}" --election-timeout "$ELECTION_MS" \
    --heartbeat-interval 100 --snapshot-count "${SNAPSHOT_COUNT:-100000}" "$@")
}

# start <name> [extra balsad flags...]: starts a member in the background (log: $DIR/<name>.log)
# and waits until it serves clients. A member that could not bind one of its ports (something
# outside this scheme took it) is started again, up to 5 times with a growing pause, with new
# client and metrics ports from the second retry on (its peer port is in everyone's
# --initial-cluster, so a peer port taken for good fails the test with that reason).
start() {
  local n=$1 try off
  for try in 1 2 3 4 5; do
    member_args "$@"
    off=$(stat -c %s "$DIR/$n.log" 2>/dev/null || echo 0)
    "$BALSAD" "${ARGS[@]}" >>"$DIR/$n.log" 2>&1 &
    PID[$n]=$!
    local _w
    for _w in $(seq 100); do
      tail -c +$((off + 1)) "$DIR/$n.log" 2>/dev/null | grep -q "serving client gRPC" && return 0
      kill -0 "${PID[$n]}" 2>/dev/null || break
      sleep 0.05
    done
    kill -0 "${PID[$n]}" 2>/dev/null && return 0  # slow to start, but alive: the caller waits
    wait "${PID[$n]}" 2>/dev/null
    unset "PID[$n]"
    tail -c +$((off + 1)) "$DIR/$n.log" >"$DIR/$n.last" 2>/dev/null
    bind_failed "$DIR/$n.last" || return 0  # died for another reason: the test's checks report it
    echo "start $n: a port was taken (attempt $try), retrying" >&2
    if ((try >= 2)); then
      reserve_ports 2 || break
      CPORT[$n]=${PORTS[0]}; MPORT[$n]=${PORTS[1]}
      ENDPOINTS=$(for m in "${NAMES[@]}"; do printf '%s127.0.0.1:%s' "${sep:-}" "${CPORT[$m]}"; sep=,; done)
    fi
    sleep "0.$((try * 2))"
  done
  fail "start $n: could not bind its ports after 5 attempts"
}

# stop <name>: SIGTERM, wait, expect exit 0.
stop() {
  local n=$1 rc
  kill -TERM "${PID[$n]}"
  wait "${PID[$n]}"; rc=$?
  unset "PID[$n]"
  [[ $rc == 0 ]] || fail "$n exited with $rc after SIGTERM"
}

status_field() {  # status_field <endpoint> <json field>: prints the number or nothing
  etcdctl --endpoints="$1" --dial-timeout=1s --command-timeout=1s endpoint status -w json 2>/dev/null |
    grep -o "\"$2\":[0-9]*" | head -1 | cut -d: -f2
}

metric() {  # metric <name> <metric>: prints the value from the member's /metrics
  curl -s --max-time 2 "http://127.0.0.1:${MPORT[$1]}/metrics" | awk -v m="$2" '$1 == m { print $2 }'
}

# Prints the leader's name once every live member reports the same, live, leader.
leader() {
  local deadline=$(($(date +%s%N) + ${1:-10} * 1000000000))
  while (($(date +%s%N) < deadline)); do
    local -A ids=() leaders=()
    local n
    for n in "${!PID[@]}"; do
      local id ld
      id=$(status_field "$(ep "$n")" member_id)
      ld=$(status_field "$(ep "$n")" leader)
      [[ -n $id ]] || continue
      ids[$id]=$n
      leaders[${ld:-0}]=1
    done
    if [[ ${#leaders[@]} == 1 ]]; then
      local ld=${!leaders[*]}
      if [[ $ld != 0 && -n ${ids[$ld]:-} ]]; then echo "${ids[$ld]}"; return 0; fi
    fi
    sleep 0.05
  done
  return 1
}

# Waits until every live member reports the same revision and raft applied index.
converge() {
  local _ revs
  for _ in $(seq 150); do
    revs=$(for n in "${!PID[@]}"; do
      echo "$(status_field "$(ep "$n")" revision)/$(status_field "$(ep "$n")" raftAppliedIndex)"
    done | sort -u)
    [[ $(echo "$revs" | wc -l) == 1 && $revs != / ]] && return 0
    sleep 0.1
  done
  return 1
}

# Prints how many distinct HashKV values the live members report (1 = all equal).
hashkv_distinct() {
  local eps="" n
  for n in "${!PID[@]}"; do eps+="${eps:+,}$(ep "$n")"; done
  etcdctl --endpoints="$eps" endpoint hashkv -w json | grep -o '"hash":[0-9]*' | sort -u | wc -l
}

# Starts a one-member Debian etcd as the reference to compare balsad with; sets REF_EP (its
# client endpoint) and ETCD_PID. stop_reference_etcd kills it.
start_reference_etcd() {
  local ports
  read -r -a ports <<<"$(free_ports 2)"
  REF_EP="127.0.0.1:${ports[0]}"
  etcd --name ref --data-dir "$DIR/etcd" --listen-client-urls "http://$REF_EP" \
    --advertise-client-urls "http://$REF_EP" --listen-peer-urls "http://127.0.0.1:${ports[1]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ports[1]}" --initial-cluster "ref=http://127.0.0.1:${ports[1]}" \
    >"$DIR/etcd.log" 2>&1 &
  ETCD_PID=$!
  EXTRA_PIDS+=("$ETCD_PID")
  for _ in $(seq 100); do etcdctl --endpoints="$REF_EP" endpoint health >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "the reference etcd did not become healthy (see $DIR/etcd.log)"
}
stop_reference_etcd() { kill -9 "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null || true; }
