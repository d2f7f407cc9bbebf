"""SpTGNN: the spatio-temporal soil graph network (Mos et al., arXiv 2606.16580), as a batched ensemble."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from soilcarbon_core.nn.ensemble_linear import EnsembleMLP
from soilcarbon_core.nn.moe import SparseMoE
from soilcarbon_core.nn.positional import FourierPositionalEmbedding
from soilcarbon_core.nn.relational_attention import Edges, Neighbours, RelationalAttention
from soilcarbon_core.settings import JsonSettings

#: Node streams in fusion order.
STREAMS = ("imagery", "covariates", "position", "time")
FUSIONS = ("moe", "concat")
#: Smallest predicted variance (normalised target units), keeps the NLL finite.
MIN_VARIANCE = 1e-6


@dataclass
class SpTGNNConfig(JsonSettings):
    """Architecture of one SpTGNN ensemble; stored in the model manifest."""

    members: int = 5
    imagery_features: int = 0  #: imagery stream width (0: no imagery stream)
    covariate_features: int = 0  #: covariates (the stream gets the values and their missing flags)
    temporal: bool = False  #: a temporal stream from the sampling date
    hidden: int = 32
    heads: int = 4
    experts: int = 4
    top_k: int = 2
    fusion: str = "moe"  #: "moe" (sparse top-k mixture of experts) or "concat" (one MLP, for ablations)
    graph_layers: int = 0  #: feature-only relational attention layers before the label-aware readout
    relations: dict[str, int] = field(default_factory=dict)  #: relation -> edge attributes; {}: no graph
    fourier_features: int = 32
    time_features: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, not '{self.fusion}'.")

    @property
    def streams(self) -> tuple[str, ...]:
        present = {
            "imagery": self.imagery_features > 0,
            "covariates": self.covariate_features > 0,
            "position": True,
            "time": self.temporal,
        }
        return tuple(s for s in STREAMS if present[s])


@dataclass
class NodeInputs:
    """The four node streams of N nodes, as tensors shared by all ensemble members.

    ``position`` (N, 3) centred, scaled unit-sphere coordinates; ``covariates`` (N, 2 F) standardised
    values (0 where missing) followed by their missing flags; ``imagery`` (N, B); ``time`` (N, 5)
    standardised year and two day-of-year harmonics. Each optional stream has a (N,) boolean mask that
    is False where the node has no data for that stream: such streams are replaced by a learned mask
    token, never by zeros.
    """

    position: torch.Tensor
    covariates: torch.Tensor | None = None
    covariate_mask: torch.Tensor | None = None
    imagery: torch.Tensor | None = None
    imagery_mask: torch.Tensor | None = None
    time: torch.Tensor | None = None
    time_mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.position.shape[0]

    def map(self, function) -> NodeInputs:
        return NodeInputs(
            **{f.name: None if (v := getattr(self, f.name)) is None else function(v) for f in fields(self)}
        )

    def to(self, device: torch.device | str) -> NodeInputs:
        return self.map(lambda tensor: tensor.to(device))

    def select(self, index: torch.Tensor | slice) -> NodeInputs:
        return self.map(lambda tensor: tensor[index])


class Output(NamedTuple):
    """Per member: ``mean`` and ``variance`` (M, N) in normalised target units; ``balance`` (M,)."""

    mean: torch.Tensor
    variance: torch.Tensor
    balance: torch.Tensor


class ReferenceStates(NamedTuple):
    """Reference-node states after each graph layer (``states[0]`` is the fused input) and their labels."""

    states: list[torch.Tensor]
    labels: torch.Tensor


class SpTGNN(nn.Module):
    r"""Four node streams -> sparse MoE fusion -> relational graph attention -> heteroscedastic head.

    1. Streams: imagery features and covariates each through an MLP; coordinates through a learned
       Fourier positional embedding; the sampling date through an MLP of year and season harmonics.
       A stream a node lacks is replaced by that stream's learned mask token.
    2. Fusion: the concatenated stream tokens (M, N, S D) go to a sparse top-k mixture of experts
       (:class:`SparseMoE`), giving the node state :math:`h^0` (M, N, D) and a load-balancing loss.
    3. Graph: ``graph_layers`` :class:`RelationalAttention` layers over the relations, then a readout
       layer whose messages also carry the neighbours' measured targets (reference nodes only).
    4. Head: :math:`(\mu, \log(1 + e^{s}) + \epsilon)` per node and member.

    Reference (labelled) nodes form the graph; query nodes (new places) only receive messages from
    reference nodes, so their predictions never change the reference nodes' states, which are
    computed once (:meth:`reference_states`) and reused for every query chunk (:meth:`predict_queries`).
    """

    def __init__(self, config: SpTGNNConfig) -> None:
        super().__init__()
        self.config = c = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.encoders = nn.ModuleDict()
            if c.imagery_features:
                self.encoders["imagery"] = EnsembleMLP(c.members, c.imagery_features, c.hidden, c.hidden)
            if c.covariate_features:
                self.encoders["covariates"] = EnsembleMLP(
                    c.members, 2 * c.covariate_features, c.hidden, c.hidden
                )
            self.encoders["position"] = FourierPositionalEmbedding(
                c.members, c.hidden, c.fourier_features, seed=c.seed
            )
            if c.temporal:
                self.encoders["time"] = EnsembleMLP(c.members, c.time_features, c.hidden, c.hidden)
            self.mask_tokens = nn.Parameter(0.02 * torch.randn(c.members, len(c.streams), c.hidden))
            width = len(c.streams) * c.hidden
            if c.fusion == "moe":
                self.fusion = SparseMoE(c.members, width, c.hidden, c.experts, c.top_k)
            else:
                self.fusion = EnsembleMLP(c.members, width, c.hidden, c.hidden)
            self.layers = nn.ModuleList(
                RelationalAttention(c.members, c.hidden, c.relations, c.heads) for _ in range(c.graph_layers)
            )
            self.readout = (
                RelationalAttention(c.members, c.hidden, c.relations, c.heads, label_messages=True)
                if c.relations
                else None
            )
            self.head = EnsembleMLP(c.members, c.hidden, c.hidden, 2)

    @property
    def members(self) -> int:
        return self.config.members

    def encode(self, nodes: NodeInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused node states (M, N, D) and the load-balancing loss (M,)."""
        tokens = []
        for index, stream in enumerate(self.config.streams):
            if stream == "position":
                tokens.append(self.encoders[stream](nodes.position))
                continue
            values = getattr(nodes, stream)
            mask = getattr(
                nodes,
                {"covariates": "covariate_mask", "imagery": "imagery_mask", "time": "time_mask"}[stream],
            )
            token = self.encoders[stream](values)
            if torch.is_grad_enabled() or not mask.all():  # in training the mask token always gets a grad
                token = torch.where(mask[None, :, None], token, self.mask_tokens[:, index, None, :])
            tokens.append(token)
        fused = torch.cat(tokens, dim=-1)
        if self.config.fusion == "moe":
            return self.fusion(fused)
        return self.fusion(fused), fused.new_zeros(self.members)

    def _head(self, state: torch.Tensor, balance: torch.Tensor) -> Output:
        # The last layer's two outputs as (M, 2, N): the faster product for few outputs.
        hidden_layer, activation, output_layer = self.head
        mean, raw = output_layer.transposed(activation(hidden_layer(state))).unbind(1)
        return Output(mean, F.softplus(raw) + MIN_VARIANCE, balance)

    def reference_states(
        self, nodes: NodeInputs, edges: dict[str, Edges], labels: torch.Tensor
    ) -> tuple[ReferenceStates, torch.Tensor]:
        """States of the reference nodes after every layer, and the load-balancing loss (M,)."""
        state, balance = self.encode(nodes)
        states = [state]
        for layer in self.layers:
            states.append(layer(states[-1], states[-1], edges))
        return ReferenceStates(states, labels), balance

    def forward(self, nodes: NodeInputs, edges: dict[str, Edges], labels: torch.Tensor) -> Output:
        """Predict the reference nodes themselves: each sees its neighbours' labels, never its own."""
        reference, balance = self.reference_states(nodes, edges, labels)
        # The nodes are their own queries: start from their fused states instead of encoding again.
        output = self.predict_queries_from_states(reference.states[0], edges, reference)
        return output._replace(balance=balance)

    def predict_queries(
        self, nodes: NodeInputs, edges: dict[str, Edges], reference: ReferenceStates
    ) -> Output:
        """Predict query nodes attached to reference nodes (edges: row 0 reference, row 1 query)."""
        state, balance = self.encode(nodes)
        output = self.predict_queries_from_states(state, edges, reference)
        return output._replace(balance=balance)

    def query_sources(self, reference: ReferenceStates) -> list[dict[str, torch.Tensor]]:
        """The reference nodes' projected messages for every attention layer (the readout last).

        They do not depend on the queries: a predictor computes them once per model
        (:meth:`RelationalAttention.project_sources`) and passes them to :meth:`predict_neighbours`."""
        sources = [
            layer.project_sources(states)
            for layer, states in zip(self.layers, reference.states[:-1], strict=True)
        ]
        if self.readout is not None:
            sources.append(self.readout.project_sources(reference.states[-1], reference.labels))
        return sources

    def predict_neighbours(
        self, nodes: NodeInputs, neighbours: dict[str, Neighbours], sources: list[dict[str, torch.Tensor]]
    ) -> Output:
        """:meth:`predict_queries` from padded neighbour tables and the reference's :meth:`query_sources`
        (:meth:`RelationalAttention.forward_neighbours`): the fast path for new places."""
        state, balance = self.encode(nodes)
        layers = [*self.layers, *([self.readout] if self.readout is not None else [])]
        for layer, projected in zip(layers, sources, strict=True):
            state = layer.forward_neighbours(state, projected, neighbours)
        return self._head(state, balance)

    def predict_queries_from_states(
        self, state: torch.Tensor, edges: dict[str, Edges], reference: ReferenceStates
    ) -> Output:
        """:meth:`predict_queries` from the queries' fused states (M, N, D); ``balance`` is zero."""
        for layer, source in zip(self.layers, reference.states[:-1], strict=True):
            state = layer(state, source, edges)
        if self.readout is not None:
            state = self.readout(state, reference.states[-1], edges, reference.labels)
        return self._head(state, state.new_zeros(self.members))
