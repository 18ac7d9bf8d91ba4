"""Classes made at import from the catalogue: any catalogue name is a `type[DynSys]`."""

from ._base import DynSys

__all__: list[str]

def __getattr__(name: str) -> type[DynSys]: ...
