#!/usr/bin/env bash
# etcd's configuration three ways: one 3-member cluster whose t1 is configured with flags, t2
# with an etcd YAML --config-file and t3 with ETCD_* environment variables only. They form one
# cluster (ids derive from the configuration: any difference would split it), and the limits
# and features set the same way take effect on each: --max-txn-ops, --max-request-bytes,
# periodic auto compaction, --log-outputs, --wal-dir. Bad configuration: a malformed file,
# an unknown key, a refused flag (flag, file and variable) each fail with a clear error.
set -uo pipefail
BALSAD=${1:?usage: config_test.sh path/to/balsad}
command -v etcdctl >/dev/null || exit 77
source "$(dirname "$0")/test_lib.sh"

url() { echo "http://127.0.0.1:$1"; }
# t1: flags (and a dedicated WAL dir).
start t1 --max-txn-ops 3 --max-request-bytes 10000 --auto-compaction-mode periodic \
  --auto-compaction-retention 2s --wal-dir "$DIR/t1-wal"
# t2: etcd's YAML, including etcd defaults for flags balsad refuses otherwise.
cat >"$DIR/t2.yaml" <<YAML
# etcd 3.4 configuration file
name: 't2'
data-dir: $DIR/t2
snapshot-count: 100000
heartbeat-interval: 100
election-timeout: $ELECTION_MS
listen-peer-urls: $(url "${PPORT[t2]}")
listen-client-urls: $(url "${CPORT[t2]}")
listen-metrics-urls: $(url "${MPORT[t2]}")
initial-advertise-peer-urls: $(url "${PPORT[t2]}")
advertise-client-urls: $(url "${CPORT[t2]}")
initial-cluster: $CLUSTER
initial-cluster-token: '$TOKEN'
initial-cluster-state: 'new'
max-txn-ops: 3
max-request-bytes: 10000
auto-compaction-mode: periodic
auto-compaction-retention: "2s"
log-level: info
logger: zap
log-outputs: [$DIR/t2-file.log]
enable-v2: false
discovery:
discovery-fallback: 'proxy'
proxy: 'off'
strict-reconfig-check: true
enable-pprof: false
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
YAML
"$BALSAD" --config-file "$DIR/t2.yaml" >>"$DIR/t2.log" 2>&1 &
PID[t2]=$!
# t3: environment variables only.
env ETCD_NAME=t3 ETCD_DATA_DIR="$DIR/t3" ETCD_LISTEN_PEER_URLS="$(url "${PPORT[t3]}")" \
  ETCD_LISTEN_CLIENT_URLS="$(url "${CPORT[t3]}")" ETCD_LISTEN_METRICS_URLS="$(url "${MPORT[t3]}")" \
  ETCD_INITIAL_ADVERTISE_PEER_URLS="$(url "${PPORT[t3]}")" ETCD_ADVERTISE_CLIENT_URLS="$(url "${CPORT[t3]}")" \
  ETCD_INITIAL_CLUSTER="$CLUSTER" ETCD_INITIAL_CLUSTER_TOKEN="$TOKEN" ETCD_ELECTION_TIMEOUT="$ELECTION_MS" \
  ETCD_MAX_TXN_OPS=3 ETCD_MAX_REQUEST_BYTES=10000 ETCD_AUTO_COMPACTION_RETENTION=2s ETCD_ENABLE_V2=false \
  "$BALSAD" >>"$DIR/t3.log" 2>&1 &
PID[t3]=$!

L=$(leader 20) || fail "flags, config file and environment did not form one cluster"
converge || fail "no convergence"
ids=$(for n in t1 t2 t3; do status_field "$(ep "$n")" cluster_id; done | sort -u | wc -l)
[[ $ids == 1 ]] || fail "members report different cluster ids"
members=$(etcdctl --endpoints="$(ep t1)" member list)
for n in t1 t2 t3; do
  grep -q ", $n, http://127.0.0.1:${PPORT[$n]}, http://127.0.0.1:${CPORT[$n]}," <<<"$members" || fail "member list: $n missing: $members"
done
echo "ok: flags (t1), config file (t2) and ETCD_* variables (t3) give one cluster"

for n in t1 t2 t3; do
  out=$(etcdctl --endpoints="$(ep "$n")" txn <<<$'\nput a 1\nput b 2\nput c 3\nput d 4\n\n' 2>&1)
  [[ $out == *"too many operations in txn request"* ]] || fail "$n: a 4-op txn over --max-txn-ops=3: $out"
  out=$(etcdctl --endpoints="$(ep "$n")" put big "$(head -c 20000 /dev/zero | tr '\0' x)" 2>&1)
  [[ $out == *"request is too large"* ]] || fail "$n: a 20 KB put over --max-request-bytes=10000: $out"
  etcdctl --endpoints="$(ep "$n")" put "small-$n" ok >/dev/null || fail "$n: a small put after the refusals"
done
echo "ok: --max-txn-ops and --max-request-bytes refuse with etcd's errors on each member, which keeps serving"

# Periodic auto compaction (2 s): the leader compacts; every member refuses the old revision.
for i in $(seq 20); do etcdctl --endpoints="$(ep "$L")" put ac "$i" >/dev/null; done
ok=0
for _ in $(seq 80); do
  out=$(etcdctl --endpoints="$(ep "$L")" get ac --rev 2 2>&1)
  [[ $out == *"required revision has been compacted"* ]] && { ok=1; break; }
  sleep 0.1
done
[[ $ok == 1 ]] || fail "periodic auto compaction did not compact: $out"
grep -q "auto compaction: compacted to revision" "$DIR/$L.log" "$DIR/t2-file.log" || fail "no auto compaction log line"
echo "ok: periodic auto compaction"

# --log-outputs (t2 logs to its file), --wal-dir (t1's segments live there; restart works).
grep -q "starting balsad" "$DIR/t2-file.log" || fail "--log-outputs file has no log"
ls "$DIR/t1-wal" | grep -q . || fail "--wal-dir is empty"
[[ -L $DIR/t1/member/raft/wal ]] || fail "the data dir does not link to --wal-dir"
stop t1
out=$("$BALSAD" --name t1 --data-dir "$DIR/t1" --initial-cluster "$CLUSTER" \
  --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[t1]}" --initial-cluster-token "$TOKEN" \
  --listen-peer-urls "http://127.0.0.1:${PPORT[t1]}" --listen-client-urls "http://127.0.0.1:${CPORT[t1]}" 2>&1)
[[ $out == *"pass --wal-dir"* ]] || fail "restart without --wal-dir: $out"
start t1 --wal-dir "$DIR/t1-wal"
L=$(leader 20) || fail "t1 restart with --wal-dir"
[[ $(etcdctl --endpoints="$(ep t1)" get small-t1 --print-value-only --consistency=s) == ok ]] || fail "t1 lost data"
echo "ok: --log-outputs, --wal-dir (and a restart without it is refused)"

# Bad configuration: clear errors, exit 2.
chk() {  # chk <expected text> <command...>
  local want=$1; shift
  out=$("$@" 2>&1) && fail "accepted: $*"
  [[ $out == *"$want"* ]] || fail "for $*: expected '$want' in: $out"
}
printf 'name: x\nlisten-client-urls: [unclosed\n' >"$DIR/bad1.yaml"
chk "is not valid YAML: line" "$BALSAD" --config-file "$DIR/bad1.yaml"
printf 'name: x\nlisten-client-url: http://127.0.0.1:1\n' >"$DIR/bad2.yaml"
chk "line 2: unknown key 'listen-client-url'" "$BALSAD" --config-file "$DIR/bad2.yaml"
printf 'name: x\nenable-v2: true\n' >"$DIR/bad3.yaml"
chk "enable-v2 is not supported by balsad: balsad serves etcd's v3 API only" "$BALSAD" --config-file "$DIR/bad3.yaml"
printf 'name: x\nmax-txn-ops: lots\n' >"$DIR/bad4.yaml"
chk "line 2: 'max-txn-ops: lots' is not a valid value" "$BALSAD" --config-file "$DIR/bad4.yaml"
chk "cannot read $DIR/none.yaml" "$BALSAD" --config-file "$DIR/none.yaml"
chk "--enable-v2 is not supported by balsad" "$BALSAD" --enable-v2=true
chk "ETCD_DISCOVERY: discovery is not supported" env ETCD_DISCOVERY=https://discovery.etcd.io/x "$BALSAD"
chk "ETCD_MAX_TXN_OPS='many' is not a valid value" env ETCD_MAX_TXN_OPS=many "$BALSAD"
chk "--force-new-cluster is not supported by balsad yet" "$BALSAD" --force-new-cluster
chk "--auto-compaction-retention: '1x' is not a duration" "$BALSAD" --auto-compaction-retention 1x
chk "--quota-backend-bytes is not supported by balsad" "$BALSAD" --quota-backend-bytes 1000000
chk "The following argument was not expected: --no-such-flag" "$BALSAD" --no-such-flag
help=$("$BALSAD" --help)
for f in --config-file --cert-file --peer-client-cert-auth --auto-compaction-retention --max-txn-ops --wal-dir \
  --grpc-keepalive-min-time --listen-metrics-urls --log-outputs --enable-v2; do
  grep -q -- "$f" <<<"$help" || fail "--help does not list $f"
done
echo "ok: malformed, unknown and refused configuration fails with the flag, key or line named; --help lists the flags"
echo PASS
