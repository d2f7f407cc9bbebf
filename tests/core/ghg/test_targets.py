"""Target transforms, predictive sampling and CO2-equivalents."""

from __future__ import annotations

import numpy as np
import pytest

from soilcarbon_core.ghg import targets as tg


@pytest.mark.parametrize("target", tg.TARGETS)
def test_transforms_invert(target):
    flux = (
        np.array([-2.0, -0.1, 0.0, 0.3, 5.0, 300.0]) if target == "ch4" else np.array([0.0, 0.3, 5.0, 3000.0])
    )
    np.testing.assert_allclose(tg.inverse(target, tg.forward(target, flux)), flux, atol=1e-9)
    assert np.all(np.diff(tg.forward(target, flux)) > 0)


def test_samples_follow_the_ensemble_mixture():
    # Two members, one output each: N2O in log(y + 0.1) space N(mu_m, s2); the mixture mean of the
    # back-transformed flux is mean_m exp(mu_m + s2 / 2) - 0.1 (log-normal).
    mean = np.zeros((2, 1, 3, 2))
    mean[:, 0, 0, 0] = [0.0, 1.0]
    variance = np.full((2, 1, 3, 2), 0.04)
    draws = tg.sample_fluxes(mean, variance, 200_000, np.random.default_rng(0))
    expected = np.mean(np.exp(np.array([0.0, 1.0]) + 0.02)) - 0.1
    assert draws[:, 0, 0, 0].mean() == pytest.approx(expected, rel=0.01)
    assert draws.shape == (200_000, 1, 3, 2)


def test_co2_equivalents_use_ar6_gwp100():
    # 1 kg N2O-N = 44/28 kg N2O = 273 * 44/28 kg CO2-eq; 1 kg CH4-C = 16/12 kg CH4 = 27 * 16/12.
    assert tg.co2_equivalent("n2o", np.array(1.0)) == pytest.approx(273 * 44 / 28)
    assert tg.co2_equivalent("ch4", np.array(1.0)) == pytest.approx(36.0)
