#!/usr/bin/env python3
"""EPR of the paper's MIPS (systems/active/mips.toml) across system size and packing fraction.

Simulates the N series 4096 -> 8192 -> 16384 -> 32768 at phi = 0.5 and the phi series
0.1, 0.25, 0.5, 0.75, 0.9 at N = 4096 (by default; --sizes, --phis), evaluates every data set with `phaseflow epr --json` and
writes the entropy production rate per particle -- the learning-free reference -<sum div_x b_x>/N
(eps = 0: the finite g-part), and the learned value when a model is given (a local transformer,
which takes any N) -- as a CSV table and a figure.

Usage:
  python3 scripts/mips_transfer.py --phaseflow target/release/phaseflow -o transfer/ [--model DIR]
      [--sizes 4096,8192,16384,32768] [--phis 0.1,0.25,0.5,0.75,0.9] [--burn-in 40000]
      [--t-end 2000] [--every 2000] [--threads 2] [--set NAME=VALUE ...]

Cost on 2 cores: N = 4096 to 4.4e5 steps took 29 min on one thread (1.0e6 particle-steps/s, the
other core busy with other jobs); larger systems take proportionally longer per step and coarsen
more slowly (N = 4096 after 5e3 time units: largest cluster 17 %, after 4.4e4: 60 %), so the
default series is hours of CPU time.

Simulations already in the output folder are reused (delete them to redo). Each row records the
burn-in, the number of frames it averages over and the largest dense cluster's share of the
particles in the last frame (phase separation); the reference's error bar is the batch-means
standard error over frames, which does not include the slow relaxation of the cluster size.
"""
import argparse
import csv
import json
import pathlib
import subprocess



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phaseflow", required=True, help="path to the phaseflow binary")
    ap.add_argument("-o", "--out", required=True, help="output folder (data, table, figure)")
    ap.add_argument("--model", help="a trained score model (local transformer) for the learned EPR")
    ap.add_argument("--sizes", default="4096,8192,16384,32768", help="N series (at --phi0)")
    ap.add_argument("--phis", default="0.1,0.25,0.5,0.75,0.9", help="phi series (at the first N)")
    ap.add_argument("--phi0", type=float, default=0.5, help="packing fraction of the N series")
    ap.add_argument("--burn-in", type=float, default=4e4,
                    help="time units discarded (4/gamma: N = 4096 reaches a 60%% cluster)")
    ap.add_argument("--t-end", type=float, default=2000.0, help="recorded time units")
    ap.add_argument("--every", type=int, default=2000, help="steps between frames")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="further parameters of every run (the regime: v0, gamma, eps, ...)")
    args = ap.parse_args()
    exe = str(pathlib.Path(args.phaseflow).resolve())
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = pathlib.Path(__file__).resolve().parent.parent
    sizes = [int(v) for v in args.sizes.split(",")]
    series_n = [(n, args.phi0) for n in sizes]
    series_phi = [(sizes[0], float(v)) for v in args.phis.split(",")]
    rows = []
    for n, phi in series_n + [c for c in series_phi if c not in series_n]:
        regime = "".join(f"_{kv.replace('=', '')}" for kv in args.set)
        h5 = out / f"mips_N{n}_phi{phi}{regime}.h5"
        summary = h5.with_suffix(".json")
        if not (h5.exists() and summary.exists()):
            sim = subprocess.run([exe, "simulate", str(root / "systems/active/mips.toml"),
                                  "--set", f"N={n}", "--set", f"phi={phi}",
                                  *[a for kv in args.set for a in ("--set", kv)],
                                  "--burn-in", str(args.burn_in), "--t-end", str(args.t_end),
                                  "--every", str(args.every), "--seed", str(args.seed),
                                  "--threads", str(args.threads), "--json", "-o", str(h5)],
                                 check=True, capture_output=True, text=True)
            summary.write_text(sim.stdout)
        cluster = json.loads(summary.read_text())["largest_cluster_fraction"]
        cmd = [exe, "epr", "--data", str(h5), "--json", "--quiet"]
        if args.model:
            cmd += ["--model", args.model]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        learned = r.get("epr")
        row = {
            "N": n,
            "phi": phi,
            "frames": r["n_samples"],
            "burn_in": args.burn_in,
            "largest_cluster": cluster,
            "reference_per_particle": r["epr_reference"] / n,
            "reference_stderr": r["epr_reference_stderr"] / n,
            "learned_per_particle": "" if learned is None else learned / n,
            "learned_stderr": "" if learned is None else r["epr_stderr"] / n,
        }
        rows.append(row)
        print(row, flush=True)
    table = out / "mips_transfer.csv"
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {table}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, series, key, label in ((axes[0], series_n, "N", f"N (phi = {args.phi0})"),
                                   (axes[1], series_phi, "phi", f"phi (N = {sizes[0]})")):
        sel = [r for r in rows if (r["N"], r["phi"]) in series]
        xs = [r[key] for r in sel]
        ax.errorbar(xs, [r["reference_per_particle"] for r in sel],
                    yerr=[r["reference_stderr"] for r in sel], marker="o", label="learning-free")
        if args.model:
            ax.errorbar(xs, [r["learned_per_particle"] for r in sel],
                        yerr=[r["learned_stderr"] for r in sel], marker="s", label="learned")
        if key == "N":
            ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.set_ylabel("EPR per particle")
        ax.legend()
    fig.tight_layout()
    png = out / "mips_transfer.png"
    fig.savefig(png, dpi=120)
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
