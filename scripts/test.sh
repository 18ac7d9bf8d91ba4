#!/usr/bin/env bash
# The whole test suite: formatting and lints (rustfmt, clippy on every target, rustdoc with
# warnings denied), Rust unit, integration, CLI and doc tests (optimised: the numerical tests
# integrate chaotic systems at tight tolerances), then the Python package (python/: its wheel
# built from the same test-opt artifacts, installed, and its pytest suite), then the Python
# notebooks executed against freshly simulated output.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh --mpi
for tool in rustfmt clippy; do
  if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$tool" || { echo "test: cargo $tool is missing and cannot be installed" >&2; exit 1; }
  fi
done
cargo fmt --all --check
# --workspace: the Python crate too; its features unify with the tests' (see python/Cargo.toml,
# feature test-artifacts), so the wheel below reuses the library built here
cargo clippy --profile test-opt --locked --workspace --all-targets -- -D warnings
# the build of the example (scripts/example.sh: without the default feature `learn`) too, with
# the `mpi` feature (particle runs over MPI ranks)
cargo clippy --profile test-opt --locked --no-default-features --features mpi --all-targets -- -D warnings
cargo test --profile test-opt --locked --workspace
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked
target_dir="${CARGO_TARGET_DIR:-target}"
# the Python package: an abi3 wheel from the test-opt build (only the native module is compiled
# here), installed into this python3, then its tests against the binary
rm -f "$target_dir"/wheels/phaseflow-*.whl
python3 -m maturin build --profile test-opt --locked --features test-artifacts \
  --compatibility linux -m python/Cargo.toml -o "$target_dir/wheels"
wheel=$(ls "$target_dir"/wheels/phaseflow-*.whl)
python3 -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel" \
  || python3 -m pip install -q --disable-pip-version-check --break-system-packages --force-reinstall --no-deps "$wheel"
PHASEFLOW_BIN="$target_dir/test-opt/phaseflow" python3 -m pytest -q python/tests
python3 notebooks/run_notebooks.py --phaseflow "$target_dir/test-opt/phaseflow"
"$target_dir/test-opt/phaseflow" catalogue check
# last, because it replaces target/test-opt/phaseflow (which the steps above use) with its own
# build: particle runs over `mpirun -np 2` against one process (tests/mpi.rs), the binary built
# with the `mpi` feature (and without `learn`, which these tests do not need: half the build);
# one test at a time: each runs two MPI ranks, which busy-poll, on the two cores
cargo test --profile test-opt --locked --no-default-features --features mpi --test mpi -- --test-threads=1
