#!/usr/bin/env bash
# The main job: install what is missing, build, and show Balsa at work.
# Until balsad exists this runs a 5-node simulated cluster under faults and prints its timeline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
seed=${SEED:-7}
echo
echo "== 5-node Balsa cluster in the simulator, seed $seed: faults for 3 s, then healed =="
./build/src/sim/balsa-sim --seed "$seed" --nodes 5 --timeline
