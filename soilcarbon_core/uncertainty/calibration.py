"""Post-hoc recalibration of Gaussian predictive distributions, fitted on validation data only.

Two recalibrators, both serialisable to small JSON-safe dicts (:meth:`to_dict`, :func:`calibrator_from_dict`):

* :class:`SigmaScaling` multiplies every sd by one factor ``s`` (minimising NLL or ECE).
* :class:`IsotonicCalibration` (Kuleshov et al., ICML 2018) maps the probability integral transform
  ``F(y) = Phi((y - mean) / sd)`` through a monotone function ``R`` fitted so that the calibrated CDF
  ``R(F(y))`` is uniform on the validation data.

Both offer ``interval(mean, sd, level)``, which fits the metrics' ``interval`` argument, so calibrated
PICP and ECE are ``picp(y, mean, sd, interval=calibrator.interval)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import ndtr, ndtri

from soilcarbon_core.uncertainty.metrics import (
    UncertaintyInputError,
    check_arrays,
    check_level,
    gaussian_interval,
)

#: Share of a Gaussian inside mean +/- 1 sd: the level whose half-width defines an equivalent sd.
ONE_SD_LEVEL = math.erf(1.0 / math.sqrt(2.0))

_OBJECTIVES = ("nll", "ece", "none")
#: The ECE search looks for s within this factor of the NLL-optimal scale.
_ECE_SEARCH_FACTOR = 10.0
_ECE_GRID = 401


def isotonic_regression(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Weighted least-squares non-decreasing fit of ``y`` on ``x`` by pool-adjacent-violators.

    Minimises ``sum_i w_i (y_i - f(x_i))^2`` over non-decreasing ``f``. Tied ``x`` values are pooled first
    (their weighted mean ``y``), as scikit-learn does. Returns ``(x_unique, fitted)``, both ``(U,)``,
    ``x_unique`` sorted ascending; ``fitted`` is non-decreasing. O(N log N).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.shape != w.shape or x.size == 0:
        raise UncertaintyInputError(
            "isotonic_regression needs 1-D x, y (and weights) of one non-zero length."
        )
    if (w <= 0).any():
        raise UncertaintyInputError("isotonic_regression needs positive weights.")
    order = np.argsort(x, kind="stable")
    x_unique, group = np.unique(x[order], return_inverse=True)
    pooled_w = np.bincount(group, weights=w[order])
    pooled_y = np.bincount(group, weights=(w * y)[order]) / pooled_w
    # Stack of blocks (mean, weight, count); merge while the last two violate monotonicity.
    means: list[float] = []
    block_w: list[float] = []
    counts: list[int] = []
    for value, weight in zip(pooled_y.tolist(), pooled_w.tolist(), strict=True):
        means.append(value)
        block_w.append(weight)
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            weight = block_w[-2] + block_w[-1]
            means[-2] = (block_w[-2] * means[-2] + block_w[-1] * means[-1]) / weight
            block_w[-2] = weight
            counts[-2] += counts[-1]
            del means[-1], block_w[-1], counts[-1]
    return x_unique, np.repeat(means, counts)


def _finite_positive(name: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise UncertaintyInputError(f"'{name}' must be a finite number > 0, got {value}.")
    return number


class SigmaScaling:
    """Recalibration by one factor on the sd: ``N(mean, sd^2) -> N(mean, (s sd)^2)``.

    ``objective="nll"``: ``s`` minimises the Gaussian NLL on the fitting data, in closed form
    ``s^2 = mean(((y - mean) / sd)^2)``. ``objective="ece"``: ``s`` minimises :func:`ece`; ECE is a step
    function of ``s``, so the search is a log-spaced grid of 401 scales within a factor 10 of the NLL
    optimum followed by a bounded Brent search between the best grid point's neighbours.
    ``objective="none"``: the identity (``s = 1``), for a pipeline that wants a calibrator object anyway.
    """

    method = "sigma_scaling"

    def __init__(self, objective: str = "nll", scale: float | None = None) -> None:
        if objective not in _OBJECTIVES:
            raise UncertaintyInputError(
                f"Unknown sigma-scaling objective '{objective}'.", f"Use one of {', '.join(_OBJECTIVES)}."
            )
        self.objective = objective
        if objective == "none":
            scale = 1.0 if scale is None else scale
        self._scale = None if scale is None else _finite_positive("scale", scale)

    @property
    def scale(self) -> float:
        """The fitted factor ``s``."""
        if self._scale is None:
            raise UncertaintyInputError(
                "This SigmaScaling is not fitted.", "Call fit() on validation data first."
            )
        return self._scale

    def fit(self, y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> SigmaScaling:
        """Fit ``s`` on validation targets and predictions (1-D, one length); returns ``self``."""
        y, mean, sd = check_arrays(y, mean, sd)
        if self.objective == "none":
            return self
        z = (y - mean) / sd
        nll_scale = math.sqrt(float(np.mean(z**2)))
        if nll_scale == 0.0:
            raise UncertaintyInputError(
                "Every prediction equals its target exactly; no scale can be fitted.", "Check the data."
            )
        self._scale = nll_scale if self.objective == "nll" else _ece_optimal_scale(np.abs(z), nll_scale)
        return self

    def scale_sd(self, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """Calibrated sd ``s * sd`` (``mean`` is unused; kept so every calibrator has one signature)."""
        return self.scale * np.asarray(sd, dtype=float)

    def interval(self, mean: np.ndarray, sd: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval of ``N(mean, (s sd)^2)``."""
        return gaussian_interval(mean, self.scale_sd(mean, sd), level)

    def quantile(self, mean: np.ndarray, sd: np.ndarray, q: float) -> np.ndarray:
        """Calibrated ``q``-quantile ``mean + s sd Phi^-1(q)``."""
        return np.asarray(mean, dtype=float) + self.scale_sd(mean, sd) * ndtri(check_level(q))

    def cdf(self, y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """Calibrated CDF at ``y``: ``Phi((y - mean) / (s sd))``."""
        return ndtr((np.asarray(y, dtype=float) - mean) / self.scale_sd(mean, sd))

    def to_dict(self) -> dict:
        """``{"method": "sigma_scaling", "objective": ..., "scale": s}``."""
        return {"method": self.method, "objective": self.objective, "scale": self.scale}

    def __repr__(self) -> str:
        return f"SigmaScaling(objective={self.objective!r}, scale={self._scale!r})"


def _ece_optimal_scale(abs_z: np.ndarray, start: float, levels: int = 100) -> float:
    """The ``s`` minimising the ECE of ``N(0, s^2)`` for standardised residuals ``|z|``.

    The Gaussian central ``p`` interval holds ``|z| <= s Phi^-1((1 + p) / 2)``, so with ``|z|`` sorted once
    each ECE evaluation is ``levels`` binary searches; this equals :func:`ece` up to ties on a bound.
    """
    abs_z = np.sort(abs_z)
    expected = np.linspace(0.0, 1.0, levels)
    half_widths = ndtri(0.5 + 0.5 * expected)

    def error(log_scale: float) -> float:
        inside = np.searchsorted(abs_z, math.exp(log_scale) * half_widths, side="right")
        return float(np.mean(np.abs(expected - inside / abs_z.size)))

    grid = np.linspace(-math.log(_ECE_SEARCH_FACTOR), math.log(_ECE_SEARCH_FACTOR), _ECE_GRID) + math.log(
        start
    )
    errors = np.array([error(g) for g in grid])
    best = int(np.argmin(errors))
    bounds = (grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)])
    refined = minimize_scalar(error, bounds=bounds, method="bounded", options={"xatol": 1e-6})
    log_scale = float(refined.x) if refined.fun < errors[best] else float(grid[best])
    return math.exp(log_scale)


class IsotonicCalibration:
    """Isotonic recalibration of the PIT (Kuleshov, Fenner & Ermon, ICML 2018).

    Fit: the PIT values ``F_i = Phi((y_i - mean_i) / sd_i)`` are sorted and paired with their empirical
    CDF, using plotting positions ``i / (N + 1)`` so that ``R`` can be anchored at ``R(0) = 0`` and
    ``R(1) = 1`` and stays strictly increasing (invertible); isotonic regression (pool-adjacent-violators,
    :func:`isotonic_regression`) of those targets on ``F`` gives ``R`` at the distinct PIT values (with
    an empirical-CDF target it only pools tied PIT values, to their mid-rank). ``R`` is stored as at most
    ``max_knots`` interior breakpoints (taken at evenly spaced ranks) plus the anchors, and is linear
    between them; thinning changes ``R`` by at most about ``1 / max_knots``.

    Calibrated CDF: ``R(F(y))``. Calibrated ``q``-quantile: ``mean + sd * Phi^-1(R^-1(q))``; the central
    ``level`` interval runs between the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles, so intervals
    are nested (monotone in level). The calibrated distribution need not be symmetric about ``mean``.

    :meth:`scale_sd` gives a Gaussian-equivalent sd: the half-width of the calibrated central 68.27 %
    interval (mean +/- 1 sd for a Gaussian). As ``R`` acts on the standardised residual only, that is
    ``c * sd`` with one factor ``c`` for all samples.
    """

    method = "isotonic"

    def __init__(self, max_knots: int = 100) -> None:
        if int(max_knots) != max_knots or max_knots < 2:
            raise UncertaintyInputError(f"'max_knots' must be an integer >= 2, got {max_knots}.")
        self.max_knots = int(max_knots)
        self._pit: np.ndarray | None = None
        self._cdf: np.ndarray | None = None

    def fit(self, y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> IsotonicCalibration:
        """Fit ``R`` on validation targets and predictions (1-D, one length); returns ``self``."""
        y, mean, sd = check_arrays(y, mean, sd)
        pit = ndtr((y - mean) / sd)
        targets = np.arange(1, pit.size + 1) / (pit.size + 1.0)
        knots_pit, knots_cdf = isotonic_regression(np.sort(pit), targets)
        # PIT values that saturated to exactly 0 or 1 coincide with the anchors.
        interior = (knots_pit > 0.0) & (knots_pit < 1.0)
        knots_pit, knots_cdf = knots_pit[interior], knots_cdf[interior]
        if knots_pit.size > self.max_knots:
            keep = np.unique(np.round(np.linspace(0, knots_pit.size - 1, self.max_knots)).astype(int))
            knots_pit, knots_cdf = knots_pit[keep], knots_cdf[keep]
        self._set_knots(np.concatenate([[0.0], knots_pit, [1.0]]), np.concatenate([[0.0], knots_cdf, [1.0]]))
        return self

    def _set_knots(self, pit: np.ndarray, cdf: np.ndarray) -> None:
        pit, cdf = np.asarray(pit, dtype=float), np.asarray(cdf, dtype=float)
        valid = (
            pit.ndim == 1
            and pit.shape == cdf.shape
            and pit.size >= 2
            and np.isfinite(pit).all()
            and np.isfinite(cdf).all()
            and pit[0] == 0.0
            and cdf[0] == 0.0
            and pit[-1] == 1.0
            and cdf[-1] == 1.0
            and (np.diff(pit) > 0).all()
            and (np.diff(cdf) > 0).all()
        )
        if not valid:
            raise UncertaintyInputError(
                "Isotonic breakpoints must be two equally long lists rising strictly from 0 to 1.",
                "Refit the calibrator.",
            )
        self._pit, self._cdf = pit, cdf

    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        if self._pit is None or self._cdf is None:
            raise UncertaintyInputError(
                "This IsotonicCalibration is not fitted.", "Call fit() on validation data first."
            )
        return self._pit, self._cdf

    def cdf(self, y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """Calibrated CDF at ``y``: ``R(Phi((y - mean) / sd))``."""
        pit, cdf = self._knots()
        return np.interp(ndtr((np.asarray(y, dtype=float) - mean) / np.asarray(sd, dtype=float)), pit, cdf)

    def _standard_quantile(self, q: float) -> float:
        """``Phi^-1(R^-1(q))``: the calibrated ``q``-quantile in units of sd from the mean."""
        pit, cdf = self._knots()
        return float(ndtri(np.interp(check_level(q), cdf, pit)))

    def quantile(self, mean: np.ndarray, sd: np.ndarray, q: float) -> np.ndarray:
        """Calibrated ``q``-quantile ``mean + sd * Phi^-1(R^-1(q))``."""
        return np.asarray(mean, dtype=float) + np.asarray(sd, dtype=float) * self._standard_quantile(q)

    def interval(self, mean: np.ndarray, sd: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval: from the ``(1 - level) / 2`` to the ``(1 + level) / 2`` quantile."""
        level = check_level(level)
        return self.quantile(mean, sd, 0.5 - 0.5 * level), self.quantile(mean, sd, 0.5 + 0.5 * level)

    def scale_sd(self, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """Gaussian-equivalent sd: half the width of the calibrated central 68.27 % interval."""
        factor = 0.5 * (
            self._standard_quantile(0.5 + 0.5 * ONE_SD_LEVEL)
            - self._standard_quantile(0.5 - 0.5 * ONE_SD_LEVEL)
        )
        return factor * np.asarray(sd, dtype=float)

    def to_dict(self) -> dict:
        """``{"method": "isotonic", "pit": [...], "cdf": [...]}``: the breakpoints of ``R`` (JSON-safe)."""
        pit, cdf = self._knots()
        return {"method": self.method, "pit": pit.tolist(), "cdf": cdf.tolist()}

    def __repr__(self) -> str:
        knots = "unfitted" if self._pit is None else f"{self._pit.size} knots"
        return f"IsotonicCalibration({knots})"


Calibrator = SigmaScaling | IsotonicCalibration

#: ``fit_calibrator`` methods.
CALIBRATION_METHODS = ("sigma_scaling", "sigma_scaling_ece", "isotonic", "none")


def fit_calibrator(method: str, y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> Calibrator:
    """Fit a recalibrator on validation data.

    ``method``: ``"sigma_scaling"`` (NLL objective), ``"sigma_scaling_ece"``, ``"isotonic"`` or ``"none"``
    (the identity, a :class:`SigmaScaling` with ``s = 1`` that still serialises).
    """
    if method == "isotonic":
        calibrator: Calibrator = IsotonicCalibration()
    elif method in ("sigma_scaling", "sigma_scaling_ece", "none"):
        calibrator = SigmaScaling(
            {"sigma_scaling": "nll", "sigma_scaling_ece": "ece", "none": "none"}[method]
        )
    else:
        raise UncertaintyInputError(
            f"Unknown calibration method '{method}'.", f"Use one of {', '.join(CALIBRATION_METHODS)}."
        )
    return calibrator.fit(y, mean, sd)


def calibrator_from_dict(d: dict) -> Calibrator:
    """Rebuild a calibrator from its :meth:`to_dict` output (e.g. read back from JSON)."""
    method = d.get("method") if isinstance(d, dict) else None
    try:
        if method == SigmaScaling.method:
            return SigmaScaling(d.get("objective", "nll"), d["scale"])
        if method == IsotonicCalibration.method:
            calibrator = IsotonicCalibration(max(2, len(d["pit"]) - 2))
            calibrator._set_knots(d["pit"], d["cdf"])
            return calibrator
    except UncertaintyInputError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise UncertaintyInputError(
            f"Malformed '{method}' calibrator: {error!r}.", "Refit the calibrator."
        ) from None
    raise UncertaintyInputError(
        f"Unknown calibrator method {method!r}.",
        f"Expected a dict with 'method' one of '{SigmaScaling.method}', '{IsotonicCalibration.method}'.",
    )
