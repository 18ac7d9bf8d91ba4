"""phaseflow against dysts 0.96, called the same way: trajectories of catalogue flows and every
forecast metric.

dysts must be installed (`scripts/deps.sh` installs it): without it these tests FAIL, they are
never skipped.

Shims (numpy >= 2.4): dysts 0.96's `mutual_information` and `dtw` store a length-1 array
(scikit-learn's `mutual_info_regression(...)`, scipy's 1 x 1 `cdist(...)`) into a float slot,
which numpy 2.4 rejects ("setting an array element with a sequence"). The fixture
`dysts_numpy_shims` wraps those two calls inside `dysts.metrics` so that they return the scalar;
the estimators themselves (scikit-learn's, scipy's) and dysts' code around them are untouched.

Determinism in dysts: two metrics draw from numpy's global random state. `mutual_information`
(scikit-learn adds noise of relative size 1e-10 before its KSG neighbour count; the noise only
orders tied values, so on tie-free data the value does not depend on the draw — checked here —
and phaseflow must match to 1e-9; with ties it is one draw of a distribution, checked against
dysts' spread over 30 seeds) and `kl_divergence` (a Monte Carlo mean over 1000 samples: its
deterministic part, the mean log density ratio at given points, is checked to 1e-9 at dysts' own
samples; the estimate itself to 5 combined standard errors). Every other metric is deterministic
and checked to 1e-9 relative.
"""

import importlib.metadata
import math
import warnings

import numpy as np
import pytest

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Numba not installed. Falling back to no JIT"
        import dysts.flows as dflows
        import dysts.metrics as dm
except ImportError as e:  # never a skip: the parity tests must run
    pytest.fail(f"dysts 0.96 is needed by the parity tests: run scripts/deps.sh ({e!r})", pytrace=False)

import phaseflow.flows as pflows
from phaseflow import metrics as M

RTOL = 1e-9

if importlib.metadata.version("dysts") != "0.96":
    pytest.fail(f"dysts {importlib.metadata.version('dysts')} installed; the parity tests pin 0.96 "
                "(run scripts/deps.sh)", pytrace=False)


@pytest.fixture(autouse=True)
def dysts_numpy_shims(monkeypatch):
    mir = dm.mutual_info_regression
    cdist = dm.cdist
    monkeypatch.setattr(dm, "mutual_info_regression",
                        lambda *a, **k: float(np.asarray(mir(*a, **k)).reshape(-1)[0]))
    monkeypatch.setattr(dm, "cdist", lambda *a, **k: float(cdist(*a, **k)[0, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dysts' numba and scipy warnings
        yield


def close(ours, theirs, what, rtol=RTOL, atol=1e-12):
    assert math.isfinite(ours) and math.isfinite(float(theirs)), (what, ours, theirs)
    assert abs(ours - float(theirs)) <= rtol * abs(float(theirs)) + atol, (what, ours, float(theirs))


# -- trajectories -----------------------------------------------------------------------------

# Five flows from different families: convection (Lorenz), chemical spiral (Rossler), a
# piecewise-linear circuit (Chua), a neuron model (HindmarshRose), a 4-D hyperchaotic flow
# (HyperRossler). None has dysts postprocessing (a change of coordinates of the output).
SYSTEMS = ["Lorenz", "Rossler", "Chua", "HindmarshRose", "HyperRossler"]


@pytest.mark.parametrize("method", ["Radau", "DOP853"])
@pytest.mark.parametrize("name", SYSTEMS)
def test_make_trajectory_matches_dysts(name, method):
    """One period (n = 100 at 100 points per period) at rtol = atol = 1e-12 from the default
    initial condition: the same time grid to 1e-12, states within 1e-6 relative (to each
    component's largest magnitude: a pointwise ratio is meaningless at zero crossings).

    Methods: dysts' default Radau against phaseflow's `method="Radau"` (the automatic method,
    DOP853 switching to Rosenbrock if stiff), and DOP853 on both sides. At 1e-12 both dysts
    methods agree with phaseflow to ~1e-8 or better (measured: Radau ≤ 6e-10, DOP853 ≤ 2e-8 of
    the component scale on these five), far inside 1e-6; Radau is the slow one (~1 s each)."""
    d, p = getattr(dflows, name)(), getattr(pflows, name)()
    assert not hasattr(d, "_postprocessing")
    # the premise: the same system
    np.testing.assert_array_equal(np.asarray(d.ic, dtype=float), p.ic)
    assert {k: float(np.asarray(v)) for k, v in d.params.items()} == dict(p.params)
    assert d.period == p.period
    kw = dict(resample=True, pts_per_period=100, return_times=True, rtol=1e-12, atol=1e-12, method=method)
    td, xd = d.make_trajectory(100, **kw)
    tp, xp = p.make_trajectory(100, **kw)
    assert tp.shape == td.shape == (100,) and xp.shape == xd.shape == (100, p.dimension)
    np.testing.assert_allclose(tp, td, rtol=1e-12, atol=0)
    scale = np.max(np.abs(xd), axis=0)
    assert np.all(np.abs(xp - xd) <= 1e-6 * scale), np.max(np.abs(xp - xd) / scale)


# -- metrics ----------------------------------------------------------------------------------

def pair(seed, shape):
    """Random positive series and a correlated prediction (no ties, no values near 0)."""
    rng = np.random.default_rng(seed)
    y = rng.random(shape) + 0.5
    return y, y + 0.1 * rng.standard_normal(shape)


DETERMINISTIC = [k for k in M.DYSTS_METRICS if k != "kl_divergence"]


@pytest.mark.parametrize("shape", [(200, 3), (150, 1), (64, 2)])
def test_compute_metrics_matches_dysts(shape):
    y, p = pair(sum(shape), shape)
    np.random.seed(0)
    theirs = dm.compute_metrics(y, p)
    ours = M.compute_metrics(y, p)
    assert list(theirs) == list(M.DYSTS_METRICS) == list(ours)[:17]
    for k in DETERMINISTIC:
        close(ours[k], theirs[k], k)


def test_compute_metrics_of_a_1d_series_matches_dysts():
    # dysts' compute_metrics fails on (T,) for mutual_information and hellinger_distance
    # (they index shape[1]); phaseflow treats (T,) as (T, 1), which dysts computes
    y, p = pair(5, (300,))
    ours = M.compute_metrics(y, p)
    theirs = dm.compute_metrics(y, p, include=[k for k in DETERMINISTIC
                                               if k not in ("mutual_information", "hellinger_distance")])
    theirs_2d = dm.compute_metrics(y[:, None], p[:, None], include=["mutual_information", "hellinger_distance"])
    for k, v in {**theirs, **theirs_2d}.items():
        close(ours[k], v, k)


@pytest.mark.parametrize("batch_axis", [0, 1])
def test_batched_compute_metrics_matches_dysts(batch_axis):
    y, p = pair(7, (4, 120, 2))
    if batch_axis == 1:
        y, p = np.moveaxis(y, 0, 1), np.moveaxis(p, 0, 1)
    theirs = dm.compute_metrics(y, p, batch_axis=batch_axis, include=DETERMINISTIC)
    ours = M.compute_metrics(y, p, batch_axis=batch_axis, include=DETERMINISTIC)
    for k in DETERMINISTIC:
        close(ours[k], theirs[k], k)


def test_metric_functions_with_their_arguments_match_dysts():
    y, p = pair(9, (130, 3))
    close(M.smape(y, p, scaled=False), dm.smape(y, p, scaled=False), "smape 0-200")
    close(M.nrmse(y, p, scale=[0.5, 1.0, 2.0]), dm.nrmse(y, p, scale=np.array([0.5, 1.0, 2.0])), "nrmse scale")
    close(M.average_hellinger_distance(y, p, num_freq_bins=20),
          dm.average_hellinger_distance(y, p, num_freq_bins=20), "hellinger 20 bins")
    close(M.pearson(y, p), dm.pearson(y, p), "pearson")
    close(M.pearson(y[:, :1], p[:, :1]), dm.pearson(y[:, :1], p[:, :1]), "pearson D=1 (Spearman)")
    for name in ["mse", "mae", "rmse", "marre", "r2_score", "rmsle", "mape", "wape", "spearman", "kendall",
                 "coefficient_of_variation"]:
        close(getattr(M, name)(y, p), getattr(dm, name)(y, p), name)
    # dtw: dysts returns (cost, matrix, path, path); phaseflow the cost; lengths may differ
    close(M.dtw(y, p), dm.dtw(y, p)[0], "dtw")
    close(M.dtw(y[:50], p[:70]), dm.dtw(y[:50], p[:70])[0], "dtw 50 x 70")
    close(M.compute_metrics(y, p)["dtw"], dm.dtw(y, p)[0], "compute_metrics dtw")


def test_mase_is_dysts_along_time():
    """The documented difference: phaseflow's mase is dysts' mase(..., time_dim=0); dysts'
    default time_dim=-1 takes the naive error across the components, which is phaseflow's
    mase of the transposed arrays."""
    # smooth components at different levels: small steps in time, large ones across components
    rng = np.random.default_rng(12)
    t = np.linspace(0, 4 * np.pi, 100)[:, None]
    y = np.array([1.0, 3.0, 6.0]) + np.sin(t + np.array([0.0, 1.0, 2.0]))
    p = y + 0.05 * rng.standard_normal(y.shape)
    train = y[::-1] * 0.9 + 0.1  # dysts asserts y_train broadcasts with y
    close(M.mase(y, p), dm.mase(y, p, time_dim=0), "mase")
    close(M.compute_metrics(y, p)["mase"], dm.mase(y, p, time_dim=0), "compute_metrics mase")
    close(M.mase(y, p, m=3), dm.mase(y, p, m=3, time_dim=0), "mase m=3")
    close(M.mase(y, p, y_train=train, m=2), dm.mase(y, p, y_train=train, m=2, time_dim=0), "mase y_train")
    close(M.mase(y.T, p.T), dm.mase(y, p), "dysts' default = across components")
    assert M.mase(y, p) > 10 * dm.mase(y, p)


def test_horizon_curves_and_vpt_match_dysts():
    # a forecast that drifts away: the cumulative sMAPE (0-200) crosses 30 inside the series
    t = np.linspace(0, 6 * np.pi, 150)
    y = np.stack([1.5 + np.sin(t), 2.0 + np.cos(0.5 * t)], axis=1)
    p = y * (1.0 + 0.004 * np.arange(150)[:, None] ** 1.2 * np.array([1.0, -0.5]))
    cumulative = dm.horizoned_metric(y, p, dm.smape, scaled=False)
    np.testing.assert_allclose(M.cumulative_smape(y, p), cumulative, rtol=RTOL)
    np.testing.assert_allclose(M.horizoned_metric(y, p, M.smape, scaled=False), cumulative, rtol=RTOL)
    np.testing.assert_allclose(M.error_vs_horizon(y, p), [dm.smape(y[i], p[i], scaled=False) for i in range(150)],
                               rtol=RTOL)
    vpt = next(i for i, v in enumerate(cumulative) if v > 30.0)
    assert 0 < vpt < 150
    assert M.valid_prediction_time(y, p) == vpt == M.compute_metrics(y, p)["vpt"]


def test_hellinger_of_identical_spectra_is_zero():
    # documented difference: dysts takes sqrt of 1 − Σ sqrt(p q), which rounding can make
    # −2e-16 (NaN); phaseflow clamps at 0
    y, _ = pair(14, (128, 2))
    assert M.average_hellinger_distance(y, y) <= 1e-7
    theirs = dm.average_hellinger_distance(y, y)
    assert math.isnan(theirs) or theirs <= 1e-7


def test_mutual_information_without_ties_is_deterministic_and_equal():
    y, p = pair(11, (200, 3))
    draws = []
    for s in range(3):
        np.random.seed(s)
        draws.append(float(dm.mutual_information(y, p)))
    # dysts' noise does not change the value on tie-free data ...
    assert max(draws) - min(draws) <= 1e-12 * abs(draws[0])
    # ... and neither does phaseflow's seed
    ours = [M.mutual_information(y, p, seed=s) for s in range(3)]
    assert ours[0] == ours[1] == ours[2]
    close(ours[0], draws[0], "mutual_information")


def test_mutual_information_with_ties_is_a_draw_of_dysts_distribution():
    rng = np.random.default_rng(15)
    w = np.cumsum(rng.standard_normal((150, 2)), axis=0)
    y = np.round(w * 2) / 2  # half-integer values: many ties
    p = np.round((w + 0.7 * rng.standard_normal(w.shape)) * 2) / 2
    draws = []
    for s in range(30):
        np.random.seed(s)
        draws.append(float(dm.mutual_information(y, p)))
    mean, sd = np.mean(draws), np.std(draws)
    assert sd > 0  # ties: the value depends on the draw
    ours = M.mutual_information(y, p)
    assert abs(ours - mean) <= 5 * sd, (ours, mean, sd)


def test_kl_divergence_matches_dysts():
    y, p = pair(16, (200, 3))
    # the deterministic part at dysts' own Monte Carlo points
    np.random.seed(3)
    p_hat, q_hat = dm.GaussianMixture(y, 1.0), dm.GaussianMixture(p, 1.0)
    points = p_hat.sample(n_samples=1000)
    log_ratio = np.log(p_hat(points) / q_hat(points))
    close(M.kl_divergence_at_points(y, p, points), np.mean(log_ratio), "kl at points")
    # the estimates: two independent 1000-sample means of the same log ratio (dysts' numpy
    # draws, phaseflow's seeded ones), each with standard error sd/sqrt(1000)
    np.random.seed(0)
    theirs = dm.estimate_kl_divergence(y, p)
    se = np.std(log_ratio) / np.sqrt(1000)
    for seed in range(3):
        ours = M.estimate_kl_divergence(y, p, seed=seed)
        assert abs(ours - theirs) <= 5 * np.sqrt(2) * se, (seed, ours, theirs, se)
    assert M.compute_metrics(y, p)["kl_divergence"] == M.estimate_kl_divergence(y, p, seed=0)
