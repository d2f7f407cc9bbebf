"""Training losses of the SpTGNN ensemble, per member (every function returns an (M,) tensor)."""

from __future__ import annotations

import torch


def beta_nll(
    mean: torch.Tensor,
    variance: torch.Tensor,
    target: torch.Tensor,
    beta: float = 0.5,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""beta-NLL (Seitzer et al., ICLR 2022), the weighted mean over nodes for each member.

    .. math:: L = \operatorname{sg}(\sigma^2)^{\beta}
                  \left(\tfrac12 \log \sigma^2 + \frac{(y - \mu)^2}{2 \sigma^2}\right)

    ``beta = 0`` is the Gaussian NLL (without the constant); ``beta = 1`` gives the mean its MSE
    gradient. ``sg`` stops the gradient. Shapes: ``mean``, ``variance`` (M, N), ``target`` (N,),
    ``weight`` (M, N) or None (bootstrap weights) -> (M,).
    """
    nll = 0.5 * variance.log() + (target - mean) ** 2 / (2 * variance)
    if beta:
        nll = nll * variance.detach() ** beta
    if weight is None:
        return nll.mean(dim=1)
    return (nll * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1e-12)


def morans_i(residual: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    r"""Moran's I of residuals over the given edges (binary weights), per member, differentiable.

    .. math:: I = \frac{N}{S_0} \frac{\sum_{(i,j)} z_i z_j}{\sum_i z_i^2}, \ z = r - \bar r, \ S_0 = |E|

    Shapes: ``residual`` (M, N), ``edge_index`` (2, E) -> (M,). Zero when there are no edges.
    """
    if edge_index.shape[1] == 0:
        return residual.new_zeros(residual.shape[0])
    z = residual - residual.mean(dim=1, keepdim=True)
    cross = (z[:, edge_index[0]] * z[:, edge_index[1]]).sum(dim=1)
    return residual.shape[1] / edge_index.shape[1] * cross / (z**2).sum(dim=1).clamp_min(1e-12)


def moran_penalty(residual: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    r"""Penalty on spatially autocorrelated residuals: :math:`\max(0, I)^2` per member.

    Only positive autocorrelation (clustered errors, the failure mode of a spatial model that missed a
    regional trend) is penalised; the square keeps the gradient small near zero.
    """
    return morans_i(residual, edge_index).clamp_min(0.0) ** 2
