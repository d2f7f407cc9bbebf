from __future__ import annotations

import numpy as np
import pytest

from soilcarbon_core.errors import InputError
from soilcarbon_training.folds import (
    METRES_PER_DEGREE,
    block_ids,
    group_folds,
    random_folds,
    spatial_block_folds,
    validation_split,
)


def clustered_points(n_clusters: int = 60, seed: int = 3, extent: float = 20_000.0) -> np.ndarray:
    """Projected points in clusters of very different sizes (1 to 80 points), so blocks are uneven."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, extent, (n_clusters, 2))
    sizes = rng.integers(1, 81, n_clusters)
    return np.concatenate([c + rng.normal(0, 300, (s, 2)) for c, s in zip(centres, sizes, strict=True)])


def assert_partition(folds, n: int) -> None:
    tests = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(n))  # every index in exactly one test fold
    for train, test in folds:
        np.testing.assert_array_equal(train, np.setdiff1d(np.arange(n), test))
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_random_folds_partition_balance_and_determinism():
    folds = random_folds(103, n_folds=5, seed=4)
    assert_partition(folds, 103)
    assert sorted(len(test) for _, test in folds) == [20, 20, 21, 21, 21]
    again = random_folds(103, n_folds=5, seed=4)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = random_folds(103, n_folds=5, seed=5)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_random_folds_reject_more_folds_than_samples():
    with pytest.raises(InputError):
        random_folds(3, n_folds=5)


def test_projected_blocks_are_whole_and_folds_balanced():
    coords = clustered_points()
    block = 2_000.0
    folds = spatial_block_folds(coords, geographic=False, block_size_m=block, n_folds=5, seed=1)
    assert_partition(folds, len(coords))
    fold_of = np.empty(len(coords), dtype=int)
    for k, (_, test) in enumerate(folds):
        fold_of[test] = k
    # Blocks recomputed from their definition: each lies in a single fold.
    cells = np.floor(coords / block).astype(int)
    _, cell = np.unique(cells, axis=0, return_inverse=True)
    cell = cell.reshape(-1)
    for c in np.unique(cell):
        assert np.unique(fold_of[cell == c]).size == 1
    labels = block_ids(coords, geographic=False, block_size_m=block)
    pairs = np.unique(np.column_stack([cell, labels]), axis=0)
    assert len(pairs) == np.unique(cell).size == np.unique(labels).size  # the same partition
    sizes = np.array([len(test) for _, test in folds])
    assert sizes.max() - sizes.min() <= np.bincount(cell).max()
    assert sizes.min() > 0.8 * len(coords) / 5


def test_spatial_folds_are_deterministic_given_the_seed():
    coords = clustered_points()
    first = spatial_block_folds(coords, geographic=False, block_size_m=2_000.0, seed=7)
    second = spatial_block_folds(coords, geographic=False, block_size_m=2_000.0, seed=7)
    other = spatial_block_folds(coords, geographic=False, block_size_m=2_000.0, seed=8)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, second, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))


def block_extents(lonlat: np.ndarray, block: float) -> tuple[np.ndarray, np.ndarray, int]:
    """North-south and east-west extent (metres) of the points of each geographic block, and the count."""
    labels = block_ids(lonlat, geographic=True, block_size_m=block)
    order = np.argsort(labels, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)
    north_south, east_west = [], []
    for members in groups:
        lon, lat = lonlat[members, 0], lonlat[members, 1]
        north_south.append(np.ptp(lat) * METRES_PER_DEGREE)
        east_west.append(np.ptp(lon) * np.cos(np.radians(lat.mean())) * METRES_PER_DEGREE)
    return np.array(north_south), np.array(east_west), len(groups)


def test_geographic_blocks_are_about_block_size_on_the_ground():
    rng = np.random.default_rng(0)
    block = 100_000.0
    # Over Africa: no block exceeds the block size; their number is the area over block^2 (equal area).
    lonlat = np.column_stack([rng.uniform(-15, 45, 60_000), rng.uniform(-35, 35, 60_000)])
    north_south, east_west, count = block_extents(lonlat, block)
    assert north_south.max() <= block and east_west.max() <= 1.02 * block
    radius = METRES_PER_DEGREE * 180 / np.pi
    area = np.radians(60) * (np.sin(np.radians(35)) - np.sin(np.radians(-35))) * radius**2
    assert count == pytest.approx(area / block**2, rel=0.03)
    # Densely sampled at 30 degrees north (longitude degrees 13 % shorter): blocks are square, 100 km.
    lonlat = np.column_stack([rng.uniform(20, 26, 40_000), rng.uniform(27, 33, 40_000)])
    north_south, east_west, _ = block_extents(lonlat, block)
    assert 0.97 * block < north_south.max() <= block
    assert 0.97 * block < east_west.max() <= 1.02 * block


def test_geographic_blocks_wrap_at_the_antimeridian_and_longitude_period():
    lonlat = np.array([[179.99, 0.1], [-180.0, 0.1], [180.0, 0.1], [-179.99, 0.1], [10.0, 0.1], [370.0, 0.1]])
    labels = block_ids(lonlat, geographic=True, block_size_m=100_000.0)
    assert labels[1] == labels[2] == labels[3]  # -180 and 180 are the same meridian
    assert labels[0] != labels[3]  # the column boundary lies on the antimeridian
    assert labels[4] == labels[5]


def test_too_few_blocks_for_the_folds():
    coords = np.array([[0.0, 0.0], [10.0, 10.0], [5000.0, 5000.0]])
    with pytest.raises(InputError, match="2 block"):
        spatial_block_folds(coords, geographic=False, block_size_m=1000.0, n_folds=3)


def test_random_validation_split():
    train = np.arange(0, 400, 2)
    coords = np.zeros((400, 2))
    fit, val = validation_split(train, coords, geographic=False, block_size_m=None, fraction=0.15, seed=2)
    assert val.size == 30 and fit.size == 170
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, val])), train)
    again = validation_split(train, coords, geographic=False, block_size_m=None, fraction=0.15, seed=2)
    np.testing.assert_array_equal(again[1], val)


def test_spatial_validation_split_takes_whole_blocks():
    coords = clustered_points()
    _, test = spatial_block_folds(coords, geographic=False, block_size_m=2_000.0)[0]
    train = np.setdiff1d(np.arange(len(coords)), test)
    fit, val = validation_split(train, coords, geographic=False, block_size_m=1_000.0, fraction=0.15, seed=3)
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, val])), train)
    assert np.intersect1d(fit, val).size == 0
    cells = {tuple(c) for c in np.floor(coords[val] / 1_000.0).astype(int)}
    assert not cells & {tuple(c) for c in np.floor(coords[fit] / 1_000.0).astype(int)}
    assert 0.1 * train.size < val.size <= 0.15 * train.size


def test_spatial_validation_split_needs_two_blocks():
    coords = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    with pytest.raises(InputError, match="single block"):
        validation_split(np.arange(3), coords, geographic=False, block_size_m=1000.0)


def test_group_folds_keep_groups_whole_and_balance_sample_counts():
    rng = np.random.default_rng(11)
    sizes = rng.integers(1, 30, 107)
    ids = rng.choice(np.arange(1000, 5000), 107, replace=False)  # sparse, unsorted study numbers
    groups = rng.permutation(np.repeat(ids, sizes))
    folds = group_folds(groups, n_folds=5, seed=0)
    assert_partition(folds, groups.size)
    for _, test in folds:  # a test fold holds all or none of each group's samples
        for g in np.unique(groups[test]):
            assert np.count_nonzero(groups[test] == g) == np.count_nonzero(groups == g)
    test_sizes = np.array([len(test) for _, test in folds])
    assert test_sizes.max() - test_sizes.min() <= sizes.max()
    again = group_folds(groups, n_folds=5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = group_folds(groups, n_folds=5, seed=1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_group_folds_of_block_labels_are_the_spatial_block_folds():
    coords = clustered_points()
    labels = block_ids(coords, geographic=False, block_size_m=2_000.0)
    spatial = spatial_block_folds(coords, geographic=False, block_size_m=2_000.0, n_folds=5, seed=3)
    grouped = group_folds(labels, n_folds=5, seed=3)
    for (train_a, test_a), (train_b, test_b) in zip(spatial, grouped, strict=True):
        np.testing.assert_array_equal(test_a, test_b)
        np.testing.assert_array_equal(train_a, train_b)


def test_group_folds_need_as_many_groups_as_folds():
    with pytest.raises(InputError, match="3 group"):
        group_folds(np.array([1, 1, 2, 3, 3]), n_folds=5)
    with pytest.raises(InputError):
        group_folds(np.zeros((2, 2)))
