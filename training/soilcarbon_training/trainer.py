"""Training a SpTGNN deep ensemble: all members at once, each with its own seed, bootstrap and early stop.

The M members live in one batched network (leading member dimension on every parameter), so one
training step updates every member with one set of matrix multiplies. Members differ by their
initialisation and, with ``bootstrap``, by Poisson(1) weights on the training nodes (the online
bootstrap of Oza & Russell 2001). Early stopping is per member: each keeps the weights of its own
best validation epoch.

Steps are mini-batches of destination nodes. With ``graph_layers == 0`` (the default architecture) a
step encodes only its batch: the neighbours' fused states come from a per-epoch cache of historical
embeddings (GNNAutoScale, Fey et al., ICML 2021), refreshed for every node at the start of each epoch
and for the batch's nodes at each step, so a step costs O(batch x degree) instead of O(N). Validation
always uses fresh states. Override the small hooks
(:meth:`EnsembleTrainer.configure_optimizer`, :meth:`EnsembleTrainer.loss`,
:meth:`EnsembleTrainer.on_epoch_end`) to change one aspect without copying the loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from soilcarbon_core.errors import InputError
from soilcarbon_core.features import NodeTable, Normaliser
from soilcarbon_core.graph import GraphParams
from soilcarbon_core.nn.sptgnn import NodeInputs, Output, ReferenceStates, SpTGNN, SpTGNNConfig
from soilcarbon_core.predictor import EnsemblePredictor, attach, finish_prediction, reference_graph
from soilcarbon_core.progress import ProgressCallback, silent
from soilcarbon_core.settings import JsonSettings
from soilcarbon_core.uncertainty import fit_calibrator
from soilcarbon_training.losses import beta_nll, moran_penalty

LOSSES = ("beta_nll", "gaussian_nll")
_KIND_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


@dataclass
class TrainConfig(JsonSettings):
    """Optimisation settings; stored in the model manifest's training summary."""

    epochs: int = 60
    batch_size: int = 1024  #: destination nodes per step
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    loss: str = "beta_nll"
    beta: float = 0.5  #: beta of beta-NLL (0 = Gaussian NLL)
    moran_weight: float = 0.1  #: weight of the Moran's I penalty on residuals over spatial edges
    balance_weight: float = 0.01  #: weight of the MoE load-balancing loss
    patience: int = 12  #: epochs without validation improvement before a member stops improving
    bootstrap: bool = True
    calibration: str = "isotonic"
    seed: int = 0

    def __post_init__(self) -> None:
        for setting in fields(self):
            value, default = getattr(self, setting.name), setting.default
            kind = (int, float) if isinstance(default, float) else type(default)
            if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, kind):
                raise InputError(
                    f"Training setting '{setting.name}' must be {_KIND_NAMES[type(default)]}, not {value!r}.",
                    f"For example: {setting.name} = {default!r}.",
                )
        if self.loss not in LOSSES:
            raise InputError(f"Unknown loss '{self.loss}'.", f"Use one of: {', '.join(LOSSES)}.")


@dataclass
class FitResult:
    """A trained ensemble with what is needed to predict and to report."""

    network: SpTGNN
    normaliser: Normaliser
    calibrator: object
    history: list[dict] = field(default_factory=list)
    best_epoch: list[int] = field(default_factory=list)
    seconds: float = 0.0
    #: Uncalibrated member predictions (M, N_val) of the validation nodes: means, variances (target units).
    validation: tuple[np.ndarray, np.ndarray] | None = None


class _Graph:
    """The training nodes' edges, with the selection of a batch's incoming edges."""

    def __init__(self, edges: dict[str, tuple[torch.Tensor, torch.Tensor]], num_nodes: int) -> None:
        self.edges = edges
        self.num_nodes = num_nodes

    def _position(self, batch: torch.Tensor) -> torch.Tensor:
        """Node id -> position in ``batch`` (-1 outside)."""
        position = torch.full((self.num_nodes,), -1, dtype=torch.long, device=batch.device)
        position[batch] = torch.arange(len(batch), device=batch.device)
        return position

    def incoming(self, batch: torch.Tensor, local_sources: bool) -> tuple[torch.Tensor | None, dict]:
        """Edges into ``batch``, destinations as positions in ``batch``. With ``local_sources`` the
        sources become positions in the returned sorted unique source ids (the batch's neighbourhood);
        otherwise they stay node ids and no source ids are returned."""
        position = self._position(batch)
        selected = {}
        for name, (index, attr) in self.edges.items():
            keep = position[index[1]] >= 0
            selected[name] = (index[0][keep], position[index[1][keep]], attr[keep])
        if not local_sources:
            return None, {
                name: (torch.stack([src, dst]), attr) for name, (src, dst, attr) in selected.items()
            }
        sources = torch.unique(torch.cat([src for src, _, _ in selected.values()] + [batch]))
        return sources, {
            name: (torch.stack([torch.searchsorted(sources, src), dst]), attr)
            for name, (src, dst, attr) in selected.items()
        }

    def within(self, batch: torch.Tensor, relation: str) -> torch.Tensor | None:
        """Edges of ``relation`` with both ends in ``batch``, as positions in ``batch``."""
        if relation not in self.edges:
            return None
        position = self._position(batch)
        index = position[self.edges[relation][0]]
        return index[:, (index >= 0).all(dim=0)]


class EnsembleTrainer:
    """Fit an SpTGNN ensemble on labelled nodes; validation nodes attach as queries (as new places will)."""

    def __init__(
        self,
        model_config: SpTGNNConfig,
        train_config: TrainConfig,
        graph_params: GraphParams,
        *,
        geographic: bool,
        device: torch.device | None = None,
    ) -> None:
        self.model_config = model_config
        self.config = train_config
        self.graph_params = graph_params
        self.geographic = geographic
        self.device = device or torch.device("cpu")

    # --- hooks ----------------------------------------------------------------------------------------

    def configure_optimizer(self, network: SpTGNN) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            network.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )

    def loss(
        self,
        output: Output,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        spatial_edges: torch.Tensor | None,
    ) -> torch.Tensor:
        """Per-member loss (M,): (beta-)NLL + Moran's I penalty + MoE load balancing; summed for backward."""
        beta = self.config.beta if self.config.loss == "beta_nll" else 0.0
        loss = beta_nll(output.mean, output.variance, target, beta, weight)
        if self.config.moran_weight and spatial_edges is not None:
            loss = loss + self.config.moran_weight * moran_penalty(target - output.mean, spatial_edges)
        return loss + self.config.balance_weight * output.balance

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        """Called after each epoch with its record (losses, validation NLL per member)."""

    # --- the loop ---------------------------------------------------------------------------------------

    def fit(
        self,
        table: NodeTable,
        target: np.ndarray,
        train: np.ndarray,
        validation: np.ndarray,
        *,
        progress: ProgressCallback = silent,
    ) -> FitResult:
        """Train on nodes ``train`` of ``table``; early-stop and calibrate on ``validation``."""
        started = time.perf_counter()
        c = self.config
        generator = torch.Generator().manual_seed(c.seed)
        train_table, val_table = table.select(train), table.select(validation)
        normaliser = Normaliser.fit(train_table, target[train])
        graph = reference_graph(train_table, normaliser, self.graph_params, geographic=self.geographic)
        normaliser.fit_edges(graph.relations)
        relations = {k: v for k, v in graph.relations.items() if k in self.model_config.relations}
        train_graph = _Graph(
            {k: tuple(t.to(self.device) for t in v) for k, v in normaliser.edges(relations).items()},
            len(train),
        )
        val_relations = attach(graph, val_table, normaliser)
        val_edges = {
            k: tuple(t.to(self.device) for t in v)
            for k, v in normaliser.edges({k: v for k, v in val_relations.items() if k in relations}).items()
        }
        nodes = normaliser.node_inputs(train_table).to(self.device)
        val_nodes = normaliser.node_inputs(val_table).to(self.device)
        labels = torch.as_tensor(normaliser.target(target[train]), dtype=torch.float32, device=self.device)
        val_labels = torch.as_tensor(
            normaliser.target(target[validation]), dtype=torch.float32, device=self.device
        )

        network = SpTGNN(self.model_config).to(self.device)
        members, n = network.members, len(train)
        weight = None
        if c.bootstrap and members > 1:
            weight = torch.poisson(torch.ones(members, n), generator=generator).to(self.device)
        optimizer = self.configure_optimizer(network)
        best = {name: p.detach().clone() for name, p in network.named_parameters()}
        best_score = torch.full((members,), float("inf"), device=self.device)
        best_epoch = torch.zeros(members, dtype=torch.long)
        history = []
        cache = self._encode_all(network, nodes)
        for epoch in range(c.epochs):
            network.train()
            order = torch.randperm(n, generator=generator).to(self.device)
            losses = []
            for start in range(0, n, c.batch_size):
                batch = order[start : start + c.batch_size]
                output, spatial = self._batch_output(network, nodes, labels, train_graph, batch, cache)
                loss = self.loss(output, labels[batch], None if weight is None else weight[:, batch], spatial)
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
                losses.append(loss.detach())
            score, encoded = self._validation_nll(
                network, nodes, labels, train_graph, val_nodes, val_edges, val_labels
            )
            # Validation encoded every training node with the weights the next epoch starts from.
            cache = None if cache is None else encoded
            improved = score < best_score
            with torch.no_grad():
                for name, p in network.named_parameters():
                    best[name][improved] = p.detach()[improved]
            best_score = torch.where(improved, score, best_score)
            best_epoch[improved.cpu()] = epoch
            record = {
                "epoch": epoch,
                "train_loss": torch.stack(losses).mean(0).cpu().tolist(),
                "validation_nll": score.cpu().tolist(),
            }
            history.append(record)
            self.on_epoch_end(epoch, record)
            progress(
                (epoch + 1) / c.epochs, f"Epoch {epoch + 1}/{c.epochs}, validation NLL {score.mean():.3f}"
            )
            if (epoch - best_epoch).min() >= c.patience:
                break
        network.load_state_dict({**network.state_dict(), **best})
        network.eval()

        predictor = self.predictor(network, normaliser, train_table, target[train], graph=graph)
        means, variances = predictor.member_predictions(val_table)
        raw = finish_prediction(means, variances, None)
        calibrator = fit_calibrator(c.calibration, target[validation], raw.mean, raw.total_sd)
        return FitResult(
            network=network,
            normaliser=normaliser,
            calibrator=calibrator,
            history=history,
            best_epoch=best_epoch.tolist(),
            seconds=time.perf_counter() - started,
            validation=(means, variances),
        )

    def predictor(
        self,
        network: SpTGNN,
        normaliser: Normaliser,
        reference: NodeTable,
        reference_target: np.ndarray,
        calibrator=None,
        graph=None,
    ) -> EnsemblePredictor:
        """A predictor over ``reference``; ``graph``: its reference graph when already built."""
        return EnsemblePredictor(
            network,
            normaliser,
            self.graph_params,
            reference,
            reference_target,
            geographic=self.geographic,
            calibrator=calibrator,
            device=self.device,
            graph=graph,
        )

    @staticmethod
    @torch.no_grad()
    def _encode_all(network: SpTGNN, nodes: NodeInputs) -> torch.Tensor | None:
        """Fused states of every training node (M, N, D), the historical-embedding cache."""
        if network.config.graph_layers:
            return None
        network.eval()
        return network.encode(nodes)[0]

    def _batch_output(
        self,
        network: SpTGNN,
        nodes: NodeInputs,
        labels: torch.Tensor,
        graph: _Graph,
        batch: torch.Tensor,
        cache: torch.Tensor | None,
    ) -> tuple[Output, torch.Tensor | None]:
        """Forward a batch of destination nodes; also return its spatial edges among batch nodes (Moran)."""
        if cache is None:
            _, edges = graph.incoming(batch, local_sources=False)
            reference, balance = network.reference_states(nodes, graph.edges, labels)
            output = network.predict_queries(nodes.select(batch), edges, reference)
        else:
            # The batch is encoded once, with gradients; its neighbours' states come from the cache.
            sources, edges = graph.incoming(batch, local_sources=True)
            fresh, balance = network.encode(nodes.select(batch))
            cache.index_copy_(1, batch, fresh.detach())
            states = cache.index_copy(1, batch, fresh).index_select(1, sources)
            output = network.predict_queries_from_states(
                fresh, edges, ReferenceStates([states], labels[sources])
            )
        return output._replace(balance=output.balance + balance), graph.within(batch, "spatial")

    @torch.no_grad()
    def _validation_nll(
        self, network, nodes, labels, graph: _Graph, val_nodes, val_edges, val_labels
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian NLL (normalised units) of the validation nodes as queries, per member (M,), and
        the training nodes' fused states (M, N, D) computed on the way."""
        network.eval()
        reference, _ = network.reference_states(nodes, graph.edges, labels)
        output = network.predict_queries(val_nodes, val_edges, reference)
        return beta_nll(output.mean, output.variance, val_labels, beta=0.0), reference.states[0]
