"""The engine's analysis extras: invariants of a system, entropy production rates, and the training
of score networks — what `phaseflow invariants`, `phaseflow epr` and `phaseflow train` compute,
through the same library calls (python/src/analysis.rs). No numerics here.

Results are the dicts the command line prints with `--json`, with every JSON array of numbers
as a float64 NumPy array (`null` entries as NaN; integer arrays as int64). Bad input raises
`PhaseflowError` (a ValueError) with the command line's message, which names settings by their
command-line spelling (`--t-end` for `t_end`, `--flow-dt` for `flow_dt`, `--set` for
`parameters`). Calls run with the GIL released; Ctrl-C stops the library's computation through
its cancellation token and raises `KeyboardInterrupt` once it has stopped (a training at its next
step with a checkpoint, as the command line does; an invariants or EPR computation within
milliseconds, at its next check, writing no output file it had not finished).
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any

import numpy as np

from . import _native
from ._base import DynSys, PhaseflowError, load_system

__all__ = ["invariants", "epr", "train"]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _arrays(obj: Any) -> Any:
    """JSON → Python with numeric lists as NumPy arrays (float64 with NaN for `null`; int64 when
    every entry is an integer)."""
    if isinstance(obj, dict):
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, list):
        if all(x is None or _is_number(x) for x in obj):
            if obj and all(isinstance(x, int) and not isinstance(x, bool) for x in obj):
                return np.asarray(obj, dtype=np.int64)
            return np.asarray([np.nan if x is None else x for x in obj], dtype=np.float64)
        return [_arrays(x) for x in obj]
    return obj


def _overrides(parameters: dict[str, float] | None) -> list[tuple[str, float]]:
    return [(str(k), float(v)) for k, v in (parameters or {}).items()]


def _is_text(source: str) -> bool:
    # as `load_system`: definition text has a newline or an `=`; a name or a path has neither
    return "\n" in source or "=" in source


def _system(system: Any, parameters: dict[str, float] | None) -> tuple[Any, list[tuple[str, float]]]:
    """The native system and the overrides still to apply (on a copy) to it."""
    if isinstance(system, DynSys):
        return system._native, _overrides(parameters)
    if isinstance(system, (str, os.PathLike)):
        return load_system(system, parameters)._native, []
    raise TypeError(
        "system must be a catalogue name, a path, definition text or a phaseflow system "
        f"(phaseflow.flows.Lorenz(), phaseflow.load_system(...)), got {type(system).__name__}"
    )


def invariants(
    system: Any,
    *,
    parameters: dict[str, float] | None = None,
    t_end: float | None = None,
    transient: float | None = None,
    qr_interval: float | None = None,
    exponents: int | None = None,
    ics: int = 1,
    seed: int = 0,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    correlation_points: int = 20000,
) -> dict[str, Any]:
    """Lyapunov spectrum with error bars, Kaplan–Yorke dimension, Pesin entropy, two-trajectory
    maximal exponent, correlation dimension, sample and multiscale entropy and dominant periods,
    beside the file's reference values: `phaseflow invariants SYSTEM --json`
    (`phaseflow::analysis::invariants::compute`).

    `system`: a catalogue name, a path, definition text, or a system object
    (`phaseflow.flows.Lorenz()`, `phaseflow.load_system(...)`; at its current parameters, then
    `parameters`, without changing it; from its file's initial condition). Settings as
    `phaseflow invariants --help`: `t_end` the measured span per initial condition (time units;
    iterations of maps; default 2000 periods, 1e5 iterations), `transient` (default 20 periods,
    1000 iterations), `qr_interval` (default period/8; every iteration of maps), `exponents`
    (default all; delay equations 3), `ics` initial conditions on the attractor (1: the file's,
    with block error bars), `seed`, `rtol`, `atol`, `correlation_points` (0 skips the
    correlation dimension).

    Returns the `--json` dict: `lyapunov_spectrum` and `lyapunov_errors` (arrays (k,), per time
    unit — per iteration for maps — decreasing), `sum` (= the mean of tr J along the orbit),
    `kaplan_yorke_dimension` (NaN → None as in JSON), `pesin_entropy`, `correlation_dimension`,
    `units`, `reference` (the file's literature and dysts values), `wall_seconds`, …"""
    native, overrides = _system(system, parameters)
    out = _native.invariants(
        native,
        overrides,
        t_end=None if t_end is None else float(t_end),
        transient=None if transient is None else float(transient),
        qr_interval=None if qr_interval is None else float(qr_interval),
        exponents=None if exponents is None else int(exponents),
        ics=int(ics),
        seed=int(seed),
        rtol=float(rtol),
        atol=float(atol),
        correlation_points=int(correlation_points),
    )
    return _arrays(json.loads(out))


def _path(p: str | os.PathLike[str] | None) -> str | None:
    return None if p is None else os.fspath(p)


def epr(
    system: Any = None,
    *,
    parameters: dict[str, float] | None = None,
    exact: bool = False,
    model: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    batches: int = 20,
    maps: str | os.PathLike[str] | None = None,
    bins: int = 32,
    diagnostic_samples: int = 500,
    png: str | os.PathLike[str] | None = None,
    flow_out: str | os.PathLike[str] | None = None,
    flow_steps: int = 100,
    flow_dt: float | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Entropy production rate EPR = E[v·D⁻¹v], v = b − D s (s = ∇ log ρ; k_B per unit time):
    `phaseflow epr … --json`, in its modes:

    - `exact=True`: the exact EPR of a linear SDE dz = Az dt + √(2D) dW (Lyapunov equation
      AΣ + ΣAᵀ + 2D = 0, EPR = tr((A + DΣ⁻¹)ᵀ D⁻¹ (A + DΣ⁻¹) Σ)); `system` an equation file with a
      `[diffusion]` table (`"systems/linear/bead_spring_2.toml"`, a path, definition text or a
      system object) or a particle model with a linear drift (`"systems/active/trap.toml"`).
      Keys `epr`, `epr_exact`, `per_dof` ({coordinate: value}), `lyapunov_residual`, ….
    - `data` (a particle file from `phaseflow simulate`: H5MD, or GSD) with `model` (a directory from
      `phaseflow train` / `phaseflow.train`): the learned EPR with batch-means errors over
      `batches` contiguous batches, the learning-free reference ⟨|b_x|²⟩/ε + ⟨∇_x·b_x⟩, the exact
      value for a linear drift, `per_particle` (array (N,)), the stationarity diagnostics on
      `diagnostic_samples` samples; optionally `maps` (HDF5: where entropy is produced, `bins`
      per axis), `png` (last frame coloured by EPR), `flow_out` (HDF5: probability-flow
      trajectories of `flow_steps` steps of `flow_dt`, default the model's dt). Without
      `model`: the learning-free reference only (the learned numbers are None, `null` in the
      JSON, and NaN in arrays). `system` (name, path or
      text of a particle model) replaces the definition stored with the data; `parameters`
      override the data's (`--set`).
    - `data` the trajectory file of an SDE flow with `model`: the learned EPR of the flow
      (`per_dof` {variable: value}).

    `device`: `cpu` (GPU backends need a build with them)."""
    overrides = _overrides(parameters)
    if exact:
        if model is not None or data is not None:
            raise PhaseflowError("--exact takes a system only (no --model, no --data)")
        if system is None:
            raise PhaseflowError("--exact needs --system FILE (a linear SDE)")
        if isinstance(system, DynSys):
            out = _native.epr_exact_system(system._native, overrides)
        elif isinstance(system, (str, os.PathLike)):
            source = os.fspath(system)
            out = _native.epr_exact(source, _is_text(source), overrides)
        else:
            raise TypeError(f"system must be a name, a path, definition text or a phaseflow system, got {type(system).__name__}")
        return _arrays(json.loads(out))
    if system is not None and not isinstance(system, (str, os.PathLike)):
        raise TypeError(
            "with data, system is a particle model's catalogue name, path or definition text, "
            f"got {type(system).__name__}"
        )
    source = None if system is None else os.fspath(system)
    out = _native.epr_samples(
        _path(data),
        model=_path(model),
        system=source,
        system_text=source is not None and _is_text(source),
        overrides=overrides,
        batches=int(batches),
        maps=_path(maps),
        bins=int(bins),
        diagnostic_samples=int(diagnostic_samples),
        png=_path(png),
        flow_out=_path(flow_out),
        flow_steps=int(flow_steps),
        flow_dt=None if flow_dt is None else float(flow_dt),
        device=str(device),
    )
    return _arrays(json.loads(out))


def _read_log(path: pathlib.Path) -> dict[str, np.ndarray]:
    """`log.csv` of a model directory (step,lr,loss,validation_loss,samples_per_second) as
    arrays; a missing validation loss is NaN."""
    cols: dict[str, list[float]] = {"step": [], "lr": [], "loss": [], "validation_loss": [], "samples_per_second": []}
    if path.exists():
        lines = path.read_text().splitlines()
        for line in lines[1:]:
            if not line.strip():
                continue
            step, lr, loss, valid, rate = line.split(",")
            cols["step"].append(int(step))
            cols["lr"].append(float(lr))
            cols["loss"].append(float(loss))
            cols["validation_loss"].append(float(valid) if valid else np.nan)
            cols["samples_per_second"].append(float(rate))
    out = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    out["step"] = np.asarray(cols["step"], dtype=np.int64)
    return out


def train(
    config: str | os.PathLike[str] | dict[str, Any],
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    resume: bool = False,
    steps: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Trains a score network as `phaseflow train CONFIG --data DATA -o OUTPUT [--resume]`
    (`phaseflow::score::train::Trainer`: the same steps, checkpoints and files, bit for bit).

    `config`: a training file's path, its TOML text (`[network]`, `[loss]`, `[training]`), or a
    dict of those tables (`{"network": {"kind": "mlp", "hidden": [64, 64]}, "training":
    {"steps": 500}}`); `steps` and `seed` override `training.steps` and `training.seed`. `data`:
    an H5MD particle file or the trajectory file of an SDE flow (`phaseflow simulate`). `output`:
    the model directory (model.bpk, model.json, config.toml, log.csv, loss.png, checkpoint/).
    `resume`: continue the directory's checkpoint (the configuration must be the same).

    Ctrl-C stops the run after its current step, writes a checkpoint (no final model, as the
    command line leaves it; `resume=True` continues it) and raises `KeyboardInterrupt`.

    Returns the `--json` summary (`steps_done`, `final_loss`, `final_validation_loss`,
    `samples_per_second`, `parameters`, `model_dir`) with `step_losses` (the training loss of
    every step of this call, array) and `history` (the model directory's `log.csv`, every logged
    step including those before a resume: arrays `step`, `lr`, `loss`, `validation_loss` (NaN
    where none), `samples_per_second`)."""
    output_s = os.fspath(output)
    with tempfile.TemporaryDirectory(prefix="phaseflow-train-") as tmp:
        label = None
        if isinstance(config, dict):
            text = _native.train_config(json.dumps(config, allow_nan=False), "<dict>", json=True, steps=steps, seed=seed)
            label = "<dict>"
        else:
            source = os.fspath(config)
            if os.path.isfile(source) and (steps is not None or seed is not None):
                text = _native.train_config(pathlib.Path(source).read_text(encoding="utf-8"), source, steps=steps, seed=seed)
                label = source
            elif isinstance(config, str) and not os.path.exists(source) and _is_text(source):
                text = _native.train_config(source, "<string>", steps=steps, seed=seed)
                label = "<string>"
            else:
                # a file, as the command line reads it (a missing one: the command line's error)
                text = None
        if text is None:
            path = os.fspath(config)  # type: ignore[arg-type]
        else:
            path = os.path.join(tmp, "config.toml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        summary, losses = _native.train(path, os.fspath(data), output_s, resume=bool(resume), device=str(device), config_label=label)
    out: dict[str, Any] = json.loads(summary)
    out["step_losses"] = np.asarray(losses, dtype=np.float64)
    out["history"] = _read_log(pathlib.Path(output_s) / "log.csv")
    return out
