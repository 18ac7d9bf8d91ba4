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
    ap.add_argument("--python-api", action="store_true",
                    help="time the Python package (phaseflow.flows) instead of the command line")
    args = ap.parse_args()
    if args.python_api:
        return python_api(args)

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

    dysts_times, dysts_wall = run_dysts(args, names)

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


def run_dysts(args, names):
    """Times dysts on NAMES in its own virtualenv: ({name: seconds or 'error: …'}, wall seconds)."""
    venv = args.venv or tempfile.mkdtemp(prefix="dysts-venv-")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "dysts==0.96"], check=True)
    t0 = time.perf_counter()
    d = subprocess.run([py, "-c", DYSTS_RUNNER, json.dumps(names)], capture_output=True, text=True,
                       timeout=args.timeout)
    wall = time.perf_counter() - t0
    return (json.loads(d.stdout.strip().splitlines()[-1]) if d.stdout.strip() else {}), wall


def median_seconds(f, calls):
    f()
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def python_api(args):
    """--python-api: phaseflow.flows in this interpreter against dysts, same protocol."""
    try:
        import phaseflow
        from phaseflow import flows, systems
    except ImportError as e:
        sys.exit(f"--python-api needs the phaseflow package in this interpreter "
                 f"(pip install ./python): {e}")
    names = args.systems.split(",") if args.systems else systems.get_attractor_list("continuous")
    pf_times, built = {}, {}
    for name in names:
        try:
            t0 = time.perf_counter()
            model = getattr(flows, name)()
            built[name] = time.perf_counter() - t0
            t0 = time.perf_counter()
            model.make_trajectory(1000, resample=True, pts_per_period=100)
            pf_times[name] = time.perf_counter() - t0
        except (AttributeError, phaseflow.PhaseflowError) as e:
            pf_times[name] = f"error: {e}"
    dysts_times, dysts_wall = run_dysts(args, names)

    print(f"{'system':<26} {'construct_s':>12} {'phaseflow_s':>12} {'dysts_s':>10} {'ratio':>8}")
    pf_total = dy_total = 0.0
    both = 0
    for name in names:
        p, d = pf_times.get(name), dysts_times.get(name)
        if isinstance(p, float) and isinstance(d, float):
            pf_total += p
            dy_total += d
            both += 1
            print(f"{name:<26} {built[name]:>12.4f} {p:>12.5f} {d:>10.3f} {d / max(p, 1e-9):>8.0f}")
        else:
            print(f"{name:<26} {'':>12} {str(p)[:12]:>12} {str(d)[:10]:>10}")
    print(f"total over the {both} systems both ran: phaseflow (Python API) {pf_total:.3f} s, "
          f"dysts {dy_total:.1f} s; ratio {dy_total / max(pf_total, 1e-9):.0f}x "
          f"(construction, not in the ratio: {sum(built.values()):.2f} s)")

    lorenz = flows.Lorenz()
    api = median_seconds(lambda: lorenz.make_trajectory(2), 2000)
    native = lorenz._native
    raw = median_seconds(lambda: native.trajectory(2, 100), 2000)
    print(f"call overhead: Lorenz().make_trajectory(2) median {api * 1e6:.1f} us "
          f"(native System.trajectory alone {raw * 1e6:.1f} us; goal < 50 us)")


if __name__ == "__main__":
    main()
