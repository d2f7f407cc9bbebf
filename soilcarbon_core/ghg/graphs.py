"""KG-FGNN's per-target feature graphs, built from (simulated) data by rank correlation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

#: Fewest pairwise-complete rows for a correlation; fewer gives 0 (no evidence, no edge).
MIN_ROWS = 3


def _ranks_correlation(ra: np.ndarray, rb: np.ndarray) -> float:
    """Pearson's r of two rank vectors (Spearman's rho of the ranked data); 0 when undefined."""
    if ra.size < MIN_ROWS:
        return 0.0
    # Mid-ranks of n values average (n + 1) / 2 exactly, so a constant column centres to exactly 0.
    ra, rb = ra - (ra.size + 1) / 2, rb - (rb.size + 1) / 2
    denominator = np.sqrt(np.dot(ra, ra) * np.dot(rb, rb))
    return float(np.clip(np.dot(ra, rb) / denominator, -1.0, 1.0)) if denominator > 0 else 0.0


def spearman_matrix(x: np.ndarray) -> np.ndarray:
    """Pairwise-complete Spearman correlations of the columns of ``x`` (N, C), NaN allowed -> (C, C).

    Each pair uses the rows where both columns are observed (as ``scipy.stats.spearmanr`` with
    ``nan_policy='omit'`` does for two variables). A constant column, or fewer than 3 common rows,
    gives 0; the diagonal is 1. Columns without NaN are ranked once.
    """
    x = np.asarray(x, dtype=np.float64)
    columns = x.shape[1]
    observed = np.isfinite(x)
    complete = observed.all(axis=0)
    full_ranks = {c: rankdata(x[:, c]) for c in range(columns) if complete[c]}
    rho = np.eye(columns)
    for i in range(columns):
        for j in range(i + 1, columns):
            if complete[i] and complete[j]:
                value = _ranks_correlation(full_ranks[i], full_ranks[j])
            else:
                rows = observed[:, i] & observed[:, j]
                value = _ranks_correlation(rankdata(x[rows, i]), rankdata(x[rows, j]))
            rho[i, j] = rho[j, i] = value
    return rho


def feature_graphs(
    features: np.ndarray, targets: np.ndarray, k: int = 4, significance: float = 3.0
) -> np.ndarray:
    r"""One weighted feature graph per target: features (N, F), targets (N, T), NaN allowed -> (T, F, F).

    Our construction (the paper publishes none): with :math:`\rho` pairwise-complete Spearman rank
    correlations, between features i, j and of feature i with target t,

    .. math:: w^t_{ij} = |\rho_{ij}| \sqrt{|\rho_{it}| |\rho_{jt}|}, \quad i \ne j

    so an edge is strong only when the two features move together *and* both bear on target t (the
    geometric mean keeps :math:`w \le 1`). A correlation within ``significance`` null standard
    deviations of 0, :math:`|\rho| \le z / \sqrt{n - 1}` for n pairwise-complete rows (Spearman's rho
    of independent data has sd :math:`1 / \sqrt{n - 1}`), counts as 0, so a feature unrelated to a
    target gets no edge in its graph rather than its k least weak ones (``significance=0`` keeps every
    correlation; with a simulated N ~ 10^5 the bar is ~0.01).

    Each node keeps its ``k`` strongest non-zero edges (ties broken by column order); the kept edges are
    symmetrised by the maximum, so a node may end with more than k neighbours, every edge being among
    the k strongest of at least one end. Self loops have weight 1. Rows are not normalised:
    :class:`FeatureGraphAttention` uses :math:`\log w` as a prior inside a softmax over neighbours,
    which normalises; the raw weights stay comparable across graphs.
    Constant columns correlate 0 with everything; the output has no NaN.
    """
    features = np.asarray(features, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim == 1:
        targets = targets[:, None]
    if features.ndim != 2 or targets.shape[0] != features.shape[0]:
        raise ValueError(
            "features must be (N, F) and targets (N, T) with the same N; "
            f"got {features.shape} and {targets.shape}."
        )
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}.")
    n_features = features.shape[1]
    columns = np.hstack([features, targets])
    rho = np.abs(spearman_matrix(columns))
    observed = np.isfinite(columns).astype(np.float64)
    pairs = observed.T @ observed  # pairwise-complete row counts
    rho[rho <= significance / np.sqrt(np.maximum(pairs - 1, 1))] = 0.0
    between, with_target = rho[:n_features, :n_features], rho[:n_features, n_features:]
    graphs = np.zeros((targets.shape[1], n_features, n_features))
    for t in range(targets.shape[1]):
        weight = between * np.sqrt(np.outer(with_target[:, t], with_target[:, t]))
        np.fill_diagonal(weight, 0.0)
        kept = np.zeros_like(weight)
        strongest = np.argsort(-weight, axis=1, kind="stable")[:, :k]
        rows = np.arange(n_features)[:, None]
        kept[rows, strongest] = weight[rows, strongest]  # zero weights stay zero: no edge
        graphs[t] = np.maximum(kept, kept.T)
        np.fill_diagonal(graphs[t], 1.0)
    return graphs


def graph_edges_table(
    graphs: np.ndarray,
    names: Sequence[str],
    target_names: Sequence[str] | None = None,
    top: int = 10,
) -> list[dict]:
    """The ``top`` strongest edges of each target's graph, for the training report.

    Each undirected edge once (self loops left out), strongest first:
    ``{"target", "rank", "feature_a", "feature_b", "weight"}`` (rank 1 = strongest of that target).
    ``target_names`` defaults to "0", "1", ...
    """
    graphs = np.asarray(graphs)
    if graphs.ndim != 3 or graphs.shape[1:] != (len(names), len(names)):
        raise ValueError(f"graphs must be (T, F, F) with F = {len(names)} names, not {graphs.shape}.")
    target_names = [str(t) for t in range(len(graphs))] if target_names is None else list(target_names)
    upper_i, upper_j = np.triu_indices(len(names), k=1)
    rows = []
    for name, graph in zip(target_names, graphs, strict=True):
        weights = graph[upper_i, upper_j]
        order = np.argsort(-weights, kind="stable")
        order = order[weights[order] > 0][:top]
        rows += [
            {
                "target": name,
                "rank": rank,
                "feature_a": names[upper_i[e]],
                "feature_b": names[upper_j[e]],
                "weight": float(weights[e]),
            }
            for rank, e in enumerate(order, start=1)
        ]
    return rows
