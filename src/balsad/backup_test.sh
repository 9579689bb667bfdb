#!/usr/bin/env bash
# Backup and restore: etcdctl snapshot save from a 3-member balsad cluster under writes, then
# balsad restore into a fresh 3-member cluster (new token, new data dirs): HashKV at the saved
# revision equals the source's, every key reads back, and the new cluster takes writes.
# Truncated, altered and foreign files are refused with a clear error and nothing written.
# Also Status sizes, Defragment and Alarm (list, disarm) through etcdctl.
set -uo pipefail
BALSAD=${1:?usage: backup_test.sh path/to/balsad}
command -v etcdctl >/dev/null || exit 77
source "$(dirname "$0")/test_lib.sh"

for n in "${NAMES[@]}"; do start "$n" --snapshot-count 200; done
L=$(leader 20) || fail "no leader"
for i in $(seq 1 300); do etcdctl --endpoints="$(ep "$L")" put "k$((i % 120))" "value-$i" >/dev/null || fail "put $i"; done
etcdctl --endpoints="$(ep "$L")" del k7 >/dev/null
etcdctl --endpoints="$(ep "$L")" compact 100 >/dev/null || fail "compact"
# Background writes while the snapshot streams.
( for i in $(seq 1 200); do etcdctl --endpoints="$(ep "$L")" put "bg$i" x >/dev/null 2>&1; done ) &
BG=$!
etcdctl --endpoints="$(ep "$L")" snapshot save "$DIR/snap.db" >"$DIR/save.out" 2>&1 || fail "snapshot save: $(cat "$DIR/save.out")"
wait $BG
size=$(stat -c %s "$DIR/snap.db")
(( size % 512 == 32 )) || fail "snapshot size $size is not 512n+32"
echo "ok: etcdctl snapshot save wrote $size bytes"

# Status: real sizes; Defragment; Alarm list / disarm.
st=$(etcdctl --endpoints="$(ep "$L")" endpoint status -w json)
dbsize=$(grep -o '"dbSize":[0-9]*' <<<"$st" | cut -d: -f2)
inuse=$(grep -o '"dbSizeInUse":[0-9]*' <<<"$st" | cut -d: -f2)
(( dbsize > 0 && inuse > 0 && inuse <= dbsize )) || fail "status sizes dbSize=$dbsize dbSizeInUse=$inuse"
etcdctl --endpoints="$ENDPOINTS" defrag >/dev/null || fail "defrag"
[[ -z $(etcdctl --endpoints="$(ep "$L")" alarm list) ]] || fail "alarm list not empty"
etcdctl --endpoints="$(ep "$L")" alarm disarm >/dev/null || fail "alarm disarm"
echo "ok: status dbSize=$dbsize dbSizeInUse=$inuse, defrag, alarm list/disarm"

converge || fail "no convergence"
for n in "${NAMES[@]}"; do stop "$n"; done

# Bad files: each refused, no data dir left behind.
bad() {  # bad <file> <expected text>
  out=$("$BALSAD" restore "$1" --name t1 --data-dir "$DIR/bad" --initial-cluster "$CLUSTER" \
    --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[t1]}" 2>&1) && fail "restore accepted $1"
  [[ $out == *"$2"* ]] || fail "restore of $1: expected '$2' in: $out"
  [[ ! -e $DIR/bad ]] || fail "restore of $1 left $DIR/bad behind"
}
head -c $((size - 100)) "$DIR/snap.db" >"$DIR/truncated.db"
bad "$DIR/truncated.db" "is truncated or not a snapshot"
head -c $((size - 512)) "$DIR/snap.db" >"$DIR/short.db"
tail -c 32 "$DIR/snap.db" >>"$DIR/short.db"
bad "$DIR/short.db" "is truncated"
cp "$DIR/snap.db" "$DIR/altered.db"
printf 'X' | dd of="$DIR/altered.db" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
bad "$DIR/altered.db" "sha256 checksum mismatch"
head -c $((size - 32)) /dev/zero >"$DIR/foreign.db"; head -c 32 /dev/zero >>"$DIR/foreign.db"
bad "$DIR/foreign.db" "was not written by balsad"
bad "$DIR/nonexistent.db" "cannot open snapshot file"
echo "ok: truncated, altered, foreign and missing files refused, nothing written"

# Restore into a fresh cluster: new token, new data dirs, the same names and peer URLs.
for n in "${NAMES[@]}"; do
  "$BALSAD" restore "$DIR/snap.db" --name "$n" --data-dir "$DIR/r-$n" --initial-cluster "$CLUSTER" \
    --initial-cluster-token restored --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$n]}" \
    >>"$DIR/restore.out" 2>&1 || fail "restore $n: $(cat "$DIR/restore.out")"
done
"$BALSAD" restore "$DIR/snap.db" --name t1 --data-dir "$DIR/r-t1" --initial-cluster "$CLUSTER" \
  --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[t1]}" >/dev/null 2>&1 && fail "restore over an existing data dir"
for n in "${NAMES[@]}"; do DATA_DIR=$DIR/r-$n CLUSTER_TOKEN=restored start "$n"; done
L2=$(leader 20) || fail "the restored cluster elected no leader"
converge || fail "restored cluster did not converge"
REV=$(status_field "$(ep "$L2")" revision)
[[ -n $REV && $REV -gt 300 ]] || fail "restored revision '$REV'"
[[ $(etcdctl --endpoints="$(ep "$L2")" get k5 --print-value-only) == value-* ]] || fail "k5 after restore"
[[ -z $(etcdctl --endpoints="$(ep "$L2")" get k7 --print-value-only) ]] || fail "k7 was deleted before the save"
out=$(etcdctl --endpoints="$(ep "$L2")" get k1 --rev 50 2>&1)
[[ $out == *"required revision has been compacted"* ]] || fail "compaction point lost: $out"
[[ $(hashkv_distinct) == 1 ]] || fail "restored members disagree"
RHASH=$(etcdctl --endpoints="$(ep "$L2")" endpoint hashkv --rev "$REV" -w json | grep -o '"hash":[0-9]*')
for n in "${NAMES[@]}"; do stop "$n"; done

# The source at the same revision (its own data dirs, original token).
for n in "${NAMES[@]}"; do start "$n"; done
L=$(leader 20) || fail "source cluster restart"
converge || fail "source did not converge"
SHASH=$(etcdctl --endpoints="$(ep "$L")" endpoint hashkv --rev "$REV" -w json | grep -o '"hash":[0-9]*')
[[ -n $SHASH && $SHASH == "$RHASH" ]] || fail "HashKV at revision $REV: source $SHASH, restored $RHASH"
echo "ok: restored cluster's HashKV at revision $REV equals the source's ($SHASH)"
for n in "${NAMES[@]}"; do stop "$n"; done
for n in "${NAMES[@]}"; do DATA_DIR=$DIR/r-$n CLUSTER_TOKEN=restored start "$n"; done
L2=$(leader 20) || fail "restored cluster restart"
etcdctl --endpoints="$(ep "$L2")" put after-restore yes >/dev/null || fail "write to the restored cluster"
R2=$(status_field "$(ep "$L2")" revision)
(( R2 == REV + 1 )) || fail "revision after the first write: $R2, want $((REV + 1))"
echo "ok: the restored cluster takes writes (revision $R2)"
echo PASS
