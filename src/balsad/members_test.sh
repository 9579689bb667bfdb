#!/usr/bin/env bash
# Membership, restarts and hostile peers, multi-process (ctest: balsad_members_test).
#  1. `etcdctl member list -w table` from every member lists all 3 with names, peer and client
#     URLs (members publish their client URLs through the log), the same on each member;
#     `endpoint status --cluster` finds all 3.
#  2. A peer port fed garbage: raw bytes (the connection is closed), and gRPC peer streams with
#     an unparseable batch, another cluster's id, an unknown sender (each refused with its gRPC
#     code). No election follows, the member keeps serving, and the cluster keeps committing.
#  3. Restarts: --initial-cluster-state=existing with the member's data dir and a reordered
#     --initial-cluster rejoins and catches up; existing with an empty data dir is refused;
#     a data dir started with another cluster token is refused.
#  4. With `etcd` installed: a real 3-member etcd on the same names, URLs and token gives the
#     same `member list -w table` output, byte for byte (same ids: etcd's derivation).
# Usage: members_test.sh <path to balsad>. Exit 77 (skip) without etcdctl, curl or python3.
set -uo pipefail
BALSAD=${1:?usage: members_test.sh <balsad>}
command -v etcdctl >/dev/null || { echo "SKIP: no etcdctl"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
TOKEN=members-test
# shellcheck source=test_lib.sh
source "$(dirname "$0")/test_lib.sh"

member_table() { etcdctl --endpoints="$1" --command-timeout=3s member list -w table 2>&1; }

echo "== starting 3 members in $DIR"
for n in "${NAMES[@]}"; do start "$n"; done
L=$(leader 10) || fail "no leader elected within 10 s"
echo "leader: $L"

echo "== member list"
ok=0
for _ in $(seq 50); do
  T1=$(member_table "$(ep t1)"); T2=$(member_table "$(ep t2)"); T3=$(member_table "$(ep t3)")
  if [[ $T1 == "$T2" && $T2 == "$T3" && $(grep -c 'http://127.0.0.1:.*http://127.0.0.1:' <<<"$T1") == 3 ]]; then ok=1; break; fi
  sleep 0.1
done
echo "$T1"
((ok)) || { echo "$T2"; echo "$T3"; fail "member list is not the same complete table on every member"; }
for n in "${NAMES[@]}"; do
  grep -q "| started | *$n | http://127.0.0.1:${PPORT[$n]} | http://127.0.0.1:${CPORT[$n]} |" <<<"$T1" ||
    fail "member list lacks $n with its peer and client URLs"
done
N=$(etcdctl --endpoints="$(ep t1)" endpoint status --cluster -w json | grep -o '"Endpoint"' | wc -l)
[[ $N == 3 ]] || fail "endpoint status --cluster found $N endpoints"
echo "every member lists all 3 members with their client URLs; endpoint status --cluster finds 3"

echo "== garbage on the peer ports"
TERM0=$(status_field "$(ep "$L")" raft_term)
CID=$(status_field "$(ep t1)" cluster_id)
# grpc_call <port> <cluster id> <from>|raw: sends a peer stream whose one batch is built from the
# arguments (raw: random bytes as the batch), prints the grpc-status the receiver answers.
grpc_call() {
  python3 - "$2" "$3" >"$DIR/frame" <<'EOF'
import os, struct, sys
def varint(v):
    out = b""
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
if sys.argv[2] == "raw":
    msg = b"\xff\xff\xff" + os.urandom(61)  # field 31 with a bad wire type: unparseable
else:
    junk = os.urandom(40)
    msg = b"\x08" + varint(int(sys.argv[1])) + b"\x10" + varint(int(sys.argv[2])) + b"\x1a" + varint(len(junk)) + junk
sys.stdout.buffer.write(b"\x00" + struct.pack(">I", len(msg)) + msg)
EOF
  curl -s --http2-prior-knowledge --max-time 5 -X POST -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary @"$DIR/frame" "http://127.0.0.1:$1/balsa.transport.RaftPeer/Stream" -o /dev/null -D - |
    tr -d '\r' | awk -F': ' '$1 == "grpc-status" { print $2 }'
}
for n in "$L" t1; do
  # Raw bytes that are not HTTP/2: the server ends the connection.
  python3 - "${PPORT[$n]}" <<'EOF' || fail "raw garbage: the peer port of $n did not close the connection"
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
try:
    s.sendall(os.urandom(200000))
except OSError:
    sys.exit(0)  # reset while we were still writing: closed
while True:
    try:
        d = s.recv(65536)
    except OSError:
        sys.exit(0)
    if not d:
        sys.exit(0)
EOF
  OTHER=$(status_field "$(ep "$([[ $n == t2 ]] && echo t3 || echo t2)")" member_id)
  S1=$(grpc_call "${PPORT[$n]}" "$CID" raw)
  S2=$(grpc_call "${PPORT[$n]}" 12345 "$OTHER")
  S3=$(grpc_call "${PPORT[$n]}" "$CID" 999)
  echo "$n: raw bytes -> connection closed; unparseable batch -> grpc-status $S1; wrong cluster id -> $S2; unknown sender -> $S3"
  [[ $S1 == 3 ]] || fail "unparseable batch: grpc-status '$S1', want 3 (INVALID_ARGUMENT)"
  [[ $S2 == 9 ]] || fail "another cluster's id: grpc-status '$S2', want 9 (FAILED_PRECONDITION)"
  [[ $S3 == 3 ]] || fail "unknown sender: grpc-status '$S3', want 3 (INVALID_ARGUMENT)"
done
for n in "${NAMES[@]}"; do
  etcdctl --endpoints="$(ep "$n")" --command-timeout=3s put "after-garbage/$n" ok >/dev/null || fail "$n does not serve writes after the garbage"
done
converge || fail "members did not converge after the garbage"
[[ $(leader 2) == "$L" ]] || fail "leadership moved after the garbage"
[[ $(status_field "$(ep "$L")" raft_term) == "$TERM0" ]] || fail "the term changed after the garbage (an election ran)"
[[ $(hashkv_distinct) == 1 ]] || fail "HashKV differs after the garbage"
echo "no election, every member serves writes, HashKV equal"

echo "== restarts"
R=t3
[[ $R == "$L" ]] && R=t2
stop "$R"
# Existing state, an empty data dir: refused (joining as a new member needs member add).
DATA_DIR=$DIR/empty member_args "$R" --initial-cluster-state existing
OUT=$(timeout 10 "$BALSAD" "${ARGS[@]}" 2>&1); RC=$?
[[ $RC == 1 && $OUT == *"holds no Raft log: joining a running cluster as a new member is not supported"* ]] ||
  fail "existing + empty data dir: rc $RC, output: $(tail -2 <<<"$OUT")"
echo "existing state with an empty data dir: refused (exit 1)"
# Another token: the data dir belongs to another member/cluster: refused.
CLUSTER_TOKEN=other-token member_args "$R"
OUT=$(timeout 10 "$BALSAD" "${ARGS[@]}" 2>&1); RC=$?
[[ $RC == 1 && $OUT == *"belongs to member_id="* ]] || fail "data dir of another cluster: rc $RC, output: $(tail -2 <<<"$OUT")"
echo "a data dir from another cluster token: refused (exit 1)"
etcdctl --endpoints="$ENDPOINTS" put while-down 1 >/dev/null || fail "put while $R is down"
# Existing state, its own data dir, --initial-cluster in another order: rejoins.
REVERSED=$(tr ',' '\n' <<<"$CLUSTER" | tac | paste -sd,)
INITIAL_CLUSTER=$REVERSED start "$R" --initial-cluster-state existing
converge || fail "$R did not catch up after the restart with --initial-cluster-state existing"
[[ $(etcdctl --endpoints="$(ep "$R")" --consistency=s get while-down --print-value-only) == 1 ]] || fail "$R misses while-down"
[[ $(hashkv_distinct) == 1 ]] || fail "HashKV differs after the restart"
echo "restart with existing state and a reordered --initial-cluster: caught up, HashKV equal"
TABLE=$(member_table "$(ep t1)")
for n in "${NAMES[@]}"; do stop "$n"; done

if command -v etcd >/dev/null; then
  echo "== real etcd on the same names, URLs and token"
  for n in "${NAMES[@]}"; do
    etcd --name "$n" --data-dir "$DIR/etcd-$n" --initial-cluster-token "$TOKEN" \
      --listen-client-urls "http://127.0.0.1:${CPORT[$n]}" --advertise-client-urls "http://127.0.0.1:${CPORT[$n]}" \
      --listen-peer-urls "http://127.0.0.1:${PPORT[$n]}" --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$n]}" \
      --initial-cluster "$CLUSTER" >"$DIR/etcd-$n.log" 2>&1 &
    EXTRA_PIDS+=($!)
  done
  for _ in $(seq 100); do
    REF=$(member_table "$(ep t1)")
    [[ $(grep -c 'http://127.0.0.1:.*http://127.0.0.1:' <<<"$REF") == 3 ]] && break
    sleep 0.1
  done
  if [[ $REF != "$TABLE" ]]; then
    diff <(echo "$REF") <(echo "$TABLE")
    fail "member list -w table differs from etcd's"
  fi
  echo "member list -w table equals etcd's, byte for byte"
fi
echo "PASS"
