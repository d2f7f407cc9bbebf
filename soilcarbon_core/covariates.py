"""The covariate-sampling job: points file + rasters -> GeoPackage with one field per band.

This is what ``soilcarbon sample`` and the worker's ``sample_covariates`` task run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from soilcarbon_core.errors import NoValidSamplesError
from soilcarbon_core.io.points import SamplePoints, read_points
from soilcarbon_core.io.rasters import (
    RasterSource,
    SampledBands,
    SampleStatus,
    sample_rasters,
    unique_names,
)
from soilcarbon_core.io.vector_out import write_points_gpkg
from soilcarbon_core.progress import ProgressCallback, scaled, silent

#: Fields added next to the band values: a validity flag and, for invalid points, why.
VALID_FIELD = "valid"
PROBLEM_FIELD = "problem"


def sample_covariates(
    points: SamplePoints | str | os.PathLike[str],
    rasters: list[RasterSource],
    output: str | os.PathLike[str],
    *,
    method: str = "nearest",
    keep_attributes: bool = True,
    reserved_names: list[str] | None = None,
    progress: ProgressCallback = silent,
    **read_options: object,
) -> dict:
    """Sample ``rasters`` at ``points`` and write the points with the values to ``output`` (.gpkg).

    ``reserved_names`` are field names the new fields must avoid besides the points' own (the plugin
    joins the result back to attributes the worker never sees). ``read_options`` go to
    :func:`~soilcarbon_core.io.points.read_points` when ``points`` is a path.
    Returns a summary: output path, field names, counts of valid points and per-raster problems.
    Raises :class:`NoValidSamplesError` (writing nothing) when no point lies inside any raster.
    """
    if not isinstance(points, SamplePoints):
        progress(0.0, "Reading points")
        points = read_points(points, **read_options)  # type: ignore[arg-type]
    taken = [str(c) for c in points.attributes.columns] if keep_attributes else []
    taken += reserved_names or []
    sampled = sample_rasters(
        points, rasters, method=method, progress=scaled(progress, 0.02, 0.6), reserved_names=taken
    )
    _require_some_inside(points, sampled)

    band_fields = sampled.names
    valid_field, problem_field = unique_names([VALID_FIELD, PROBLEM_FIELD], taken + band_fields)
    columns: dict[str, np.ndarray] = dict(zip(band_fields, sampled.values.T, strict=True))
    columns[valid_field] = sampled.valid.astype(np.int8)
    columns[problem_field] = _problems(sampled)
    write_points_gpkg(
        output,
        points,
        columns,
        keep_attributes=keep_attributes,
        progress=scaled(progress, 0.6, 1.0),
    )
    return {
        "output": str(Path(output)),
        "layer": "samples",
        "crs": points.crs.to_wkt(),
        "fields": band_fields,
        "valid_field": valid_field,
        "problem_field": problem_field,
        "n_points": len(points),
        "n_valid": int(sampled.valid.sum()),
        "rasters": sampled.reports,
    }


def _problems(sampled: SampledBands) -> np.ndarray:
    """Per point: '' when valid, else e.g. 'nodata: elevation; outside: ndvi'."""
    texts = np.full(sampled.status.shape[0], "", dtype=object)
    rasters = np.asarray(sampled.raster_names)
    for code, label in ((SampleStatus.NODATA, "nodata"), (SampleStatus.OUTSIDE, "outside")):
        hit = sampled.status == code
        for row in np.flatnonzero(hit.any(axis=1)):
            names = ", ".join(dict.fromkeys(rasters[hit[row]]))
            texts[row] = f"{texts[row]}; {label}: {names}" if texts[row] else f"{label}: {names}"
    return texts


def _require_some_inside(points: SamplePoints, sampled: SampledBands) -> None:
    if (sampled.status != SampleStatus.OUTSIDE).any():
        return
    import rasterio
    from rasterio.warp import transform_bounds

    extents = []
    for report in sampled.reports:
        with rasterio.open(report["path"]) as dataset:
            try:
                bounds = transform_bounds(dataset.crs, points.crs, *dataset.bounds)
            except Exception:  # noqa: BLE001 - the message is still useful without it
                continue
        extents.append(f"'{report['name']}' covers {_fmt(bounds)}")
    points_extent = _fmt((points.x.min(), points.y.min(), points.x.max(), points.y.max()))
    raise NoValidSamplesError(
        f"None of the {len(points)} points lies inside any raster. In the points' CRS the points "
        f"span {points_extent}; " + "; ".join(extents) + ".",
        "Check that the points layer has its correct CRS and that the rasters cover the study area.",
    )


def _fmt(bounds: tuple[float, float, float, float]) -> str:
    return "({:.6g}, {:.6g}) - ({:.6g}, {:.6g})".format(*bounds)
