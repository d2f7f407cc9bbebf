"""The soil graph over reference (labelled) nodes, and the attachment of query nodes to it.

Three relations (``RELATIONS``), each a kNN graph with its own notion of "near":

spatial
    the ``k_spatial`` nearest nodes: Euclidean metres for projected coordinates, great-circle metres
    (spherical Earth, see :mod:`.geometry`) for geographic ones; optionally none beyond ``max_distance_m``.
    Attributes: ``distance_m``.
spectral
    the ``k_spectral`` nodes nearest in the spectral space (:mod:`.spectral`: standardised bands, PCA when
    wide). Global, or, with ``spectral_radius_m``, only among the ``candidates`` spatially nearest nodes
    within that radius. Attributes: ``spectral_distance`` (Euclidean in the spectral space),
    ``distance_m``.
elevation
    among the ``candidates`` spatially nearest nodes (within ``elevation_radius_m`` when set), the
    ``k_elevation`` with the lowest score |dz|, or with slopes |dz| + w (s_z / s_slope) |d slope| (the
    same ranking as |dz| / s_z + w |d slope| / s_slope; s_z, s_slope: standard deviations over the
    reference nodes, w = ``slope_weight``). Attributes: ``elevation_difference_m`` (|dz|),
    ``distance_m``, and ``slope_difference`` (|d slope|, in the slope's units) when slopes are given.

Ties in a score go to the spatially nearer candidate. Among reference nodes each relation is symmetric
(the union of the kNN edges i -> j and j -> i, each once, with identical attributes), has no self-loops,
and keeps duplicates (several samples at one place are neighbours at distance 0). A node whose input
for a relation is missing or not finite (NaN elevation, a spectral row with any NaN band, or, when slopes
are given, a NaN slope) has no edges in that relation. Query nodes (:meth:`ReferenceGraph.attach`) get
edges from their k reference neighbours only (reference -> query), found the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from soilcarbon_core.errors import InputError
from soilcarbon_core.graph import neighbours
from soilcarbon_core.graph.geometry import SpatialFrame
from soilcarbon_core.graph.neighbours import Selector
from soilcarbon_core.graph.params import RELATIONS, GraphParams
from soilcarbon_core.graph.relations import (
    Column,
    NeighbourTable,
    Relation,
    edge_attributes,
    symmetric_edges,
    table_attributes,
)
from soilcarbon_core.graph.spectral import SpectralSpace
from soilcarbon_core.progress import ProgressCallback, scaled, silent


@dataclass
class _Nodes:
    """Node inputs in the forms the relations use, and which nodes each relation can use.

    points: ``(n, 2|3)`` tree points (:class:`SpatialFrame`); spectral: ``(n, c)`` spectral space;
    elevation, slope: ``(n,)``; usable: relation -> ids of the nodes with finite input (reference nodes:
    in spatial locality order; query nodes: ascending).
    """

    points: np.ndarray
    spectral: np.ndarray | None
    elevation: np.ndarray | None
    slope: np.ndarray | None
    usable: dict[str, np.ndarray]


class ReferenceGraph:
    """The three-relation graph over the reference nodes, fitted once and reused for every query chunk.

    Attributes:
        params: the settings it was built with.
        geographic: coordinates are lon, lat degrees (True) or projected metres (False).
        num_nodes: N, the number of reference nodes.
        relations: relation name -> :class:`Relation` among reference nodes, in ``RELATIONS`` order.
        skipped: relation name -> why it was not built (input not given, or fewer than 2 usable nodes).
        spectral_space: the fitted spectral standardisation / PCA, or None.
        elevation_scale, slope_scale: s_z and s_slope of the elevation score, or None.
        timings: seconds spent per stage of the build: "fit" (inputs, locality order, spectral space),
            "trees" (KD-tree builds), "search <names>" (KD-tree queries, shared by the relations named),
            and each relation's name (choosing neighbours among the candidates, edges, attributes).
    """

    def __init__(
        self,
        coords: np.ndarray,
        *,
        geographic: bool,
        params: GraphParams,
        spectral: np.ndarray | None = None,
        elevation: np.ndarray | None = None,
        slope: np.ndarray | None = None,
        progress: ProgressCallback = silent,
    ) -> None:
        """Build the graph.

        Args:
            coords: ``(N, 2)`` x, y in metres of a projected CRS, or lon, lat in degrees when
                ``geographic``; all finite.
            geographic: whether ``coords`` are degrees (great-circle distances) or metres.
            params: the graph settings.
            spectral: ``(N, F)`` spectral features (a 1-D array is one band), or None.
            elevation: ``(N,)`` elevation in metres, or None.
            slope: ``(N,)`` slope (any unit, used consistently), or None.
            progress: called with the fraction done; may raise ``Cancelled``.
        """
        began = time.perf_counter()
        self.params = params
        self.geographic = bool(geographic)
        self._frame = SpatialFrame(self.geographic)
        points = self._frame.embed(coords)
        n = self.num_nodes = points.shape[0]
        self.relations: dict[str, Relation] = {}
        self.skipped: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self.spectral_space: SpectralSpace | None = None
        self.elevation_scale: float | None = None
        self.slope_scale: float | None = None
        self._spatial_trees: list[tuple[np.ndarray, cKDTree]] = []
        self._spectral_tree: cKDTree | None = None

        features = _matrix(spectral, n, "spectral features")
        heights = _column(elevation, n, "elevation")
        slopes = _column(slope, n, "slope") if heights is not None else None
        # Reference ids in spatial locality order: trees over the nodes in this order, and the gathers of
        # candidates' data, then touch nearby memory for nearby nodes (several times faster at 1M nodes).
        locality = neighbours.locality_order(points)
        usable: dict[str, np.ndarray] = {}
        if n >= 2:
            usable["spatial"] = locality
        else:
            self.skipped["spatial"] = f"only {n} node(s); at least 2 are needed"
        embedded = None
        if features is None:
            self.skipped["spectral"] = "no spectral features were given"
        else:
            rows = np.isfinite(features).all(axis=1)
            if self._enough("spectral", rows, "finite spectral features (every band)"):
                self.spectral_space = SpectralSpace(features, rows, params.spectral_components)
                if self.spectral_space.dims == 0:
                    self.spectral_space = None
                    self.skipped["spectral"] = "every spectral band is constant over the usable nodes"
                else:
                    embedded = self.spectral_space.transform(features)
                    usable["spectral"] = locality[rows[locality]]
        if heights is None:
            self.skipped["elevation"] = "no elevation was given"
        else:
            rows = np.isfinite(heights) & (np.isfinite(slopes) if slopes is not None else True)
            what = "finite elevation and slope" if slopes is not None else "finite elevation"
            if self._enough("elevation", rows, what):
                self.elevation_scale = _scale(heights[rows])
                self.slope_scale = _scale(slopes[rows]) if slopes is not None else None
                usable["elevation"] = locality[rows[locality]]
        self._ref = _Nodes(points, embedded, heights, slopes, usable)
        self.timings["fit"] = time.perf_counter() - began

        tables = self._neighbour_tables(self._ref, scaled(progress, 0.0, 0.9), self.timings)
        for name, (ids, table) in tables.items():
            began = time.perf_counter()
            edges = symmetric_edges(n, ids, table)
            self.relations[name] = self._relation(name, edges, self._ref)
            self.timings[name] += time.perf_counter() - began
        progress(1.0, "Built the soil graph")

    def attach(
        self,
        coords: np.ndarray,
        *,
        spectral: np.ndarray | None = None,
        elevation: np.ndarray | None = None,
        slope: np.ndarray | None = None,
        progress: ProgressCallback = silent,
    ) -> dict[str, Relation]:
        """Edges from reference nodes to query nodes, through every relation of this graph.

        Each query node gets the edges from its k reference neighbours, chosen as for reference nodes
        (a query node at the same place as a reference node is a different node: they are neighbours at
        distance 0). Query nodes are never linked to each other.

        Args:
            coords: ``(Q, 2)`` query coordinates, in the reference graph's coordinate system.
            spectral, elevation, slope: the query nodes' inputs, required for each relation the reference
                graph has (NaN rows just get no edges in that relation).
            progress: called with the fraction done; may raise ``Cancelled``.

        Returns:
            Relation name -> :class:`Relation` with ``edge_index[0]`` reference node ids (0..N-1),
            ``edge_index[1]`` query node ids (0..Q-1), sorted by (query, reference); the attribute
            columns of the reference relation.
        """
        tables = self.attach_tables(
            coords, spectral=spectral, elevation=elevation, slope=slope, progress=progress
        )
        return {name: table.relation() for name, table in tables.items()}

    def attach_tables(
        self,
        coords: np.ndarray,
        *,
        spectral: np.ndarray | None = None,
        elevation: np.ndarray | None = None,
        slope: np.ndarray | None = None,
        progress: ProgressCallback = silent,
    ) -> dict[str, NeighbourTable]:
        """:meth:`attach` as padded neighbour tables (the same edges and attributes), the form the
        network's query path reads: no edge list is built or sorted.

        Returns:
            Relation name -> :class:`NeighbourTable` with ``ids`` (Q, K) reference node ids (-1 in
            empty slots) and ``attr`` (Q, K, A).
        """
        points = self._frame.embed(coords, "query coordinates")
        q = points.shape[0]
        usable = {"spatial": np.arange(q)} if "spatial" in self.relations else {}
        embedded = heights = slopes = None
        if self.spectral_space is not None:
            features = _required(_matrix(spectral, q, "query spectral features"), "spectral features")
            embedded = self.spectral_space.transform(features)
            usable["spectral"] = np.flatnonzero(np.isfinite(features).all(axis=1))
        if "elevation" in self.relations:
            heights = _required(_column(elevation, q, "query elevation"), "elevation")
            slopes = _column(slope, q, "query slope")
            if (slopes is None) != (self._ref.slope is None):
                raise InputError(
                    "The query nodes must have slopes exactly when the reference nodes had them "
                    f"(reference: {'with' if self._ref.slope is not None else 'without'} slope).",
                    "Pass slope= for both, or for neither.",
                )
            rows = np.isfinite(heights) & (np.isfinite(slopes) if slopes is not None else True)
            usable["elevation"] = np.flatnonzero(rows)
        target = _Nodes(points, embedded, heights, slopes, usable)
        tables = self._neighbour_tables(target, scaled(progress, 0.0, 0.9), {})
        attached = {}
        for name, (rows, table) in tables.items():
            ids = np.full((q, table.shape[1]), -1, dtype=np.int64)
            ids[rows] = table
            names, columns = self._columns(name, target)
            attached[name] = NeighbourTable(ids, table_attributes(ids, columns), names)
        progress(1.0, "Attached the query nodes")
        return attached

    # Neighbour search ------------------------------------------------------------------------------------

    def _neighbour_tables(
        self, target: _Nodes, progress: ProgressCallback, spent: dict[str, float]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Relation -> (target node ids ``(n,)``, their reference neighbours ``(n, k)``, -1 for none).

        ``target`` is the reference itself (neighbours exclude the node itself) or a set of query nodes.
        Relations that search the same tree from the same target nodes share one query. Seconds spent are
        added to ``spent``.
        """
        itself = target is self._ref
        groups: list[tuple[cKDTree, np.ndarray, np.ndarray, list[Selector]]] = []
        origins: dict[str, np.ndarray] = {}
        for name in RELATIONS:
            if name not in target.usable:
                continue
            ref_ids, ids = self._ref.usable[name], target.usable[name]
            origins[name] = ref_ids
            began = time.perf_counter()
            search, queries, selector = self._search_plan(name, ref_ids, ids, target)
            spent["trees"] = spent.get("trees", 0.0) + time.perf_counter() - began
            for group_tree, group_ids, _, selectors in groups:
                if group_tree is search and np.array_equal(group_ids, ids):
                    selectors.append(selector)
                    break
            else:
                groups.append((search, ids, queries, [selector]))
        tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for index, (search, ids, queries, selectors) in enumerate(groups):
            timings: dict[str, float] = {}
            found = neighbours.select(
                search,
                queries,
                selectors,
                exclude_self=itself,
                order=search.indices if itself else None,
                progress=scaled(progress, index / len(groups), (index + 1) / len(groups)),
                timings=timings,
            )
            label = "search " + "+".join(s.name for s in selectors)
            spent[label] = spent.get(label, 0.0) + timings.pop("search", 0.0)
            for selector, local in zip(selectors, found, strict=True):
                ref_ids = origins[selector.name]
                tables[selector.name] = (ids, np.where(local >= 0, ref_ids[local], -1))
                spent[selector.name] = spent.get(selector.name, 0.0) + timings[selector.name]
        return {name: tables[name] for name in RELATIONS if name in tables}

    def _search_plan(
        self, name: str, ref_ids: np.ndarray, ids: np.ndarray, target: _Nodes
    ) -> tuple[cKDTree, np.ndarray, Selector]:
        """The tree to search, the query points ``(n, d)`` and the selector of one relation."""
        p, ref = self.params, self._ref
        if name == "spatial":
            bound = None if p.max_distance_m is None else self._frame.chord(p.max_distance_m)
            return (
                self._spatial_tree(ref_ids),
                target.points.take(ids, axis=0),
                Selector(name, p.k_spatial, p.k_spatial, bound),
            )
        if name == "spectral" and p.spectral_radius_m is None:
            if self._spectral_tree is None:
                self._spectral_tree = neighbours.tree(ref.spectral.take(ref_ids, axis=0))
            return (
                self._spectral_tree,
                target.spectral.take(ids, axis=0),
                Selector(name, p.k_spectral, p.k_spectral),
            )
        if name == "spectral":
            k, radius, score = p.k_spectral, p.spectral_radius_m, _spectral_score(ref, target, ref_ids, ids)
        else:
            k, radius, score = (
                p.k_elevation,
                p.elevation_radius_m,
                self._elevation_score(target, ref_ids, ids),
            )
        bound = None if radius is None else self._frame.chord(radius)
        return (
            self._spatial_tree(ref_ids),
            target.points.take(ids, axis=0),
            Selector(name, k, p.candidates, bound, score),
        )

    def _spatial_tree(self, ids: np.ndarray) -> cKDTree:
        """KD-tree over the reference points ``ids`` (cached: relations with the same usable nodes share)."""
        for cached_ids, cached in self._spatial_trees:
            if np.array_equal(cached_ids, ids):
                return cached
        built = neighbours.tree(self._ref.points.take(ids, axis=0))
        self._spatial_trees.append((ids, built))
        return built

    def _elevation_score(self, target: _Nodes, ref_ids: np.ndarray, ids: np.ndarray) -> neighbours.Score:
        """|dz| + w (s_z / s_slope) |d slope|, in metres (the slope term only with slopes and w > 0)."""
        ref_z, query_z = self._ref.elevation[ref_ids], target.elevation[ids]
        weight = self.params.slope_weight
        use_slope = self._ref.slope is not None and weight > 0
        if use_slope:
            factor = weight * self.elevation_scale / self.slope_scale
            ref_s, query_s = factor * self._ref.slope[ref_ids], factor * target.slope[ids]

        def score(rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
            # np.take and in-place arithmetic: this runs on (rows, candidates) tables, millions of entries.
            total = np.take(ref_z, cand)
            total -= np.take(query_z, rows)[:, None]
            np.abs(total, out=total)
            if use_slope:
                term = np.take(ref_s, cand)
                term -= np.take(query_s, rows)[:, None]
                total += np.abs(term, out=term)
            return total

        return score

    # Edges -----------------------------------------------------------------------------------------------

    def _relation(self, name: str, edges: np.ndarray, target: _Nodes) -> Relation:
        """The relation's edges (source: reference node, destination: ``target`` node) and attributes."""
        names, columns = self._columns(name, target)
        return Relation(edges, edge_attributes(edges, columns), names)

    def _columns(self, name: str, target: _Nodes) -> tuple[tuple[str, ...], list[Column]]:
        """The relation's attribute names and their ``column(src, dst)`` functions (src: reference node,
        dst: ``target`` node)."""
        ref, frame = self._ref, self._frame

        def distance(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
            return frame.distance(ref.points.take(src, axis=0), target.points.take(dst, axis=0))

        def spectral_distance(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
            diff = ref.spectral.take(src, axis=0) - target.spectral.take(dst, axis=0)
            return np.sqrt(np.einsum("ij,ij->i", diff, diff))

        def difference(field: str) -> Column:
            ref_values, target_values = getattr(ref, field), getattr(target, field)
            return lambda src, dst: np.abs(ref_values[src] - target_values[dst])

        columns: dict[str, Column] = {"distance_m": distance}
        if name == "spectral":
            columns = {"spectral_distance": spectral_distance} | columns
        elif name == "elevation":
            columns = {"elevation_difference_m": difference("elevation")} | columns
            if ref.slope is not None:
                columns["slope_difference"] = difference("slope")
        return tuple(columns), list(columns.values())

    def _enough(self, name: str, rows: np.ndarray, what: str) -> bool:
        """Whether at least 2 nodes are usable for a relation; if not, record why it is skipped."""
        count = int(rows.sum())
        if count < 2:
            self.skipped[name] = f"only {count} of {rows.size} node(s) have {what}; at least 2 are needed"
        return count >= 2


def _spectral_score(ref: _Nodes, target: _Nodes, ref_ids: np.ndarray, ids: np.ndarray) -> neighbours.Score:
    """Squared spectral distance between each query row and its candidates (same order as the distance)."""
    ref_rows, query_rows = ref.spectral.take(ref_ids, axis=0), target.spectral.take(ids, axis=0)
    dims = ref_rows.shape[1]

    def score(rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
        total = np.empty(cand.shape)
        # Whole rows per candidate (one cache line for 8 dims), a few MB of (rows, width, dims) at a time.
        step = max(1, (1 << 18) // (cand.shape[1] * dims))
        for start in range(0, rows.size, step):
            diff = ref_rows.take(cand[start : start + step], axis=0)
            diff -= query_rows.take(rows[start : start + step], axis=0)[:, None, :]
            total[start : start + step] = np.einsum("rwd,rwd->rw", diff, diff)
        return total

    return score


def _as_float(values: object, what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"The {what} are not numbers: {err}.", f"Pass numeric {what}.") from err


def _matrix(values: np.ndarray | None, n: int, what: str) -> np.ndarray | None:
    """``(n, F)`` float64 features (a 1-D array is one feature), or None (also for F = 0)."""
    if values is None:
        return None
    array = _as_float(values, what)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] != n:
        raise InputError(
            f"The {what} have shape {array.shape}; expected ({n}, F): one row per node.",
            "Pass one row of features per node, in the order of the coordinates.",
        )
    return array if array.shape[1] else None


def _column(values: np.ndarray | None, n: int, what: str) -> np.ndarray | None:
    """``(n,)`` float64 values (an ``(n, 1)`` array is accepted), or None."""
    if values is None:
        return None
    array = _as_float(values, what)
    if array.shape not in ((n,), (n, 1)):
        raise InputError(
            f"The {what} has shape {array.shape}; expected ({n},): one value per node.",
            "Pass one value per node, in the order of the coordinates.",
        )
    return array.reshape(n)


def _required(values: np.ndarray | None, what: str) -> np.ndarray:
    if values is None:
        raise InputError(
            f"The reference graph has a relation built from {what}, but none were given for the query nodes.",
            f"Pass {what} for the query nodes too (NaN where unknown: those nodes get no such edges).",
        )
    return values


def _scale(values: np.ndarray) -> float:
    """Standard deviation of the reference values, 1 when they do not vary (the scale is then moot)."""
    std = float(np.std(values))
    return std if std > 0 and np.isfinite(std) else 1.0
