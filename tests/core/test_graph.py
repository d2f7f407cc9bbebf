"""The three-relation soil graph against brute-force numpy versions of its definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.decomposition import PCA

from soilcarbon_core.errors import Cancelled, InputError
from soilcarbon_core.graph import (
    EARTH_RADIUS_M,
    RELATIONS,
    GraphParams,
    ReferenceGraph,
    Relation,
    get_workers,
    neighbours,
    set_workers,
)
from soilcarbon_core.graph.neighbours import smallest

N = 300


# Brute force -----------------------------------------------------------------------------------------------


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) pairwise Euclidean distances."""
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))


def haversine(lonlat_a: np.ndarray, lonlat_b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) great-circle distances in metres on the sphere of radius EARTH_RADIUS_M."""
    lon1, lat1 = np.radians(lonlat_a).T[:, :, None]
    lon2, lat2 = np.radians(lonlat_b).T[:, None, :]
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(h))


def brute_pairs(
    spatial: np.ndarray,
    k: int,
    *,
    itself: bool,
    score: np.ndarray | None = None,
    candidates: int | None = None,
    radius: float | None = None,
    usable_src: np.ndarray | None = None,
    usable_dst: np.ndarray | None = None,
) -> set[tuple[int, int]]:
    """Directed (src, dst) pairs straight from the definitions.

    ``spatial[dst, src]`` is the ground distance, ``score[dst, src]`` the ranking within candidates
    (None: plain kNN by ``spatial``); ``itself``: rows and columns are the same nodes.
    """
    pairs = set()
    for dst in range(spatial.shape[0]):
        if usable_dst is not None and not usable_dst[dst]:
            continue
        d = spatial[dst].astype(float)
        if itself:
            d[dst] = np.inf
        if usable_src is not None:
            d[~usable_src] = np.inf
        order = np.argsort(d, kind="stable")
        order = order[np.isfinite(d[order])]
        if candidates is not None:
            order = order[:candidates]
        if radius is not None:
            order = order[d[order] <= radius]
        if score is not None:
            order = order[np.argsort(score[dst, order], kind="stable")]
        pairs.update((int(src), dst) for src in order[:k])
    return pairs


def symmetric(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    return pairs | {(d, s) for s, d in pairs}


def edge_set(relation: Relation) -> set[tuple[int, int]]:
    return set(zip(relation.edge_index[0].tolist(), relation.edge_index[1].tolist(), strict=True))


def column(relation: Relation, name: str) -> np.ndarray:
    return relation.edge_attr[:, relation.attr_names.index(name)]


def standardised(features: np.ndarray) -> np.ndarray:
    return (features - features.mean(axis=0)) / features.std(axis=0)


# Data -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nodes():
    """300 projected nodes over 2 km, 6 spectral bands, elevation and slope; all random (no ties)."""
    rng = np.random.default_rng(42)
    xy = rng.uniform(0, 2000, (N, 2))
    spectral = rng.normal(size=(N, 6)) * [1, 10, 100, 0.1, 5, 2]
    elevation = 300 + xy[:, 0] * 0.05 + rng.normal(0, 10, N)
    slope = rng.uniform(0, 20, N)
    return xy, spectral, elevation, slope


def build(nodes, **params) -> ReferenceGraph:
    xy, spectral, elevation, _ = nodes
    return ReferenceGraph(
        xy, geographic=False, params=GraphParams(**params), spectral=spectral, elevation=elevation
    )


# Spatial ----------------------------------------------------------------------------------------------------


def test_spatial_knn_matches_brute_force_projected(nodes):
    xy = nodes[0]
    graph = build(nodes, k_spatial=7)
    relation = graph.relations["spatial"]
    distance = euclidean(xy, xy)
    assert edge_set(relation) == symmetric(brute_pairs(distance, 7, itself=True))
    src, dst = relation.edge_index
    np.testing.assert_allclose(column(relation, "distance_m"), distance[dst, src], rtol=1e-6)
    assert relation.attr_names == ("distance_m",)


def test_geographic_distance_paris_london():
    paris, london = (2.3522, 48.8566), (-0.1276, 51.5072)
    graph = ReferenceGraph(np.array([paris, london]), geographic=True, params=GraphParams(k_spatial=1))
    relation = graph.relations["spatial"]
    assert edge_set(relation) == {(0, 1), (1, 0)}
    metres = column(relation, "distance_m")
    expected = haversine(np.array([paris]), np.array([london]))[0, 0]
    np.testing.assert_allclose(metres, expected, rtol=1e-6)
    assert 343_000 < metres[0] < 344_000  # the published ~343.5 km


def test_geographic_knn_matches_haversine_brute_force():
    rng = np.random.default_rng(1)
    # Global spread, a cluster across the antimeridian and one at the pole: where planar degrees go wrong.
    lon = np.concatenate(
        [rng.uniform(-180, 180, 200), rng.uniform(179, 181, 50) - 360 * (rng.random(50) < 0.5)]
    )
    lat = np.concatenate([rng.uniform(-80, 80, 200), rng.uniform(-5, 5, 50)])
    polar = np.column_stack([rng.uniform(-180, 180, 50), rng.uniform(88, 90, 50)])
    lonlat = np.vstack([np.column_stack([lon, lat]), polar])
    graph = ReferenceGraph(lonlat, geographic=True, params=GraphParams(k_spatial=6))
    relation = graph.relations["spatial"]
    distance = haversine(lonlat, lonlat)
    assert edge_set(relation) == symmetric(brute_pairs(distance, 6, itself=True))
    src, dst = relation.edge_index
    np.testing.assert_allclose(column(relation, "distance_m"), distance[dst, src], rtol=1e-5)
    queries = np.column_stack([rng.uniform(-180, 180, 40), rng.uniform(-90, 90, 40)])
    attached = graph.attach(queries)["spatial"]
    to_queries = haversine(queries, lonlat)
    assert edge_set(attached) == brute_pairs(to_queries, 6, itself=False)
    src, dst = attached.edge_index
    np.testing.assert_allclose(column(attached, "distance_m"), to_queries[dst, src], rtol=1e-5)


def test_geographic_elevation_neighbourhood_radius_is_great_circle():
    rng = np.random.default_rng(11)
    lonlat = np.column_stack([rng.uniform(5, 6, N), rng.uniform(45, 46, N)])
    elevation = rng.uniform(200, 2000, N)
    params = GraphParams(k_elevation=4, candidates=15, elevation_radius_m=5_000.0)
    graph = ReferenceGraph(lonlat, geographic=True, params=params, elevation=elevation)
    distance, dz = haversine(lonlat, lonlat), np.abs(elevation[:, None] - elevation)
    expected = brute_pairs(distance, 4, itself=True, score=dz, candidates=15, radius=5_000.0)
    assert edge_set(graph.relations["elevation"]) == symmetric(expected)
    assert len(expected) < len(brute_pairs(distance, 4, itself=True, score=dz, candidates=15))  # radius binds
    queries = np.column_stack([rng.uniform(5, 6, 30), rng.uniform(45, 46, 30)])
    q_elevation = rng.uniform(200, 2000, 30)
    attached = graph.attach(queries, elevation=q_elevation)["elevation"]
    expected = brute_pairs(
        haversine(queries, lonlat),
        4,
        itself=False,
        score=np.abs(q_elevation[:, None] - elevation),
        candidates=15,
        radius=5_000.0,
    )
    assert edge_set(attached) == expected


@pytest.mark.parametrize("geographic", [False, True])
def test_max_distance_cuts_spatial_edges(geographic):
    rng = np.random.default_rng(2)
    if geographic:
        coords = np.column_stack([rng.uniform(5, 6, N), rng.uniform(45, 46, N)])
        distance, limit = haversine(coords, coords), 6_000.0
    else:
        coords = rng.uniform(0, 2000, (N, 2))
        distance, limit = euclidean(coords, coords), 120.0
    graph = ReferenceGraph(
        coords, geographic=geographic, params=GraphParams(k_spatial=8, max_distance_m=limit)
    )
    relation = graph.relations["spatial"]
    expected = symmetric(brute_pairs(distance, 8, itself=True, radius=limit))
    assert edge_set(relation) == expected
    assert 0 < len(expected) < len(symmetric(brute_pairs(distance, 8, itself=True)))
    assert column(relation, "distance_m").max() <= limit


# Invariants -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spectral_radius_m", [None, 400.0])
def test_relations_are_symmetric_without_loops_or_duplicates(nodes, spectral_radius_m):
    xy, spectral, elevation, slope = nodes
    graph = ReferenceGraph(
        xy,
        geographic=False,
        params=GraphParams(spectral_radius_m=spectral_radius_m, elevation_radius_m=500.0),
        spectral=spectral,
        elevation=elevation,
        slope=slope,
    )
    assert tuple(graph.relations) == RELATIONS and graph.skipped == {}
    for relation in graph.relations.values():
        src, dst = relation.edge_index
        assert relation.edge_index.dtype == np.int64 and relation.edge_attr.dtype == np.float32
        assert (src != dst).all()
        keys = dst * N + src
        assert (np.diff(keys) > 0).all()  # sorted by (dst, src), hence no duplicates
        reverse = np.searchsorted(keys, src * N + dst)
        assert (keys[reverse] == src * N + dst).all()  # every j -> i has its i -> j ...
        np.testing.assert_array_equal(relation.edge_attr[reverse], relation.edge_attr)  # ... with equal attrs
        assert np.isfinite(relation.edge_attr).all()
    assert graph.relations["elevation"].attr_names == (
        "elevation_difference_m",
        "distance_m",
        "slope_difference",
    )


def test_duplicate_coordinates_are_neighbours_at_distance_zero():
    rng = np.random.default_rng(3)
    places = rng.uniform(0, 10_000, (30, 2))
    copies = np.r_[np.full(25, 3), np.full(4, 1), 12]  # one place sampled 12 times: more than k + 1
    group = np.repeat(np.arange(30), copies)
    xy = places[group]
    elevation = rng.normal(100, 5, 30)[group]  # duplicates share elevation too
    spectral = rng.normal(size=(group.size, 3))
    params = GraphParams(k_spatial=8, k_elevation=4, candidates=16)
    graph = ReferenceGraph(xy, geographic=False, params=params, spectral=spectral, elevation=elevation)
    again = ReferenceGraph(xy, geographic=False, params=params, spectral=spectral, elevation=elevation)
    for name, relation in graph.relations.items():
        src, dst = relation.edge_index
        assert (src != dst).all() and np.isfinite(relation.edge_attr).all()
        np.testing.assert_array_equal(relation.edge_index, again.relations[name].edge_index)
        np.testing.assert_array_equal(relation.edge_attr, again.relations[name].edge_attr)
    spatial = graph.relations["spatial"]
    src, dst = spatial.edge_index
    same_place = group[src] == group[dst]
    np.testing.assert_array_equal(column(spatial, "distance_m")[same_place], 0)
    assert (column(spatial, "distance_m")[~same_place] > 0).all()
    for node in range(xy.shape[0]):
        mates = set(np.flatnonzero(group == group[node]).tolist()) - {node}
        incoming = set(src[dst == node].tolist())
        if len(mates) <= 8:
            assert mates <= incoming  # every duplicate is among the 8 nearest
        else:
            assert len(incoming & mates) >= 8  # the 8 nearest are all duplicates
    # Elevation: duplicates have |dz| = 0, so a node with 11 duplicates among its candidates picks 4 of them.
    elevation_relation = graph.relations["elevation"]
    elev_src, elev_dst = elevation_relation.edge_index
    for node in np.flatnonzero(copies[group] == 12):
        assert (group[elev_src[elev_dst == node]] == group[node]).sum() >= 4
    same_place = group[elev_src] == group[elev_dst]
    np.testing.assert_array_equal(column(elevation_relation, "elevation_difference_m")[same_place], 0)


def test_worker_count_does_not_change_the_graph(nodes):
    default = build(nodes, spectral_radius_m=300.0)
    previous = set_workers(1)
    try:
        assert get_workers() == 1
        single = build(nodes, spectral_radius_m=300.0)
    finally:
        set_workers(previous)
    for name in RELATIONS:
        np.testing.assert_array_equal(default.relations[name].edge_index, single.relations[name].edge_index)


@pytest.mark.parametrize("k", [20, 30, 59, 75])  # from 30 (half the 60 points) the tree is not used
@pytest.mark.parametrize("bound", [np.inf, 0.3])
def test_searching_a_small_tree_by_sorting_gives_the_trees_answers(k, bound):
    rng = np.random.default_rng(k)
    points, queries = rng.uniform(0, 1, (60, 3)), rng.uniform(0, 1, (500, 3))
    search = neighbours.tree(points)
    dist, idx = neighbours._query(search, queries, k, bound)
    expected_dist, expected_idx = search.query(queries, k=k, distance_upper_bound=bound)
    np.testing.assert_array_equal(idx, expected_idx)  # missing neighbours: index n, distance inf
    np.testing.assert_allclose(dist, expected_dist, rtol=1e-12)


# Spectral ---------------------------------------------------------------------------------------------------


def test_spectral_global_knn_in_the_pca_space_of_wide_features():
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 1000, (N, 2))
    latent = rng.normal(size=(N, 3))
    wide = latent @ rng.normal(size=(3, 12)) + 0.3 * rng.normal(size=(N, 12))
    wide = np.column_stack([wide, np.full(N, 7.5)])  # a constant band: dropped, never a NaN
    graph = ReferenceGraph(
        xy, geographic=False, params=GraphParams(k_spectral=5, spectral_components=4), spectral=wide
    )
    space = graph.spectral_space
    assert space.dims == 4 and space.components.shape == (12, 4) and not space.informative[-1]
    reference = PCA(n_components=4, svd_solver="full").fit(standardised(wide[:, :12]))
    np.testing.assert_allclose(np.abs(space.components), np.abs(reference.components_.T), atol=1e-8)
    np.testing.assert_allclose(space.explained_variance_ratio, reference.explained_variance_ratio_, rtol=1e-8)
    largest = np.abs(space.components).argmax(axis=0)
    assert (space.components[largest, np.arange(4)] > 0).all()  # deterministic sign
    scores = reference.transform(standardised(wide[:, :12]))
    relation = graph.relations["spectral"]
    spectral_distance = euclidean(scores, scores)
    assert edge_set(relation) == symmetric(brute_pairs(spectral_distance, 5, itself=True))
    src, dst = relation.edge_index
    np.testing.assert_allclose(column(relation, "spectral_distance"), spectral_distance[dst, src], rtol=1e-5)
    np.testing.assert_allclose(column(relation, "distance_m"), euclidean(xy, xy)[dst, src], rtol=1e-6)


def test_spectral_restricted_to_spatial_radius_matches_brute_force(nodes):
    xy, spectral = nodes[0], nodes[1]
    graph = build(nodes, k_spectral=4, spectral_radius_m=250.0, candidates=10)
    assert graph.spectral_space.components is None  # 6 bands <= 8 components: standardised only
    z = standardised(spectral)
    spatial = euclidean(xy, xy)
    expected = brute_pairs(spatial, 4, itself=True, score=euclidean(z, z), candidates=10, radius=250.0)
    relation = graph.relations["spectral"]
    assert edge_set(relation) == symmetric(expected)
    assert column(relation, "distance_m").max() <= 250.0
    # The restriction binds: global spectral neighbours are mostly far away.
    assert len(expected - brute_pairs(euclidean(z, z), 4, itself=True)) > 0.8 * len(expected)


# Elevation --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("candidates", [20, N // 2])  # N // 2: the tree is searched by sorting
@pytest.mark.parametrize("radius", [None, 150.0])
def test_elevation_neighbours_have_the_smallest_height_differences(nodes, radius, candidates):
    xy, _, elevation, _ = nodes
    graph = build(nodes, k_elevation=5, candidates=candidates, elevation_radius_m=radius)
    dz = np.abs(elevation[:, None] - elevation[None, :])
    expected = brute_pairs(euclidean(xy, xy), 5, itself=True, score=dz, candidates=candidates, radius=radius)
    relation = graph.relations["elevation"]
    assert edge_set(relation) == symmetric(expected)
    src, dst = relation.edge_index
    np.testing.assert_allclose(column(relation, "elevation_difference_m"), dz[dst, src], rtol=1e-6)
    assert relation.attr_names == ("elevation_difference_m", "distance_m")


def test_elevation_with_slope_uses_the_scaled_score(nodes):
    xy, _, elevation, slope = nodes
    params = GraphParams(k_elevation=5, candidates=20, slope_weight=2.0)
    graph = ReferenceGraph(xy, geographic=False, params=params, elevation=elevation, slope=slope)
    assert graph.elevation_scale == pytest.approx(elevation.std())
    assert graph.slope_scale == pytest.approx(slope.std())
    score = (
        np.abs(elevation[:, None] - elevation) / elevation.std()
        + 2.0 * np.abs(slope[:, None] - slope) / slope.std()
    )
    expected = brute_pairs(euclidean(xy, xy), 5, itself=True, score=score, candidates=20)
    relation = graph.relations["elevation"]
    assert edge_set(relation) == symmetric(expected)
    src, dst = relation.edge_index
    np.testing.assert_allclose(
        column(relation, "slope_difference"), np.abs(slope[src] - slope[dst]), rtol=1e-6
    )
    without = brute_pairs(
        euclidean(xy, xy), 5, itself=True, score=np.abs(elevation[:, None] - elevation), candidates=20
    )
    assert expected != without  # the slope term changes the choice


def test_score_ties_go_to_the_nearer_candidate():
    # Integer DEM heights tie often; a tie across the k-th place must not depend on sorting internals.
    scores = np.array(
        [[3.0, 1.0, 2.0, 2.0, 2.0, 0.0], [5.0, 5.0, 5.0, 5.0, 5.0, 5.0], [0, 1, 2, 3, 4, np.inf]]
    )
    np.testing.assert_array_equal(np.sort(smallest(scores, 3), axis=1), [[1, 2, 5], [0, 1, 2], [0, 1, 2]])
    xy = np.column_stack([np.arange(10.0), np.zeros(10)])
    graph = ReferenceGraph(
        xy, geographic=False, params=GraphParams(k_elevation=2, candidates=9), elevation=np.full(10, 50.0)
    )
    src, dst = graph.relations["elevation"].edge_index
    assert set(src[dst == 0].tolist()) == {1, 2}  # all heights equal: the two nearest win


# Missing input ----------------------------------------------------------------------------------------------


def test_missing_inputs_skip_relations_with_reasons(nodes):
    xy = nodes[0]
    graph = ReferenceGraph(
        xy, geographic=False, params=GraphParams(), spectral=np.ones((N, 0)), elevation=np.full(N, np.nan)
    )
    assert list(graph.relations) == ["spatial"]
    assert graph.skipped["spectral"] == "no spectral features were given"
    assert "0 of 300" in graph.skipped["elevation"] and "finite elevation" in graph.skipped["elevation"]
    one = np.full(N, np.nan)
    one[7] = 12.0
    constant = np.ones((N, 2))
    graph = ReferenceGraph(xy, geographic=False, params=GraphParams(), spectral=constant, elevation=one)
    assert "1 of 300" in graph.skipped["elevation"]
    assert "constant" in graph.skipped["spectral"]
    assert set(graph.attach(xy[:3], elevation=[1.0, 2.0, 3.0])) == {"spatial"}
    single = ReferenceGraph(xy[:1], geographic=False, params=GraphParams(), elevation=[1.0])
    assert single.relations == {} and set(single.skipped) == set(RELATIONS)


def test_nan_rows_get_no_edges_and_the_rest_match_brute_force(nodes):
    xy, spectral, elevation, _ = nodes
    rng = np.random.default_rng(5)
    spectral, elevation = spectral.copy(), elevation.copy()
    no_spectrum = rng.choice(N, 30, replace=False)
    spectral[no_spectrum[:15], 2] = np.nan  # one NaN band is enough
    spectral[no_spectrum[15:]] = np.nan
    no_height = rng.choice(N, 40, replace=False)
    elevation[no_height] = np.nan
    params = GraphParams(k_spectral=4, k_elevation=4, candidates=12)
    graph = ReferenceGraph(xy, geographic=False, params=params, spectral=spectral, elevation=elevation)
    for name, missing in (("spectral", no_spectrum), ("elevation", no_height)):
        assert not np.isin(graph.relations[name].edge_index, missing).any()
        assert np.isfinite(graph.relations[name].edge_attr).all()
    assert np.isin(graph.relations["spatial"].edge_index, no_height).any()
    has_height = np.isfinite(elevation)
    dz = np.abs(elevation[:, None] - elevation)
    expected = brute_pairs(
        euclidean(xy, xy),
        4,
        itself=True,
        score=dz,
        candidates=12,
        usable_src=has_height,
        usable_dst=has_height,
    )
    assert edge_set(graph.relations["elevation"]) == symmetric(expected)
    has_spectrum = np.isfinite(spectral).all(axis=1)
    z = (spectral - spectral[has_spectrum].mean(axis=0)) / spectral[has_spectrum].std(axis=0)
    expected = brute_pairs(
        np.nan_to_num(euclidean(z, z), nan=np.inf),
        4,
        itself=True,
        usable_src=has_spectrum,
        usable_dst=has_spectrum,
    )
    assert edge_set(graph.relations["spectral"]) == symmetric(expected)

    queries = xy[:20] + 1.0
    attached = graph.attach(queries, spectral=spectral[:20], elevation=elevation[:20])
    assert not np.isin(attached["elevation"].edge_index[1], np.flatnonzero(~has_height[:20])).any()
    assert not np.isin(attached["elevation"].edge_index[0], no_height).any()
    assert not np.isin(attached["spectral"].edge_index[1], np.flatnonzero(~has_spectrum[:20])).any()


# Attach -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spectral_radius_m", [None, 300.0])
@pytest.mark.parametrize("candidates", [12, N // 2])  # N // 2: the tree is searched by sorting
def test_attach_matches_brute_force(nodes, spectral_radius_m, candidates):
    xy, spectral, elevation, _ = nodes
    rng = np.random.default_rng(6)
    q = 60
    queries = rng.uniform(0, 2000, (q, 2))
    q_spectral = rng.normal(size=(q, 6)) * [1, 10, 100, 0.1, 5, 2]
    q_elevation = 300 + queries[:, 0] * 0.05 + rng.normal(0, 10, q)
    params = GraphParams(
        k_spatial=5, k_spectral=4, spectral_radius_m=spectral_radius_m, k_elevation=3, candidates=candidates
    )
    graph = ReferenceGraph(xy, geographic=False, params=params, spectral=spectral, elevation=elevation)
    attached = graph.attach(queries, spectral=q_spectral, elevation=q_elevation)
    assert tuple(attached) == RELATIONS
    spatial = euclidean(queries, xy)  # [query, reference]
    mean, std = spectral.mean(axis=0), spectral.std(axis=0)
    spectral_distance = euclidean((q_spectral - mean) / std, (spectral - mean) / std)
    dz = np.abs(q_elevation[:, None] - elevation)
    if spectral_radius_m is None:
        expected_spectral = brute_pairs(spectral_distance, 4, itself=False)
    else:
        expected_spectral = brute_pairs(
            spatial, 4, itself=False, score=spectral_distance, candidates=candidates, radius=spectral_radius_m
        )
    expected = {
        "spatial": brute_pairs(spatial, 5, itself=False),
        "spectral": expected_spectral,
        "elevation": brute_pairs(spatial, 3, itself=False, score=dz, candidates=candidates),
    }
    for name, relation in attached.items():
        assert edge_set(relation) == expected[name], name
        assert relation.attr_names == graph.relations[name].attr_names
        src, dst = relation.edge_index
        assert src.max() < N and dst.max() < q
        assert (np.diff(dst * N + src) > 0).all()
        np.testing.assert_allclose(column(relation, "distance_m"), spatial[dst, src], rtol=1e-6)
    src, dst = attached["spectral"].edge_index
    np.testing.assert_allclose(
        column(attached["spectral"], "spectral_distance"), spectral_distance[dst, src], rtol=1e-5
    )


def test_attaching_copies_of_the_reference_links_each_to_its_twin(nodes):
    xy, spectral, elevation, slope = nodes
    graph = ReferenceGraph(
        xy,
        geographic=False,
        params=GraphParams(spectral_radius_m=300.0),
        spectral=spectral,
        elevation=elevation,
        slope=slope,
    )
    attached = graph.attach(xy, spectral=spectral, elevation=elevation, slope=slope)
    for relation in attached.values():
        src, dst = relation.edge_index
        twin = src == dst
        assert twin.sum() == N  # the twin is not excluded: a query is a different node
        np.testing.assert_array_equal(relation.edge_attr[twin], 0)
        assert relation.edge_attr.shape[1] == len(relation.attr_names)


def test_k_larger_than_the_nodes_is_clamped():
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
    graph = ReferenceGraph(
        xy, geographic=False, params=GraphParams(k_spatial=50), elevation=[1.0, 2.0, 3.0, 4.0]
    )
    everyone = {(s, d) for s in range(4) for d in range(4) if s != d}
    assert edge_set(graph.relations["spatial"]) == everyone == edge_set(graph.relations["elevation"])
    attached = graph.attach(np.array([[9.0, 9.0]]), elevation=[0.0])
    assert edge_set(attached["spatial"]) == {(s, 0) for s in range(4)}


def test_progress_is_reported_and_cancels(nodes):
    fractions = []
    graph = build(nodes)
    graph.attach(
        nodes[0][:10],
        spectral=nodes[1][:10],
        elevation=nodes[2][:10],
        progress=lambda f, m: fractions.append(f),
    )
    assert fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) >= 3

    def cancel(fraction: float, message: str) -> None:
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        ReferenceGraph(nodes[0], geographic=False, params=GraphParams(), progress=cancel)


# Input errors and settings ----------------------------------------------------------------------------------


def test_bad_inputs_raise_input_errors(nodes):
    xy, spectral, elevation, _ = nodes
    bad = xy.copy()
    bad[3, 0] = np.nan
    with pytest.raises(InputError, match="row 3"):
        ReferenceGraph(bad, geographic=False, params=GraphParams())
    with pytest.raises(InputError, match="not longitudes and latitudes"):
        ReferenceGraph(xy, geographic=True, params=GraphParams())
    with pytest.raises(InputError, match=r"\(n, 2\)"):
        ReferenceGraph(xy[:, :1], geographic=False, params=GraphParams())
    with pytest.raises(InputError, match="elevation has shape"):
        ReferenceGraph(xy, geographic=False, params=GraphParams(), elevation=elevation[:10])
    graph = ReferenceGraph(xy, geographic=False, params=GraphParams(), spectral=spectral, elevation=elevation)
    with pytest.raises(InputError, match="spectral features"):
        graph.attach(xy[:2], elevation=elevation[:2])
    with pytest.raises(InputError, match="6"):
        graph.attach(xy[:2], spectral=spectral[:2, :4], elevation=elevation[:2])
    with pytest.raises(InputError, match="slope"):
        graph.attach(xy[:2], spectral=spectral[:2], elevation=elevation[:2], slope=[1.0, 2.0])


def test_params_round_trip_through_json_and_reject_unknown_keys():
    params = GraphParams(
        k_spatial=5, max_distance_m=2500, spectral_radius_m=1e4, candidates=32, slope_weight=0.5
    )
    restored = GraphParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert restored == params and isinstance(restored.max_distance_m, float)
    assert GraphParams.from_dict({}) == GraphParams()
    with pytest.raises(InputError, match="k_spacial") as error:
        GraphParams.from_dict({"k_spacial": 3})
    assert "k_spatial" in error.value.hint
    for bad in ({"k_spatial": 0}, {"k_spectral": 2.5}, {"max_distance_m": -1}, {"candidates": True}):
        with pytest.raises(InputError):
            GraphParams(**bad)
    with pytest.raises(InputError, match="candidates"):
        GraphParams(k_elevation=20, candidates=10)
    GraphParams(k_spectral=20, candidates=10)  # global spectral kNN does not use the candidates
    with pytest.raises(InputError):
        GraphParams.from_dict([("k_spatial", 3)])
