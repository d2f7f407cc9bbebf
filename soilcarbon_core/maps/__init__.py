"""Maps at scale: prediction grids, resumable windowed output as Cloud-Optimised GeoTIFF."""

from soilcarbon_core.maps.cog import PartialMap
from soilcarbon_core.maps.grid import WINDOW, GridSpec

__all__ = ["WINDOW", "GridSpec", "PartialMap"]
