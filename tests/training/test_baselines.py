from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from pykrige.ok import OrdinaryKriging
from sklearn.ensemble import RandomForestRegressor

from soilcarbon_core.errors import InputError
from soilcarbon_training.baselines import (
    BASELINES,
    RF_MAX_FEATURES,
    Z90,
    ordinary_kriging,
    random_forest,
    xgboost_bootstrap,
    xgboost_quantile,
)
from soilcarbon_training.datasets import SoilDataset, feature_matrix


def step_data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless step of height 10 at x0 = 0.5, plus an irrelevant feature."""
    x = np.random.default_rng(seed).uniform(0, 1, (n, 2))
    return x, np.where(x[:, 0] > 0.5, 10.0, 0.0)


def step_test() -> tuple[np.ndarray, np.ndarray]:
    x0 = np.array([0.1, 0.3, 0.42, 0.58, 0.7, 0.9])
    return np.column_stack([x0, np.full(6, 0.5)]), np.where(x0 > 0.5, 10.0, 0.0)


def test_xgboost_bootstrap_recovers_a_noiseless_step():
    x, y = step_data()
    x_test, truth = step_test()
    mean, sd = xgboost_bootstrap(x, y, x_test, members=3, seed=1)
    np.testing.assert_allclose(mean, truth, atol=0.3)
    assert mean.shape == sd.shape == (6,)
    assert np.all(sd >= 0) and sd.max() < 0.3  # all members agree away from the step
    again = xgboost_bootstrap(x, y, x_test, members=3, seed=1)
    np.testing.assert_array_equal(again[0], mean)


class RecordingRegressor:
    """Stands in for XGBRegressor: member m predicts m everywhere and keeps what it was fitted on."""

    instances: ClassVar[list[RecordingRegressor]] = []

    def __init__(self, **params):
        self.params = params
        self.index = len(RecordingRegressor.instances)
        RecordingRegressor.instances.append(self)

    def fit(self, x, y):
        self.x, self.y = x, y
        return self

    def predict(self, x):
        return np.full(x.shape[0], float(self.index))


def test_xgboost_bootstrap_mean_and_sd_are_over_bootstrap_members(monkeypatch):
    import xgboost

    monkeypatch.setattr(RecordingRegressor, "instances", [])
    monkeypatch.setattr(xgboost, "XGBRegressor", RecordingRegressor)
    x = np.arange(50.0)[:, None]
    mean, sd = xgboost_bootstrap(x, np.arange(50.0) * 2, np.zeros((3, 1)), members=5, seed=1, threads=2)
    np.testing.assert_allclose(mean, 2.0)  # mean of the member predictions 0..4
    np.testing.assert_allclose(sd, np.sqrt(2.0))  # their population sd
    members = RecordingRegressor.instances
    assert len(members) == 5
    for member in members:
        assert member.params["n_jobs"] == 2 and member.params["max_depth"] == 6
        assert member.x.shape == (50, 1)
        np.testing.assert_array_equal(member.y, member.x[:, 0] * 2)  # rows stay paired with targets
        assert len(np.unique(member.x)) < 45  # drawn with replacement: about 63 % distinct
    assert len({member.x.tobytes() for member in members}) == 5
    assert len({member.params["random_state"] for member in members}) == 5


def test_xgboost_bootstrap_handles_missing_features():
    x, y = step_data()
    x[::7, 1] = np.nan
    x_test, truth = step_test()
    x_test[0, 1] = np.nan
    mean, _ = xgboost_bootstrap(x, y, x_test, members=2)
    np.testing.assert_allclose(mean, truth, atol=0.3)


def test_xgboost_quantile_sd_from_the_90_percent_interval():
    # Step plus U(-1, 1) noise: median = the step, q05/q95 = step -+ 0.9, so sd = 1.8 / (2 * 1.6449) = 0.547.
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (2000, 2))
    y = np.where(x[:, 0] > 0.5, 10.0, 0.0) + rng.uniform(-1, 1, 2000)
    x_test = rng.uniform(0, 1, (300, 2))
    x_test = x_test[np.abs(x_test[:, 0] - 0.5) > 0.05]
    truth = np.where(x_test[:, 0] > 0.5, 10.0, 0.0)
    mean, sd = xgboost_quantile(x, y, x_test, seed=0)
    assert np.median(np.abs(mean - truth)) < 0.3
    assert np.all(sd > 0)
    assert 0.45 < np.median(sd) < 0.62  # boosting overfits the noise a little: intervals a bit narrow
    fresh = truth + rng.uniform(-1, 1, truth.size)
    assert 0.7 < np.mean(np.abs(fresh - mean) <= Z90 * sd) < 0.95


def test_random_forest_recovers_a_noiseless_step():
    x, y = step_data()
    x_test, truth = step_test()
    mean, sd = random_forest(x, y, x_test, n_estimators=50)
    np.testing.assert_allclose(mean, truth, atol=0.5)
    assert np.all(sd >= 0)


def test_random_forest_sd_is_the_spread_of_its_trees_on_median_imputed_features():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 3))
    y = x @ [1.0, -2.0, 0.5] + rng.normal(0, 0.3, 120)
    x[rng.uniform(size=x.shape) < 0.1] = np.nan
    x_test = rng.normal(size=(15, 3))
    x_test[[0, 3], [1, 2]] = np.nan
    mean, sd = random_forest(x, y, x_test, seed=4, n_estimators=40)
    # Reference: the same forest fitted with scikit-learn on NaN replaced by the training medians.
    medians = np.nanmedian(x, axis=0)
    forest = RandomForestRegressor(n_estimators=40, max_features=RF_MAX_FEATURES, random_state=4)
    forest.fit(np.where(np.isnan(x), medians, x), y)
    filled = np.where(np.isnan(x_test), medians, x_test)
    trees = np.stack([tree.predict(filled) for tree in forest.estimators_])
    np.testing.assert_allclose(mean, forest.predict(filled), rtol=1e-12)
    np.testing.assert_allclose(sd, np.std(trees, axis=0), rtol=1e-12)


@pytest.mark.parametrize("geographic", [False, True])
def test_ordinary_kriging_reproduces_pykrige(geographic):
    """Same fitted variogram and local neighbourhood as PyKrige's own moving-window kriging."""
    rng = np.random.default_rng(11)
    if geographic:  # across the antimeridian
        train = np.column_stack([(rng.uniform(170, 190, 250) + 180) % 360 - 180, rng.uniform(-10, 10, 250)])
        test = np.column_stack([(rng.uniform(172, 188, 40) + 180) % 360 - 180, rng.uniform(-9, 9, 40)])
    else:
        train, test = rng.uniform(0, 1000, (250, 2)), rng.uniform(50, 950, (40, 2))
    scale = 3.0 if geographic else 150.0
    z = np.sin(train[:, 0] / scale) + np.cos(train[:, 1] / scale) + rng.normal(0, 0.2, 250)
    mean, sd = ordinary_kriging(
        train, z, test, geographic=geographic, n_closest=16, variogram_model="spherical"
    )
    reference = OrdinaryKriging(
        train[:, 0],
        train[:, 1],
        z,
        variogram_model="spherical",
        nlags=20,
        weight=True,
        coordinates_type="geographic" if geographic else "euclidean",
    )
    expected, variance = reference.execute(
        "points", test[:, 0], test[:, 1], n_closest_points=16, backend="loop"
    )
    np.testing.assert_allclose(mean, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sd, np.sqrt(variance), rtol=1e-9, atol=1e-9)
    assert np.all(sd > 0)


def test_ordinary_kriging_interpolates_exactly_without_nugget():
    rng = np.random.default_rng(2)
    train = rng.uniform(0, 100, (80, 2))
    z = rng.normal(size=80)
    fixed = {"sill": 1.0, "range": 40.0, "nugget": 0.0}
    test = np.vstack([train[[3, 17]], [[50.0, 50.0]]])
    mean, sd = ordinary_kriging(train, z, test, geographic=False, n_closest=10, variogram_parameters=fixed)
    np.testing.assert_allclose(mean[:2], z[[3, 17]], atol=1e-12)
    np.testing.assert_allclose(sd[:2], 0.0, atol=1e-6)
    assert 0 < sd[2] < 1.0  # between data points: positive, below the sill


def test_ordinary_kriging_merges_coinciding_training_points():
    train = np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    z = np.array([1.0, 3.0, 5.0, 7.0, 9.0])
    fixed = {"sill": 1.0, "range": 30.0, "nugget": 0.0}
    mean, sd = ordinary_kriging(
        train, z, np.array([[0.0, 0.0]]), geographic=False, variogram_parameters=fixed
    )
    assert mean[0] == pytest.approx(2.0) and sd[0] == pytest.approx(0.0, abs=1e-6)


def test_new_observation_adds_the_nugget_to_the_variance():
    rng = np.random.default_rng(3)
    train, test = rng.uniform(0, 100, (60, 2)), rng.uniform(0, 100, (5, 2))
    z = rng.normal(size=60)
    fixed = {"sill": 1.0, "range": 30.0, "nugget": 0.25}
    test = np.vstack([test, train[:1]])  # and one test point on a training location
    mean, sd = ordinary_kriging(train, z, test, geographic=False, variogram_parameters=fixed)
    mean_obs, sd_obs = ordinary_kriging(
        train, z, test, geographic=False, variogram_parameters=fixed, new_observation=True
    )
    np.testing.assert_array_equal(mean_obs, mean)
    np.testing.assert_allclose(sd_obs**2, sd**2 + 0.25, rtol=1e-12)
    assert sd[-1] == pytest.approx(0.0, abs=1e-6) and sd_obs[-1] == pytest.approx(0.5)


def test_ordinary_kriging_variogram_subsample_is_seeded():
    rng = np.random.default_rng(8)
    train, test = rng.uniform(0, 100, (400, 2)), rng.uniform(0, 100, (20, 2))
    z = train[:, 0] / 50 + rng.normal(0, 0.3, 400)
    first = ordinary_kriging(train, z, test, geographic=False, max_variogram_points=150, seed=1)
    second = ordinary_kriging(train, z, test, geographic=False, max_variogram_points=150, seed=1)
    np.testing.assert_array_equal(first[0], second[0])
    assert np.all(np.isfinite(first[0])) and np.all(first[1] >= 0)


def test_baselines_reject_missing_targets():
    x, y = step_data(20)
    y[4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        random_forest(x, y, x)


def tiny_dataset() -> SoilDataset:
    rng = np.random.default_rng(4)
    n = 40
    coords = rng.uniform(0, 5000, (n, 2))
    covariates = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return SoilDataset(
        name="tiny",
        coords=coords,
        geographic=False,
        crs="EPSG:32618",
        target=coords[:, 0] / 1000 + covariates["a"].to_numpy(),
        target_name="soc",
        unit="t/ha",
        covariates=covariates,
        spectral=pd.DataFrame({"RED": rng.uniform(size=n)}),
        elevation=None,
        slope=None,
        dates=None,
        ids=np.arange(n).astype(str),
    )


def test_registry_wraps_the_baselines_on_the_feature_matrix():
    dataset = tiny_dataset()
    train, test = np.arange(30), np.arange(30, 40)
    x, _ = feature_matrix(dataset)
    assert set(BASELINES) == {"xgboost_bootstrap", "xgboost_quantile", "random_forest", "ordinary_kriging"}
    for name, run in BASELINES.items():
        mean, sd = run(dataset, train, test, seed=3, threads=1)
        assert mean.shape == sd.shape == (10,) and np.all(sd >= 0) and np.all(np.isfinite(mean)), name
    direct = xgboost_bootstrap(x[train], dataset.target[train], x[test], seed=3)
    np.testing.assert_array_equal(BASELINES["xgboost_bootstrap"](dataset, train, test, 3, 1)[0], direct[0])
    kriged = ordinary_kriging(
        dataset.coords[train], dataset.target[train], dataset.coords[test], geographic=False
    )
    np.testing.assert_array_equal(BASELINES["ordinary_kriging"](dataset, train, test, 0, 1)[0], kriged[0])
