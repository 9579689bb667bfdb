#!/usr/bin/env bash
# Hostile and malformed requests (balsad_hostile_request_client) against one balsad member and,
# when Debian's etcd is installed, against one etcd 3.4.23 beside it, so every expectation is
# checked against etcd's own answer. etcd 3.4 has no unknown-sort-option check (balsad follows
# etcd 3.5 there), so that one test runs against balsad only.
# Usage: hostile_request_test.sh <balsad> <client>. Exit 77 (skip) without etcdctl.
set -uo pipefail
BALSAD=${1:?usage: hostile_request_test.sh <balsad> <client>}
CLIENT=${2:?usage: hostile_request_test.sh <balsad> <client>}
command -v etcdctl >/dev/null || { echo "SKIP: no etcdctl"; exit 77; }
NAMES=(h1)
# shellcheck source=test_lib.sh
source "$(dirname "$0")/test_lib.sh"

start h1
leader 15 >/dev/null || fail "h1 did not become leader"
echo "== balsad"
BALSA_TEST_ENDPOINT=$(ep h1) "$CLIENT" || fail "balsad: hostile requests"
# Nothing undecodable reached the log: the data dir verifies and the member restarts on it.
stop h1
BALSA_LOG=$(dirname "$BALSAD")/../../tools/balsa-log
if [[ -x $BALSA_LOG ]]; then
  "$BALSA_LOG" verify "$DIR/h1" || fail "balsa-log verify after the hostile requests"
fi
start h1
leader 15 >/dev/null || fail "h1 did not come back"
BALSA_TEST_ENDPOINT=$(ep h1) "$CLIENT" --gtest_filter='*NestedTxnUpTo*' >/dev/null || fail "balsad after restart"

if command -v etcd >/dev/null; then
  reserve_ports 2
  etcd --name ref --data-dir "$DIR/etcd" --listen-client-urls "http://127.0.0.1:${PORTS[0]}" \
    --advertise-client-urls "http://127.0.0.1:${PORTS[0]}" --listen-peer-urls "http://127.0.0.1:${PORTS[1]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${PORTS[1]}" \
    --initial-cluster "ref=http://127.0.0.1:${PORTS[1]}" >"$DIR/etcd.log" 2>&1 &
  EXTRA_PIDS+=($!)
  for _ in $(seq 100); do etcdctl --endpoints=127.0.0.1:${PORTS[0]} endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== etcd $(etcd --version | head -1)"
  BALSA_TEST_ENDPOINT=127.0.0.1:${PORTS[0]} "$CLIENT" --gtest_filter='-*UnknownSortOption*' ||
    fail "etcd does not answer as this test expects (the expectations are wrong)"
else
  echo "(no etcd binary: skipped the side-by-side run)"
fi
echo "PASS"
