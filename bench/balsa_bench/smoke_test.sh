#!/usr/bin/env bash
# balsa-bench against a 1-member balsad: every workload runs and exits 0 with the JSON fields a
# report needs; bad input (a wrong flag, an unreachable endpoint, requests the server refuses, a
# server that stops answering) exits non-zero, names the errors, and never hangs.
#
# Usage: smoke_test.sh <balsa-bench> <balsad>
set -uo pipefail
BENCH=$1
BALSAD=$2
NAMES=(b1)
TOKEN=balsa-bench-smoke
# shellcheck source=../../src/balsad/test_lib.sh
source "$(dirname "$0")/../../src/balsad/test_lib.sh"
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

start b1
leader 20 >/dev/null || fail "no leader"
EP=$(ep b1)
OUT=$DIR/out.json

# bench <expected rc> <args...>: runs balsa-bench --json under a 60 s guard into $OUT.
bench() {
  local want=$1 rc
  shift
  timeout 60 "$BENCH" --endpoints "$EP" --json -q "$@" >"$OUT" 2>"$DIR/err.txt"
  rc=$?
  [[ $rc != 124 ]] || fail "balsa-bench $* hung (killed after 60 s)"
  [[ $rc == "$want" ]] || { cat "$OUT" "$DIR/err.txt"; fail "balsa-bench $* exited $rc, expected $want"; }
}

# check <python expression over j>: asserts on the JSON result.
check() {
  $PY - "$OUT" "$1" <<'PYEOF' || { cat "$OUT"; fail "JSON check failed: $1"; }
import json, sys
j = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2], {"j": j})
sys.exit(0 if ok else 1)
PYEOF
}

LAT='all(k in j["latency_ms"] for k in ("p50","p90","p99","p99_9","max","mean","count"))'
ORDERED='0 < j["latency_ms"]["p50"] <= j["latency_ms"]["p90"] <= j["latency_ms"]["p99"] <= j["latency_ms"]["p99_9"] <= j["latency_ms"]["max"]'

bench 0 --total 500 --clients 8 --conns 2 put
check 'j["workload"] == "put" and j["ok"] == 500 and j["failed"] == 0 and j["errors"] == {}'
check "$LAT and $ORDERED"
check 'j["throughput_ops_s"] > 0 and j["elapsed_s"] > 0 and j["ops"]["put"]["count"] == 500'

bench 0 --duration 1 --clients 8 --key-space 200 --preload range --consistency l
check 'j["workload"] == "range" and j["consistency"] == "l" and j["ok"] > 0 and j["failed"] == 0'
check "$LAT and $ORDERED"
# The preloaded keys exist: a serializable range finds one.
[[ $(etcdctl --endpoints="$EP" get bb/0000000000199 --print-value-only | wc -c) -gt 255 ]] || fail "preload did not put the keys"
bench 0 --duration 1 --clients 8 --key-space 200 range --consistency s
check 'j["consistency"] == "s" and j["ok"] > 0'

bench 0 --duration 1 --clients 8 --key-space 200 --key-dist zipf mixed --read-ratio 0.5
check '"put" in j["ops"] and "range" in j["ops"] and j["distribution"] == "zipf" and j["failed"] == 0'

bench 0 --total 100 --clients 4 txn-put --txn-ops 3
check 'j["ops"]["txn-put"]["count"] == 100'

# --rate paces: 100 requests at 200/s take about half a second, not less.
bench 0 --total 100 --clients 4 --rate 200 delete
check 'j["ops"]["delete"]["count"] == 100 and j["elapsed_s"] >= 0.45'

# Watch: a correct run where the server has it; a clean UNIMPLEMENTED report where it does not.
timeout 60 "$BENCH" --endpoints "$EP" --json -q --total 300 --clients 4 watch --watchers 3 >"$OUT" 2>"$DIR/err.txt"
rc=$?
if [[ $rc == 0 ]]; then
  check 'j["watch"]["events"] == j["watch"]["expected"] == 900 and j["watch"]["event_latency_ms"]["count"] == 900'
elif [[ $rc == 1 ]]; then
  check '"UNIMPLEMENTED" in j["errors"]'
  echo "balsad has no Watch yet: balsa-bench reported UNIMPLEMENTED and exited 1"
else
  fail "watch exited $rc"
fi

# ---- bad input ----
timeout 20 "$BENCH" --endpoints "$EP" --total 1 --no-such-flag put >/dev/null 2>&1
[[ $? == 2 ]] || fail "a wrong flag must exit 2"
timeout 20 "$BENCH" --endpoints "$EP" put >/dev/null 2>&1
[[ $? == 2 ]] || fail "no --total/--duration must exit 2"
timeout 20 "$BENCH" --endpoints "$EP" --total 1 --key-size 4 put >/dev/null 2>&1
[[ $? == 2 ]] || fail "a key size too small for the key space must exit 2"

read -r DEAD <<<"$(free_ports 1)"  # nothing listens there
start_s=$(date +%s)
timeout 20 "$BENCH" --endpoints "127.0.0.1:$DEAD" --dial-timeout 1 --total 10 put >/dev/null 2>"$DIR/err.txt"
rc=$?
[[ $rc == 2 ]] || fail "unreachable endpoint exited $rc, expected 2"
grep -q "cannot connect to 127.0.0.1:$DEAD" "$DIR/err.txt" || fail "unreachable endpoint not named: $(cat "$DIR/err.txt")"
(($(date +%s) - start_s <= 5)) || fail "unreachable endpoint took more than 5 s"

# Requests the server refuses: values over etcd's 1.5 MiB request limit.
bench 1 --total 5 --clients 1 --val-size 2000000 put
check 'j["failed"] == 5 and j["ok"] == 0 and j["errors"]["INVALID_ARGUMENT"]["count"] == 5'
grep -q "INVALID_ARGUMENT x5" "$DIR/err.txt" || fail "errors not listed on stderr"

# A server that stops answering: the per-request deadline ends every request.
kill -STOP "${PID[b1]}"
start_s=$(date +%s)
timeout 30 "$BENCH" --endpoints "$EP" --json -q --dial-timeout 1 --timeout 1 --total 4 --clients 2 put >"$OUT" 2>"$DIR/err.txt"
rc=$?
kill -CONT "${PID[b1]}"
[[ $rc == 1 || $rc == 2 ]] || fail "a stopped server: exit $rc, expected 1 or 2"
(($(date +%s) - start_s <= 10)) || fail "a stopped server: balsa-bench took more than 10 s"
if [[ $rc == 1 ]]; then check '"DEADLINE_EXCEEDED" in j["errors"]'; fi

stop b1
echo "PASS"
