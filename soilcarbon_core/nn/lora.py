"""Low-rank adapters for a frozen linear layer (Hu et al. 2022, "LoRA", ICLR)."""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    r"""A frozen :class:`~torch.nn.Linear` :math:`W x + b` plus a trainable low-rank update:

    .. math:: y = W x + b + \frac{\alpha}{r} B A x, \quad A \in \mathbb{R}^{r \times d_{in}},
              B \in \mathbb{R}^{d_{out} \times r}

    ``B`` starts at zero, so the adapted layer starts exactly as the pretrained one.
    Shapes: (..., d_in) -> (..., d_out).
    """

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float | None = None) -> None:
        super().__init__()
        self.base = base
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.scale = (alpha or rank) / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.lora_a.T) @ self.lora_b.T


def add_lora(module: nn.Module, names: tuple[str, ...] = ("qkv", "proj"), rank: int = 4) -> nn.Module:
    """Replace every :class:`~torch.nn.Linear` child called one of ``names`` (at any depth) by a
    :class:`LoRALinear` over it; every other parameter of ``module`` is frozen. Returns ``module``."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if name in names and isinstance(child, nn.Linear):
                setattr(parent, name, LoRALinear(child, rank))
    return module
