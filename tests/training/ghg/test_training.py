"""KG-FGNN training mechanics on tiny data: masking patterns, pre-training, fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soilcarbon_core.ghg.features import FERTILISER_SHARES, feature_index
from soilcarbon_core.ghg.model import GHGModel, KGFGNNConfig
from soilcarbon_training.ghg.scenarios import run_scenarios, sample_scenarios
from soilcarbon_training.ghg.training import (
    CORE_FEATURES,
    FinetuneConfig,
    PretrainConfig,
    finetune,
    hide_like_real_tables,
    predictive_mean,
    pretrain,
)

TINY = KGFGNNConfig(members=2, hidden=8, layers=1, heads=2, latent=4)


@pytest.fixture(scope="module")
def pretrained():
    torch.set_num_threads(1)
    data, _ = run_scenarios(sample_scenarios(2, seed=5), years=1, seed=5, chunk=50)
    model, history = pretrain(
        data, TINY, PretrainConfig(epochs=2, autoencoder_epochs=1, batch_size=64, rows_per_epoch=94)
    )
    return data, model, history


def test_hiding_follows_the_patterns_of_real_tables():
    x = np.random.default_rng(0).random((4000, 20))
    hidden = hide_like_real_tables(x, np.random.default_rng(1))
    assert np.isfinite(hidden[:, feature_index("n_rate")]).all()
    core = [feature_index(n) for n in CORE_FEATURES]
    others = np.setdiff1d(np.arange(20), core)
    core_only = np.isnan(hidden[:, others]).all(axis=1)
    assert 0.15 < core_only.mean() < 0.3
    assert np.isfinite(hidden[core_only][:, [feature_index("soc"), feature_index("n_rate")]]).all()
    shares = [feature_index(n) for n in FERTILISER_SHARES]
    share_nan = np.isnan(hidden[:, shares])
    assert np.all(share_nan.all(axis=1) == share_nan.any(axis=1))  # the type is hidden whole
    assert np.array_equal(np.isnan(x), np.zeros_like(x, bool))  # the input is not modified


def test_pretraining_learns_and_reports(pretrained):
    data, model, history = pretrained
    assert len(history["autoencoder"]) == 1 and len(history["validation"]) == 2
    mean, variance = model.predict(data.features)
    assert mean.shape == (2, data.features.shape[0], 3, 2) and np.all(variance > 0)
    # the standardisation of the transformed targets comes from the simulations
    assert np.isfinite(model.target_mean).all() and np.all(model.target_sd > 0)


def test_finetuning_heads_changes_only_the_heads_and_fits_the_table(pretrained):
    data, model, _ = pretrained
    rng = np.random.default_rng(0)
    x = data.features.copy()
    flux = 0.03 * x[:, feature_index("n_rate")] + 0.5  # a real table where N2O is 3 % of N
    groups = np.arange(x.shape[0]) // 4
    tuned, history = finetune(
        model, x, flux, groups, "n2o", FinetuneConfig(mode="heads", epochs=150, patience=150)
    )
    assert history["validation"][-1] < history["validation"][0]
    before, after = dict(model.network.named_parameters()), dict(tuned.network.named_parameters())
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(".heads." in name for name in changed)
    error_before = np.abs(predictive_mean(model, x, "n2o", samples=400)[0] - flux).mean()
    error_after = np.abs(predictive_mean(tuned, x, "n2o", samples=400)[0] - flux).mean()
    assert error_after < error_before
    mean, sd, low, high = predictive_mean(tuned, x[:5], "n2o", samples=400, seed=rng.integers(100))
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(sd > 0)


def test_saved_model_predicts_the_same(pretrained, tmp_path):
    data, model, _ = pretrained
    path = model.save(tmp_path / "ghg.zip")
    loaded = GHGModel.load(path)
    np.testing.assert_allclose(
        loaded.predict(data.features[:10])[0], model.predict(data.features[:10])[0], rtol=1e-6
    )
