"""Ensemble prediction for new places: query nodes attached to the reference (labelled) nodes.

The reference graph and the reference nodes' states are computed once; queries are processed in
chunks, so memory is bounded by the chunk size and the cost grows linearly with the number of queries.
Queries only receive messages, so predicting them never changes the reference nodes' outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soilcarbon_core.features import NodeTable, Normaliser
from soilcarbon_core.graph import GraphParams, ReferenceGraph
from soilcarbon_core.progress import ProgressCallback, silent
from soilcarbon_core.uncertainty import (
    Interval,
    combine_members,
    ece,
    gaussian_interval,
    picp,
    regression_metrics,
)

#: Output fields of a prediction, in this order, as written to GeoPackages and GeoTIFF bands.
PREDICTION_FIELDS = (
    "pred_mean",
    "pred_sd_aleatoric",
    "pred_sd_epistemic",
    "pred_sd_total",
    "pred_lower90",
    "pred_upper90",
)


@dataclass(frozen=True)
class Prediction:
    """Per point, in target units, after calibration: mean, the three sds and the central interval."""

    mean: np.ndarray
    aleatoric_sd: np.ndarray
    epistemic_sd: np.ndarray
    total_sd: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def take(self, index: np.ndarray) -> Prediction:
        """The prediction at places ``index``."""
        return Prediction(*(getattr(self, name)[index] for name in self.__dataclass_fields__))

    def columns(self) -> dict[str, np.ndarray]:
        values = (self.mean, self.aleatoric_sd, self.epistemic_sd, self.total_sd, self.lower, self.upper)
        return dict(zip(PREDICTION_FIELDS, values, strict=True))


def reference_graph(
    table: NodeTable, normaliser: Normaliser, params: GraphParams, *, geographic: bool
) -> ReferenceGraph:
    """The three-relation graph over reference nodes (spectral relation on the similarity features)."""
    return ReferenceGraph(
        table.xy,
        geographic=geographic,
        params=params,
        spectral=normaliser.similarity_features(table),
        elevation=table.elevation,
        slope=table.slope,
    )


def attach(graph: ReferenceGraph, table: NodeTable, normaliser: Normaliser) -> dict:
    """Query nodes of ``table`` attached to ``graph``'s reference nodes, relation by relation."""
    return graph.attach(
        table.xy, spectral=normaliser.similarity_features(table), elevation=table.elevation, slope=table.slope
    )


def neighbour_tables(edges: dict, num_queries: int) -> dict:
    """Attached edges (row 0 reference, row 1 query) as padded per-query neighbour tables.

    Shapes: per relation ``(edge_index (2, E), edge_attr (E, A))`` -> ``(ids (Q, K), attr (Q, K, A))``
    with K the largest in-degree and -1 in empty slots (queries with fewer neighbours)."""
    import torch

    tables = {}
    for name, (edge_index, edge_attr) in edges.items():
        source, query = edge_index
        counts = torch.bincount(query, minlength=num_queries)
        slots = int(counts.max()) if counts.numel() else 0
        first = torch.cumsum(counts, 0) - counts
        slot = torch.arange(query.numel(), device=query.device) - first[query]
        ids = torch.full((num_queries, slots), -1, dtype=torch.long, device=query.device)
        attr = edge_attr.new_zeros(num_queries, slots, edge_attr.shape[1])
        ids[query, slot] = source
        attr[query, slot] = edge_attr
        tables[name] = (ids, attr)
    return tables


class EnsemblePredictor:
    """A trained network with its reference nodes, ready to predict any number of query nodes."""

    def __init__(
        self,
        network,
        normaliser: Normaliser,
        graph_params: GraphParams,
        reference: NodeTable,
        reference_target: np.ndarray,
        *,
        geographic: bool,
        calibrator=None,
        device=None,
        level: float = 0.9,
        graph: ReferenceGraph | None = None,
    ) -> None:
        """``graph``: the reference graph of ``reference`` when the caller has built it already."""
        import torch

        self.network = network.eval()
        self.normaliser = normaliser
        self.reference = reference
        self.calibrator = calibrator
        self.level = level
        self.device = device or torch.device("cpu")
        self.network.to(self.device)
        self.graph = graph or reference_graph(reference, normaliser, graph_params, geographic=geographic)
        self._labels = torch.as_tensor(normaliser.target(reference_target), dtype=torch.float32)
        self._sources = None

    def _reference_sources(self) -> list:
        """The reference nodes' states and projected messages, computed on first use, once per model."""
        import torch

        if self._sources is None:
            edges = self._edges(self.graph.relations)
            nodes = self.normaliser.node_inputs(self.reference).to(self.device)
            with torch.no_grad():
                states, _ = self.network.reference_states(nodes, edges, self._labels.to(self.device))
                self._sources = self.network.query_sources(states)
        return self._sources

    def _edges(self, relations: dict) -> dict:
        kept = {
            name: relation for name, relation in relations.items() if name in self.network.config.relations
        }
        return {
            name: (index.to(self.device), attr.to(self.device))
            for name, (index, attr) in self.normaliser.edges(kept).items()
        }

    def member_predictions(
        self,
        table: NodeTable,
        *,
        chunk_size: int = 4096,
        attach_size: int = 65_536,
        progress: ProgressCallback = silent,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-member means and variances (M, N) in target units.

        Queries are attached ``attach_size`` at a time (large KD-tree batches amortise the search) and
        run through the network ``chunk_size`` at a time (small enough for the CPU caches)."""
        import torch

        sources = self._reference_sources()
        means, variances = [], []
        total = len(table)
        for start in range(0, total, attach_size):
            block = table.select(np.arange(start, min(start + attach_size, total)))
            relations = attach(self.graph, block, self.normaliser)
            neighbours = neighbour_tables(self._edges(relations), len(block))
            inputs = self.normaliser.node_inputs(block).to(self.device)
            for offset in range(0, len(block), chunk_size):
                progress((start + offset) / max(total, 1), f"Predicting {start + offset:,} / {total:,}")
                rows = torch.arange(offset, min(offset + chunk_size, len(block)), device=self.device)
                chunk = {name: (ids[rows], attr[rows]) for name, (ids, attr) in neighbours.items()}
                with torch.no_grad():
                    output = self.network.predict_neighbours(inputs.select(rows), chunk, sources)
                means.append(output.mean.cpu().numpy())
                variances.append(output.variance.cpu().numpy())
        progress(1.0, f"Predicted {total:,} places")
        scale = self.normaliser.target_std
        mean = np.concatenate(means, axis=1) * scale + self.normaliser.target_mean
        return mean.astype(np.float64), np.concatenate(variances, axis=1).astype(np.float64) * scale**2

    def predict(
        self, table: NodeTable, *, chunk_size: int = 4096, progress: ProgressCallback = silent
    ) -> Prediction:
        """Calibrated ensemble prediction for every node of ``table``."""
        means, variances = self.member_predictions(table, chunk_size=chunk_size, progress=progress)
        return finish_prediction(means, variances, self.calibrator, self.level)


def finish_prediction(means: np.ndarray, variances: np.ndarray, calibrator, level: float = 0.9) -> Prediction:
    """Combine members (M, N) and calibrate: the three sds scale together; the interval is calibrated."""
    ensemble = combine_members(means, variances)
    total = ensemble.total_sd
    if calibrator is None:
        calibrated, (lower, upper) = total, gaussian_interval(ensemble.mean, total, level)
    else:
        calibrated = calibrator.scale_sd(ensemble.mean, total)
        lower, upper = calibrator.interval(ensemble.mean, total, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(total > 0, calibrated / total, 1.0)
    return Prediction(
        mean=ensemble.mean,
        aleatoric_sd=ensemble.aleatoric_sd * factor,
        epistemic_sd=ensemble.epistemic_sd * factor,
        total_sd=calibrated,
        lower=lower,
        upper=upper,
    )


def calibrated_metrics(
    y: np.ndarray, mean: np.ndarray, raw_sd: np.ndarray, calibrated_sd: np.ndarray, interval: Interval
) -> dict[str, float]:
    """Metrics of a calibrated prediction: coverage (PICP90, ECE) from the calibrated ``interval`` of the
    raw (uncalibrated) sd, and NLL / CRPS / ENCE from the calibrated, Gaussian-equivalent sd."""
    metrics = regression_metrics(y, mean, calibrated_sd)
    metrics["picp90"] = picp(y, mean, raw_sd, 0.9, interval=interval)
    metrics["ece"] = ece(y, mean, raw_sd, interval=interval)
    return metrics
