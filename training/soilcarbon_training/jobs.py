"""The train and evaluate jobs behind ``soilcarbon train`` / ``soilcarbon evaluate`` and the worker.

Inputs are named features: numeric fields of the points and bands sampled from rasters given as
``PATH=NAME``. The same names are stored in the model and looked up again at prediction time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soilcarbon_core.device import resolve_device
from soilcarbon_core.errors import InputError
from soilcarbon_core.features import NodeTable
from soilcarbon_core.graph import RELATIONS, GraphParams
from soilcarbon_core.imagery import ImageryEncoder, ImageryInputs, ImagerySettings, chip_features
from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.io.points import SamplePoints, read_points
from soilcarbon_core.io.rasters import RasterSource
from soilcarbon_core.model import SoilCarbonModel
from soilcarbon_core.nn import SpTGNNConfig
from soilcarbon_core.predictor import calibrated_metrics, finish_prediction
from soilcarbon_core.progress import ProgressCallback, scaled, silent
from soilcarbon_core.schema import InputSchema, available_features
from soilcarbon_core.uncertainty import plot_calibration, plot_intervals, plot_learning_curve
from soilcarbon_training.crossval import PooledCalibration, cross_validate
from soilcarbon_training.finetune import fine_tune_head
from soilcarbon_training.folds import random_folds, spatial_block_folds, validation_split
from soilcarbon_training.trainer import EnsembleTrainer, TrainConfig


@dataclass
class LabelledData:
    """Labelled samples ready for training: points, schema, node table and target values.

    ``encoder``: the imagery stream's chip encoder when imagery rasters are given; its features are
    added by :func:`with_chip_features` (after fine-tuning its head on the fit samples when it has one).
    """

    points: SamplePoints
    schema: InputSchema
    table: NodeTable
    target: np.ndarray
    n_dropped: int
    encoder: ImageryEncoder | None = None


def prepare_data(
    points: SamplePoints | str | os.PathLike[str],
    *,
    target: str,
    rasters: list[RasterSource] = (),
    imagery: list[RasterSource] = (),
    covariate_fields: list[str] = (),
    elevation: str | None = None,
    slope: str | None = None,
    method: str = "bilinear",
    imagery_inputs: ImageryInputs | None = None,
    imagery_settings: ImagerySettings | None = None,
    device: str = "auto",
    progress: ProgressCallback = silent,
    **read_options,
) -> LabelledData:
    """Read points, sample rasters, and keep the samples with a numeric target.

    With ``imagery_inputs``, chips of those rasters feed the imagery stream (``imagery_settings``:
    backbone, chip size, pooling, fine-tuning); see :mod:`soilcarbon_core.imagery`.
    """
    if not isinstance(points, SamplePoints):
        points = read_points(points, **read_options)
    if target not in points.attributes.columns:
        raise InputError(
            f"The points have no field '{target}' to learn.",
            f"Choose the target among: {', '.join(map(str, points.attributes.columns))}.",
        )
    values, sources, origins = available_features(
        points, [*rasters, *imagery], method=method, progress=progress
    )
    imagery_rasters = {r.name for r in imagery}
    raster_fields = [n for n in values if sources[n] == "raster"]
    imagery_fields = [n for n in raster_fields if origins[n] in imagery_rasters]
    covariates = [*covariate_fields, *[n for n in raster_fields if n not in imagery_fields]]
    for name in [*covariate_fields, elevation, slope]:
        if name and name not in values:
            raise InputError(
                f"The feature '{name}' is neither a numeric field of the points nor a raster name.",
                f"Available: {', '.join(values)}.",
            )
    if target in covariates:
        raise InputError(
            f"The target '{target}' is also listed as a covariate.", "Remove it from the covariates."
        )
    geographic = points.crs.is_geographic
    schema = InputSchema(
        crs=points.crs.to_wkt(),
        geographic=geographic,
        covariates=covariates,
        imagery=imagery_fields,
        date_field=read_options.get("date_field"),
        elevation=elevation,
        slope=slope,
        sources={name: sources[name] for name in [*covariates, *imagery_fields, elevation, slope] if name},
        rasters={name: origins[name] for name in raster_fields},
    )
    labels = values.get(target)
    if labels is None:
        raise InputError(
            f"The target field '{target}' is not numeric.", "Choose a numeric field as the target."
        )
    keep = np.isfinite(labels)
    if keep.sum() < 10:
        raise InputError(
            f"Only {int(keep.sum())} samples have a value of '{target}'; at least 10 are needed.",
            "Choose a layer with more labelled samples.",
        )
    table = schema.table(points, values).select(np.flatnonzero(keep))
    encoder = None
    if imagery_inputs is not None and imagery_inputs.given:
        encoder = imagery_inputs.encoder(
            imagery_settings or ImagerySettings(), device=str(resolve_device(device))
        )
    return LabelledData(points, schema, table, labels[keep], int((~keep).sum()), encoder)


def with_chip_features(
    data: LabelledData,
    fit_idx: np.ndarray | None = None,
    val_idx: np.ndarray | None = None,
    *,
    progress: ProgressCallback = silent,
) -> LabelledData:
    """``data`` with the imagery encoder's features appended to the imagery stream.

    A head with trainable parts is first fine-tuned on ``fit_idx`` (early stopping on ``val_idx``).
    """
    encoder = data.encoder
    if encoder is None:
        return data
    if encoder.settings.trains_head:
        if fit_idx is None or val_idx is None:
            raise ValueError("fine-tuning needs the fit and validation samples")
        fine_tune_head(encoder, data.table, data.target, fit_idx, val_idx, progress=scaled(progress, 0, 0.8))
    features = chip_features(data.table.lonlat, encoder, scaled(progress, 0.8, 1.0))
    names = list(features)
    table = dataclasses.replace(data.table, imagery=np.column_stack([data.table.imagery, *features.values()]))
    schema = dataclasses.replace(
        data.schema,
        imagery=[*data.schema.imagery, *names],
        sources={**data.schema.sources, **dict.fromkeys(names, "chips")},
        chips=encoder.settings.to_dict(),
    )
    return dataclasses.replace(data, schema=schema, table=table)


def default_block_size(table: NodeTable, geographic: bool) -> float:
    """A spatial block side (m): a tenth of the data's bounding-box diagonal."""
    from soilcarbon_core.graph.geometry import SpatialFrame

    frame = SpatialFrame(geographic)
    corners = np.array([table.xy.min(axis=0), table.xy.max(axis=0)])
    return max(float(frame.distance(frame.embed(corners[:1]), frame.embed(corners[1:]))[0]) / 10.0, 1.0)


def model_config_for(
    table: NodeTable, members: int, relations: tuple[str, ...] = RELATIONS, **overrides
) -> SpTGNNConfig:
    """The architecture for these inputs: one stream per kind of input present, the relations they allow."""
    edge_attributes = {"spatial": 1, "spectral": 2, "elevation": 3 if table.slope is not None else 2}
    usable = {"spatial"}
    if table.imagery.shape[1] or table.covariates.shape[1]:
        usable.add("spectral")
    if table.elevation is not None:
        usable.add("elevation")
    return SpTGNNConfig(
        members=members,
        imagery_features=table.imagery.shape[1],
        covariate_features=table.covariates.shape[1],
        temporal=table.decimal_year is not None,
        relations={r: edge_attributes[r] for r in relations if r in usable},
        **overrides,
    )


def train_model(
    data: LabelledData,
    output: str | os.PathLike[str],
    *,
    target: str,
    unit: str = "",
    members: int = 5,
    train_config: TrainConfig | None = None,
    graph_params: GraphParams | None = None,
    model_overrides: dict | None = None,
    device: str = "auto",
    plots: str | os.PathLike[str] | None = None,
    progress: ProgressCallback = silent,
) -> dict:
    """Train an ensemble (spatial-block validation split for early stopping and calibration) and save it.

    All labelled samples become the model's reference nodes. With ``plots`` (a folder), also writes
    ``calibration.png`` and ``intervals.png`` (the validation samples, calibrated) and
    ``learning_curve.png`` (losses per epoch) there; the result's ``plots`` names them.
    """
    train_config = train_config or TrainConfig()
    graph_params = graph_params or GraphParams()
    geographic = data.schema.geographic
    torch_device = resolve_device(device)
    everything = np.arange(len(data.target))
    fit_idx, val_idx = validation_split(
        everything,
        data.table.xy,
        geographic=geographic,
        block_size_m=default_block_size(data.table, geographic),
        seed=train_config.seed,
    )
    data = with_chip_features(data, fit_idx, val_idx, progress=scaled(progress, 0.0, 0.1))
    backbone = data.encoder.head_state() if data.encoder is not None else None
    if backbone is not None:
        data.schema.chips = data.encoder.settings.to_dict()
    # The initial weights follow the run's seed unless the caller fixes the architecture's own.
    config = model_config_for(data.table, members, **{"seed": train_config.seed, **(model_overrides or {})})
    trainer = EnsembleTrainer(config, train_config, graph_params, geographic=geographic, device=torch_device)
    fit = trainer.fit(data.table, data.target, fit_idx, val_idx, progress=scaled(progress, 0.1, 0.9))
    raw = finish_prediction(*fit.validation, None)
    calibrated = finish_prediction(*fit.validation, fit.calibrator)
    metrics = calibrated_metrics(
        data.target[val_idx], raw.mean, raw.total_sd, calibrated.total_sd, fit.calibrator.interval
    )
    plot_files = {}
    if plots is not None:
        plot_files = _training_plots(
            Path(plots), data.target[val_idx], raw, fit, f"{target}: validation ({len(val_idx)} samples)"
        )
    model = SoilCarbonModel(
        target=target,
        unit=unit,
        schema=data.schema,
        network=fit.network.cpu(),
        normaliser=fit.normaliser,
        graph_params=graph_params,
        reference=data.table,
        reference_target=data.target,
        calibrator=fit.calibrator,
        backbone=backbone,
        training={
            "samples": len(data.target),
            "dropped_without_target": data.n_dropped,
            "fit_samples": len(fit_idx),
            "validation_samples": len(val_idx),
            "target_mean": float(data.target.mean()),
            "target_sd": float(data.target.std()),
            "config": train_config.to_dict(),
            "best_epoch": fit.best_epoch,
            "epochs_run": len(fit.history),
            "seconds": round(fit.seconds, 1),
            "device": str(torch_device),
            "source": data.points.source,
            "imagery": None if data.encoder is None else data.encoder.report.to_dict(),
        },
        metrics={"validation": metrics},
    )
    progress(0.95, "Saving the model")
    path = model.save(output)
    progress(1.0, "Model saved")
    return {
        "output": str(path),
        "target": target,
        "unit": unit,
        "members": members,
        "samples": len(data.target),
        "relations": sorted(config.relations),
        "validation": metrics,
        "seconds": round(fit.seconds, 1),
        "device": str(torch_device),
        "imagery": None if data.encoder is None else data.encoder.report.to_dict(),
        "plots": plot_files,
    }


def _training_plots(folder: Path, y: np.ndarray, raw, fit, title: str) -> dict[str, str]:
    """The validation samples' calibration and intervals (calibrated as the model is) and the learning
    curve, as PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    validation = (y, raw.mean, raw.total_sd)
    options = {"interval": fit.calibrator.interval, "title": title}
    paths = {
        "calibration": plot_calibration(*validation, folder / "calibration.png", **options),
        "intervals": plot_intervals(*validation, folder / "intervals.png", **options),
        "learning_curve": plot_learning_curve(
            fit.history, folder / "learning_curve.png", best_epoch=fit.best_epoch
        ),
    }
    return {name: str(path) for name, path in paths.items()}


def evaluate_model(
    data: LabelledData,
    output_dir: str | os.PathLike[str],
    *,
    target: str,
    unit: str = "",
    cv: str = "spatial",
    folds: int = 5,
    block_size_m: float | None = None,
    members: int = 5,
    train_config: TrainConfig | None = None,
    graph_params: GraphParams | None = None,
    device: str = "auto",
    progress: ProgressCallback = silent,
) -> dict:
    """k-fold cross-validation (spatial blocks or random); writes report.json, report.md and two PNG plots."""
    train_config = train_config or TrainConfig()
    graph_params = graph_params or GraphParams()
    geographic = data.schema.geographic
    block = block_size_m or default_block_size(data.table, geographic)
    if cv == "spatial":
        splits = spatial_block_folds(data.table.xy, geographic=geographic, block_size_m=block, n_folds=folds)
    elif cv == "random":
        splits = random_folds(len(data.target), folds, seed=train_config.seed)
    else:
        raise InputError(f"Unknown cross-validation '{cv}'.", "Use 'spatial' or 'random'.")
    fold_table = None
    if data.encoder is not None and data.encoder.settings.trains_head:
        # Each fold fine-tunes its own head on its own training samples (no test sample leaks in).
        def fold_table(fit_idx: np.ndarray, val_idx: np.ndarray) -> NodeTable:
            return with_chip_features(data, fit_idx, val_idx).table

        width = data.table.imagery.shape[1] + len(data.encoder.names)
        shape = dataclasses.replace(data.table, imagery=np.zeros((len(data.target), width)))
    else:
        data = with_chip_features(data, progress=scaled(progress, 0.0, 0.05))
        shape = data.table
    results = cross_validate(
        data.table,
        data.target,
        splits,
        geographic=geographic,
        model_config=model_config_for(shape, members, seed=train_config.seed),
        fold_table=fold_table,
        train_config=train_config,
        graph_params=graph_params,
        block_size_m=block if cv == "spatial" else None,
        device=resolve_device(device),
        progress=scaled(progress, 0.05, 0.95),
    )
    pooled = PooledCalibration(data.target, results, train_config.calibration)
    metrics = pooled.metrics()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    title = f"{target}: {folds}-fold {cv} CV"
    plots = {
        "calibration": str(pooled.plot_calibration(output_dir / "calibration.png", title)),
        "intervals": str(pooled.plot_intervals(output_dir / "intervals.png", title)),
    }
    report = {
        "target": target,
        "unit": unit,
        "cv": cv,
        "folds": folds,
        "block_size_m": block if cv == "spatial" else None,
        "samples": len(data.target),
        "members": members,
        "metrics": metrics,
        "train_seconds": [round(r.train_seconds, 2) for r in results],
        "predict_seconds": [round(r.predict_seconds, 3) for r in results],
        "plots": plots,
    }
    with atomic_output(output_dir / "report.json") as partial:
        partial.write_text(json.dumps(report, indent=2))
    with atomic_output(output_dir / "report.md") as partial:
        partial.write_text(_markdown(report))
    progress(1.0, "Report written")
    return {**report, "report": str(output_dir / "report.md")}


def _markdown(report: dict) -> str:
    m = report["metrics"]
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in m.items())
    block = f", blocks of {report['block_size_m'] / 1000:.3g} km" if report["block_size_m"] else ""
    return (
        f"# Cross-validation of {report['target']} ({report['unit']})\n\n"
        f"{report['folds']}-fold {report['cv']} cross-validation{block}, {report['samples']} samples, "
        f"ensemble of {report['members']}. Out-of-fold predictions, calibrated on each fold's own "
        "validation part.\n\n| metric | value |\n|---|---|\n"
        f"{rows}\n\nTraining time per fold (s): {report['train_seconds']}\n\n"
        "![calibration](calibration.png)\n\n![intervals](intervals.png)\n"
    )
