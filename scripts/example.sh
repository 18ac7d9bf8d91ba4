#!/usr/bin/env bash
# The bundled example, end to end: build, integrate Lorenz from its definition file with DOP853,
# write HDF5, and plot it. Output: lorenz.h5 and lorenz.png in the current directory.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release --locked
./target/release/phaseflow simulate systems/lorenz.toml --points 10000 --pts-per-period 100 \
  --burn-in 15 --rtol 1e-10 --atol 1e-10 -o lorenz.h5
./target/release/phaseflow plot lorenz.h5 -o lorenz.png
echo "example: wrote lorenz.h5 and lorenz.png"
