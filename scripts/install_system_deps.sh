#!/usr/bin/env bash
# System libraries for off-screen MuJoCo rendering (evaluation videos, `eval.video=true`):
# OSMesa, MuJoCo's CPU GL backend (MUJOCO_GL=osmesa). Idempotent; needs no GPU or display.
# Installs with apt-get when it is missing, apt-get exists and we are root; otherwise prints
# what to install and exits 0 (training without videos needs nothing from here).
set -euo pipefail

if ldconfig -p 2>/dev/null | grep -q 'libOSMesa\.so'; then
    exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
    echo "installing libosmesa6 (off-screen MuJoCo rendering for eval.video=true)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libosmesa6 >/dev/null
else
    echo "note: OSMesa is not installed; eval.video=true needs it (Debian/Ubuntu: sudo apt-get install libosmesa6;" \
         "Fedora: sudo dnf install mesa-libOSMesa; conda: conda install -c conda-forge mesalib)" >&2
fi
