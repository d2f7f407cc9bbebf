"""The part of TerraMind that is fine-tuned with a model: its last blocks, final norm and token pooling.

One head is shared by every ensemble member and saved in the model file (``backbone.safetensors``).
Fine-tuning modes:

- ``frozen``: no block is trained; the head is TerraMind's final norm and the pooling (a learned
  attention pooling is still trained);
- ``last_n``: the last ``blocks`` transformer blocks and the final norm are trained;
- ``lora``: the last ``blocks`` blocks get low-rank adapters on their attention projections
  (:class:`~soilcarbon_core.nn.lora.LoRALinear`), everything else stays frozen.

The frozen lower blocks run once per point and their tokens are cached; only the head runs per step.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from soilcarbon_core.imagery.encoder import DEPTH
from soilcarbon_core.nn.lora import add_lora
from soilcarbon_core.nn.token_pooling import TokenPooling

FINETUNES = ("frozen", "last_n", "lora")


def head_blocks(finetune: str, blocks: int) -> int:
    """Number of TerraMind blocks that run in the head (after the cached, frozen ones)."""
    if finetune not in FINETUNES:
        raise ValueError(f"finetune must be one of {FINETUNES}, not '{finetune}'")
    return 0 if finetune == "frozen" else min(max(blocks, 1), DEPTH)


class BackboneHead(nn.Module):
    """Tokens after the frozen blocks (B, T, D) -> pooled node embedding (B, D)."""

    def __init__(
        self,
        encoder,
        dim: int,
        *,
        finetune: str = "frozen",
        blocks: int = 2,
        pooling: str = "mean",
        lora_rank: int = 4,
    ) -> None:
        super().__init__()
        n = head_blocks(finetune, blocks)
        self.split = DEPTH - n
        self.blocks = nn.ModuleList(copy.deepcopy(block) for block in encoder.encoder[self.split :])
        self.norm = copy.deepcopy(encoder.encoder_norm)
        # Copies keep the source's requires_grad (the stream's encoder is frozen): set it for the mode.
        self.blocks.requires_grad_(finetune == "last_n")
        self.norm.requires_grad_(finetune == "last_n")
        if finetune == "lora":
            add_lora(self.blocks, rank=lora_rank)
        self.pooling = TokenPooling(dim, pooling)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.pooling(self.norm(tokens))

    def pool_groups(self, tokens: torch.Tensor, present: torch.Tensor, per_modality: int) -> torch.Tensor:
        """Embeddings (N, D) of nodes whose modalities differ: tokens (N, K P, D) laid out modality after
        modality with zeros for absent ones, ``present`` (N, K) bool. Nodes are run in groups of equal
        modality sets (attention sees only present tokens); a node with none gets NaN."""
        out = tokens.new_full((tokens.shape[0], tokens.shape[-1]), float("nan"))
        for pattern, rows in modality_groups(present.cpu().numpy()):
            rows = torch.as_tensor(rows, device=tokens.device)
            keep = torch.as_tensor(np.repeat(pattern, per_modality), device=tokens.device)
            out[rows] = self(tokens[rows][:, keep])
        return out


def modality_groups(present: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(modality pattern (K,) bool, row indices) for every distinct non-empty modality set."""
    patterns, inverse = np.unique(present, axis=0, return_inverse=True)
    return [(p, np.flatnonzero(inverse.ravel() == i)) for i, p in enumerate(patterns) if p.any()]
