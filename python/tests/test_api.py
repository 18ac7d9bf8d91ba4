"""The dysts-style API: shapes, dtypes, agreement with the command line, errors, Ctrl-C."""

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
from phaseflow import PhaseflowError
from phaseflow.flows import Lorenz
from phaseflow.systems import get_attractor_list, make_trajectory_ensemble


def cli_state(phaseflow_bin, tmp_path, *args):
    out = tmp_path / "out.h5"
    subprocess.run([phaseflow_bin, "simulate", *args, "-o", str(out)], check=True, capture_output=True, cwd=tmp_path)
    with h5py.File(out, "r") as f:
        return f["/time"][()], f["/state"][()]


def test_catalogue_classes_and_attributes():
    flows = get_attractor_list()
    assert "Lorenz" in flows and len(flows) > 100
    assert set(get_attractor_list("continuous_no_delay")) | set(get_attractor_list("delay")) == set(flows)
    assert "MackeyGlass" in get_attractor_list("delay")
    maps = get_attractor_list("discrete")
    assert "Henon" in maps and len(maps) == 25
    # one name in both modules, as in dysts
    assert set(maps) & set(flows) == {"Duffing"}
    assert phaseflow.maps.Duffing().kind == "map" and phaseflow.flows.Duffing().kind == "flow"
    assert phaseflow.maps.Henon().kind == "map"
    sys = Lorenz()
    assert sys.name == "Lorenz" and sys.dimension == 3 and sys.kind == "flow"
    assert sys.dt > 0 and sys.period > 0
    assert sys.ic.shape == (3,) and sys.ic.dtype == np.float64
    assert set(sys.params) == {"beta", "rho", "sigma"}
    assert Lorenz(parameters={"rho": 35}).params["rho"] == 35.0


def test_parameters_take_effect_at_once():
    sys = Lorenz()
    x = np.array([1.0, 2.0, 3.0])
    f0 = sys.rhs(x)
    sys.params["rho"] = sys.params["rho"] + 1.0
    assert sys.rhs(x)[1] == pytest.approx(f0[1] + x[0])
    sys.sigma = 11.0
    assert sys.params["sigma"] == 11.0 and sys.sigma == 11.0
    assert sys.rhs(x)[0] == pytest.approx(11.0 * (x[1] - x[0]))
    a = sys.make_trajectory(200)
    b = Lorenz(parameters=dict(sys.params)).make_trajectory(200)
    assert np.array_equal(a, b)


def test_shapes_dtypes_contiguity():
    sys = Lorenz()
    sol = sys.make_trajectory(300)
    assert sol.shape == (300, 3) and sol.dtype == np.float64 and sol.flags.c_contiguous
    t, sol = sys.make_trajectory(300, return_times=True, pts_per_period=50)
    assert t.shape == (300,) and t.dtype == np.float64
    np.testing.assert_allclose(t, np.linspace(0, sys.period * 300 / 50, 300), rtol=1e-12, atol=1e-12)
    batch = sys.make_trajectory(100, init_cond=np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 5.0]]))
    assert batch.shape == (2, 100, 3) and batch.dtype == np.float64 and batch.flags.c_contiguous
    t, sol = sys.make_trajectory(50, resample=False, dt=0.01, return_times=True)
    assert sol.shape == (50, 3)
    np.testing.assert_allclose(np.diff(t), 0.01, rtol=1e-9)
    henon = phaseflow.maps.Henon().make_trajectory(100)
    assert henon.shape == (100, 2) and henon.flags.c_contiguous
    x = np.random.default_rng(0).normal(size=(7, 3))
    assert sys.rhs(x).shape == (7, 3) and sys.rhs(x[0]).shape == (3,)
    assert sys.jac(x).shape == (7, 3, 3) and sys.jac(x[0]).shape == (3, 3)
    assert sys.rhs(x).flags.c_contiguous and sys.jac(x).dtype == np.float64


def test_trajectory_equals_cli_bit_for_bit(phaseflow_bin, tmp_path):
    t_cli, x_cli = cli_state(phaseflow_bin, tmp_path, "lorenz", "--points", "500", "--pts-per-period", "40",
                             "--rtol", "1e-12", "--atol", "1e-12", "--set", "rho=35")
    t, x = Lorenz(parameters={"rho": 35}).make_trajectory(500, pts_per_period=40, return_times=True)
    assert x.shape == x_cli.shape and np.array_equal(x, x_cli) and np.array_equal(t, t_cli)
    # another method and a given initial condition
    _, x_cli = cli_state(phaseflow_bin, tmp_path, "lorenz", "--points", "300", "--method", "dopri5",
                         "--rtol", "1e-9", "--atol", "1e-9", "--ic", "1,2,3")
    x = Lorenz().make_trajectory(300, method="RK45", rtol=1e-9, atol=1e-9, init_cond=[1, 2, 3])
    assert np.array_equal(x, x_cli)
    # a map and a delay equation
    _, x_cli = cli_state(phaseflow_bin, tmp_path, "henon", "--points", "200")
    assert np.array_equal(phaseflow.maps.Henon().make_trajectory(200), x_cli)
    _, x_cli = cli_state(phaseflow_bin, tmp_path, "mackey_glass", "--points", "200", "--rtol", "1e-12", "--atol", "1e-12")
    assert np.array_equal(phaseflow.flows.MackeyGlass().make_trajectory(200), x_cli)


def test_batch_equals_members_one_by_one():
    sys = Lorenz()
    ics = np.random.default_rng(1).normal(scale=5.0, size=(4, 3)) + [0.0, 0.0, 25.0]
    batch = sys.make_trajectory(400, init_cond=ics)
    for k in range(4):
        assert np.array_equal(batch[k], sys.make_trajectory(400, init_cond=ics[k]))


def test_rhs_and_jacobian_against_finite_differences():
    rng = np.random.default_rng(2)
    for cls in (Lorenz, phaseflow.flows.Rossler, phaseflow.flows.Aizawa):
        sys = cls()
        x = rng.normal(size=(5, sys.dimension))
        J = sys.jac(x, 0.3)
        for b in range(5):
            h = 1e-6
            fd = np.empty((sys.dimension, sys.dimension))
            for j in range(sys.dimension):
                e = np.zeros(sys.dimension)
                e[j] = h
                fd[:, j] = (sys.rhs(x[b] + e, 0.3) - sys.rhs(x[b] - e, 0.3)) / (2 * h)
            np.testing.assert_allclose(J[b], fd, rtol=1e-6, atol=1e-6)
    p = Lorenz().params
    x = np.array([1.5, -2.0, 7.0])
    expected = [p["sigma"] * (x[1] - x[0]), x[0] * (p["rho"] - x[2]) - x[1], x[0] * x[1] - p["beta"] * x[2]]
    np.testing.assert_allclose(Lorenz().rhs(x), expected, rtol=1e-15)


def test_scipy_method_names():
    sys = Lorenz()
    a = sys.make_trajectory(100, method="Radau")
    assert np.array_equal(a, sys.make_trajectory(100, method="auto"))
    assert np.array_equal(sys.make_trajectory(100, method="DOP853"), sys.make_trajectory(100, method="dop853"))
    with pytest.raises(ValueError, match="unknown method 'RK23'"):
        sys.make_trajectory(100, method="RK23")


def test_load_system_text_and_ensemble():
    text = """
name = "decay"
kind = "flow"
variables = ["x"]
initial_conditions = [1.0]
dt = 0.01
period = 1.0
[parameters]
k = 2.0
[equations]
x = "-k * x"
"""
    sys = phaseflow.load_system(text, parameters={"k": 0.5})
    t, x = sys.make_trajectory(101, return_times=True)
    np.testing.assert_allclose(x[:, 0], np.exp(-0.5 * t), rtol=1e-9)
    ens = make_trajectory_ensemble(50, subset=["Lorenz", "Rossler", "Henon"])
    assert set(ens) == {"Lorenz", "Rossler", "Henon"}
    assert ens["Lorenz"].shape == (50, 3) and ens["Henon"].shape == (50, 2)
    assert np.array_equal(ens["Lorenz"], Lorenz().make_trajectory(50))


def test_malformed_system_raises_with_location(phaseflow_bin, tmp_path):
    text = 'name = "bad"\nkind = "flow"\nvariables = ["x"]\ninitial_conditions = [1.0]\n[equations]\nx = "-(x +"\n'
    with pytest.raises(PhaseflowError, match=r"^<string>:6:\d+: ") as e:
        phaseflow.load_system(text)
    assert isinstance(e.value, ValueError)
    # a file gives the command line's message exactly
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    cli = subprocess.run([phaseflow_bin, "simulate", str(bad), "-o", str(tmp_path / "x.h5")], capture_output=True, text=True)
    assert cli.returncode != 0
    with pytest.raises(PhaseflowError) as e:
        phaseflow.load_system(str(bad))
    assert cli.stderr.strip() == f"error: {e.value}"
    assert str(e.value).startswith(f"{bad}:6:")


def test_nan_parameter_is_rejected():
    with pytest.raises(PhaseflowError, match="rho.*not finite"):
        Lorenz(parameters={"rho": float("nan")})
    sys = Lorenz()
    with pytest.raises(PhaseflowError, match="not finite"):
        sys.params["rho"] = float("nan")
    with pytest.raises(PhaseflowError, match="not finite"):
        sys.rho = float("inf")
    assert sys.params["rho"] == Lorenz().params["rho"]
    with pytest.raises(PhaseflowError, match="no such parameter"):
        sys.params["nope"] = 1.0


def test_embedded_catalogue_and_override(tmp_path, monkeypatch):
    assert Lorenz().source == "systems/lorenz.toml"
    (tmp_path / "only.toml").write_text(
        'name = "OnlyOne"\nkind = "flow"\nvariables = ["x"]\ninitial_conditions = [1.0]\ndt = 0.1\nperiod = 1.0\n'
        '[equations]\nx = "-x"\n'
    )
    monkeypatch.setenv("PHASEFLOW_SYSTEMS", str(tmp_path))
    sys = phaseflow.load_system("OnlyOne")
    assert sys.name == "OnlyOne" and sys.source == str(tmp_path / "only.toml")
    with pytest.raises(PhaseflowError, match="lorenz"):
        phaseflow.load_system("lorenz")


def test_ctrl_c_interrupts_a_long_call():
    sys = phaseflow.flows.Lorenz()
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # 200,000 periods at this tolerance: minutes of work
            sys.make_trajectory(200_000, pts_per_period=1, rtol=1e-13, atol=1e-13)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 5.0
