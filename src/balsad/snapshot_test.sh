#!/usr/bin/env bash
# Snapshot catch-up, multi-process (ctest: balsad_snapshot_test). A 3-member balsad with
# --snapshot-count 20 (so 20 entries are kept behind each snapshot); one follower is stopped;
# the others take enough writes (puts, deletes, a compaction) that the leader's log starts after
# everything the stopped member has; the member restarts and must catch up by an InstallSnapshot:
# its balsa_snapshots_restored_total counts one, its log starts after its old applied index,
# HashKV is equal on all members, and serializable reads from it see the new data and the
# compaction. Then it keeps applying new writes.
# Usage: snapshot_test.sh <path to balsad>. Exit 77 (skip) without etcdctl or curl.
set -uo pipefail
BALSAD=${1:?usage: snapshot_test.sh <balsad>}
command -v etcdctl >/dev/null || { echo "SKIP: no etcdctl"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
SNAPSHOT_COUNT=20
# shellcheck source=test_lib.sh
source "$(dirname "$0")/test_lib.sh"

# first_index <name>: the first index of the member's log, from its /metrics (commit index minus
# the entries it holds; exact when the member is idle and caught up).
first_index() {
  local c e
  c=$(metric "$1" balsa_raft_commit_index)
  e=$(metric "$1" balsa_raft_log_entries)
  [[ -n $c && -n $e ]] && echo $((c - e + 1))
}

echo "== starting 3 members in $DIR (--snapshot-count $SNAPSHOT_COUNT)"
for n in "${NAMES[@]}"; do start "$n"; done
L=$(leader 10) || fail "no leader elected within 10 s"
for n in "${NAMES[@]}"; do [[ $n != "$L" ]] && F=$n && break; done
echo "leader $L; stopping follower $F"
etcdctl --endpoints="$ENDPOINTS" put before-stop 1 >/dev/null || fail "put before the stop"
converge || fail "members did not converge before the stop"
F_APPLIED=$(status_field "$(ep "$F")" raftAppliedIndex)
stop "$F"
echo "$F stopped at applied index $F_APPLIED"

LIVE=""
for n in "${NAMES[@]}"; do [[ $n != "$F" ]] && LIVE+="${LIVE:+,}$(ep "$n")"; done
# 150 writes from 8 clients: keys with values of a few sizes, some overwritten, some deleted.
seq 1 150 | xargs -P 8 -I{} sh -c \
  'etcdctl --endpoints='"$LIVE"' --command-timeout=5s put "k/{}" "value-{}-$(printf "%0{}d" 0)" >/dev/null' ||
  fail "writes while $F was down"
seq 1 10 | xargs -P 4 -I{} etcdctl --endpoints="$LIVE" del "k/{}" >/dev/null || fail "deletes"
REV=$(status_field "$(ep "$L")" revision)
etcdctl --endpoints="$LIVE" compaction $((REV - 20)) >/dev/null || fail "compaction"
etcdctl --endpoints="$LIVE" put after-compaction yes >/dev/null || fail "put after compaction"
converge || fail "live members did not converge"
L_FIRST=$(first_index "$L")
echo "leader's log now starts at index $L_FIRST (snapshots saved: $(metric "$L" balsa_snapshots_saved_total))"
((L_FIRST > F_APPLIED + 1)) || fail "the leader's log still holds index $((F_APPLIED + 1)): no catch-up by snapshot needed"

echo "== restart $F"
RESTORED_BEFORE=$(grep -c 'restored snapshot' "$DIR/$F.log")
start "$F"
converge || fail "$F did not catch up"
RESTORED=$(metric "$F" balsa_snapshots_restored_total)
echo "$F: snapshots restored from the leader: $RESTORED; log starts at $(first_index "$F"); applied $(status_field "$(ep "$F")" raftAppliedIndex)"
[[ ${RESTORED:-0} -ge 1 ]] || fail "$F caught up without restoring a snapshot"
(($(grep -c 'restored snapshot' "$DIR/$F.log") > RESTORED_BEFORE)) || fail "$F's log has no 'restored snapshot' line"
(($(first_index "$F") > F_APPLIED + 1)) || fail "$F's log did not move past its old applied index"
[[ $(hashkv_distinct) == 1 ]] || fail "HashKV differs after the catch-up"
echo "HashKV equal on all members"

s() { etcdctl --endpoints="$(ep "$F")" --consistency=s "$@" 2>&1; }
[[ $(s get k/150 --print-value-only) == "value-150-$(printf '%0150d' 0)" ]] || fail "serializable get k/150 from $F: $(s get k/150)"
[[ $(s get k/ --prefix --limit=1 -w fields | grep '"Count"') == '"Count" : 140' ]] ||
  fail "serializable count from $F: $(s get k/ --prefix --limit=1 -w fields | grep Count)"
[[ -z $(s get k/5) ]] || fail "deleted key k/5 still on $F"
[[ $(s get after-compaction --print-value-only) == yes ]] || fail "after-compaction missing on $F"
[[ $(s get k/150 --rev=2) == *"required revision has been compacted"* ]] || fail "$F does not know the compaction: $(s get k/150 --rev=2)"
echo "serializable reads from $F see the writes, the deletes and the compaction"

etcdctl --endpoints="$(ep "$F")" put through-restarted 1 >/dev/null || fail "put through $F"
converge || fail "no convergence after the last write"
[[ $(s get through-restarted --print-value-only) == 1 ]] || fail "$F did not apply a new write"
[[ $(hashkv_distinct) == 1 ]] || fail "HashKV differs at the end"

for n in "${NAMES[@]}"; do stop "$n"; done
echo "PASS"
