"""The forecasting benchmark of `phaseflow forecast bench`, from Python.

`bench(systems, models, ...)` runs the library's benchmark (`phaseflow::forecast::bench::run`)
with the command line's options and checks, and returns its table: the leaderboard (one row per
model and metric, the command line's `--json` `leaderboard`), or one row per (system, model).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

from . import _native
from ._native import PhaseflowError

__all__ = ["MODELS", "PROTOCOLS", "bench"]

#: The native models (`models=None` runs all of them, as the command line).
MODELS: tuple[str, ...] = tuple(_native.FORECAST_MODELS)
#: The named protocols (see `phaseflow::forecast::data`).
PROTOCOLS: tuple[str, ...] = ("short", "long", "univariate", "custom")


def _names(x: str | os.PathLike[str] | Iterable[str] | None) -> list[str] | None:
    """Names from a comma-separated string, one path, or a list."""
    if x is None:
        return None
    if isinstance(x, os.PathLike):
        x = [os.fspath(x)]
    items = x.split(",") if isinstance(x, str) else [os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in x]
    return [s.strip() for s in items if s.strip()]


def _count(x: Any, what: str) -> int | None:
    if x is None:
        return None
    if isinstance(x, bool) or int(x) != x or x < 0:
        raise PhaseflowError(f"{what} must be an integer >= 0, got {x!r}")
    return int(x)


def _pairs(x: Mapping[str, Any] | Iterable[str] | None, numbers: bool) -> list[str]:
    """`KEY=VALUE` strings from a mapping (numbers written exactly: `repr(float)`) or strings."""
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    if isinstance(x, Mapping):
        return [f"{k}={float(v)!r}" if numbers else f"{k}={v}" for k, v in x.items()]
    return [str(v) for v in x]


def bench(
    systems: str | Iterable[str] = "all",
    models: str | Iterable[str] | None = None,
    *,
    protocol: str = "short",
    per_period: float | None = None,
    train: int | None = None,
    context: int | None = None,
    horizon: int | None = None,
    test_ics: int | None = None,
    standardise: bool = False,
    noise: float = 0.0,
    integrator: str = "auto",
    rtol: float = 1e-9,
    atol: float = 1e-9,
    seed: int = 0,
    output: str | None = None,
    external: Mapping[str, str] | Iterable[str] | None = None,
    external_timeout: float = 600.0,
    vpt_threshold: float = 30.0,
    tune: bool = True,
    hyper: Mapping[str, float] | Iterable[str] | None = None,
    table: str = "leaderboard",
    as_frame: bool = False,
    verbose: bool = False,
) -> Any:
    """Runs the forecasting benchmark of `phaseflow forecast bench` and returns its table.

    Options (the command line's, same defaults and messages):
    `systems`: `"all"` (every flow and delay equation of the catalogue) or names/files (a list
    or a comma-separated string); `models`: native model names (`MODELS`; default all of them,
    none when `external` is given); `protocol`: `short` (100 points per period, train 1000,
    context 1000, horizon 200), `long`, `univariate`, `custom`; `per_period`, `train`, `context`,
    `horizon`, `test_ics`: overrides of the protocol (steps, test trajectories);
    `standardise`; `noise` (observation noise, fraction of each component's std); `integrator`,
    `rtol`, `atol` of the data sets; `seed`; `external`: `{name: command}` (or `"NAME=COMMAND"`
    strings) run through the subprocess protocol, `external_timeout` in seconds;
    `vpt_threshold` (cumulative sMAPE, 0–200); `tune=False` is `--no-tune`; `hyper`:
    `{"nvar.order": 1}` (or `"MODEL.NAME=VALUE"` strings).

    `output`: the directory of data sets, per-pair results, `leaderboard.csv`, `summary.md` and
    plots (a finished (system, model) pair is reused, so an interrupted run resumes); default:
    a temporary directory removed afterwards. With the catalogue built into the package, a
    definition not found with the same text in the on-disk catalogue is written to
    `output/systems/` first (the benchmark reads files).

    Returns, for `table="leaderboard"`: one dict per (model, metric): `model`, `metric`,
    `median`, `mean`, `q25`, `q75`, `iqr` (over systems), `systems_won`, `n` (systems with a
    finite value), `diverged` (test forecasts that diverged) — the rows of the command line's
    `--json` `leaderboard` and of `leaderboard.csv`; for `table="systems"`: one dict per
    (system, model): `system`, `model`, `configuration` (with the chosen hyperparameters), `dt`,
    `lyapunov_max`, `diverged`, and the mean over test trajectories of every metric
    (`phaseflow.metrics`' names; sMAPE on the 0–200 scale, `mase` against the training series,
    `vpt_steps`, `vpt_lyapunov`). Metrics without a value are NaN. `as_frame=True`: a pandas
    DataFrame of the same rows.

    Raises `PhaseflowError` for bad settings or when a data set or pair failed (the message lists
    them; the others' results are in `output`), `KeyboardInterrupt` on Ctrl-C (finished pairs are
    kept in `output`). Progress lines go to `sys.stderr` only with `verbose=True`."""
    if table not in ("leaderboard", "systems"):
        raise PhaseflowError(f"table={table!r}: 'leaderboard' or 'systems'")
    if as_frame:
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError(
                "phaseflow.forecast.bench(as_frame=True) needs pandas (pip install pandas); "
                "without it, bench returns a list of dicts"
            ) from e
    kwargs = dict(
        systems=",".join(_names(systems) or []),
        models=_names(models),
        protocol=str(protocol),
        per_period=None if per_period is None else float(per_period),
        train=_count(train, "train"),
        context=_count(context, "context"),
        horizon=_count(horizon, "horizon"),
        test_ics=_count(test_ics, "test_ics"),
        standardise=bool(standardise),
        noise=float(noise),
        integrator=str(integrator),
        rtol=float(rtol),
        atol=float(atol),
        seed=_count(seed, "seed"),
        external=_pairs(external, numbers=False),
        external_timeout=float(external_timeout),
        vpt_threshold=float(vpt_threshold),
        tune=bool(tune),
        hyper=_pairs(hyper, numbers=True),
        verbose=bool(verbose),
    )
    if output is None:
        with tempfile.TemporaryDirectory(prefix="phaseflow-bench-") as tmp:
            board, per_system, _summary = _native.forecast_bench(tmp, **kwargs)
    else:
        board, per_system, _summary = _native.forecast_bench(str(output), **kwargs)
    rows = board if table == "leaderboard" else per_system
    if as_frame:
        return pd.DataFrame(rows)
    return rows
