"""Sparse Mixture-of-Experts with top-k routing and a load-balancing loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from soilcarbon_core.nn.ensemble_linear import EnsembleLinear


class SparseMoE(nn.Module):
    r"""Top-k routed mixture of MLP experts (Shazeer et al., ICLR 2017), one router per member.

    .. math::
        p = \operatorname{softmax}(W_r x), \quad
        g_e = \frac{p_e [e \in T_k]}{\sum_{e' \in T_k} p_{e'}}, \quad T_k = \operatorname{top}_k(p), \quad
        y = \sum_e g_e \, \mathrm{MLP}_e(x)

    Load balancing (Switch Transformer, Fedus et al., JMLR 2022), per member:
    :math:`L_{bal} = E \sum_e f_e P_e` with :math:`f_e` the share of the k routing slots that go to
    expert e and :math:`P_e` the mean router probability of e; it is 1 for a uniform router and grows
    as routing collapses onto few experts.

    The gates are sparse (exactly k non-zero per node). With few, small experts the expert MLPs are
    evaluated densely and the zero-gated outputs dropped, which gives the same result as dispatching
    and is faster than gathering nodes per expert on CPU.

    Shapes: ``x`` (M, N, in_features) -> ``(y, balance)``: y (M, N, out_features), balance (M,);
    ``gates`` of the last call (M, N, E) is kept for inspection.
    """

    def __init__(
        self,
        members: int,
        in_features: int,
        out_features: int,
        experts: int = 4,
        top_k: int = 2,
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= experts:
            raise ValueError(f"top_k must be in [1, experts={experts}], not {top_k}.")
        hidden = hidden or out_features
        self.experts, self.top_k = experts, top_k
        self.router = EnsembleLinear(members, in_features, experts)
        bound_in, bound_hidden = 1 / math.sqrt(in_features), 1 / math.sqrt(hidden)
        self.w_in = nn.Parameter(
            torch.empty(members, experts, in_features, hidden).uniform_(-bound_in, bound_in)
        )
        self.b_in = nn.Parameter(torch.zeros(members, experts, 1, hidden))
        self.w_out = nn.Parameter(
            torch.empty(members, experts, hidden, out_features).uniform_(-bound_hidden, bound_hidden)
        )
        self.b_out = nn.Parameter(torch.zeros(members, experts, 1, out_features))
        self.gates: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities = self.router(x).softmax(-1)
        top_p, top_index = probabilities.topk(self.top_k, dim=-1)
        gates = torch.zeros_like(probabilities).scatter(-1, top_index, top_p / top_p.sum(-1, keepdim=True))
        self.gates = gates.detach()
        hidden = F.gelu(torch.einsum("mni,meih->menh", x, self.w_in) + self.b_in)
        expert_out = torch.einsum("menh,meho->meno", hidden, self.w_out) + self.b_out
        y = torch.einsum("mne,meno->mno", gates, expert_out)
        routed = torch.zeros_like(probabilities).scatter(-1, top_index, 1.0 / self.top_k)
        balance = self.experts * (routed.mean(1) * probabilities.mean(1)).sum(-1)
        return y, balance
