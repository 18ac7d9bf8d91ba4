#!/usr/bin/env bash
# The whole test suite: formatting and lints (rustfmt, clippy on every target, rustdoc with
# warnings denied), Rust unit, integration, CLI and doc tests (optimised: the numerical tests
# integrate chaotic systems at tight tolerances), then the Python notebooks executed against
# freshly simulated output.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
for tool in rustfmt clippy; do
  if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$tool" || { echo "test: cargo $tool is missing and cannot be installed" >&2; exit 1; }
  fi
done
cargo fmt --check
cargo clippy --profile test-opt --locked --all-targets -- -D warnings
# the build of the example (scripts/example.sh: without the default feature `learn`) too
cargo clippy --profile test-opt --locked --no-default-features --all-targets -- -D warnings
cargo test --profile test-opt --locked
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked
target_dir="${CARGO_TARGET_DIR:-target}"
python3 notebooks/run_notebooks.py --phaseflow "$target_dir/test-opt/phaseflow"
"$target_dir/test-opt/phaseflow" catalogue check
