"""Coordinates as points of a Euclidean space whose distances order nodes like distances on the ground.

Projected coordinates (metres) are used as they are. Geographic coordinates (degrees) become points on a
sphere of radius R = 6,371,008.8 m (the IUGG mean Earth radius) in 3-D:

    p = R (cos(lat) cos(lon), cos(lat) sin(lon), sin(lat))

The straight-line (chord) distance c between two such points is a monotonic function of the great-circle
(arc) distance d, d = 2 R asin(c / 2R), so the k nearest by chord are the k nearest on the sphere, and a
KD-tree over the 3-D points answers great-circle queries exactly.
"""

from __future__ import annotations

import numpy as np

from soilcarbon_core.errors import InputError

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8


def unit_vectors(lonlat: np.ndarray) -> np.ndarray:
    """``(n, 2)`` lon, lat degrees -> ``(n, 3)`` points on the unit sphere."""
    lon, lat = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    cos_lat = np.cos(lat)
    return np.column_stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)])


class SpatialFrame:
    """Converts coordinates to tree points and tree (chord) distances to metres on the ground."""

    def __init__(self, geographic: bool) -> None:
        self.geographic = bool(geographic)

    def embed(self, coords: np.ndarray, what: str = "coordinates") -> np.ndarray:
        """``(n, 2)`` x, y metres (or lon, lat degrees) -> ``(n, 2)`` or ``(n, 3)`` float64 tree points.

        Raises:
            InputError: not an (n, 2) array of finite numbers, or latitudes/longitudes out of range.
        """
        xy = np.asarray(coords, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise InputError(
                f"The {what} must be an (n, 2) array of x, y (or lon, lat), not shape {xy.shape}.",
                "Pass one row per node with two columns.",
            )
        bad = ~np.isfinite(xy).all(axis=1)
        if bad.any():
            raise InputError(
                f"{int(bad.sum())} node(s) of the {what} have missing or infinite coordinates "
                f"(first: row {int(np.flatnonzero(bad)[0])}).",
                "Drop those rows before building the graph; every node needs a location.",
            )
        if not self.geographic:
            return np.ascontiguousarray(xy)
        if (np.abs(xy[:, 1]) > 90).any() or (np.abs(xy[:, 0]) > 360).any():
            raise InputError(
                f"The {what} are not longitudes and latitudes in degrees (|lat| up to 90, |lon| up to 360).",
                "Pass geographic=False for coordinates in metres of a projected CRS, or reproject to "
                "EPSG:4326.",
            )
        return EARTH_RADIUS_M * unit_vectors(xy)

    def chord(self, metres: float) -> float:
        """The tree distance of a ground distance in metres (monotonic; arcs beyond pi R clamp to 2R)."""
        if not self.geographic:
            return float(metres)
        return float(2 * EARTH_RADIUS_M * np.sin(min(metres / (2 * EARTH_RADIUS_M), np.pi / 2)))

    def metres(self, chord: np.ndarray) -> np.ndarray:
        """Ground distances in metres of tree (chord) distances."""
        if not self.geographic:
            return chord
        return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(chord / (2 * EARTH_RADIUS_M), 1.0))

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Ground distance in metres between tree points ``a`` and ``b`` (both ``(e, 2 or 3)``), ``(e,)``.

        Exactly symmetric: (a - b)^2 and (b - a)^2 are the same floats, summed in the same order.
        """
        diff = a - b
        return self.metres(np.sqrt(np.einsum("ij,ij->i", diff, diff)))
