"""scripts/dask_sweep.py: a sweep of `phaseflow.invariants` over a Dask LocalCluster (two worker
processes) equals the serial run exactly. Skipped only when dask or distributed is not
installed (scripts/deps.sh installs both)."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


def load_example():
    spec = importlib.util.spec_from_file_location("dask_sweep", ROOT / "scripts" / "dask_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dask_sweep_equals_serial():
    ex = load_example()
    axes = dict([ex.parse_range("rho=20:26:2"), ex.parse_range("sigma=10")])
    assert axes == {"rho": [20.0, 22.0, 24.0, 26.0], "sigma": [10.0]}
    settings = dict(t_end=30.0, transient=3.0, correlation_points=0)
    serial = ex.serial_sweep("lorenz", axes, **settings)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dist = ex.dask_sweep(client, "lorenz", axes, **settings)
        # the work really ran on the two worker processes
        assert len(client.scheduler_info()["workers"]) == 2
    assert len(dist) == len(serial) == 4
    assert ex.same(dist, serial)
    # not vacuous: the points differ from one another, and a changed setting changes a result
    assert not ex.same(serial[0], serial[1])
    assert not ex.same(serial[:1], ex.serial_sweep("lorenz", {"rho": [20.0]}, **dict(settings, t_end=31.0)))
    # rho = 20 is below the chaotic threshold (λ1 ≈ 0), rho = 26 chaotic (λ1 > 0.5)
    assert serial[0]["lyapunov_spectrum"][0] < 0.2 < 0.5 < serial[3]["lyapunov_spectrum"][0]
