"""Accuracy, probabilistic and calibration metrics for regression with a Gaussian predictive distribution.

Every function takes 1-D float arrays of one length ``N``: targets ``y``, predicted means ``mean`` and,
where needed, predicted standard deviations ``sd`` (> 0). Bad input raises :class:`UncertaintyInputError`
(an :class:`~soilcarbon_core.errors.InputError` and a :class:`ValueError`).

Interval-based metrics (PICP, calibration curve, ECE) take an ``interval`` function
``(mean, sd, level) -> (lower, upper)`` giving the central ``level`` interval of each predictive
distribution; the default is the Gaussian one, and a fitted recalibrator's ``interval`` method can be
passed instead (:mod:`soilcarbon_core.uncertainty.calibration`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import ndtr, ndtri

from soilcarbon_core.errors import InputError

#: ``(mean, sd, level) -> (lower, upper)``: the central ``level`` interval of each prediction.
Interval = Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class UncertaintyInputError(InputError, ValueError):
    """Arrays or settings that a metric or calibrator cannot use (wrong shape, NaN, sd <= 0, ...)."""


def _vector(name: str, values: object) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise UncertaintyInputError(
            f"'{name}' must be a 1-D array, got shape {array.shape}.", "Pass one value per sample."
        )
    if array.size == 0:
        raise UncertaintyInputError(f"'{name}' is empty.", "Pass at least one sample.")
    if not np.isfinite(array).all():
        raise UncertaintyInputError(
            f"'{name}' has {int((~np.isfinite(array)).sum())} NaN or infinite values.",
            "Drop those samples before computing metrics.",
        )
    return array


def check_arrays(y: object, mean: object, sd: object | None = None) -> tuple[np.ndarray, ...]:
    """``y``, ``mean`` (and ``sd``) as float arrays, checked to be 1-D, finite, of one length, ``sd > 0``."""
    arrays = [_vector("y", y), _vector("mean", mean)]
    if sd is not None:
        arrays.append(_vector("sd", sd))
        if (arrays[-1] <= 0).any():
            raise UncertaintyInputError(
                f"'sd' must be > 0; {int((arrays[-1] <= 0).sum())} values are not.",
                "Predicted standard deviations must be positive (clip them to a small floor).",
            )
    lengths = {a.size for a in arrays}
    if len(lengths) != 1:
        shapes = ", ".join(f"{n}: {a.size}" for n, a in zip(("y", "mean", "sd"), arrays, strict=False))
        raise UncertaintyInputError(
            f"Arrays have different lengths ({shapes}).", "Pass one value per sample."
        )
    return tuple(arrays)


def check_level(level: float) -> float:
    """``level`` as a float, checked to lie in [0, 1]."""
    level = float(level)
    if not 0.0 <= level <= 1.0:
        raise UncertaintyInputError(f"Interval level {level} is outside [0, 1].", "Use e.g. 0.9 for 90 %.")
    return level


def r2(y: np.ndarray, mean: np.ndarray) -> float:
    """Coefficient of determination ``1 - sum (y - mean)^2 / sum (y - ybar)^2``; NaN when y is constant."""
    y, mean = check_arrays(y, mean)
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0.0:
        return math.nan
    return 1.0 - float(np.sum((y - mean) ** 2)) / total


def rmse(y: np.ndarray, mean: np.ndarray) -> float:
    """Root mean squared error ``sqrt(mean((y - mean)^2))``."""
    y, mean = check_arrays(y, mean)
    return math.sqrt(float(np.mean((y - mean) ** 2)))


def mae(y: np.ndarray, mean: np.ndarray) -> float:
    """Mean absolute error ``mean(|y - mean|)``."""
    y, mean = check_arrays(y, mean)
    return float(np.mean(np.abs(y - mean)))


def mape(y: np.ndarray, mean: np.ndarray) -> float:
    """Mean absolute percentage error ``100 * mean(|y - mean| / |y|)`` over the samples with ``y != 0``.

    NaN when every target is 0.
    """
    y, mean = check_arrays(y, mean)
    nonzero = y != 0
    if not nonzero.any():
        return math.nan
    return 100.0 * float(np.mean(np.abs(y[nonzero] - mean[nonzero]) / np.abs(y[nonzero])))


def gaussian_nll(y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> float:
    """Mean negative log-likelihood of ``y`` under ``N(mean, sd^2)``.

    ``mean_i(0.5 log(2 pi) + log sd_i + (y_i - mean_i)^2 / (2 sd_i^2))``, the constant included, so the
    value is comparable with other software's.
    """
    y, mean, sd = check_arrays(y, mean, sd)
    z = (y - mean) / sd
    return float(np.mean(_HALF_LOG_2PI + np.log(sd) + 0.5 * z**2))


def crps_gaussian(y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> float:
    """Mean continuous ranked probability score of ``N(mean, sd^2)`` at ``y`` (lower is better).

    Closed form (Gneiting & Raftery 2007, eq. 21), with ``z = (y - mean) / sd``:
    ``CRPS = sd * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))``, in the units of ``y``.
    """
    y, mean, sd = check_arrays(y, mean, sd)
    z = (y - mean) / sd
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return float(np.mean(sd * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))))


def gaussian_interval(mean: np.ndarray, sd: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of ``N(mean, sd^2)``: ``mean -/+ sd * Phi^-1((1 + level) / 2)``.

    ``level = 0`` gives ``[mean, mean]``, ``level = 1`` gives ``(-inf, inf)``. Shapes broadcast.
    """
    half_width = np.asarray(sd, dtype=float) * ndtri(0.5 + 0.5 * check_level(level))
    mean = np.asarray(mean, dtype=float)
    return mean - half_width, mean + half_width


def _inside(y: np.ndarray, mean: np.ndarray, sd: np.ndarray, level: float, interval: Interval) -> np.ndarray:
    lower, upper = interval(mean, sd, level)
    return (lower <= y) & (y <= upper)


def picp(
    y: np.ndarray,
    mean: np.ndarray,
    sd: np.ndarray,
    level: float = 0.9,
    interval: Interval = gaussian_interval,
) -> float:
    """Prediction interval coverage probability: the share of ``y`` inside the central ``level`` interval.

    Bounds count as inside. A calibrated model has ``picp`` close to ``level``.
    """
    y, mean, sd = check_arrays(y, mean, sd)
    return float(np.mean(_inside(y, mean, sd, check_level(level), interval)))


def calibration_curve(
    y: np.ndarray, mean: np.ndarray, sd: np.ndarray, levels: int = 100, interval: Interval = gaussian_interval
) -> tuple[np.ndarray, np.ndarray]:
    """Expected versus observed coverage of central intervals.

    Returns ``(p, observed)``, both ``(levels,)``: ``p = linspace(0, 1, levels)`` and ``observed[k]`` the
    share of ``y`` inside the central ``p[k]`` interval (as uncertainty-toolbox's interval proportions).
    """
    y, mean, sd = check_arrays(y, mean, sd)
    if int(levels) != levels or levels < 2:
        raise UncertaintyInputError(f"'levels' must be an integer >= 2, got {levels}.", "Use e.g. 100.")
    expected = np.linspace(0.0, 1.0, int(levels))
    observed = np.array([np.mean(_inside(y, mean, sd, float(p), interval)) for p in expected])
    return expected, observed


def ece(
    y: np.ndarray, mean: np.ndarray, sd: np.ndarray, levels: int = 100, interval: Interval = gaussian_interval
) -> float:
    """Expected calibration error for regression: ``mean_p |p - observed(p)|`` over :func:`calibration_curve`.

    This is uncertainty-toolbox's "mean absolute calibration error" (interval proportions, 100 levels by
    default): 0 for perfect calibration, at most 0.5.
    """
    expected, observed = calibration_curve(y, mean, sd, levels, interval)
    return float(np.mean(np.abs(expected - observed)))


def ence(y: np.ndarray, mean: np.ndarray, sd: np.ndarray, bins: int = 10) -> float:
    """Expected normalised calibration error (Levi et al. 2022).

    Samples are sorted by ``sd`` and split into ``bins`` bins of equal count (sizes differ by at most one,
    as ``np.array_split``; fewer bins when ``N < bins``). Per bin ``j``, ``RMV_j = sqrt(mean(sd^2))`` and
    ``RMSE_j = sqrt(mean((y - mean)^2))``; ``ENCE = mean_j |RMV_j - RMSE_j| / RMV_j``. 0 when every bin's
    predicted spread matches its error.
    """
    y, mean, sd = check_arrays(y, mean, sd)
    if int(bins) != bins or bins < 1:
        raise UncertaintyInputError(f"'bins' must be a positive integer, got {bins}.", "Use e.g. 10.")
    order = np.argsort(sd, kind="stable")  # stable: ties keep input order, so the result is deterministic
    scores = []
    for chunk in np.array_split(order, min(int(bins), y.size)):
        rmv = math.sqrt(float(np.mean(sd[chunk] ** 2)))
        bin_rmse = math.sqrt(float(np.mean((y[chunk] - mean[chunk]) ** 2)))
        scores.append(abs(rmv - bin_rmse) / rmv)
    return float(np.mean(scores))


def morans_i(values: np.ndarray, edge_index: np.ndarray, edge_weight: np.ndarray | None = None) -> float:
    """Moran's I of ``values`` (``(N,)``) over a weighted directed graph.

    ``edge_index`` is ``(2, E)`` integer (source ``i``, target ``j``), ``edge_weight`` ``(E,)`` (default 1).
    With ``z = values - mean(values)`` and ``S0 = sum_e w_e``:
    ``I = (N / S0) * sum_e w_e z_i z_j / sum_i z_i^2``. Only the edges given count (pass both directions
    for a symmetric graph; repeated edges add up). E[I] = -1 / (N - 1) under no autocorrelation.
    NaN when the values are constant.
    """
    values = _vector("values", values)
    edges = np.asarray(edge_index)
    if edges.ndim != 2 or edges.shape[0] != 2 or edges.shape[1] == 0:
        raise UncertaintyInputError(
            f"'edge_index' must have shape (2, E) with E >= 1, got {edges.shape}.",
            "Pass source and target rows.",
        )
    if not np.issubdtype(edges.dtype, np.integer):
        raise UncertaintyInputError(f"'edge_index' must be integer, got {edges.dtype}.", "Pass node indices.")
    if edges.min() < 0 or edges.max() >= values.size:
        raise UncertaintyInputError(
            f"'edge_index' refers to nodes outside [0, {values.size}).", "Index the values array's entries."
        )
    if edge_weight is None:
        weights = np.ones(edges.shape[1])
    else:
        weights = _vector("edge_weight", edge_weight)
        if weights.size != edges.shape[1]:
            raise UncertaintyInputError(
                f"'edge_weight' has {weights.size} values for {edges.shape[1]} edges.", "Pass one per edge."
            )
    s0 = float(weights.sum())
    if s0 == 0.0:
        raise UncertaintyInputError("The edge weights sum to 0.", "Moran's I needs a non-zero total weight.")
    z = values - values.mean()
    denominator = float(np.sum(z**2))
    if denominator == 0.0:
        return math.nan
    return values.size / s0 * float(np.sum(weights * z[edges[0]] * z[edges[1]])) / denominator


def regression_metrics(
    y: np.ndarray,
    mean: np.ndarray,
    sd: np.ndarray,
    *,
    interval: Interval = gaussian_interval,
    edge_index: np.ndarray | None = None,
    edge_weight: np.ndarray | None = None,
) -> dict[str, float]:
    """Every metric of this module in one dict (JSON-safe floats; ``n`` an int).

    Keys: ``n, r2, rmse, mae, mape, nll, crps, picp90, ece, ence`` and ``morans_i_residuals`` (Moran's I
    of ``y - mean``) when ``edge_index`` is given. ``nll``, ``crps`` and ``ence`` use the Gaussian
    ``(mean, sd)``; ``picp90`` and ``ece`` use ``interval`` (e.g. a recalibrator's).
    """
    y, mean, sd = check_arrays(y, mean, sd)
    result: dict[str, float] = {
        "n": int(y.size),
        "r2": r2(y, mean),
        "rmse": rmse(y, mean),
        "mae": mae(y, mean),
        "mape": mape(y, mean),
        "nll": gaussian_nll(y, mean, sd),
        "crps": crps_gaussian(y, mean, sd),
        "picp90": picp(y, mean, sd, 0.9, interval),
        "ece": ece(y, mean, sd, interval=interval),
        "ence": ence(y, mean, sd),
    }
    if edge_index is not None:
        result["morans_i_residuals"] = morans_i(y - mean, edge_index, edge_weight)
    return result
