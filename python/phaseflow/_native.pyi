"""Type stubs of the native module (python/src/lib.rs)."""

from typing import Any, Optional

import numpy as np
import numpy.typing as npt

class PhaseflowError(ValueError): ...

def catalogue() -> list[tuple[str, Optional[str], str, Optional[str]]]: ...
def catalogue_dir() -> Optional[str]: ...
def simulate_particles(
    model: str,
    text: bool = False,
    overrides: list[tuple[str, float]] = ...,
    steps: Optional[int] = None,
    t_end: Optional[float] = None,
    every: Optional[int] = None,
    burn_in: float = 0.0,
    replicas: int = 1,
    seed: int = 0,
    threads: Optional[int] = None,
    output: Optional[str] = None,
    checkpoint_interval: Optional[float] = None,
    command: str = "",
) -> dict[str, Any]: ...

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

# -- forecast metrics (python/src/metrics.rs) -------------------------------------------------
METRIC_KEYS: list[str]
DEFAULT_VPT_THRESHOLD: float

def metrics_batch(
    y_true: npt.NDArray[np.float64],
    y_pred: npt.NDArray[np.float64],
    keys: Optional[list[str]] = None,
    *,
    smape_scaled: bool = True,
    nrmse_scale: Optional[list[float]] = None,
    mase_m: int = 1,
    mase_train: Optional[npt.NDArray[np.float64]] = None,
    seed: int = 0,
    kl_samples: int = 1000,
    kl_variance: float = 1.0,
    hellinger_bins: int = 100,
    vpt_threshold: float = 30.0,
) -> list[tuple[str, list[float]]]: ...
def dtw_cost(y_true: npt.NDArray[np.float64], y_pred: npt.NDArray[np.float64]) -> float: ...
def kl_divergence_at_points(
    y_true: npt.NDArray[np.float64],
    y_pred: npt.NDArray[np.float64],
    points: npt.NDArray[np.float64],
    variance: float,
) -> float: ...
def smape_vs_horizon(
    y_true: npt.NDArray[np.float64], y_pred: npt.NDArray[np.float64], cumulative: bool, scaled: bool
) -> npt.NDArray[np.float64]: ...
def steps_to_lyapunov_times(steps: int, dt: float, lambda_max: float) -> float: ...

# -- forecast benchmark (python/src/forecast.rs) ----------------------------------------------
FORECAST_MODELS: list[str]

def forecast_bench(
    output: str,
    systems: str = "all",
    models: Optional[list[str]] = None,
    protocol: str = "short",
    per_period: Optional[float] = None,
    train: Optional[int] = None,
    context: Optional[int] = None,
    horizon: Optional[int] = None,
    test_ics: Optional[int] = None,
    standardise: bool = False,
    noise: float = 0.0,
    integrator: str = "auto",
    rtol: float = 1e-9,
    atol: float = 1e-9,
    seed: int = 0,
    external: list[str] = ...,
    external_timeout: float = 600.0,
    vpt_threshold: float = 30.0,
    tune: bool = True,
    hyper: list[str] = ...,
    verbose: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]: ...
