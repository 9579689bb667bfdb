#!/usr/bin/env bash
# The Raft core beside etcd-raft in one run: Balsa's core_bench (single-node proposal, 3-node
# in-process commit at 16 B x batch 1/64/1024) and etcd-raft's BenchmarkOneNode from Debian's
# golang-etcd-server-dev (GOPATH mode, Go from golang-go), with load averages before each.
#
# Usage: bench/core_vs_etcd_raft.sh [build dir]      (default build)
#   MIN_TIME=1   seconds per Balsa benchmark;  GO_BENCHTIME=2s  for Go
set -euo pipefail
BUILD=${1:-build}
RAFT_DIR=/usr/share/gocode/src/go.etcd.io/etcd/raft
[[ -x $BUILD/bench/core_bench ]] || { echo "no $BUILD/bench/core_bench (build it first)"; exit 2; }
command -v go >/dev/null || { echo "no go (bench/install-deps.sh installs golang-go)"; exit 2; }
[[ -d $RAFT_DIR ]] || { echo "no $RAFT_DIR (apt-get install golang-etcd-server-dev)"; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "$(date -u +%FT%TZ) $(nproc) cores; build $(grep CMAKE_BUILD_TYPE: "$BUILD/CMakeCache.txt" | cut -d= -f2); $(go version)"
echo "load before etcd-raft: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$RAFT_DIR" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
  go test -run XXX -bench 'BenchmarkOneNode$' -benchtime "${GO_BENCHTIME:-2s}" 2>/dev/null) | tee "$OUT/go.txt" | grep -Eo '[0-9]+[[:space:]]+[0-9.]+ ns/op' | sed 's/^/etcd-raft BenchmarkOneNode: /'
echo "load before core_bench: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench/core_bench" --benchmark_min_time="${MIN_TIME:-1}" \
  --benchmark_filter='BM_OneNodePropose/16|BM_ThreeNodeCommit16' --benchmark_format=json >"$OUT/core.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT/go.txt" "$OUT/core.json" <<'PY'
import json, re, sys
go = open(sys.argv[1]).read()
# raft's logger interleaves with the result line; the figure is "<iterations> <ns> ns/op".
m = re.search(r"(\d+)\s+([\d.]+) ns/op", go)
go_ns = float(m.group(2)) if m else None
core = json.load(open(sys.argv[2]))["benchmarks"]
for b in core:
    unit = {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
    ns, wall = b["cpu_time"] * unit, b["real_time"] * unit
    line = f"{b['name']:28} {ns:12.1f} ns CPU, {wall:12.1f} ns wall/iteration"
    if "items_per_second" in b:
        line += f"  {b['items_per_second'] / 1e6:7.2f} M entries/s per core"
    if b["name"].startswith("BM_OneNodePropose") and go_ns:
        # Go's ns/op is wall time: compare wall with wall (on a loaded machine both inflate).
        line += f"\n    vs etcd-raft BenchmarkOneNode {go_ns:.0f} ns/op (wall): {wall / go_ns:.3f} of it ({go_ns / wall:.1f}x faster)"
    print(line)
PY
