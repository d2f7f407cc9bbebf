"""The scenario generator: reproducible from its seed, 47 countries, plausible and closed-balance rows."""

from __future__ import annotations

import numpy as np
import pytest

from soilcarbon_core.ghg.features import FEATURE_NAMES, FEATURES, feature_index
from soilcarbon_training.ghg.scenarios import TARGET_COLUMNS, run_scenarios, sample_scenarios, write_dataset


@pytest.fixture(scope="module")
def simulated():
    scenarios = sample_scenarios(2, seed=3)
    data, results = run_scenarios(scenarios, years=1, seed=3, chunk=50)
    return scenarios, data, results


def test_same_seed_same_data_other_seed_other_data(simulated):
    _, data, _ = simulated
    again, _ = run_scenarios(sample_scenarios(2, seed=3), years=1, seed=3, chunk=50)
    np.testing.assert_array_equal(again.features, data.features)
    np.testing.assert_array_equal(again.targets, data.targets)
    other, _ = run_scenarios(sample_scenarios(2, seed=4), years=1, seed=4, chunk=50)
    assert not np.allclose(other.features, data.features)


def test_covers_47_countries_with_plausible_features(simulated):
    scenarios, data, _ = simulated
    assert np.unique(scenarios.country).size == 47
    assert data.features.shape == (94, len(FEATURE_NAMES))
    assert np.isfinite(data.features).all() and np.isfinite(data.targets).all()
    for column, feature in enumerate(FEATURES):
        assert np.all(
            (data.features[:, column] >= feature.low) & (data.features[:, column] <= feature.high)
        ), feature.name
    shares = data.features[
        :, [feature_index(n) for n in ("urea_share", "ammonium_share", "nitrate_share", "organic_share")]
    ]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    # Annual totals include the season; N2O and CO2 are emissions.
    n2o_season, n2o_annual = data.targets[:, 0], data.targets[:, 1]
    assert np.all(n2o_annual >= n2o_season - 1e-9) and np.all(n2o_season >= 0)
    assert np.all(data.targets[:, TARGET_COLUMNS.index("co2_annual")] > 0)


def test_balances_close_and_dataset_round_trips(simulated, tmp_path):
    _, data, results = simulated
    for result in results:
        assert np.abs(result.nitrogen_balance_error()).max() < 1e-6
        assert np.abs(result.carbon_balance_error()).max() < 1e-5
    path = write_dataset(data, tmp_path / "sims.parquet")
    import pandas as pd

    frame = pd.read_parquet(path)
    assert list(frame.columns[: len(FEATURE_NAMES)]) == list(FEATURE_NAMES)
    np.testing.assert_array_equal(frame[list(TARGET_COLUMNS)].to_numpy(), data.targets)
