"""Graph attention over a small fixed graph of feature nodes, batched over samples (KG-FGNN's layer)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class FeatureGraph(NamedTuple):
    """The E edges of a feature graph of ``nodes`` nodes: ``destination``, ``source`` (E,) long and the
    ``log_weight`` (E,) of each edge."""

    destination: torch.Tensor
    source: torch.Tensor
    log_weight: torch.Tensor
    nodes: int


def graph_edges(adjacency: torch.Tensor) -> FeatureGraph:
    """The edges of a weighted feature graph (F, F), with self loops.

    ``adjacency`` holds non-negative weights, row i = destination i; 0 means no edge. A zero diagonal
    entry counts as a self loop of weight 1, so every node has at least one neighbour (itself). Build
    the edges once and pass them to every layer over the same graph (one host sync, not one per layer).
    """
    if adjacency.dim() != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"adjacency must be square (F, F), not {tuple(adjacency.shape)}.")
    if bool((adjacency < 0).any()) or not bool(torch.isfinite(adjacency).all()):
        raise ValueError("adjacency weights must be finite and >= 0 (0 = no edge).")
    diagonal = adjacency.diagonal()
    weights = adjacency - torch.diag(diagonal) + torch.diag(torch.where(diagonal > 0, diagonal, 1.0))
    destination, source = weights.nonzero(as_tuple=True)
    return FeatureGraph(destination, source, weights[destination, source].log(), adjacency.shape[0])


class FeatureGraphAttention(nn.Module):
    r"""GATv2 attention (Brody et al., ICLR 2022) over F feature nodes, with edge weights as a log prior.

    For sample b, destination node i, neighbour j (A_ij > 0, self loop included) and head h:

    .. math::
        e^h_{ij} = a_h^\top \mathrm{LeakyReLU}_{0.2}\big(W_s x_i + W_t x_j + c\big) + \log A_{ij},
        \qquad \alpha^h_{ij} = \operatorname{softmax}_{j \in N(i)} e^h_{ij}

    .. math::
        m_i = W_o \big\Vert_h \sum_j \alpha^h_{ij} W^h_v x_j, \qquad
        z_i = \mathrm{LN}\big(x_i + \mathrm{Drop}(m_i)\big),
        \qquad x'_i = \mathrm{LN}\big(z_i + \mathrm{FFN}(z_i)\big)

    ``FFN`` is Linear(D, 2D) -> GELU -> Linear(2D, D). Post-norm (as :class:`RelationalAttention`): every
    layer's output is layer-normalised, so stacks of layers keep node states on one scale. Dropout acts
    on the attention message only: on CPU a dropout mask of (B, F, D) costs about as much as the FFN. With
    :math:`a_h = 0` the attention is exactly the row-normalised adjacency :math:`A_{ij} / \sum_k A_{ik}`:
    the graph is a prior that the learned scores move away from; a missing edge is never attended.

    The GATv2 score is a one-hidden-layer MLP of the pair (the non-linearity after the sum is what makes
    the attention "dynamic"). Here the H heads share its hidden layer, of width S = ``score_dim``
    (:math:`W_s, W_t \in R^{S \times D}`), and differ by their output vector :math:`a_h \in R^S`: GATv2
    gives each head its own D / H hidden units, which costs the same for S = D. The pair term costs
    O(B E S) memory and time for E edges, so it is computed on the edges only (k = 4 neighbours per node,
    symmetrised, gives E ~ 6-9 F, not F^2); with S = D it is over half of the layer's time (B = 1024,
    F = 20, D = 32 on one CPU thread), and a smaller S makes it cheap while every head still sees all S
    hidden units.

    Shapes: ``x`` (B, F, D), ``graph`` an adjacency (F, F) (row i lists i's neighbours) or its
    :func:`graph_edges` -> (B, F, D); with
    ``return_attention=True`` also the attention weights (B, H, F, F), rows summing to one, 0 off-graph.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        dropout: float = 0.0,
        score_dim: int | None = None,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads}).")
        self.dim, self.heads, self.negative_slope = dim, heads, negative_slope
        self.score_dim = score_dim or dim
        self.score_target = nn.Linear(dim, self.score_dim, bias=False)
        # One projection of the source node gives its score term and its value: [S | D].
        self.source = nn.Linear(dim, self.score_dim + dim)
        bound = math.sqrt(6.0 / (self.score_dim + heads))  # Glorot, as GATv2's attention vectors
        self.attention = nn.Parameter(torch.empty(self.score_dim, heads).uniform_(-bound, bound))
        self.output = nn.Linear(dim, dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm_attention, self.norm_feed_forward = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, graph: torch.Tensor | FeatureGraph, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        batch, nodes, _ = x.shape
        destination, source, log_weight, graph_nodes = (
            graph if isinstance(graph, FeatureGraph) else graph_edges(graph)
        )
        if graph_nodes != nodes:
            raise ValueError(f"The graph has {graph_nodes} nodes but x has {nodes} features.")
        heads, width = self.heads, self.dim // self.heads
        target_score = self.score_target(x)
        source_score, values = self.source(x).split([self.score_dim, self.dim], dim=-1)
        pair = target_score.index_select(1, destination) + source_score.index_select(1, source)  # (B, E, S)
        scores = F.leaky_relu(pair, self.negative_slope) @ self.attention + log_weight[:, None]  # (B, E, H)
        # Scatter the edge scores into dense (B, H, F, F) logits, -inf off the graph, and softmax per row.
        flat = (destination * nodes + source).expand(batch, heads, -1)
        logits = x.new_full((batch, heads, nodes * nodes), -math.inf)
        logits = logits.scatter(2, flat, scores.transpose(1, 2)).view(batch, heads, nodes, nodes)
        alpha = torch.softmax(logits, dim=-1)
        message = alpha @ values.view(batch, nodes, heads, width).transpose(1, 2)  # (B, H, F, C)
        message = self.output(message.transpose(1, 2).reshape(batch, nodes, self.dim))
        state = self.norm_attention(x + self.dropout(message))
        out = self.norm_feed_forward(state + self.feed_forward(state))
        return (out, alpha) if return_attention else out
