#!/usr/bin/env bash
# Installs what phaseflow needs beyond the Rust toolchain, only if missing:
#   Debian packages: HDF5 (libhdf5-dev, for the hdf5-metno crate), pkg-config, fontconfig + a font
#   (plotters draws text with them);
#   Python packages (tests and notebooks): numpy, h5py, matplotlib, pandas, nbclient, nbformat,
#   ipykernel; maturin (builds the Python package, python/) and pytest (its tests); dask and
#   distributed (scripts/dask_sweep.py, tested by python/tests/test_dask_sweep.py); dysts 0.96
#   (python/tests/test_dysts_parity.py compares with it); MDAnalysis, gsd and freud-analysis (the
#   field's readers and analysis, which check phaseflow's particle files and observables:
#   python/tests/test_mdanalysis.py, test_gsd.py, test_freud.py).
# `deps.sh --build-only`: the Debian packages only (what building and running the binary needs;
# scripts/example.sh), no Python.
# `deps.sh --mpi`: also MPICH and libclang (the `mpi` feature: `cargo build --features mpi`,
# particle runs over `mpirun -np K`; scripts/test.sh asks for it).
set -euo pipefail

build_only=false
with_mpi=false
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=true ;;
    --mpi) with_mpi=true ;;
    *) echo "usage: $0 [--build-only] [--mpi]" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

missing=()
pkg_ok() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in libhdf5-dev pkg-config libfontconfig1-dev fonts-dejavu-core; do
  pkg_ok "$p" || missing+=("$p")
done
if $with_mpi; then
  # MPICH (its mpirun runs as root without extra flags), libclang for the mpi crate's bindings
  for p in libmpich-dev mpich libclang-dev; do
    pkg_ok "$p" || missing+=("$p")
  done
fi
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

if ! python3 -c "import numpy, h5py, matplotlib, pandas, nbclient, nbformat, ipykernel, pytest, maturin, dask, distributed" >/dev/null 2>&1; then
  echo "deps: installing Python packages" >&2
  python3 -m pip install -q --disable-pip-version-check numpy h5py matplotlib pandas nbclient nbformat ipykernel pytest 'maturin>=1.16,<2' dask distributed \
    || python3 -m pip install -q --break-system-packages numpy h5py matplotlib pandas nbclient nbformat ipykernel pytest 'maturin>=1.16,<2' dask distributed
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

# MDAnalysis 2.x, gsd (HOOMD-blue's format) and freud-analysis 3.x: the readers and the analysis
# library the particle outputs are checked with (python/tests/test_freud.py recomputes g(r) and the
# largest-cluster fraction with freud). Tested with MDAnalysis 2.11.0, gsd 5.0.1, freud 3.4.0.
# numpy and pandas are held at the installed versions (a constraints file): should one of these
# ever want another numpy, pip fails instead of downgrading it. Into a venv holding only numpy and
# pandas they pull scipy, matplotlib (with contourpy, pillow, fonttools, ...), MDAnalysis' own
# GridDataFormats, mrcfile, mmtf-python, msgpack, mda-xdrlib, filelock, tqdm, joblib, and freud's
# rowan, parsnip-cif: 30 s, 330 MB without a pip cache; after the packages above (scipy,
# matplotlib already here) about 75 MB (MDAnalysis 51, freud 7, gsd 4).
if ! python3 -c "import importlib.metadata as m; v = lambda p: int(m.version(p).split('.')[0]); assert v('MDAnalysis') == 2 and v('freud-analysis') == 3 and v('gsd') >= 3; import MDAnalysis, gsd.hoomd, freud" >/dev/null 2>&1; then
  echo "deps: installing MDAnalysis, gsd, freud-analysis (checks of the particle outputs)" >&2
  pins=$(mktemp)
  trap 'rm -f "$pins"' EXIT
  python3 -c "import importlib.metadata as m
for p in ('numpy', 'pandas'):
    try: print(f'{p}=={m.version(p)}')
    except m.PackageNotFoundError: pass" >"$pins"
  readers=('MDAnalysis>=2,<3' 'gsd>=3,<6' 'freud-analysis>=3,<4')
  python3 -m pip install -q --disable-pip-version-check -c "$pins" "${readers[@]}" \
    || python3 -m pip install -q --break-system-packages -c "$pins" "${readers[@]}"
fi
