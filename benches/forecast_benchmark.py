#!/usr/bin/env python3
"""The full forecasting benchmark (issue: "finishes in under 15 minutes on 2 cores"), timed, with
the median sMAPE of every native model beside the PRR 2023 medians (Gilpin 2023, short protocol).

    cargo build --release
    python3 benches/forecast_benchmark.py [--phaseflow target/release/phaseflow] [--out DIR]
        [--systems all] [--dysts-style]

--dysts-style adds a second run in which NVAR, ESN and the linear model are pinned to the
configurations of dysts' PRR 2023 benchmark scripts (reservoirpy NVAR with order = 1 on raw values
predicting the next value; reservoirpy ESN with 500 units, spectral radius 0.99, leak 0.3, input
scaling 1, ridge 1e-4, connectivity 0.1, raw values, next value; linear regression on raw values),
on the same data sets — the measurement behind the README's explanation of the gap between our
tuned models and the published medians.
"""
import argparse
import csv
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRR2023 = {"nvar": 69.7, "esn": 77.5, "linear": 94.4}

DYSTS_STYLE = [
    "nvar.order=1", "nvar.increment=0", "nvar.standardise=0", "nvar.skip=1",
    "esn.units=500", "esn.radius=0.99", "esn.leak=0.3", "esn.input=1", "esn.ridge=1e-4",
    "esn.increment=0", "esn.standardise=0", "esn.degree=50", "esn.bias=0",
    "linear.standardise=0",
]


def medians(out: pathlib.Path, metric: str = "smape") -> dict:
    with open(out / "leaderboard.csv") as f:
        return {r["model"]: float(r["median"]) for r in csv.DictReader(f) if r["metric"] == metric}


def run(exe: str, out: pathlib.Path, extra: list) -> float:
    t0 = time.time()
    subprocess.run([exe, "forecast", "bench", "-o", str(out), "-q"] + extra, check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phaseflow", default=str(ROOT / "target" / "release" / "phaseflow"))
    ap.add_argument("--out", default="forecast-bench")
    ap.add_argument("--systems", default="all")
    ap.add_argument("--dysts-style", action="store_true")
    args = ap.parse_args()
    out = pathlib.Path(args.out).resolve()
    if out.exists() and any(out.iterdir()):
        print(f"{out} exists: results there are reused (delete it for a fresh timing)", file=sys.stderr)
    secs = run(args.phaseflow, out, ["--systems", args.systems])
    med = medians(out)
    vpt = medians(out, "vpt_lyapunov")
    print(f"short protocol, systems = {args.systems}: {secs:.0f} s on {os.cpu_count()} cores "
          f"(goal: < 900 s on 2 cores)\n")
    print(f"{'model':18s} {'median sMAPE':>13s} {'PRR 2023':>9s} {'gap':>7s} {'median VPT (Lyap.)':>19s}")
    for m, v in sorted(med.items(), key=lambda kv: kv[1]):
        ref = PRR2023.get(m)
        gap = f"{v - ref:+.1f}" if ref is not None else ""
        print(f"{m:18s} {v:13.1f} {ref if ref is not None else '':>9} {gap:>7s} {vpt.get(m, float('nan')):19.2f}")
    if args.dysts_style:
        out2 = out.parent / (out.name + "-dysts-style")
        out2.mkdir(parents=True, exist_ok=True)
        if not (out2 / "data").exists():
            os.symlink(out / "data", out2 / "data")
        extra = ["--systems", args.systems, "--models", "nvar,esn,linear"]
        for h in DYSTS_STYLE:
            extra += ["--hyper", h]
        secs2 = run(args.phaseflow, out2, extra)
        med2 = medians(out2)
        print(f"\ndysts-style configurations (same data, {secs2:.0f} s):")
        for m in ["nvar", "esn", "linear"]:
            print(f"{m:18s} {med2.get(m, float('nan')):13.1f} {PRR2023[m]:>9} {med2.get(m, float('nan')) - PRR2023[m]:+7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
