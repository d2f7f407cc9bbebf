"""The ensemble trainer on the real La Libertad samples (few epochs: mechanics, not accuracy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soilcarbon_core.graph import GraphParams
from soilcarbon_training.datasets import load_la_libertad, node_table
from soilcarbon_training.folds import validation_split
from soilcarbon_training.jobs import model_config_for
from soilcarbon_training.trainer import EnsembleTrainer, TrainConfig


@pytest.fixture(scope="module")
def la_libertad():
    dataset = load_la_libertad()
    table = node_table(dataset)
    fit, val = validation_split(
        np.arange(len(dataset.target)), dataset.coords, geographic=False, block_size_m=500.0
    )
    return table, dataset.target, fit, val


def _trainer(table, target, members=3, **train):
    config = model_config_for(table, members, hidden=16)
    settings = {"epochs": 6, "batch_size": 32, "patience": 100, **train}
    return EnsembleTrainer(config, TrainConfig(**settings), GraphParams(k_spatial=6), geographic=False)


class _Recording(EnsembleTrainer):
    def on_epoch_end(self, epoch, record):
        self.records = [*getattr(self, "records", []), record]


def test_each_member_keeps_its_own_best_epoch(la_libertad):
    table, target, fit, val = la_libertad
    trainer = _trainer(table, target)
    trainer.__class__ = _Recording
    result = trainer.fit(table, target, fit, val)
    history = np.array([r["validation_nll"] for r in result.history])  # (epochs, M)
    assert trainer.records == result.history  # the hook saw every epoch
    assert result.best_epoch == history.argmin(axis=0).tolist()
    # The returned weights are each member's best: re-scoring the validation set gives the best NLL.
    normaliser = result.normaliser
    predictor = trainer.predictor(result.network, normaliser, table.select(fit), target[fit])
    means, variances = predictor.member_predictions(table.select(val))
    y = normaliser.target(target[val])
    mu = normaliser.target(means)
    var = variances / normaliser.target_std**2
    nll = (0.5 * np.log(var) + (y - mu) ** 2 / (2 * var)).mean(axis=1)
    np.testing.assert_allclose(nll, history.min(axis=0), rtol=1e-4)
    # Training reduced the loss.
    losses = np.array([r["train_loss"] for r in result.history])
    assert (losses[-1] < losses[0]).all()


def test_same_seed_same_ensemble_and_members_differ(la_libertad):
    table, target, fit, val = la_libertad
    first = _trainer(table, target, epochs=2).fit(table, target, fit, val)
    second = _trainer(table, target, epochs=2).fit(table, target, fit, val)
    for (name, a), b in zip(
        first.network.state_dict().items(), second.network.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    weights = first.network.head[2].weight
    assert not torch.allclose(weights[0], weights[1])


def test_calibrator_is_fitted_on_validation_only(la_libertad):
    table, target, fit, val = la_libertad
    result = _trainer(table, target, epochs=2, calibration="sigma_scaling").fit(table, target, fit, val)
    trainer = _trainer(table, target)
    predictor = trainer.predictor(result.network, result.normaliser, table.select(fit), target[fit])
    means, variances = predictor.member_predictions(table.select(val))
    total = np.sqrt(variances.mean(0) + means.var(0))
    z = (target[val] - means.mean(0)) / total
    assert result.calibrator.scale == pytest.approx(np.sqrt(np.mean(z**2)), rel=1e-6)
