"""The tasks a worker request can name, and the checks on their parameters.

Each task takes the request's ``params`` and a :class:`TaskContext` and returns the ``outputs`` object of
the result line. Errors a user can cause are :class:`~soilcarbon_core.errors.SoilCarbonError`; malformed
parameters are :class:`~soilcarbon_core.worker.protocol.BadRequest`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from soilcarbon_core.progress import ProgressCallback
from soilcarbon_core.worker.protocol import BadRequest


@dataclass(frozen=True)
class TaskContext:
    """What a task may use besides its parameters: progress (a cancel point) and a log."""

    progress: ProgressCallback
    log: Callable[[str], None]


def _get(params: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in params or params[key] is None:
        if default is ...:
            raise BadRequest(f"The parameter '{key}' is missing.")
        return default
    value = params[key]
    if not isinstance(value, kind):
        raise BadRequest(f"The parameter '{key}' must be of type {kind}, not {type(value).__name__}.")
    return value


def environment(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """Versions of the core stack and the compute device: what the plugin's settings page shows."""
    import platform
    import sys
    from importlib.metadata import PackageNotFoundError, version

    import soilcarbon_core

    packages = {}
    for name in ("numpy", "scipy", "torch", "torchvision", "torch-geometric", "terratorch", "rasterio"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    import rasterio

    device: dict[str, Any] = {"type": "cpu", "name": platform.processor() or platform.machine()}
    if _get(params, "probe_device", bool, True):
        import torch

        if torch.cuda.is_available():
            device = {
                "type": "cuda",
                "name": torch.cuda.get_device_name(0),
                "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
            }
    return {
        "core_version": soilcarbon_core.__version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "packages": packages,
        "gdal": rasterio.__gdal_version__,
        "device": device,
    }


def sample_covariates(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """Sample rasters at points: see :func:`soilcarbon_core.covariates.sample_covariates`."""
    from soilcarbon_core.covariates import sample_covariates as run
    from soilcarbon_core.io.rasters import METHODS

    path, read_options = _points(params)
    rasters = _raster_list(params, "rasters")
    method = _get(params, "method", str, "nearest")
    if method not in METHODS:
        raise BadRequest(f"The parameter 'method' must be one of {', '.join(METHODS)}, not '{method}'.")
    summary = run(
        path,
        rasters,
        _get(params, "output", str),
        method=method,
        keep_attributes=_get(params, "keep_attributes", bool, True),
        reserved_names=[str(name) for name in _get(params, "reserved_names", list, [])],
        progress=context.progress,
        **read_options,
    )
    for raster in summary["rasters"]:
        if raster["n_outside"] == summary["n_points"]:
            context.log(f"Raster '{raster['name']}' covers none of the points: its fields are empty.")
        elif raster["n_outside"] or raster["n_nodata"]:
            context.log(
                f"Raster '{raster['name']}': {raster['n_outside']} point(s) outside, "
                f"{raster['n_nodata']} on nodata."
            )
    return summary


def _raster_list(params: dict[str, Any], key: str) -> list:
    from soilcarbon_core.io.rasters import RasterSource

    rasters = []
    for item in _get(params, key, list, []):
        item = {"path": item} if isinstance(item, str) else item
        if not isinstance(item, dict):
            raise BadRequest(f"Each entry of '{key}' must be a path or an object with 'path' (and 'name').")
        rasters.append(RasterSource(_get(item, "path", str), _get(item, "name", str, "")))
    return rasters


def _imagery(params: dict[str, Any]):
    """``chips``: {s2: [paths or "PATH=BANDS"], s2_level, s1, s1_units, dem, weights, cache_dir, cache}."""
    from soilcarbon_core.imagery import default_inputs

    try:
        return default_inputs(_get(params, "chips", dict, {}))
    except TypeError as err:
        raise BadRequest(f"The parameter 'chips' is malformed: {err}.") from err


def _imagery_settings(params: dict[str, Any]):
    """``chip_settings``: backbone, chip_size, pooling, finetune, blocks, ... (ImagerySettings)."""
    from soilcarbon_core.imagery import ImagerySettings

    try:
        return ImagerySettings.from_dict(_get(params, "chip_settings", dict, {}))
    except TypeError as err:
        raise BadRequest(f"The parameter 'chip_settings' is malformed: {err}.") from err


def _points(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    points = _get(params, "points", (str, dict))
    points = {"path": points} if isinstance(points, str) else dict(points)
    options = {
        key: _get(points, key, str, None) for key in ("layer", "x_field", "y_field", "crs", "date_field")
    }
    return _get(points, "path", str), options


def _training_data(params: dict[str, Any], context: TaskContext):
    from soilcarbon_core.progress import scaled
    from soilcarbon_training.jobs import prepare_data

    path, options = _points(params)
    data = prepare_data(
        path,
        target=_get(params, "target", str),
        rasters=_raster_list(params, "rasters"),
        imagery=_raster_list(params, "imagery"),
        covariate_fields=[str(f) for f in _get(params, "covariate_fields", list, [])],
        elevation=_get(params, "elevation", str, None),
        slope=_get(params, "slope", str, None),
        method=_get(params, "method", str, "bilinear"),
        imagery_inputs=_imagery(params),
        imagery_settings=_imagery_settings(params),
        device=_get(params, "device", str, "auto"),
        progress=scaled(context.progress, 0.0, 0.05),
        **options,
    )
    label = _get(params, "source", str, None)
    if label:  # the caller's name for the points (a QGIS layer), recorded in the model instead of a temp file
        data = dataclasses.replace(data, points=dataclasses.replace(data.points, source=label))
    return data


def _train_config(params: dict[str, Any]):
    from soilcarbon_training.trainer import TrainConfig

    try:
        return TrainConfig.from_dict(_get(params, "train", dict, {}))
    except TypeError as err:
        raise BadRequest(f"The parameter 'train' is malformed: {err}.") from err


def train(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """Train an SpTGNN ensemble: see :func:`soilcarbon_training.jobs.train_model`."""
    from soilcarbon_core.progress import scaled
    from soilcarbon_training.jobs import train_model

    data = _training_data(params, context)
    context.log(f"{len(data.target)} labelled samples ({data.n_dropped} without a target value left out).")
    return train_model(
        data,
        _get(params, "output", str),
        target=_get(params, "target", str),
        unit=_get(params, "unit", str, ""),
        members=_get(params, "members", int, 5),
        train_config=_train_config(params),
        device=_get(params, "device", str, "auto"),
        plots=_get(params, "plots", str, None),
        progress=scaled(context.progress, 0.05, 1.0),
    )


def evaluate(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """Cross-validate SpTGNN: see :func:`soilcarbon_training.jobs.evaluate_model`."""
    from soilcarbon_core.progress import scaled
    from soilcarbon_training.jobs import evaluate_model

    data = _training_data(params, context)
    return evaluate_model(
        data,
        _get(params, "output", str),
        target=_get(params, "target", str),
        unit=_get(params, "unit", str, ""),
        cv=_get(params, "cv", str, "spatial"),
        folds=_get(params, "folds", int, 5),
        block_size_m=_get(params, "block_size_m", (int, float), None),
        members=_get(params, "members", int, 5),
        train_config=_train_config(params),
        device=_get(params, "device", str, "auto"),
        progress=scaled(context.progress, 0.05, 1.0),
    )


def _grid(params: dict[str, Any]):
    """``grid``: a template raster's path, or {extent: [xmin, ymin, xmax, ymax], resolution, crs}."""
    from soilcarbon_core.maps import GridSpec

    grid = params["grid"]
    if isinstance(grid, str):
        return grid
    if not isinstance(grid, dict) or not {"extent", "resolution", "crs"} <= grid.keys():
        raise BadRequest("The parameter 'grid' must be a raster path or {extent, resolution, crs}.")
    return GridSpec.from_extent(tuple(grid["extent"]), float(grid["resolution"]), grid["crs"])


def predict(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """Predict with uncertainty at points (``points``) or on a grid (``grid``: see :func:`_grid`)."""
    from soilcarbon_core.prediction import predict_grid, predict_points

    common = {
        "rasters": _raster_list(params, "rasters"),
        "imagery": _imagery(params),
        "date": _get(params, "date", str, None),
        "device": _get(params, "device", str, "auto"),
        "progress": context.progress,
    }
    model, output = _get(params, "model", str), _get(params, "output", str)
    if "grid" in params:
        return predict_grid(
            model,
            _grid(params),
            output,
            plot=_get(params, "plot", str, None),
            window_size=_get(params, "window_size", int, 512),
            **common,
        )
    path, options = _points(params)
    return predict_points(
        model, path, output, method=_get(params, "method", str, "bilinear"), **common, **options
    )


def build_graph(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """The model's soil graph as lines (:func:`soilcarbon_core.graph.export.export_graph`); with optional
    ``points``, also the edges that attach them to the reference nodes."""
    from soilcarbon_core.graph.export import export_graph

    path, options = _points(params) if params.get("points") is not None else (None, {})
    return export_graph(
        _get(params, "model", str),
        _get(params, "output", str),
        points=path,
        rasters=_raster_list(params, "rasters"),
        imagery=_imagery(params),
        method=_get(params, "method", str, "bilinear"),
        date=_get(params, "date", str, None),
        device=_get(params, "device", str, "auto"),
        progress=context.progress,
        **options,
    )


def plan_campaign(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """Rank ``budget`` new sampling sites among candidate ``points`` or ``grid`` cells
    (:func:`soilcarbon_core.campaign.plan_campaign`); ``mask``: raster of inaccessible cells."""
    from soilcarbon_core.campaign import PlannerSettings
    from soilcarbon_core.campaign import plan_campaign as plan

    settings = PlannerSettings.from_dict(params.get("settings", {}))
    common = {
        "rasters": _raster_list(params, "rasters"),
        "imagery": _imagery(params),
        "mask": _get(params, "mask", str, None),
        "date": _get(params, "date", str, None),
        "device": _get(params, "device", str, "auto"),
        "settings": settings,
        "progress": context.progress,
    }
    model, output, budget = (
        _get(params, "model", str),
        _get(params, "output", str),
        _get(params, "budget", int),
    )
    if "grid" in params:
        return plan(model, output, budget, grid=_grid(params), **common)
    path, options = _points(params)
    return plan(model, output, budget, candidates=path, **common, **options)


def imagery_features(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """Imagery-stream features (TerraMind embeddings or chip statistics) at points, to a GeoPackage."""
    from soilcarbon_core.imagery.export import export_imagery_features

    path, options = _points(params)
    chips = _imagery(params)
    if chips is None:
        raise BadRequest("The parameter 'chips' names no raster (s2, s1 or dem).")
    return export_imagery_features(
        path,
        _get(params, "output", str),
        chips,
        _imagery_settings(params),
        device=_get(params, "device", str, "auto"),
        progress=context.progress,
        **options,
    )


def ghg_predict(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """GHG flux table at points with management fields (:func:`soilcarbon_core.ghg.prediction.predict_ghg`).

    ``model`` (optional: the shipped model), ``weather`` (daily CSV), ``soc_field``, ``soc_sd_field``,
    ``soc_unit``, ``samples``, ``seed``.
    """
    from soilcarbon_core.ghg.prediction import GHGInputs, predict_ghg

    path, options = _points(params)
    options.pop("date_field", None)
    inputs = GHGInputs(
        weather=_get(params, "weather", str, None),
        soc_field=_get(params, "soc_field", str, None),
        soc_sd_field=_get(params, "soc_sd_field", str, None),
        soc_unit=_get(params, "soc_unit", str, "%"),
    )
    return predict_ghg(
        path,
        _get(params, "output", str),
        model=_get(params, "model", str, None),
        inputs=inputs,
        samples=_get(params, "samples", int, 256),
        seed=_get(params, "seed", int, 0),
        progress=context.progress,
        **options,
    )


TASKS: dict[str, Callable[[dict[str, Any], TaskContext], dict[str, Any]]] = {
    "environment": environment,
    "sample_covariates": sample_covariates,
    "train": train,
    "evaluate": evaluate,
    "predict": predict,
    "build_graph": build_graph,
    "plan_campaign": plan_campaign,
    "imagery_features": imagery_features,
    "ghg_predict": ghg_predict,
}
