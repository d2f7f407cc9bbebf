"""From node tables to normalised streams: missing values are flagged or masked, never silently zero."""

from __future__ import annotations

import numpy as np
import pytest

from soilcarbon_core.features import NodeTable, Normaliser, decimal_year
from soilcarbon_core.graph import Relation
from soilcarbon_core.graph.geometry import unit_vectors


def _table() -> NodeTable:
    covariates = np.array([[1.0, 10.0], [3.0, np.nan], [np.nan, np.nan], [5.0, 30.0]])
    imagery = np.array([[0.1, 0.2], [0.3, np.nan], [0.5, 0.6], [0.7, 0.8]])
    return NodeTable(
        lonlat=np.array([[-75.0, 4.0], [-75.01, 4.0], [-75.0, 4.01], [-75.02, 4.02]]),
        xy=np.zeros((4, 2)),
        covariates=covariates,
        imagery=imagery,
        decimal_year=np.array([2001.5, np.nan, 2003.25, 2002.0]),
    )


def test_missing_values_are_flagged_and_empty_streams_masked():
    table = _table()
    normaliser = Normaliser.fit(table, np.array([1.0, 2.0, 3.0, 4.0]))
    inputs = normaliser.node_inputs(table)
    cov = inputs.covariates.numpy()
    # Values standardised with the training statistics (NaN ignored), then 0 + a flag where missing.
    assert cov[0, 0] == pytest.approx((1.0 - 3.0) / np.std([1.0, 3.0, 5.0]))
    np.testing.assert_array_equal(cov[:, 2:], [[0, 0], [0, 1], [1, 1], [0, 0]])
    assert cov[1, 1] == 0.0
    assert inputs.covariate_mask.tolist() == [True, True, False, True]
    assert inputs.imagery_mask.tolist() == [True, False, True, True]  # one missing band masks the stream
    assert inputs.time_mask.tolist() == [True, False, True, True]
    time = inputs.time.numpy()
    assert time[0, 1] == pytest.approx(np.sin(np.pi), abs=1e-6)  # mid-year: season angle pi
    assert time[2, 2] == pytest.approx(np.cos(np.pi / 2), abs=1e-6)


def test_positions_are_centred_and_scaled_isotropically():
    table = _table()
    inputs = Normaliser.fit(table, np.zeros(4) + 1).node_inputs(table)
    position = inputs.position.numpy().astype(float)
    np.testing.assert_allclose(position.mean(axis=0), 0.0, atol=1e-5)
    assert np.sqrt((position**2).sum(axis=1).mean()) == pytest.approx(1.0, rel=1e-4)
    xyz = unit_vectors(table.lonlat)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=1), 1.0)
    ratio = np.linalg.norm(position[0] - position[1]) / np.linalg.norm(xyz[0] - xyz[1])
    assert np.linalg.norm(position[0] - position[3]) / np.linalg.norm(xyz[0] - xyz[3]) == pytest.approx(
        ratio, rel=1e-4
    )


def test_similarity_features_fall_back_to_covariates_and_edges_are_scaled_by_their_median():
    table = _table()
    normaliser = Normaliser.fit(table, np.arange(4.0))
    assert np.isfinite(normaliser.similarity_features(table)[1]).all()  # a missing band is imputed
    no_imagery = NodeTable(table.lonlat, table.xy, table.covariates, np.empty((4, 0)))
    similarity = normaliser.similarity_features(no_imagery)
    assert np.isnan(similarity[2]).all()  # nothing known: left out of the relation
    assert similarity[1, 1] == 0.0  # one value missing: the training mean
    relation = Relation(
        np.array([[0, 1, 2], [1, 2, 0]]),
        np.array([[10.0], [20.0], [40.0]], dtype=np.float32),
        ("distance_m",),
    )
    normaliser.fit_edges({"spatial": relation})
    _, attr = normaliser.edges({"spatial": relation})["spatial"]
    np.testing.assert_allclose(attr.numpy()[:, 0], np.log1p([0.5, 1.0, 2.0]), rtol=1e-6)
    assert Normaliser.from_dict(normaliser.to_dict()) == normaliser


def test_decimal_year_known_answers():
    dates = np.array(["2000-01-01", "2000-07-02", "2001-12-31", "NaT"], dtype="datetime64[D]")
    years = decimal_year(dates)
    np.testing.assert_allclose(years[:3], [2000.0, 2000 + 183 / 366, 2001 + 364 / 365])
    assert np.isnan(years[3])
