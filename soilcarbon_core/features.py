"""From raw per-node arrays to the model's normalised streams and graph inputs.

A :class:`NodeTable` holds what is known about N places in physical units (coordinates, covariates,
imagery features, sampling dates, elevation). A :class:`Normaliser`, fitted once on the training nodes
and stored in the model manifest, turns tables into :class:`~soilcarbon_core.nn.sptgnn.NodeInputs`,
graph inputs and normalised edge attributes, identically at training and at prediction time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from soilcarbon_core.graph import NeighbourTable, Relation
from soilcarbon_core.graph.geometry import unit_vectors


@dataclass
class NodeTable:
    """Raw inputs of N nodes.

    ``lonlat`` (N, 2) degrees (positional stream); ``xy`` (N, 2) graph coordinates in the model's CRS
    (metres, or degrees when geographic); ``covariates`` (N, F) and ``imagery`` (N, B) in their units,
    NaN where unknown; ``decimal_year`` (N,) or None; ``elevation`` / ``slope`` (N,) or None.
    """

    lonlat: np.ndarray
    xy: np.ndarray
    covariates: np.ndarray
    imagery: np.ndarray
    decimal_year: np.ndarray | None = None
    elevation: np.ndarray | None = None
    slope: np.ndarray | None = None

    def __len__(self) -> int:
        return self.lonlat.shape[0]

    def select(self, index: np.ndarray) -> NodeTable:
        return NodeTable(**{k: None if v is None else v[index] for k, v in self.__dict__.items()})


def decimal_year(dates: np.ndarray) -> np.ndarray:
    """``(N,)`` datetime64 -> year + (day of year - 1) / days in that year, NaN for NaT."""
    days = np.asarray(dates).astype("datetime64[D]")
    known = ~np.isnat(days)
    years = days[known].astype("datetime64[Y]")
    start = years.astype("datetime64[D]")
    length = (years + 1).astype("datetime64[D]") - start
    result = np.full(days.shape, np.nan)
    result[known] = 1970 + years.astype(np.int64) + (days[known] - start) / length
    return result


def _mean_std(values: np.ndarray) -> tuple[list[float], list[float]]:
    with np.errstate(all="ignore"):
        mean = np.nan_to_num(np.nanmean(values, axis=0)) if values.size else np.zeros(values.shape[1])
        std = np.nan_to_num(np.nanstd(values, axis=0), nan=1.0) if values.size else np.ones(values.shape[1])
    std[std < 1e-12] = 1.0
    return mean.tolist(), std.tolist()


def _standardise(values: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    return (values - np.asarray(mean)) / np.asarray(std)


@dataclass
class Normaliser:
    """Normalisation statistics of the training nodes (JSON-serialisable, stored in the manifest)."""

    covariate_mean: list[float]
    covariate_std: list[float]
    imagery_mean: list[float]
    imagery_std: list[float]
    position_center: list[float]
    position_scale: float
    year_mean: float
    year_std: float
    target_mean: float
    target_std: float
    edge_scale: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def fit(cls, table: NodeTable, target: np.ndarray) -> Normaliser:
        covariate_mean, covariate_std = _mean_std(table.covariates)
        imagery_mean, imagery_std = _mean_std(table.imagery)
        xyz = unit_vectors(table.lonlat)
        center = xyz.mean(axis=0)
        # One scale for all three axes keeps distances isotropic; the floor (about 60 m on Earth)
        # keeps a single-field data set from blowing the Fourier features up.
        scale = max(float(np.sqrt(((xyz - center) ** 2).sum(axis=1).mean())), 1e-5)
        years = table.decimal_year
        known = years[np.isfinite(years)] if years is not None else np.empty(0)
        return cls(
            covariate_mean=covariate_mean,
            covariate_std=covariate_std,
            imagery_mean=imagery_mean,
            imagery_std=imagery_std,
            position_center=center.tolist(),
            position_scale=scale,
            year_mean=float(known.mean()) if known.size else 2000.0,
            year_std=float(max(known.std(), 1.0)) if known.size else 1.0,
            target_mean=float(np.mean(target)),
            target_std=float(max(np.std(target), 1e-9)),
        )

    def fit_edges(self, relations: dict[str, Relation]) -> None:
        """Edge-attribute scales: the median of each (non-negative) attribute over the reference graph."""
        for name, relation in relations.items():
            median = np.median(relation.edge_attr, axis=0) if relation.edge_attr.size else np.ones(0)
            self.edge_scale[name] = np.where(median > 1e-9, median, 1.0).tolist()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Normaliser:
        return cls(**values)

    # --- transforms ---------------------------------------------------------------------------------

    def target(self, values: np.ndarray) -> np.ndarray:
        return (values - self.target_mean) / self.target_std

    def covariates(self, table: NodeTable) -> np.ndarray:
        """(N, F) standardised covariates, NaN where unknown."""
        return _standardise(table.covariates, self.covariate_mean, self.covariate_std)

    def similarity_features(self, table: NodeTable) -> np.ndarray | None:
        """Features of the spectral-similarity relation: imagery when the model has it, else covariates.

        Standardised, a missing value imputed by the training mean (0); rows with nothing known stay NaN
        so the graph builder leaves those nodes out of the relation.
        """
        if table.imagery.shape[1]:
            values = _standardise(table.imagery, self.imagery_mean, self.imagery_std)
        elif table.covariates.shape[1]:
            values = self.covariates(table)
        else:
            return None
        known = np.isfinite(values)
        imputed = np.where(known, values, 0.0)
        imputed[~known.any(axis=1)] = np.nan
        return imputed

    def node_inputs(self, table: NodeTable):
        """The model's :class:`~soilcarbon_core.nn.sptgnn.NodeInputs` (float32 tensors) for ``table``."""
        import torch

        from soilcarbon_core.nn.sptgnn import NodeInputs

        def tensor(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(values, dtype=np.float32))

        position = (unit_vectors(table.lonlat) - np.asarray(self.position_center)) / self.position_scale
        inputs = NodeInputs(position=tensor(position))
        if table.covariates.shape[1]:
            values = self.covariates(table)
            known = np.isfinite(values)
            inputs.covariates = tensor(np.concatenate([np.where(known, values, 0.0), ~known], axis=1))
            inputs.covariate_mask = torch.as_tensor(known.any(axis=1))
        if table.imagery.shape[1]:
            values = _standardise(table.imagery, self.imagery_mean, self.imagery_std)
            known = np.isfinite(values).all(axis=1)
            inputs.imagery = tensor(np.where(known[:, None], values, 0.0))
            inputs.imagery_mask = torch.as_tensor(known)
        if table.decimal_year is not None:
            years = table.decimal_year
            known = np.isfinite(years)
            season = 2 * np.pi * np.mod(np.where(known, years, 0.0), 1.0)
            year = np.where(known, (years - self.year_mean) / self.year_std, 0.0)
            time = np.stack([year, np.sin(season), np.cos(season), np.sin(2 * season), np.cos(2 * season)], 1)
            inputs.time = tensor(time)
            inputs.time_mask = torch.as_tensor(known)
        return inputs

    def edges(self, relations: dict[str, Relation]) -> dict:
        """Relations -> the model's edges: (edge_index long tensor, :meth:`edge_features` tensor)."""
        import torch

        return {
            name: (
                torch.as_tensor(relation.edge_index, dtype=torch.long),
                self.edge_features(name, relation.edge_attr),
            )
            for name, relation in relations.items()
        }

    def neighbours(self, tables: dict[str, NeighbourTable]) -> dict:
        """Padded neighbour tables -> the model's: (ids long tensor (Q, K), :meth:`edge_features`)."""
        import torch

        return {
            name: (torch.as_tensor(table.ids), self.edge_features(name, table.attr))
            for name, table in tables.items()
        }

    def edge_features(self, name: str, attr: np.ndarray):
        """log1p(|attribute| / scale) of relation ``name``'s attributes (..., A), a float32 tensor."""
        import torch

        scale = np.asarray(self.edge_scale[name], dtype=np.float32)
        # numpy's log1p: about 2x torch's on CPU (training/reports/bench_query_path.md).
        return torch.from_numpy(np.log1p(np.abs(np.asarray(attr, dtype=np.float32)) / scale))
