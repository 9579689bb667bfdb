#!/usr/bin/env bash
# Leases, multi-process (ctest: balsad_lease_test). A 3-member balsad and Debian's etcd run the
# same etcdctl lease sequence (grant with the minimum TTL, put --lease, timetolive --keys,
# list, keep-alive, ignore_lease/ignore_value, revoke twice, unknown leases, too large a TTL,
# expiry); the outputs must be equal once lease ids and remaining seconds are masked. Then, on
# balsad: a lease whose holder stops keeping it alive takes its keys away on every member at
# the same revision; and a SIGKILLed leader does not make live leases expire early (a kept-alive
# one survives, an idle one lives its full TTL and then expires).
# Usage: lease_test.sh <path to balsad>. Exit 77 (skip) without etcdctl.
set -uo pipefail
BALSAD=${1:?usage: lease_test.sh <balsad>}
command -v etcdctl >/dev/null || { echo "SKIP: no etcdctl"; exit 77; }
# shellcheck source=test_lib.sh
source "$(dirname "$0")/test_lib.sh"

ctl() { etcdctl --endpoints="$1" --command-timeout=5s "${@:2}"; }
nkeys() { ctl "$@" --keys-only | grep -c .; }  # nkeys <endpoint> get ... : keys printed
lease_id() { awk '/granted/ {print $2}'; }

# sequence <endpoint>: the etcdctl lease sequence; prints what etcdctl prints, masked.
sequence() {
  local ep=$1
  c() { echo "> $*" | sed "s/[0-9a-f]\{16\}/LEASE/g"; etcdctl --endpoints="$ep" --command-timeout=5s "$@" 2>&1 | sed -e 's/^{"level".*//' -e '/^$/d' \
    -e 's/[0-9a-f]\{16\}/LEASE/g' -e 's/remaining([0-9]*s)/remaining(Ns)/'; }
  c lease grant 1
  local id
  id=$(ctl "$ep" lease grant 30 | lease_id)
  echo "> lease grant 30 (as \$ID)"
  c put --lease="$id" foo bar
  c put --lease="$id" foo2 bar2
  c lease timetolive "$id" --keys
  c lease timetolive "$id"
  c lease list
  c lease keep-alive --once "$id"
  c put foo baz --ignore-lease
  c get foo
  c put foo2 --ignore-value
  c get foo2
  c put foo3 v --ignore-lease
  c lease timetolive "$id" --keys
  c put foo moved
  c lease timetolive "$id" --keys
  c lease revoke "$id"
  c get --prefix foo
  c lease revoke "$id"
  c lease timetolive "$id"
  c lease keep-alive --once "$id"
  c put --lease="$id" x y
  c put --lease=1234 x y
  c lease timetolive 1234
  c lease grant 9000000001
  id=$(ctl "$ep" lease grant 2 | lease_id)
  echo "> lease grant 2 (as \$ID)"
  c put --lease="$id" short v
  sleep 4.5
  c get short
  c lease timetolive "$id"
  c del --prefix ""
}

echo "== starting 3 members in $DIR"
for n in "${NAMES[@]}"; do start "$n"; done
L=$(leader 10) || fail "no leader elected within 10 s"
GOT=$(sequence "$ENDPOINTS")
echo "$GOT"

if command -v etcd >/dev/null; then
  start_reference_etcd
  REF=$(sequence "$REF_EP")
  stop_reference_etcd
  if [[ "$REF" != "$GOT" ]]; then
    diff <(echo "$REF") <(echo "$GOT")
    fail "balsad's etcdctl lease output differs from etcd $(etcd --version | head -1)'s"
  fi
  echo "balsad's lease output equals real etcd's ($(echo "$GOT" | wc -l) lines)"
else
  echo "(no etcd binary: skipped the comparison with a real etcd)"
fi

echo "== an abandoned lease's keys vanish on every member at the same revision"
ID=$(ctl "$ENDPOINTS" lease grant 3 | lease_id)
for k in a b c; do ctl "$ENDPOINTS" put --lease="$ID" "gone/$k" v >/dev/null || fail "put gone/$k"; done
ctl "$ENDPOINTS" put stays v >/dev/null || fail "put stays"
BEFORE=$(status_field "$(ep "$L")" revision)
for _ in $(seq 100); do
  [[ $(nkeys "$ENDPOINTS" get --prefix gone/) == 0 ]] && break
  sleep 0.1
done
converge || fail "members did not converge after the expiry"
D=$(status_field "$(ep "$L")" revision)
((D == BEFORE + 1)) || fail "the expiry took revision $D, expected $((BEFORE + 1)) (one revoke)"
for n in "${NAMES[@]}"; do
  e=$(ep "$n")
  before=$(nkeys "$e" get --prefix gone/ --rev=$((D - 1)) --consistency=s)
  after=$(nkeys "$e" get --prefix gone/ --rev="$D" --consistency=s)
  [[ $before == 3 && $after == 0 ]] || fail "$n: $before keys at revision $((D - 1)), $after at $D (want 3 and 0)"
done
[[ $(ctl "$ENDPOINTS" get stays --print-value-only) == v ]] || fail "a key without the lease vanished"
[[ $(hashkv_distinct) == 1 ]] || fail "members' HashKV differ after the expiry"
echo "keys of lease $ID deleted at revision $D on every member"

echo "== SIGKILL the leader while leases are live"
L=$(leader 10) || fail "no leader"
for n in "${NAMES[@]}"; do [[ $n != "$L" ]] && F=$n && break; done
KEPT=$(ctl "$(ep "$F")" lease grant 4 | lease_id)
IDLE=$(ctl "$(ep "$F")" lease grant 8 | lease_id)
ctl "$(ep "$F")" put --lease="$KEPT" kept v >/dev/null || fail "put kept"
ctl "$(ep "$F")" put --lease="$IDLE" idle v >/dev/null || fail "put idle"
etcdctl --endpoints="$(ep "$F")" lease keep-alive "$KEPT" >"$DIR/keepalive.log" 2>&1 &
KA=$!
EXTRA_PIDS+=("$KA")
T0=$(date +%s%N)
kill -9 "${PID[$L]}"; wait "${PID[$L]}" 2>/dev/null; unset "PID[$L]"
NL=$(leader 15) || fail "no new leader after killing $L"
echo "killed $L; new leader $NL"
# The idle lease (TTL 8 s) must not expire before 8 s after the kill...
while (( ($(date +%s%N) - T0) / 1000000 < 7500 )); do
  [[ $(ctl "$(ep "$F")" get idle --print-value-only) == v ]] || fail "idle lease expired early ($(( ($(date +%s%N) - T0) / 1000000 )) ms after the kill)"
  [[ $(ctl "$(ep "$F")" get kept --print-value-only) == v ]] || fail "kept-alive lease expired"
  sleep 0.5
done
# ...and expires within its TTL + one election timeout + slack of the new leader's promotion.
for _ in $(seq 120); do
  [[ -z $(ctl "$(ep "$F")" get idle --print-value-only) ]] && break
  sleep 0.1
done
[[ -z $(ctl "$(ep "$F")" get idle --print-value-only) ]] || fail "idle lease never expired"
echo "idle lease expired $(( ($(date +%s%N) - T0) / 1000000 )) ms after the kill (TTL 8 s)"
[[ $(ctl "$(ep "$F")" get kept --print-value-only) == v ]] || fail "kept-alive lease expired"
kill "$KA" 2>/dev/null
grep -q "keepalived with TTL(4)" "$DIR/keepalive.log" || fail "keep-alive printed no renewal"
echo "PASS"
