from __future__ import annotations

import numpy as np
import pytest

from soilcarbon_core.errors import InputError
from soilcarbon_training import clhs as clhs_module
from soilcarbon_training.clhs import _Annealer, _corr, _prepare, _strata, clhs, clhs_objective


def rank_strata(column: np.ndarray, s: int) -> np.ndarray:
    """Stratum of each value of a column of distinct values, from its rank alone: the k-th quantile edge
    sits at sorted position k (P - 1) / s, so rank r lies in stratum min(s - 1, floor(r s / (P - 1)))."""
    rank = np.argsort(np.argsort(column))
    return np.minimum(s - 1, rank * s // (column.size - 1))


def uniforms(p: int, f: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(p, f))


def correlated(p: int, rho: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], p)


def random_objectives(x: np.ndarray, size: int, draws: int, weights=(1.0, 0.5)) -> np.ndarray:
    rng = np.random.default_rng(99)
    return np.array(
        [clhs_objective(x, rng.choice(len(x), size, replace=False), weights) for _ in range(draws)]
    )


def test_strata_are_the_quantile_ranks():
    x = np.column_stack([uniforms(1000, 1, 0)[:, 0], np.exp(np.arange(1000) / 100.0)])
    for s in (7, 20, 37, 999):  # 999 = 27 * 37: edges of s = 37 and 999 fall on data values
        strata = _strata(_prepare(x), s)
        for j in range(2):
            np.testing.assert_array_equal(strata[:, j], rank_strata(x[:, j], s))


def test_objective_counts_strata_and_correlations_by_hand():
    x = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, 1.0], [3.0, 2.0]])
    # Two strata per covariate: {0, 1} and {2, 3} for both columns; sites 0 and 1 share the low stratum
    # of x0 but not of x1, so eta = [[2, 1], [0, 1]] and O1 = 1 + 0 + 1 + 0.
    assert clhs_objective(x, np.array([0, 1]), (1.0, 0.0)) == 2.0
    assert clhs_objective(x, np.array([0, 3]), (1.0, 0.0)) == 0.0
    # Two sites are perfectly (anti-)correlated: C_01 = +1 for sites 0 and 3; T_01 = 0.4 (by hand).
    t01 = np.corrcoef(x.T)[0, 1]
    assert clhs_objective(x, np.array([0, 3]), (0.0, 1.0)) == pytest.approx(2 * (1.0 - t01))
    assert clhs_objective(x, np.array([0, 1, 2, 3]), (0.0, 1.0)) == pytest.approx(0.0, abs=1e-12)


def test_incremental_moves_match_the_objective_from_scratch():
    x = correlated(300, 0.5, 1)
    x = np.column_stack([x, np.round(uniforms(300, 1, 2)[:, 0] * 5)])  # tied values: tied strata edges
    data, rng, s = _prepare(x), np.random.default_rng(3), 25
    pool = rng.permutation(300)
    state = _Annealer(data, pool, s, _strata(data, s), _corr(data), 1.0, 0.7)
    for _ in range(40):
        out_pos, in_pos = int(rng.integers(0, s)), rng.integers(s, 300, size=4)
        objectives, o1 = state.propose(out_pos, in_pos)
        for k, pos in enumerate(in_pos):
            moved = pool[:s].copy()
            moved[out_pos] = pool[pos]
            assert objectives[k] == pytest.approx(clhs_objective(x, moved, (1.0, 0.7)), abs=1e-9)
            assert o1[k] == clhs_objective(x, moved, (1.0, 0.0))
        state.commit(out_pos, int(in_pos[1]), float(objectives[1]), int(o1[1]))
        assert state.objective == pytest.approx(clhs_objective(x, pool[:s], (1.0, 0.7)), abs=1e-9)


def test_one_dimensional_grid_gets_one_site_per_decile():
    x = np.arange(100.0)[:, None]
    idx = clhs(x, 10, iterations=2000, seed=4)
    np.testing.assert_array_equal(np.bincount(idx // 10, minlength=10), np.ones(10))
    assert clhs_objective(x, idx) == 0.0


def test_independent_uniforms_fill_every_stratum_far_better_than_random():
    x = uniforms(2000, 2, 5)
    idx = clhs(x, 20, iterations=3000, seed=0)
    assert clhs_objective(x, idx) < random_objectives(x, 20, 50).mean() / 3
    for j in range(2):
        np.testing.assert_array_equal(np.bincount(rank_strata(x[:, j], 20)[idx], minlength=20), np.ones(20))
    # The best sample seen is returned: never worse than the random start (iterations=0, same seed).
    assert clhs_objective(x, idx) <= clhs_objective(x, clhs(x, 20, iterations=0, seed=0))


def test_the_best_sample_seen_is_returned_not_the_last(monkeypatch):
    # One candidate per move and a tiny objective scale against T: a random walk over samples, whose
    # last state is as bad as a random sample (mean O1 about 14.5 here) but whose best is much better.
    monkeypatch.setattr(clhs_module, "CANDIDATES_PER_MOVE", 1)
    x = uniforms(300, 1, 12)
    best, start = [], []
    for seed in range(8):
        best.append(clhs_objective(x, clhs(x, 20, iterations=300, weights=(1e-3, 0.0), seed=seed)))
        start.append(clhs_objective(x, clhs(x, 20, iterations=0, seed=seed)))
    assert all(b <= s for b, s in zip(best, start, strict=True))
    assert np.mean(best) < 0.4 * np.mean(start)


def test_correlated_covariates_keep_their_correlation():
    x = correlated(3000, 0.8, 6)
    idx = clhs(x, 30, iterations=3000, seed=1)
    assert abs(np.corrcoef(x[idx].T)[0, 1] - 0.8) < 0.1
    target = np.corrcoef(x.T)[0, 1]
    rng = np.random.default_rng(7)
    random_gaps = [
        abs(np.corrcoef(x[rng.choice(3000, 30, replace=False)].T)[0, 1] - target) for _ in range(50)
    ]
    assert abs(np.corrcoef(x[idx].T)[0, 1] - target) < np.median(random_gaps)


def test_new_sites_avoid_the_stratum_the_fixed_sites_fill():
    x = uniforms(1000, 2, 8)
    fixed = np.argsort(x[:, 0])[[0, 3, 7, 12, 20]]  # all in the lowest of the 20 strata of x0 (50 wide)
    idx = clhs(x, 15, fixed=fixed, iterations=3000, seed=2)
    assert idx.dtype == np.int64 and idx.shape == (15,)
    assert np.unique(idx).size == 15 and not np.isin(idx, fixed).any()
    x0_new = np.bincount(rank_strata(x[:, 0], 20)[idx], minlength=20)
    assert x0_new[0] == 0 and x0_new.max() == 1  # 15 distinct strata among the 19 free ones
    x1_all = np.bincount(rank_strata(x[:, 1], 20)[np.concatenate([fixed, idx])], minlength=20)
    np.testing.assert_array_equal(x1_all, np.ones(20))


def test_choosing_every_free_candidate_returns_them_all():
    x = uniforms(30, 2, 9)
    fixed = np.array([4, 17, 2])
    np.testing.assert_array_equal(clhs(x, 27, fixed=fixed, seed=3), np.setdiff1d(np.arange(30), fixed))


def test_seeded_and_seed_dependent():
    x = uniforms(500, 3, 10)
    a = clhs(x, 12, iterations=500, seed=11)
    np.testing.assert_array_equal(a, clhs(x, 12, iterations=500, seed=11))
    assert not np.array_equal(a, clhs(x, 12, iterations=500, seed=12))


def test_missing_and_constant_columns():
    x = uniforms(400, 2, 11)
    holes = x.copy()
    holes[::7, 1] = np.nan
    imputed = holes.copy()
    imputed[::7, 1] = np.median(x[np.arange(400) % 7 != 0, 1])
    useless = np.column_stack([holes, np.full(400, np.nan), np.full(400, 2.5)])
    idx = clhs(useless, 10, iterations=500, seed=5)
    # NaN is the column median, and all-NaN or constant columns change nothing.
    np.testing.assert_array_equal(idx, clhs(imputed, 10, iterations=500, seed=5))
    assert np.isfinite(clhs_objective(useless, idx))
    assert clhs_objective(useless, idx) == pytest.approx(clhs_objective(imputed, idx), abs=1e-12)


@pytest.mark.parametrize(
    ("covariates", "n", "fixed", "problem"),
    [
        (uniforms(20, 2, 0), 0, None, "at least 1"),
        (uniforms(20, 2, 0), 18, np.array([0, 1, 2]), "among only 20 candidates"),
        (uniforms(20, 2, 0)[:, 0], 3, None, "2-D"),
        (uniforms(20, 2, 0), 3, np.array([0, 20]), "out of range"),
        (uniforms(20, 2, 0), 3, np.array([-1]), "out of range"),
        (uniforms(20, 2, 0), 3, np.array([5, 6, 5]), "more than once"),
        (np.column_stack([np.ones(20), np.full(20, np.nan)]), 3, None, "No covariate varies"),
        (np.array([[0.0, 1.0], [np.inf, 2.0]]), 1, None, "infinite"),
    ],
)
def test_bad_input_is_named(covariates, n, fixed, problem):
    with pytest.raises(InputError, match=problem) as error:
        clhs(covariates, n, fixed=fixed)
    assert error.value.hint
