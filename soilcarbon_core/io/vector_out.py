"""Write points with result fields to a GeoPackage, atomically and in chunks.

Chunks bound the time between progress reports (and so cancel points) on large outputs. The file is
written under a temporary name and renamed into place only when complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from soilcarbon_core.errors import OutputError
from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.io.points import SamplePoints
from soilcarbon_core.progress import ProgressCallback, silent


def write_points_gpkg(
    path: str | os.PathLike[str],
    points: SamplePoints,
    columns: dict[str, np.ndarray],
    *,
    layer: str = "samples",
    keep_attributes: bool = True,
    progress: ProgressCallback = silent,
    chunk_size: int = 50_000,
) -> Path:
    """Write ``points`` (geometry, optionally their attributes) plus ``columns`` to a GeoPackage.

    Args:
        path: the ``.gpkg`` to create (replaced if it exists).
        columns: extra fields, each ``(n,)``; NaN in float columns is written as NULL.
        keep_attributes: also write the points' own attribute table first.
        progress: called after each chunk; may raise ``Cancelled`` (nothing is left behind then).
    """
    import shapely

    path = Path(path)
    if path.suffix.lower() != ".gpkg":
        raise OutputError(f"'{path}' is not a GeoPackage path.", "Give a file name ending in .gpkg.")
    table = points.attributes if keep_attributes else pd.DataFrame(index=points.attributes.index)
    existing = {str(name).lower() for name in table.columns}
    clashes = sorted(name for name in columns if name.lower() in existing)
    if clashes:
        raise OutputError(f"Result fields would replace attribute fields: {', '.join(clashes)}.")
    names = [str(c) for c in table.columns] + list(columns)
    data, masks = [], []
    for name in table.columns:
        values, mask = _field_array(table[name])
        data.append(values)
        masks.append(mask)
    for values in columns.values():
        data.append(np.asarray(values))
        masks.append(None)

    wkb = shapely.to_wkb(shapely.points(points.x, points.y))
    write_features_gpkg(
        path,
        wkb,
        data,
        names,
        masks,
        layer=layer,
        geometry_type="Point",
        crs=points.crs.to_wkt(),
        progress=progress,
        chunk_size=chunk_size,
        what="points",
    )
    return path


def write_features_gpkg(
    path: Path,
    wkb: np.ndarray,
    data: list[np.ndarray],
    names: list[str],
    masks: list[np.ndarray | None],
    *,
    layer: str,
    geometry_type: str,
    crs: str,
    progress: ProgressCallback = silent,
    chunk_size: int = 50_000,
    what: str = "features",
) -> None:
    """Write ``(n,)`` WKB geometries and their field columns to the GeoPackage ``path``, atomically and in
    chunks (progress after each: a cancel point). ``masks``: per column, True where NULL, or None. With no
    feature, an empty layer is written."""
    from pyogrio.errors import DataSourceError, FieldError
    from pyogrio.raw import write as ogr_write

    n = len(wkb)
    with atomic_output(path) as temporary:
        for start in range(0, max(n, 1), chunk_size):
            stop = min(start + chunk_size, n)
            try:
                ogr_write(
                    temporary,
                    wkb[start:stop],
                    [d[start:stop] for d in data],
                    names,
                    field_mask=[None if m is None else m[start:stop] for m in masks],
                    layer=layer,
                    driver="GPKG",
                    geometry_type=geometry_type,
                    crs=crs,
                    append=start > 0,
                    # GeoPackage 1.2: read without warnings by the older GDALs that QGIS builds ship.
                    dataset_options=None if start else {"VERSION": "1.2"},
                )
            except (DataSourceError, FieldError, OSError) as err:
                raise OutputError(f"Writing '{path}' failed: {err}.") from err
            progress(stop / max(n, 1), f"Wrote {stop:,} of {n:,} {what}")


def _field_array(series: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """A column as a numpy array OGR can write, and its null mask (None when it has no nulls)."""
    mask = series.isna().to_numpy()
    if pd.api.types.is_bool_dtype(series.dtype):
        values = series.fillna(False).to_numpy(dtype=np.int8)
    elif pd.api.types.is_integer_dtype(series.dtype):
        values = series.fillna(0).to_numpy(dtype=np.int64)
    elif pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64)
    elif pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series.to_numpy()
    else:
        values = np.array([("" if m else str(v)) for v, m in zip(series, mask, strict=True)], dtype=object)
    return values, (mask if mask.any() else None)
