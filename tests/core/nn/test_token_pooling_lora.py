"""Token pooling (mean, attention with one learned query) and LoRA adapters, against their formulas."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from soilcarbon_core.nn.lora import LoRALinear, add_lora
from soilcarbon_core.nn.token_pooling import TokenPooling


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def attention(seed: int = 1, dim: int = 8) -> TokenPooling:
    pooling = TokenPooling(dim, "attention")
    with torch.no_grad():
        pooling.query.copy_(randn(dim, seed=seed))
        pooling.key.weight.copy_(randn(dim, dim, seed=seed + 1))
    return pooling


def test_mean_pooling_is_the_token_mean():
    tokens = randn(3, 5, 8)
    pooling = TokenPooling(8)
    torch.testing.assert_close(pooling(tokens), tokens.mean(dim=1))
    torch.testing.assert_close(pooling.weights(tokens), torch.full((3, 5), 0.2))
    assert not list(pooling.parameters())


def test_untrained_attention_pooling_is_the_mean():
    tokens = randn(3, 5, 8)
    pooling = TokenPooling(8, "attention")
    assert torch.equal(pooling.query, torch.zeros(8))
    torch.testing.assert_close(pooling(tokens), tokens.mean(dim=1))


def test_attention_pooling_follows_its_formula():
    tokens = randn(4, 6, 8, seed=3)
    pooling = attention()
    keys = tokens @ pooling.key.weight.T  # W_k x_t
    alpha = torch.softmax(keys @ pooling.query / math.sqrt(8), dim=1)
    weights = pooling.weights(tokens)
    torch.testing.assert_close(weights, alpha)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(4))
    assert (weights > 0).all() and weights.std() > 0.01  # really not uniform
    torch.testing.assert_close(pooling(tokens), (alpha[..., None] * tokens).sum(dim=1))
    # A set function: the order of the tokens does not matter.
    order = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(pooling(tokens[:, order]), pooling(tokens))
    with pytest.raises(ValueError, match="pooling"):
        TokenPooling(8, "max")


def test_lora_starts_as_the_base_layer():
    base = nn.Linear(6, 4)
    adapted = LoRALinear(base, rank=2)
    x = randn(5, 3, 6)
    assert torch.equal(adapted.lora_b, torch.zeros(4, 2)) and adapted.lora_a.abs().sum() > 0
    assert torch.equal(adapted(x), base(x))
    assert [n for n, p in adapted.named_parameters() if p.requires_grad] == ["lora_a", "lora_b"]


def test_lora_trains_only_its_adapters_and_follows_its_formula():
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    adapted = LoRALinear(base, rank=2, alpha=8.0)
    assert adapted.scale == 4.0
    before = {k: v.clone() for k, v in adapted.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in adapted.parameters() if p.requires_grad], lr=0.1)
    x = randn(16, 6)
    for _ in range(2):  # A gets a gradient only once B is not zero
        optimizer.zero_grad()
        (adapted(x) - randn(16, 4, seed=1)).square().mean().backward()
        optimizer.step()
    after = adapted.state_dict()
    assert torch.equal(after["base.weight"], before["base.weight"])
    assert torch.equal(after["base.bias"], before["base.bias"])
    assert not torch.equal(after["lora_a"], before["lora_a"])
    assert not torch.equal(after["lora_b"], before["lora_b"])
    expected = x @ base.weight.T + base.bias + 4.0 * x @ adapted.lora_a.T @ adapted.lora_b.T
    torch.testing.assert_close(adapted(x), expected)


def test_add_lora_wraps_the_named_linear_layers_at_any_depth():
    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv, self.proj, self.other = nn.Linear(4, 12), nn.Linear(4, 4), nn.Linear(4, 4)

    model = nn.Sequential(nn.ModuleDict({"attn": Attention(), "norm": nn.LayerNorm(4)}), nn.Linear(4, 4))
    x = randn(2, 4)
    assert add_lora(model, rank=3) is model
    attn = model[0]["attn"]
    assert isinstance(attn.qkv, LoRALinear) and isinstance(attn.proj, LoRALinear)
    assert isinstance(attn.other, nn.Linear) and isinstance(model[1], nn.Linear)
    assert attn.qkv.lora_a.shape == (3, 4) and attn.qkv.lora_b.shape == (12, 3)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(trainable) == sorted(f"0.attn.{m}.lora_{ab}" for m in ("qkv", "proj") for ab in "ab")
    torch.testing.assert_close(attn.qkv(x), attn.qkv.base(x))
