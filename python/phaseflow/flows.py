"""One class per flow and delay equation of the catalogue (dysts' `dysts.flows`):
`from phaseflow.flows import Lorenz`."""

from ._catalogue import classes as _classes

globals().update(_classes("flows"))
__all__ = sorted(_classes("flows"))
