#!/usr/bin/env bash
# The installed package works for a project that knows only its prefix:
#   1. `cmake --install BUILD --prefix TMP`;
#   2. examples/counter configured as a standalone project with CMAKE_PREFIX_PATH=TMP
#      (find_package(balsa CONFIG)), built, run;
#   3. the same source built with `pkg-config --cflags --libs balsa` alone, run;
#   4. the library configured with tests, benchmarks, tools, examples and gRPC off never looks
#      for GoogleTest, Google Benchmark or gRPC, and libbalsa (shared and static) builds.
# Usage: package_test.sh BUILD_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
tmp=$(mktemp -d /tmp/balsa-package-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "== install into $tmp/prefix"
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"
for f in include/balsa/balsa.h include/balsa/runtime/node.h lib/pkgconfig/balsa.pc \
         lib/cmake/balsa/balsaConfig.cmake lib/cmake/balsa/balsaConfigVersion.cmake lib/libbalsa.a; do
  [ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f is not installed"; exit 1; }
done
so=$(readlink "$tmp/prefix/lib/libbalsa.so")
[[ "$so" == libbalsa.so.0 ]] || { echo "FAIL: libbalsa.so -> $so, expected the SOVERSION link libbalsa.so.0"; exit 1; }
if ls "$tmp/prefix/include/balsa"/*/*test* "$tmp/prefix/include/balsa/storage/sim_fs.h" 2>/dev/null; then
  echo "FAIL: test fixtures or the simulated disk were installed"; exit 1
fi

echo "== find_package(balsa) from the prefix only"
cmake -S "$src/examples/counter" -B "$tmp/counter" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/counter-configure.log"
cmake --build "$tmp/counter" >"$tmp/counter-build.log"
grep -q "$tmp/prefix/lib/libbalsa.so" "$tmp/counter/build.ninja" ||
  { echo "FAIL: the example did not link the installed libbalsa"; exit 1; }
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/counter/counter" | tail -n 1 | tee "$tmp/out1"
grep -q "every node's counter is 55" "$tmp/out1"

echo "== pkg-config balsa"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs balsa)
echo "pkg-config --cflags --libs balsa: $flags"
g++ -O1 "$src/examples/counter/counter.cc" $flags -o "$tmp/counter-pc"
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/counter-pc" | tail -n 1 | tee "$tmp/out2"
grep -q "every node's counter is 55" "$tmp/out2"

echo "== the library alone: no GoogleTest, no Google Benchmark, no gRPC"
# A user's Release build of the core, storage, loopback transport and runtime only.
cmake -S "$src" -B "$tmp/lib" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBALSA_BUILD_TESTS=OFF -DBALSA_WITH_GRPC=OFF \
      -DBALSA_BUILD_BENCHMARKS=OFF -DBALSA_BUILD_TOOLS=OFF -DBALSA_BUILD_EXAMPLES=OFF >"$tmp/lib-configure.log"
if grep -E '^(GTest_DIR|GTEST_INCLUDE_DIR|benchmark_DIR|gRPC_DIR):' "$tmp/lib/CMakeCache.txt" | grep -v NOTFOUND; then
  echo "FAIL: a library-only configure looked for GoogleTest, Benchmark or gRPC"; exit 1
fi
cmake --build "$tmp/lib" --target balsa balsa_static >"$tmp/lib-build.log"
[ -e "$tmp/lib/libbalsa.so.0" ] && [ -e "$tmp/lib/libbalsa.a" ]
echo "package test passed"
