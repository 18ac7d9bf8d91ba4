"""The dysts-style system object over the native module (no numerics here: every number comes
from the phaseflow library)."""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar

import numpy as np

from . import _native
from ._native import PhaseflowError

# scipy's solve_ivp method names → phaseflow's methods. The implicit ones (Radau, BDF, LSODA)
# become `auto`: DOP853 that switches to a Rosenbrock method (exact Jacobian) when the problem
# turns stiff. phaseflow's own names are accepted as well.
METHODS = {
    "auto": "auto",
    "dop853": "dop853",
    "rk45": "dopri5",
    "dopri5": "dopri5",
    "radau": "auto",
    "bdf": "auto",
    "lsoda": "auto",
    "rk4": "rk4",
    "rosenbrock": "rosenbrock",
}


def _method(name: str) -> str:
    try:
        return METHODS[name.strip().lower()]
    except KeyError:
        raise PhaseflowError(
            f"unknown method {name!r}: one of {', '.join(sorted(set(METHODS)))} "
            "(scipy's DOP853, RK45, Radau, BDF, LSODA or phaseflow's names)"
        ) from None


def _states(x: Any) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


class Params(MutableMapping):
    """The live parameters of a system: `sys.params["rho"] = 30` takes effect at once (unlike
    dysts, where changing an attribute after construction has no effect). Keys cannot be added
    or removed."""

    def __init__(self, native: Any) -> None:
        self._native = native

    def __getitem__(self, key: str) -> float:
        names = self._native.param_names
        try:
            return self._native.param_values[names.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: float) -> None:
        self._native.set_param(key, float(value))

    def __delitem__(self, key: str) -> None:
        raise TypeError("parameters of a system cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter(self._native.param_names)

    def __len__(self) -> int:
        return len(self._native.param_names)

    def __repr__(self) -> str:
        return repr(dict(self))


class DynSys:
    """A system of the catalogue or a user's definition file, compiled to native code.

    `Lorenz(parameters={"rho": 35})`; attributes `name`, `params` (live), `ic`, `dt`, `period`,
    `dimension`, `kind`; a parameter is also an attribute (`sys.rho = 30`, at once)."""

    _system: ClassVar[str | None] = None

    def __init__(self, parameters: dict[str, float] | None = None, *, _native_system: Any = None) -> None:
        if _native_system is None:
            if self._system is None:
                raise TypeError("DynSys is the base class: use phaseflow.flows.NAME or phaseflow.load_system")
            overrides = [(k, float(v)) for k, v in (parameters or {}).items()]
            _native_system = _native.System.load(self._system, overrides)
        elif parameters:
            for k, v in parameters.items():
                _native_system.set_param(k, float(v))
        object.__setattr__(self, "_native", _native_system)
        object.__setattr__(self, "_ic", None)

    # -- attributes ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._native.name

    @property
    def kind(self) -> str:
        """`"flow"`, `"map"` or `"dde"`."""
        return self._native.kind

    @property
    def dimension(self) -> int:
        return self._native.dimension

    @property
    def dt(self) -> float:
        """The file's time step (RK4's step, and the sampling of `resample=False`)."""
        return self._native.dt

    @property
    def period(self) -> float:
        return self._native.period

    @property
    def params(self) -> Params:
        return Params(self._native)

    @property
    def ic(self) -> np.ndarray:
        """The initial condition used when `init_cond` is not given (settable)."""
        return self._native.ic if self._ic is None else self._ic.copy()

    @ic.setter
    def ic(self, value: Any) -> None:
        ic = _states(value)
        if ic.shape != (self.dimension,):
            raise PhaseflowError(f"ic of {self.name} must have shape ({self.dimension},), got {ic.shape}")
        object.__setattr__(self, "_ic", ic)

    @property
    def variables(self) -> list[str]:
        return self._native.variables

    @property
    def source(self) -> str:
        """Where the definition came from (a path, `systems/…` inside the wheel, `<string>`)."""
        return self._native.source

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        native = object.__getattribute__(self, "_native")
        if key in native.param_names:
            return native.param_values[native.param_names.index(key)]
        raise AttributeError(f"{type(self).__name__!r} has no attribute or parameter {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        if not key.startswith("_") and key in self._native.param_names:
            self._native.set_param(key, float(value))
        else:
            object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(parameters={self.params!r})"

    # -- evaluation ---------------------------------------------------------------------------
    def rhs(self, X: Any, t: float = 0.0) -> np.ndarray:
        """f(t, X) for X of shape (D,) or (B, D) (for a map: the next state). For a delay
        equation the delayed terms read the current state (the τ → 0 limit)."""
        x = _states(X)
        if x.ndim == 1:
            return self._native.rhs(x.reshape(1, -1), float(t))[0]
        if x.ndim != 2:
            raise PhaseflowError(f"X must have shape (D,) or (B, D), got {x.shape}")
        return self._native.rhs(x, float(t))

    __call__ = rhs

    def jac(self, X: Any, t: float = 0.0) -> np.ndarray:
        """The exact (symbolic) Jacobian ∂f_i/∂x_j: shape (D, D) for X (D,), (B, D, D) for (B, D)."""
        x = _states(X)
        if x.ndim == 1:
            return self._native.jac(x.reshape(1, -1), float(t))[0]
        if x.ndim != 2:
            raise PhaseflowError(f"X must have shape (D,) or (B, D), got {x.shape}")
        return self._native.jac(x, float(t))

    def make_trajectory(
        self,
        n: int,
        dt: float | None = None,
        init_cond: Any = None,
        resample: bool = True,
        pts_per_period: int = 100,
        return_times: bool = False,
        standardize: bool = False,
        noise: float = 0.0,
        method: str = "auto",
        rtol: float = 1e-12,
        atol: float = 1e-12,
        random_seed: int = 0,
        burn_in: float = 0.0,
    ) -> Any:
        """`n` points as dysts samples them: with `resample` (default) at `pts_per_period`
        points per period, times `linspace(0, period·n/pts_per_period, n)`; without, every `dt`
        (default the file's `dt`). Maps: `n` iterations. `dt`, when given with `resample`, is
        the solver's first step (RK4's fixed step).

        `init_cond` of shape (D,) gives (n, D); a batch (B, D) gives (B, n, D), run in parallel.
        `method`: scipy's names (`DOP853`, `RK45` → phaseflow's DOPRI5; `Radau`, `BDF`, `LSODA`
        → `auto`, DOP853 switching to Rosenbrock when stiff) or phaseflow's. `noise` > 0: additive
        noise σ dW on every component (stochastic Heun at the step `dt`, default the file's). `standardize`: minus the
        file's reference mean, over its reference std. Raises `PhaseflowError` (a ValueError)
        when the integration fails, `KeyboardInterrupt` on Ctrl-C."""
        if isinstance(n, bool) or int(n) != n or n < 2:
            raise PhaseflowError(f"n must be an integer >= 2, got {n!r}")
        init = None if init_cond is None and self._ic is None else (self.ic if init_cond is None else init_cond)
        batch = False
        if init is not None:
            init = _states(init)
            if init.ndim == 1:
                init = init.reshape(1, -1)
            elif init.ndim == 2:
                batch = True
            else:
                raise PhaseflowError(f"init_cond must have shape (D,) or (B, D), got {init.shape}")
        times, sol = self._native.trajectory(
            int(n),
            int(pts_per_period),
            dt_out=None if resample else float(self.dt if dt is None else dt),
            step=None if dt is None else float(dt),
            init=init,
            batch=batch,
            method=_method(method),
            rtol=float(rtol),
            atol=float(atol),
            noise=float(noise),
            seed=int(random_seed),
            burn_in=float(burn_in),
        )
        if standardize:
            mean, std = self._native.reference("mean"), self._native.reference("std")
            if mean is None or std is None:
                raise PhaseflowError(f"{self.name}: standardize needs the file's [reference] mean and std")
            sol = np.ascontiguousarray((sol - np.asarray(mean)) / np.asarray(std))
        return (times, sol) if return_times else sol


def load_system(source: str | os.PathLike[str], parameters: dict[str, float] | None = None) -> DynSys:
    """A system from a definition: TOML text (e.g. a notebook cell; named `<string>` in
    messages), a path, or a catalogue name. Compiled to native code on the spot."""
    overrides = [(k, float(v)) for k, v in (parameters or {}).items()]
    text = os.fspath(source)
    if "\n" in text or "=" in text:
        native = _native.System.from_toml(text, overrides)
    else:
        native = _native.System.load(text, overrides)
    return DynSys(_native_system=native)
