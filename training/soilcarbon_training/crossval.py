"""Out-of-fold evaluation of SpTGNN ensembles: the same folds and features as every baseline.

Within each fold, the training part is split again into fit / validation (early stopping and
calibration only see the validation part, never the test fold); the test fold's points are then
queries attached to all of the fold's training points, exactly as new places are at prediction time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from soilcarbon_core.features import NodeTable
from soilcarbon_core.graph import GraphParams
from soilcarbon_core.nn import SpTGNNConfig
from soilcarbon_core.predictor import calibrated_metrics, finish_prediction
from soilcarbon_core.progress import ProgressCallback, scaled, silent
from soilcarbon_core.uncertainty import fit_calibrator, plot_calibration, plot_intervals
from soilcarbon_training.folds import validation_split
from soilcarbon_training.trainer import EnsembleTrainer, TrainConfig


@dataclass
class FoldResult:
    """One fold: test and validation indices, timings (s), the members' best epochs, and the
    uncalibrated member predictions (means, variances) of its test and validation nodes, from which
    :class:`PooledCalibration` fits and applies any calibration method without retraining."""

    test: np.ndarray
    train_seconds: float
    predict_seconds: float
    best_epoch: list[int]
    test_members: tuple[np.ndarray, np.ndarray]
    validation: np.ndarray
    validation_members: tuple[np.ndarray, np.ndarray]


def cross_validate(
    table: NodeTable,
    target: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    geographic: bool,
    model_config: SpTGNNConfig,
    train_config: TrainConfig,
    graph_params: GraphParams,
    block_size_m: float | None,
    validation_fraction: float = 0.15,
    fold_table: Callable[[np.ndarray, np.ndarray], NodeTable] | None = None,
    device=None,
    progress: ProgressCallback = silent,
) -> list[FoldResult]:
    """Fit and predict every fold; test points never take part in fitting, validation or calibration.

    Each training fold is split into fit / validation (spatial blocks of ``block_size_m``, or random
    when None); the test points are then queries attached to all of the fold's training points.
    ``fold_table(fit_idx, val_idx)``, when given, makes each fold's table from its own fit and validation
    samples (a fine-tuned imagery head).
    """
    trainer = EnsembleTrainer(model_config, train_config, graph_params, geographic=geographic, device=device)
    results = []
    for number, (train, test) in enumerate(folds):
        share = scaled(progress, number / len(folds), (number + 1) / len(folds))
        started = time.perf_counter()
        fit_idx, val_idx = validation_split(
            train,
            table.xy,
            geographic=geographic,
            block_size_m=block_size_m,
            fraction=validation_fraction,
            seed=train_config.seed,
        )
        table = fold_table(fit_idx, val_idx) if fold_table is not None else table
        fit = trainer.fit(table, target, fit_idx, val_idx, progress=scaled(share, 0.0, 0.95))
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        predictor = trainer.predictor(fit.network, fit.normaliser, table.select(train), target[train])
        test_members = predictor.member_predictions(table.select(test))
        predict_seconds = time.perf_counter() - started
        results.append(
            FoldResult(
                test, train_seconds, predict_seconds, fit.best_epoch, test_members, val_idx, fit.validation
            )
        )
        share(1.0, f"Fold {number + 1}/{len(folds)} done")
    return results


class PooledCalibration:
    """The test points of ``results`` with each fold's own calibrator, refitted with ``method`` on that
    fold's validation predictions only (no retraining): targets ``y``, raw ``mean`` and ``sd``, the
    calibrated sd, and the calibrated intervals. Arrays follow the folds' test points in fold order."""

    def __init__(self, target: np.ndarray, results: list[FoldResult], method: str) -> None:
        self.tested = np.concatenate([r.test for r in results])
        self.y = target[self.tested]
        means, sds, calibrated, self.parts = [], [], [], []
        start = 0
        for r in results:
            validation = finish_prediction(*r.validation_members, None)
            calibrator = fit_calibrator(method, target[r.validation], validation.mean, validation.total_sd)
            raw = finish_prediction(*r.test_members, None)
            means.append(raw.mean)
            sds.append(raw.total_sd)
            calibrated.append(calibrator.scale_sd(raw.mean, raw.total_sd))
            self.parts.append((slice(start, start + len(r.test)), calibrator))
            start += len(r.test)
        self.mean, self.sd, self.calibrated_sd = map(np.concatenate, (means, sds, calibrated))

    def interval(self, mean: np.ndarray, sd: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Each point's interval from its own fold's calibrator (``mean``, ``sd``: raw, in this order)."""
        lower, upper = np.empty_like(mean), np.empty_like(mean)
        for part, calibrator in self.parts:
            lower[part], upper[part] = calibrator.interval(mean[part], sd[part], level)
        return lower, upper

    def metrics(self) -> dict[str, float]:
        return calibrated_metrics(self.y, self.mean, self.sd, self.calibrated_sd, self.interval)

    def plot_calibration(self, path, title: str = ""):
        return plot_calibration(self.y, self.mean, self.sd, path, interval=self.interval, title=title)

    def plot_intervals(self, path, title: str = ""):
        return plot_intervals(self.y, self.mean, self.sd, path, interval=self.interval, title=title)
