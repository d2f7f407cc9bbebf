"""Image chips around points: S x S cells on a 10 m grid centred on each point, from rasters in any CRS.

The chip grid lives in the UTM zone of its point (north-up, ``resolution`` metres), so the same point
gives the same ground whatever the rasters' CRS. Pixel (i, j) of a chip is centred at
``(x + (j - S/2) r, y - (i - S/2) r)`` in UTM: the point is the centre of pixel (S/2, S/2). Each
chip pixel centre is transformed into the raster's CRS and takes the value of the raster cell that
contains it (nearest-neighbour warping on the fly; no reprojected copy of a raster is written). Only
the window of the raster under a batch of chips is read.

A pixel is valid when it is inside the raster, not nodata and finite in every band of the modality.
A point whose chip has less than ``min_valid`` valid pixels gets that modality masked; otherwise its
invalid pixels take the mean of the chip's valid pixels, band by band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from soilcarbon_core.errors import InputError
from soilcarbon_core.imagery.sources import BandRef, ModalityRasters

#: TerraMind's patch size: chip sides must be a multiple of it.
PATCH = 16
#: A batch whose union window is larger than this many cells is read point by point.
_MAX_UNION_CELLS = 16_000_000


@dataclass
class Chips:
    """Chips of N points.

    ``values[m]``: (N, C_m, S, S) float32 in the modality's units (masked chips are all zero);
    ``present``: (N, K) bool, modality k usable at the point; ``valid_fraction``: (N, K).
    """

    modalities: list[str]
    bands: dict[str, list[str]]
    values: dict[str, np.ndarray]
    present: np.ndarray
    valid_fraction: np.ndarray

    def __len__(self) -> int:
        return self.present.shape[0]


def check_chip_size(size: int) -> None:
    if size < PATCH or size % PATCH:
        raise InputError(
            f"Chip size {size} is not a positive multiple of {PATCH} (TerraMind's patch size).",
            "Use 16, 32, 64 (default), 128 or 224.",
        )


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone CRS that contains (lon, lat)."""
    zone = int(np.clip(np.floor((lon + 180.0) / 6.0) + 1, 1, 60))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def chip_centres(
    lonlat: np.ndarray, size: int, resolution: float
) -> tuple[list[CRS], np.ndarray, np.ndarray]:
    """Per point its UTM CRS, and the UTM coordinates (N, S, S) of its chip's pixel centres."""
    crss = [utm_crs(lon, lat) for lon, lat in lonlat]
    x = np.empty(len(lonlat))
    y = np.empty(len(lonlat))
    for crs in set(crss):
        rows = np.array([c == crs for c in crss])
        x[rows], y[rows] = warp_transform(CRS.from_epsg(4326), crs, lonlat[rows, 0], lonlat[rows, 1])
    offset = (np.arange(size) - size // 2) * resolution
    xs = np.broadcast_to(x[:, None, None] + offset[None, None, :], (len(x), size, size))
    ys = np.broadcast_to(y[:, None, None] - offset[None, :, None], (len(x), size, size))
    return crss, xs, ys


class _RasterCells:
    """Chip pixel centres as (row, col) cells of one raster, computed once per raster grid."""

    def __init__(self, crss: list[CRS], xs: np.ndarray, ys: np.ndarray) -> None:
        self.crss, self.xs, self.ys = crss, xs, ys
        self._cells: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def cells(self, src) -> tuple[np.ndarray, np.ndarray]:
        key = (src.crs.to_wkt(), tuple(src.transform))
        if key not in self._cells:
            x = np.empty(self.xs.shape)
            y = np.empty(self.ys.shape)
            for crs in set(self.crss):
                rows = np.array([c == crs for c in self.crss])
                if crs == src.crs:
                    x[rows], y[rows] = self.xs[rows], self.ys[rows]
                else:
                    tx, ty = warp_transform(crs, src.crs, self.xs[rows].ravel(), self.ys[rows].ravel())
                    x[rows] = np.reshape(tx, self.xs[rows].shape)
                    y[rows] = np.reshape(ty, self.ys[rows].shape)
            inverse = ~src.transform
            col = np.floor(inverse.a * x + inverse.b * y + inverse.c).astype(np.int64)
            row = np.floor(inverse.d * x + inverse.e * y + inverse.f).astype(np.int64)
            self._cells[key] = (row, col)
        return self._cells[key]


def _read_band(src, ref: BandRef, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Values (N, S, S) float32 of band ``ref`` at the cells, NaN outside the raster or on nodata."""
    out = np.full(row.shape, np.nan, dtype=np.float32)
    inside = (row >= 0) & (row < src.height) & (col >= 0) & (col < src.width)
    if not inside.any():
        return out
    r0, r1 = row[inside].min(), row[inside].max() + 1
    c0, c1 = col[inside].min(), col[inside].max() + 1
    # One read under the whole batch when that window is small enough, else one read per chip.
    if (r1 - r0) * (c1 - c0) <= _MAX_UNION_CELLS:
        groups = [slice(0, len(row))]
    else:
        groups = [slice(i, i + 1) for i in range(len(row))]
    for group in groups:
        mask = inside[group]
        if not mask.any():
            continue
        rows, cols = row[group][mask], col[group][mask]
        r0, c0 = rows.min(), cols.min()
        window = Window(c0, r0, cols.max() + 1 - c0, rows.max() + 1 - r0)
        data = src.read(ref.index, window=window, masked=True)
        values = np.ma.filled(data.astype(np.float64), np.nan)
        out[group][mask] = ref.convert(values[rows - r0, cols - c0])  # slices are views: written in place
    return out


def extract_chips(
    lonlat: np.ndarray,
    inputs: Sequence[ModalityRasters],
    size: int = 64,
    *,
    resolution: float = 10.0,
    min_valid: float = 0.5,
) -> Chips:
    """Chips of every modality in ``inputs`` around the points ``lonlat`` (N, 2) degrees."""
    check_chip_size(size)
    lonlat = np.asarray(lonlat, dtype=np.float64)
    n = len(lonlat)
    known = np.isfinite(lonlat).all(axis=1)
    crss, xs, ys = chip_centres(np.where(known[:, None], lonlat, 0.0), size, resolution)
    grid = _RasterCells(crss, xs, ys)
    values, present, fraction = {}, np.zeros((n, len(inputs)), bool), np.zeros((n, len(inputs)))
    for k, rasters in enumerate(inputs):
        stack = np.empty((n, len(rasters.bands), size, size), dtype=np.float32)
        for c, ref in enumerate(rasters.bands):
            with rasterio.open(ref.path) as src:
                stack[:, c] = _read_band(src, ref, *grid.cells(src))
        valid = np.isfinite(stack).all(axis=1) & known[:, None, None]
        fraction[:, k] = valid.reshape(n, -1).mean(axis=1)
        present[:, k] = fraction[:, k] >= min_valid
        counts = np.maximum(valid.sum(axis=(1, 2)), 1)[:, None]
        means = np.where(valid[:, None], stack, 0.0).sum(axis=(2, 3)) / counts
        filled = np.where(valid[:, None], stack, means[:, :, None, None])
        filled[~present[:, k]] = 0.0
        values[rasters.name] = filled.astype(np.float32)
    return Chips(
        modalities=[r.name for r in inputs],
        bands={r.name: r.band_names for r in inputs},
        values=values,
        present=present,
        valid_fraction=fraction,
    )
