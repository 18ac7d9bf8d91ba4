#!/usr/bin/env bash
# Installs what phaseflow needs beyond the Rust toolchain, only if missing:
#   Debian packages: HDF5 (libhdf5-dev, for the hdf5-metno crate), pkg-config, fontconfig + a font
#   (plotters draws text with them);
#   Python packages (tests and notebooks): numpy, h5py, matplotlib, pandas, nbclient, nbformat,
#   ipykernel; maturin (builds the Python package, python/) and pytest (its tests).
# `deps.sh --build-only`: the Debian packages only (what building and running the binary needs;
# scripts/example.sh), no Python.
set -euo pipefail

build_only=false
case "${1:-}" in
  "") ;;
  --build-only) build_only=true ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

missing=()
pkg_ok() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in libhdf5-dev pkg-config libfontconfig1-dev fonts-dejavu-core; do
  pkg_ok "$p" || missing+=("$p")
done
# python3 may come from elsewhere (pyenv): only ask apt for it when there is none
if ! $build_only; then
  command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if $build_only; then
  exit 0
fi

if ! python3 -c "import numpy, h5py, matplotlib, pandas, nbclient, nbformat, ipykernel, pytest, maturin" >/dev/null 2>&1; then
  echo "deps: installing Python packages" >&2
  python3 -m pip install -q --disable-pip-version-check numpy h5py matplotlib pandas nbclient nbformat ipykernel pytest 'maturin>=1.16,<2' \
    || python3 -m pip install -q --break-system-packages numpy h5py matplotlib pandas nbclient nbformat ipykernel pytest 'maturin>=1.16,<2'
fi
