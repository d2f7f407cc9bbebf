"""Combine the members of a deep ensemble of heteroscedastic regressors into one Gaussian prediction.

Each member ``m`` predicts ``N(mu_m, s2_m)`` per sample. The ensemble is treated as a uniform mixture and
summarised by its first two moments (METHODS.md, Lakshminarayanan et al. 2017):
``mean = mean_m mu_m``, aleatoric variance ``mean_m s2_m`` (noise the members expect), epistemic variance
``var_m mu_m`` (population variance, ddof = 0: members' disagreement), total = aleatoric + epistemic, which
is exactly the mixture's variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soilcarbon_core.uncertainty.metrics import UncertaintyInputError


@dataclass(frozen=True)
class EnsemblePrediction:
    """An ensemble's prediction per sample, all ``(N,)``.

    Attributes:
        mean: the members' mean prediction.
        aleatoric_sd: ``sqrt(mean_m s2_m)``.
        epistemic_sd: ``sqrt(var_m mu_m)``, 0 for a single member.
    """

    mean: np.ndarray
    aleatoric_sd: np.ndarray
    epistemic_sd: np.ndarray

    @property
    def total_sd(self) -> np.ndarray:
        """``sqrt(aleatoric_sd^2 + epistemic_sd^2)``, the sd of the members' mixture."""
        return np.sqrt(self.aleatoric_sd**2 + self.epistemic_sd**2)


def combine_members(means: np.ndarray, variances: np.ndarray) -> EnsemblePrediction:
    """Combine ``M`` members' means and variances, both ``(M, N)``, into an :class:`EnsemblePrediction`."""
    means = np.asarray(means, dtype=float)
    variances = np.asarray(variances, dtype=float)
    if means.ndim != 2 or means.shape != variances.shape or means.size == 0:
        raise UncertaintyInputError(
            f"'means' and 'variances' must both be (members, samples) arrays of one shape, got {means.shape} "
            f"and {variances.shape}.",
            "Stack one row per ensemble member.",
        )
    if not (np.isfinite(means).all() and np.isfinite(variances).all()):
        raise UncertaintyInputError(
            "Member predictions contain NaN or infinite values.", "Check the members."
        )
    if (variances < 0).any():
        raise UncertaintyInputError("Member variances must be >= 0.", "Pass variances, not log-variances.")
    return EnsemblePrediction(
        mean=means.mean(axis=0),
        aleatoric_sd=np.sqrt(variances.mean(axis=0)),
        epistemic_sd=np.sqrt(means.var(axis=0)),
    )
