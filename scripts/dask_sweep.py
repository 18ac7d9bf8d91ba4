#!/usr/bin/env python3
"""A parameter sweep of the invariants distributed with Dask, equal to a serial run.

The grid is that of `phaseflow sweep SYSTEM --set NAME=START:STOP:STEP ...`: the product of the
ranges, the first varying slowest; each point is one call of the Python package's public
`phaseflow.invariants(system, parameters=..., ...)`, which is deterministic (seeded), so a
point gives the same numbers on any worker. `dask_sweep` submits the points to a Dask cluster
(`client.map`) and gathers them in grid order; `serial_sweep` runs them in this process.

    python3 scripts/dask_sweep.py lorenz --set rho=20:30:2 --t-end 50 --workers 2

starts a `LocalCluster(n_workers=2, processes=True)`, runs both and checks that every result is
identical (`wall_seconds`, a timing, aside). On a cluster, connect a `distributed.Client` to the
scheduler (e.g. one started by dask-jobqueue's `SLURMCluster`) and call `dask_sweep(client, ...)`.
python/tests/test_dask_sweep.py runs this file's functions.
"""

from __future__ import annotations

import argparse
import itertools
import math
from typing import Any

import numpy as np


def parse_range(text: str) -> tuple[str, list[float]]:
    """`NAME=START:STOP:STEP` -> (NAME, [START, START+STEP, ... <= STOP]) as `phaseflow sweep`
    computes them (START + j*STEP, STOP included within 1e-9 of a step); `NAME=VALUE` -> one
    value."""
    name, _, spec = text.partition("=")
    parts = [float(p) for p in spec.split(":")]
    if len(parts) == 1:
        return name.strip(), parts
    start, stop, step = parts
    if not (step > 0 and math.isfinite(start) and math.isfinite(stop) and stop >= start):
        raise ValueError(f"--set {text!r}: need finite START <= STOP and STEP > 0")
    n = math.floor((stop - start) / step + 1e-9)
    return name.strip(), [start + j * step for j in range(n + 1)]


def grid_points(axes: dict[str, list[float]]) -> list[dict[str, float]]:
    """The points of the grid, the first axis varying slowest (the order of `phaseflow sweep`)."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*(axes[n] for n in names))]


def invariants_at(system: str, point: dict[str, float], settings: dict[str, Any]) -> dict[str, Any]:
    """The invariants of `system` at `point` (`phaseflow.invariants`), without the timing."""
    import phaseflow

    out = phaseflow.invariants(system, parameters=point, **settings)
    out.pop("wall_seconds", None)
    return out


def serial_sweep(system: str, axes: dict[str, list[float]], **settings: Any) -> list[dict[str, Any]]:
    """Every point in this process, in grid order."""
    return [invariants_at(system, p, settings) for p in grid_points(axes)]


def dask_sweep(client: Any, system: str, axes: dict[str, list[float]], **settings: Any) -> list[dict[str, Any]]:
    """Every point as one Dask task on `client`'s workers; results in grid order."""
    points = grid_points(axes)
    futures = client.map(invariants_at, [system] * len(points), points, [settings] * len(points), pure=False)
    return client.gather(futures)


def same(a: Any, b: Any) -> bool:
    """Exact equality of two results (arrays element for element, NaN equal to NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("system")
    ap.add_argument("--set", action="append", required=True, metavar="NAME=START:STOP:STEP")
    ap.add_argument("--t-end", type=float, default=50.0)
    ap.add_argument("--transient", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    from distributed import Client, LocalCluster

    axes = dict(parse_range(s) for s in a.set)
    settings = dict(t_end=a.t_end, transient=a.transient, correlation_points=0)
    with LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True) as cluster, Client(cluster) as client:
        distributed = dask_sweep(client, a.system, axes, **settings)
    serial = serial_sweep(a.system, axes, **settings)
    for p, r in zip(grid_points(axes), distributed):
        print(p, "lambda =", r["lyapunov_spectrum"])
    if not same(distributed, serial):
        raise SystemExit("the Dask results differ from the serial run")
    print(f"{len(serial)} points: the Dask results equal the serial run")


if __name__ == "__main__":
    main()
