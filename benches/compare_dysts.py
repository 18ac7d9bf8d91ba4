#!/usr/bin/env python3
"""Times the whole catalogue in phaseflow against dysts (a comparison script, not a test).

For every flow of the catalogue both tools produce 1000 points at 100 points per period from the
default initial condition at rtol = atol = 1e-12:
  * dysts: `make_trajectory(1000, resample=True, pts_per_period=100)` (SciPy Radau), one call per
    system, in a throwaway virtualenv (`pip install dysts`), created by this script in a
    temporary directory (or reused with --venv DIR);
  * phaseflow: `phaseflow catalogue check --rtol 1e-12 --atol 1e-12` (same protocol; DOP853),
    whose per-system wall times are summed, plus the whole command's wall time.
Prints per-system times and the ratio of the totals.

Usage: python3 benches/compare_dysts.py [--phaseflow target/release/phaseflow] [--systems Lorenz,Rossler]
       [--venv /tmp/dysts-venv] [--timeout 120]
"""
import argparse, json, os, pathlib, subprocess, sys, tempfile, time

ROOT = pathlib.Path(__file__).resolve().parent.parent

DYSTS_RUNNER = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import dysts.flows as flows
names = json.loads(sys.argv[1])
out = {}
for name in names:
    try:
        model = getattr(flows, name)()
        t0 = time.perf_counter()
        sol = model.make_trajectory(1000, resample=True, pts_per_period=100)
        out[name] = time.perf_counter() - t0
    except Exception as e:
        out[name] = "error: %s" % e
print(json.dumps(out))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phaseflow", default=str(ROOT / "target" / "release" / "phaseflow"))
    ap.add_argument("--systems", default=None, help="comma-separated dysts names (default: all flows and delay equations of systems/)")
    ap.add_argument("--venv", default=None)
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()

    check = subprocess.run([args.phaseflow, "catalogue", "check", "--rtol", "1e-12", "--atol", "1e-12", "--json"]
                           + (["--systems", args.systems] if args.systems else []),
                           capture_output=True, text=True, cwd=ROOT)
    t0 = time.perf_counter()
    check = subprocess.run([args.phaseflow, "catalogue", "check", "--rtol", "1e-12", "--atol", "1e-12", "--json"]
                           + (["--systems", args.systems] if args.systems else []),
                           capture_output=True, text=True, cwd=ROOT)
    pf_wall = time.perf_counter() - t0
    results = [r for r in json.loads(check.stdout) if r["kind"] in ("flow", "dde")]
    names = [r["system"] for r in results]

    venv = args.venv or tempfile.mkdtemp(prefix="dysts-venv-")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "dysts"], check=True)
    t0 = time.perf_counter()
    d = subprocess.run([py, "-c", DYSTS_RUNNER, json.dumps(names)], capture_output=True, text=True,
                       timeout=args.timeout)
    dysts_wall = time.perf_counter() - t0
    dysts_times = json.loads(d.stdout.strip().splitlines()[-1]) if d.stdout.strip() else {}

    print(f"{'system':<26} {'phaseflow_s':>12} {'dysts_s':>10} {'ratio':>8}")
    pf_total = dy_total = 0.0
    for r in results:
        dt = dysts_times.get(r["system"])
        pf_total += r["wall_seconds"]
        if isinstance(dt, float):
            dy_total += dt
            print(f"{r['system']:<26} {r['wall_seconds']:>12.4f} {dt:>10.3f} {dt / max(r['wall_seconds'], 1e-9):>8.0f}")
        else:
            print(f"{r['system']:<26} {r['wall_seconds']:>12.4f} {str(dt):>10}")
    print(f"total: phaseflow {pf_total:.3f} s summed per system ({pf_wall:.3f} s wall, parallel), "
          f"dysts {dy_total:.1f} s summed ({dysts_wall:.1f} s wall); ratio of walls {dysts_wall / pf_wall:.0f}x")


if __name__ == "__main__":
    main()
