#!/usr/bin/env bash
# Watch tests of balsad with Debian's etcdctl (registered with ctest as balsad_watch_test).
#  1. An etcdctl watch sequence (one key, --prefix, a range, --rev from history, --prev-kv,
#     -i interactive, -w json, a compacted revision, an empty range, an exec command) run on a
#     3-member balsad cluster and, when the `etcd` binary exists, on a real etcd 3.4.23: the
#     outputs must be equal (cluster/member ids and raft terms masked).
#  2. A watcher on a prefix through a leader SIGKILL, a follower restart and a compaction, each
#     time resumed on another member from its last revision + 1, while a writer puts unique
#     values: the concatenated event stream must hold every acknowledged write exactly once,
#     revisions contiguous and increasing, nothing that was not written.
# Usage: watch_test.sh <path to balsad>. Exit 77 (skip) without etcdctl.
set -uo pipefail

BALSAD=${1:?usage: watch_test.sh <balsad>}
command -v etcdctl >/dev/null || { echo "SKIP: no etcdctl"; exit 77; }
# shellcheck source=test_lib.sh
source "$(dirname "$0")/test_lib.sh"

MASK='s/"cluster_id":[0-9]*/"cluster_id":C/g; s/"member_id":[0-9]*/"member_id":M/g; s/"raft_term":[0-9]*/"raft_term":T/g'

# w <seconds> <etcdctl watch args...>: a watch that ends after <seconds>, output in order.
# Started in the background; `wait_watches` collects.
WATCH_PIDS=()
wbg() {
  local out=$1 secs=$2
  shift 2
  (timeout "$secs" etcdctl --endpoints="$EPS" watch "$@" >"$out" 2>&1) &
  WATCH_PIDS+=($!)
}
wait_watches() {
  for p in "${WATCH_PIDS[@]}"; do wait "$p"; done
  WATCH_PIDS=()
}
show() {  # show <file> <title>
  echo "> watch $2"
  sed -e 's/^{"level".*//' -e '/^$/d' -e "$MASK" "$1"
}

# The sequence. $1: endpoints. Revisions are the same on both servers (a fresh store is at 1).
sequence() {
  EPS=$1
  local t
  t=$(mktemp -d "$DIR/seq.XXXX")
  c() { etcdctl --endpoints="$EPS" --command-timeout=5s "$@" >/dev/null 2>&1; }
  # Live watches (each also given --rev of the first write, so a slow start misses nothing).
  wbg "$t/one" 4 --rev=2 foo
  wbg "$t/prefix" 4 --rev=2 --prefix foo
  wbg "$t/range" 4 --rev=2 foo fop
  wbg "$t/prev" 4 --rev=2 --prev-kv foo
  wbg "$t/json" 4 --rev=2 --prefix foo -w json
  sleep 1
  c put foo 1      # 2
  c put foo1 2     # 3
  c put foo 3      # 4
  c put zoo 4      # 5
  c del foo        # 6
  printf '\nput foo2 a\nput foo3 b\ndel foo1\n\n' | etcdctl --endpoints="$EPS" txn >/dev/null 2>&1  # 7
  c put foo 5      # 8
  wait_watches
  show "$t/one" "--rev=2 foo"
  show "$t/prefix" "--rev=2 --prefix foo"
  show "$t/range" "--rev=2 foo fop"
  show "$t/prev" "--rev=2 --prev-kv foo"
  show "$t/json" "--rev=2 --prefix foo -w json"
  # From history only.
  wbg "$t/h1" 2 --rev=4 --prefix foo
  wbg "$t/h2" 2 --rev=7 --prefix "" --prev-kv
  wbg "$t/h3" 2 --rev=100 foo
  wait_watches
  show "$t/h1" "--rev=4 --prefix foo"
  show "$t/h2" "--rev=7 --prefix '' --prev-kv"
  show "$t/h3" "--rev=100 foo"
  # Interactive.
  echo "> watch -i"
  # (etcdctl -i exits at the end of its input: keep it open while the events arrive; two
  # watches print in either order, so the lines are sorted.)
  (printf 'watch --rev=2 foo\nwatch --rev=5 --prefix zo\n'; sleep 2) |
    timeout 3 etcdctl --endpoints="$EPS" watch -i 2>/dev/null | sed -e 's/^{"level".*//' -e '/^$/d' | sort
  # An exec command per event.
  echo "> watch --rev=6 foo -- echo"
  timeout 2 etcdctl --endpoints="$EPS" watch --rev=6 foo -- sh -c 'echo "exec $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE $ETCD_WATCH_REVISION"' 2>&1 |
    sed -e 's/^{"level".*//' -e '/^$/d'
  # Bad input.
  c compaction 5
  wbg "$t/cpt" 3 --rev=3 foo
  wbg "$t/empty" 3 b a
  wait_watches
  show "$t/cpt" "--rev=3 foo (compacted)"
  show "$t/empty" "b a (empty range)"
  wbg "$t/above" 2 --rev=6 --prefix foo
  wait_watches
  show "$t/above" "--rev=6 --prefix foo (above the compact revision)"
}

# ---- 1: balsad vs etcd ---------------------------------------------------------------------------
for n in "${NAMES[@]}"; do start "$n"; done
L=$(leader 15) || fail "no leader"
echo "leader: $L"
GOT=$(sequence "$ENDPOINTS")
echo "$GOT" | head -n 400 >"$DIR/balsad.out"
[[ $(echo "$GOT" | grep -c '^> watch') -ge 13 ]] || fail "sequence did not run: $GOT"
echo "$GOT" | grep -q '^PUT$' || fail "no event seen: $GOT"

# Balsa's one deliberate difference: a watch from the compact revision itself is refused
# (compaction dropped that revision's deletes; etcd 3.4 serves it without them).
AT=$(timeout 5 etcdctl --endpoints="$ENDPOINTS" watch --rev=5 --prefix foo 2>&1 | grep -v '^{"level"')
[[ $AT == *"required revision has been compacted"* ]] || fail "watch at the compact revision: $AT"

if command -v etcd >/dev/null; then
  start_reference_etcd
  REF=$(sequence "$REF_EP")
  stop_reference_etcd
  if [[ "$REF" != "$GOT" ]]; then
    diff <(echo "$REF") <(echo "$GOT")
    fail "balsad's etcdctl watch output differs from etcd $(etcd --version | head -1)'s"
  fi
  echo "etcdctl watch sequence: balsad output equals etcd's ($(echo "$GOT" | wc -l) lines)"
else
  echo "no etcd binary: sequence not compared"
fi

# ---- 2: a prefix watcher through a leader kill, a follower restart and a compaction ---------------
WR=$DIR/writes
: >"$WR"
writer() {  # unique values; logs "value rc" per put
  local i=0
  while [[ ! -e $DIR/stop-writer ]]; do
    i=$((i + 1))
    if etcdctl --endpoints="$ENDPOINTS" --command-timeout=3s put "w/$((i % 5))" "v$i" >/dev/null 2>&1; then
      echo "v$i ok" >>"$WR"
    else
      echo "v$i err" >>"$WR"
    fi
  done
}
START=$(( $(status_field "$(ep "$L")" revision) + 1 ))
writer &
WPID=$!
EXTRA_PIDS+=("$WPID")

SEG=0
NEXT=$START
# watch_on <member> <seconds>: one segment of the watcher on one member, from $NEXT.
watch_on() {
  SEG=$((SEG + 1))
  timeout "$2" etcdctl --endpoints="$(ep "$1")" watch --prefix w/ --rev="$NEXT" -w json >"$DIR/seg$SEG" 2>/dev/null &
  SEGPID=$!
}
# Ends the segment and sets NEXT to its last revision + 1.
end_segment() {
  kill "$SEGPID" 2>/dev/null; wait "$SEGPID" 2>/dev/null
  local last
  last=$(python3 - "$DIR/seg$SEG" <<'EOF'
import json, sys
last = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith('{"Header"'): continue
    for e in json.loads(line).get("Events") or []:
        last = max(last, e["kv"]["mod_revision"])
print(last)
EOF
)
  [[ $last -gt 0 ]] && NEXT=$((last + 1))
  echo "segment $SEG ended at revision $last"
}
others() { for n in "${!PID[@]}"; do [[ $n != "$1" ]] && echo "$n"; done; }

watch_on "$L" 30
sleep 2
echo "killing leader $L"
kill -9 "${PID[$L]}"; wait "${PID[$L]}" 2>/dev/null; unset "PID[$L]"
sleep 0.5
end_segment
L2=$(leader 15) || fail "no new leader"
F=$(others "$L2" | head -1)
watch_on "$F" 30
start "$L"
sleep 3
echo "restarting follower $F"
stop "$F"
end_segment
start "$F"
L3=$(leader 15) || fail "no leader after the follower restart"
watch_on "$L" 30
sleep 2
CREV=$(( NEXT - 3 ))
etcdctl --endpoints="$ENDPOINTS" compaction "$CREV" >/dev/null || fail "compaction $CREV"
echo "compacted at $CREV"
sleep 2
touch "$DIR/stop-writer"
wait "$WPID"
converge || fail "members do not converge"
sleep 1
end_segment
FINAL=$(status_field "$(ep "$L3")" revision)
echo "writes: $(grep -c ok "$WR") acknowledged, $(grep -c err "$WR") failed; final revision $FINAL"

python3 - "$DIR" "$SEG" "$START" "$FINAL" <<'EOF' || fail "the resumed watcher's stream is wrong"
import base64, json, sys
d, segs, start, final = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
events = []
for s in range(1, segs + 1):
    for line in open(f"{d}/seg{s}"):
        line = line.strip()
        if not line.startswith('{"Header"'): continue
        r = json.loads(line)
        if r.get("Canceled"): sys.exit(f"segment {s} canceled: {line}")
        for e in r.get("Events") or []:
            kv = e["kv"]
            events.append((kv["mod_revision"], base64.b64decode(kv.get("value", "")).decode()))
revs = [r for r, _ in events]
if revs != list(range(start, final + 1)):
    missing = sorted(set(range(start, final + 1)) - set(revs))
    dup = sorted({r for r in revs if revs.count(r) > 1})
    sys.exit(f"revisions not contiguous {start}..{final}: {len(revs)} events, missing {missing[:10]}, duplicated {dup[:10]}")
values = [v for _, v in events]
if len(set(values)) != len(values): sys.exit("a value seen twice")
written = {}
for line in open(f"{d}/writes"):
    v, rc = line.split()
    written[v] = rc
for v in values:
    if v not in written: sys.exit(f"event {v} was never written")
acked = [v for v, rc in written.items() if rc == "ok"]
missing = [v for v in acked if v not in set(values)]
if missing: sys.exit(f"acknowledged writes missing from the stream: {missing[:10]}")
print(f"watcher: {len(events)} events over {segs} segments, revisions {start}..{final} each once, in order; "
      f"all {len(acked)} acknowledged writes seen")
EOF
echo "PASS"
