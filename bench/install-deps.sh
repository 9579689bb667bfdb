#!/usr/bin/env bash
# Bench-only Debian packages (bench/compare, the etcd-raft baseline, profiling), on top of
# scripts/install-deps.sh. Idempotent: installs only what is missing.
set -euo pipefail
PKGS=(fio python3-matplotlib golang-go golang-etcd-server-dev etcd-server etcd-client linux-perf)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
