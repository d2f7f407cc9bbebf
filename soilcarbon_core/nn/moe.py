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

    The gates are sparse (exactly k non-zero per node). In training, and on GPUs, the experts run
    densely on every node as two batched products (the second weighted by the gates, so zero-gated
    experts add nothing), which with few, small experts beats gathering nodes per expert, backward
    pass included. For inference on CPU each node goes through its k experts only (k / E of the work).

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
        # Router probabilities as (M, E, N): on CPU a softmax over E rows of N nodes is faster than over
        # N rows of E entries, and so is the product that gives them.
        probabilities = self.router.transposed(x).softmax(1)
        top_p, top_index = probabilities.topk(self.top_k, dim=1)
        top_gate = (top_p / top_p.sum(1, keepdim=True)).transpose(1, 2)
        top_index_by_node = top_index.transpose(1, 2).contiguous()  # (M, N, k)
        gates = x.new_zeros(*x.shape[:2], self.experts).scatter(-1, top_index_by_node, top_gate)
        self.gates = gates.detach()
        # sum_e g_e b_e: the output biases of the chosen experts, weighted by their gates.
        bias = torch.bmm(gates, self.b_out.squeeze(2))
        if x.device.type == "cpu" and not torch.is_grad_enabled():
            y = self._dispatched(x, top_index_by_node, top_gate, bias)
        else:
            y = self._dense(x, gates, bias)
        routed = torch.zeros_like(probabilities).scatter(1, top_index, 1.0 / self.top_k)
        balance = self.experts * (routed.mean(2) * probabilities.mean(2)).sum(-1)
        return y, balance

    def _dense(self, x: torch.Tensor, gates: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Every expert on every node: one (M, N, I) @ (M, I, E H) product, then the gated second layers
        as one (M, N, E H) @ (M, E H, O) product, without ever holding the (M, E, N, O) expert outputs."""
        members, _, in_features = x.shape
        experts, hidden_features = self.experts, self.w_in.shape[-1]
        w_in = self.w_in.permute(0, 2, 1, 3).reshape(members, in_features, experts * hidden_features)
        b_in = self.b_in.permute(0, 2, 1, 3).reshape(members, 1, experts * hidden_features)
        hidden = F.gelu(torch.baddbmm(b_in, x, w_in)).view(*gates.shape, hidden_features)
        gated = (hidden * gates.unsqueeze(-1)).flatten(2)
        return torch.baddbmm(bias, gated, self.w_out.reshape(members, experts * hidden_features, -1))

    def _dispatched(
        self, x: torch.Tensor, top_index: torch.Tensor, top_gate: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        """Each node through its k experts only: nodes grouped by (member, expert), one small MLP per
        group. k / E of the dense work, which on CPU pays for the gather (inference only: no backward)."""
        members, nodes, in_features = x.shape
        groups = top_index + self.experts * torch.arange(members, device=x.device).view(-1, 1, 1)
        order = torch.argsort(groups.flatten(), stable=True)
        counts = torch.bincount(groups.flatten(), minlength=members * self.experts).tolist()
        # (member, node) row of every routing slot, grouped by (member, expert).
        rows = order // self.top_k
        # embedding: a row gather faster than index_select on CPU.
        parts = F.embedding(rows, x.reshape(members * nodes, in_features)).split(counts)
        outputs = []
        for group, part in enumerate(parts):
            m, e = divmod(group, self.experts)
            hidden = F.gelu(torch.addmm(self.b_in[m, e], part, self.w_in[m, e]))
            outputs.append(hidden @ self.w_out[m, e])
        routed = torch.cat(outputs) * top_gate.flatten()[order, None]
        return bias.reshape(members * nodes, -1).index_add_(0, rows, routed).view(members, nodes, -1)
