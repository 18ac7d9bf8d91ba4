#!/usr/bin/env bash
# The whole test suite: Rust unit, integration and CLI tests (optimised: the numerical tests
# integrate chaotic systems at tight tolerances), then the Python notebooks executed against
# freshly simulated output.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo test --profile test-opt --locked
target_dir="${CARGO_TARGET_DIR:-target}"
python3 notebooks/run_notebooks.py --phaseflow "$target_dir/test-opt/phaseflow"
"$target_dir/test-opt/phaseflow" catalogue check
