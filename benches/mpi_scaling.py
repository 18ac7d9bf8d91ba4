#!/usr/bin/env python3
"""Strong and weak scaling of a particle run over MPI ranks (feature `mpi`), side by side with the
threaded run of the same binary (a benchmark script, not a test).

The system: 2-D ABP-WCA at the MIPS point of systems/active/abp_mips.toml (phi = 0.6, Pe = 150),
from its lattice start, --steps steps with one frame at the start and one at the end, so the timing
(phaseflow's own `particle_steps_per_second` of the stepping loop, the frame gathers and writes
included) is the stepping. Runs, each the best of --repeats:

  * threaded: `phaseflow simulate ... --threads T` for T = 1, 2 (no MPI);
  * MPI: `mpirun -np K phaseflow simulate ...` for K = 1, 2 (one thread per rank);
  * weak scaling: N = --n-per-rank x K particles on K ranks, efficiency E_w = t(1) / t(K);
  * strong scaling: N = --n-per-rank x 2 on K = 1, 2 ranks, efficiency E_s = t(1) / (K t(K)).

The MPI runs' `traffic` (ghost fraction, messages and bytes per step, rebuilds: from
`--json`) is printed too: the measured inputs of the communication model in the README.

Usage:
  cargo build --release --locked --features mpi     # MPICH: scripts/deps.sh --mpi
  python3 benches/mpi_scaling.py                    # N = 65536 per rank, 2000 steps
  python3 benches/mpi_scaling.py --n-per-rank 262144 --steps 500 --json
Options: --phaseflow PATH (default target/release/phaseflow), --ranks 1,2, --repeats R,
  --bind core (pin the ranks to cores: MPICH's -bind-to core), --stepping-only (the rate of
  the steps alone: runs of --steps and 2 x --steps differenced, so that the two frames with
  their observables and the start-up cancel).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


BIND = []


def run(bin_path, n, steps, ranks=None, threads=None):
    """One run; returns its --json summary."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run.h5")
        cmd = [bin_path, "simulate", os.path.join(ROOT, "systems/active/abp_mips.toml"),
               "--set", f"N={n}", "--steps", str(steps), "--every", str(steps),
               "-o", out, "--json"]
        env = dict(os.environ)
        if threads is not None:
            cmd += ["--threads", str(threads)]
        if ranks is not None:
            cmd = ["mpirun", "-np", str(ranks)] + BIND + cmd
            env.pop("RAYON_NUM_THREADS", None)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
        return json.loads(p.stdout)


STEPPING_ONLY = []


def best(repeats, bin_path, n, steps, **kw):
    """The best of `repeats` runs. With --stepping-only: the rate of the stepping alone, from the
    best runs of `steps` and `2 steps` steps (both with the same two frames and start-up), as
    N steps / (wall(2 steps) - wall(steps))."""
    runs = [run(bin_path, n, steps, **kw) for _ in range(repeats)]
    short = max(runs, key=lambda r: r["particle_steps_per_second"])
    if not STEPPING_ONLY:
        return short
    runs = [run(bin_path, n, 2 * steps, **kw) for _ in range(repeats)]
    long = max(runs, key=lambda r: r["particle_steps_per_second"])
    out = dict(long)
    out["particle_steps_per_second"] = n * steps / (long["wall_seconds"] - short["wall_seconds"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phaseflow", default=os.path.join(ROOT, "target/release/phaseflow"))
    ap.add_argument("--n-per-rank", type=int, default=65536)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--bind", default=None,
                    help="pin the MPI ranks (MPICH's -bind-to, e.g. core); default: not pinned")
    ap.add_argument("--stepping-only", action="store_true",
                    help="time the stepping alone: runs of --steps and twice as many, differenced "
                         "(the two frames, their observables and the start-up cancel)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.stepping_only:
        STEPPING_ONLY.append(True)
    if a.bind:
        BIND.extend(["-bind-to", a.bind])
    ranks = [int(k) for k in a.ranks.split(",")]
    rows = []

    def row(kind, n, k, t, r):
        rows.append({"run": kind, "N": n, "ranks": k, "threads": t,
                     "particle_steps_per_second": r["particle_steps_per_second"],
                     "wall_seconds": r["wall_seconds"], "traffic": r.get("traffic")})

    big = a.n_per_rank * max(ranks)
    for t in (1, 2):
        row("threaded", big, 1, t, best(a.repeats, a.phaseflow, big, a.steps, threads=t))
    for k in ranks:
        n = a.n_per_rank * k
        row("weak", n, k, 1, best(a.repeats, a.phaseflow, n, a.steps, ranks=k, threads=1))
    for k in ranks:
        row("strong", big, k, 1, best(a.repeats, a.phaseflow, big, a.steps, ranks=k, threads=1))

    def rate(kind, k):
        return next(r["particle_steps_per_second"] for r in rows if r["run"] == kind and r["ranks"] == k)

    summary = {}
    for k in ranks[1:]:
        # weak: the same work per rank, so the rate per rank is the measure
        summary[f"weak_efficiency_{k}"] = rate("weak", k) / (k * rate("weak", 1))
        summary[f"strong_efficiency_{k}"] = rate("strong", k) / (k * rate("strong", 1))
        thr = next(r for r in rows if r["run"] == "threaded" and r["threads"] == k)
        summary[f"mpi_{k}_ranks_over_{k}_threads"] = rate("strong", k) / thr["particle_steps_per_second"]
    if a.json:
        print(json.dumps({"rows": rows, "summary": summary}, indent=2))
        return
    what = f"stepping only ({a.steps} vs {2 * a.steps} steps)" if a.stepping_only else f"{a.steps} steps"
    print(f"2-D ABP-WCA (phi 0.6, Pe 150), {what}, best of {a.repeats}; {os.cpu_count()} cores")
    print(f"{'run':9} {'N':>8} {'ranks':>5} {'thr':>4} {'p-steps/s':>11} {'ghosts/N':>9} "
          f"{'msgs/step':>9} {'kB/step':>8} {'rebuilds':>8}")
    for r in rows:
        tr = r["traffic"] or {}
        print(f"{r['run']:9} {r['N']:>8} {r['ranks']:>5} {r['threads']:>4} "
              f"{r['particle_steps_per_second']:>11.3e} "
              f"{tr.get('ghost_fraction', float('nan')):>9.4f} "
              f"{tr.get('messages_per_step', float('nan')):>9.1f} "
              f"{tr.get('bytes_per_step', float('nan')) / 1e3:>8.1f} "
              f"{tr.get('rebuilds', '-'):>8}")
    for key, v in summary.items():
        print(f"{key}: {v:.3f}")


if __name__ == "__main__":
    main()
