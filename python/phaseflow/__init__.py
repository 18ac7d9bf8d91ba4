"""phaseflow for Python: chaotic flows, maps and delay equations from definition files, compiled
to native code, with dysts' calls (`phaseflow.flows.Lorenz().make_trajectory(1000)`).

- `phaseflow.flows`, `phaseflow.maps`: a class per catalogue system (the catalogue is built into
  the wheel; `$PHASEFLOW_SYSTEMS` overrides it, as for the command line);
- `phaseflow.load_system(text_or_path)`: your own system;
- `phaseflow.systems.get_attractor_list`, `make_trajectory_ensemble`;
- `phaseflow.invariants`, `phaseflow.epr`, `phaseflow.train`: `phaseflow invariants`, `epr` and
  `train` (`phaseflow.analysis`);
- `phaseflow.metrics.compute_metrics` (dysts' forecast metrics), `phaseflow.forecast.bench`
  (the forecasting benchmark of `phaseflow forecast bench`);
- `phaseflow.particles.simulate`: the particle engine (active matter), frames as arrays;
- `PhaseflowError` (a `ValueError`): bad input, with the command line's message.
"""

from ._base import DynSys, PhaseflowError, load_system
from . import flows, maps, systems
from . import forecast, metrics, particles
from .analysis import epr, invariants, train

__all__ = [
    "DynSys",
    "PhaseflowError",
    "load_system",
    "flows",
    "maps",
    "systems",
    "forecast",
    "metrics",
    "epr",
    "invariants",
    "train",
    "particles",
]
__version__ = "0.1.0"
