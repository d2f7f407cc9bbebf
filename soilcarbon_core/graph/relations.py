"""Edge lists of one relation: building them from neighbour tables, and their attributes.

Conventions (PyTorch Geometric's): ``edge_index[0]`` is the source node, ``edge_index[1]`` the
destination node, so a node aggregates messages from its neighbours along edges neighbour -> node. Edges
are sorted by (destination, source), which makes every output deterministic and groups each node's
incoming edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Edges per chunk when computing attributes (bounds the temporaries of gathered node data).
_EDGE_CHUNK = 1 << 20

Column = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Relation:
    """The edges of one relation (compared by identity: its fields are arrays).

    Attributes:
        edge_index: ``(2, E)`` int64; row 0 the source node, row 1 the destination node.
        edge_attr: ``(E, A)`` float32, one column per name in ``attr_names``; finite.
        attr_names: the attribute columns, e.g. ``("distance_m",)``.
    """

    edge_index: np.ndarray
    edge_attr: np.ndarray
    attr_names: tuple[str, ...]

    def __post_init__(self) -> None:
        e = self.edge_index
        if e.dtype != np.int64 or e.ndim != 2 or e.shape[0] != 2:
            raise ValueError(f"edge_index must be (2, E) int64, not {e.shape} {e.dtype}")
        a = self.edge_attr
        if a.dtype != np.float32 or a.shape != (e.shape[1], len(self.attr_names)):
            raise ValueError(
                f"edge_attr must be ({e.shape[1]}, {len(self.attr_names)}) float32, not {a.shape}"
            )

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])


def symmetric_edges(num_nodes: int, dst: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Undirected edges from a neighbour table: every edge in both directions, each once.

    Args:
        num_nodes: N, the node count (node ids are 0..N-1).
        dst: ``(n,)`` node ids of the table's rows.
        table: ``(n, k)`` node ids of each row's neighbours, -1 for none; never the row's own node.

    Returns:
        ``(2, E)`` int64 sorted by (destination, source): j -> i and i -> j for every neighbour j of i.
    """
    src = table.ravel()
    found = src >= 0
    src, dst = src[found], np.repeat(dst, table.shape[1])[found]
    # One int64 key per directed edge, destination-major, so sorting the keys sorts the edges. Written in
    # place: at 1M nodes each temporary is ~100 MB.
    keys = np.empty(2 * src.size, dtype=np.int64)
    forward, backward = keys[: src.size], keys[src.size :]
    np.multiply(dst, num_nodes, out=forward)
    forward += src
    np.multiply(src, num_nodes, out=backward)
    backward += dst
    keys.sort()
    # np.unique is much slower than sort + neighbour comparison on large int64 arrays (numpy 2.4).
    first = np.ones(keys.size, dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    keys = keys[first]
    edges = np.empty((2, keys.size), dtype=np.int64)
    np.floor_divide(keys, num_nodes, out=edges[1])
    np.multiply(edges[1], num_nodes, out=edges[0])
    np.subtract(keys, edges[0], out=edges[0])
    return edges


@dataclass(frozen=True, eq=False)
class NeighbourTable:
    """One relation's reference neighbours of Q query nodes, as a padded table (compared by identity).

    The form the network's query path reads directly (no edge list, no sort). Attributes:
        ids: ``(Q, K)`` int64 reference node ids, -1 in an empty slot (fewer than K neighbours).
        attr: ``(Q, K, A)`` float32 attributes, one per name in ``attr_names``; 0 in empty slots.
        attr_names: the attribute columns, as in :class:`Relation`.
    """

    ids: np.ndarray
    attr: np.ndarray
    attr_names: tuple[str, ...]

    @classmethod
    def concatenate(cls, parts: Sequence[NeighbourTable]) -> NeighbourTable:
        """The tables of consecutive query parts as one (query ids renumbered in order)."""
        return cls(
            np.concatenate([part.ids for part in parts]),
            np.concatenate([part.attr for part in parts]),
            parts[0].attr_names,
        )

    def relation(self) -> Relation:
        """The same edges as a :class:`Relation`: reference -> query, sorted by (query, reference)."""
        missing = np.iinfo(np.int64).max
        order = np.argsort(np.where(self.ids >= 0, self.ids, missing), axis=1, kind="stable")
        src = np.take_along_axis(self.ids, order, axis=1).ravel()
        attr = np.take_along_axis(self.attr, order[:, :, None], axis=1).reshape(src.size, -1)
        dst = np.repeat(np.arange(self.ids.shape[0]), self.ids.shape[1])
        found = src >= 0
        return Relation(np.stack([src[found], dst[found]]), attr[found], self.attr_names)


def table_attributes(ids: np.ndarray, columns: Sequence[Column]) -> np.ndarray:
    """``(Q, K, len(columns))`` float32 attributes of a padded table's slots (0 in empty slots):
    ``column(src, dst)`` with ``dst`` the row (query node id)."""
    src = ids.ravel()
    dst = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    attr = edge_attributes(np.stack([np.maximum(src, 0), dst]), columns)
    attr[src < 0] = 0.0
    return attr.reshape(*ids.shape, len(columns))


def edge_attributes(edge_index: np.ndarray, columns: Sequence[Column]) -> np.ndarray:
    """``(E, len(columns))`` float32 attributes: ``column(src, dst)`` for each column, chunk by chunk."""
    count = edge_index.shape[1]
    attr = np.empty((count, len(columns)), dtype=np.float32)
    for start in range(0, count, _EDGE_CHUNK):
        src, dst = edge_index[:, start : start + _EDGE_CHUNK]
        for j, column in enumerate(columns):
            attr[start : start + src.size, j] = column(src, dst)
    return attr
