#!/usr/bin/env bash
# burn's wgpu backend checked against its CPU backend (flex) without a GPU: Mesa's lavapipe is a
# Vulkan driver that runs on the CPU, and wgpu runs on it. One small training (fixed seed, every
# step logged) runs with `--device cpu` and `--device wgpu` from the same binary; the two loss
# traces (log.csv) must agree step by step within f32 tolerance.
#
#   scripts/lavapipe_check.sh [OUT_DIR]        (default: $OUT, else target-wgpu/lavapipe-check)
#
# The training and the comparison: scripts/loss_trace_check.sh (an MLP score on the README's trap,
# DSM, $LAVAPIPE_STEPS steps, default 40) and scripts/compare_loss_traces.py.
#
# - installs mesa-vulkan-drivers + libvulkan1 with apt-get when the lavapipe ICD is missing;
# - builds `phaseflow --features wgpu` (release) into its own target directory (target-wgpu, or
#   $PHASEFLOW_WGPU_TARGET) so the default build is not disturbed; PHASEFLOW_WGPU_BIN skips the build;
# - selects lavapipe: VK_ICD_FILENAMES at its ICD file (no other Vulkan driver is loaded) and
#   CUBECL_WGPU_DEFAULT_DEVICE=Cpu (`--device wgpu` is cubecl's default adapter, which otherwise
#   prefers a hardware GPU);
# - exits non-zero when a step's losses differ by more than the tolerance (LAVAPIPE_RTOL, see
#   scripts/compare_loss_traces.py for why that value), or when a run fails.
# Writes OUT_DIR/summary.txt (and the runs: OUT_DIR/cpu, OUT_DIR/wgpu with their log.csv).
# Not in CI: the wgpu build alone takes far longer than CI's budget (README, "Score networks").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-${OUT:-$root/target-wgpu/lavapipe-check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rtol=${LAVAPIPE_RTOL:-1e-3}
steps=${LAVAPIPE_STEPS:-40}
summary=$out/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }

# 1. lavapipe
icd=$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json 2>/dev/null | head -n 1 || true)
if [[ -z "$icd" ]] || ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    echo "installing mesa-vulkan-drivers libvulkan1 (apt-get)" >&2
    sudo_=""
    [[ $(id -u) -eq 0 ]] || sudo_=sudo
    $sudo_ apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1 >&2
    icd=$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json | head -n 1)
fi
export VK_ICD_FILENAMES=$icd
export CUBECL_WGPU_DEFAULT_DEVICE=${CUBECL_WGPU_DEFAULT_DEVICE:-Cpu}
say "lavapipe: $icd ($(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo '?'))"

# 2. the wgpu build (separate target directory)
if [[ -n "${PHASEFLOW_WGPU_BIN:-}" ]]; then
    bin=$PHASEFLOW_WGPU_BIN
else
    target=${PHASEFLOW_WGPU_TARGET:-$root/target-wgpu}
    t0=$(date +%s)
    CARGO_TARGET_DIR=$target cargo build --release --locked --features wgpu --bin phaseflow >&2
    say "build: cargo build --release --features wgpu: $(($(date +%s) - t0)) s"
    bin=$target/release/phaseflow
fi

# 3. the same small training on flex and on wgpu (lavapipe), loss traces compared
TRACE_RTOL=$rtol TRACE_STEPS=$steps scripts/loss_trace_check.sh "$bin" wgpu "$out"
