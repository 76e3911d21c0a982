#!/usr/bin/env bash
# Install the Debian packages for a single-node Slurm (slurmctld, slurmd, munge).
#
# Idempotent: does nothing when every package is already installed. Needs root (or sudo).
# Used by the CI script and by anyone who wants to try daskmic's SLURM path on one machine;
# start the daemons afterwards with deploy/slurm/start-single-node.sh.
set -euo pipefail

packages=(slurmctld slurmd slurm-client munge)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-debian.sh: slurm packages already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps the install small. The daemons are started by
# start-single-node.sh with its own configuration, not by the packages' service files.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-debian.sh: installed ${missing[*]}"
