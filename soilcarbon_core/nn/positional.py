"""Learned positional embedding of sample coordinates on the sphere."""

from __future__ import annotations

import math

import torch
from torch import nn

from soilcarbon_core.nn.ensemble_linear import EnsembleMLP


class FourierPositionalEmbedding(nn.Module):
    r"""Random Fourier features of 3-D positions followed by a learned MLP (Tancik et al., NeurIPS 2020).

    Positions are unit-sphere vectors, centred and scaled by the training data's extent before they
    arrive here (so the same module suits a farm and a continent). With a fixed matrix
    :math:`B \in \mathbb{R}^{F \times 3}` whose rows are drawn at several scales :math:`\sigma`:

    .. math:: \gamma(p) = [\sin(2\pi B p), \cos(2\pi B p)], \qquad z = \mathrm{MLP}(\gamma(p))

    ``B`` is a buffer (saved with the weights); the MLP is learned per ensemble member.

    Shapes: ``position`` (N, 3) -> (M, N, out_features).
    """

    def __init__(
        self,
        members: int,
        out_features: int,
        frequencies: int = 32,
        scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
        seed: int = 0,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        sigma = torch.tensor(scales).repeat_interleave(math.ceil(frequencies / len(scales)))[:frequencies]
        self.register_buffer("frequencies", torch.randn(frequencies, 3, generator=generator) * sigma[:, None])
        self.mlp = EnsembleMLP(members, 2 * frequencies, out_features, out_features)

    def forward(self, position: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * position @ self.frequencies.T
        return self.mlp(torch.cat([angle.sin(), angle.cos()], dim=-1))
