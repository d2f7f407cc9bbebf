"""Per-target feature graphs: planted structure, the weight formula against scipy, k limit, NaN tolerance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from soilcarbon_core.ghg.graphs import feature_graphs, graph_edges_table, spearman_matrix


def planted(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features 0, 1 share a driver s of target 0; features 2, 3 share a driver w of target 1;
    feature 4 is noise; feature 5 is constant."""
    rng = np.random.default_rng(seed)
    s, w = rng.normal(size=(2, n))
    noisy = lambda driver: driver + 0.3 * rng.normal(size=n)  # noqa: E731
    x = np.column_stack([noisy(s), noisy(s), noisy(w), noisy(w), rng.normal(size=n), np.full(n, 2.0)])
    y = np.column_stack([np.exp(s) + 0.2 * rng.normal(size=n), np.tanh(w) + 0.2 * rng.normal(size=n)])
    return x, y


def test_planted_structure_is_recovered():
    x, y = planted()
    graphs = feature_graphs(x, y, k=2)
    assert graphs.shape == (2, 6, 6)
    off_diagonal = ~np.eye(6, dtype=bool)
    # Each graph holds exactly its target's pair, strongly; 0 and 1 have nothing to do with target 1.
    assert graphs[0, 0, 1] > 0.7 and graphs[1, 2, 3] > 0.7
    assert np.count_nonzero(graphs[0][off_diagonal]) == np.count_nonzero(graphs[1][off_diagonal]) == 2
    assert graphs[1, 0, 1] == 0.0 and graphs[0, 2, 3] == 0.0
    # Without the significance bar, noise correlations give weak edges, e.g. 0-1 in target 1's graph.
    assert 0.0 < feature_graphs(x, y, k=2, significance=0.0)[1, 0, 1] < 0.2


def test_weight_formula_by_hand_against_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 3))
    x[:, 1] += x[:, 0]
    y = (x[:, 0] + x[:, 1] - 0.5 * x[:, 2] + 0.3 * rng.normal(size=12))[:, None]
    graphs = feature_graphs(x, y, k=2, significance=0.0)
    rho = lambda a, b: abs(spearmanr(a, b).statistic)  # noqa: E731
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        expected = rho(x[:, i], x[:, j]) * math.sqrt(rho(x[:, i], y[:, 0]) * rho(x[:, j], y[:, 0]))
        assert graphs[0, i, j] == pytest.approx(expected, rel=1e-12)
        assert graphs[0, j, i] == graphs[0, i, j]
    np.testing.assert_array_equal(np.diag(graphs[0]), np.ones(3))


def test_k_limit_symmetry_and_self_loops_against_a_brute_force_construction():
    rng = np.random.default_rng(2)
    mix = rng.normal(size=(8, 8))
    x = rng.normal(size=(300, 8)) @ mix
    y = x @ rng.normal(size=(8, 2)) + rng.normal(size=(300, 2))
    k = 2
    graphs = feature_graphs(x, y, k=k, significance=0.0)
    for t in range(2):
        rho_x = np.abs(spearmanr(x).statistic)
        rho_y = np.array([abs(spearmanr(x[:, f], y[:, t]).statistic) for f in range(8)])
        weight = rho_x * np.sqrt(np.outer(rho_y, rho_y))
        np.fill_diagonal(weight, 0.0)
        top = [set(np.argsort(-weight[i])[:k]) for i in range(8)]
        graph = graphs[t]
        np.testing.assert_array_equal(graph, graph.T)
        np.testing.assert_array_equal(np.diag(graph), np.ones(8))
        for i in range(8):
            for j in range(8):
                if i != j:
                    chosen = j in top[i] or i in top[j]
                    assert graph[i, j] == pytest.approx(weight[i, j] if chosen else 0.0, rel=1e-12)
        assert all((graph[i] > 0).sum() - 1 >= k for i in range(8))  # own k, plus those that chose i


def test_missing_values_use_pairwise_complete_rows():
    x, y = planted(n=300)
    rng = np.random.default_rng(3)
    x[rng.random(x.shape) < 0.2] = np.nan
    y[rng.random(y.shape) < 0.1] = np.nan
    x[:, 4] = np.nan  # a feature never observed
    columns = np.hstack([x, y])
    rho = spearman_matrix(columns)
    expected = spearmanr(columns[:, 0], columns[:, 6], nan_policy="omit").statistic
    assert rho[0, 6] == pytest.approx(expected, rel=1e-12)
    expected = spearmanr(columns[:, 1], columns[:, 2], nan_policy="omit").statistic
    assert rho[2, 1] == pytest.approx(expected, rel=1e-12)
    assert rho[4, 0] == 0.0 and rho[5, 0] == 0.0  # never observed, constant
    graphs = feature_graphs(x, y, k=2)
    assert np.isfinite(graphs).all()
    assert graphs[0, 0, 1] > 0.5 and graphs[1, 2, 3] > 0.5 and graphs[1, 0, 1] == 0.0


def test_edges_table_lists_the_strongest_edges_per_target():
    graphs = np.zeros((2, 3, 3))
    graphs[:, [0, 1, 2], [0, 1, 2]] = 1.0
    graphs[0, 0, 1] = graphs[0, 1, 0] = 0.2
    graphs[0, 1, 2] = graphs[0, 2, 1] = 0.6
    graphs[1, 0, 2] = graphs[1, 2, 0] = 0.4
    rows = graph_edges_table(graphs, ["soc", "clay", "ph"], target_names=["n2o", "co2"], top=5)
    assert rows == [
        {"target": "n2o", "rank": 1, "feature_a": "clay", "feature_b": "ph", "weight": 0.6},
        {"target": "n2o", "rank": 2, "feature_a": "soc", "feature_b": "clay", "weight": 0.2},
        {"target": "co2", "rank": 1, "feature_a": "soc", "feature_b": "ph", "weight": 0.4},
    ]
    assert len(graph_edges_table(graphs, ["soc", "clay", "ph"], top=1)) == 2
    with pytest.raises(ValueError):
        graph_edges_table(graphs, ["soc", "clay"])
