"""Diagnostic plots of predictive uncertainty (matplotlib, Agg backend, PNGs written atomically)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.uncertainty.metrics import (
    Interval,
    calibration_curve,
    check_arrays,
    check_level,
    gaussian_interval,
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` to ``path`` through a temporary file and close it."""
    plt = _pyplot()
    try:
        figure.tight_layout()
        with atomic_output(path) as temporary:
            figure.savefig(temporary, dpi=110, format="png")
    finally:
        plt.close(figure)
    return Path(path)


def plot_calibration(
    y: np.ndarray,
    mean: np.ndarray,
    sd: np.ndarray,
    path: str | os.PathLike[str],
    *,
    interval: Interval = gaussian_interval,
    title: str = "",
) -> Path:
    """Reliability diagram: observed share inside each central interval against its nominal level.

    A calibrated model lies on the diagonal; below it the intervals are too narrow (overconfident). The
    legend gives the ECE (mean vertical distance to the diagonal over 100 levels).
    """
    expected, observed = calibration_curve(y, mean, sd, interval=interval)
    error = float(np.mean(np.abs(expected - observed)))
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 4.4))
    axis.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1, label="ideal")
    axis.fill_between(expected, expected, observed, color="tab:blue", alpha=0.2)
    axis.plot(expected, observed, color="tab:blue", linewidth=2, label=f"model (ECE = {error:.3f})")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_aspect("equal")
    axis.set_xlabel("expected coverage of the central interval")
    axis.set_ylabel("observed coverage")
    axis.legend(loc="upper left", fontsize=8)
    axis.set_title(title or f"Calibration ({len(expected)} levels, {np.size(y)} samples)", fontsize=10)
    return _save(figure, path)


def plot_intervals(
    y: np.ndarray,
    mean: np.ndarray,
    sd: np.ndarray,
    path: str | os.PathLike[str],
    *,
    level: float = 0.9,
    interval: Interval = gaussian_interval,
    title: str = "",
    max_points: int = 2000,
) -> Path:
    """Observed against predicted, each prediction with its central ``level`` interval as a vertical bar.

    Samples are sorted by prediction; above ``max_points`` an evenly spaced subset of that order is drawn
    (deterministic). Observations outside their interval are red. The title gives PICP over all samples.
    """
    y, mean, sd = check_arrays(y, mean, sd)
    level = check_level(level)
    lower, upper = interval(mean, sd, level)
    inside = (lower <= y) & (y <= upper)
    coverage = float(np.mean(inside))
    order = np.argsort(mean, kind="stable")
    if order.size > max_points:
        order = order[np.round(np.linspace(0, order.size - 1, max(int(max_points), 1))).astype(int)]
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.2, 4.8))
    axis.vlines(mean[order], lower[order], upper[order], color="tab:blue", alpha=0.35, linewidth=1)
    shown_inside = inside[order]
    axis.scatter(mean[order][shown_inside], y[order][shown_inside], s=6, color="black", label="inside")
    axis.scatter(mean[order][~shown_inside], y[order][~shown_inside], s=8, color="red", label="outside")
    span = [float(min(mean.min(), y.min())), float(max(mean.max(), y.max()))]
    axis.plot(span, span, color="0.5", linestyle="--", linewidth=1)
    axis.set_xlabel("predicted mean")
    axis.set_ylabel("observed")
    axis.legend(loc="upper left", fontsize=8, title=f"{100 * level:g} % interval", title_fontsize=8)
    shown = f"{order.size} of {y.size} shown" if order.size < y.size else f"{y.size} samples"
    heading = f"PICP{100 * level:g} = {coverage:.3f} ({shown})"
    axis.set_title(f"{title}\n{heading}" if title else heading, fontsize=10)
    return _save(figure, path)


def plot_learning_curve(
    history: list[dict], path: str | os.PathLike[str], *, best_epoch: list[int] = (), title: str = ""
) -> Path:
    """Training loss and validation NLL per epoch (normalised target units), from an ensemble's
    ``history`` (one record per epoch: ``epoch``, ``train_loss`` and ``validation_nll`` per member).

    Thin lines are members, thick lines their mean; a dot marks each member's ``best_epoch`` (the weights
    kept). A validation curve that rises while the training loss falls is overfitting.
    """
    if not history:
        raise ValueError("no epochs to plot")
    epochs = np.array([record["epoch"] + 1 for record in history])
    train = np.array([record["train_loss"] for record in history], dtype=float)  # (epochs, members)
    validation = np.array([record["validation_nll"] for record in history], dtype=float)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.2, 4.0))
    curves = ((train, "tab:blue", "training loss"), (validation, "tab:orange", "validation NLL"))
    for values, colour, label in curves:
        axis.plot(epochs, values, color=colour, alpha=0.3, linewidth=0.8)
        axis.plot(epochs, values.mean(axis=1), color=colour, linewidth=2, label=f"{label} (member mean)")
    for member, epoch in enumerate(best_epoch):
        if 0 <= epoch < len(history):
            axis.plot(epoch + 1, validation[epoch, member], "o", color="tab:red", markersize=4)
    if len(best_epoch):
        axis.plot([], [], "o", color="tab:red", markersize=4, label="best epoch (weights kept)")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss (normalised target)")
    axis.legend(loc="upper right", fontsize=8)
    axis.set_title(title or f"Learning curve ({train.shape[1]} members)", fontsize=10)
    return _save(figure, path)
