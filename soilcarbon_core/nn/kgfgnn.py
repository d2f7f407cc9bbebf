"""KG-FGNN: a multi-target, multi-graph GNN over agricultural feature nodes (Zhang et al., arXiv 2506.15896).

Our reading of the abstract (see METHODS.md, KG-FGNN): the nodes are the agricultural variables, there is
one feature-correlation graph per target gas, and an autoencoder's code of the whole feature vector feeds
the GNN. Each gas gets its own stack of graph-attention layers over its own graph and a heteroscedastic
head; a deep ensemble of M independently initialised members gives the epistemic spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from soilcarbon_core.nn.feature_autoencoder import FeatureAutoencoder, category_index
from soilcarbon_core.nn.feature_graph import FeatureGraph, FeatureGraphAttention, graph_edges
from soilcarbon_core.nn.token_pooling import TokenPooling

#: Smallest predicted variance (target units), keeps the NLL finite.
MIN_VARIANCE = 1e-6
#: Fine-tuning modes of :meth:`KGFGNN.trainable_for_finetune`.
FINETUNE_MODES = ("all", "last_layer", "heads")


@dataclass
class KGFGNNOutput:
    """Per member m, sample b, target t and period p: ``mean``, ``variance`` (M, B, T, P) in target units;
    the shared autoencoder's ``latent`` (B, L) and ``reconstruction`` (B, F) of the standardised features
    (NaN in categorical columns, which are not reconstructed)."""

    mean: torch.Tensor
    variance: torch.Tensor
    latent: torch.Tensor
    reconstruction: torch.Tensor


class FeatureNodes(nn.Module):
    r"""One node state per feature: (B, F) standardised values -> (B, F, D).

    Numeric feature f: :math:`x_f w_f + e_f`, or :math:`m_f + e_f` when missing; categorical feature c:
    :math:`E_c[x_c] + e_c` with one extra row of :math:`E_c` for missing. :math:`e_f` is the feature's
    identity (and the numeric bias :math:`b_f`), so two features with equal values stay distinct nodes.
    """

    def __init__(self, features: int, categorical: dict[int, int], dim: int) -> None:
        super().__init__()
        self.categorical = dict(sorted(categorical.items()))
        numeric = [c for c in range(features) if c not in self.categorical]
        self.register_buffer("numeric", torch.tensor(numeric, dtype=torch.long), persistent=False)
        # Nodes are built as [numeric..., categorical...]; this index puts them back in column order.
        order = torch.tensor(numeric + list(self.categorical), dtype=torch.long)
        self.register_buffer("column_order", torch.argsort(order), persistent=False)
        self.weight = nn.Parameter(torch.randn(len(numeric), dim))
        self.missing = nn.Parameter(torch.randn(len(numeric), dim))
        self.identity = nn.Parameter(torch.randn(features, dim))
        self.tables = nn.ModuleList(nn.Embedding(n + 1, dim) for n in self.categorical.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = x.index_select(1, self.numeric).unsqueeze(-1)
        missing = torch.isnan(values)
        nodes = [torch.where(missing, self.missing, torch.where(missing, 0.0, values) * self.weight)]
        for (column, categories), table in zip(self.categorical.items(), self.tables, strict=True):
            nodes.append(table(category_index(x[:, column], categories)).unsqueeze(1))
        return torch.cat(nodes, dim=1).index_select(1, self.column_order) + self.identity


class SampleAttention(nn.Module):
    r"""A query's pooled state attends to its k nearest reference samples (in latent space):

    .. math:: h' = h + W_o \sum_{j \in kNN(z)} \alpha_j W_v r_j, \qquad
              \alpha = \operatorname{softmax}_j\big((W_q h)^\top W_k r_j / \sqrt D\big)

    :math:`W_o` starts at zero, so an untrained sample graph leaves the prediction unchanged.
    Shapes: ``pooled`` (B, D), ``neighbours`` (B, k, D) -> (B, D).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query, self.key = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.value, self.output = nn.Linear(dim, dim), nn.Linear(dim, dim)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, pooled: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("bd,bkd->bk", self.query(pooled), self.key(neighbours)) / math.sqrt(
            pooled.shape[-1]
        )
        message = torch.einsum("bk,bkd->bd", torch.softmax(scores, dim=1), self.value(neighbours))
        return pooled + self.output(message)


class Member(nn.Module):
    """One ensemble member: node embedding, then per target a graph stack, readout and head."""

    def __init__(
        self,
        targets: int,
        features: int,
        categorical: dict[int, int],
        hidden: int,
        layers: int,
        heads: int,
        latent: int,
        periods: int,
        dropout: float,
        score_dim: int,
        sample_graph: bool,
    ) -> None:
        super().__init__()
        self.nodes = FeatureNodes(features, categorical, hidden)
        self.latent = nn.Linear(latent, hidden)
        self.stacks = nn.ModuleList(
            nn.ModuleList(FeatureGraphAttention(hidden, heads, dropout, score_dim) for _ in range(layers))
            for _ in range(targets)
        )
        self.readouts = nn.ModuleList(TokenPooling(hidden, "attention") for _ in range(targets))
        self.samples = (
            nn.ModuleList(SampleAttention(hidden) for _ in range(targets)) if sample_graph else None
        )
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 2 * periods))
            for _ in range(targets)
        )

    def pooled(self, x: torch.Tensor, z: torch.Tensor, graphs: list[FeatureGraph]) -> torch.Tensor:
        """Standardised features (B, F), latent (B, L), one graph per target -> pooled states (B, T, D)."""
        start = self.nodes(x) + self.latent(z).unsqueeze(1)
        pooled = []
        for stack, readout, graph in zip(self.stacks, self.readouts, graphs, strict=True):
            state = start
            for layer in stack:
                state = layer(state, graph)
            pooled.append(readout(state))
        return torch.stack(pooled, dim=1)

    def predict(
        self, pooled: torch.Tensor, neighbours: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled states (B, T, D), reference neighbours (B, k, T, D) or None -> mean, variance (B, T, P)."""
        means, variances = [], []
        for t, head in enumerate(self.heads):
            state = pooled[:, t]
            if neighbours is not None and self.samples is not None:
                state = self.samples[t](state, neighbours[:, :, t])
            mean, raw = head(state).chunk(2, dim=-1)
            means.append(mean)
            variances.append(F.softplus(raw) + MIN_VARIANCE)
        return torch.stack(means, dim=1), torch.stack(variances, dim=1)


class KGFGNN(nn.Module):
    r"""Feature vector -> per-target feature-graph attention -> heteroscedastic heads, as a deep ensemble.

    1. Standardise the numeric columns with ``feature_mean`` / ``feature_sd`` (buffers; a zero or
       non-finite sd counts as 1, a non-finite mean as 0); categorical columns stay integer codes.
       NaN = missing throughout.
    2. The shared :class:`FeatureAutoencoder` (one per model, so it can be pre-trained first, then frozen
       or fine-tuned) gives the latent code z (B, L) and the reconstruction.
    3. Per member m (independent parameters and initialisation: Lakshminarayanan et al., NeurIPS 2017):
       node states :math:`h^0_f` from :class:`FeatureNodes` plus :math:`W_z z` added to every node (the
       code is global context each feature node reads; a virtual node would only reach the nodes it is
       wired to).
    4. Per target t (the literal "multi-graph" reading: each gas has its own weights and its own graph,
       so a change of graph t changes gas t only): ``layers`` :class:`FeatureGraphAttention` layers over
       ``graphs[t]``, attention pooling over the nodes (:class:`TokenPooling`), and a head
       :math:`(\mu_{tp}, \mathrm{softplus}(s_{tp}) + 10^{-6})` for each period p (growing season, year).
    5. Optional sample-similarity graph (``sample_graph_k > 0``): after :meth:`set_reference_bank`, each
       query's pooled state attends to its k nearest reference samples in latent space
       (:class:`SampleAttention`) before the heads; without a bank this step is skipped.

    Shapes: ``x`` (B, F) raw feature values -> :class:`KGFGNNOutput` with mean, variance (M, B, T, P)
    in the units of the training targets (standardise them in training).
    ``score_dim`` is the width of the GATv2 scoring layer (see :class:`FeatureGraphAttention`); 8, not
    ``hidden``, by default: at hidden 32 the full-width score makes a training step ~1.5x slower.
    """

    def __init__(
        self,
        graphs: torch.Tensor,
        feature_mean: torch.Tensor,
        feature_sd: torch.Tensor,
        categorical: dict[int, int],
        members: int = 5,
        hidden: int = 32,
        layers: int = 2,
        heads: int = 4,
        latent: int = 8,
        periods: int = 2,
        dropout: float = 0.1,
        sample_graph_k: int = 0,
        score_dim: int = 8,
        autoencoder_hidden: int = 64,
    ) -> None:
        super().__init__()
        graphs = torch.as_tensor(graphs, dtype=torch.float32)
        if graphs.dim() != 3 or graphs.shape[1] != graphs.shape[2]:
            raise ValueError(f"graphs must be (T, F, F), not {tuple(graphs.shape)}.")
        targets, features = graphs.shape[0], graphs.shape[1]
        mean = torch.as_tensor(feature_mean, dtype=torch.float32).clone()
        sd = torch.as_tensor(feature_sd, dtype=torch.float32).clone()
        if mean.shape != (features,) or sd.shape != (features,):
            raise ValueError(f"feature_mean and feature_sd must be ({features},), one value per feature.")
        self.targets, self.features, self.periods = targets, features, periods
        self.sample_graph_k = sample_graph_k
        self.categorical = dict(sorted(categorical.items()))
        self.register_buffer("graphs", graphs.clone())
        mean = torch.where(torch.isfinite(mean), mean, 0.0)
        sd = torch.where(torch.isfinite(sd) & (sd > 0), sd, 1.0)
        categorical_columns = torch.tensor(list(self.categorical), dtype=torch.long)
        # Categorical codes pass through standardisation unchanged: mean 0, sd 1.
        self.register_buffer("feature_mean", mean.index_fill(0, categorical_columns, 0.0))
        self.register_buffer("feature_sd", sd.index_fill(0, categorical_columns, 1.0))
        self.autoencoder = FeatureAutoencoder(features, self.categorical, latent, autoencoder_hidden)
        self.members = nn.ModuleList(
            Member(
                targets,
                features,
                self.categorical,
                hidden,
                layers,
                heads,
                latent,
                periods,
                dropout,
                score_dim,
                sample_graph_k > 0,
            )
            for _ in range(members)
        )
        # Derived data, not weights: left out of the state dict (rebuild it after loading).
        self.register_buffer("bank_latent", None, persistent=False)
        self.register_buffer("bank_pooled", None, persistent=False)

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features (B, F) -> numeric columns standardised, categorical codes unchanged, NaN kept."""
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"x must be (B, {self.features}) feature values, not {tuple(x.shape)}.")
        return (x - self.feature_mean) / self.feature_sd

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw features (B, F) -> latent (B, L), pooled node states (M, B, T, D), reconstruction (B, F)."""
        x = self.standardise(x)
        z, reconstruction = self.autoencoder(x)
        graphs = [graph_edges(graph) for graph in self.graphs]
        pooled = torch.stack([member.pooled(x, z, graphs) for member in self.members])
        return z, pooled, reconstruction

    def forward(self, x: torch.Tensor) -> KGFGNNOutput:
        z, pooled, reconstruction = self.encode(x)
        neighbours = self.nearest_references(z)
        means, variances = zip(
            *(
                member.predict(pooled[m], None if neighbours is None else self.bank_pooled[m][neighbours])
                for m, member in enumerate(self.members)
            ),
            strict=True,
        )
        return KGFGNNOutput(torch.stack(means), torch.stack(variances), z, reconstruction)

    def set_reference_bank(self, z_ref: torch.Tensor, h_ref: torch.Tensor) -> None:
        """Reference samples for the sample-similarity graph: latent codes (R, L) and pooled states
        (M, R, T, D), as :meth:`encode` returns them: ``set_reference_bank(*model.encode(x_ref)[:2])``.

        Stored detached and not in the state dict (it depends on the weights): set it again after
        training changes them and after loading a model.
        """
        if self.sample_graph_k <= 0:
            raise ValueError("This model has no sample graph: build it with sample_graph_k > 0.")
        members, targets = len(self.members), self.targets
        if (
            z_ref.dim() != 2
            or h_ref.dim() != 4
            or h_ref.shape[:3] != (members, z_ref.shape[0], targets)
            or z_ref.shape[0] == 0
        ):
            raise ValueError(
                f"z_ref must be (R, L) and h_ref (M={members}, R, T={targets}, D) with R > 0; "
                f"got {tuple(z_ref.shape)} and {tuple(h_ref.shape)}."
            )
        self.bank_latent, self.bank_pooled = z_ref.detach().clone(), h_ref.detach().clone()

    def nearest_references(self, z: torch.Tensor) -> torch.Tensor | None:
        """Indices (B, k) of each sample's k nearest references in latent space; None without a bank."""
        if self.sample_graph_k <= 0 or self.bank_latent is None:
            return None
        k = min(self.sample_graph_k, self.bank_latent.shape[0])
        return torch.cdist(z, self.bank_latent).topk(k, dim=1, largest=False).indices

    def trainable_for_finetune(self, mode: str) -> list[nn.Parameter]:
        """Freeze all but the parameters that ``mode`` fine-tunes; return those (for the optimiser).

        ``all``: everything, the autoencoder included. ``last_layer``: the heads, readouts and sample
        attention plus the last graph layer of every target stack. ``heads``: the heads, readouts and
        sample attention only; embeddings, graph layers and the autoencoder stay as pre-trained, which
        suits a real table of a few dozen rows.
        """
        if mode not in FINETUNE_MODES:
            raise ValueError(f"mode must be one of {FINETUNE_MODES}, not '{mode}'.")
        if mode == "all":
            trainable = list(self.parameters())
        else:
            modules: list[nn.Module] = []
            for member in self.members:
                modules += [member.heads, member.readouts]
                if member.samples is not None:
                    modules.append(member.samples)
                if mode == "last_layer":
                    modules += [stack[-1] for stack in member.stacks if len(stack)]
            trainable = [p for module in modules for p in module.parameters()]
        chosen = {id(p) for p in trainable}
        for parameter in self.parameters():
            parameter.requires_grad_(id(parameter) in chosen)
        return trainable
