"""Prediction jobs: a trained model applied to points (GeoPackage out) or to a raster grid (GeoTIFF out).

These are what ``soilcarbon predict`` and the worker's ``predict`` task run. Outputs are written to a
temporary file and renamed when complete; cancelling (a progress callback raising
:class:`~soilcarbon_core.errors.Cancelled`) leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from soilcarbon_core.device import resolve_device
from soilcarbon_core.errors import SchemaMismatchError
from soilcarbon_core.imagery.inputs import ImageryInputs, chip_features
from soilcarbon_core.imagery.stream import ImagerySettings
from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.io.points import SamplePoints, read_points
from soilcarbon_core.io.rasters import RasterSource
from soilcarbon_core.io.vector_out import write_points_gpkg
from soilcarbon_core.model import SoilCarbonModel
from soilcarbon_core.predictor import PREDICTION_FIELDS, Prediction
from soilcarbon_core.progress import ProgressCallback, scaled, silent
from soilcarbon_core.schema import available_features

#: Nodata of prediction rasters.
NODATA = -9999.0


def _with_date(points: SamplePoints, date: str | None) -> SamplePoints:
    if date is None or points.dates is not None:
        return points
    return dataclasses.replace(points, dates=np.full(len(points), np.datetime64(date, "D")))


def imagery_encoder(model: SoilCarbonModel, imagery: ImageryInputs | None, device: str):
    """The model's imagery encoder over the given imagery rasters (None for a model without chips)."""
    if model.schema.chips is None:
        return None
    settings = ImagerySettings.from_dict(model.schema.chips)
    if imagery is None or not imagery.given:
        bands = "; ".join(f"{m}: {', '.join(b)}" for m, b in settings.modalities.items())
        raise SchemaMismatchError(
            f"The model's imagery stream reads image chips ({bands}) and no imagery raster was given.",
            "Give the same imagery as at training (--s2 / --s1 / --dem, or the dock's imagery rasters).",
        )
    return imagery.encoder(settings, head_state=model.backbone, device=device)


def _predict_valid(
    model: SoilCarbonModel,
    predictor,
    points: SamplePoints,
    rasters,
    method: str,
    progress: ProgressCallback,
    encoder=None,
) -> tuple[Prediction, np.ndarray]:
    """Predict points whose needed features are all known; the others get NaN. Returns (prediction, valid).

    Imagery chips (``encoder``) that are masked do not stop a prediction: the stream's mask token
    stands in, as in training."""
    available, _, _ = available_features(points, rasters, method=method, progress=scaled(progress, 0.0, 0.2))
    if encoder is not None:
        available.update(chip_features(points.lonlat(), encoder, scaled(progress, 0.2, 0.3)))
    table = model.schema.table(points, available)
    # Outside a raster or on its nodata there is no prediction; a missing field value is handled by
    # the model (missing-value flags), as in training.
    valid = np.isfinite(table.lonlat).all(axis=1)
    for name in model.schema.features:
        if model.schema.sources.get(name) == "raster":
            valid &= np.isfinite(available[name])
    columns = {name: np.full(len(points), np.nan) for name in Prediction.__dataclass_fields__}
    if valid.any():
        prediction = predictor.predict(
            table.select(np.flatnonzero(valid)), progress=scaled(progress, 0.3, 1.0)
        )
        for name in columns:
            columns[name][valid] = getattr(prediction, name)
    return Prediction(**columns), valid


def predict_points(
    model_path: str | os.PathLike[str],
    points: SamplePoints | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    rasters: list[RasterSource] = (),
    imagery: ImageryInputs | None = None,
    method: str = "bilinear",
    date: str | None = None,
    device: str = "auto",
    progress: ProgressCallback = silent,
    **read_options: object,
) -> dict:
    """Predict the model's target with uncertainty at ``points``; write a GeoPackage with the fields
    ``pred_mean``, ``pred_sd_aleatoric``, ``pred_sd_epistemic``, ``pred_sd_total``, ``pred_lower90``,
    ``pred_upper90`` (target units) next to the points' attributes."""
    progress(0.0, "Loading the model")
    model = SoilCarbonModel.load(model_path)
    if not isinstance(points, SamplePoints):
        points = read_points(points, **read_options)  # type: ignore[arg-type]
    points = _with_date(points, date)
    predictor = model.predictor(resolve_device(device))
    encoder = imagery_encoder(model, imagery, str(predictor.device))
    prediction, valid = _predict_valid(
        model, predictor, points, list(rasters), method, scaled(progress, 0.02, 0.9), encoder
    )
    write_points_gpkg(output, points, prediction.columns(), progress=scaled(progress, 0.9, 1.0))
    return {
        "output": str(Path(output)),
        "layer": "samples",
        "target": model.target,
        "unit": model.unit,
        "fields": list(PREDICTION_FIELDS),
        "n_points": len(points),
        "n_predicted": int(valid.sum()),
        "device": str(predictor.device),
        "imagery": None if encoder is None else encoder.report.to_dict(),
    }


def predict_grid(
    model_path: str | os.PathLike[str],
    template: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    rasters: list[RasterSource] = (),
    imagery: ImageryInputs | None = None,
    date: str | None = None,
    device: str = "auto",
    rows_per_block: int = 256,
    plot: str | os.PathLike[str] | None = None,
    progress: ProgressCallback = silent,
) -> dict:
    """Predict every cell of ``template``'s grid; write a 6-band float32 GeoTIFF (bands as
    :data:`~soilcarbon_core.predictor.PREDICTION_FIELDS`, nodata -9999 where an input is missing).

    Processed in blocks of rows: memory is bounded by the block, reference states are computed once.
    With ``plot``, also a PNG map (:func:`plot_prediction_map`) with the model's samples on top.
    """
    import rasterio
    from rasterio.windows import Window

    progress(0.0, "Loading the model")
    model = SoilCarbonModel.load(model_path)
    fields = [
        name for name in model.schema.features if model.schema.sources.get(name) not in ("raster", "chips")
    ]
    if fields:
        raise SchemaMismatchError(
            f"The model takes {', '.join(map(repr, fields))} from fields of the points; a map needs every "
            "input as a raster.",
            "Predict at points instead, or train a model whose covariates are all rasters.",
        )
    predictor = model.predictor(resolve_device(device))
    encoder = imagery_encoder(model, imagery, str(predictor.device))
    with rasterio.open(template) as grid:
        profile = grid.profile
        height, width, transform, crs = grid.height, grid.width, grid.transform, grid.crs
    profile.update(
        driver="GTiff",
        count=len(PREDICTION_FIELDS),
        dtype="float32",
        nodata=NODATA,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    n_predicted = 0
    with atomic_output(output) as partial, rasterio.open(partial, "w", **profile) as out:
        for band, name in enumerate(PREDICTION_FIELDS, start=1):
            out.set_band_description(band, name)
        for top in range(0, height, rows_per_block):
            rows = min(rows_per_block, height - top)
            block = scaled(progress, top / height, (top + rows) / height)
            cols, lines = np.meshgrid(np.arange(width), np.arange(top, top + rows))
            xs, ys = rasterio.transform.xy(transform, lines.ravel(), cols.ravel(), offset="center")
            points = SamplePoints(
                np.asarray(xs), np.asarray(ys), crs, pd.DataFrame(index=range(rows * width)), source="grid"
            )
            prediction, valid = _predict_valid(
                model, predictor, _with_date(points, date), list(rasters), "nearest", block, encoder
            )
            n_predicted += int(valid.sum())
            values = np.stack([np.where(valid, v, NODATA) for v in prediction.columns().values()])
            out.write(
                values.reshape(len(PREDICTION_FIELDS), rows, width).astype("float32"),
                window=Window(0, top, width, rows),
            )
        out.update_tags(target=model.target, unit=model.unit)
    if plot:
        plot_prediction_map(output, plot, model)
    progress(1.0, "Map written")
    return {
        "output": str(Path(output)),
        "plot": str(Path(plot)) if plot else None,
        "target": model.target,
        "unit": model.unit,
        "bands": list(PREDICTION_FIELDS),
        "n_cells": height * width,
        "n_predicted": n_predicted,
        "device": str(predictor.device),
        "imagery": None if encoder is None else encoder.report.to_dict(),
    }


def plot_prediction_map(
    raster: str | os.PathLike[str], png: str | os.PathLike[str], model: SoilCarbonModel | None = None
) -> Path:
    """PNG of a prediction GeoTIFF: mean, total sd and 90 % interval width side by side; with ``model``,
    its reference (training) samples are drawn on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from rasterio.crs import CRS
    from rasterio.warp import transform

    with rasterio.open(raster) as dataset:
        values = dataset.read(masked=True)
        bounds = dataset.bounds
        unit = dataset.tags().get("unit", "")
        target = dataset.tags().get("target", "prediction")
        points = None
        if model is not None:
            xy = model.reference.xy
            points = transform(CRS.from_wkt(model.schema.crs), dataset.crs, xy[:, 0], xy[:, 1])
    extent = (bounds.left, bounds.right, bounds.bottom, bounds.top)
    panels = (
        (values[0], f"{target} mean ({unit})", "viridis"),
        (values[3], f"total sd ({unit})", "magma"),
        (values[5] - values[4], f"90 % interval width ({unit})", "magma"),
    )
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
    for axis, (data, title, cmap) in zip(axes, panels, strict=True):
        image = axis.imshow(data, extent=extent, cmap=cmap)
        if points is not None:
            axis.scatter(points[0], points[1], s=4, c="white", edgecolors="black", linewidths=0.3)
        axis.set_title(title)
        axis.set_xticks([])
        axis.set_yticks([])
        figure.colorbar(image, ax=axis, shrink=0.85)
    with atomic_output(png) as partial:
        figure.savefig(partial, dpi=110, format="png")
    plt.close(figure)
    return Path(png)
