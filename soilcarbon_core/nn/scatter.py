"""Per-destination reductions over edges for (M, E, ...) ensemble tensors (no torch-scatter needed)."""

from __future__ import annotations

import torch


def edge_softmax(logits: torch.Tensor, destination: torch.Tensor, num_nodes: int) -> torch.Tensor:
    r"""Softmax of edge scores over the incoming edges of each destination node.

    .. math:: \alpha_{ij} = \exp(s_{ij} - \max_{k \in N(i)} s_{ik}) / \sum_{k \in N(i)} \exp(s_{ik} - \max)

    Shapes: ``logits`` (M, E, H), ``destination`` (E,) -> (M, E, H). Nodes with no incoming edge simply
    receive nothing; the maximum is detached (it only stabilises the exponent, the value is unchanged).
    """
    members, _, heads = logits.shape
    peak = logits.new_full((members, num_nodes, heads), float("-inf"))
    index = destination.view(1, -1, 1).expand_as(logits)
    peak = peak.scatter_reduce(1, index, logits.detach(), "amax", include_self=True)
    weights = (logits - peak.index_select(1, destination)).exp()
    total = logits.new_zeros((members, num_nodes, heads)).index_add(1, destination, weights)
    return weights / total.index_select(1, destination).clamp_min(torch.finfo(logits.dtype).tiny)
