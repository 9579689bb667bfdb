#!/usr/bin/env bash
# Configures and builds Balsa into ./build (Release-with-debug-info, Ninja), warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} -DBALSA_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
