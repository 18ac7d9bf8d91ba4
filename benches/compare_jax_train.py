#!/usr/bin/env python3
"""Side by side: one training step of the paper-size local transformer, phaseflow against JAX.

The network and the loss are those of Boffi & Vanden-Eijnden (PNAS 2024; code nmboffi/active_pflows,
network "transformer_separate_encode" with the MIPS sweep's settings), written here from that
description with haiku and optax:

- per particle i: its 64 nearest neighbours under minimum image (top-k over all N particles of the
  perturbed configuration), 65 tokens token_j = [MLP_g(g_j), MLP_x(wrap(x_i - x_j))], each
  embedding MLP 2 -> 4 x 256 (GELU) -> 128;
- 4 post-LayerNorm encoder blocks: x = LN(x + MHA(x)), x = LN(x + Linear(GELU(Linear(x)))),
  width 256, 4 heads of 64, feed-forward 256;
- token 0 read out through an MLP 256 -> 4 x 256 (GELU) -> 2 = s_{g_i};  2 308 866 parameters;
- denoising score matching on x and g (sigma = 0.01), antithetic: for each of the 1024 sampled
  particles of a step the network runs on z + sigma*zeta and on z - sigma*zeta (2048 evaluations of
  65 tokens), loss sum_pm |s|^2 +- 2 s.zeta_g/sigma; value_and_grad, then RAdam (optax) after
  global-norm clipping at 1.0, then the EMA of the parameters (0.9999) — the authors' step.

phaseflow runs `phaseflow train benches/configs/mips_paper.toml` (same network, loss, batch,
optimiser, EMA) on a 1024-particle MIPS file it simulates first; its rate is end to end: the
process's wall time (start-up, data loading, validation, checkpoint and model files included)
divided into steps x batch. The summary's own `samples_per_second` (the training loop) is printed
too. Network-only rate: `cargo bench --bench score`.

Usage: python3 benches/compare_jax_train.py [--phaseflow PATH] [--threads 1,2] [--steps 3]
           [--jax-seconds 60]
The script creates a throwaway virtualenv (/tmp/phaseflow-jax-venv) with `jax[cpu]`, `dm-haiku`
and `optax` from PyPI on first use and runs its JAX part inside it. Threads: `taskset` pins each
run to the first t cores (XLA and burn's rayon pool both size themselves from the cores they may
use). Prints samples/s (particle-samples per second, each = one ± pair) and the ratio.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

VENV = "/tmp/phaseflow-jax-venv"
# the paper's MIPS network and step (see the module docstring)
NET = dict(neighbours=64, width=256, heads=4, blocks=4, feed_forward=256, embed_hidden=4,
           embed_neurons=256, sigma=0.01, batch=1024, lr=1e-4, clip=1.0, ema=0.9999)
N_PARTICLES, PHI = 1024, 0.5


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    probe = subprocess.run([py, "-c", "import jax, haiku, optax"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "jax[cpu]", "dm-haiku", "optax"],
                       check=True)
    return py


def cpus(threads):
    return ",".join(str(c) for c in range(threads))


def jax_worker(seconds):
    """Runs inside the virtualenv: prints {"rate": samples/s, ...} as JSON."""
    import haiku as hk
    import jax
    import jax.numpy as jnp
    import numpy as onp
    import optax
    from jax import lax

    c = NET
    n, d, k = N_PARTICLES, 2, c["neighbours"]
    length = math.sqrt(n * math.pi / PHI)  # box side 2w, R = 1

    def mlp(hidden, neurons, out, name):
        layers = []
        for layer in range(hidden):
            layers += [hk.Linear(neurons, name=f"{name}_{layer}"), jax.nn.gelu]
        return hk.Sequential(layers + [hk.Linear(out, name=f"{name}_{hidden}")])

    def block(x, b):
        mha = hk.MultiHeadAttention(num_heads=c["heads"], key_size=c["width"] // c["heads"],
                                    w_init=hk.initializers.VarianceScaling(), name=f"mha_{b}")
        x = hk.LayerNorm(-1, True, True, name=f"ln1_{b}")(x + mha(x, x, x))
        ff = mlp(1, c["feed_forward"], c["width"], f"ff_{b}")
        return hk.LayerNorm(-1, True, True, name=f"ln2_{b}")(x + ff(x))

    def particle_score(gi, xdiffs, gs):
        """s_{g_i} from g_i [d], wrap(x_i - x_j) [N, d], g_j [N, d]."""
        emb_g = mlp(c["embed_hidden"], c["embed_neurons"], c["width"] // 2, "g_embedding")
        emb_x = mlp(c["embed_hidden"], c["embed_neurons"], c["width"] // 2, "x_embedding")
        inds = lax.top_k(-jnp.linalg.norm(xdiffs, axis=1), k + 1)[1]
        eg, ex = emb_g(gs[inds]), emb_x(xdiffs[inds])
        first = jnp.concatenate((emb_g(gi), ex[0]))
        h = jnp.vstack((first, jnp.hstack((eg[1:], ex[1:]))))
        for b in range(c["blocks"]):
            h = block(h, b)
        return mlp(c["embed_hidden"], c["embed_neurons"], d, "decoder")(h[0])

    net = hk.without_apply_rng(hk.transform(particle_score))

    def wrapped(v):
        return v - length * jnp.round(v / length)

    def particle_loss(params, xgs, zetas, i):
        loss = 0.0
        for sign in (-1.0, 1.0):
            p = xgs + c["sigma"] * sign * zetas
            xs, gs = p[:n], p[n:]
            xdiffs = wrapped(xs[i] - xs)
            s = net.apply(params, gs[i], xdiffs, gs)
            loss += jnp.sum(s * s + 2.0 * s * sign * zetas[n + i] / c["sigma"])
        return loss

    def loss_fn(params, xgs, zetas, inds):
        return jnp.mean(jax.vmap(particle_loss, (None, None, None, 0))(params, xgs, zetas, inds))

    opt = optax.chain(optax.clip_by_global_norm(c["clip"]), optax.radam(c["lr"]))

    @jax.jit
    def update(params, opt_state, ema, xgs, zetas, inds):
        loss, grads = jax.value_and_grad(loss_fn)(params, xgs, zetas, inds)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ema = jax.tree_util.tree_map(lambda e, p: c["ema"] * e + (1 - c["ema"]) * p, ema, params)
        return params, opt_state, ema, loss

    rng = onp.random.default_rng(0)
    xs = (rng.random((n, d)) - 0.5) * length
    gs = rng.standard_normal((n, d))
    xgs = jnp.asarray(onp.concatenate((xs, gs)), jnp.float32)
    params = net.init(jax.random.PRNGKey(0), xgs[n], wrapped(xgs[0] - xgs[:n]), xgs[n:])
    n_params = sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
    opt_state, ema = opt.init(params), params

    def one_step(params, opt_state, ema):
        zetas = jnp.asarray(rng.standard_normal((2 * n, d)), jnp.float32)
        inds = jnp.asarray(rng.permutation(n)[: c["batch"]])
        out = update(params, opt_state, ema, xgs, zetas, inds)
        jax.block_until_ready(out)
        return out

    t0 = time.perf_counter()
    params, opt_state, ema, _ = one_step(params, opt_state, ema)  # compile and first step
    compile_s = time.perf_counter() - t0
    steps, t0 = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - t0 < seconds:
        params, opt_state, ema, loss = one_step(params, opt_state, ema)
        steps += 1
    elapsed = time.perf_counter() - t0
    print(json.dumps({"rate": steps * c["batch"] / elapsed, "steps": steps, "seconds": elapsed,
                      "first_step_s": compile_s, "parameters": n_params,
                      "jax": jax.__version__, "haiku": hk.__version__, "optax": optax.__version__,
                      "loss": float(loss)}))


def run_jax(py, threads, seconds):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
        f"intra_op_parallelism_threads={threads}"
    )
    out = subprocess.run(
        ["taskset", "-c", cpus(threads), py, __file__, "--worker", str(seconds)],
        env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_phaseflow(exe, config, data, threads, steps):
    """End-to-end samples/s of `phaseflow train` (wall time of the process) and its summary."""
    with open(config) as f:
        text = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "train.toml")
        with open(cfg, "w") as f:
            f.write(text.replace("steps = 3", f"steps = {steps}"))
        t0 = time.perf_counter()
        out = subprocess.run(
            ["taskset", "-c", cpus(threads), exe, "train", cfg, "--data", data, "-o",
             os.path.join(tmp, "model"), "--json"],
            capture_output=True, text=True, check=True,
        )
        wall = time.perf_counter() - t0
    summary = json.loads(out.stdout)
    return steps * NET["batch"] / wall, summary


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        jax_worker(float(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--phaseflow", default=os.path.join(repo, "target", "release", "phaseflow"),
                    help="the phaseflow binary (default: target/release/phaseflow of this "
                    "repository; build it first with `cargo build --release`)")
    ap.add_argument("--config", default=os.path.join(repo, "benches", "configs", "mips_paper.toml"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=3, help="phaseflow training steps per run")
    ap.add_argument("--jax-seconds", type=float, default=60.0,
                    help="wall time of the timed JAX steps (at least 2 steps; after compilation)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each side, interleaved")
    args = ap.parse_args()
    py = ensure_venv()
    tmp = tempfile.mkdtemp()
    try:
        data = os.path.join(tmp, "mips.h5")
        subprocess.run([args.phaseflow, "simulate", "mips", "--set", f"N={N_PARTICLES}",
                        "--steps", "2000", "--every", "100", "-o", data],
                       capture_output=True, check=True)
        print(f"{'threads':>7} {'phaseflow e2e':>14} {'(loop)':>8} {'JAX':>8} {'ratio':>7}"
              f"   parameters phaseflow / JAX")
        for t in [int(s) for s in args.threads.split(",")]:
            for _ in range(args.repeat):
                pf, summary = run_phaseflow(args.phaseflow, args.config, data, t, args.steps)
                jx = run_jax(py, t, args.jax_seconds)
                print(f"{t:>7} {pf:>14.1f} {summary['samples_per_second']:>8.1f} "
                      f"{jx['rate']:>8.1f} {pf / jx['rate']:>7.2f}   "
                      f"{summary['parameters']} / {jx['parameters']}", flush=True)
        print(f"jax {jx['jax']}, dm-haiku {jx['haiku']}, optax {jx['optax']}; "
              f"JAX timed {jx['steps']} steps after a first (compiling) step of "
              f"{jx['first_step_s']:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
