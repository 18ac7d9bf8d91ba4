"""phaseflow.particles.simulate: agreement with the command line's H5MD file (bit for bit), shapes,
replicas, the optional H5MD output, a closed form (free AOUP mean-squared displacement), errors,
the memory check and Ctrl-C."""

import json
import math
import os
import pathlib
import signal
import subprocess
import threading
import time

import h5py
import numpy as np
import pytest

import phaseflow
from phaseflow import PhaseflowError, particles

ROOT = pathlib.Path(__file__).resolve().parents[2]

# (model, --set, steps, every, replicas, seed): small, fast runs of each kind of model
CASES = {
    # AOUP soft disks with pair forces (cluster fraction, g(r), packing histogram)
    "mips": ("mips", {"N": 64}, 200, 20, 2, 3),
    # ABP WCA disks (2-D orientation as unit vectors)
    "abp": ("abp_mips", {"N": 100, "Pe": 50}, 400, 40, 1, 5),
    # d = 1 ring with a fixed particle
    "ring": ("ring", {}, 1000, 50, 3, 7),
    # harmonic trap, no pair forces, a burn-in
    "trap": ("trap", {"k": 0, "N": 16, "phi": 0.01}, 600, 60, 2, 11),
}


def cli_run(phaseflow_bin, tmp_path, model, sets, *args):
    """Runs `phaseflow simulate` and returns (its file, its --json summary)."""
    out = tmp_path / "cli.h5"
    cmd = [phaseflow_bin, "simulate", model, *args, "-o", str(out), "--json"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp_path)
    return out, json.loads(res.stdout)


def datasets(path):
    """Every dataset of an HDF5 file by every name (hard links included): name -> array."""
    out = {}

    def walk(group, prefix):
        for name, obj in group.items():
            if isinstance(obj, h5py.Group):
                walk(obj, f"{prefix}{name}/")
            else:
                out[f"{prefix}{name}"] = obj[()]

    with h5py.File(path, "r") as f:
        walk(f, "")
    return out


def exact(a, b):
    """Same dtype, shape and bits."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def group(run, r):
    return "all" if run.replicas == 1 else f"replica_{r}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_arrays_equal_the_cli_file_bit_for_bit(phaseflow_bin, tmp_path, case):
    model, sets, steps, every, replicas, seed = CASES[case]
    extra = ["--burn-in", "0.1"] if case == "trap" else []
    path, summary = cli_run(phaseflow_bin, tmp_path, model, sets, "--steps", str(steps), "--every", str(every),
                            "--replicas", str(replicas), "--seed", str(seed), *extra)
    run = particles.simulate(model, set=sets, steps=steps, every=every, replicas=replicas, seed=seed,
                             burn_in=0.1 if case == "trap" else 0.0)
    cli = datasets(path)
    frames = steps // every + 1
    assert run.frames == frames and run.replicas == replicas
    for r in range(replicas):
        g = f"particles/{group(run, r)}"
        assert exact(run.position[r], cli[f"{g}/position/value"])
        assert exact(run.image[r], cli[f"{g}/image/value"])
        assert exact(run.propulsion[r], cli[f"{g}/{run.propulsion_name}/value"])
        assert exact(run.step, cli[f"{g}/position/step"]) and exact(run.time, cli[f"{g}/position/time"])
        # the box of every frame (a fixed box, stored per frame)
        assert all(exact(run.box, edges) for edges in cli[f"{g}/box/edges/value"])
        assert len(cli[f"{g}/box/edges/value"]) == frames
    # every time series of /observables and average of /analysis of the file, and no other
    names = {k.split("/")[1] for k in cli if k.startswith(("observables/", "analysis/"))}
    assert set(run.observables) == names
    for name, value in run.observables.items():
        if isinstance(value, dict):
            for k, v in value.items():
                assert exact(v, cli[f"analysis/{name}/{k}"]), (name, k)
            assert {k.split("/")[2] for k in cli if k.startswith(f"analysis/{name}/")} == set(value)
        else:
            assert exact(value, cli[f"observables/{name}/value"]), name
            assert exact(run.step, cli[f"observables/{name}/step"])
    # the --json summary, but where the run is written and how long it took
    timing = {"output", "wall_seconds", "particle_steps_per_second", "threads"}
    assert {k: v for k, v in run.summary.items() if k not in timing} == {
        k: v for k, v in summary.items() if k not in timing
    }
    assert set(run.summary) == set(summary) and run.summary["output"] is None
    with h5py.File(path, "r") as f:
        recorded = dict(f["parameters"].attrs)
    for k, v in run.parameters.items():
        assert recorded[k] == v, k


def test_shapes_dtypes_contiguity():
    run = particles.simulate("abp_mips", set={"N": 50, "Pe": 30}, steps=100, every=25, replicas=3, seed=2)
    f, m, n, d = 5, 3, 50, 2
    assert run.position.shape == (m, f, n, d) and run.position.dtype == np.float64
    assert run.image.shape == (m, f, n, d) and run.image.dtype == np.int32
    assert run.propulsion.shape == (m, f, n, d) and run.propulsion.dtype == np.float64
    assert run.propulsion_name == "orientation"
    assert run.time.shape == (f,) and run.time.dtype == np.float64
    assert run.step.shape == (f,) and run.step.dtype == np.int64
    assert run.box.shape == (d,) and run.box.dtype == np.float64
    for a in (run.position, run.image, run.propulsion, run.time, run.step, run.box):
        assert a.flags.c_contiguous
    for name in ("msd", "orientation_autocorrelation", "largest_cluster_fraction"):
        assert run.observables[name].shape == (f, m) and run.observables[name].flags.c_contiguous
    assert run.observables["radial_distribution"]["r"].shape == (100,)
    assert run.observables["local_packing_fraction"]["bin_edges"].shape == (61,)
    assert np.array_equal(run.step, np.arange(0, 101, 25))
    assert np.array_equal(run.time, run.step * run.dt)
    # wrapped into [-L/2, L/2); unit orientation vectors
    L = run.box[0]
    assert run.box[0] == run.summary["box_edge"] == run.parameters["L"]
    assert np.all(run.position >= -L / 2) and np.all(run.position < L / 2)
    np.testing.assert_allclose(np.linalg.norm(run.propulsion, axis=-1), 1.0, rtol=1e-12)
    # AOUP: propulsion g; d = 1
    ring = particles.simulate("ring", steps=10, every=5)
    assert ring.position.shape == (1, 3, 2, 1) and ring.propulsion_name == "self_propulsion"
    assert ring.propulsion.shape == (1, 3, 2, 1)
    assert set(ring.observables) == {"msd", "propulsion_autocorrelation"}


def test_replicas_are_independent_and_each_is_its_own_run():
    kw = dict(set={"N": 64}, steps=100, every=20, seed=4)
    three = particles.simulate("mips", replicas=3, **kw)
    # replicas differ from one another
    assert not np.array_equal(three.position[0], three.position[1])
    assert not np.array_equal(three.propulsion[1], three.propulsion[2])
    # replica r is the same run whatever the number of replicas: the first of three is the one
    # replica of a run with one (both are stream 0 of the seed)
    one = particles.simulate("mips", replicas=1, **kw)
    assert exact(three.position[:1], one.position) and exact(three.image[:1], one.image)
    assert exact(three.observables["msd"][:, :1], one.observables["msd"])
    # results do not depend on the thread count
    single = particles.simulate("mips", replicas=3, threads=1, **kw)
    assert exact(single.position, three.position) and exact(single.propulsion, three.propulsion)
    assert single.summary["threads"] == 1
    # another seed, another run
    assert not np.array_equal(particles.simulate("mips", replicas=1, **{**kw, "seed": 5}).position, one.position)


def test_output_writes_the_cli_file(phaseflow_bin, tmp_path):
    sets = {"N": 64}
    cli_path, _ = cli_run(phaseflow_bin, tmp_path, "mips", sets, "--t-end", "20", "--every", "20",
                          "--replicas", "2", "--seed", "3")
    out = tmp_path / "py.h5"
    run = particles.simulate("mips", set=sets, t_end=20.0, every=20, replicas=2, seed=3, output=out)
    assert out.exists() and not list(tmp_path.glob(".py.h5*")), "no partial file or lock left behind"
    assert run.summary["output"] == str(out) and run.summary["frames"] == 11
    a, b = datasets(cli_path), datasets(out)
    assert sorted(a) == sorted(b)
    for k in a:
        assert exact(a[k], b[k]), k
    # the arrays are the file's
    assert exact(run.position[1], b["particles/replica_1/position/value"])
    with h5py.File(cli_path, "r") as f, h5py.File(out, "r") as g:
        pa, pb = dict(f["parameters"].attrs), dict(g["parameters"].attrs)
        assert set(pa) == set(pb)
        for k in pa:
            if k not in ("command", "definition_path", "wall_seconds"):
                assert pa[k] == pb[k], k
        assert pb["command"].startswith("phaseflow.particles.simulate('mips', set={'N': 64}")
        assert dict(f["h5md"].attrs).keys() == dict(g["h5md"].attrs).keys()
        assert "checkpoint" not in g


def test_free_aoup_msd_closed_form():
    """Free AOUP particles (k = 0, A = 0), started in the stationary law of g (g ~ N(0, 1), which
    is how the engine draws it): per coordinate the scheme x_{n+1} = x_n + v0 g_n Δt + √(2εΔt) ξ_n,
    g_{n+1} = ρ g_n + √(1 − ρ²) η_n (ρ = e^{−γΔt}, exact OU step) gives after K steps
        Var Δx = 2 ε K Δt + v0² Δt² [K + 2 Σ_{k=1}^{K−1} (K − k) ρ^k]
    (→ 2εt + 2v0²[t/γ − (1 − e^{−γt})/γ²] as Δt → 0), so MSD(t) = d · Var Δx. The estimate
    averages |Δx|² over N·M independent particles: Δx is Gaussian, so its relative standard
    deviation is √(2/(d N M)) = 0.78 % here; we allow 5 of them (each frame's check fails by
    chance with probability < 1e-6). The propulsion autocorrelation (1/(N d)) Σ g(t)·g(0) has
    mean ρ^K and standard deviation √((1 + ρ^{2K})/(d N M)); 5 of those too."""
    N, M, d = 4096, 4, 2
    v0, gamma, eps, dt = 0.5, 0.1, 0.1, 0.05
    sets = {"N": N, "k": 0, "A": 0, "v0": v0, "gamma": gamma, "eps": eps, "dt": dt, "phi": 0.1}
    run = particles.simulate("trap", set=sets, steps=800, every=80, replicas=M, seed=12)
    assert run.parameters["k"] == 0 and run.parameters["A"] == 0
    rho = math.exp(-gamma * dt)
    # unwrapped displacements from the arrays agree with the engine's own msd observable
    L = run.box[0]
    u = run.position + run.image * L  # (M, F, N, d)
    msd_arrays = ((u - u[:, :1]) ** 2).sum(axis=-1).mean(axis=-1).T  # (F, M)
    np.testing.assert_allclose(run.observables["msd"], msd_arrays, rtol=1e-10, atol=1e-12)
    msd = run.observables["msd"].mean(axis=1)
    acf = run.observables["propulsion_autocorrelation"].mean(axis=1)
    assert msd[0] == 0.0 and acf[0] == pytest.approx(1.0, abs=5 * math.sqrt(2 / (d * N * M)))
    for K, m_hat, c_hat in zip(run.step[1:], msd[1:], acf[1:]):
        K = int(K)
        k = np.arange(1, K)
        var = 2 * eps * K * dt + v0**2 * dt**2 * (K + 2 * np.sum((K - k) * rho**k))
        expected = d * var
        sd = expected * math.sqrt(2 / (d * N * M))
        assert abs(m_hat - expected) < 5 * sd, (K, m_hat, expected, sd)
        c_expected = rho**K
        c_sd = math.sqrt((1 + rho ** (2 * K)) / (d * N * M))
        assert abs(c_hat - c_expected) < 5 * c_sd, (K, c_hat, c_expected)
    # at the last frame the ballistic and diffusive parts are both visible: t = 40 = 4/γ
    assert run.time[-1] == pytest.approx(40.0)


def test_bad_set_raises_the_cli_message(phaseflow_bin, tmp_path):
    text = (ROOT / "systems" / "active" / "mips.toml").read_text()
    path = tmp_path / "m.toml"
    path.write_text(text)
    cli = subprocess.run([phaseflow_bin, "simulate", str(path), "--set", "nope=1", "--steps", "10", "-o",
                          str(tmp_path / "x.h5")], capture_output=True, text=True)
    assert cli.returncode != 0
    with pytest.raises(PhaseflowError) as e:
        particles.simulate(str(path), set={"nope": 1}, steps=10)
    assert cli.stderr.strip() == f"error: {e.value}"
    assert "unknown parameter 'nope'" in str(e.value) and isinstance(e.value, ValueError)
    # a catalogue name: the same message
    with pytest.raises(PhaseflowError) as e2:
        particles.simulate("mips", set={"nope": 1}, steps=10)
    assert str(e2.value) == str(e.value)
    # a NaN is refused as --set refuses it
    with pytest.raises(PhaseflowError, match="not finite"):
        particles.simulate("mips", set={"v0": float("nan")}, steps=10)
    # a malformed file: file:line:column, as the command line says it
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("dt = 0.1", "dt = 0.1.2"))
    cli = subprocess.run([phaseflow_bin, "simulate", str(bad), "--steps", "10", "-o", str(tmp_path / "x.h5")],
                         capture_output=True, text=True)
    with pytest.raises(PhaseflowError) as e:
        particles.simulate(bad, steps=10)
    assert cli.stderr.strip() == f"error: {e.value}" and str(e.value).startswith(f"{bad}:")
    # TOML text
    with pytest.raises(PhaseflowError, match=r"^<string>:\d+:\d+: "):
        particles.simulate(text.replace("dt = 0.1", "dt = 0.1.2"), steps=10)
    assert particles.simulate(text, set={"N": 16}, steps=10).n_particles == 16
    # settings the command line refuses, with its messages
    with pytest.raises(PhaseflowError, match="--every 20 is longer than the 10 recorded steps"):
        particles.simulate("mips", set={"N": 16}, steps=10, every=20)
    with pytest.raises(PhaseflowError, match="--threads must be at least 1"):
        particles.simulate("mips", set={"N": 16}, steps=10, threads=0)
    with pytest.raises(PhaseflowError, match="give --steps S or --t-end T"):
        particles.simulate("mips")
    # an equation system is not a particle model, and the other way round
    with pytest.raises(PhaseflowError, match="not a particle model.*load_system"):
        particles.simulate("lorenz", steps=10)
    with pytest.raises(PhaseflowError, match="particles.simulate"):
        phaseflow.load_system("mips")


def test_warnings_are_the_cli_warnings(phaseflow_bin, tmp_path):
    sets = {"N": 16, "phi": 0.5}
    cli = subprocess.run([phaseflow_bin, "simulate", "trap", "--set", "N=16", "--set", "phi=0.5", "--steps", "10",
                          "-q", "-o", str(tmp_path / "w.h5")], check=True, capture_output=True, text=True)
    with pytest.warns(UserWarning) as caught:
        run = particles.simulate("trap", set=sets, steps=10)
    assert [f"warning: {w.message}" for w in caught] == cli.stderr.strip().splitlines()
    assert run.warnings and "under 3 trap widths" in run.warnings[0]


def test_memory_is_checked_before_anything_runs():
    start = time.monotonic()
    with pytest.raises(PhaseflowError, match=r"the recorded frames would take .* in memory \(1e12 frames × 1 replica\(s\) × 4096 particles\), more than the limit of"):
        particles.simulate("mips", steps=10**12, every=1)
    assert time.monotonic() - start < 2.0


def test_ctrl_c_interrupts_a_long_run(tmp_path):
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    out = tmp_path / "long.h5"
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # 4096 disks for 10^7 steps: hours of work
            particles.simulate("mips", steps=10**7, output=out, checkpoint_interval=0)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 5.0
    # as for the command line, the interrupted file stays partial (for --resume), never published
    assert not out.exists()
