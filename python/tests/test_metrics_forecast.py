"""`phaseflow.metrics` and `phaseflow.forecast.bench`: closed forms, identities between the
package's paths, and bit-for-bit agreement with `phaseflow forecast bench` (the same library
code runs in both, so every number must be identical)."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest

import phaseflow
from phaseflow import PhaseflowError
from phaseflow import forecast
from phaseflow import metrics as M

# A tiny benchmark: 2 systems, 2 cheap models, short series (well under a second).
TINY = dict(protocol="custom", train=200, context=100, horizon=50, test_ics=2)
TINY_CLI = ["--protocol", "custom", "--train", "200", "--context", "100", "--horizon", "50", "--test-ics", "2"]


def same(a, b):
    """Bit-for-bit equality of two numbers, NaN equal to NaN (JSON null read as NaN)."""
    b = float("nan") if b is None else b
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def cli_bench(phaseflow_bin, out, systems, models, *extra):
    r = subprocess.run(
        [phaseflow_bin, "forecast", "bench", "--systems", systems, "--models", models, *TINY_CLI, *extra,
         "-o", str(out), "--json"],
        check=True, capture_output=True, text=True, cwd=out.parent,
    )
    return json.loads(r.stdout)


def cli_error(phaseflow_bin, tmp_path, *args):
    r = subprocess.run([phaseflow_bin, "forecast", "bench", *args, "-o", str(tmp_path / "err"), "--json"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0
    return r.stderr.strip().splitlines()[0].removeprefix("error: ")


def series(seed, shape, noise=0.1):
    rng = np.random.default_rng(seed)
    y = rng.random(shape) + 0.5
    return y, y + noise * rng.standard_normal(shape)


# -- metrics ----------------------------------------------------------------------------------

def test_compute_metrics_keys_order_and_types():
    y, p = series(1, (120, 3))
    m = M.compute_metrics(y, p)
    assert tuple(m) == M.METRICS and len(M.METRICS) == 20
    assert M.METRICS[:17] == M.DYSTS_METRICS and M.METRICS[17:] == ("mase", "dtw", "vpt")
    assert all(type(v) is float and math.isfinite(v) for v in m.values())
    sub = M.compute_metrics(y, p, include=["wape", "mse"])
    assert list(sub) == ["wape", "mse"]
    assert M.compute_metrics(y, p, include="smape") == {"smape": m["smape"]}


def test_include_path_is_bit_identical_to_the_library_path():
    # include=None runs the library's compute_metrics; include=... dispatches each key to its
    # function: the same code, so the same bits
    for shape in [(150, 3), (80, 1), (60,)]:
        y, p = series(2, shape)
        full = M.compute_metrics(y, p)
        each = M.compute_metrics(y, p, include=list(M.METRICS))
        assert full == each
        # and each public function gives the same value
        for key, fn in [("mse", M.mse), ("mae", M.mae), ("rmse", M.rmse), ("nrmse", M.nrmse), ("marre", M.marre),
                        ("r2_score", M.r2_score), ("rmsle", M.rmsle), ("smape", M.smape), ("mape", M.mape),
                        ("wape", M.wape), ("spearman", M.spearman), ("pearson", M.pearson),
                        ("kendall", M.kendall), ("coefficient_of_variation", M.coefficient_of_variation),
                        ("mutual_information", M.mutual_information), ("kl_divergence", M.estimate_kl_divergence),
                        ("hellinger_distance", M.average_hellinger_distance), ("mase", M.mase), ("dtw", M.dtw)]:
            assert fn(y, p) == full[key], key
        assert M.valid_prediction_time(y, p) == full["vpt"]


def test_shapes_batches_and_broadcasting():
    y, p = series(3, (4, 90, 2))
    batched = M.compute_metrics(y, p, batch_axis=0)
    members = [M.compute_metrics(y[i], p[i]) for i in range(4)]
    for k in M.METRICS:
        assert batched[k] == float(np.mean([m[k] for m in members])), k
    # the batch axis may be any axis; a negative one counts from the end
    assert M.compute_metrics(np.moveaxis(y, 0, 1), np.moveaxis(p, 0, 1), batch_axis=1) == batched
    assert M.compute_metrics(np.moveaxis(y, 0, 2), np.moveaxis(p, 0, 2), batch_axis=-1) == batched
    # (T,) is (T, 1)
    y1, p1 = series(4, (70,))
    assert M.compute_metrics(y1, p1) == M.compute_metrics(y1[:, None], p1[:, None])
    # a (T, 1) prediction broadcast against (T, D)
    y2, p2 = series(5, (70, 3))
    assert M.compute_metrics(y2, p2[:, :1]) == M.compute_metrics(y2, np.repeat(p2[:, :1], 3, axis=1))
    # lists and integer arrays are converted to float64
    assert M.mse([1, 2, 3], [1, 2, 4]) == pytest.approx(1 / 3, rel=1e-15)


def test_errors_name_the_valid_choices():
    y, p = series(6, (30, 2))
    with pytest.raises(PhaseflowError, match=r"Invalid metrics specified: nope\. Must be one of \['mse'.*'vpt'\]"):
        M.compute_metrics(y, p, include=["mse", "nope"])
    with pytest.raises(PhaseflowError, match="batch_dim"):
        M.compute_metrics(y[None], np.stack([p, p]), batch_axis=0)
    with pytest.raises(PhaseflowError, match="broadcastable"):
        M.compute_metrics(y, p[:, :1].T)
    with pytest.raises(PhaseflowError, match=r"\(T,\) or \(T, D\)"):
        M.compute_metrics(y[None, None], p[None, None])
    with pytest.raises(PhaseflowError, match="eps"):
        M.smape(y, p, eps=1e-8)
    with pytest.raises(PhaseflowError, match="time_dim"):
        M.mase(y, p, time_dim=-1)
    with pytest.raises(PhaseflowError, match="sigma_scale=None"):
        M.estimate_kl_divergence(y, p, sigma_scale=None)
    assert issubclass(PhaseflowError, ValueError)


def test_closed_forms():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 2.0, 3.0, 5.0])
    m = M.compute_metrics(y, p)
    assert m["mse"] == 0.25 and m["mae"] == 0.25 and m["rmse"] == 0.5
    assert m["r2_score"] == pytest.approx(0.8, rel=1e-15)  # 1 − 1/5
    assert m["wape"] == pytest.approx(10.0, rel=1e-9)  # 100·1/10
    assert m["mape"] == pytest.approx(6.25, rel=1e-9)  # 100·(1/4)/4
    assert m["marre"] == pytest.approx(100 / 12, rel=1e-9)  # range 3
    assert m["mase"] == pytest.approx(0.25, rel=1e-9)  # naive one-step error of y is 1
    assert M.mase(y, p, m=2) == pytest.approx(0.125, rel=1e-9)
    assert M.mase(y, p, y_train=[0.0, 10.0, 20.0]) == pytest.approx(0.025, rel=1e-9)
    assert M.dtw([0.0, 0.0], [1.0, 1.0]) == pytest.approx(1 / 3, rel=1e-15)  # A(2,2) = 2, /(3 + 3)
    assert M.dtw([[3.0, 4.0]], np.zeros((2, 2))) == pytest.approx(2.0, rel=1e-15)  # (5 + 5) / ((1 + 1) + (2 + 1))
    assert M.smape(y, p, scaled=False) == 2 * M.smape(y, p)
    # a perfect forecast
    z = M.compute_metrics(y, y)
    for k in ["mse", "mae", "rmse", "nrmse", "marre", "rmsle", "smape", "mape", "wape", "mase", "dtw", "kl_divergence"]:
        assert z[k] == 0.0, k
    assert z["r2_score"] == 1.0 and z["vpt"] == 4.0
    # valid prediction time: sMAPE (0–200) per step 0,0,0 then 200; cumulative 50 > 30 at t = 3
    t = np.ones(10)
    f = np.where(np.arange(10) < 3, 1.0, -1.0)
    assert M.valid_prediction_time(t, f) == 3 and M.compute_metrics(t, f, include=["vpt"])["vpt"] == 3.0
    assert M.valid_prediction_time(t, f, threshold=60.0) == 4  # 50 at t = 3, 80 at t = 4
    assert M.compute_metrics(t, f, include=["vpt"], vpt_threshold=60.0)["vpt"] == 4.0
    np.testing.assert_allclose(M.error_vs_horizon(t, f), [0, 0, 0] + [200] * 7, rtol=1e-9)
    np.testing.assert_allclose(M.cumulative_smape(t, f)[3:5], [50, 80], rtol=1e-9)
    assert M.cumulative_smape(t, f, scaled=True)[3] == pytest.approx(25, rel=1e-9)
    assert M.steps_to_lyapunov_times(100, 0.01, 0.9) == pytest.approx(0.9, rel=1e-15)
    assert math.isnan(M.steps_to_lyapunov_times(100, 0.01, 0.0))
    # undefined values are NaN (dysts: ±inf or an exception)
    assert math.isnan(M.r2_score([2.0, 2.0], [1.0, 3.0]))
    assert math.isnan(M.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_verbose_prints_dysts_lines(capsys):
    y, p = series(7, (40, 2))
    m = M.compute_metrics(y, p, include=["mse", "mae"], verbose=True)
    assert capsys.readouterr().out == f"mse: {m['mse']:.4f}\nmae: {m['mae']:.4f}\n"
    M.compute_metrics(y, p, include=["mse"])
    assert capsys.readouterr().out == ""


# -- the benchmark ----------------------------------------------------------------------------

def test_metrics_equal_the_benchmark_scores(phaseflow_bin, tmp_path):
    """phaseflow.metrics on the command line's data set and forecasts gives, bit for bit, the
    scores `phaseflow forecast bench` wrote (it calls the same library functions)."""
    out = tmp_path / "cli"
    cli_bench(phaseflow_bin, out, "lorenz,rossler", "naive,linear")
    checked = 0
    for key in ["lorenz", "rossler"]:
        with h5py.File(out / "data" / f"{key}.h5", "r") as f:
            train, truths = f["train"][()], f["test/truth"][()]
        for model in ["naive", "linear"]:
            r = json.loads((out / "results" / key / f"{model}.json").read_text())
            for case, truth in zip(r["cases"], truths):
                fc = np.array(case["forecast"]).reshape(truth.shape)
                want = case["metrics"]
                got = M.compute_metrics(truth, fc, seed=r["protocol"]["seed"], vpt_threshold=r["vpt_threshold"])
                # the benchmark's sMAPE is on the 0–200 scale, its MASE against the training series
                got["smape"] = M.smape(truth, fc, scaled=False)
                got["mase"] = M.mase(truth, fc, y_train=train)
                for k in M.METRICS[:-1]:
                    assert same(got[k], want[k]), (key, model, k, got[k], want[k])
                assert got["vpt"] == want["vpt_steps"] == case["vpt_steps"]
                checked += 1
    assert checked == 8


def test_bench_equals_the_command_line(phaseflow_bin, tmp_path):
    want = cli_bench(phaseflow_bin, tmp_path / "cli", "lorenz,rossler", "naive,linear")
    rows = forecast.bench(["Lorenz", "Rossler"], ["naive", "linear"], output=str(tmp_path / "py"), **TINY)
    assert len(rows) == len(want["leaderboard"]) > 0
    for got, ref in zip(rows, want["leaderboard"]):
        assert list(got) == list(ref)
        for k in ref:
            assert same(got[k], ref[k]), (got["model"], got["metric"], k, got[k], ref[k])
    # the per-(system, model) table: the command line's results/SYSTEM/MODEL.json
    per = forecast.bench("lorenz,rossler", "naive,linear", output=str(tmp_path / "py"), table="systems", **TINY)
    assert [(r["system"], r["model"]) for r in per] == [
        ("Lorenz", "naive"), ("Lorenz", "linear"), ("Rossler", "naive"), ("Rossler", "linear")]
    for r in per:
        ref = json.loads((tmp_path / "cli" / "results" / r["system"].lower() / f"{r['model']}.json").read_text())
        assert r["configuration"] == ref["configuration"] and r["dt"] == ref["dt"]
        assert r["lyapunov_max"] == ref["lyapunov_max"]
        for k, v in ref["metrics"].items():
            assert same(r[k], v), (r["system"], r["model"], k)
    # the second call reused the first one's results (resumable), and wrote the files the
    # command line writes
    for name in ["leaderboard.csv", "summary.md"]:
        assert (tmp_path / "py" / name).read_text() == (tmp_path / "cli" / name).read_text()
    frame = forecast.bench("lorenz,rossler", "naive,linear", output=str(tmp_path / "py"), as_frame=True, **TINY)
    assert list(frame.columns) == list(want["leaderboard"][0])
    assert frame.to_dict("records")[0]["metric"] == want["leaderboard"][0]["metric"]


def test_bench_writes_builtin_definitions_it_cannot_find_on_disk(phaseflow_bin, tmp_path, monkeypatch):
    # from a directory with an empty `systems/`, the on-disk catalogue has no lorenz.toml: the
    # built-in definition is written into the output directory and used from there
    work = tmp_path / "work"
    (work / "systems").mkdir(parents=True)
    monkeypatch.chdir(work)
    want = cli_bench(phaseflow_bin, tmp_path / "cli", "lorenz", "naive")
    out = tmp_path / "py"
    rows = forecast.bench("Lorenz", "naive", output=str(out), **TINY)
    assert (out / "systems" / "lorenz.toml").is_file()
    assert [[same(g[k], r[k]) for k in r] for g, r in zip(rows, want["leaderboard"])] == [
        [True] * len(r) for r in want["leaderboard"]]


def test_bench_errors_are_the_command_line_messages(phaseflow_bin, tmp_path):
    for py_kwargs, cli_args in [
        (dict(models=["foo"]), ["--systems", "lorenz", "--models", "foo"]),
        (dict(models=["naive"], vpt_threshold=-1.0), ["--systems", "lorenz", "--models", "naive", "--vpt-threshold", "-1"]),
        (dict(models=["naive"], hyper=["nvar.order=x"]), ["--systems", "lorenz", "--models", "naive", "--hyper", "nvar.order=x"]),
        (dict(models=["naive"], train=3), ["--systems", "lorenz", "--models", "naive", "--train", "3"]),
    ]:
        message = cli_error(phaseflow_bin, tmp_path, *cli_args)
        with pytest.raises(PhaseflowError) as e:
            forecast.bench("lorenz", output=str(tmp_path / "py"), **py_kwargs)
        assert str(e.value) == message
    with pytest.raises(PhaseflowError, match=r"unknown protocol 'bad' \(short, long, univariate or custom\)"):
        forecast.bench("lorenz", "naive", protocol="bad")
    with pytest.raises(PhaseflowError, match="nosuch: not a file and not a system"):
        forecast.bench("nosuch", "naive")
    with pytest.raises(PhaseflowError, match="table="):
        forecast.bench("lorenz", "naive", table="nope")
    with pytest.raises(PhaseflowError, match="train must be an integer >= 0"):
        forecast.bench("lorenz", "naive", train=-5)


def test_bench_as_frame_without_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError
    with pytest.raises(ImportError, match=r"as_frame=True\) needs pandas \(pip install pandas\)"):
        forecast.bench("lorenz", "naive", as_frame=True, **TINY)


def test_bench_is_quiet_unless_verbose(capfd, tmp_path):
    forecast.bench("lorenz", "naive", output=str(tmp_path / "a"), **TINY)
    cap = capfd.readouterr()
    assert cap.out == "" and cap.err == ""
    forecast.bench("lorenz", "naive", output=str(tmp_path / "b"), verbose=True, **TINY)
    err = capfd.readouterr().err.splitlines()
    assert err == ["forecast bench: 1/2 data lorenz", "forecast bench: 2/2 lorenz naive"]


def test_bench_ctrl_c_interrupts(tmp_path):
    # tuning an ESN on 20,000 training steps takes ~10 s; Ctrl-C stops it within a configuration
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            forecast.bench("lorenz", "esn", protocol="custom", train=20000, output=str(tmp_path / "b"))
    finally:
        timer.cancel()
    assert time.monotonic() - start < 6.0
    # nothing of the interrupted pair was written
    assert not (tmp_path / "b" / "results" / "lorenz" / "esn.json").exists()
