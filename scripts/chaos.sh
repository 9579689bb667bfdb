#!/usr/bin/env bash
# The real-process fault harness: a balsad cluster in network namespaces under partitions,
# kills, pauses, clock skew and disk faults, with a recorded history checked by balsa-check.
#   scripts/chaos.sh --duration 120 --nemesis partition,kill,pause,clock,disk
#   scripts/chaos.sh --duration 60 --nemesis partition --serializable --expect-violation   # negative control
#   scripts/chaos.sh --soak          # 30 minutes, 5 members, every nemesis (figures: docs/chaos.md)
# Needs root. `scripts/chaos.sh --help` lists every option. See docs/chaos.md.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for a in "$@"; do
  if [[ $a == --soak ]]; then args+=(--duration 1800 --members 5 --clients 16 --nemesis partition,kill,pause,clock,disk)
  else args+=("$a"); fi
done
exec python3 tests/chaos/chaos.py "${args[@]}"
