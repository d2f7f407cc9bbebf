"""A model's soil graph as lines: one GeoPackage feature per edge, to be drawn over a map.

The graph is the one prediction builds (:func:`soilcarbon_core.predictor.reference_graph`), limited to the
relations the model's network uses. Each undirected edge among reference nodes is written once (source <
target); with query points, each edge from a reference node to a point it is attached to follows, as
prediction attaches them. What ``soilcarbon graph`` and the worker's ``build_graph`` task run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soilcarbon_core.device import resolve_device
from soilcarbon_core.errors import OutputError
from soilcarbon_core.graph.geometry import SpatialFrame
from soilcarbon_core.graph.reference import ReferenceGraph
from soilcarbon_core.graph.relations import Relation
from soilcarbon_core.imagery.inputs import ImageryInputs
from soilcarbon_core.io.points import SamplePoints, read_points
from soilcarbon_core.io.rasters import RasterSource
from soilcarbon_core.io.vector_out import write_features_gpkg
from soilcarbon_core.model import SoilCarbonModel
from soilcarbon_core.prediction import imagery_encoder, query_table, with_date
from soilcarbon_core.predictor import attach, reference_graph
from soilcarbon_core.progress import ProgressCallback, scaled, silent
from soilcarbon_core.schema import InputSchema

LAYER = "graph"
#: The fields every edge has, before the relations' attribute columns.
EDGE_FIELDS = ("relation", "source", "target", "target_kind", "length_m")
#: Query points attached per block (as in prediction): bounds memory and the time between cancel points.
_ATTACH_BLOCK = 65_536
#: Features per GeoPackage write (the time between progress reports on large graphs).
_WRITE_CHUNK = 50_000


@dataclass(frozen=True)
class _Edges:
    """Edges of one relation to one kind of target node.

    source: ``(E,)`` reference node ids; target: ``(E,)`` reference node ids or query point rows;
    ends: ``(E, 2)`` the targets' coordinates in the model's CRS; attr: ``(E, A)`` the relation's
    attributes, named ``attr_names``.
    """

    relation: str
    kind: str
    source: np.ndarray
    target: np.ndarray
    ends: np.ndarray
    attr: np.ndarray
    attr_names: tuple[str, ...]

    @staticmethod
    def join(blocks: list[_Edges]) -> _Edges:
        """Blocks of one relation and kind as one block."""
        first = blocks[0]
        arrays = (
            np.concatenate([getattr(b, f) for b in blocks]) for f in ("source", "target", "ends", "attr")
        )
        return _Edges(first.relation, first.kind, *arrays, first.attr_names)


def export_graph(
    model_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    points: SamplePoints | str | os.PathLike[str] | None = None,
    rasters: list[RasterSource] = (),
    imagery: ImageryInputs | None = None,
    method: str = "bilinear",
    date: str | None = None,
    device: str = "cpu",
    progress: ProgressCallback = silent,
    **read_options: object,
) -> dict:
    """Write a model's soil graph (and optionally the edges of query points) as lines to a GeoPackage.

    Layer ``graph``, LineStrings in the model's CRS from the source to the target node, with the fields
    ``relation``, ``source`` (reference sample index, 0-based in the model's reference order), ``target``
    (reference index, or the query point's row), ``target_kind`` (``reference`` / ``query``),
    ``length_m`` (ground distance between the endpoints: Euclidean in a projected CRS, great-circle in a
    geographic one) and every relation's attribute columns (NULL where a relation has no such column).

    Args:
        model_path: the SOC model (directory or ``.zip``).
        output: the ``.gpkg`` to write (replaced if it exists; nothing is left behind on error or cancel).
        points: query points (a path, read with ``read_options``, or :class:`SamplePoints`), or None for
            the reference graph alone. Their features come from their fields, ``rasters`` (sampled with
            ``method``) and ``imagery`` chips, as in prediction; points prediction would skip (outside a
            raster, on nodata) get no edges.
        date: sampling date (YYYY-MM-DD) of points without one, for models that use dates.
        device: where the imagery encoder runs (models with an imagery-chip stream).
        progress: called with the fraction done; may raise ``Cancelled``.

    Returns:
        ``output``, ``layer``, ``crs`` (WKT), ``relations`` (relation -> edges among reference nodes
        written), ``skipped`` (relation -> why it has no edges), ``n_reference``, ``n_query`` (points
        given), ``n_query_attached`` (those attached: the points prediction predicts), ``n_query_edges``,
        ``fields`` (in order).
    """
    output = Path(output)
    if output.suffix.lower() != ".gpkg":
        raise OutputError(f"'{output}' is not a GeoPackage path.", "Give a file name ending in .gpkg.")
    progress(0.0, "Loading the model")
    model = SoilCarbonModel.load(model_path)
    progress(0.02, "Building the soil graph")
    graph = reference_graph(
        model.reference, model.normaliser, model.graph_params, geographic=model.schema.geographic
    )
    used = model.network.config.relations
    skipped = graph.skipped | {
        name: "the model's network does not use this relation" for name in graph.relations if name not in used
    }
    edges = [
        _reference_edges(name, relation, model.reference.xy)
        for name, relation in graph.relations.items()
        if name in used
    ]
    counts = {block.relation: int(block.source.size) for block in edges}
    n_query = attached = 0
    if points is not None:
        if not isinstance(points, SamplePoints):
            points = read_points(points, **read_options)  # type: ignore[arg-type]
        n_query = len(points)
        query, attached = _query_edges(
            model, graph, points, list(rasters), imagery, method, date, device, scaled(progress, 0.05, 0.5)
        )
        edges += [block for block in query if block.relation in used]
    n_query_edges = sum(int(block.source.size) for block in edges if block.kind == "query")
    attr_names = list(dict.fromkeys(name for block in edges for name in block.attr_names))
    writing = scaled(progress, 0.5 if points is not None else 0.05, 1.0)
    _write(output, model.schema, model.reference.xy, edges, attr_names, writing)
    return {
        "output": str(output),
        "layer": LAYER,
        "crs": model.schema.crs,
        "relations": counts,
        "skipped": skipped,
        "n_reference": len(model.reference),
        "n_query": n_query,
        "n_query_attached": attached,
        "n_query_edges": n_query_edges,
        "fields": [*EDGE_FIELDS, *attr_names],
    }


def _reference_edges(name: str, relation: Relation, xy: np.ndarray) -> _Edges:
    """The relation's edges among reference nodes, stored both ways, each once: source < target."""
    once = relation.edge_index[0] < relation.edge_index[1]
    source, target = relation.edge_index[:, once]
    return _Edges(
        name, "reference", source, target, xy[target], relation.edge_attr[once], relation.attr_names
    )


def _query_edges(
    model: SoilCarbonModel,
    graph: ReferenceGraph,
    points: SamplePoints,
    rasters: list[RasterSource],
    imagery: ImageryInputs | None,
    method: str,
    date: str | None,
    device: str,
    progress: ProgressCallback,
) -> tuple[list[_Edges], int]:
    """Edges from reference nodes to the points prediction would predict, one block per relation, and
    the number of those points."""
    encoder = imagery_encoder(model, imagery, str(resolve_device(device)))
    table, valid = query_table(
        model, with_date(points, date), rasters, method, scaled(progress, 0.0, 0.5), encoder
    )
    rows = np.flatnonzero(valid)
    found: dict[str, list[_Edges]] = {}
    for start in range(0, rows.size, _ATTACH_BLOCK):
        progress(0.5 + 0.5 * start / rows.size, f"Attaching {start:,} / {rows.size:,} points")
        block = rows[start : start + _ATTACH_BLOCK]
        for name, relation in attach(graph, table.select(block), model.normaliser).items():
            source, query = relation.edge_index
            target = block[query]
            found.setdefault(name, []).append(
                _Edges(
                    name, "query", source, target, table.xy[target], relation.edge_attr, relation.attr_names
                )
            )
    progress(1.0, f"Attached {rows.size:,} points")
    return [_Edges.join(blocks) for blocks in found.values()], int(rows.size)


def _write(
    path: Path,
    schema: InputSchema,
    reference_xy: np.ndarray,
    edges: list[_Edges],
    attr_names: list[str],
    progress: ProgressCallback,
) -> None:
    """Write ``edges`` as LineStrings source -> target with their fields, atomically and in chunks.

    ``schema``: the model's inputs (CRS); ``reference_xy``: ``(N, 2)`` the reference nodes' coordinates.
    """
    import shapely

    # An empty piece in every concatenation: a graph without edges still writes an (empty) layer.
    sizes = [b.source.size for b in edges]
    source = np.concatenate([*(b.source for b in edges), np.empty(0, np.int64)])
    starts = reference_xy[source]
    ends = np.concatenate([*(b.ends for b in edges), np.empty((0, 2))])
    frame = SpatialFrame(schema.geographic)
    data = [
        np.repeat(np.array([b.relation for b in edges], dtype=object), sizes),
        source,
        np.concatenate([*(b.target for b in edges), np.empty(0, np.int64)]),
        np.repeat(np.array([b.kind for b in edges], dtype=object), sizes),
        frame.distance(frame.embed(starts), frame.embed(ends)),
    ]
    masks: list[np.ndarray | None] = [None] * len(data)
    for name in attr_names:
        pieces = [
            b.attr[:, b.attr_names.index(name)] if name in b.attr_names else np.full(b.source.size, np.nan)
            for b in edges
        ]
        data.append(np.concatenate([*pieces, np.empty(0)]).astype(np.float64))
        lacking = np.repeat([name not in b.attr_names for b in edges], sizes).astype(bool)
        masks.append(lacking if lacking.any() else None)
    wkb = shapely.to_wkb(shapely.linestrings(np.stack([starts, ends], axis=1)))
    names = [*EDGE_FIELDS, *attr_names]
    write_features_gpkg(
        path,
        wkb,
        data,
        names,
        masks,
        layer=LAYER,
        geometry_type="LineString",
        crs=schema.crs,
        progress=progress,
        chunk_size=_WRITE_CHUNK,
        what="edges",
    )
