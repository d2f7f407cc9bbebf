"""Losses: beta-NLL against PyTorch's Gaussian NLL and its published gradients; Moran's I against esda."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soilcarbon_core.uncertainty import morans_i as morans_i_numpy
from soilcarbon_training.losses import beta_nll, moran_penalty, morans_i


def test_beta_zero_is_gaussian_nll():
    mean, variance, target = torch.randn(3, 50), torch.rand(3, 50) + 0.1, torch.randn(50)
    expected = torch.stack([torch.nn.GaussianNLLLoss()(mean[m], target, variance[m]) for m in range(3)])
    torch.testing.assert_close(beta_nll(mean, variance, target, beta=0.0), expected)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_beta_nll_gradient_of_the_mean(beta):
    """d L / d mu = var^beta * (mu - y) / var (Seitzer et al. 2022): beta = 1 is the MSE gradient."""
    mean = torch.randn(1, 20, requires_grad=True)
    variance = torch.rand(1, 20) + 0.5
    target = torch.randn(20)
    beta_nll(mean, variance, target, beta=beta).sum().backward()
    expected = variance**beta * (mean.detach() - target) / variance / 20
    torch.testing.assert_close(mean.grad, expected)


def test_bootstrap_weights_weight_the_mean():
    mean, variance, target = torch.randn(2, 4), torch.ones(2, 4), torch.zeros(4)
    weight = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    per_node = 0.5 * mean**2
    expected = (per_node * weight).sum(1) / weight.sum(1)
    torch.testing.assert_close(beta_nll(mean, variance, target, beta=0.0, weight=weight), expected)


def test_morans_i_equals_the_reference_implementation():
    rng = np.random.default_rng(0)
    n = 60
    coords = rng.uniform(0, 10, (n, 2))
    distance = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, :4]
    edges = np.stack([nearest.ravel(), np.repeat(np.arange(n), 4)])
    residuals = np.stack([coords[:, 0] + rng.normal(0, 1, n), rng.normal(0, 1, n)])  # trend / noise
    ours = morans_i(torch.tensor(residuals), torch.tensor(edges)).numpy()
    for m in range(2):
        # soilcarbon_core.uncertainty.morans_i is tested against esda.Moran.
        assert ours[m] == pytest.approx(morans_i_numpy(residuals[m], edges), rel=1e-10)
    assert ours[0] > 0.3 > abs(ours[1])
    penalty = moran_penalty(torch.tensor(residuals), torch.tensor(edges)).numpy()
    assert penalty[0] == pytest.approx(ours[0] ** 2)
    assert penalty[1] == pytest.approx(max(ours[1], 0.0) ** 2)
