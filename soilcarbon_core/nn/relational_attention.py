"""Relational graph attention: separate attention per relation, projected per node, gathered per edge."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from soilcarbon_core.nn.ensemble_linear import EnsembleLinear, EnsembleMLP
from soilcarbon_core.nn.scatter import edge_softmax

#: One relation's edges: ``edge_index`` (2, E) long (row 0 source, row 1 destination), ``edge_attr`` (E, A).
Edges = tuple[torch.Tensor, torch.Tensor]
#: One relation's padded neighbour table: source ids (Q, K) long, -1 for none; attributes (Q, K, A).
Neighbours = tuple[torch.Tensor, torch.Tensor]


class RelationalAttention(nn.Module):
    r"""Multi-head graph attention over a heterogeneous graph with one attention per relation.

    For each relation :math:`r` and head :math:`h` (GAT scoring, Veličković et al., ICLR 2018, with an
    edge-attribute term), destination state :math:`x_i`, source state :math:`x_j`, edge attributes
    :math:`e_{ij}` and, in the readout layer, the source's normalised label :math:`y_j`:

    .. math::
        s^{r,h}_{ij} = \mathrm{LeakyReLU}\big(a^{r,h}_{dst} \cdot x_i + a^{r,h}_{src} \cdot x_j
                       + y_j c^{r,h} + w^{r,h}_E \cdot e_{ij}\big), \qquad
        \alpha^{r,h}_{ij} = \operatorname{softmax}_{j \in N_r(i)} s^{r,h}_{ij}

    .. math::
        m_i = \sum_r W^r_O \big\Vert_h \sum_{j \in N_r(i)} \alpha^{r,h}_{ij} (W^r_V x_j + y_j u^r)_h,
        \qquad z_i = \mathrm{LN}(x_i + m_i), \quad x'_i = \mathrm{LN}(z_i + \mathrm{FFN}(z_i))

    Scores and values are projected once per node and gathered per edge, so memory is O(E D) per
    layer, not RGAT's per-edge weight matrices (O(E D^2)). The label terms exist only with
    ``label_messages=True`` (the readout layer): a reference node's measured target travels in its
    messages, never into its own state, and there are no self-loops, so no node sees its own label.

    Args:
        members: ensemble size M.
        dim: node state width D (a multiple of ``heads``).
        relations: relation name -> number of edge attributes A_r.
        heads: attention heads H (C = D / H channels each).
        label_messages: add the source node's label to its scores and values.

    Shapes: ``target`` (M, N_dst, D), ``source`` (M, N_src, D), ``edges[r]`` ((2, E_r), (E_r, A_r)),
    ``labels`` (N_src,) -> (M, N_dst, D). A relation missing from ``edges`` contributes nothing.
    """

    def __init__(
        self,
        members: int,
        dim: int,
        relations: dict[str, int],
        heads: int = 4,
        label_messages: bool = False,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads}).")
        self.dim, self.heads, self.label_messages = dim, heads, label_messages
        extra = 1 if label_messages else 0
        # Per relation, one projection of the source gives values and source scores [(D + H)];
        # one of the destination gives its scores (H).
        self.source = nn.ModuleDict({r: EnsembleLinear(members, dim + extra, dim + heads) for r in relations})
        # target, edge and output maps stay bias-free: the neighbour-table path multiplies by their weights.
        self.target = nn.ModuleDict({r: EnsembleLinear(members, dim, heads, bias=False) for r in relations})
        self.edge = nn.ModuleDict(
            {r: EnsembleLinear(members, a, heads, bias=False) for r, a in relations.items()}
        )
        self.output = nn.ModuleDict({r: EnsembleLinear(members, dim, dim, bias=False) for r in relations})
        self.feed_forward = EnsembleMLP(members, dim, 2 * dim, dim)

    def project_sources(
        self, source: torch.Tensor, labels: torch.Tensor | None = None, relations=None
    ) -> dict[str, torch.Tensor]:
        """Per relation, every source node's values and scores ``(M, N_src, D + H)``.

        They do not depend on the destination, so a predictor computes them once for its reference
        nodes and reuses them for every query chunk. ``relations``: the relations to project (all by
        default)."""
        if self.label_messages:
            if labels is None:
                raise ValueError("This layer passes labels in its messages: give the source nodes' labels.")
            label_column = labels.to(source.dtype)[None, :, None].expand(source.shape[0], -1, 1)
            source = torch.cat([source, label_column], dim=-1)
        names = self.source.keys() if relations is None else [r for r in relations if r in self.source]
        return {r: self.source[r](source) for r in names}

    def forward(
        self,
        target: torch.Tensor,
        source: torch.Tensor,
        edges: dict[str, Edges],
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        members, num_target, _ = target.shape
        heads, width = self.heads, self.dim // self.heads
        projected = self.project_sources(source, labels, [r for r, (e, _) in edges.items() if e.shape[1]])
        message = torch.zeros_like(target)
        for relation, source_projection in projected.items():
            edge_index, edge_attr = edges[relation]
            src, dst = edge_index[0], edge_index[1]
            values, source_score = source_projection.index_select(1, src).split([self.dim, heads], -1)
            scores = (
                source_score
                + self.target[relation](target).index_select(1, dst)
                + self.edge[relation](edge_attr)
            )
            alpha = edge_softmax(F.leaky_relu(scores, 0.2), dst, num_target)
            weighted = (alpha.unsqueeze(-1) * values.view(members, -1, heads, width)).flatten(2)
            aggregated = target.new_zeros(members, num_target, self.dim).index_add(1, dst, weighted)
            message = message + self.output[relation](aggregated)
        return self._update(target, message)

    def forward_neighbours(
        self,
        target: torch.Tensor,
        projected: dict[str, torch.Tensor],
        neighbours: dict[str, Neighbours],
    ) -> torch.Tensor:
        r"""The same layer for destinations with at most K sources each, as padded neighbour tables.

        Equal to :meth:`forward` over the same edges, but the softmax runs over the K slots of each
        destination instead of scattering over edges, which is several times faster for query nodes
        (every query has at most k neighbours per relation).

        Shapes: ``target`` (M, Q, D); ``projected`` from :meth:`project_sources`; ``neighbours[r]``:
        source ids (Q, K) long with -1 for an empty slot, edge attributes (Q, K, A_r) -> (M, Q, D).
        """
        members, num_target, _ = target.shape
        heads, width = self.heads, self.dim // self.heads
        active = [
            (relation, index, edge_attr)
            for relation, (index, edge_attr) in neighbours.items()
            if relation in projected and index.shape[1]
        ]
        if not active:
            return self._update(target, torch.zeros_like(target))
        # The destination scores of every relation from one product, as (M, R H, Q): with the long node
        # axis as the product's output width it is faster on CPU than (M, Q, R H).
        target_weight = torch.cat([self.target[relation].weight for relation, _, _ in active], -1)
        target_score = torch.bmm(target_weight.transpose(1, 2), target.transpose(1, 2))
        message = None
        for position, (relation, index, edge_attr) in enumerate(active):
            slots = index.shape[1]
            present = index >= 0
            sources = index.clamp_min(0)
            values, source_score = projected[relation].split([self.dim, heads], -1)
            num_source = values.shape[1]
            # Scores as (M, H, K, Q): with the long query axis innermost the softmax over the K slots
            # vectorises across queries: about 15x faster on CPU than over rows of K contiguous slots, the
            # copy back to rows included (training/reports/bench_query_path.md).
            # gather, not index_select: several times faster along the last dimension on CPU.
            by_head = source_score.transpose(1, 2).reshape(members * heads, num_source)
            scores = torch.gather(by_head, 1, sources.t().flatten().expand(members * heads, -1))
            # + w_E . e_ij for every member and head as one (M H, A) @ (A, K Q) product into the scores.
            edge_weight = self.edge[relation].weight.transpose(1, 2).reshape(members * heads, -1)
            scores.addmm_(edge_weight, edge_attr.permute(2, 1, 0).flatten(1))
            scores = scores.view(members, heads, slots, num_target)
            scores += target_score[:, position * heads : (position + 1) * heads].unsqueeze(-2)
            scores = F.leaky_relu_(scores, 0.2)
            if present.all():  # the usual case: every query has its k neighbours
                alpha = scores.softmax(-2)
            else:
                absent = ~present.t()
                # A destination without any source in this relation receives nothing (all -inf -> NaN -> 0).
                alpha = scores.masked_fill(absent, float("-inf")).softmax(-2).masked_fill(absent, 0.0)
            # Back to (M, H, Q, K) rows, the layout of the weights of the bag sum below.
            alpha = alpha.transpose(-1, -2)
            # sum_k alpha_qk v_(index_qk) for every member and head as one weighted bag sum over a table
            # of (member, head, source) rows: the (M, Q, K, D) gathered values are never materialised.
            table = values.view(members, num_source, heads, width).transpose(1, 2).reshape(-1, width)
            offsets = torch.arange(members * heads, device=index.device).view(-1, 1, 1) * num_source
            bags = F.embedding_bag(
                (sources.unsqueeze(0) + offsets).view(-1, slots),
                table,
                per_sample_weights=alpha.reshape(-1, slots),
                mode="sum",
            )
            aggregated = bags.view(members, heads, num_target, width).transpose(1, 2).flatten(2)
            # sum_r W_O^r m^r, accumulated in place.
            weight = self.output[relation].weight
            message = (
                torch.bmm(aggregated, weight) if message is None else message.baddbmm_(aggregated, weight)
            )
        return self._update(target, message)

    def _update(self, target: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        state = F.layer_norm(target + message, (self.dim,))
        return F.layer_norm(state + self.feed_forward(state), (self.dim,))
