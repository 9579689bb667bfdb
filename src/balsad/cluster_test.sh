#!/usr/bin/env bash
# Multi-process test of balsad with Debian's etcdctl (registered with ctest as balsad_cluster_test).
#  1. etcdctl round trip (put/get/txn/del/compaction) on a 3-member cluster, compared with
#     expected strings and, when the `etcd` binary exists, with a real single etcd's output.
#  2. SIGKILL of the leader under a small write load: a new leader within 3 election timeouts,
#     no acknowledged write lost, equal HashKV on every member after the killed one restarts.
# Usage: cluster_test.sh <path to balsad>. Exit 77 (skip) without etcdctl.
set -uo pipefail

BALSAD=${1:?usage: cluster_test.sh <balsad>}
command -v etcdctl >/dev/null || { echo "SKIP: no etcdctl"; exit 77; }
export ETCDCTL_API=3
ELECTION_MS=1000
DIR=$(mktemp -d /tmp/balsad-test.XXXXXX)
declare -A PID CPORT PPORT
NAMES=(t1 t2 t3)
ETCD_PID=""
WRITER_PID=""
FAILED=0

cleanup() {
  [[ -n $WRITER_PID ]] && kill "$WRITER_PID" 2>/dev/null
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null; done
  [[ -n $ETCD_PID ]] && kill -9 "$ETCD_PID" 2>/dev/null
  wait 2>/dev/null
  if [[ $FAILED != 0 && -n ${KEEP_LOGS:-} ]]; then echo "logs kept in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; FAILED=1; for f in "$DIR"/*.log; do echo "--- $f"; tail -n 15 "$f"; done; exit 1; }

free_ports() {  # prints $1 free loopback ports
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()' "$1"
}

read -r -a PORTS <<<"$(free_ports 8)"
CLUSTER=""
for i in 0 1 2; do
  n=${NAMES[$i]}; CPORT[$n]=${PORTS[$((2 * i))]}; PPORT[$n]=${PORTS[$((2 * i + 1))]}
  CLUSTER+="${CLUSTER:+,}$n=http://127.0.0.1:${PPORT[$n]}"
done
ENDPOINTS=127.0.0.1:${CPORT[t1]},127.0.0.1:${CPORT[t2]},127.0.0.1:${CPORT[t3]}

start() {
  local n=$1
  "$BALSAD" --name "$n" --data-dir "$DIR/$n" --initial-cluster-token balsad-test \
    --listen-client-urls "http://127.0.0.1:${CPORT[$n]}" --advertise-client-urls "http://127.0.0.1:${CPORT[$n]}" \
    --listen-peer-urls "http://127.0.0.1:${PPORT[$n]}" --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$n]}" \
    --initial-cluster "$CLUSTER" --log-level "${LOG_LEVEL:-info}" --election-timeout $ELECTION_MS --heartbeat-interval 100 --snapshot-count "${SNAPSHOT_COUNT:-25}" \
    >>"$DIR/$n.log" 2>&1 &
  PID[$n]=$!
}

status_field() {  # status_field <endpoint> <json field>: prints the number or nothing
  etcdctl --endpoints="$1" --dial-timeout=1s --command-timeout=1s endpoint status -w json 2>/dev/null |
    grep -o "\"$2\":[0-9]*" | head -1 | cut -d: -f2
}

# Prints the leader's name once every live member reports the same, live, leader.
leader() {
  local deadline=$(($(date +%s%N) + ${1:-10} * 1000000000))
  while (($(date +%s%N) < deadline)); do
    local -A ids=() leaders=()
    local n
    for n in "${!PID[@]}"; do
      local id ld
      id=$(status_field "127.0.0.1:${CPORT[$n]}" member_id)
      ld=$(status_field "127.0.0.1:${CPORT[$n]}" leader)
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

# The etcdctl sequence whose output must match etcd's. $1: endpoints.
sequence() {
  local ep=$1
  c() { echo "> $*"; etcdctl --endpoints="$ep" --command-timeout=5s "$@" 2>&1 | sed -e 's/^{"level".*//' -e '/^$/d'; }
  c put foo bar
  c put foo2 baz
  c put zoo 1
  c get foo
  c get foo --print-value-only
  c get --prefix foo
  c get --prefix "" --keys-only
  c get foo --rev=2
  c get foo -w fields | grep -v -e ClusterID -e MemberID -e RaftTerm
  printf 'value("foo") = "bar"\n\nput foo bar2\n\nput foo nope\n\n' | c txn
  printf 'value("foo") = "bar"\nmod("zoo") > "0"\n\nput foo bar3\n\nget foo\ndel zoo\n\n' | c txn
  c get foo zoo0
  c get zoo
  c del foo2
  c del nosuchkey
  c put a 1
  c put a 2
  c del --prefix --prev-kv a
  c compaction 5
  c get foo --rev=3
  c get foo --rev=100
  c put "" x
  c get --prefix "" -w fields --limit=1 | grep -e '"Count"' -e '"More"' -e '"Key"'
}

EXPECTED='> put foo bar
OK
> put foo2 baz
OK
> put zoo 1
OK
> get foo
foo
bar
> get foo --print-value-only
bar
> get --prefix foo
foo
bar
foo2
baz
> get --prefix  --keys-only
foo
foo2
zoo
> get foo --rev=2
foo
bar
> get foo -w fields
"Revision" : 4
"Key" : "foo"
"CreateRevision" : 2
"ModRevision" : 2
"Version" : 1
"Value" : "bar"
"Lease" : 0
"More" : false
"Count" : 1
> txn
SUCCESS
OK
> txn
FAILURE
foo
bar2
1
> get foo zoo0
foo
bar2
foo2
baz
> get zoo
> del foo2
1
> del nosuchkey
0
> put a 1
OK
> put a 2
OK
> del --prefix --prev-kv a
1
a
2
> compaction 5
compacted revision 5
> get foo --rev=3
Error: etcdserver: mvcc: required revision has been compacted
> get foo --rev=100
Error: etcdserver: mvcc: required revision is a future revision
> put  x
Error: etcdserver: key is not provided
"Key" : "foo"
"More" : false
"Count" : 1'

echo "== starting 3 balsad members in $DIR"
for n in "${NAMES[@]}"; do start "$n"; done
L=$(leader 10) || fail "no leader elected within 10 s"
echo "leader: $L"

echo "== etcdctl round trip"
GOT=$(sequence "$ENDPOINTS")
if [[ "$GOT" != "$EXPECTED" ]]; then
  diff <(echo "$EXPECTED") <(echo "$GOT")
  fail "balsad's etcdctl output differs from the expected output"
fi
echo "balsad output matches the expected strings"

if command -v etcd >/dev/null; then
  read -r -a EP <<<"$(free_ports 2)"
  etcd --name ref --data-dir "$DIR/etcd" --listen-client-urls "http://127.0.0.1:${EP[0]}" \
    --advertise-client-urls "http://127.0.0.1:${EP[0]}" --listen-peer-urls "http://127.0.0.1:${EP[1]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${EP[1]}" --initial-cluster "ref=http://127.0.0.1:${EP[1]}" \
    >"$DIR/etcd.log" 2>&1 &
  ETCD_PID=$!
  for _ in $(seq 100); do etcdctl --endpoints=127.0.0.1:${EP[0]} endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
  REF=$(sequence "127.0.0.1:${EP[0]}")
  kill -9 "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null; ETCD_PID=""
  if [[ "$REF" != "$GOT" ]]; then
    diff <(echo "$REF") <(echo "$GOT")
    fail "balsad's etcdctl output differs from etcd $(etcd --version | head -1)'s"
  fi
  echo "balsad output equals real etcd's"
else
  echo "(no etcd binary: skipped the comparison with a real etcd)"
fi

echo "== SIGKILL the leader under a write load"
ACKED=$DIR/acked
: >"$ACKED"
(
  i=0
  while :; do
    i=$((i + 1))
    if etcdctl --endpoints="$ENDPOINTS" --command-timeout=3s put "load/$i" "v$i" >/dev/null 2>&1; then echo "$i" >>"$ACKED"; fi
  done
) &
WRITER_PID=$!
sleep 1.5
L=$(leader 5) || fail "no leader before the kill"
kill -9 "${PID[$L]}"
T0=$(date +%s%N)
wait "${PID[$L]}" 2>/dev/null
unset "PID[$L]"
NL=$(leader 10) || fail "no new leader within 10 s"
ELAPSED_MS=$((($(date +%s%N) - T0) / 1000000))
echo "killed $L; new leader $NL after ${ELAPSED_MS} ms"
((ELAPSED_MS <= 3 * ELECTION_MS)) || fail "new leader took ${ELAPSED_MS} ms (> 3 election timeouts)"
sleep 1.5
kill "$WRITER_PID"; wait "$WRITER_PID" 2>/dev/null; WRITER_PID=""
N_ACKED=$(wc -l <"$ACKED")
((N_ACKED > 10)) || fail "only $N_ACKED writes acknowledged"

echo "== restart $L"
start "$L"
KEYS=$(etcdctl --endpoints="$ENDPOINTS" --command-timeout=5s get --prefix load/ --keys-only | sed '/^$/d' | sort)
MISSING=$(comm -23 <(sed 's|^|load/|' "$ACKED" | sort) <(echo "$KEYS"))
[[ -z $MISSING ]] || fail "acknowledged writes lost: $(echo $MISSING | head -c 300)"
echo "all $N_ACKED acknowledged writes present ($(echo "$KEYS" | wc -l) keys)"

# Wait until every member has applied the same revision, then compare HashKV.
for _ in $(seq 100); do
  REVS=$(for n in "${NAMES[@]}"; do status_field "127.0.0.1:${CPORT[$n]}" revision; done | sort -u)
  [[ $(echo "$REVS" | wc -l) == 1 && -n $REVS ]] && break
  sleep 0.1
done
HASHES=$(etcdctl --endpoints="$ENDPOINTS" endpoint hashkv -w json | grep -o '"hash":[0-9]*' | sort | uniq -c)
echo "hashkv: $HASHES"
[[ $(echo "$HASHES" | wc -l) == 1 && $(echo "$HASHES" | awk '{print $1}') == 3 ]] || fail "HashKV differs between members"

echo "== clean shutdown with SIGTERM"
for n in "${NAMES[@]}"; do kill -TERM "${PID[$n]}"; done
for n in "${NAMES[@]}"; do
  wait "${PID[$n]}"; rc=$?
  [[ $rc == 0 ]] || fail "$n exited with $rc after SIGTERM"
  unset "PID[$n]"
done
echo "snapshots saved: $(cat "$DIR"/t?.log | grep -c 'saved snapshot'), restored: $(cat "$DIR"/t?.log | grep -c 'restored snapshot')"
echo "PASS"
