"""The particle engine from Python: `phaseflow simulate` for particle models (active
Ornstein-Uhlenbeck and active Brownian particles in periodic boxes), with the frames returned as
NumPy arrays and, on request, the same H5MD file as the command line.

    >>> from phaseflow import particles
    >>> run = particles.simulate("mips", set={"N": 256}, steps=2000, every=100, replicas=2, seed=1)
    >>> run.position.shape      # (replicas, frames, particles, dimension)
    (2, 21, 256, 2)

No numerics here: every number comes from the phaseflow library (the same code as the command
line, bit for bit).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from . import _native
from ._native import PhaseflowError

__all__ = ["ParticleRun", "simulate", "get_model_list", "PhaseflowError"]


@dataclass(frozen=True)
class ParticleRun:
    """The frames of a particle run and what the command line records with them.

    M replicas of F frames (at steps `burn_in + k·every`, k = 0 … steps/every) of N particles in
    d dimensions; every array is C-contiguous, float64 unless said otherwise, and holds the H5MD
    file's datasets: the particle arrays stack the replicas' datasets (`position[r]` is
    `/particles/replica_r/position/value`, or `/particles/all/…` for one replica), the per-frame
    observables are the file's (F, M) `/observables/<name>/value`.

    Attributes:
        time: (F,) times t = step·dt (model time units).
        step: (F,) int64 step numbers (burn-in included).
        position: (M, F, N, d) positions wrapped into the periodic box [−L/2, L/2)^d.
        image: (M, F, N, d) int32 box crossings: the unwrapped position is `position + image·L`.
        propulsion: (M, F, N, c) the self-propulsion: the AOUP propulsion g (c = d) of
            dx = (v0 g + F − A x) dt + √(2ε) dW, dg = −γ g dt + √(2γ) dB; or the ABP unit
            orientation e (c = d; 2-D angles θ as (cos θ, sin θ)) of dx = (v0 e + μ F) dt + √(2 D_T) dW.
        propulsion_name: `"self_propulsion"` (AOUP) or `"orientation"` (ABP), its H5MD name.
        box: (d,) box edges L (periodic in every direction; fixed: every row of the file's
            `box/edges/value`).
        observables: the file's `/observables` and `/analysis`: per-frame series (F, M) — `msd` (mean-squared
            displacement of the mobile particles from frame 0, unwrapped, summed over the d
            components), `propulsion_autocorrelation` ((1/(N d)) Σ g(t)·g(0), AOUP) or
            `orientation_autocorrelation` ((1/N) Σ e(t)·e(0), ABP), `largest_cluster_fraction`
            (pair forces, d ≥ 2) — and, with pair forces in d ≥ 2, the averages over frames and
            replicas `radial_distribution` {`r`, `value`} and `local_packing_fraction`
            {`bin_edges`, `density`} (dicts of 1-D arrays; `/analysis/<name>/<dataset>`).
        summary: the run summary `phaseflow simulate --json` prints (system, model, output,
            n_particles, dimension, replicas, packing_fraction, box_edge, dt, steps, frames,
            wall_seconds, particle_steps_per_second, threads, largest_cluster_fraction, …).
        parameters: every effective model parameter (file, `set` overrides and derived values,
            e.g. the box edge L), as `/parameters` records them.
        name: the model's name; dt: its time step.
        warnings: the warnings of the model and the run (also shown with `warnings.warn`).
    """

    time: npt.NDArray[np.float64]
    step: npt.NDArray[np.int64]
    position: npt.NDArray[np.float64]
    image: npt.NDArray[np.int32]
    propulsion: npt.NDArray[np.float64]
    propulsion_name: str
    box: npt.NDArray[np.float64]
    observables: dict[str, Any]
    summary: dict[str, Any]
    parameters: dict[str, float]
    name: str
    dt: float
    warnings: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return self.position.shape[0]

    @property
    def frames(self) -> int:
        return self.position.shape[1]

    @property
    def n_particles(self) -> int:
        return self.position.shape[2]

    @property
    def dimension(self) -> int:
        return self.position.shape[3]


def _command(model: str, **settings: Any) -> str:
    """How the call is recorded in the file's `/parameters` (attribute `command`)."""
    args = [repr(model)] + [f"{k}={v!r}" for k, v in settings.items() if v is not None]
    return f"phaseflow.particles.simulate({', '.join(args)})"


def simulate(
    model: Union[str, os.PathLike[str]],
    set: Mapping[str, float] | None = None,
    *,
    steps: int | None = None,
    t_end: float | None = None,
    every: int | None = None,
    burn_in: float = 0.0,
    replicas: int = 1,
    seed: int = 0,
    threads: int | None = None,
    output: Union[str, os.PathLike[str], None] = None,
    checkpoint_interval: float | None = None,
) -> ParticleRun:
    """Runs a particle model as `phaseflow simulate MODEL …` does and returns its frames.

    Args:
        model: a catalogue name (`"mips"`, `"abp_mips"`, `"trap"`, `"ring"`: see
            `get_model_list()`), a path to a definition file, or its TOML text (named `<string>`
            in messages).
        set: parameter overrides `{NAME: VALUE}` (`--set NAME=VALUE`; also `dt`); checked as the
            command line checks them (an unknown name, a NaN raise `PhaseflowError`).
        steps: recorded steps after the burn-in (`--steps`); or give `t_end`.
        t_end: recorded time (`--t-end`, model time units, rounded to whole steps of dt).
        every: steps between frames (`--every`; default: 100 frames in all, at least 1 step).
        burn_in: time run before the first frame, not recorded (`--burn-in`, time units).
        replicas: independent replicas M (`--replicas`), each from its own initial condition.
        seed: seed of the initial conditions and the noise (`--seed`); results do not depend on
            the thread count.
        threads: worker threads (`--threads`; default: all cores).
        output: also write this H5MD file (`-o`), the command line's file: written as a partial
            file beside it and renamed into place when complete.
        checkpoint_interval: least seconds between checkpoints of `output`
            (`--checkpoint-interval`; an interrupted file is continued with the command line's
            `phaseflow simulate … --resume`).

    Returns:
        a `ParticleRun`: (M, F, N, d) positions, images and propulsion, the times, the box, the
        observables and the run summary.

    Raises:
        PhaseflowError: bad input (a `ValueError`), with the command line's message; also when
            the frames would not fit in the machine's memory (the size is named) — record fewer
            frames (a larger `every`) or replicas.
        KeyboardInterrupt: Ctrl-C stops the run at its next safe point (within 256 steps).
    """
    overrides = [(str(k), float(v)) for k, v in (set or {}).items()]
    text = os.fspath(model)
    is_text = "\n" in text or "=" in text
    out = None if output is None else os.fspath(output)
    command = _command(
        "<string>" if is_text else text,
        set=dict(set) if set else None,
        steps=steps,
        t_end=t_end,
        every=every,
        burn_in=burn_in or None,
        replicas=replicas if replicas != 1 else None,
        seed=seed,
        threads=threads,
        output=out,
        checkpoint_interval=checkpoint_interval,
    )
    raw = _native.simulate_particles(
        text,
        is_text,
        overrides,
        steps,
        t_end,
        every,
        float(burn_in),
        replicas,
        seed,
        threads,
        out,
        checkpoint_interval,
        command,
    )
    for w in raw["warnings"]:
        warnings.warn(w, stacklevel=2)
    observables: dict[str, Any] = dict(raw["series"])
    observables.update(raw["fixed"])
    return ParticleRun(
        time=raw["time"],
        step=raw["step"],
        position=raw["position"],
        image=raw["image"],
        propulsion=raw["propulsion"],
        propulsion_name=raw["propulsion_name"],
        box=raw["box"],
        observables=observables,
        summary=json.loads(raw["summary"]),
        parameters=dict(raw["parameters"]),
        name=raw["name"],
        dt=raw["dt"],
        warnings=list(raw["warnings"]),
    )


def get_model_list() -> list[str]:
    """Sorted names of the catalogue's particle models (the `name` of each file under
    `systems/` with `kind = "particles"`; `simulate` takes them, or the file's stem)."""
    return sorted(name or path for path, name, cls, _ in _native.catalogue() if cls == "particles")
