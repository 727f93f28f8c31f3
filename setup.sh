#!/usr/bin/env bash
# Install the appliance on a fresh Debian machine: system packages, then a virtual
# environment in .venv with the appliance in it.  Safe to run again.
#   ./setup.sh            appliance + demo (no CUPS needed)
#   ./setup.sh --test     also CUPS, the IPP emulator and the test tools
set -euo pipefail
cd "$(dirname "$0")"

extras="cups"
pkgs=(python3 python3-venv python3-dev gcc libcups2-dev)
if [[ "${1:-}" == "--test" ]]; then
  extras="cups,test"
  pkgs+=(cups cups-client cups-ipp-utils dbus avahi-daemon tmux poppler-utils zbar-tools systemd)
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
else
  echo "setup.sh: apt-get not found; install ${pkgs[*]} with your package manager" >&2
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e ".[$extras]"
echo "installed: $(.venv/bin/appliance --help | head -1)"
echo "try:       .venv/bin/appliance demo"
echo "a box:     examples/appliance.toml, examples/floor.toml and systemd/ (README \"Running under systemd\")"
