#!/usr/bin/env bash
# The client port's HTTP/1.1 side, compared with Debian's etcd 3.4.23 side by side: the same curl
# requests (/health, /version, the /v3/ JSON gateway) against a fresh single-member etcd and a
# fresh single-member balsad give the same status codes and bodies once the ids and the term
# are masked; /metrics carries etcd's metric names; `etcdctl check datascale --load=s` passes.
set -uo pipefail
BALSAD=${1:?usage: http_test.sh path/to/balsad}
command -v etcdctl >/dev/null && command -v etcd >/dev/null && command -v curl >/dev/null || exit 77
NAMES=(h1)
source "$(dirname "$0")/test_lib.sh"
read -r EC EP <<<"$(free_ports 2)"
etcd --name h1 --data-dir "$DIR/etcd" --listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
  --listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
  --initial-cluster "h1=http://127.0.0.1:$EP" >"$DIR/etcd.log" 2>&1 &
EXTRA_PIDS+=($!)
start h1
leader 20 >/dev/null || fail "balsad: no leader"
for _ in $(seq 100); do etcdctl --endpoints="127.0.0.1:$EC" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

# run <port>: the request sequence; prints "<code> <body>" per request, ids and term masked.
run() {
  local base="http://127.0.0.1:$1"
  req() {  # req <method> <path> [body]
    curl -s -X "$1" --max-time 5 -w ' %{http_code}' "$base$2" ${3:+-d "$3"}
    echo
  }
  {
    req GET /health
    req GET /version
    req POST /v3/kv/put '{"key":"Zm9v","value":"YmFy"}'
    req POST /v3/kv/range '{"key":"Zm9v"}'
    req POST /v3/kv/range '{"key":"bm8="}'
    req POST /v3/kv/put '{"key":"Zm9v","value":"YmF6","prev_kv":true}'
    req POST /v3/kv/put '{"key":""}'
    req POST /v3/kv/range '{"key":"AA==","range_end":"AA==","count_only":true}'
    req POST /v3/kv/txn '{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmF6"}],"success":[{"request_put":{"key":"YQ==","value":"MQ=="}}],"failure":[{"request_range":{"key":"Zm9v"}}]}'
    req POST /v3/kv/txn '{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VERSION","version":"7"}],"success":[],"failure":[{"request_range":{"key":"Zm9v"}}]}'
    req POST /v3/kv/deleterange '{"key":"Zm9v","prev_kv":true}'
    req POST /v3/kv/compaction '{"revision":"3"}'
    req POST /v3/kv/range '{"key":"Zm9v","revision":"2"}'
    req POST /v3/kv/range '{"key":"YQ==","revision":"99"}'
  } | sed -E 's/"(cluster_id|member_id|raft_term)":"[0-9]+"/"\1":"N"/g'
}
run "$EC" >"$DIR/etcd.out"
run "${CPORT[h1]}" >"$DIR/balsad.out"
grep -q "\"kvs\":\[{\"key\":\"Zm9v\"" "$DIR/etcd.out" || fail "etcd did not answer the sequence: $(cat "$DIR/etcd.out")"
diff "$DIR/etcd.out" "$DIR/balsad.out" >"$DIR/diff.out" || fail "HTTP responses differ from etcd's:
$(cat "$DIR/diff.out")"
echo "ok: $(wc -l <"$DIR/etcd.out") HTTP requests answered as etcd answers them"

# Malformed JSON: HTTP 400 with gRPC code 3 (InvalidArgument) from both (the parser's words differ).
for p in "$EC" "${CPORT[h1]}"; do
  out=$(curl -s -w ' %{http_code}' -X POST "http://127.0.0.1:$p/v3/kv/range" -d '{bad')
  [[ $out == *'"code":3'*' 400' ]] || fail "malformed JSON on $p: $out"
done
# /metrics: etcd's names that both serve.
M_etcd=$(curl -s "http://127.0.0.1:$EC/metrics")
M_balsad=$(curl -s "http://127.0.0.1:${CPORT[h1]}/metrics")
for m in etcd_server_has_leader etcd_server_is_leader etcd_server_leader_changes_seen_total \
  etcd_server_proposals_committed_total etcd_server_proposals_applied_total etcd_server_proposals_pending \
  etcd_server_proposals_failed_total etcd_disk_wal_fsync_duration_seconds_bucket etcd_debugging_mvcc_current_revision \
  etcd_debugging_mvcc_compact_revision etcd_debugging_mvcc_keys_total etcd_server_version etcd_server_id \
  process_resident_memory_bytes process_cpu_seconds_total process_open_fds process_start_time_seconds; do
  grep -q "^$m[ {]" <<<"$M_etcd" || fail "etcd's /metrics lacks $m"
  grep -q "^$m[ {]" <<<"$M_balsad" || fail "balsad's /metrics lacks $m"
done
echo "ok: /metrics has etcd's names"
out=$(etcdctl --endpoints="http://$(ep h1)" check datascale --load=s 2>&1)
[[ $out == *PASS* ]] || fail "check datascale: $out"
echo "ok: etcdctl check datascale --load=s: $(grep PASS <<<"$out")"
echo PASS
