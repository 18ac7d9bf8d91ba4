#!/usr/bin/env python3
"""Compares two `phaseflow train` loss traces (log.csv) step by step; exit status 1 on mismatch.

    compare_loss_traces.py REFERENCE/log.csv OTHER/log.csv [--rtol R] [--atol A]

A step passes when |a - b| <= rtol * max(|a|, |b|) + atol for the training loss and the
validation loss; the steps and learning rates must be identical (they are computed on the host).

Why a tolerance and not equality: the same network, weights, data, noise and seed on two burn
backends (flex on the CPU, wgpu on a GPU or on lavapipe) differ only in floating-point evaluation
order: f32 sums and matrix products reduce in different orders (tiled, parallel), and exp/erf/sqrt
come from different libraries, a few ulp (f32: 1.2e-7 at 1) per operation, then carried through the
optimiser. The logged DSM loss is an excess (L - <zeta^2>) / sigma^2 with L ~ 1, a difference of
nearly equal numbers: it moves in steps of ulp(L) / sigma^2 (3e-6 for sigma = 0.2), so near its zero
crossing only an absolute tolerance makes sense. Measured on lavapipe (scripts/lavapipe_check.sh,
40 steps): |difference| <= 1.2e-5 = 4 ulp(L) / sigma^2 at every step. Defaults: rtol 1e-3 and
atol 1e-4 (about 30 ulp(L) / sigma^2): a wide margin over that, while a real fault (another
initialisation, a wrong kernel or gradient, another batch) moves the loss by 1e-3 - 1e-1 from the
first step (different initial weights gave |difference| 0.02 here).
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
    ap.add_argument("--atol", type=float, default=1e-4)
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
