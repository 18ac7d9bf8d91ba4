#!/usr/bin/env python3
"""Side by side: phaseflow's MIPS against an all-pairs JAX simulator with the authors' semantics.

The paper's system (Boffi & Vanden-Eijnden, PNAS 2024; `systems/active/mips.toml`): 2-D AOUPs,
dx = (v0 g + k Σ_j F(x_i − x_j) − A x) dt + √(2ε) dW, dg = −γ g dt + √(2γ) dB,
F(r) = softplus_β(2R − |r|) r/|r|, periodic box [−w, w)² with w = √(N π R²/φ)/2.
The JAX step follows the semantics of the authors' simulator (nmboffi/active_pflows: all pairs,
no cut-off, float32, Euler–Maruyama in x, the exact OU step in g, jit-compiled); the code is
written here. The force is summed over row blocks of 2048 particles (`lax.map`) so that
N = 16384 fits in memory; every pair is still evaluated.

Usage: python3 benches/compare_jax_mips.py [--phaseflow PATH] [--sizes 4096,16384]
           [--threads 1,2]
The script creates a throwaway virtualenv (/tmp/phaseflow-jax-venv) with `jax[cpu]` from PyPI
on first use and re-runs its JAX part inside it. Threads: `taskset` pins each run to the first
t cores (phaseflow also gets `--threads t`; XLA sizes its pool from the cores it may use).
Prints particle-steps/s of both and the ratio.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

VENV = "/tmp/phaseflow-jax-venv"
PARAMS = dict(phi=0.5, v0=0.025, gamma=1e-4, eps=0.0, k=1.0, A=0.0, R=1.0, beta=7.5, dt=0.1)


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    probe = subprocess.run([py, "-c", "import jax"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "jax[cpu]"], check=True)
    return py


def cpus(threads):
    return ",".join(str(c) for c in range(threads))


def jax_worker(n, steps):
    """Runs inside the virtualenv: prints {"rate": particle-steps/s} as JSON."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    p = PARAMS
    w = math.sqrt(n * math.pi * p["R"] ** 2 / p["phi"]) / 2
    length = 2 * w
    dt, beta, r0 = p["dt"], p["beta"], 2 * p["R"]
    decay = math.exp(-p["gamma"] * dt)
    sg = math.sqrt(1 - decay * decay)
    sx = math.sqrt(2 * p["eps"] * dt)
    block = min(n, 2048)
    f32 = jnp.float32

    def torus(x):
        return x - length * jnp.round(x / length)

    def block_force(xb, x):
        r = torus(xb[:, None, :] - x[None, :, :])  # [B, N, 2]
        d = jnp.sqrt(jnp.sum(r * r, axis=-1))
        safe = jnp.where(d > 0, d, 1.0)
        mag = p["k"] * jax.nn.softplus(beta * (r0 - safe)) / beta
        mag = jnp.where(d > 0, mag / safe, 0.0)
        return jnp.sum(mag[..., None] * r, axis=1)

    def force(x):
        blocks = x.reshape(n // block, block, 2)
        return lax.map(lambda xb: block_force(xb, x), blocks).reshape(n, 2)

    def step(carry, _):
        x, g, key = carry
        key, kx, kg = jax.random.split(key, 3)
        xi = jax.random.normal(kx, x.shape, f32)
        eta = jax.random.normal(kg, g.shape, f32)
        drift = p["v0"] * g + force(x) - p["A"] * x
        x = torus(x + dt * drift + sx * xi)
        g = decay * g + sg * eta
        return (x, g, key), None

    @jax.jit
    def run(x, g, key):
        return lax.scan(step, (x, g, key), None, length=steps)[0]

    key = jax.random.PRNGKey(0)
    k1, k2, key = jax.random.split(key, 3)
    side = math.ceil(math.sqrt(n))
    grid = (jnp.arange(n) % side, jnp.arange(n) // side)
    x = jnp.stack([(grid[0] + 0.5) / side, (grid[1] + 0.5) / side], axis=1) * length - w
    x = (x + 0.05 * jax.random.normal(k1, (n, 2))).astype(f32)
    g = jax.random.normal(k2, (n, 2), f32)
    jax.block_until_ready(run(x, g, key))  # compile and warm up
    t0 = time.perf_counter()
    jax.block_until_ready(run(x, g, key))
    elapsed = time.perf_counter() - t0
    print(json.dumps({"rate": n * steps / elapsed, "seconds": elapsed, "steps": steps}))


def run_jax(py, n, threads, steps):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
        f"intra_op_parallelism_threads={threads}"
    )
    out = subprocess.run(
        ["taskset", "-c", cpus(threads), py, __file__, "--worker", str(n), str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["rate"]


def run_phaseflow(exe, n, threads, steps):
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["taskset", "-c", cpus(threads), exe, "simulate", "mips", "--set", f"N={n}",
             "--steps", str(steps), "--every", str(steps), "--threads", str(threads),
             "--json", "-o", os.path.join(tmp, "mips.h5")],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout)["particle_steps_per_second"]


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        jax_worker(int(sys.argv[2]), int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--phaseflow", default=os.path.join(repo, "target", "release", "phaseflow"),
                    help="the phaseflow binary (default: target/release/phaseflow of this "
                    "repository; build it first with `cargo build --release`)")
    ap.add_argument("--sizes", default="4096,16384")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=2000, help="phaseflow steps per run")
    ap.add_argument("--jax-seconds", type=float, default=20.0,
                    help="rough wall time per timed JAX run (its step count is chosen from it)")
    args = ap.parse_args()
    py = ensure_venv()
    print(f"{'N':>6} {'threads':>7} {'phaseflow':>12} {'JAX f32':>12} {'ratio':>8}")
    for n in [int(s) for s in args.sizes.split(",")]:
        for t in [int(s) for s in args.threads.split(",")]:
            # a rough JAX rate (7.5e3 particle-steps/s at N = 4096 on one core, ∝ 1/N) sets the steps
            guess = 7.5e3 * 4096 / n * t
            jsteps = max(2, int(args.jax_seconds * guess / n))
            pf = run_phaseflow(args.phaseflow, n, t, args.steps)
            jx = run_jax(py, n, t, jsteps)
            print(f"{n:>6} {t:>7} {pf:>12.3e} {jx:>12.3e} {pf / jx:>7.0f}x", flush=True)


if __name__ == "__main__":
    main()
