"""Pooling a set of tokens into one vector: the mean, or a learned attention query."""

from __future__ import annotations

import math

import torch
from torch import nn

POOLINGS = ("mean", "attention")


class TokenPooling(nn.Module):
    r"""(B, T, D) tokens -> (B, D).

    ``mean``: :math:`\frac{1}{T} \sum_t x_t`.

    ``attention`` (attention pooling with one learned query, as in Lee et al. 2019, "Set Transformer",
    PMA with one seed): :math:`\alpha = \mathrm{softmax}_t\big((W_k x_t)^\top q / \sqrt{D}\big)`,
    output :math:`\sum_t \alpha_t x_t`. The query starts at zero, so an untrained attention pooling
    is exactly the mean and training can only move away from it where that helps.
    """

    def __init__(self, dim: int, kind: str = "mean") -> None:
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not '{kind}'")
        self.kind = kind
        if kind == "attention":
            self.query = nn.Parameter(torch.zeros(dim))
            self.key = nn.Linear(dim, dim, bias=False)

    def weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pooling weights (B, T), summing to one over the tokens."""
        if self.kind == "mean":
            return tokens.new_full(tokens.shape[:2], 1.0 / tokens.shape[1])
        scores = self.key(tokens) @ self.query / math.sqrt(tokens.shape[-1])
        return torch.softmax(scores, dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.kind == "mean":
            return tokens.mean(dim=1)
        return torch.einsum("bt,btd->bd", self.weights(tokens), tokens)
