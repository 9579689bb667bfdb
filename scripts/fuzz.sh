#!/usr/bin/env bash
# Fuzzing with clang's libFuzzer (ASan + UBSan), in its own build dir (build-fuzz); the normal
# g++ build never needs clang.
#
#   scripts/fuzz.sh                       list the targets
#   scripts/fuzz.sh TARGET [SECONDS]      fuzz TARGET (default 60 s) from its seed corpus;
#                                         new inputs go to build-fuzz/corpus/TARGET, a crash to
#                                         build-fuzz/crashes/TARGET/ (copy it into
#                                         fuzz/regressions/TARGET/ once fixed: fuzz_TARGET_replay
#                                         then keeps replaying it in every build)
#   scripts/fuzz.sh all [SECONDS]         every target in turn
#   scripts/fuzz.sh --smoke [SECONDS]     every target for SECONDS (default 5): CI's fuzz smoke
#   scripts/fuzz.sh --seeds               regenerate fuzz/corpus/* from the real encoders
set -euo pipefail
cd "$(dirname "$0")/.."
BDIR=${FUZZ_BUILD_DIR:-build-fuzz}
TARGETS=(codec wal_recovery snapshot peer_batch kv_command balsad_request config)
configure() {
  CC=clang CXX=clang++ cmake -S . -B "$BDIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBALSA_FUZZ=ON \
    -DCMAKE_CXX_FLAGS="-gline-tables-only" >/dev/null
}
run_one() {  # run_one <target> <seconds>
  local t=$1 secs=$2
  mkdir -p "$BDIR/corpus/$t" "$BDIR/crashes/$t"
  cmake --build "$BDIR" --target "fuzz_$t" >/dev/null
  echo "== fuzz_$t for ${secs}s"
  # Merge-free: the repo's seeds are read-only inputs; new coverage lands in build-fuzz/corpus.
  "$BDIR/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$BDIR/crashes/$t/" "$BDIR/corpus/$t" "fuzz/corpus/$t" 2>&1 |
    grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|.*FUZZ_CHECK)" || true
  local crashes
  crashes=$(find "$BDIR/crashes/$t" -type f | wc -l)
  if ((crashes > 0)); then
    echo "fuzz_$t: $crashes crashing input(s) in $BDIR/crashes/$t"
    return 1
  fi
}
case ${1:-} in
  "") echo "targets: ${TARGETS[*]}"; exit 0 ;;
  --seeds)
    cmake --build build --target $(printf 'fuzz_%s_replay ' "${TARGETS[@]}") >/dev/null
    for t in "${TARGETS[@]}"; do build/fuzz/fuzz_${t}_replay --write-seeds "fuzz/corpus/$t"; done
    exit 0 ;;
  --smoke) configure; rc=0; for t in "${TARGETS[@]}"; do run_one "$t" "${2:-5}" || rc=1; done; exit $rc ;;
  all) configure; rc=0; for t in "${TARGETS[@]}"; do run_one "$t" "${2:-60}" || rc=1; done; exit $rc ;;
  *) configure; run_one "$1" "${2:-60}" ;;
esac
