"""Neighbour search: one KD-tree query per chunk of nodes, shared by every relation that needs it.

A :class:`Selector` says how one relation picks its k neighbours from the candidates a query returns:
the nearest ones (plain kNN), or the k with the lowest score among the ``width`` nearest candidates (the
restricted relations: spectral similarity or elevation difference among spatial neighbours). Several
selectors over the same tree share one query of the widest width, because a KD-tree returns candidates
in order of distance: the first w of a wider query are the w nearest.

Queries run chunk by chunk (memory O(chunk x width), whatever the number of nodes) in an order that keeps
consecutive queries close in space (the tree's own leaf order), which makes them several times faster
than random order because the tree nodes they visit stay in cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from soilcarbon_core.progress import ProgressCallback, silent

#: Threads per KD-tree query (scipy's ``workers``; -1: all cores). Set with :func:`set_workers`.
_workers = -1

#: Candidate-table entries (rows x width) per chunk: a few tens of MB of temporaries per array.
_CHUNK_ENTRIES = 1 << 21

Score = Callable[[np.ndarray, np.ndarray], np.ndarray]


def set_workers(workers: int) -> int:
    """Set the threads every KD-tree query uses (-1: all cores); returns the previous setting."""
    global _workers
    if workers == 0 or workers < -1:
        raise ValueError(f"workers must be -1 or a positive number, not {workers}")
    previous, _workers = _workers, int(workers)
    return previous


def get_workers() -> int:
    """The threads every KD-tree query uses (-1: all cores)."""
    return _workers


@dataclass(frozen=True)
class Selector:
    """How one relation picks neighbours among the candidates of a query.

    Attributes:
        name: the relation, for timings.
        k: neighbours per node (fewer where fewer candidates qualify).
        width: candidates examined per node: the ``width`` nearest in the tree.
        bound: candidates farther than this (tree distance) do not qualify; None: no limit.
        score: None picks the nearest qualifying candidates. Otherwise ``score(rows, cand)`` gives an
            ``(r, w)`` float array for query rows ``rows`` ``(r,)`` and candidate tree indices ``cand``
            ``(r, w)``; the k lowest are picked, ties going to the nearer candidate.
    """

    name: str
    k: int
    width: int
    bound: float | None = None
    score: Score | None = None


def tree(points: np.ndarray) -> cKDTree:
    """A KD-tree over ``(n, d)`` points (kept by reference, not copied)."""
    return cKDTree(points, leafsize=16)


def locality_order(points: np.ndarray) -> np.ndarray:
    """A permutation of ``(n, d)`` points that keeps consecutive points close (KD-tree leaf order)."""
    if points.shape[0] < 2:
        return np.arange(points.shape[0])
    return tree(points).indices


def select(
    search: cKDTree,
    points: np.ndarray,
    selectors: Sequence[Selector],
    *,
    exclude_self: bool,
    order: np.ndarray | None = None,
    progress: ProgressCallback = silent,
    timings: dict[str, float] | None = None,
) -> list[np.ndarray]:
    """Each selector's neighbours of every query point, as tree indices.

    Args:
        search: KD-tree over the candidate nodes.
        points: ``(n, d)`` query points in the tree's space.
        selectors: the relations to serve from this one query.
        exclude_self: the query points are the tree's own points in the same order, and a node is never
            its own neighbour. Other nodes at distance 0 (duplicates) are legitimate neighbours.
        order: the order to query the points in (for locality); results are the same in any order.
            None: the tree's leaf order of the points (:func:`locality_order`), unless the search sorts
            every distance (:func:`searches_exhaustively`), which gains nothing from it.
        progress: called with the fraction of points done; may raise ``Cancelled``.
        timings: if given, seconds spent are added under "search" and under each selector's name.

    Returns:
        One ``(n, k')`` int64 table per selector, k' = min(k, width, candidates available): tree indices,
        -1 where fewer than k' candidates qualify.
    """
    n, available = points.shape[0], search.n - int(exclude_self)
    widths = [min(s.width, available) for s in selectors]
    tables = [np.full((n, min(s.k, w)), -1, dtype=np.int64) for s, w in zip(selectors, widths, strict=True)]
    width = max(widths, default=0)
    if n == 0 or width <= 0:
        return tables
    query_k = width + int(exclude_self)
    bounds = [s.bound for s in selectors]
    # The tree prunes with a slightly larger bound; each selector applies its own exact bound after.
    upper = np.inf if None in bounds else max(bounds) * (1 + 1e-9) + 1e-9
    timings = {} if timings is None else timings
    if order is None:
        began = time.perf_counter()
        order = np.arange(n) if searches_exhaustively(search, query_k) else locality_order(points)
        _add(timings, "search", began)
    step = max(1024, _CHUNK_ENTRIES // query_k)
    for start in range(0, n, step):
        rows = order[start : start + step]
        began = time.perf_counter()
        dist, idx = _query(search, points.take(rows, axis=0), query_k, upper)
        if exclude_self:
            dist, idx = _drop_self(dist, idx, rows, width)
        valid = idx < search.n
        _add(timings, "search", began)
        for selector, table, w in zip(selectors, tables, widths, strict=True):
            began = time.perf_counter()
            ok = valid[:, :w]
            if selector.bound is not None:
                ok = ok & (dist[:, :w] <= selector.bound)
            cand, k = idx[:, :w], table.shape[1]
            if selector.score is None and ok[:, :k].all():
                table[rows] = cand[:, :k]  # the usual case: the k nearest all qualify
            else:
                every = ok.all()  # the usual case for scored relations: every candidate qualifies
                if selector.score is None:
                    pick = np.argsort(~ok, axis=1, kind="stable")[:, :k]
                elif every:
                    pick = smallest(selector.score(rows, cand), k)
                else:
                    pick = smallest(np.where(ok, selector.score(rows, np.where(ok, cand, 0)), np.inf), k)
                chosen = np.take_along_axis(cand, pick, axis=1)
                table[rows] = chosen if every else np.where(np.take_along_axis(ok, pick, axis=1), chosen, -1)
            _add(timings, selector.name, began)
        progress(min(start + step, n) / n, "Finding neighbours")
    return tables


def searches_exhaustively(search: cKDTree, k: int) -> bool:
    """Whether a query for k neighbours sorts the distances to every point of ``search`` instead of
    walking the tree: when k is at least half of its points, which leaves the tree nothing to prune."""
    return 2 * k >= search.n


def _query(search: cKDTree, points: np.ndarray, k: int, upper: float) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest tree points of each of ``(r, d)`` points as ``cKDTree.query`` gives them: distances
    and indices ``(r, k)``, in order of distance, ``inf`` and ``search.n`` where none lies within ``upper``.

    When the search is exhaustive (:func:`searches_exhaustively`), sorting each query's distances to
    every point is faster than the tree's heap (x2.5 for k = 64 of 118 points in 2-D on one thread, the same
    neighbours: training/reports/bench_query_path.md); ties are then in any order, as the tree's.
    """
    if not searches_exhaustively(search, k):
        dist, idx = search.query(points, k=k, distance_upper_bound=upper, workers=_workers)
        return dist.reshape(points.shape[0], k), idx.reshape(points.shape[0], k)
    squared = np.zeros((points.shape[0], search.n))
    for axis in range(points.shape[1]):
        difference = np.subtract.outer(points[:, axis], search.data[:, axis])
        squared += np.multiply(difference, difference, out=difference)
    idx = np.argsort(squared, axis=1)[:, :k]
    squared.sort(axis=1)  # a second sort costs less than gathering the distances by idx
    dist = np.sqrt(squared[:, :k])
    beyond = dist >= upper
    if beyond.any():
        dist[beyond], idx[beyond] = np.inf, search.n
    if k > search.n:  # the tree pads missing neighbours the same way
        pad = ((0, 0), (0, k - search.n))
        dist, idx = np.pad(dist, pad, constant_values=np.inf), np.pad(idx, pad, constant_values=search.n)
    return dist, idx


def smallest(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k lowest scores of each row of ``(r, w)`` ``scores``, ``(r, k)``.

    Ties go to the lower column (the nearer candidate): a stable sort does that, but costs several times
    numpy's default sort, so rows are sorted by the default and only rows with a tie across the k-th
    place are sorted again, stably.
    """
    if k >= scores.shape[1]:
        return np.argsort(scores, axis=1, kind="stable")[:, :k]
    order = np.argsort(scores, axis=1)
    pick = order[:, :k]
    rows = np.arange(scores.shape[0])
    kth = scores[rows, order[:, k - 1]]
    tied = (kth == scores[rows, order[:, k]]) & np.isfinite(kth)
    if tied.any():
        pick[tied] = np.argsort(scores[tied], axis=1, kind="stable")[:, :k]
    return pick


def _drop_self(
    dist: np.ndarray, idx: np.ndarray, rows: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``width`` candidates other than the query node itself, in order of distance.

    The node is among its own candidates unless more than ``width`` duplicates tie with it at distance
    0; then all candidates are at distance 0 and the stable sort keeps the first ``width`` of them.
    """
    first = idx[:, 0] == rows
    if first.all():  # without duplicates the node itself is always the nearest
        return dist[:, 1:], idx[:, 1:]
    kept_dist, kept_idx = dist[:, 1:].copy(), idx[:, 1:].copy()
    other = np.flatnonzero(~first)
    keep = np.argsort(idx[other] == rows[other, None], axis=1, kind="stable")[:, :width]
    kept_dist[other] = np.take_along_axis(dist[other], keep, axis=1)
    kept_idx[other] = np.take_along_axis(idx[other], keep, axis=1)
    return kept_dist, kept_idx


def _add(timings: dict[str, float], key: str, began: float) -> None:
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - began
