"""Pooled out-of-fold calibration: each fold's calibrator fitted on its own validation part only."""

from __future__ import annotations

import numpy as np
import pytest

from soilcarbon_core.predictor import finish_prediction
from soilcarbon_training.crossval import FoldResult, PooledCalibration


def _fold(rng, test, validation, target, spread):
    """A fold whose members predict the truth with noise ``spread`` times larger than they claim."""

    def members(index):
        shared = rng.normal(0, spread, len(index))  # an error the members agree on
        means = target[index] + shared + rng.normal(0, 0.1, (3, len(index)))
        return means, np.ones((3, len(index)))

    return FoldResult(test, 0.0, 0.0, [0], members(test), validation, members(validation))


def test_each_fold_gets_its_own_calibration():
    rng = np.random.default_rng(0)
    target = rng.normal(0, 5, 4000)
    order = rng.permutation(4000)
    folds = [
        _fold(rng, order[:1000], order[1000:2000], target, spread=2.0),
        _fold(rng, order[2000:3000], order[3000:], target, spread=4.0),
    ]
    pooled = PooledCalibration(target, folds, "sigma_scaling")
    np.testing.assert_array_equal(pooled.y, target[np.concatenate([order[:1000], order[2000:3000]])])
    # sigma scaling: the NLL-optimal factor of each fold comes from its validation residuals.
    for (part, calibrator), fold in zip(pooled.parts, folds, strict=True):
        validation = finish_prediction(*fold.validation_members, None)
        z = (target[fold.validation] - validation.mean) / validation.total_sd
        assert calibrator.scale == pytest.approx(np.sqrt(np.mean(z**2)))
        np.testing.assert_allclose(pooled.calibrated_sd[part], calibrator.scale * pooled.sd[part])
    assert pooled.parts[0][1].scale == pytest.approx(2.0, rel=0.1)
    assert pooled.parts[1][1].scale == pytest.approx(4.0, rel=0.1)
    metrics = pooled.metrics()
    lower, upper = pooled.interval(pooled.mean, pooled.sd, 0.9)
    assert metrics["picp90"] == pytest.approx(np.mean((pooled.y >= lower) & (pooled.y <= upper)))
    assert 0.86 < metrics["picp90"] < 0.94 and metrics["ece"] < 0.03
    uncalibrated = PooledCalibration(target, folds, "none").metrics()
    assert uncalibrated["ece"] > 0.1  # the claimed sd is far too small before calibration
