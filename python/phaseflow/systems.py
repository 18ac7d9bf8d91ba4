"""Catalogue-wide calls, as `dysts.systems`."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ._base import DynSys, PhaseflowError
from ._catalogue import classes, entries

SYS_CLASSES = {
    "continuous": ("flow", "dde"),
    "continuous_no_delay": ("flow",),
    "delay": ("dde",),
    "discrete": ("map",),
}


def get_attractor_list(sys_class: str = "continuous") -> list[str]:
    """Sorted class names of the catalogue's systems of `sys_class`: `"continuous"` (flows and
    delay equations), `"continuous_no_delay"`, `"delay"` or `"discrete"` (maps)."""
    try:
        kinds = SYS_CLASSES[sys_class]
    except KeyError:
        raise PhaseflowError(f"unknown sys_class {sys_class!r}: one of {', '.join(SYS_CLASSES)}") from None
    return sorted(name for name, kind, _ in entries() if kind in kinds)


def get_system(name: str) -> type[DynSys]:
    """The class of a catalogue system by its name (a flow before a map of the same name)."""
    for module in ("flows", "maps"):
        cls = classes(module).get(name)
        if cls is not None:
            return cls
    raise PhaseflowError(f"{name}: not a system of the catalogue")


def make_trajectory_ensemble(
    n: int, subset: Iterable[str] | None = None, use_multiprocessing: bool = False, **kwargs: Any
) -> dict[str, np.ndarray]:
    """`{name: sys.make_trajectory(n, **kwargs)}` for every system of `subset` (default: every
    continuous system). `use_multiprocessing` is accepted for dysts' signature and ignored: each
    call runs natively with the GIL released."""
    del use_multiprocessing
    names = get_attractor_list() if subset is None else list(subset)
    return {name: get_system(name)().make_trajectory(n, **kwargs) for name in names}
