#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every CTest suite.
#
#   scripts/test.sh                               g++ build in ./build, every suite
#   scripts/test.sh --sanitize=address,undefined  ASan+UBSan build in ./build-asan, every suite
#   scripts/test.sh --sanitize=thread             TSan build in ./build-tsan: the runtime,
#                                                 transport and balsad suites (TSAN_LABELS)
#   scripts/test.sh --fuzz-smoke                  clang/libFuzzer build in ./build-fuzz: each
#                                                 fuzz target for FUZZ_SECONDS (default 5) s
# Extra arguments go to ctest (e.g. -R kv). Sanitizer reports fail the test (halt_on_error);
# suppressions, each with its reason, are in scripts/sanitizers/.
set -euo pipefail
cd "$(dirname "$0")/.."
SANITIZE=""
FUZZ=""
CTEST_ARGS=()
for a in "$@"; do
  case $a in
    --sanitize=*) SANITIZE=${a#--sanitize=} ;;
    --fuzz-smoke) FUZZ=1 ;;
    *) CTEST_ARGS+=("$a") ;;
  esac
done
scripts/install-deps.sh
if [[ -n $FUZZ ]]; then
  exec scripts/fuzz.sh --smoke "${FUZZ_SECONDS:-5}"
fi
if [[ -z $SANITIZE ]]; then
  scripts/build.sh
  cd build
  exec ctest --output-on-failure -j"$(nproc)" --timeout 900 "${CTEST_ARGS[@]}"
fi

case $SANITIZE in
  *thread*) BDIR=build-tsan ;;
  *) BDIR=build-asan ;;
esac
SUPP=$PWD/scripts/sanitizers
# Debug invariants stay on; -O1 keeps the instrumented build and run within CI's time.
cmake -S . -B "$BDIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DBALSA_WERROR=ON -DBALSA_SANITIZE="$SANITIZE" >/dev/null
cmake --build "$BDIR" -j"$(nproc)"
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$SUPP/ubsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp"
cd "$BDIR"
if [[ $SANITIZE == *thread* && ${#CTEST_ARGS[@]} == 0 ]]; then
  CTEST_ARGS=(-L "${TSAN_LABELS:-^(runtime|transport|balsad)$}")
fi
exec ctest --output-on-failure -j"$(nproc)" --timeout 1800 "${CTEST_ARGS[@]}"
