"""One class per map of the catalogue (dysts' `dysts.maps`): `from phaseflow.maps import Henon`."""

from ._catalogue import classes as _classes

globals().update(_classes("maps"))
__all__ = sorted(_classes("maps"))
