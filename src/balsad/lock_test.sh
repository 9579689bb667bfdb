#!/usr/bin/env bash
# etcdctl lock and elect, multi-process (ctest: balsad_lock_test). They run etcd's client-side
# recipes (clientv3/concurrency) over Lease, Txn and Watch. The same sequence runs on a 3-member
# balsad and on Debian's etcd; outputs must be equal once lease ids are masked:
#   lock with a command (ETCD_LOCK_KEY), mutual exclusion of two holders, a holder SIGKILLed
#   (its keep-alives stop): the waiter gets the lock once the lease expires; elect: a leader,
#   an observer (elect -l), a second candidate that takes over when the first resigns, and
#   one that takes over when the first is SIGKILLed and its lease expires.
# Then the v3lock and v3election gRPC services themselves (balsa-lock-probe, a minimal client):
# Lock/Unlock handing over, a lock on a revoked lease, a holder whose lease expires, Campaign,
# Leader, Proclaim (and not-leader), Observe, Resign, no leader; same output on both.
# Usage: lock_test.sh <path to balsad> <path to balsa-lock-probe>. Exit 77 (skip) without etcdctl.
set -uo pipefail
BALSAD=${1:?usage: lock_test.sh <balsad> <balsa-lock-probe>}
PROBE=${2:?usage: lock_test.sh <balsad> <balsa-lock-probe>}
command -v etcdctl >/dev/null || { echo "SKIP: no etcdctl"; exit 77; }
# shellcheck source=test_lib.sh
source "$(dirname "$0")/test_lib.sh"

mask() { sed -e 's/^{"level".*//' -e '/^$/d' -e 's/\b[0-9a-f]\{12,16\}\b/LEASE/g' -e 's/ETCD_LOCK_REV=[0-9]*/ETCD_LOCK_REV=N/'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# sequence <endpoint> <scratch dir>
sequence() {
  local ep=$1 d=$2
  mkdir -p "$d"
  e() { etcdctl --endpoints="$ep" "$@"; }
  echo "> lock with a command"
  e lock L1 -- sh -c 'echo "held $ETCD_LOCK_KEY" | sed "s/[0-9a-f]\{16\}$/LEASE/"' 2>&1 | mask
  echo "> two holders"
  etcdctl --endpoints="$ep" lock L2 -- sh -c "echo A-start \$(date +%s%N) >>$d/l2; sleep 1.5; echo A-end \$(date +%s%N) >>$d/l2" &
  local a=$!
  sleep 0.5
  e lock L2 -- sh -c "echo B-start \$(date +%s%N) >>$d/l2" 2>&1 | mask
  wait "$a"
  awk '{print $1}' "$d/l2"
  # B started after A ended:
  awk '$1 == "A-end" {a = $2} $1 == "B-start" {b = $2} END {print (b > a ? "B after A" : "OVERLAP")}' "$d/l2"
  echo "> a holder SIGKILLed: the waiter gets the lock once its lease (ttl 3) expires"
  etcdctl --endpoints="$ep" lock --ttl=3 L3 >"$d/l3-holder" 2>&1 &
  local h=$!
  for _ in $(seq 50); do [[ -s $d/l3-holder ]] && break; sleep 0.1; done
  mask <"$d/l3-holder"
  kill -9 "$h"; wait "$h" 2>/dev/null
  local t0; t0=$(now_ms)
  e lock L3 echo waiter got L3 2>&1 | mask
  local waited=$(( $(now_ms) - t0 ))
  ((waited >= 1500 && waited < 15000)) && echo "waited for the expiry" || echo "waited ${waited} ms"
  echo "> elect"
  etcdctl --endpoints="$ep" elect E1 p1 >"$d/p1" 2>&1 &
  local p1=$!
  for _ in $(seq 50); do [[ -s $d/p1 ]] && break; sleep 0.1; done
  etcdctl --endpoints="$ep" elect -l E1 >"$d/obs" 2>&1 &
  local obs=$!
  sleep 0.5
  etcdctl --endpoints="$ep" elect E1 p2 >"$d/p2" 2>&1 &
  local p2=$!
  sleep 0.5
  echo "p2 before p1 resigns: $(mask <"$d/p2" | tr '\n' ' ')"
  kill -INT "$p1"; wait "$p1" 2>/dev/null  # etcdctl resigns on SIGINT
  for _ in $(seq 50); do [[ -s $d/p2 ]] && break; sleep 0.1; done
  echo "p1:"; mask <"$d/p1"
  echo "p2 after p1 resigned:"; mask <"$d/p2"
  etcdctl --endpoints="$ep" elect E1 p3 >"$d/p3" 2>&1 &
  local p3=$!
  sleep 0.5
  kill -9 "$p2"; wait "$p2" 2>/dev/null  # no resign: p3 leads once p2's lease (60 s) ... revoked below
  # etcdctl elect's session TTL is 60 s: revoke p2's lease rather than wait a minute.
  local lease
  lease=$(e get --prefix E1/ --keys-only --sort-by=CREATE --order=ASCEND | head -1 | sed 's|^E1/||')
  e lease revoke "$lease" | mask
  for _ in $(seq 50); do [[ -s $d/p3 ]] && break; sleep 0.1; done
  echo "p3 after p2's lease was revoked:"; mask <"$d/p3"
  sleep 0.5
  kill -INT "$p3"; wait "$p3" 2>/dev/null
  sleep 0.5
  kill "$obs"; wait "$obs" 2>/dev/null
  echo "observer saw:"; mask <"$d/obs"
  echo "> elect -l with no leader"
  timeout 1 etcdctl --endpoints="$ep" elect -l E1 2>&1 | mask
  echo "left: $(e get --prefix E1/ --keys-only | grep -c .) keys under E1/, $(e get --prefix L --keys-only | grep -c .) under L"
}

# probe_sequence <endpoint>: the v3lock / v3election services through balsa-lock-probe.
probe_sequence() {
  local ep=$1
  P() {
    echo "> $1 $2"
    "$PROBE" "$ep" "$@" 2>&1 | sed -e 's/[0-9a-f]\{16\}/LEASE/g' -e '/^leader /s/^\(leader [^ ]* [^ ]*\) .*/\1 REV LEASE/'
  }
  grant() { printf '%d' "0x$(etcdctl --endpoints="$ep" lease grant "$1" | awk '/granted/ {print $2}')"; }
  hex() { printf '%x' "$1"; }
  local l1 l2 l3 l4
  l1=$(grant 30); l2=$(grant 30)
  P lock PL "$l1"
  "$PROBE" "$ep" lock PL "$l2" >"$DIR/probe-wait" 2>&1 &
  local w=$!
  sleep 0.5
  echo "second locker while the first holds: $(cat "$DIR/probe-wait")"
  P unlock "PL/$(hex "$l1")"
  wait "$w"
  echo "second locker after unlock: $(sed 's/[0-9a-f]\{16\}/LEASE/g' "$DIR/probe-wait")"
  etcdctl --endpoints="$ep" lease revoke "$(hex "$l2")" >/dev/null
  P lock PL2 "$l2"
  l3=$(grant 2); l4=$(grant 30)
  P lock PL3 "$l3"
  P lock PL3 "$l4"
  P campaign E2 "$l4" v1
  local key="E2/$(hex "$l4")" rev
  rev=$("$PROBE" "$ep" campaign E2 "$l4" v1 | awk '{print $4}')
  P leader E2
  P proclaim E2 "$key" "$rev" "$l4" v2
  P leader E2
  P proclaim E2 "$key" $((rev + 1000)) "$l4" v9
  "$PROBE" "$ep" observe E2 2 >"$DIR/probe-observe" 2>&1 &
  local o=$!
  sleep 0.5
  P proclaim E2 "$key" "$rev" "$l4" v3
  wait "$o"
  echo "observed: $(sed 's/[0-9a-f]\{16\}/LEASE/g' "$DIR/probe-observe" | tr '\n' ' ')"
  P resign E2 "$key" "$rev" "$l4"
  P leader E2
  P resign E2 "$key" "$rev" "$l4"
  etcdctl --endpoints="$ep" del --prefix "" >/dev/null
}

echo "== starting 3 members in $DIR"
for n in "${NAMES[@]}"; do start "$n"; done
L=$(leader 10) || fail "no leader elected within 10 s"
GOT=$(sequence "$ENDPOINTS" "$DIR/balsad-run"; probe_sequence "$(ep "$L")")
echo "$GOT"
grep -q "B after A" <<<"$GOT" || fail "two lock holders overlapped"
grep -q "waited for the expiry" <<<"$GOT" || fail "the lock of a dead holder was not handed over at its lease expiry"

if command -v etcd >/dev/null; then
  start_reference_etcd
  REF=$(sequence "$REF_EP" "$DIR/etcd-run"; probe_sequence "$REF_EP")
  stop_reference_etcd
  # Ids (leases, lock keys) differ between servers and in length (%x drops leading zeros).
  REF=$(echo "$REF" | mask); GOT=$(echo "$GOT" | mask)
  if [[ "$REF" != "$GOT" ]]; then
    diff <(echo "$REF") <(echo "$GOT")
    fail "balsad's etcdctl lock/elect output differs from etcd $(etcd --version | head -1)'s"
  fi
  echo "balsad's lock/elect output equals real etcd's ($(echo "$GOT" | wc -l) lines)"
else
  echo "(no etcd binary: skipped the comparison with a real etcd)"
fi
echo "PASS"
