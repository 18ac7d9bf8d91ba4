#!/usr/bin/env bash
# The GPU path of the score networks on a machine with an NVIDIA GPU, in one command (no network
# needed beyond the crates the build has already fetched):
#   1. builds `phaseflow` with a GPU backend into its own target directory (target-gpu);
#   2. repeats the flex-vs-GPU loss-trace comparison of scripts/lavapipe_check.sh on the GPU
#      (scripts/loss_trace_check.sh: same seed, every step logged, compared step by step);
#   3. times paper-size training steps: local transformer, width 256, 4 heads, 4 blocks, 64
#      neighbours, DSM sigma = 0.01, batch 1024 particles, on a small MIPS file made by
#      `phaseflow simulate mips` (N = 4096), on the GPU and (for scale) on flex.
#
#   scripts/device_check.sh [--dry-run] [--backend cuda|wgpu] [OUT_DIR]
#
# OUT_DIR (default $OUT, else target-gpu/device-check) receives summary.txt and the runs.
# Exit status 0 only when every step ran and the loss traces agree.
#
# Backend. burn's `cuda` feature compiles cubecl-llvm, whose build script (tracel-llvm-bundler
# 23.1.0-4) downloads an LLVM bundle (linux-x64.tar.xz) from the tracel-ai/tracel-llvm releases on
# github.com, unless it is already installed under ~/.local/share/tracel/tracel-llvm-23.1.0-4/. So:
# `cuda` when that bundle is installed (it also needs libcuda and NVRTC at run time), otherwise
# `wgpu` on the GPU's Vulkan driver (NVIDIA's ICD, nvidia_icd.json, ships with the driver; libvulkan1
# must be installed). --backend overrides the choice.
#
# --dry-run: builds nothing and needs no GPU: prints the plan and what is missing for it, checks
# that the crates of the chosen backend are in cargo's local registry (offline), and runs the flex
# halves (the reference loss trace and the flex paper-size steps) with an existing binary
# ($PHASEFLOW_BIN, else target-wgpu/release/phaseflow, target/release/phaseflow, target/test-opt/
# phaseflow). DEVICE_CHECK_FLEX_STEPS (default 2; 0 skips) sets the flex paper-size steps.
#
# Budget (10 min): the build dominates (measured here on 2 cores: see README, "Score networks");
# the trace check takes seconds; one paper-size step on flex takes ~29 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dry=0 backend=""
while [[ $# -gt 0 ]]; do
    case $1 in
    --dry-run) dry=1 ;;
    --backend) backend=$2; shift ;;
    --backend=*) backend=${1#*=} ;;
    -h | --help) sed -n '2,31p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
    shift
done
out=${1:-${OUT:-$root/target-gpu/device-check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
summary=$out/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
problems=()
t_all=$(date +%s)

# --- plan --------------------------------------------------------------------------------------
say "== phaseflow device check $(date -u +%FT%TZ) $( ((dry)) && echo '(dry run)')"
say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (modified)')"
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"
    gpu=1
else
    say "GPU: none found (nvidia-smi)"
    gpu=0
    ((dry)) || problems+=("no NVIDIA GPU (nvidia-smi -L failed)")
fi
llvm=${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4
if [[ -f $llvm/.tracel-llvm-installed ]]; then
    say "cuda: the LLVM bundle of tracel-llvm-bundler is installed ($llvm): the cuda feature builds offline"
    [[ -n $backend ]] || backend=cuda
else
    say "cuda: NOT buildable offline: burn's cuda feature needs the LLVM bundle that tracel-llvm-bundler"
    say "      downloads from github.com/tracel-ai/tracel-llvm (releases v23.1.0-4, linux-x64.tar.xz)"
    say "      at build time; it is not installed ($llvm) and this check assumes no network."
    [[ -n $backend ]] || { backend=wgpu; say "      -> using the wgpu backend on the GPU's Vulkan driver instead."; }
fi
case $backend in
cuda)
    for lib in libcuda.so libnvrtc.so; do
        ldconfig -p | grep -q "$lib" || {
            say "cuda: $lib not found by ldconfig (needed at run time)"
            ((dry)) || problems+=("$lib missing")
        }
    done
    ;;
wgpu)
    ldconfig -p | grep -q 'libvulkan\.so\.1' || {
        say "wgpu: libvulkan.so.1 missing (Debian/Ubuntu: libvulkan1; it cannot be installed without network)"
        ((dry)) || problems+=("libvulkan.so.1 missing")
    }
    icd=$(ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json 2>/dev/null | head -n 1 || true)
    if [[ -n $icd ]]; then
        say "wgpu: NVIDIA Vulkan ICD $icd"
        export VK_ICD_FILENAMES=$icd
    else
        say "wgpu: no NVIDIA Vulkan ICD (nvidia_icd.json) in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d"
        ((dry)) || problems+=("no NVIDIA Vulkan ICD")
    fi
    # cubecl's default adapter prefers a discrete GPU; never let it fall back to a software one
    export CUBECL_WGPU_DEFAULT_DEVICE=${CUBECL_WGPU_DEFAULT_DEVICE:-DiscreteGpu(0)}
    ;;
*) echo "--backend must be cuda or wgpu" >&2; exit 2 ;;
esac
say "backend: $backend (phaseflow --features $backend, --device $backend)"
if ! cargo tree --offline --locked --features "$backend" -e normal,build >/dev/null 2>"$out/cargo-tree.err"; then
    say "crates: some crates of --features $backend are not in cargo's local registry (offline):"
    tail -n 5 "$out/cargo-tree.err" | tee -a "$summary"
    problems+=("crates missing offline")
else
    say "crates: all crates of --features $backend are available offline"
fi
if ((${#problems[@]})); then
    say "FAIL before building: ${problems[*]}"
    exit 1
fi

# --- 1. build ----------------------------------------------------------------------------------
if ((dry)); then
    bin=${PHASEFLOW_BIN:-}
    for c in target-wgpu/release/phaseflow target/release/phaseflow target/test-opt/phaseflow; do
        [[ -n $bin ]] || { [[ -x $c ]] && bin=$root/$c; } || true
    done
    [[ -n $bin && -x $bin ]] || { say "dry run: no phaseflow binary (set PHASEFLOW_BIN)"; exit 1; }
    say "build: skipped (dry run); flex halves with $bin"
    dev=none
else
    target=${DEVICE_CHECK_TARGET:-$root/target-gpu}
    t0=$(date +%s)
    CARGO_TARGET_DIR=$target cargo build --release --locked --offline --features "$backend" \
        --bin phaseflow >"$out/build.log" 2>&1 || {
        say "FAIL: cargo build --features $backend ($out/build.log):"
        tail -n 20 "$out/build.log" | tee -a "$summary"
        exit 1
    }
    say "build: cargo build --release --offline --features $backend: $(($(date +%s) - t0)) s ($(nproc) cores)"
    bin=$target/release/phaseflow
    dev=$backend
fi

# --- 2. the loss traces ------------------------------------------------------------------------
status=0
scripts/loss_trace_check.sh "$bin" "$dev" "$out/trace" || status=1
cat "$out/trace/summary.txt" >>"$summary"

# --- 3. paper-size training steps --------------------------------------------------------------
paper=$out/paper
mkdir -p "$paper"
t0=$(date +%s)
"$bin" simulate mips --steps 200 --every 100 -o "$paper/mips.h5" --quiet >&2
say "data: phaseflow simulate mips (N = 4096, 200 steps, 3 frames): $(($(date +%s) - t0)) s"
paper_config() { # STEPS
    cat <<EOF
[network]
kind = "local_transformer"
width = 256
heads = 4
blocks = 4
feed_forward = 256
neighbours = 64
hidden = [256, 256, 256, 256]

[loss]
kind = "dsm"
sigma = 0.01

[training]
steps = $1
batch = 1024
warmup = 1
log_every = 1
checkpoint_every = $1
validation_fraction = 0.0
seed = 0
EOF
}
# seconds per step from log.csv (batch / samples_per_second): first step, then the median of the rest
step_times() {
    python3 - "$1" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
t = [1024 / float(r["samples_per_second"]) for r in rows]
rest = t[1:]
med = statistics.median(rest) if rest else float("nan")
losses = ", ".join("%.5g" % float(r["loss"]) for r in rows)
print(f"first step {t[0]:.3f} s, then median {med:.3f} s/step ({1024 / med:.0f} samples/s) "
      f"over {len(rest)} steps; losses {losses}")
EOF
}
run_paper() { # DEVICE STEPS
    local d=$1 n=$2
    paper_config "$n" >"$paper/$d.toml"
    rm -rf "${paper:?}/$d"
    local t0
    t0=$(date +%s)
    if "$bin" train "$paper/$d.toml" --data "$paper/mips.h5" -o "$paper/$d" --device "$d" --quiet \
        >"$paper/$d.log" 2>&1; then
        say "paper-size --device $d ($n steps, $(($(date +%s) - t0)) s in all): $(step_times "$paper/$d/log.csv")"
    else
        say "FAIL: paper-size training --device $d:"
        tail -n 20 "$paper/$d.log" | tee -a "$summary"
        status=1
    fi
}
[[ $dev == none ]] || run_paper "$dev" "${DEVICE_CHECK_GPU_STEPS:-8}"
flex_steps=${DEVICE_CHECK_FLEX_STEPS:-2}
((flex_steps == 0)) || run_paper cpu "$flex_steps"

say "== $( ((status)) && echo FAIL || echo PASS) in $(($(date +%s) - t_all)) s; results in $out"
exit $status
