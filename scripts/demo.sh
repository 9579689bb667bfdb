#!/usr/bin/env bash
# The main job: install what is missing, build, and show Balsa at work.
# With balsad built: a local 3-member cluster driven by etcdctl, including a leader failover.
# SIM=1 (or no balsad): a 5-node simulated cluster under faults, as a readable timeline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if [ -z "${SIM:-}" ] && [ -x build/src/balsad/balsad ] && [ -x scripts/cluster-demo.sh ]; then
  exec scripts/cluster-demo.sh
fi
seed=${SEED:-7}
echo
echo "== 5-node Balsa cluster in the simulator, seed $seed: faults for 3 s, then healed =="
./build/src/sim/balsa-sim --seed "$seed" --nodes 5 --timeline
