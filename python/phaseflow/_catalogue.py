"""The catalogue (embedded in the wheel, or `$PHASEFLOW_SYSTEMS` when set at import): one class
per equation file, made on first import."""

from __future__ import annotations

import keyword
from functools import lru_cache
from pathlib import PurePath

from . import _native
from ._base import DynSys

# catalogue kinds → the dysts module a class lives in
MODULE = {"flow": "flows", "dde": "flows", "map": "maps"}


def _class_name(path: str, name: str | None) -> str:
    if name and name.isidentifier() and not keyword.iskeyword(name):
        return name
    stem = PurePath(path).stem
    return "".join(p[:1].upper() + p[1:] for p in stem.replace("-", "_").split("_") if p)


@lru_cache(maxsize=None)
def entries() -> tuple[tuple[str, str, str], ...]:
    """(class name, kind, key) of every deterministic equation file that parses, in path order
    (the first file of a name in `flows` or in `maps` wins; both may have one, e.g. Duffing)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for path, name, cls, kind in _native.catalogue():
        if cls != "equations" or kind is None:
            continue
        cname = _class_name(path, name)
        if not cname.isidentifier() or (MODULE[kind], cname) in seen:
            continue
        seen.add((MODULE[kind], cname))
        out.append((cname, kind, path))
    return tuple(out)


@lru_cache(maxsize=None)
def classes(module: str) -> dict[str, type[DynSys]]:
    out: dict[str, type[DynSys]] = {}
    for cname, kind, key in entries():
        if MODULE[kind] != module:
            continue
        out[cname] = type(
            cname,
            (DynSys,),
            {
                "_system": key,
                "__module__": f"phaseflow.{module}",
                "__doc__": f"{cname} ({kind}), defined in {key}.",
            },
        )
    return out
