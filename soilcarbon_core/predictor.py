"""Ensemble prediction for new places: query nodes attached to the reference (labelled) nodes.

The reference graph and the reference nodes' states are computed once; queries are processed in
chunks, so memory is bounded by the chunk size and the cost grows linearly with the number of queries.
Queries only receive messages, so predicting them never changes the reference nodes' outputs.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import numpy as np

from soilcarbon_core.device import one_thread_each
from soilcarbon_core.features import NodeTable, Normaliser
from soilcarbon_core.graph import GraphParams, NeighbourTable, ReferenceGraph, Relation
from soilcarbon_core.progress import ProgressCallback, silent
from soilcarbon_core.uncertainty import (
    Interval,
    combine_members,
    ece,
    gaussian_interval,
    picp,
    regression_metrics,
)

#: Query nodes a thread attaches to the graph at a time (also the fewest worth a thread of their own):
#: enough to amortise the KD-tree searches, few enough that their neighbour tables (up to 64 candidates a
#: query) stay small; 65,536 at a time raised a map's peak memory by about 300 MiB (docs/maps.md).
_ATTACH_PART = 16_384
#: Queries the network takes at a time on a CPU (:meth:`EnsemblePredictor.member_predictions`): small
#: enough for the CPU caches and for glibc's heap. A chunk's temporaries (0.5-10 MB each at 4,096 queries)
#: fragment the threads' malloc arenas, which then settle higher the more windows a map has: at 4,096 a
#: 10-million-cell map's peak was 1.25 x a 1-million-cell one's, at 2,048 1.13 x; 1,024 kept it flat and,
#: since windows run in processes on one BLAS thread each, is as fast as 2,048
#: within the noise (training/reports/bench_map_windows.md; docs/maps.md).
_CPU_CHUNK = 1024
#: On a GPU: the chunk size it had before (the heap's growth is a CPU matter; not measured on a GPU).
_GPU_CHUNK = 4096

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


def attach(graph: ReferenceGraph, table: NodeTable, normaliser: Normaliser) -> dict[str, Relation]:
    """Query nodes of ``table`` attached to ``graph``'s reference nodes, relation by relation."""
    return graph.attach(table.xy, **_query_inputs(table, normaliser))


def attach_tables(
    graph: ReferenceGraph, table: NodeTable, normaliser: Normaliser
) -> dict[str, NeighbourTable]:
    """:func:`attach` as padded neighbour tables (:meth:`ReferenceGraph.attach_tables`)."""
    return graph.attach_tables(table.xy, **_query_inputs(table, normaliser))


def _query_inputs(table: NodeTable, normaliser: Normaliser) -> dict:
    return {
        "spectral": normaliser.similarity_features(table),
        "elevation": table.elevation,
        "slope": table.slope,
    }


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
        self._sources_lock = threading.Lock()  # map windows on parallel threads share the states

    def reference_sources(self) -> list:
        """The reference nodes' states and projected messages, computed on first use, once per model."""
        import torch

        with self._sources_lock:
            if self._sources is None:
                edges = self._edges(self.graph.relations)
                nodes = self.normaliser.node_inputs(self.reference).to(self.device)
                with torch.no_grad():
                    states, _ = self.network.reference_states(nodes, edges, self._labels.to(self.device))
                    self._sources = self.network.query_sources(states)
        return self._sources

    def parallel_threads(self) -> int:
        """How many CPU threads prediction work may be spread over: torch's thread setting on a CPU,
        1 on a GPU (one stream of work keeps it busy)."""
        import torch

        return torch.get_num_threads() if self.device.type == "cpu" else 1

    def _kept(self, relations: dict) -> dict:
        """The relations (edges or tables) the network was trained with."""
        return {name: value for name, value in relations.items() if name in self.network.config.relations}

    def _edges(self, relations: dict) -> dict:
        return {
            name: (index.to(self.device), attr.to(self.device))
            for name, (index, attr) in self.normaliser.edges(self._kept(relations)).items()
        }

    def _attach(
        self, block: NodeTable, pool: ThreadPoolExecutor | None, threads: int
    ) -> dict[str, NeighbourTable]:
        """The block's neighbour tables; a large block is attached in parts on up to ``threads`` threads of
        ``pool`` (the KD-tree and numpy release the GIL)."""
        parts = min(threads, len(block) // _ATTACH_PART)
        if parts < 2:
            return attach_tables(self.graph, block, self.normaliser)
        found = list(
            pool.map(
                lambda rows: attach_tables(self.graph, block.select(rows), self.normaliser),
                np.array_split(np.arange(len(block)), parts),
            )
        )
        return {name: NeighbourTable.concatenate([tables[name] for tables in found]) for name in found[0]}

    def member_predictions(
        self,
        table: NodeTable,
        *,
        chunk_size: int | None = None,
        attach_size: int | None = None,
        threads: int | None = None,
        progress: ProgressCallback = silent,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-member means and variances (M, N) in target units.

        Queries are attached ``attach_size`` at a time (default :data:`_ATTACH_PART` per thread) and
        run through the network ``chunk_size`` at a time (default :data:`_CPU_CHUNK` on a CPU,
        :data:`_GPU_CHUNK` on a GPU). On CPU the chunks run on ``threads`` parallel threads (default
        :meth:`parallel_threads`), one core each: the network's operations on a chunk are too small to
        share cores well, whole chunks are not.
        With ``threads=1`` everything runs on the calling thread, with torch's own thread setting."""
        import torch

        sources = self.reference_sources()
        threads = threads or self.parallel_threads()
        attach_size = attach_size or _ATTACH_PART * threads
        chunk_size = chunk_size or (_CPU_CHUNK if self.device.type == "cpu" else _GPU_CHUNK)
        pool = ThreadPoolExecutor(threads) if threads > 1 else None
        means, variances = [], []
        total = len(table)

        def run(inputs, chunk: dict) -> tuple[np.ndarray, np.ndarray]:
            with torch.no_grad():  # grad mode is per thread
                output = self.network.predict_neighbours(inputs, chunk, sources)
            return output.mean.cpu().numpy(), output.variance.cpu().numpy()

        try:
            with one_thread_each() if pool is not None else nullcontext():
                for start in range(0, total, attach_size):
                    block = table.select(np.arange(start, min(start + attach_size, total)))
                    tables = self.normaliser.neighbours(self._kept(self._attach(block, pool, threads)))
                    neighbours = {
                        name: (ids.to(self.device), attr.to(self.device))
                        for name, (ids, attr) in tables.items()
                    }
                    inputs = self.normaliser.node_inputs(block).to(self.device)
                    chunks = [
                        slice(offset, offset + chunk_size) for offset in range(0, len(block), chunk_size)
                    ]
                    work = (
                        (
                            inputs.select(rows),
                            {name: (ids[rows], attr[rows]) for name, (ids, attr) in neighbours.items()},
                        )
                        for rows in chunks
                    )
                    # On parallel threads every chunk is submitted at once; on this thread each runs
                    # when fetched, after its progress report (where a cancel stops it).
                    fetch = (
                        [pool.submit(run, *args).result for args in work]
                        if pool is not None
                        else [partial(run, *args) for args in work]
                    )
                    for rows, chunk_output in zip(chunks, fetch, strict=True):
                        done = start + rows.start
                        progress(done / max(total, 1), f"Predicting {done:,} / {total:,}")
                        mean, variance = chunk_output()
                        means.append(mean)
                        variances.append(variance)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        progress(1.0, f"Predicted {total:,} places")
        scale = self.normaliser.target_std
        mean = np.concatenate(means, axis=1) * scale + self.normaliser.target_mean
        return mean.astype(np.float64), np.concatenate(variances, axis=1).astype(np.float64) * scale**2

    def predict(
        self,
        table: NodeTable,
        *,
        chunk_size: int | None = None,
        threads: int | None = None,
        progress: ProgressCallback = silent,
    ) -> Prediction:
        """Calibrated ensemble prediction for every node of ``table`` (``chunk_size`` and ``threads``: as
        in :meth:`member_predictions`)."""
        means, variances = self.member_predictions(
            table, chunk_size=chunk_size, threads=threads, progress=progress
        )
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
