#!/usr/bin/env bash
# Installs what phaseflow needs beyond the Rust toolchain, only if missing:
#   Debian packages: HDF5 (libhdf5-dev, for the hdf5-metno crate), pkg-config, fontconfig + a font
#   (plotters draws text with them);
#   Python packages (tests and notebooks): numpy, h5py, matplotlib, pandas, nbclient, nbformat,
#   ipykernel; maturin (builds the Python package, python/) and pytest (its tests); dysts 0.96
#   (python/tests/test_dysts_parity.py compares with it); gsd 5.0.1 (python/tests/test_gsd.py reads
#   phaseflow's GSD files with it).
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

# dysts 0.96 for the parity tests. A plain `pip install dysts==0.96` pulls gluonts[arrow], which
# downgrades pandas to < 3 (and brings pyarrow, pydantic, ...): instead dysts and gluonts are
# installed without their dependencies, plus what importing dysts.flows and dysts.metrics needs
# (dysts imports gluonts.dataset.arrow at import, hence pyarrow and toolz; about 1 min, 400 MB).
if ! python3 -c "import importlib.metadata as m; assert m.version('dysts') == '0.96'; import dysts.flows, dysts.metrics" >/dev/null 2>&1; then
  echo "deps: installing dysts 0.96 (python/tests/test_dysts_parity.py)" >&2
  dysts_needs=(scipy scikit-learn tqdm 'toolz~=0.10' pyarrow typing_extensions)
  python3 -m pip install -q --disable-pip-version-check "${dysts_needs[@]}" \
    || python3 -m pip install -q --break-system-packages "${dysts_needs[@]}"
  python3 -m pip install -q --disable-pip-version-check --no-deps dysts==0.96 gluonts==0.17.0 \
    || python3 -m pip install -q --break-system-packages --no-deps dysts==0.96 gluonts==0.17.0
fi

# gsd (HOOMD-blue's GSD reader): python/tests/test_gsd.py reads phaseflow's GSD output with it
if ! python3 -c "import gsd.hoomd, gsd.fl" >/dev/null 2>&1; then
  echo "deps: installing gsd (python/tests/test_gsd.py)" >&2
  python3 -m pip install -q --disable-pip-version-check 'gsd==5.0.1' \
    || python3 -m pip install -q --break-system-packages 'gsd==5.0.1'
fi
