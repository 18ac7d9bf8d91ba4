"""phaseflow.invariants, phaseflow.epr, phaseflow.train: equality with the command line's --json
output and files for the same settings, closed forms, errors, Ctrl-C."""

import json
import math
import os
import re
import signal
import subprocess
import threading
import time

import h5py
import numpy as np
import pytest

import phaseflow
from phaseflow import PhaseflowError
from phaseflow.flows import Lorenz

# a small score network trained for seconds: an MLP 16 × 16, implicit score matching
TRAIN_TOML = """[network]
kind = "mlp"
hidden = [16, 16]

[loss]
kind = "ism"

[training]
steps = 60
batch = 64
lr = 3e-3
warmup = 5
ema = 0.9
log_every = 10
checkpoint_every = 25
seed = 3
"""

TRAIN_DICT = {
    "network": {"kind": "mlp", "hidden": [16, 16]},
    "loss": {"kind": "ism"},
    "training": {"steps": 60, "batch": 64, "lr": 3e-3, "warmup": 5, "ema": 0.9, "log_every": 10,
                 "checkpoint_every": 25, "seed": 3},
}


def cli(phaseflow_bin, *args, cwd=None):
    """`phaseflow ARGS` (must succeed): its standard output."""
    r = subprocess.run([phaseflow_bin, *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def cli_error(phaseflow_bin, *args):
    """The message of a failing `phaseflow ARGS` (after `error: `)."""
    r = subprocess.run([phaseflow_bin, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ")
    return line[len("error: "):]


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def assert_same(py, want, skip=()):
    """`py` (phaseflow's dict, arrays as NumPy) equals the JSON value `want` exactly."""
    if isinstance(want, dict):
        assert isinstance(py, dict) and set(py) == set(want), (sorted(py), sorted(want))
        for k in want:
            if k not in skip:
                assert_same(py[k], want[k], skip)
    elif isinstance(want, list) and all(x is None or isinstance(x, (int, float)) for x in want):
        assert isinstance(py, np.ndarray) and py.flags.c_contiguous
        assert py.dtype in (np.float64, np.int64)
        w = np.array([np.nan if x is None else x for x in want], dtype=np.float64)
        assert np.array_equal(py.astype(np.float64), w, equal_nan=True), (py, want)
    elif isinstance(want, list):
        assert len(py) == len(want)
        for a, b in zip(py, want):
            assert_same(a, b, skip)
    else:
        assert py == want, (py, want)


def masked_bpk(path):
    """A burn record file with its random parameter ids zeroed (they differ between any two runs,
    of the command line too; the tensors and everything else must not)."""
    with open(path, "rb") as f:
        data = f.read()
    return re.sub(rb"hparam_id\x1b.{8}", b"hparam_id\x1b" + bytes(8), data, flags=re.S)


def log_columns(path):
    """log.csv without its timing column (samples/s)."""
    with open(path) as f:
        return [line.rsplit(",", 1)[0] for line in f.read().splitlines()]


@pytest.fixture(scope="module")
def data(phaseflow_bin, tmp_path_factory):
    """Samples from the command line: the bead-spring SDE (4 members × 801 frames) and the linear
    trap (one AOUP, k = 0, v0 = 0.5; 32 replicas × 41 frames); a training file."""
    d = tmp_path_factory.mktemp("data")
    cli(phaseflow_bin, "simulate", "systems/linear/bead_spring_2.toml", "--t-end", "400", "--dt-out", "0.5",
        "--burn-in", "10", "--ensemble", "4", "--seed", "1", "-o", d / "bs.h5", cwd=ROOT)
    cli(phaseflow_bin, "simulate", "systems/active/trap.toml", "--set", "N=1", "--set", "k=0", "--set", "v0=0.5",
        "--set", "dt=0.01", "--replicas", "32", "--burn-in", "100", "--t-end", "200", "--every", "500",
        "--seed", "3", "-o", d / "trap.h5", cwd=ROOT)
    (d / "train.toml").write_text(TRAIN_TOML)
    return d


# -- invariants -------------------------------------------------------------------------------


def test_invariants_equal_the_cli_and_known_answers(phaseflow_bin):
    args = ("--t-end", "500", "--correlation-points", "2000")
    want = json.loads(cli(phaseflow_bin, "invariants", "lorenz", *args, "--json"))
    got = phaseflow.invariants("lorenz", t_end=500, correlation_points=2000)
    # the same code path: every number bit for bit (wall_seconds is a timing)
    assert_same(got, want, skip=("wall_seconds",))
    assert got["lyapunov_spectrum"].shape == (3,) and got["lyapunov_spectrum"].dtype == np.float64
    # a system object, with parameters applied to a copy
    sys = Lorenz()
    assert_same(phaseflow.invariants(sys, t_end=500, correlation_points=2000), want, skip=("wall_seconds",))
    want35 = json.loads(cli(phaseflow_bin, "invariants", "lorenz", "--set", "rho=35", "--t-end", "200",
                            "--correlation-points", "0", "--json"))
    got35 = phaseflow.invariants(sys, parameters={"rho": 35}, t_end=200, correlation_points=0)
    assert_same(got35, want35, skip=("wall_seconds",))
    assert sys.params["rho"] == 28.0
    # known answers. λ1 = 0.9056 (Sprott, the file's reference) within 3 block standard errors
    l1, e1 = got["lyapunov_spectrum"][0], got["lyapunov_errors"][0]
    assert abs(l1 - 0.9056) < 3 * e1 and e1 < 0.1, (l1, e1)
    # trace identity: Σλ = <tr J> = −(σ + 1 + β) exactly for Lorenz (Liouville: the QR volume
    # growth is exp ∫ tr J); only the integration error (rtol 1e-9) remains
    p = sys.params
    assert got["sum"] == pytest.approx(-(p["sigma"] + 1 + p["beta"]), rel=1e-6)
    assert got["kaplan_yorke_dimension"] == pytest.approx(2 + (l1 + got["lyapunov_spectrum"][1]) / abs(got["lyapunov_spectrum"][2]), rel=1e-12)
    # a map: λ1 + λ2 = ln|det J| = ln b per iteration for Hénon (det J = −b)
    henon = phaseflow.invariants(phaseflow.maps.Henon(), t_end=2e4, transient=100, correlation_points=0)
    assert henon["units"] == "per iteration"
    assert henon["sum"] == pytest.approx(math.log(0.3), rel=1e-12)
    assert abs(henon["lyapunov_spectrum"][0] - 0.41922) < 3 * henon["lyapunov_errors"][0] + 2e-3


def test_invariants_errors_are_the_clis(phaseflow_bin):
    with pytest.raises(PhaseflowError) as e:
        phaseflow.invariants("lorenz", t_end=-1)
    assert str(e.value) == cli_error(phaseflow_bin, "invariants", "lorenz", "--t-end", "-1")
    with pytest.raises(PhaseflowError, match="not finite"):
        phaseflow.invariants("lorenz", parameters={"rho": float("nan")})
    with pytest.raises(TypeError):
        phaseflow.invariants(3)


def threads():
    """The threads of this process (Linux: /proc/self/task)."""
    return len(os.listdir("/proc/self/task"))


def interrupted(call, after=0.3):
    """`call()` with SIGINT sent to this process `after` seconds in: asserts that it raises
    KeyboardInterrupt, and returns the seconds from the signal to the exception and the CPU seconds
    this process spent in the following 0.5 s (the worker stopped: none; one that ran on, as the
    computation of a call that the library could not stop did, would spend about 0.5)."""
    sent = []
    timer = threading.Timer(after, lambda: (sent.append(time.monotonic()), os.kill(os.getpid(), signal.SIGINT)))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        timer.cancel()
        timer.join()
    late = time.monotonic() - sent[0]
    cpu = time.process_time()
    time.sleep(0.5)
    return late, time.process_time() - cpu


def test_invariants_ctrl_c_stops_the_computation():
    """Ctrl-C stops the library's computation itself (its token is cancelled): KeyboardInterrupt
    within a second of the signal, and afterwards the process spends no CPU and has no thread more
    than before (a computation left running on its thread would spend ~0.5 s of the 0.5 s)."""
    before = threads()
    # hours of work uncancelled (the spectrum of 10^7 time units); then 10^6 points of the
    # correlation trajectory and sum after a short spectrum
    for settings in (dict(t_end=1e7, correlation_points=0), dict(t_end=1, transient=0, correlation_points=10**6)):
        late, cpu = interrupted(lambda: phaseflow.invariants("lorenz", **settings))
        assert late < 1.0, (settings, late)
        assert cpu < 0.1, (settings, cpu)
        assert threads() == before
    # the next call gets a fresh token: it runs to the end
    assert phaseflow.invariants("lorenz", t_end=20, correlation_points=0)["lyapunov_spectrum"].shape == (3,)


# -- exact entropy production -----------------------------------------------------------------


def test_exact_epr_equals_the_cli_and_closed_forms(phaseflow_bin):
    want = json.loads(cli(phaseflow_bin, "epr", "--exact", "--system", "systems/linear/bead_spring_2.toml",
                          "--json", cwd=ROOT))
    got = phaseflow.epr("systems/linear/bead_spring_2.toml", exact=True)
    assert_same(got, want)
    # two beads between walls in baths Tc, Th (k = e = 1): EPR = (Th − Tc)² / (4 Tc Th),
    # 81/40 = 2.025 for the file's Tc = 1, Th = 10
    assert got["epr"] == pytest.approx(81 / 40, rel=1e-12)
    sys = phaseflow.load_system("systems/linear/bead_spring_2.toml")
    for tc, th in [(1.0, 5.0), (2.0, 3.0)]:
        r = phaseflow.epr(sys, exact=True, parameters={"Tc": tc, "Th": th})
        assert r["epr"] == pytest.approx((th - tc) ** 2 / (4 * tc * th), rel=1e-12)
        assert sum(r["per_dof"].values()) == pytest.approx(r["epr"], rel=1e-12)
    assert sys.params["Th"] == 10.0
    # AOUPs in a harmonic trap without interactions (k = 0): 2γv0²/(ε(A + γ)) per particle (d = 2)
    for v0 in (0.1, 0.5):
        set_ = {"N": 2, "k": 0, "v0": v0}
        r = phaseflow.epr("systems/active/trap.toml", exact=True, parameters=set_)
        assert r["epr"] == pytest.approx(2 * 2 * 0.1 * v0**2 / (0.1 * 0.15), rel=1e-10)
        cli_args = [a for k, v in set_.items() for a in ("--set", f"{k}={v}")]
        assert_same(r, json.loads(cli(phaseflow_bin, "epr", "--exact", "--system", "systems/active/trap.toml",
                                      *cli_args, "--json", cwd=ROOT)))
    # definition text
    text = open(os.path.join(ROOT, "systems/linear/bead_spring_2.toml")).read()
    assert phaseflow.epr(text, exact=True)["epr"] == got["epr"]


def test_epr_errors_are_the_clis(phaseflow_bin, data):
    cases = [
        (dict(system="systems/active/trap.toml", exact=True), ["--system", "systems/active/trap.toml", "--exact"]),
        (dict(system="lorenz", exact=True), ["--system", "systems/lorenz.toml", "--exact"]),
        (dict(exact=True), ["--exact"]),
        (dict(exact=True, system="systems/linear/bead_spring_2.toml", data=data / "bs.h5"),
         ["--exact", "--system", "systems/linear/bead_spring_2.toml", "--data", data / "bs.h5"]),
        (dict(), []),
        (dict(flow_dt=0.0), ["--flow-dt", "0"]),
        (dict(data=data / "bs.h5", flow_dt=-1.0), ["--data", data / "bs.h5", "--flow-dt", "-1"]),
        (dict(data=data / "bs.h5"), ["--data", data / "bs.h5"]),
        (dict(data=data / "trap.h5", maps=data / "m.h5"), ["--data", data / "trap.h5", "--maps", data / "m.h5"]),
        (dict(data=data / "nope.h5"), ["--data", data / "nope.h5"]),
    ]
    for kwargs, args in cases:
        with pytest.raises(PhaseflowError) as e:
            phaseflow.epr(**kwargs)
        assert str(e.value) == cli_error(phaseflow_bin, "epr", *args), kwargs


# -- training and the learned entropy production ----------------------------------------------


def test_train_equals_the_cli_and_the_loss_decreases(phaseflow_bin, data, tmp_path):
    d = data
    summary = json.loads(cli(phaseflow_bin, "train", d / "train.toml", "--data", d / "bs.h5", "-o",
                             tmp_path / "cli", "--quiet", "--json"))
    runs = {
        "path": phaseflow.train(d / "train.toml", d / "bs.h5", tmp_path / "path"),
        "text": phaseflow.train(TRAIN_TOML, d / "bs.h5", tmp_path / "text"),
        "dict": phaseflow.train(TRAIN_DICT, d / "bs.h5", tmp_path / "dict"),
        "override": phaseflow.train({**TRAIN_DICT, "training": {**TRAIN_DICT["training"], "steps": 7, "seed": 9}},
                                    d / "bs.h5", tmp_path / "override", steps=60, seed=3),
    }
    for name, r in runs.items():
        out = tmp_path / name
        # the same steps on the same batches: the same parameters bit for bit (model, raw and
        # averaged checkpoint), the same logged losses and summary
        for f in ("model.bpk", "checkpoint/raw.bpk", "checkpoint/ema.bpk"):
            assert masked_bpk(out / f) == masked_bpk(tmp_path / "cli" / f), (name, f)
        assert log_columns(out / "log.csv") == log_columns(tmp_path / "cli" / "log.csv"), name
        for k in ("steps_done", "final_loss", "final_validation_loss", "parameters"):
            assert r[k] == summary[k], (name, k)
        assert r["model_dir"] == str(out)
        h = r["history"]
        assert np.array_equal(h["step"], [10, 20, 30, 40, 50, 60])
        assert np.array_equal(h["loss"], r["step_losses"][h["step"] - 1])
        assert not np.isnan(h["validation_loss"]).any()
    assert (tmp_path / "path" / "config.toml").read_text() == TRAIN_TOML
    # an easy case (a two-dimensional Gaussian): the loss falls by a third within 60 steps
    losses = runs["path"]["step_losses"]
    assert losses.shape == (60,) and losses.dtype == np.float64
    assert losses[-10:].mean() < 0.67 * losses[:10].mean(), losses

    # the learned EPR of the trained model, end to end: the CLI's numbers bit for bit
    want = json.loads(cli(phaseflow_bin, "epr", "--model", tmp_path / "cli", "--data", d / "bs.h5", "--json"))
    got = phaseflow.epr(model=tmp_path / "path", data=d / "bs.h5")
    assert_same(got, want)
    # exact value (Lyapunov) of the bead-spring SDE, and the learning-free reference
    # E[b·D⁻¹b] + E[∇·b] within 3 standard errors of it (this seeded data set: 1.1 σ)
    assert got["epr_exact"] == pytest.approx(2.025, rel=1e-12)
    assert abs(got["epr_reference"] - 2.025) < 3 * got["epr_reference_stderr"]
    assert set(got["per_dof"]) == {"x1", "x2"}


def test_train_resume_continues_bit_for_bit(phaseflow_bin, data, tmp_path):
    d = data
    # the command line stops after 30 steps with a checkpoint; Python resumes it
    cli(phaseflow_bin, "train", d / "train.toml", "--data", d / "bs.h5", "-o", tmp_path / "m", "--stop-after", "30",
        "--quiet")
    assert not (tmp_path / "m" / "model.bpk").exists()
    r = phaseflow.train(d / "train.toml", d / "bs.h5", tmp_path / "m", resume=True)
    assert r["steps_done"] == 60 and r["step_losses"].shape == (30,)
    assert np.array_equal(r["history"]["step"], [10, 20, 30, 40, 50, 60])
    cli(phaseflow_bin, "train", d / "train.toml", "--data", d / "bs.h5", "-o", tmp_path / "ref", "--quiet")
    assert masked_bpk(tmp_path / "m" / "model.bpk") == masked_bpk(tmp_path / "ref" / "model.bpk")
    assert log_columns(tmp_path / "m" / "log.csv") == log_columns(tmp_path / "ref" / "log.csv")
    with pytest.raises(PhaseflowError, match="training is complete|nothing|differs|checkpoint"):
        phaseflow.train(dict(TRAIN_DICT, training={**TRAIN_DICT["training"], "steps": 80}), d / "bs.h5",
                        tmp_path / "m", resume=True)


def test_particle_epr_with_maps_flow_and_png_equals_the_cli(phaseflow_bin, data, tmp_path):
    d = data
    phaseflow.train(d / "train.toml", d / "trap.h5", tmp_path / "model")
    cli_out = json.loads(cli(phaseflow_bin, "epr", "--model", tmp_path / "model", "--data", d / "trap.h5", "--maps",
                             tmp_path / "maps_cli.h5", "--flow-out", tmp_path / "flow_cli.h5", "--flow-steps", "5",
                             "--png", tmp_path / "cli.png", "--diagnostic-samples", "100", "--json"))
    got = phaseflow.epr(model=tmp_path / "model", data=d / "trap.h5", maps=tmp_path / "maps.h5",
                        flow_out=tmp_path / "flow.h5", flow_steps=5, png=tmp_path / "py.png", diagnostic_samples=100)
    assert_same(got, cli_out)
    assert got["per_particle"].shape == (1,) and got["diagnostics"]["residual_edges"].dtype == np.float64
    for a, b in [("maps.h5", "maps_cli.h5"), ("flow.h5", "flow_cli.h5")]:
        with h5py.File(tmp_path / a, "r") as fa, h5py.File(tmp_path / b, "r") as fb:
            names = []
            fa.visit(names.append)
            other = []
            fb.visit(other.append)
            assert names == other and names
            for n in names:
                if isinstance(fa[n], h5py.Dataset):
                    assert np.array_equal(fa[n][()], fb[n][()], equal_nan=True), n
            assert dict(fa.attrs) == dict(fb.attrs)
    assert (tmp_path / "py.png").read_bytes() == (tmp_path / "cli.png").read_bytes()
    # no model: the learning-free reference, the CLI's; exact for this linear drift:
    # 2γv0²/(ε(A + γ)) = 10/3, which the reference matches within 3 standard errors
    ref = phaseflow.epr(data=d / "trap.h5")
    assert_same(ref, json.loads(cli(phaseflow_bin, "epr", "--data", d / "trap.h5", "--json")))
    assert ref["epr"] is None and np.isnan(ref["per_particle"]).all()
    assert ref["epr_exact"] == pytest.approx(2 * 0.1 * 0.25 / (0.1 * 0.15), rel=1e-10)
    assert abs(ref["epr_reference"] - ref["epr_exact"]) < 3 * ref["epr_reference_stderr"]
    # --system and --set: the definition given instead of the one stored with the data
    v0 = phaseflow.epr(data=d / "trap.h5", system="systems/active/trap.toml", parameters={"v0": 0.3})
    assert_same(v0, json.loads(cli(phaseflow_bin, "epr", "--data", d / "trap.h5", "--system",
                                   "systems/active/trap.toml", "--set", "v0=0.3", "--json", cwd=ROOT)))
    assert v0["epr_exact"] == pytest.approx(2 * 0.1 * 0.09 / (0.1 * 0.15), rel=1e-10)


def test_train_errors(phaseflow_bin, data, tmp_path):
    bad = dict(TRAIN_DICT, training={**TRAIN_DICT["training"], "ema": 2.0})
    with pytest.raises(PhaseflowError) as e:
        phaseflow.train(bad, data / "bs.h5", tmp_path / "m")
    (tmp_path / "bad.toml").write_text(TRAIN_TOML.replace("ema = 0.9", "ema = 2.0"))
    message = cli_error(phaseflow_bin, "train", tmp_path / "bad.toml", "--data", data / "bs.h5", "-o", tmp_path / "c")
    assert message == f"{tmp_path / 'bad.toml'}: training.ema = 2 must be in [0, 1)"
    assert str(e.value) == "<dict>: training.ema = 2 must be in [0, 1)"
    with pytest.raises(PhaseflowError) as e:
        phaseflow.train(tmp_path / "bad.toml", data / "bs.h5", tmp_path / "m")
    assert str(e.value) == message
    with pytest.raises(PhaseflowError, match=r"^<string>: "):
        phaseflow.train("[network]\nkind = 'nope'\n", data / "bs.h5", tmp_path / "m")
    with pytest.raises(PhaseflowError) as e:
        phaseflow.train(tmp_path / "missing.toml", data / "bs.h5", tmp_path / "m")
    assert str(e.value) == cli_error(phaseflow_bin, "train", tmp_path / "missing.toml", "--data", data / "bs.h5",
                                     "-o", tmp_path / "m")
    with pytest.raises(PhaseflowError) as e:
        phaseflow.train(data / "train.toml", data / "bs.h5", tmp_path / "m", device="tpu")
    assert str(e.value) == cli_error(phaseflow_bin, "train", data / "train.toml", "--data", data / "bs.h5", "-o",
                                     tmp_path / "m", "--device", "tpu")


def test_train_ctrl_c_leaves_a_checkpoint_as_the_cli(phaseflow_bin, data, tmp_path):
    long = dict(TRAIN_DICT, training={**TRAIN_DICT["training"], "steps": 10_000_000, "checkpoint_every": 1_000_000})
    (tmp_path / "long.toml").write_text(phaseflow._native.train_config(json.dumps(long), "<dict>", json=True))
    # the command line, interrupted
    p = subprocess.Popen([phaseflow_bin, "train", tmp_path / "long.toml", "--data", data / "bs.h5", "-o",
                          tmp_path / "cli", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    # Python, interrupted
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            phaseflow.train(tmp_path / "long.toml", data / "bs.h5", tmp_path / "py")
    finally:
        timer.cancel()
    assert time.monotonic() - start < 5.0

    def files(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    assert files(tmp_path / "py") == files(tmp_path / "cli")
    assert "model.bpk" not in files(tmp_path / "py") and "checkpoint/raw.bpk" in files(tmp_path / "py")
    step = json.loads((tmp_path / "py" / "checkpoint" / "progress.json").read_text())["step"]
    assert 0 < step < 10_000_000


def test_epr_ctrl_c_stops_the_computation(data, tmp_path):
    """Ctrl-C inside `write_flow`'s probability-flow integration (a model trained for 2 steps: only
    the control flow matters): KeyboardInterrupt within a second, the worker stopped (no CPU, no
    thread left), no output file."""
    phaseflow.train(data / "train.toml", data / "trap.h5", tmp_path / "model", steps=2)
    # once, so that the backend's threads exist before they are counted
    phaseflow.epr(model=tmp_path / "model", data=data / "trap.h5", flow_out=tmp_path / "warm.h5", flow_steps=2,
                  diagnostic_samples=2)
    before = threads()
    # 10^9 steps of the probability flow, stopped inside the integration: no file
    late, cpu = interrupted(lambda: phaseflow.epr(model=tmp_path / "model", data=data / "trap.h5",
                                                  flow_out=tmp_path / "flow.h5", flow_steps=10**9,
                                                  diagnostic_samples=0))
    assert late < 1.0 and cpu < 0.1, (late, cpu)
    assert threads() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "warm.h5"]
