"""Type stubs of phaseflow.analysis (invariants, entropy production, training)."""

import os
from typing import Any, Optional, Union

from ._base import DynSys

__all__: list[str]

_Path = Union[str, os.PathLike[str]]

def invariants(
    system: Union[str, os.PathLike[str], DynSys],
    *,
    parameters: Optional[dict[str, float]] = None,
    t_end: Optional[float] = None,
    transient: Optional[float] = None,
    qr_interval: Optional[float] = None,
    exponents: Optional[int] = None,
    ics: int = 1,
    seed: int = 0,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    correlation_points: int = 20000,
) -> dict[str, Any]: ...
def epr(
    system: Union[str, os.PathLike[str], DynSys, None] = None,
    *,
    parameters: Optional[dict[str, float]] = None,
    exact: bool = False,
    model: Optional[_Path] = None,
    data: Optional[_Path] = None,
    batches: int = 20,
    maps: Optional[_Path] = None,
    bins: int = 32,
    diagnostic_samples: int = 500,
    png: Optional[_Path] = None,
    flow_out: Optional[_Path] = None,
    flow_steps: int = 100,
    flow_dt: Optional[float] = None,
    device: str = "cpu",
) -> dict[str, Any]: ...
def train(
    config: Union[_Path, dict[str, Any]],
    data: _Path,
    output: _Path,
    *,
    resume: bool = False,
    steps: Optional[int] = None,
    seed: Optional[int] = None,
    device: str = "cpu",
) -> dict[str, Any]: ...
