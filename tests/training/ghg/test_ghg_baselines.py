from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from soilcarbon_core.errors import InputError
from soilcarbon_core.ghg.features import CROPS, FEATURE_NAMES, empty_features, feature_index
from soilcarbon_core.uncertainty.metrics import r2, rmse
from soilcarbon_training.baselines import XGB_PARAMS, random_forest
from soilcarbon_training.folds import group_folds
from soilcarbon_training.ghg.baselines import (
    mlp_model,
    random_forest_model,
    run_baselines,
    tabular_columns,
    tabular_matrix,
    tier1_n2o,
    xgboost_model,
)

TREES = 20  # small forests keep the tests fast


def test_tier1_reproduces_the_reference_rmse_on_sesync(sesync):
    prediction = tier1_n2o(sesync.features)
    np.testing.assert_allclose(prediction, 0.01 * sesync.features[:, feature_index("n_rate")])
    assert round(rmse(sesync.target, prediction), 3) == 4.563
    assert round(r2(sesync.target, prediction), 2) == 0.06


def test_tier1_needs_every_n_rate():
    features = empty_features(3)
    features[:2, feature_index("n_rate")] = [100.0, 50.0]
    with pytest.raises(InputError, match="missing for 1 rows"):
        tier1_n2o(features)


def test_tabular_matrix_keeps_observed_columns_and_one_hot_crops(sesync, srdb):
    assert tabular_columns(sesync) == (
        "soc",
        "n_rate",
        "urea_share",
        "ammonium_share",
        "nitrate_share",
        "organic_share",
    )
    np.testing.assert_array_equal(
        tabular_matrix(sesync), sesync.features[:, [FEATURE_NAMES.index(c) for c in tabular_columns(sesync)]]
    )
    columns = tabular_columns(srdb)
    x = tabular_matrix(srdb)
    assert x.shape == (312, len(columns))
    assert not np.isnan(x).all(axis=0).any()
    assert "crop" not in columns and "ph" not in columns
    crop = srdb.features[:, feature_index("crop")]
    one_hot = x[:, [columns.index(f"crop={name}") for name in CROPS]]  # every class occurs in SRDB
    known = np.isfinite(crop)
    np.testing.assert_array_equal(one_hot[known], np.eye(len(CROPS))[crop[known].astype(int)])
    assert np.isnan(one_hot[~known]).all()


def test_xgboost_model_is_xgboost_with_the_shared_parameters():
    from xgboost import XGBRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    x[::7, 1] = np.nan
    y = x[:, 0] + rng.normal(0, 0.1, 80)
    mean, sd = xgboost_model(x[:60], y[:60], x[60:], seed=3, n_estimators=15)
    reference = XGBRegressor(**(XGB_PARAMS | {"n_estimators": 15}), n_jobs=1, random_state=3).fit(
        x[:60], y[:60]
    )
    np.testing.assert_array_equal(mean, reference.predict(x[60:]))
    assert sd is None


def test_random_forest_model_is_the_soc_random_forest():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    y = x[:, 1] ** 2
    mean, sd = random_forest_model(x[:40], y[:40], x[40:], seed=2, n_estimators=TREES)
    ref_mean, ref_sd = random_forest(x[:40], y[:40], x[40:], seed=2, n_estimators=TREES)
    np.testing.assert_array_equal(mean, ref_mean)
    np.testing.assert_array_equal(sd, ref_sd)


def test_mlp_learns_a_linear_map_and_is_equivariant_to_the_target_scale():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 3)) * [1.0, 50.0, 0.01]  # very different feature scales
    y = 2.0 * x[:, 0] - 0.04 * x[:, 1] + 100.0 * x[:, 2]
    x_missing = x.copy()
    x_missing[::10, 2] = np.nan
    mean, sd = mlp_model(x[:300], y[:300], x[300:], seed=0)
    assert sd is None and r2(y[300:], mean) > 0.95
    # The target is standardised before fitting: an affine change of unit maps the predictions exactly.
    scaled, _ = mlp_model(x[:300], 1000.0 * y[:300] + 7.0, x[300:], seed=0)
    np.testing.assert_allclose(scaled, 1000.0 * mean + 7.0, rtol=1e-6, atol=1e-6)
    filled, _ = mlp_model(x_missing[:300], y[:300], x_missing[300:], seed=0)
    assert np.isfinite(filled).all()


def test_run_baselines_shapes_and_names(sesync, srdb):
    folds = group_folds(sesync.groups, 5, seed=0)
    predictions = run_baselines(sesync, folds, seed=0, n_estimators=TREES)
    assert set(predictions) == {"ipcc_tier1", "xgboost", "random_forest", "mlp"}
    for values in predictions.values():
        assert values.shape == (563,) and np.isfinite(values).all()
    assert "ipcc_tier1" not in run_baselines(srdb, group_folds(srdb.groups, 5, seed=0), n_estimators=TREES)


def test_out_of_fold_predictions_never_see_their_own_targets(srdb):
    folds = group_folds(srdb.groups, 5, seed=1)
    before = run_baselines(srdb, folds, seed=0, n_estimators=TREES)
    test = folds[2][1]
    target = srdb.target.copy()
    target[test] = np.random.default_rng(5).permutation(target[test]) * 3.0 + 1.0  # scramble fold 2
    after = run_baselines(dataclasses.replace(srdb, target=target), folds, seed=0, n_estimators=TREES)
    others = np.setdiff1d(np.arange(srdb.target.size), test)
    for name in before:
        np.testing.assert_array_equal(after[name][test], before[name][test], err_msg=name)
        assert not np.array_equal(after[name][others], before[name][others]), name  # the change is seen


def test_run_baselines_rejects_folds_that_miss_rows(sesync):
    folds = group_folds(sesync.groups, 5, seed=0)[:4]
    with pytest.raises(InputError, match="exactly one test set"):
        run_baselines(sesync, folds)
