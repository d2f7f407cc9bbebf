"""Linear layers and MLPs with one independent set of weights per ensemble member."""

from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    r"""M independent affine maps applied in one batched multiply.

    .. math:: y_m = x_m W_m + b_m, \quad m = 1..M

    Members are initialised independently (PyTorch's default ``nn.Linear`` scheme, each from its own
    draw), which is the source of diversity of a deep ensemble (Lakshminarayanan et al., NeurIPS 2017).

    Shapes: ``x`` (M, N, in_features) or (N, in_features) shared by all members -> (M, N, out_features).
    """

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features).uniform_(-bound, bound))
        self.bias = (
            nn.Parameter(torch.empty(members, 1, out_features).uniform_(-bound, bound)) if bias else None
        )

    def _per_member(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in) shared by every member -> (M, N, in), without a copy; (M, N, in) as it is."""
        return x.unsqueeze(0).expand(self.members, -1, -1) if x.dim() == 2 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._per_member(x)
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)

    def transposed(self, x: torch.Tensor) -> torch.Tensor:
        """The same map with the node axis last: (M, N, in_features) -> (M, out_features, N).

        For few outputs (routers, attention scores) this product is faster on CPU than :meth:`forward`,
        because the long node axis becomes the product's output width."""
        x = self._per_member(x)
        if self.bias is None:
            return torch.bmm(self.weight.transpose(1, 2), x.transpose(1, 2))
        return torch.baddbmm(self.bias.transpose(1, 2), self.weight.transpose(1, 2), x.transpose(1, 2))

    def extra_repr(self) -> str:
        return f"members={self.members}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleMLP(nn.Sequential):
    """``Linear -> GELU -> Linear`` per member: (M, N, in) -> (M, N, out)."""

    def __init__(self, members: int, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__(
            EnsembleLinear(members, in_features, hidden),
            nn.GELU(),
            EnsembleLinear(members, hidden, out_features),
        )
