#!/usr/bin/env bash
# The bundled example, end to end: build, integrate Lorenz from its definition file with DOP853,
# write HDF5, and plot it. Output: lorenz.h5 and lorenz.png in the current directory.
# Builds only what the example needs: the system libraries (no Python), and the binary without
# the score networks (`--no-default-features`: no burn, about half the build time) in the
# profile of scripts/test.sh, whose build then reuses the dependencies compiled here.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh --build-only
cargo build --profile test-opt --locked --no-default-features
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/test-opt/phaseflow" simulate systems/lorenz.toml --points 10000 --pts-per-period 100 \
  --burn-in 15 --rtol 1e-10 --atol 1e-10 -o lorenz.h5
"$target_dir/test-opt/phaseflow" plot lorenz.h5 -o lorenz.png
echo "example: wrote lorenz.h5 and lorenz.png"
