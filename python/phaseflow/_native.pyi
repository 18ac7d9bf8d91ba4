"""Type stubs of the native module (python/src/lib.rs)."""

from typing import Optional

import numpy as np
import numpy.typing as npt

class PhaseflowError(ValueError): ...

def catalogue() -> list[tuple[str, Optional[str], str, Optional[str]]]: ...
def catalogue_dir() -> Optional[str]: ...

# python/src/analysis.rs: the --json text of `phaseflow invariants`, `epr`, `train`
def invariants(
    system: "System",
    overrides: list[tuple[str, float]] = ...,
    t_end: Optional[float] = None,
    transient: Optional[float] = None,
    qr_interval: Optional[float] = None,
    exponents: Optional[int] = None,
    ics: int = 1,
    seed: int = 0,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    correlation_points: int = 20000,
) -> str: ...
def epr_exact(system: str, text: bool = False, overrides: list[tuple[str, float]] = ...) -> str: ...
def epr_exact_system(system: "System", overrides: list[tuple[str, float]] = ...) -> str: ...
def epr_samples(
    data: Optional[str],
    model: Optional[str] = None,
    system: Optional[str] = None,
    system_text: bool = False,
    overrides: list[tuple[str, float]] = ...,
    batches: int = 20,
    maps: Optional[str] = None,
    bins: int = 32,
    diagnostic_samples: int = 500,
    png: Optional[str] = None,
    flow_out: Optional[str] = None,
    flow_steps: int = 100,
    flow_dt: Optional[float] = None,
    device: str = "cpu",
) -> str: ...
def train_config(
    source: str, label: str, json: bool = False, steps: Optional[int] = None, seed: Optional[int] = None
) -> str: ...
def train(
    config: str,
    data: str,
    output: str,
    resume: bool = False,
    device: str = "cpu",
    config_label: Optional[str] = None,
) -> tuple[str, list[float]]: ...

class System:
    @staticmethod
    def load(system: str, overrides: list[tuple[str, float]] = ...) -> "System": ...
    @staticmethod
    def from_toml(text: str, overrides: list[tuple[str, float]] = ...) -> "System": ...
    @property
    def source(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def dt(self) -> float: ...
    @property
    def period(self) -> float: ...
    @property
    def ic(self) -> npt.NDArray[np.float64]: ...
    @property
    def variables(self) -> list[str]: ...
    @property
    def param_names(self) -> list[str]: ...
    @property
    def param_values(self) -> list[float]: ...
    def reference(self, key: str) -> Optional[list[float]]: ...
    def reference_number(self, key: str) -> Optional[float]: ...
    def set_param(self, name: str, value: float) -> None: ...
    def rhs(self, x: npt.NDArray[np.float64], t: float) -> npt.NDArray[np.float64]: ...
    def jac(self, x: npt.NDArray[np.float64], t: float) -> npt.NDArray[np.float64]: ...
    def trajectory(
        self,
        points: int,
        per_period: int = 100,
        dt_out: Optional[float] = None,
        step: Optional[float] = None,
        init: Optional[npt.NDArray[np.float64]] = None,
        batch: bool = False,
        method: str = "auto",
        rtol: float = 1e-12,
        atol: float = 1e-12,
        noise: float = 0.0,
        seed: int = 0,
        burn_in: float = 0.0,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
