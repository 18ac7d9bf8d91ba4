#!/usr/bin/env python3
"""Compares two `phaseflow train` loss traces (log.csv) step by step; exit status 1 on mismatch.

    compare_loss_traces.py REFERENCE/log.csv OTHER/log.csv [--rtol R] [--atol A]

A step passes when |a - b| <= rtol * max(|a|, |b|) + atol for the training loss and the
validation loss; the steps and learning rates must be identical (they are computed on the host).

Why a tolerance and not equality: the same network, data, noise and seed on two burn backends
(flex on the CPU, wgpu on a GPU or on lavapipe) differ only in floating-point evaluation order:
f32 sums and matrix products reduce in different orders (tiled, parallel), and exp/erf/sqrt come
from different libraries, so each operation differs by a few ulp (f32: 6e-8 relative). Those
differences then pass through the optimiser: each step's parameters depend on all the earlier
gradients, so the traces drift apart slowly (roughly linearly over a few dozen steps, by 1e-6 -
1e-5 relative per step for this size). A few dozen steps at 1e-3 relative leave a wide margin over
that and still catch any real bug (a wrong kernel, a different initialisation, a missed gradient
term, a different batch), all of which change the loss at the 1e-2 - 1 level from the first step.
The logged DSM loss is an excess (L - <zeta^2>) / sigma^2, a difference of nearly equal numbers:
its absolute error is about eps_f32 * <zeta^2> / sigma^2, hence atol (default: 1e-4 * 1/sigma^2
for sigma = 0.05, i.e. 0.04) for steps where the excess itself is near zero.
"""

import argparse
import csv
import math
import sys


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path}: no rows")
    return rows


def num(v):
    return float(v) if v not in ("", None) else math.nan


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference")
    ap.add_argument("other")
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--atol", type=float, default=0.04)
    args = ap.parse_args()
    a, b = read(args.reference), read(args.other)
    if [r["step"] for r in a] != [r["step"] for r in b]:
        print(f"FAIL: the logged steps differ ({len(a)} vs {len(b)} rows)")
        return 1
    bad, worst_rel, worst_abs, worst_step = [], 0.0, 0.0, None
    for ra, rb in zip(a, b):
        if ra["lr"] != rb["lr"]:
            bad.append(f"step {ra['step']}: lr {ra['lr']} vs {rb['lr']}")
        for col in ("loss", "validation_loss"):
            x, y = num(ra[col]), num(rb[col])
            if math.isnan(x) and math.isnan(y):
                continue
            d = abs(x - y)
            scale = max(abs(x), abs(y))
            rel = d / scale if scale > 0 else 0.0
            if not math.isfinite(d) or d > args.rtol * scale + args.atol:
                bad.append(f"step {ra['step']} {col}: {x!r} vs {y!r} (|diff| {d:.3g}, rel {rel:.3g})")
            if math.isfinite(d) and rel > worst_rel:
                worst_rel, worst_step = rel, f"{ra['step']} ({col})"
            if math.isfinite(d):
                worst_abs = max(worst_abs, d)
    first, last = a[0], a[-1]
    print(
        f"{len(a)} logged steps; loss {num(first['loss']):.6g} -> {num(last['loss']):.6g} (reference); "
        f"max relative difference {worst_rel:.3g} at step {worst_step}, max |difference| {worst_abs:.3g}; "
        f"tolerance rtol {args.rtol:g} + atol {args.atol:g}"
    )
    for line in bad[:20]:
        print("FAIL:", line)
    if bad:
        print(f"FAIL: {len(bad)} mismatches")
        return 1
    print("PASS: the loss traces agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
