#!/usr/bin/env bash
# One small training run twice from the same binary, on burn's CPU backend (`--device cpu`, flex)
# and on another device (`--device wgpu|cuda`), then the two loss traces compared step by step
# (scripts/compare_loss_traces.py; exit status 1 on mismatch). Used by scripts/lavapipe_check.sh
# and scripts/device_check.sh.
#
#   scripts/loss_trace_check.sh PHASEFLOW_BIN DEVICE OUT_DIR
#
# The run: the README's trap (N = 4 non-interacting AOUPs, k = 0, 64 replicas, frames every 10 time
# units up to t = 100 after a burn-in of 10; seconds to simulate), an MLP score
# (64, 64), DSM sigma = 0.2, lr 3e-2, batch 64, $TRACE_STEPS steps (default 40), seed 7, every step
# logged with a validation loss. Appends its lines to OUT_DIR/summary.txt. DEVICE `none`: only the
# flex run (the half that needs no GPU; scripts/device_check.sh --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 3 ]] || { echo "usage: $0 PHASEFLOW_BIN DEVICE OUT_DIR" >&2; exit 2; }
bin=$1 dev=$2 out=$3
steps=${TRACE_STEPS:-40}
rtol=${TRACE_RTOL:-1e-3}
mkdir -p "$out"
summary=$out/summary.txt
say() { echo "$*" | tee -a "$summary"; }

data=$out/trap.h5
"$bin" simulate systems/active/trap.toml --set N=4 --set k=0 --set phi=0.005 --replicas 64 --burn-in 10 \
    --t-end 100 --every 10 -o "$data" --quiet >&2
cat >"$out/train.toml" <<EOF
[network]
kind = "mlp"
hidden = [64, 64]

[loss]
kind = "dsm"
sigma = 0.2

[training]
steps = $steps
batch = 64
lr = 3e-2
warmup = 5
ema = 0.99
log_every = 1
checkpoint_every = $steps
validation_fraction = 0.1
seed = 7
EOF

devs=(cpu)
[[ $dev == none ]] || devs+=("$dev")
for d in "${devs[@]}"; do
    rm -rf "${out:?}/$d"
    t0=$(date +%s%N)
    if ! "$bin" train "$out/train.toml" --data "$data" -o "$out/$d" --device "$d" --quiet \
        >"$out/$d.log" 2>&1; then
        say "FAIL: phaseflow train --device $d failed:"
        tail -n 30 "$out/$d.log" | tee -a "$summary"
        exit 1
    fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    say "train --device $d: $steps steps (MLP 64-64, batch 64) in $((ms / 1000)).$(printf %03d $((ms % 1000))) s"
done

[[ $dev != none ]] || exit 0
python3 scripts/compare_loss_traces.py "$out/cpu/log.csv" "$out/$dev/log.csv" --rtol "$rtol" \
    | tee -a "$summary"
exit "${PIPESTATUS[0]}"
