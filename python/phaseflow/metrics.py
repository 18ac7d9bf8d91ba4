"""Forecast-skill metrics with dysts' names and calls (`dysts.metrics`, version 0.96), computed by
the phaseflow library (`phaseflow::forecast::metrics`, the definitions `phaseflow forecast bench`
scores with). No numerics here: this module only reshapes arrays and averages over batches.

Shapes: a series is `(T,)` (one component) or `(T, D)`: T time steps (rows) of D components.
`compute_metrics` also takes a batch axis, as dysts does. Arrays are converted to float64.

`compute_metrics(y_true, y_pred)` returns dysts' 17 metrics plus `mase`, `dtw` and the valid
prediction time `vpt`; each metric is also a function (`smape(y_true, y_pred)`, ...).

Where phaseflow differs from dysts 0.96 (each deliberate; `tests/test_dysts_parity.py` checks
every other value against dysts to 1e-9 relative):

- `mase` takes the naive seasonal error along the **time** axis (dysts' `time_dim=0`). dysts'
  default `time_dim=-1` differences a `(T, D)` array across its components, which is not a
  naive forecast (and fails for D = 1).
- `dtw` returns the cost only (dysts' `dtw(...)[0]`), not the matrix and the warping path.
- `mutual_information` and `estimate_kl_divergence` are seeded (`seed=`), where dysts draws from
  numpy's global random state: mutual information adds 1e-10-relative noise before its KSG count
  (scikit-learn's estimator), which only reorders ties, so on data without ties the value is
  dysts' to rounding; the KL estimate is a Monte Carlo mean over `n_samples` points, equal to
  dysts' in distribution (`kl_divergence_at_points` is its deterministic part, equal to dysts').
- `average_hellinger_distance` clamps `1 − Σ sqrt(p q)` at 0 (dysts returns NaN when rounding
  makes it −2e-16 for identical spectra).
- Undefined values are NaN where dysts divides by zero (±inf, with a warning) or raises:
  R² of a constant truth, a correlation of a constant column, fewer points than an estimator
  needs. A series with T = 1 and D > 1 gives NaN correlations (dysts squeezes it and correlates
  across components).
- `eps` is dysts' 1e-10 everywhere; another value raises `PhaseflowError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from . import _native
from ._native import PhaseflowError

__all__ = [
    "DYSTS_METRICS",
    "METRICS",
    "average_hellinger_distance",
    "coefficient_of_variation",
    "compute_metrics",
    "cumulative_smape",
    "dtw",
    "error_vs_horizon",
    "estimate_kl_divergence",
    "horizoned_metric",
    "kendall",
    "kl_divergence_at_points",
    "mae",
    "mape",
    "marre",
    "mase",
    "mse",
    "mutual_information",
    "nrmse",
    "pearson",
    "r2_score",
    "rmse",
    "rmsle",
    "smape",
    "spearman",
    "steps_to_lyapunov_times",
    "valid_prediction_time",
    "wape",
]

#: The keys of dysts 0.96's `compute_metrics`, in its order.
DYSTS_METRICS: tuple[str, ...] = tuple(_native.METRIC_KEYS[:17])
#: The keys of `compute_metrics`: dysts' 17, then `mase`, `dtw` and `vpt`.
METRICS: tuple[str, ...] = tuple(_native.METRIC_KEYS)

_EPS = 1e-10


def _check_eps(eps: float) -> None:
    if eps != _EPS:
        raise PhaseflowError(f"eps={eps!r}: phaseflow's metrics use dysts' eps = 1e-10")


def _series(x: Any, name: str) -> np.ndarray:
    """(T, D) float64, C-contiguous, from (T,) or (T, D)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim != 2:
        raise PhaseflowError(f"{name} must have shape (T,) or (T, D), got {a.shape}")
    return np.ascontiguousarray(a)


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise PhaseflowError(
            f"y_true {a.shape} and y_pred {b.shape} must have broadcastable shapes"
        ) from None
    return _series(a, "y_true"), _series(b, "y_pred")


def _metric(key: str, y_true: Any, y_pred: Any, **settings: Any) -> float:
    a, b = _pair(y_true, y_pred)
    [(_, values)] = _native.metrics_batch(a[None], b[None], [key], **settings)
    return float(values[0])


def compute_metrics(
    y_true: Any,
    y_pred: Any,
    verbose: bool = False,
    include: Iterable[str] | None = None,
    batch_axis: int | None = None,
    *,
    seed: int = 0,
    vpt_threshold: float = 30.0,
) -> dict[str, float]:
    """Every forecast metric of `y_pred` against `y_true`, as dysts' `compute_metrics`:
    `{name: float}` in the order of `METRICS` (or of `include`).

    Shapes: `(T,)` or `(T, D)` (then `batch_axis=None`, dysts' default, treats it as one
    batch member), or with a batch axis, e.g. `(B, T, D)` with `batch_axis=0`: each metric is
    computed for every batch member and the values are averaged (`np.mean`, as dysts). The two
    arrays are broadcast to one shape first (dysts requires broadcastable shapes) and must have
    the same batch length.

    Keys (dysts' 17, then three more):
    `mse`, `mae`, `rmse`, `nrmse` (each component scaled by the truth's std), `marre`,
    `r2_score`, `rmsle`, `smape` (0–100: dysts' `scaled=True`), `mape`, `wape`, `spearman`,
    `pearson` (for D = 1 dysts, and therefore phaseflow, returns Spearman's rho), `kendall`,
    `coefficient_of_variation`, `mutual_information` (nats, seeded), `kl_divergence` (seeded
    Monte Carlo, 1000 samples, covariance 1·I), `hellinger_distance` (spectral, 100 bins),
    `mase` (naive one-step error of `y_true` along time, dysts' `mase(..., time_dim=0)`),
    `dtw` (dysts' `dtw(...)[0]`), and
    `vpt`: the valid prediction time **in time steps** (rows): the number of leading steps
    before the cumulative sMAPE on the 0–200 scale (`cumulative_smape(..., scaled=False)`) first
    exceeds `vpt_threshold` (default 30, as `phaseflow forecast bench --vpt-threshold`), T if
    it never does (`phaseflow::forecast::metrics::valid_prediction_time`). Times the sampling
    step dt it is a time; times dt·λ_max, Lyapunov times (`steps_to_lyapunov_times`).

    `include`: the keys to compute (unknown ones raise `PhaseflowError` listing the valid ones).
    `seed`: the seed of mutual information's noise and the KL samples (dysts uses numpy's global
    random state). `verbose`: print `name: value` lines. Runs with the GIL released; Ctrl-C
    raises `KeyboardInterrupt` once the metric being computed is done (with `include=None`, the
    batch member)."""
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if batch_axis is None:
        a, b, axis = a[None, ...], b[None, ...], 0
    else:
        axis = int(batch_axis)
    if a.ndim != b.ndim:
        raise PhaseflowError(f"y_true {a.shape} and y_pred {b.shape} have different numbers of axes")
    try:
        na, nb = a.shape[axis], b.shape[axis]
    except IndexError:
        raise PhaseflowError(f"batch_axis={batch_axis} is not an axis of shape {a.shape}") from None
    if na != nb:
        raise PhaseflowError(
            f"specified batch_dim {batch_axis} must be the same for y_true and y_pred "
            f"(got {na} and {nb})"
        )
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise PhaseflowError(
            f"y_true {a.shape} and y_pred {b.shape} must have broadcastable shapes"
        ) from None
    a, b = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    elif a.ndim != 3:
        raise PhaseflowError(
            f"each batch member must have shape (T,) or (T, D), got {a.shape[1:]}"
        )
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    keys = None
    if include is not None:
        keys = [include] if isinstance(include, str) else list(include)
        bad = [k for k in keys if k not in METRICS]
        if bad:
            raise PhaseflowError(
                f"Invalid metrics specified: {', '.join(map(str, bad))}. Must be one of {list(METRICS)}"
            )
    values = _native.metrics_batch(
        a, b, keys, seed=int(seed), vpt_threshold=float(vpt_threshold)
    )
    metrics = {k: float(np.mean(v)) for k, v in values}
    if verbose:
        for key, value in metrics.items():
            print(f"{key}: {value:.4f}")
    return metrics


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error `mean((y − ŷ)²)` over all T·D entries."""
    return _metric("mse", y_true, y_pred)


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error `mean|y − ŷ|` over all T·D entries."""
    return _metric("mae", y_true, y_pred)


def rmse(x: Any, y: Any) -> float:
    """Root mean squared error `sqrt(mse)`."""
    return _metric("rmse", x, y)


def nrmse(y_true: Any, y_pred: Any, eps: float = 1e-10, scale: Any = None) -> float:
    """Normalised RMSE `sqrt(mean_{t,d}((y − ŷ)² / (σ_d² + ε)))`, `σ_d` the population std of
    component d of `y_true` (or `scale`, shape (D,))."""
    _check_eps(eps)
    sc = None if scale is None else [float(v) for v in np.atleast_1d(np.asarray(scale, dtype=np.float64))]
    return _metric("nrmse", y_true, y_pred, nrmse_scale=sc)


def marre(y_true: Any, y_pred: Any, eps: float = 1e-10) -> float:
    """Mean absolute ranged relative error, percent: `100·mean|y − ŷ| / (max y − min y + ε)`."""
    _check_eps(eps)
    return _metric("marre", y_true, y_pred)


def r2_score(y_true: Any, y_pred: Any) -> float:
    """`1 − Σ(y − ŷ)² / Σ(y − ȳ)²`, ȳ the mean of all entries (NaN for a constant truth)."""
    return _metric("r2_score", y_true, y_pred)


def rmsle(y_true: Any, y_pred: Any, eps: float = 1e-10) -> float:
    """Root mean squared log error after shifting each component of each series to its own
    minimum + ε: `sqrt(mean((ln(ŷ' + 1) − ln(y' + 1))²))`."""
    _check_eps(eps)
    return _metric("rmsle", y_true, y_pred)


def smape(x: Any, y: Any, eps: float = 1e-10, scaled: bool = True) -> float:
    """Symmetric mean absolute percentage error `f·mean(|x − y| / (|x| + |y| + ε))`, f = 100
    (`scaled`, dysts' default: 0–100) or 200 (0–200)."""
    _check_eps(eps)
    return _metric("smape", x, y, smape_scaled=bool(scaled))


def mape(y_true: Any, y_pred: Any, eps: float = 1e-10) -> float:
    """Mean absolute percentage error, percent: `100·mean|(y − ŷ) / (y + ε)|`."""
    _check_eps(eps)
    return _metric("mape", y_true, y_pred)


def wape(y_true: Any, y_pred: Any, eps: float = 1e-10) -> float:
    """Weighted absolute percentage error, percent: `100·Σ|y − ŷ| / (Σ|y| + ε)`."""
    _check_eps(eps)
    return _metric("wape", y_true, y_pred)


def spearman(y_true: Any, y_pred: Any) -> float:
    """Spearman's rank correlation, mean over the D components."""
    return _metric("spearman", y_true, y_pred)


def pearson(y_true: Any, y_pred: Any) -> float:
    """dysts' `pearson`: the mean over components of Pearson's r for D > 1, and (dysts'
    quirk, kept) Spearman's rho for D = 1."""
    return _metric("pearson", y_true, y_pred)


def kendall(y_true: Any, y_pred: Any) -> float:
    """Kendall's tau-b, mean over the D components (O(T²))."""
    return _metric("kendall", y_true, y_pred)


def coefficient_of_variation(y_true: Any, y_pred: Any, eps: float = 1e-10) -> float:
    """Percent: `100·std(y − ŷ) / (mean(y) + ε)` (population std of all entries; signed)."""
    _check_eps(eps)
    return _metric("coefficient_of_variation", y_true, y_pred)


def mutual_information(y_true: Any, y_pred: Any, *, seed: int = 0) -> float:
    """Mutual information in nats between each true and predicted component (scikit-learn's
    KSG estimator, k = 3, on std-scaled variables plus seeded 1e-10-relative noise), mean over
    the D components. O(T²) per component."""
    return _metric("mutual_information", y_true, y_pred, seed=int(seed))


def estimate_kl_divergence(
    true_orbit: Any,
    generated_orbit: Any,
    n_samples: int = 1000,
    sigma_scale: float | None = 1.0,
    *,
    seed: int = 0,
) -> float:
    """KL(p̂ ‖ q̂) between the attractors: p̂, q̂ equal-weight Gaussian mixtures with covariance
    `sigma_scale`·I (a variance, as in dysts) on the T rows of each orbit; the Monte Carlo mean of
    log p̂/q̂ over `n_samples` draws from p̂ (seeded). dysts' `sigma_scale=None` is not provided."""
    if sigma_scale is None:
        raise PhaseflowError("sigma_scale=None (locally adapted widths) is not provided by phaseflow")
    return _metric(
        "kl_divergence",
        true_orbit,
        generated_orbit,
        kl_samples=int(n_samples),
        kl_variance=float(sigma_scale),
        seed=int(seed),
    )


def kl_divergence_at_points(
    true_orbit: Any, generated_orbit: Any, points: Any, sigma_scale: float = 1.0
) -> float:
    """The deterministic part of `estimate_kl_divergence`: `mean_s log(p̂(s)/q̂(s))` over the
    rows of `points` (S, D) (in log-sum-exp form, so it stays finite where the ratio of
    densities would underflow)."""
    a, b = _pair(true_orbit, generated_orbit)
    s = _series(points, "points")
    return float(_native.kl_divergence_at_points(a, b, s, float(sigma_scale)))


def average_hellinger_distance(ts_true: Any, ts_gen: Any, num_freq_bins: int = 100) -> float:
    """Spectral Hellinger distance, mean over components: the power spectra |FFT|² of each
    component, their first `num_freq_bins` bins normalised to sum 1 (p, q), and
    `sqrt(1 − Σ sqrt(p q))`, in [0, 1]."""
    return _metric("hellinger_distance", ts_true, ts_gen, hellinger_bins=int(num_freq_bins))


def mase(
    y: Any, yhat: Any, y_train: Any = None, m: int = 1, time_dim: int = 0, eps: float = 1e-10
) -> float:
    """Mean absolute scaled error `mean|y − ŷ| / (s + ε)`, with the naive seasonal error
    `s = mean|y_train[t] − y_train[t − m]|` along **time** (`y_train` default: `y`). This is
    dysts' `mase(..., time_dim=0)`; dysts' default `time_dim=-1` (across components) is not
    provided. NaN unless 0 < m < len(y_train)."""
    _check_eps(eps)
    a = np.asarray(y)
    if time_dim not in (0, -a.ndim):
        raise PhaseflowError(
            f"time_dim={time_dim}: phaseflow's mase takes the naive error along time (axis 0)"
        )
    train = None if y_train is None else _series(y_train, "y_train")
    return _metric("mase", y, yhat, mase_m=int(m), mase_train=train)


def dtw(y_true: Any, y_pred: Any) -> float:
    """Dynamic time warping cost of (T, D) against (T', D) (the lengths may differ): the
    accumulated Euclidean cost divided by (T + 1) + (T' + 1), i.e. dysts' `dtw(...)[0]` (dysts
    also returns the matrix and the path). O(T·T')."""
    return float(_native.dtw_cost(_series(y_true, "y_true"), _series(y_pred, "y_pred")))


def valid_prediction_time(y_true: Any, y_pred: Any, threshold: float = 30.0) -> int:
    """Valid prediction time in steps: the first step t at which the cumulative sMAPE (0–200)
    of steps 0..t exceeds `threshold`; T if it never does (the `vpt` of `compute_metrics`)."""
    return int(_metric("vpt", y_true, y_pred, vpt_threshold=float(threshold)))


def steps_to_lyapunov_times(steps: int, dt: float, lambda_max: float) -> float:
    """`steps·dt·λ_max`: a number of steps of size `dt` in Lyapunov times 1/λ_max (NaN unless dt
    and λ_max are finite and > 0)."""
    return float(_native.steps_to_lyapunov_times(int(steps), float(dt), float(lambda_max)))


def error_vs_horizon(y_true: Any, y_pred: Any, scaled: bool = False) -> np.ndarray:
    """sMAPE of each step (averaged over components), shape (T,); 0–200 unless `scaled`."""
    a, b = _pair(y_true, y_pred)
    return _native.smape_vs_horizon(a, b, False, bool(scaled))


def cumulative_smape(y_true: Any, y_pred: Any, scaled: bool = False) -> np.ndarray:
    """sMAPE of steps 0..t for each t, shape (T,) (dysts' `horizoned_metric(y, ŷ, smape,
    scaled=...)`); 0–200 unless `scaled`."""
    a, b = _pair(y_true, y_pred)
    return _native.smape_vs_horizon(a, b, True, bool(scaled))


def horizoned_metric(
    y_true: Any,
    y_pred: Any,
    metric: Callable[..., float],
    *args: Any,
    horizon: int | None = None,
    **kwargs: Any,
) -> list[float]:
    """`[metric(y_true[:i + 1], y_pred[:i + 1], *args, **kwargs) for i in range(horizon)]`, as
    dysts (horizon default: len(y_true))."""
    if horizon is None:
        horizon = len(y_true)
    return [metric(y_true[: i + 1], y_pred[: i + 1], *args, **kwargs) for i in range(horizon)]
