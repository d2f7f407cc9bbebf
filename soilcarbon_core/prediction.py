"""Prediction jobs: a trained model applied to points (GeoPackage out) or to a raster grid (GeoTIFF out).

These are what ``soilcarbon predict`` and the worker's ``predict`` task run. Outputs are written to a
temporary file and renamed when complete; cancelling (a progress callback raising
:class:`~soilcarbon_core.errors.Cancelled`) leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import closing, nullcontext
from pathlib import Path

import numpy as np

import soilcarbon_core
from soilcarbon_core.device import one_thread_each, resolve_device
from soilcarbon_core.errors import SchemaMismatchError
from soilcarbon_core.features import NodeTable
from soilcarbon_core.imagery.cache import file_sha256
from soilcarbon_core.imagery.inputs import ImageryInputs, chip_features
from soilcarbon_core.imagery.stream import ImagerySettings
from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.io.points import SamplePoints, read_points
from soilcarbon_core.io.rasters import RasterSource
from soilcarbon_core.io.vector_out import write_points_gpkg
from soilcarbon_core.maps import processes
from soilcarbon_core.maps.cog import PartialMap
from soilcarbon_core.maps.grid import WINDOW, GridSpec
from soilcarbon_core.maps.parallel import ordered_parallel
from soilcarbon_core.model import SoilCarbonModel
from soilcarbon_core.predictor import PREDICTION_FIELDS, Prediction
from soilcarbon_core.progress import ProgressCallback, scaled, silent
from soilcarbon_core.schema import available_features

#: Nodata of prediction rasters.
NODATA = -9999.0
#: Largest side, in pixels, of the data drawn by :func:`plot_prediction_map`.
PLOT_PIXELS = 1200


def with_date(points: SamplePoints, date: str | None) -> SamplePoints:
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


def query_table(
    model: SoilCarbonModel,
    points: SamplePoints,
    rasters,
    method: str,
    progress: ProgressCallback = silent,
    encoder=None,
) -> tuple[NodeTable, np.ndarray]:
    """The model's inputs at ``points`` as query nodes, and which of them can be predicted.

    Features come from the points' fields, the ``rasters`` sampled with ``method`` and, with
    ``encoder``, the imagery chips. Returns the points' :class:`NodeTable` (n rows, in the model's CRS)
    and ``valid`` (n,) bool: located, with every raster feature known."""
    available, _, _ = available_features(
        points, rasters, method=method, progress=scaled(progress, 0.0, 2 / 3)
    )
    if encoder is not None:
        available.update(chip_features(points.lonlat(), encoder, scaled(progress, 2 / 3, 1.0)))
    table = model.schema.table(points, available)
    # Outside a raster or on its nodata there is no prediction; a missing field value is handled by
    # the model (missing-value flags), as in training.
    valid = np.isfinite(table.lonlat).all(axis=1)
    for name in model.schema.features:
        if model.schema.sources.get(name) == "raster":
            valid &= np.isfinite(available[name])
    return table, valid


def predict_valid(
    model: SoilCarbonModel,
    predictor,
    points: SamplePoints,
    rasters,
    method: str,
    progress: ProgressCallback,
    encoder=None,
    threads: int | None = None,
) -> tuple[Prediction, np.ndarray, NodeTable]:
    """Predict points whose needed features are all known (:func:`query_table`); the others get NaN.

    Returns the prediction, ``valid`` (n,) bool and the points' :class:`NodeTable` (the model's inputs).
    ``threads``: as in :meth:`~soilcarbon_core.predictor.EnsemblePredictor.member_predictions`.

    Imagery chips (``encoder``) that are masked do not stop a prediction: the stream's mask token
    stands in, as in training."""
    table, valid = query_table(model, points, rasters, method, scaled(progress, 0.0, 0.3), encoder)
    columns = {name: np.full(len(points), np.nan) for name in Prediction.__dataclass_fields__}
    if valid.any():
        prediction = predictor.predict(
            table.select(np.flatnonzero(valid)), threads=threads, progress=scaled(progress, 0.3, 1.0)
        )
        for name in columns:
            columns[name][valid] = getattr(prediction, name)
    return Prediction(**columns), valid, table


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
    points = with_date(points, date)
    predictor = model.predictor(resolve_device(device))
    encoder = imagery_encoder(model, imagery, str(predictor.device))
    prediction, valid, _ = predict_valid(
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
    grid: GridSpec | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    rasters: list[RasterSource] = (),
    imagery: ImageryInputs | None = None,
    date: str | None = None,
    device: str = "auto",
    window_size: int = WINDOW,
    plot: str | os.PathLike[str] | None = None,
    progress: ProgressCallback = silent,
    window_processes: bool | None = None,
) -> dict:
    """Predict every cell of ``grid`` (a :class:`GridSpec` or a template raster's path); write a
    Cloud-Optimised GeoTIFF with the bands :data:`~soilcarbon_core.predictor.PREDICTION_FIELDS` (named),
    nodata -9999 where an input is missing, and overviews.

    Every cell is a query node attached to the model's reference nodes, whose states are computed once.
    Covariate rasters are read window by window (``window_size`` cells on a side), so memory is bounded
    by the window whatever the rasters' size and the cost grows linearly with the number of cells.
    Cancelling removes everything; a run that is killed resumes from its finished windows when run again
    with the same inputs (:class:`~soilcarbon_core.maps.cog.PartialMap`). With ``plot``, also a PNG map
    (:func:`plot_prediction_map`) with the model's samples on top.

    On a CPU with n threads, n windows run at once, one core each: by default each in a forked process
    of its own (:mod:`~soilcarbon_core.maps.processes`; where ``fork`` exists), which keeps the peak memory
    flat however many windows there are; ``window_processes=False`` runs them on threads of this process
    (:mod:`~soilcarbon_core.maps.parallel`).
    """
    progress(0.0, "Loading the model")
    grid = grid if isinstance(grid, GridSpec) else GridSpec.from_raster(grid)
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
    windows = grid.windows(window_size)
    partial = PartialMap(
        output,
        grid,
        list(PREDICTION_FIELDS),
        _map_fingerprint(model_path, grid, rasters, imagery, date, window_size),
        nodata=NODATA,
        tags={"target": model.target, "unit": model.unit},
    )
    resumed = len(partial.done)
    if resumed:
        progress(0.02, f"Resuming: {resumed} of {len(windows)} windows already done")
    todo = [index for index in range(len(windows)) if index not in partial.done]
    # On a CPU whole windows run at once, one core each (see maps.parallel); a lone window spreads its own
    # chunks over the cores instead.
    workers = min(predictor.parallel_threads(), len(todo))
    threads = 1 if workers > 1 else None
    if window_processes is None:
        window_processes = workers > 1 and predictor.device.type == "cpu" and processes.available()
    if window_processes:
        predictor.reference_sources()  # once, here: the windows' processes inherit them
    rasters = list(rasters)

    def predict_window(index: int, report: ProgressCallback) -> np.ndarray:
        window = windows[index]
        xs, ys = grid.cell_centres(window)
        points = SamplePoints.at(xs, ys, grid.crs, source="grid")
        prediction, valid, _ = predict_valid(
            model, predictor, with_date(points, date), rasters, "nearest", report, encoder, threads
        )
        values = np.stack([np.where(valid, v, NODATA) for v in prediction.columns().values()])
        return values.reshape(len(PREDICTION_FIELDS), window.height, window.width)

    run_windows = processes.ordered_in_processes if window_processes else ordered_parallel
    try:
        with (
            one_thread_each() if workers > 1 else nullcontext(),
            closing(
                run_windows(
                    todo,
                    predict_window,
                    workers,
                    scaled(progress, 0.02, 0.95),
                    lambda n: f"Window {todo[n] + 1} of {len(windows)}",
                )
            ) as results,
        ):
            for index, values in results:
                partial.write(index, windows[index], values, int((values[0] != NODATA).sum()))
        progress(0.95, "Writing the Cloud-Optimised GeoTIFF")
        partial.finish()
    except Exception:
        partial.discard()
        raise
    if plot:
        plot_prediction_map(output, plot, model)
    progress(1.0, "Map written")
    return {
        "output": str(Path(output)),
        "plot": str(Path(plot)) if plot else None,
        "target": model.target,
        "unit": model.unit,
        "bands": list(PREDICTION_FIELDS),
        "n_cells": grid.cells,
        "n_windows": len(windows),
        "resumed_windows": resumed,
        "n_predicted": sum(partial.done.values()),
        "device": str(predictor.device),
        "imagery": None if encoder is None else encoder.report.to_dict(),
    }


def _map_fingerprint(model_path, grid: GridSpec, rasters, imagery, date, window_size: int) -> dict:
    """What a map's values depend on: a partial map is resumed only if all of it is unchanged."""

    def stamp(path) -> dict:
        stat = Path(path).stat()
        return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    return {
        "version": soilcarbon_core.__version__,
        "model": file_sha256(model_path) if Path(model_path).is_file() else stamp(model_path),
        "grid": grid.to_dict(),
        "rasters": [{"name": r.name, **stamp(r.path)} for r in rasters],
        "imagery": None if imagery is None else imagery.to_dict(),
        "date": date,
        "window_size": window_size,
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
        # At most PLOT_PIXELS on the longer side: a large map is read from its overviews, not whole.
        step = max(1, -(-max(dataset.width, dataset.height) // PLOT_PIXELS))
        shape = (dataset.count, -(-dataset.height // step), -(-dataset.width // step))
        values = dataset.read(masked=True, out_shape=shape)
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
