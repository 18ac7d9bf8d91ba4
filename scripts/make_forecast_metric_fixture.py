#!/usr/bin/env python3
"""Generate tests/fixtures/forecast_metrics.json: reference values of dysts 0.96's
forecast metrics on a few fixed (truth, prediction) pairs, checked by
tests/forecast_metrics.rs against `phaseflow::forecast::metrics`.

Needs `pip install dysts==0.96` (which brings numpy, scipy and scikit-learn).
Run from anywhere: `python3 scripts/make_forecast_metric_fixture.py`.

What is recorded per case:
  * the inputs (row-major T x D, rounded to 8 decimals *before* anything is computed, so the
    stored inputs are exactly the ones the expected values were computed from);
  * `compute_metrics`: dysts.metrics.compute_metrics(truth, pred) with its defaults, under
    np.random.seed(0) (mutual information and the KL estimate draw from numpy's global RNG);
  * `extra`: dysts functions called with explicit non-default arguments (smape on the 0-200
    scale, mase along the time axis, dtw, hellinger with fewer bins, ...);
  * `curves`: per-step sMAPE and dysts.metrics.horizoned_metric(smape) (cumulative sMAPE),
    both on the 0-200 scale, and the valid prediction time derived from the latter;
  * `stochastic`: the spread of dysts' two randomised metrics over many numpy seeds
    (mutual information: sklearn adds 1e-10-scale noise before its KSG estimate; KL: a Monte
    Carlo estimate from 1000 samples), from which the Rust test derives its tolerance, and
    the KL estimate's deterministic part (mean log density ratio at 16 fixed points).
"""

import json
import os
import re
import sys
from importlib.metadata import version

import numpy as np
import scipy
import sklearn
from scipy.stats import pearsonr

import dysts.metrics as dm

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
    "forecast_metrics.json",
)
N_MI_SEEDS = 50
N_KL_SEEDS = 200
N_KL_POINTS = 16
VPT_THRESHOLD = 30.0  # cumulative sMAPE, 0-200 scale

# dysts 0.96's mutual_information assigns the length-1 array returned by sklearn's
# mutual_info_regression into a float slot (`mi[i] = ...`), which numpy >= 2.4 rejects
# ("setting an array element with a sequence"). Unwrap the scalar; the estimator (sklearn's)
# and dysts' per-dimension mean are untouched.
_orig_mir = dm.mutual_info_regression


def _mir_scalar(*args, **kwargs):
    return float(np.asarray(_orig_mir(*args, **kwargs)).reshape(-1)[0])


dm.mutual_info_regression = _mir_scalar

# Same incompatibility in dysts.metrics.dtw: `D[i, j] = cdist([u], [v])` stores a 1 x 1 array
# into a float slot. Unwrap the scalar (scipy's euclidean distance itself is unchanged).
_orig_cdist = dm.cdist


def _cdist_scalar(*args, **kwargs):
    return float(_orig_cdist(*args, **kwargs)[0, 0])


dm.cdist = _cdist_scalar


def r8(a):
    return np.round(np.asarray(a, dtype=np.float64), 8)


def lorenz_rk4(x0, dt, n_steps, sub=10):
    sigma, rho, beta = 10.0, 28.0, 8.0 / 3.0

    def f(x):
        return np.array(
            [sigma * (x[1] - x[0]), x[0] * (rho - x[2]) - x[1], x[0] * x[1] - beta * x[2]]
        )

    h = dt / sub
    x = np.array(x0, dtype=np.float64)
    out = []
    for _ in range(n_steps):
        for _ in range(sub):
            k1 = f(x)
            k2 = f(x + 0.5 * h * k1)
            k3 = f(x + 0.5 * h * k2)
            k4 = f(x + h * k3)
            x = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(x.copy())
    return np.array(out)


def logistic(x0, n, r=3.9):
    out = np.empty(n)
    x = x0
    for i in range(n):
        out[i] = x
        x = r * x * (1.0 - x)
    return out


def make_cases():
    rng = np.random.default_rng(20240611)
    cases = []

    # 1. noisy prediction of an offset sine, D = 1
    t = np.linspace(0.0, 4.0 * np.pi, 50)
    truth = (1.5 + np.sin(t))[:, None]
    pred = truth + 0.1 * rng.standard_normal(truth.shape)
    cases.append(("sine_noisy_d1", truth, pred))

    # 2. three sines (one with negative values and mean) with noise and a phase lag, D = 3
    amp = np.array([1.0, 2.0, 0.5])
    off = np.array([0.5, -1.0, 2.0])
    ph = np.array([0.0, 1.0, 2.0])
    truth = amp * np.sin(t[:, None] + ph) + off
    pred = amp * np.sin(t[:, None] + ph + 0.15) + off + 0.2 * rng.standard_normal(truth.shape)
    cases.append(("sine_phase_d3", truth, pred))

    # 3. chaotic map, D = 1: the prediction starts 1e-4 off and diverges (VPT inside T)
    truth = logistic(0.2, 50)[:, None]
    pred = logistic(0.2 + 1e-4, 50)[:, None]
    cases.append(("logistic_d1", truth, pred))

    # 4. Lorenz-63, D = 3, T = 150 (> 100 frequency bins): perturbed initial condition
    x0 = lorenz_rk4([1.0, 1.0, 1.0], 0.05, 200)[-1]  # on the attractor
    truth = lorenz_rk4(x0, 0.05, 150)
    pred = lorenz_rk4(x0 + np.array([0.1, 0.0, 0.0]), 0.05, 150)
    cases.append(("lorenz_d3", truth, pred))

    # 5. quantised random walks (many ties: rank averaging, Kendall tau-b), D = 2
    walk = np.cumsum(rng.standard_normal((50, 2)), axis=0) + np.array([5.0, -3.0])
    truth = np.round(walk * 2.0) / 2.0
    pred = np.round((walk + 0.7 * rng.standard_normal(walk.shape)) * 2.0) / 2.0
    cases.append(("quantised_walk_d2", truth, pred))

    return [(name, r8(a), r8(b)) for name, a, b in cases]


def fl(x):
    x = float(x)
    if not np.isfinite(x):
        raise ValueError(f"non-finite reference value {x}")
    return x


def case_record(name, truth, pred):
    T, D = truth.shape
    np.random.seed(0)
    cm = dm.compute_metrics(truth, pred)
    cm = {k: fl(v) for k, v in cm.items()}

    train = r8(truth[::-1] * 0.9 + 0.1)  # an explicit "training" series for MASE, T x D
    extra = {
        "smape_percent200": fl(dm.smape(truth, pred, scaled=False)),
        "smape_percent100": fl(dm.smape(truth, pred, scaled=True)),
        "mase_m1": fl(dm.mase(truth, pred, m=1, time_dim=0)),
        "mase_m3": fl(dm.mase(truth, pred, m=3, time_dim=0)),
        "mase_m2_train": fl(dm.mase(truth, pred, y_train=train, m=2, time_dim=0)),
        "dtw": fl(dm.dtw(truth, pred)[0]),
        "hellinger_bins20": fl(dm.average_hellinger_distance(truth, pred, num_freq_bins=20)),
        # true Pearson r per column (dysts' `pearson` returns Spearman's rho when D = 1)
        "pearson_columnwise": fl(
            np.mean([pearsonr(truth[:, i], pred[:, i])[0] for i in range(D)])
        ),
    }

    per_step = [fl(dm.smape(truth[i], pred[i], scaled=False)) for i in range(T)]
    cumulative = [fl(v) for v in dm.horizoned_metric(truth, pred, dm.smape, scaled=False)]
    exceed = [i for i, v in enumerate(cumulative) if v > VPT_THRESHOLD]
    vpt = exceed[0] if exceed else T

    mi_vals = []
    for s in range(N_MI_SEEDS):
        np.random.seed(s)
        mi_vals.append(float(dm.mutual_information(truth, pred)))
    kl_vals = []
    for s in range(N_KL_SEEDS):
        np.random.seed(s)
        kl_vals.append(float(dm.estimate_kl_divergence(truth, pred)))
    # The deterministic half of dysts' KL estimate: the mean log density ratio of the two
    # isotropic mixtures (covariance 1.0 * I, dysts' default sigma_scale) at fixed points
    # drawn from the truth's mixture. Checked exactly; only the sampling is random.
    np.random.seed(1)
    p_hat = dm.GaussianMixture(truth, 1.0)
    q_hat = dm.GaussianMixture(pred, 1.0)
    kl_points = r8(p_hat.sample(n_samples=N_KL_POINTS).reshape(N_KL_POINTS, D))
    kl_at_points = fl(np.mean(np.log(p_hat(kl_points) / q_hat(kl_points))))

    mi_vals = np.array(mi_vals)
    kl_vals = np.array(kl_vals)
    stochastic = {
        "mutual_information": {
            "n_seeds": N_MI_SEEDS,
            "mean": fl(mi_vals.mean()),
            "std": fl(mi_vals.std()),
            "min": fl(mi_vals.min()),
            "max": fl(mi_vals.max()),
        },
        "kl_divergence": {
            "points": kl_points.reshape(-1).tolist(),
            "mean_log_ratio_at_points": kl_at_points,
            "n_seeds": N_KL_SEEDS,
            "n_samples": 1000,
            "mean": fl(kl_vals.mean()),
            "std": fl(kl_vals.std(ddof=1)),
            "min": fl(kl_vals.min()),
            "max": fl(kl_vals.max()),
        },
    }

    return {
        "name": name,
        "dim": D,
        "truth": truth.reshape(-1).tolist(),
        "pred": pred.reshape(-1).tolist(),
        "train": train.reshape(-1).tolist(),
        "compute_metrics": cm,
        "extra": extra,
        "curves": {
            "smape_per_step_percent200": per_step,
            "smape_cumulative_percent200": cumulative,
            "vpt_threshold": VPT_THRESHOLD,
            "vpt": vpt,
        },
        "stochastic": stochastic,
    }


def main():
    dv = version("dysts")
    if dv != "0.96":
        sys.exit(f"dysts 0.96 required, found {dv}")
    doc = {
        "generator": "scripts/make_forecast_metric_fixture.py",
        "dysts_version": dv,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "sklearn_version": sklearn.__version__,
        "layout": "series are row-major T x D lists; train is the explicit MASE training series",
        "notes": [
            "compute_metrics values were computed under np.random.seed(0)",
            "mutual_information: dysts' code with a scalar-unwrapping shim around sklearn's "
            "mutual_info_regression (dysts 0.96 breaks on numpy >= 2.4 otherwise)",
            "dtw: dysts' code with the same scalar shim around scipy's cdist",
            "mase_* extras use time_dim=0 (the time axis of a T x D array)",
            "curves and vpt are on the sMAPE 0-200 scale (smape(..., scaled=False))",
        ],
        "cases": [case_record(*c) for c in make_cases()],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(doc, indent=1)
    # one line per list of numbers (floats keep json's round-trip repr)
    text = re.sub(
        r"\[\s*([-+0-9.eE,\s]+?)\s*\]",
        lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
        text,
    )
    assert json.loads(text) == doc
    with open(OUT, "w") as f:
        f.write(text + "\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
