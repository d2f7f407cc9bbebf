"""The feature autoencoder: masked loss, missing-value handling, learning a low-rank set, sensitivity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soilcarbon_core.nn.feature_autoencoder import (
    FeatureAutoencoder,
    category_index,
    feature_sensitivity,
    mask_features,
    reconstruction_loss,
)

NAN = math.nan


def standardised(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / x.std(0)


def train(autoencoder: FeatureAutoencoder, x: torch.Tensor, steps: int = 300) -> FeatureAutoencoder:
    optimiser = torch.optim.Adam(autoencoder.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = reconstruction_loss(x, autoencoder(x)[1])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return autoencoder.eval()


def test_loss_counts_only_observed_reconstructed_entries():
    x = torch.tensor([[1.0, NAN, 5.0], [3.0, 4.0, NAN]])
    x_hat = torch.tensor([[2.0, 100.0, NAN], [3.0, 6.0, -7.0]], requires_grad=True)
    loss = reconstruction_loss(x, x_hat)
    torch.testing.assert_close(loss, torch.tensor((1.0 + 0.0 + 4.0) / 3))  # (0,0), (1,0), (1,1)
    loss.backward()
    expected = torch.tensor([[2 * 1.0, 0.0, 0.0], [0.0, 2 * 2.0, 0.0]]) / 3
    torch.testing.assert_close(x_hat.grad, expected)  # finite, and zero where x or x_hat is missing
    with torch.no_grad():
        changed = x_hat.clone()
        changed[0, 1], changed[1, 2] = -55.0, 1e6
    torch.testing.assert_close(reconstruction_loss(x, changed), loss.detach())
    assert reconstruction_loss(torch.full((2, 2), NAN), torch.ones(2, 2)) == 0.0


def test_missing_values_enter_only_through_the_mask_and_categories_are_one_hot():
    torch.manual_seed(0)
    autoencoder = FeatureAutoencoder(4, categorical={2: 3}, latent=5)
    x = torch.tensor([[0.5, NAN, 2.0, -1.0], [0.5, NAN, NAN, -1.0]])
    z, x_hat = autoencoder(x)
    assert z.shape == (2, 5) and x_hat.shape == (2, 4)
    assert torch.isnan(x_hat[:, 2]).all() and torch.isfinite(x_hat[:, [0, 1, 3]]).all()
    # A missing numeric value is not the value 0: the flag tells them apart.
    assert not torch.allclose(autoencoder.encode(x[:1]), autoencoder.encode(x[:1].nan_to_num(0.0)))
    # Category 2 one-hot, then a missing category (all-zero one-hot, flag set): different codes.
    assert not torch.allclose(z[0], z[1])
    inputs = []
    handle = autoencoder.encoder[0].register_forward_hook(lambda module, args, out: inputs.append(args[0]))
    autoencoder.encode(x)
    handle.remove()
    # [numeric values (NaN -> 0) | one-hot of 3 crops | missing flags of the 4 columns]
    torch.testing.assert_close(
        inputs[0],
        torch.tensor([[0.5, 0.0, -1.0, 0, 0, 1, 0, 1, 0, 0], [0.5, 0.0, -1.0, 0, 0, 0, 0, 1, 1, 0]]),
    )
    with pytest.raises(ValueError, match="Category codes"):
        autoencoder.encode(torch.tensor([[0.5, 1.0, 3.0, 0.0]]))


def test_category_index_maps_missing_to_the_extra_row():
    torch.testing.assert_close(category_index(torch.tensor([0.0, NAN, 5.0]), 6), torch.tensor([0, 6, 5]))
    with pytest.raises(ValueError):
        category_index(torch.tensor([1.5]), 6)


def test_mask_features_hides_a_share_of_the_observed_entries():
    x = torch.randn(400, 10, generator=torch.Generator().manual_seed(0))
    x[::7, 3] = NAN
    masked = mask_features(x, 0.3, torch.Generator().manual_seed(1))
    again = mask_features(x, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(masked.isnan(), again.isnan())  # seeded
    kept = ~masked.isnan()
    torch.testing.assert_close(masked[kept], x[kept])  # nothing altered, nothing revealed
    assert torch.isnan(masked[torch.isnan(x)]).all()
    share = float((masked.isnan() & ~x.isnan()).sum() / (~x.isnan()).sum())
    assert 0.27 < share < 0.33  # 3 sd of a binomial share over ~3900 entries is 0.022
    assert torch.equal(mask_features(x, 0.0).isnan(), x.isnan())
    assert mask_features(x, 1.0).isnan().all()


def test_learns_a_low_rank_data_set_and_fills_missing_entries():
    generator = torch.Generator().manual_seed(0)
    factors = torch.randn(512, 2, generator=generator)
    x = torch.tanh(factors @ torch.randn(2, 8, generator=generator))
    x = standardised(x + 0.05 * torch.randn(512, 8, generator=generator))
    observed = mask_features(x, 0.1, torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    autoencoder = train(FeatureAutoencoder(8, latent=2), observed)
    with torch.no_grad():
        x_hat = autoencoder(observed)[1]
    assert reconstruction_loss(observed, x_hat) < 0.1  # each column has variance 1
    hidden = observed.isnan()
    assert ((x_hat - x)[hidden].square().mean()) < 0.1  # inferred from the two factors, never seen


def test_sensitivity_ranks_factor_features_above_noise():
    generator = torch.Generator().manual_seed(0)
    factors = torch.randn(512, 2, generator=generator)
    driven = factors @ torch.randn(2, 6, generator=generator) + 0.1 * torch.randn(512, 6, generator=generator)
    x = standardised(torch.cat([driven, torch.randn(512, 2, generator=generator)], dim=1))
    torch.manual_seed(0)
    autoencoder = train(FeatureAutoencoder(8), x)
    sensitivity = feature_sensitivity(autoencoder, x)
    assert sensitivity.shape == (8,) and sensitivity.dtype == np.float64
    assert sensitivity[:6].min() > 2 * sensitivity[6:].max()
    assert not autoencoder.training  # the training flag is restored (it was eval)


def test_sensitivity_by_hand_for_a_never_observed_feature_and_restored_mode():
    torch.manual_seed(0)
    autoencoder = FeatureAutoencoder(3, latent=2).train()
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(4))
    x[:, 2] = NAN
    sensitivity = feature_sensitivity(autoencoder, x)
    assert np.isnan(sensitivity[2]) and np.isfinite(sensitivity[:2]).all()
    assert autoencoder.training
    # S_0 by hand: hide column 0, the only other scored column is 1.
    with torch.no_grad():
        hidden = x.clone()
        hidden[:, 0] = NAN
        autoencoder.eval()
        increase = (autoencoder(hidden)[1][:, 1] - x[:, 1]).square() - (
            autoencoder(x)[1][:, 1] - x[:, 1]
        ).square()
    assert sensitivity[0] == pytest.approx(float(increase.mean()), rel=1e-5)
