#!/usr/bin/env bash
# Reproduces the storage figures of docs/storage.md with one command, each next to its baseline
# measured in the same run, because the disk and CPUs here are shared and noisy:
#   (a) 256 B append+fdatasync p50 vs fio's fdatasync p50 (fio run just before and just after)
#   (b) group commit, 64 producers vs 1 producer (and vs the plain Wal's single-append rate)
#   (c) replay of a 1 GiB log vs a plain sequential read of the same files
# Usage: bench/storage_vs_fio.sh [rounds] [build dir]      (defaults: 3, build-storage)
# Env: BALSA_BENCH_DIR (default /tmp; fio writes its file there too),
#      BALSA_BENCH_REPLAY_MIB (default 1024), SKIP_REPLAY=1.
set -euo pipefail

ROUNDS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${2:-$ROOT/build-storage}
BENCH=$BUILD/bench/storage_bench
DIR=${BALSA_BENCH_DIR:-/tmp}
OUT=$(mktemp -d "$DIR/storage-vs-fio-XXXXXX")
trap 'rm -rf "$OUT"' EXIT
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)" >&2; exit 1; }
[ -x "$BENCH" ] || { echo "build it first: ninja -C $BUILD storage_bench" >&2; exit 1; }

fio_p50() {  # prints "p50_us p99_us" of fio's fdatasync latency
  local tag=$1
  (cd "$OUT" && fio --name=f --ioengine=sync --rw=write --bs=4k --size=64m --fdatasync=1 \
      --output-format=json >"$OUT/fio-$tag.json" 2>/dev/null; rm -f "$OUT"/f.0.0)
  python3 - "$OUT/fio-$tag.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))["jobs"][0]["sync"]["lat_ns"]["percentile"]
print(f'{s["50.000000"] / 1000:.0f} {s["99.000000"] / 1000:.0f}')
EOF
}

bench() {  # bench TAG FILTER [env...]: runs storage_bench, JSON into $OUT/TAG.json
  local tag=$1 filter=$2
  shift 2
  (cd "$DIR" && env "$@" "$BENCH" --benchmark_filter="$filter" --benchmark_format=json \
      >"$OUT/$tag.json" 2>/dev/null)
}

field() {  # field TAG NAME-REGEX COUNTER: a counter of the first benchmark whose name matches
  python3 - "$OUT/$1.json" "$2" "$3" <<'EOF'
import json, re, sys
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if re.search(sys.argv[2], b["name"]):
        v = b[sys.argv[3]]
        print(f"{v:.6g}")
        break
else:
    print("nan")
EOF
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}')" "$1" "$2"; }
mbs() { python3 -c "import sys; print(f'{float(sys.argv[1]) / 1e6:.0f}')" "$1"; }

echo "# storage vs fio, $(date -u +%FT%TZ), $(nproc) cores, bench dir $DIR ($(df -T "$DIR" | awk 'NR==2 {print $2}'))"
echo "# replay log: ${BALSA_BENCH_REPLAY_MIB:-1024} MiB of 1 KiB entries"
for r in $(seq 1 "$ROUNDS"); do
  echo
  echo "## round $r (load average before: $(load))"
  read -r f1_50 f1_99 < <(fio_p50 "a$r")
  bench "append$r" 'AppendSync'
  read -r f2_50 f2_99 < <(fio_p50 "b$r")
  w_50=$(field "append$r" 'zero_ahead_kib:256/' p50_us)
  w_99=$(field "append$r" 'zero_ahead_kib:256/' p99_us)
  w0_50=$(field "append$r" 'zero_ahead_kib:0/' p50_us)
  fio_mid=$(python3 -c "import sys; print((float(sys.argv[1]) + float(sys.argv[2])) / 2)" "$f1_50" "$f2_50")
  echo "(a) fio fdatasync p50 ${f1_50} us before / ${f2_50} us after (p99 ${f1_99} / ${f2_99})"
  echo "    WAL 256 B append+sync p50 ${w_50} us, p99 ${w_99} us  -> $(ratio "$w_50" "$fio_mid") x fio p50 (mean of before/after)"
  echo "    (without zero-ahead: p50 ${w0_50} us -> $(ratio "$w0_50" "$fio_mid") x)"

  bench "gc$r" 'GroupCommit|AppendSync256/zero_ahead_kib:256/'
  single=$(field "gc$r" 'GroupCommit/producers:1/' entries_per_s)
  plain=$(field "gc$r" 'AppendSync' entries_per_s)
  many=$(field "gc$r" 'GroupCommit/producers:64/zero_ahead_kib:256' entries_per_s)
  many0=$(field "gc$r" 'GroupCommit/producers:64/zero_ahead_kib:0' entries_per_s)
  per_sync=$(field "gc$r" 'GroupCommit/producers:64/zero_ahead_kib:256' entries_per_sync)
  save_us=$(field "gc$r" 'GroupCommit/producers:64/zero_ahead_kib:256' save_us)
  busy=$(field "gc$r" 'GroupCommit/producers:64/zero_ahead_kib:256' disk_busy)
  echo "(b) group commit entries/s: 1 producer ${single}, 64 producers ${many} (${per_sync} per sync, save ${save_us} us, disk busy ${busy})"
  echo "    64 vs 1 producer: $(ratio "$many" "$single") x; vs plain Wal single appends (${plain}/s): $(ratio "$many" "$plain") x"
  echo "    (64 producers without zero-ahead: ${many0}/s)"

  if [ "${SKIP_REPLAY:-0}" != 1 ]; then
    bench "replay$r" 'Replay|Plain'
    for c in 0 1; do
      plain_bps=$(field "replay$r" "PlainSequentialRead/cold:$c/" bytes_per_second)
      mapped=$(field "replay$r" "WalReplay/cold:$c/read_only:0/" bytes_per_second)
      ro=$(field "replay$r" "WalReplay/cold:$c/read_only:1/" bytes_per_second)
      kind=$([ $c = 1 ] && echo "cold (evicted)" || echo "cached")
      echo "(c) replay, $kind: plain read $(mbs "$plain_bps") MB/s; WAL replay $(mbs "$mapped") MB/s (node, mapped), $(mbs "$ro") MB/s (read-only, pread)"
    done
  fi
  echo "    load average after: $(load)"
done
