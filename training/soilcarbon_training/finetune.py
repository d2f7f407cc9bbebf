"""Fine-tuning the shared TerraMind head on the training samples, before the ensemble is trained.

The head (last blocks, LoRA adapters or an attention pooling; see
:class:`~soilcarbon_core.imagery.head.BackboneHead`) is trained with a small heteroscedastic regressor
on [head embedding, standardised covariates] with the ensemble's own loss (beta-NLL), on the
fit samples, early-stopped on the validation samples. The tokens of the frozen lower blocks are
computed once (and cached); a step runs only the head. The head's best weights are kept; the ensemble
is then trained on the embeddings of the fine-tuned head, so one backbone serves every member and
the model's imagery features at prediction time are exactly those it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from soilcarbon_core.features import NodeTable, Normaliser
from soilcarbon_core.imagery import ImageryEncoder
from soilcarbon_core.progress import ProgressCallback, silent
from soilcarbon_core.settings import JsonSettings
from soilcarbon_training.losses import beta_nll


@dataclass
class FineTuneConfig(JsonSettings):
    epochs: int = 30
    batch_size: int = 32
    backbone_learning_rate: float = 1e-4  #: transformer blocks and adapters
    learning_rate: float = 1e-3  #: pooling and the regressor
    beta: float = 0.5
    patience: int = 6
    seed: int = 0


def fine_tune_head(
    encoder: ImageryEncoder,
    table: NodeTable,
    target: np.ndarray,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    config: FineTuneConfig | None = None,
    *,
    progress: ProgressCallback = silent,
) -> list[dict]:
    """Train ``encoder.head`` in place, from its initial weights, on nodes ``fit_idx`` of ``table``;
    returns the per-epoch history."""
    c = config or FineTuneConfig()
    encoder.reset_head()
    device = encoder.device
    tokens, present = encoder.tokens(table.lonlat, progress=lambda f, m: progress(0.3 * f, m))
    usable = present.any(axis=1)
    fit_idx, val_idx = fit_idx[usable[fit_idx]], val_idx[usable[val_idx]]
    if len(fit_idx) < 2 or len(val_idx) < 1:
        return []
    y = (target - target[fit_idx].mean()) / max(target[fit_idx].std(), 1e-9)
    # Covariates standardised on the fit samples, 0 where unknown (as the ensemble will see them).
    extra = np.nan_to_num(Normaliser.fit(table.select(fit_idx), target[fit_idx]).covariates(table))
    tokens_t = torch.as_tensor(tokens, dtype=torch.float32, device=device)
    present_t = torch.as_tensor(present, device=device)
    extra_t = torch.as_tensor(extra, dtype=torch.float32, device=device)
    y_t = torch.as_tensor(y, dtype=torch.float32, device=device)
    head = encoder.head
    generator = torch.Generator().manual_seed(c.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(c.seed)
        regressor = nn.Sequential(
            nn.Linear(tokens.shape[-1] + extra.shape[1], 64), nn.GELU(), nn.Linear(64, 2)
        ).to(device)
    pooling = {id(p) for p in head.pooling.parameters()}
    blocks = [p for p in head.parameters() if p.requires_grad and id(p) not in pooling]
    optimizer = torch.optim.AdamW(
        [
            {"params": blocks, "lr": c.backbone_learning_rate},
            {"params": [*head.pooling.parameters(), *regressor.parameters()], "lr": c.learning_rate},
        ]
    )
    per_modality = encoder.tokens_per_modality

    def predict(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = head.pool_groups(tokens_t[rows], present_t[rows], per_modality)
        mean, raw = regressor(torch.cat([embedding, extra_t[rows]], dim=1)).unbind(-1)
        return mean, nn.functional.softplus(raw) + 1e-6

    fit_t, val_t = torch.as_tensor(fit_idx, device=device), torch.as_tensor(val_idx, device=device)
    best_score, best_state, stale, history = float("inf"), None, 0, []
    for epoch in range(c.epochs):
        head.train()
        order = fit_t[torch.randperm(len(fit_t), generator=generator).to(device)]
        for start in range(0, len(order), c.batch_size):
            rows = order[start : start + c.batch_size]
            mean, variance = predict(rows)
            loss = beta_nll(mean[None], variance[None], y_t[rows], c.beta).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        head.eval()
        with torch.no_grad():
            mean, variance = predict(val_t)
            score = float(beta_nll(mean[None], variance[None], y_t[val_t], 0.0).sum())
        history.append({"epoch": epoch, "validation_nll": score})
        progress(0.3 + 0.7 * (epoch + 1) / c.epochs, f"Fine-tuning TerraMind: epoch {epoch + 1}/{c.epochs}")
        if score < best_score:
            best_score, stale = score, 0
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
        else:
            stale += 1
            if stale >= c.patience:
                break
    if best_state is not None:  # None only when no validation score was finite
        head.load_state_dict(best_state)
    head.eval()
    return history
