"""Sample any number of rasters at sample points.

Each raster is read in its own CRS (the points are transformed to it, never the raster), one tile at a
time around the points (memory stays bounded by the tile size whatever the raster's size), with every
band named. Nodata, NaN and points outside a raster are reported per point and band; they are never
filled with zero.

Interpolation:
    nearest: the value of the cell that contains the point.
    bilinear: the distance-weighted mean of the four cell centres around the point. Neighbours that are
        nodata or outside the raster drop out and the weights of the others are renormalised; a point
        whose own cell is nodata is nodata.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from soilcarbon_core.errors import CRSError, DataNotFoundError, RasterError
from soilcarbon_core.io.points import SamplePoints
from soilcarbon_core.progress import ProgressCallback, silent

METHODS = ("nearest", "bilinear")

#: Tiles are read at least this many cells on a side (rounded up to whole internal blocks).
_MIN_TILE = 512


class SampleStatus(IntEnum):
    """Why a sampled value is, or is not, valid."""

    VALID = 0
    NODATA = 1
    OUTSIDE = 2


@dataclass(frozen=True)
class RasterSource:
    """A raster to sample and the name its fields get (the file stem by default)."""

    path: Path
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "name", field_name(self.name or self.path.stem))


@dataclass(frozen=True)
class SampledBands:
    """Values of every band of every raster at every point.

    Attributes:
        names: one field name per band column, ``(b,)``.
        raster_names: the raster each band column came from, ``(b,)``.
        values: ``(n, b)`` float64, NaN where not valid.
        status: ``(n, b)`` uint8 :class:`SampleStatus` codes.
        reports: per raster, its name, path, fields and how many points were nodata or outside it.
    """

    names: list[str]
    raster_names: list[str]
    values: np.ndarray
    status: np.ndarray
    reports: list[dict] = field(default_factory=list, repr=False)

    @property
    def valid(self) -> np.ndarray:
        """``(n,)`` bool: every band valid at the point."""
        return (self.status == SampleStatus.VALID).all(axis=1)


def field_name(name: str) -> str:
    """A field name that every vector format accepts: letters, digits and underscores."""
    cleaned = re.sub(r"\W+", "_", name.strip()).strip("_") or "band"
    return f"f_{cleaned}" if cleaned[0].isdigit() else cleaned


def sample_rasters(
    points: SamplePoints,
    rasters: list[RasterSource] | list[str | os.PathLike[str]],
    method: str = "nearest",
    progress: ProgressCallback = silent,
    reserved_names: list[str] | None = None,
) -> SampledBands:
    """Sample every band of every raster at the points.

    Args:
        points: the sample points, in any CRS that transforms to each raster's.
        rasters: rasters (GeoTIFF, SAGA .sdat, any GDAL format), optionally with field names.
        method: ``"nearest"`` or ``"bilinear"``.
        progress: called with the fraction done; may raise ``Cancelled``.
        reserved_names: field names already in use (e.g. the points' attributes); band fields avoid them.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    sources = [r if isinstance(r, RasterSource) else RasterSource(Path(r)) for r in rasters]
    if not sources:
        raise RasterError("No rasters were given.", "Choose at least one raster to sample.")
    for source in sources:
        if not source.path.exists():
            raise DataNotFoundError(
                f"The raster '{source.path}' does not exist.", "Check the path and the file name."
            )

    names: list[str] = []
    reserved = list(reserved_names or [])
    raster_names: list[str] = []
    columns: list[np.ndarray] = []
    statuses: list[np.ndarray] = []
    reports: list[dict] = []
    for index, source in enumerate(sources):
        scaled_progress = _sub_progress(progress, index, len(sources), source.name)
        values, status, band_names = _sample_one(points, source, method, scaled_progress)
        band_fields = unique_names(
            [_band_field(source.name, b, len(band_names)) for b in band_names], reserved + names
        )
        names += band_fields
        raster_names += [source.name] * len(band_fields)
        columns.append(values)
        statuses.append(status)
        reports.append(
            {
                "name": source.name,
                "path": str(source.path),
                "fields": band_fields,
                "n_nodata": int((status == SampleStatus.NODATA).any(axis=1).sum()),
                "n_outside": int((status == SampleStatus.OUTSIDE).any(axis=1).sum()),
            }
        )
    progress(1.0, "Sampled all rasters")
    return SampledBands(
        names=names,
        raster_names=raster_names,
        values=np.concatenate(columns, axis=1),
        status=np.concatenate(statuses, axis=1),
        reports=reports,
    )


def _sub_progress(progress: ProgressCallback, index: int, total: int, name: str) -> ProgressCallback:
    def report(fraction: float, message: str = "") -> None:
        progress((index + fraction) / total, f"Sampling {name}")

    return report


def _band_field(raster_name: str, band_name: str, band_count: int) -> str:
    return raster_name if band_count == 1 else field_name(f"{raster_name}_{band_name}")


def unique_names(candidates: list[str], taken: list[str]) -> list[str]:
    """``candidates`` made unique among themselves and against ``taken`` by numeric suffixes.

    Case-insensitively: GeoPackage and Shapefile field names are.
    """
    result = []
    used = {name.lower() for name in taken}
    for name in candidates:
        unique, suffix = name, 2
        while unique.lower() in used:
            unique, suffix = f"{name}_{suffix}", suffix + 1
        used.add(unique.lower())
        result.append(unique)
    return result


def _sample_one(
    points: SamplePoints, source: RasterSource, method: str, progress: ProgressCallback
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        dataset = rasterio.open(source.path)
    except RasterioIOError as err:
        raise RasterError(
            f"'{source.path}' cannot be read as a raster: {err}.",
            "Use a GeoTIFF or another GDAL raster format.",
        ) from err
    with dataset:
        if dataset.crs is None:
            raise RasterError(
                f"The raster '{source.path.name}' has no CRS.",
                "Assign one (Raster › Projections › Assign Projection, or gdal_edit.py -a_srs).",
            )
        band_names = [dataset.descriptions[i] or f"b{i + 1}" for i in range(dataset.count)]
        col, row = _fractional_cells(points, dataset, source)
        n, count = len(points), dataset.count
        values = np.full((n, count), np.nan)
        status = np.full((n, count), SampleStatus.OUTSIDE, dtype=np.uint8)

        height, width = dataset.height, dataset.width
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        block_h, block_w = dataset.block_shapes[0]
        tile_h = max(block_h, _MIN_TILE // block_h * block_h)
        tile_w = max(block_w, _MIN_TILE // block_w * block_w)
        order = np.flatnonzero(inside)
        if not order.size:
            groups = []
        elif height <= tile_h and width <= tile_w:
            groups = [order]  # one tile: no sorting needed
        else:
            tile_id = (row[order] // tile_h) * (width // tile_w + 1) + col[order] // tile_w
            by_tile = np.argsort(tile_id, kind="stable")
            order, tile_id = order[by_tile], tile_id[by_tile]
            groups = np.split(order, np.flatnonzero(np.diff(tile_id)) + 1)

        scales = np.asarray(dataset.scales, dtype=np.float64)
        offsets = np.asarray(dataset.offsets, dtype=np.float64)
        for done, group in enumerate(groups):
            sampled, ok = _sample_group(dataset, col[group], row[group], method)
            values[group] = np.where(ok, sampled * scales + offsets, np.nan)
            status[group] = np.where(ok, SampleStatus.VALID, SampleStatus.NODATA)
            progress((done + 1) / len(groups))
    return values, status, band_names


def _fractional_cells(
    points: SamplePoints, dataset: rasterio.DatasetReader, source: RasterSource
) -> tuple[np.ndarray, np.ndarray]:
    """Points' positions in the raster's pixel grid (continuous column and row)."""
    x, y = points.x, points.y
    if dataset.crs != points.crs:
        from rasterio._err import CPLE_BaseError
        from rasterio.warp import transform

        try:
            x, y = (np.asarray(v, dtype=np.float64) for v in transform(points.crs, dataset.crs, x, y))
        except (CPLE_BaseError, rasterio.errors.RasterioError, ValueError) as err:
            raise CRSError(
                f"The points ({_crs_label(points.crs)}) cannot be transformed to the CRS of raster "
                f"'{source.path.name}' ({_crs_label(dataset.crs)}): {err}.",
                "Check that the points layer has its correct CRS, or reproject it first.",
            ) from err
    col, row = pixel_coordinates(dataset.transform, x, y)
    # Points the transformation could not place (outside the CRS's domain) stay outside.
    unplaced = ~(np.isfinite(col) & np.isfinite(row))
    col[unplaced], row[unplaced] = -1.0, -1.0
    return col, row


def pixel_coordinates(affine: rasterio.Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Continuous (column, row) of map coordinates in a grid with geotransform ``affine``."""
    inverse = ~affine
    col = inverse.a * np.asarray(x, dtype=np.float64) + inverse.b * y + inverse.c
    row = inverse.d * np.asarray(x, dtype=np.float64) + inverse.e * y + inverse.f
    return col, row


def _crs_label(crs: rasterio.crs.CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()[:80]


def _sample_group(
    dataset: rasterio.DatasetReader, col: np.ndarray, row: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Sample the points of one tile; returns values ``(m, bands)`` and validity ``(m, bands)``."""
    height, width = dataset.height, dataset.width
    if method == "nearest":
        own_rows, own_cols = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
        data, invalid, top, left = _read_window(dataset, own_rows, own_cols)
        own_rows -= top
        own_cols -= left
        return data[:, own_rows, own_cols].T, ~invalid[:, own_rows, own_cols].T

    r0, c0 = np.floor(row - 0.5), np.floor(col - 0.5)
    fy, fx = row - 0.5 - r0, col - 0.5 - c0
    rows = (r0[:, None] + [0, 0, 1, 1]).astype(np.int64)
    cols = (c0[:, None] + [0, 1, 0, 1]).astype(np.int64)
    weights = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], axis=1)

    in_raster = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    data, invalid, top, left = _read_window(dataset, rows[in_raster], cols[in_raster])
    bottom, right = top + data.shape[1], left + data.shape[2]

    local_r = np.clip(rows - top, 0, bottom - top - 1)
    local_c = np.clip(cols - left, 0, right - left - 1)
    neighbour_values = data[:, local_r, local_c]  # (bands, m, k)
    usable = in_raster[None] & ~invalid[:, local_r, local_c]
    w = weights[None] * usable
    total = w.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        sampled = (w * np.where(usable, neighbour_values, 0.0)).sum(axis=2) / total

    # The cell that contains the point decides validity: nodata there is nodata, whatever the method.
    own_r = np.clip(np.floor(row).astype(np.int64) - top, 0, bottom - top - 1)
    own_c = np.clip(np.floor(col).astype(np.int64) - left, 0, right - left - 1)
    ok = ~invalid[:, own_r, own_c] & (total > 0)
    return sampled.T, ok.T


def _read_window(
    dataset: rasterio.DatasetReader, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """All bands over the cells' bounding window: values (float64), invalid mask, window origin."""
    top, left = int(rows.min()), int(cols.min())
    window = Window(left, top, int(cols.max()) + 1 - left, int(rows.max()) + 1 - top)
    block = dataset.read(window=window, masked=True)
    data = np.ma.getdata(block).astype(np.float64)
    return data, np.ma.getmaskarray(block) | np.isnan(data), top, left
