#!/usr/bin/env python3
"""Explore the AOUP MIPS parameters (systems/active/mips.toml) for a regime where the score is learnable.

For every point (N, phi, v0, gamma, eps; the rest as the file: k = 1, beta = 7.5, dt = 0.1) it
simulates a training run (seed S) and, with --train, a held-out run (seed S + 1), records the
largest dense cluster's share over the recorded frames (mean, min, the means of the first and the
second half), the shares of particles whose local packing fraction is below 0.4 (dilute) and above
0.75 (dense) — phase separated when the largest cluster stays >= 0.5 and both phases hold
particles (>= 10 % dilute, >= 30 % dense: the cluster threshold 0.65 alone also counts a
homogeneous fluid at phi >= 0.65), the learning-free EPR per particle
(`phaseflow epr --data --json`: <|b_x|^2>/eps + <div_x b_x>, or -<div_x b_x> for eps = 0), and with
--train CONFIG a trained model's EPR on the held-out frames against that run's reference, with the
stationarity diagnostics; the CPU minutes of each stage. Each point appends one row to the CSV
(default notebooks/mips_exploration.csv), so the file records every point tried.

Usage:
  python3 scripts/mips_explore.py --phaseflow target/test-opt/phaseflow -o /tmp/explore \
      --point N=1024,phi=0.5,v0=0.1,gamma=1e-3,eps=1e-3 [--point ...] \
      [--burn-in 20000] [--t-end 10000] [--every 1000] [--train notebooks/configs/mips_learnable.toml]
"""
import argparse
import csv
import json
import pathlib
import resource
import subprocess
import time

import h5py
import numpy as np

FIELDS = ["N", "phi", "v0", "gamma", "eps", "pe", "burn_in", "t_end", "frames", "seed",
          "cluster_mean", "cluster_min", "cluster_first_half", "cluster_second_half",
          "dilute_share", "dense_share", "separated", "reference_per_particle", "reference_stderr",
          "learned_per_particle", "learned_stderr", "heldout_reference_per_particle",
          "heldout_reference_stderr", "learned_over_reference", "diag_v_dot_s",
          "diag_fp_residual", "train_config", "sim_cpu_min", "train_cpu_min", "note"]


def train_minutes(model: pathlib.Path) -> float:
    """Wall minutes of a finished training from its log.csv (steps x batch / samples per second
    over each logged interval; the batch from the model's config.toml)."""
    import tomllib
    batch = tomllib.loads((model / "config.toml").read_text())["training"]["batch"]
    with (model / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    total, prev = 0.0, 0
    for r in rows:
        step = int(r["step"])
        total += (step - prev) * batch / float(r["samples_per_second"])
        prev = step
    return total / 60


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phaseflow", required=True)
    ap.add_argument("-o", "--out", required=True, help="folder for the data and models")
    ap.add_argument("--point", action="append", required=True,
                    help="comma-separated NAME=VALUE (N, phi, v0, gamma, eps, ...)")
    ap.add_argument("--burn-in", type=float, default=2e4, help="time units discarded")
    ap.add_argument("--t-end", type=float, default=1e4, help="recorded time units")
    ap.add_argument("--every", type=int, default=1000, help="steps between frames")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train", help="training file: also train and evaluate on a held-out run")
    ap.add_argument("--note", default="")
    ap.add_argument("--csv", default=str(pathlib.Path(__file__).resolve().parent.parent
                                         / "notebooks" / "mips_exploration.csv"))
    args = ap.parse_args()
    exe = str(pathlib.Path(args.phaseflow).resolve())
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = pathlib.Path(__file__).resolve().parent.parent
    table = pathlib.Path(args.csv)
    new = not table.exists()
    for spec in args.point:
        p = dict(kv.split("=", 1) for kv in spec.split(","))
        tag = "_".join(f"{k}{v}" for k, v in sorted(p.items()))
        sets = [a for k, v in sorted(p.items()) for a in ("--set", f"{k}={v}")]

        def simulate(seed):
            h5 = out / f"{tag}_seed{seed}.h5"
            if not h5.exists():
                run([exe, "simulate", root / "systems/active/mips.toml", *sets,
                     "--burn-in", args.burn_in, "--t-end", args.t_end, "--every", args.every,
                     "--seed", seed, "--threads", args.threads, "--quiet", "-o", h5])
            return h5

        t0 = children_cpu()
        data = simulate(args.seed)
        held = simulate(args.seed + 1) if args.train else None
        sim_cpu = children_cpu() - t0
        with h5py.File(data, "r") as f:
            cl = f["observables/largest_cluster_fraction/value"][:, 0]
            n = f["particles/all/position/value"].shape[1]
            # local packing fractions over the recorded frames: coexistence shows as weight
            # both well below and well above the mean (dilute < 0.4, dense > 0.75)
            edges = f["analysis/local_packing_fraction/bin_edges"][:]
            dens = f["analysis/local_packing_fraction/density"][:]
        w = dens * np.diff(edges)
        w = w / w.sum()
        mid = 0.5 * (edges[1:] + edges[:-1])
        dilute, dense = float(w[mid < 0.4].sum()), float(w[mid > 0.75].sum())
        half = len(cl) // 2
        ref = json.loads(run([exe, "epr", "--data", data, "--json", "--quiet"]))
        row = {
            "N": n, "phi": p.get("phi", 0.5), "v0": p.get("v0", 0.025),
            "gamma": p.get("gamma", 1e-4), "eps": p.get("eps", 0.0),
            "pe": float(p.get("v0", 0.025)) / (2 * float(p.get("gamma", 1e-4))),
            "burn_in": args.burn_in, "t_end": args.t_end, "frames": len(cl), "seed": args.seed,
            "cluster_mean": cl.mean(), "cluster_min": cl.min(),
            "cluster_first_half": cl[:half].mean(), "cluster_second_half": cl[half:].mean(),
            "dilute_share": dilute, "dense_share": dense,
            "separated": bool(cl.min() >= 0.5 and dilute >= 0.1 and dense >= 0.3),
            "reference_per_particle": ref["epr_reference"] / n,
            "reference_stderr": ref["epr_reference_stderr"] / n,
            "sim_cpu_min": sim_cpu / 60, "note": args.note,
        }
        if args.train:
            model = out / f"{tag}_model"
            t1 = children_cpu()
            if not (model / "model.bpk").exists():
                run([exe, "train", args.train, "--data", data, "-o", model, "--quiet"])
                row["train_cpu_min"] = (children_cpu() - t1) / 60
            else:
                # a model trained before (by this script or by hand): its training time from its
                # log (wall time of the logged intervals, all threads)
                row["train_cpu_min"] = train_minutes(model)
            row["train_config"] = pathlib.Path(args.train).name
            r = json.loads(run([exe, "epr", "--model", model, "--data", held, "--json",
                                "--quiet"]))
            row.update({
                "learned_per_particle": r["epr"] / n,
                "learned_stderr": r["epr_stderr"] / n,
                "heldout_reference_per_particle": r["epr_reference"] / n,
                "heldout_reference_stderr": r["epr_reference_stderr"] / n,
                "learned_over_reference": r["epr"] / r["epr_reference"],
                # stationarity identities of the exact score, for the whole configuration:
                # E[v.s] = 0 and E[div v + v.s] = 0 (their errors: `phaseflow epr --json`)
                "diag_v_dot_s": r["mean_v_dot_s"],
                "diag_fp_residual": r["diagnostics"].get("residual_mean"),
            })
        with table.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS)
            if new:
                w.writeheader()
                new = False
            w.writerow({k: row.get(k, "") for k in FIELDS})
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
