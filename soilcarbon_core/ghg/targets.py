"""The three fluxes, their units and the monotone transforms KG-FGNN is trained in.

Fluxes are skewed (N2O, CO2) or change sign (CH4: uptake in upland soils, emission from paddies), so the
network predicts a Gaussian in a transformed space g(y), standardised with the simulations' mean and sd:

- N2O-N, kg N/ha: g = log(y + 0.1)
- CO2-C, kg C/ha: g = log(y + 10)
- CH4-C, kg C/ha: g = asinh(y / 0.5)

g is monotone, so quantiles map back exactly; means and standard deviations in flux units come from
samples of the predictive distribution (:func:`sample_fluxes`).

CO2-equivalents use the IPCC AR6 GWP100: N2O 273, CH4 27.0 (non-fossil); N2O = N2O-N x 44/28,
CH4 = CH4-C x 16/12.
"""

from __future__ import annotations

import numpy as np

TARGETS = ("n2o", "co2", "ch4")
PERIODS = ("season", "annual")
UNITS = {"n2o": "kg N2O-N/ha", "co2": "kg CO2-C/ha", "ch4": "kg CH4-C/ha"}
GWP100 = {"n2o": 273.0, "ch4": 27.0}
#: Mass of each gas per mass of its N or C.
GAS_PER_ELEMENT = {"n2o": 44.0 / 28.0, "co2": 44.0 / 12.0, "ch4": 16.0 / 12.0}
_SHIFT = {"n2o": 0.1, "co2": 10.0}
_CH4_SCALE = 0.5


def forward(target: str, flux: np.ndarray) -> np.ndarray:
    """g(flux) of one target."""
    flux = np.asarray(flux, dtype=np.float64)
    if target == "ch4":
        return np.arcsinh(flux / _CH4_SCALE)
    return np.log(np.maximum(flux, 0.0) + _SHIFT[target])


def inverse(target: str, value: np.ndarray) -> np.ndarray:
    """The flux of a transformed value of one target."""
    value = np.asarray(value, dtype=np.float64)
    if target == "ch4":
        return _CH4_SCALE * np.sinh(value)
    return np.exp(np.minimum(value, 50.0)) - _SHIFT[target]


def forward_all(fluxes: np.ndarray) -> np.ndarray:
    """(N, T, P) fluxes in TARGETS order -> transformed values."""
    return np.stack([forward(t, fluxes[:, i]) for i, t in enumerate(TARGETS)], axis=1)


def co2_equivalent(target: str, flux: np.ndarray) -> np.ndarray:
    """kg CO2-eq/ha of an N2O-N or CH4-C flux (GWP100, AR6)."""
    return np.asarray(flux) * GAS_PER_ELEMENT[target] * GWP100[target]


def sample_fluxes(
    mean: np.ndarray, variance: np.ndarray, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Samples of the ensemble's predictive distribution, in flux units.

    Each sample takes a member at random and draws from its Gaussian in the transformed space, so the
    samples follow the equal-weight mixture of members (aleatoric and epistemic uncertainty together).

    Shapes: ``mean``, ``variance`` (M, N, T, P) transformed (not standardised) -> (samples, N, T, P).
    """
    members, n = mean.shape[:2]
    pick = rng.integers(0, members, size=(samples, n))
    rows = np.arange(n)[None, :]
    draws = mean[pick, rows] + np.sqrt(variance[pick, rows]) * rng.standard_normal((samples, *mean.shape[1:]))
    return np.stack([inverse(t, draws[:, :, i]) for i, t in enumerate(TARGETS)], axis=2)
