from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilcarbon_core.errors import DataNotFoundError, InputError
from soilcarbon_core.ghg.weather import generate_weather
from soilcarbon_training.ghg.countries import (
    COLUMNS,
    COUNTRY_ALIASES,
    COUNTRY_CLIMATE_CSV,
    N_COUNTRIES,
    build_country_climate,
    load_country_climate,
    main,
    sample_country_normals,
)

#: The full SRDB file, when the shared data collection is at hand (it is not bundled).
SRDB = Path("/work/shared/data/co2_srdb/srdb-data.csv")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return load_country_climate()


def test_bundled_table(table):
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == N_COUNTRIES == 47
    assert table["country"].is_unique
    assert not set(table["country"]) & set(COUNTRY_ALIASES)  # no "USA" next to "United States"
    assert {"United States", "United Kingdom", "South Korea", "Czech Republic"} <= set(table["country"])
    assert not {"Greenland", "Antarctica", "French Guiana"} & set(table["country"])
    assert table["records"].is_monotonic_decreasing and table["records"].min() >= 1
    for name in ("mat", "map"):
        assert (table[f"{name}_p10"] <= table[f"{name}_median"]).all()
        assert (table[f"{name}_median"] <= table[f"{name}_p90"]).all()
    assert table["map_p10"].min() > 0 and table["mat_p90"].max() <= 35
    # Hemispheres: medians of signed latitudes.
    lat = table.set_index("country")["latitude"]
    assert lat["Brazil"] < 0 < lat["China"] and lat["Australia"] < -10 and lat["Finland"] > 55


@pytest.mark.skipif(not SRDB.is_file(), reason="SRDB srdb-data.csv not available")
def test_bundled_table_is_rebuilt_from_srdb(table, tmp_path):
    out = tmp_path / "country_climate.csv"
    main([str(SRDB), "--output", str(out)])
    rebuilt = load_country_climate(out)
    pd.testing.assert_frame_equal(rebuilt, table)
    assert [p.name for p in tmp_path.iterdir()] == ["country_climate.csv"]  # no temporary left over
    # The United States are the USA and United States records together.
    raw = pd.read_csv(SRDB, usecols=["Country", "MAT", "MAP", "Latitude"], low_memory=False)
    us = raw[raw["Country"].str.strip().isin(["USA", "United States"])]
    usable = us["MAT"].between(-15, 35) & us["MAP"].between(0, 6000, inclusive="right")
    usable &= ~(us["Latitude"].abs() > 70)
    assert table.set_index("country").loc["United States", "records"] == usable.sum()


def write_srdb(path: Path, rows: list[tuple]) -> Path:
    pd.DataFrame(rows, columns=["Country", "Latitude", "Longitude", "MAT", "MAP", "Rs_annual"]).to_csv(
        path, index=False
    )
    return path


def test_build_harmonises_filters_and_summarises(tmp_path):
    rows = [
        ("USA", 40.0, -100.0, 10.0, 500.0, 1),
        ("United States ", 44.0, -90.0, 12.0, 700.0, 2),
        ("USA", 36.0, -80.0, 14.0, 900.0, 3),
        ("USA", 38.0, -95.0, 50.0, 900.0, 4),  # implausible MAT
        ("USA", 38.0, -95.0, 11.0, np.nan, 5),  # no MAP
        ("USA", 71.3, -156.6, -11.0, 120.0, 6),  # Alaskan Arctic, poleward of 70 N
        ("UK", 52.0, -1.0, 9.0, 800.0, 7),
        ("England", 51.0, 0.0, 10.0, 600.0, 8),
        ("Scotland", 56.0, -4.0, 7.0, 1200.0, 9),
        ("Wales", 53.0, -3.5, 9.5, 1000.0, 10),
        ("Korea", 37.0, 127.0, 12.0, 1400.0, 11),
        ("Greenland", 64.0, -51.0, -1.0, 700.0, 12),  # excluded territory
        ("Congo", -4.3, 11.8, 25.0, 1300.0, 13),
        ("Congo", 0.8, 23.7, 24.4, 1875.0, 14),
        ("", 20.0, 20.0, 20.0, 500.0, 15),  # unnamed
    ]
    result = build_country_climate(write_srdb(tmp_path / "srdb.csv", rows), n_countries=5).set_index(
        "country"
    )
    assert list(result.index) == [
        "United Kingdom",
        "United States",
        "DR Congo",
        "Republic of the Congo",
        "South Korea",
    ]
    assert result["records"].tolist() == [4, 3, 1, 1, 1]
    us = result.loc["United States"]
    assert (us["latitude"], us["longitude"]) == (40.0, -90.0)
    assert (us["mat_median"], us["map_median"]) == (12.0, 700.0)
    # Linear percentiles of three values: p10 = x1 + 0.2 (x2 - x1), p90 = x2 + 0.8 (x3 - x2).
    assert us["mat_p10"] == pytest.approx(10.4) and us["mat_p90"] == pytest.approx(13.6)
    assert us["map_p10"] == pytest.approx(540.0) and us["map_p90"] == pytest.approx(860.0)
    uk = result.loc["United Kingdom"]
    assert uk["map_median"] == 900.0 and uk["latitude"] == 52.5
    with pytest.raises(InputError, match="fewer than 6"):
        build_country_climate(tmp_path / "srdb.csv", n_countries=6)
    with pytest.raises(DataNotFoundError):
        build_country_climate(tmp_path / "missing.csv")


def test_load_refuses_a_wrong_table(tmp_path, table):
    short = tmp_path / "short.csv"
    table.iloc[:40].to_csv(short, index=False)
    with pytest.raises(InputError, match="40 rows"):
        load_country_climate(short)
    with pytest.raises(DataNotFoundError, match=r"soilcarbon_training\.ghg\.countries"):
        load_country_climate(tmp_path / "none.csv")
    assert COUNTRY_CLIMATE_CSV.is_file()


def test_sampled_normals(table):
    normals, country = sample_country_normals(table, 30, np.random.default_rng(3))
    assert normals.sites == country.size == 47 * 30
    np.testing.assert_array_equal(country[:30], "China")
    np.testing.assert_array_equal(country[-30:], table["country"].iloc[-1])
    per_site = table.set_index("country").loc[country]
    assert np.all((normals.mat >= per_site["mat_p10"]) & (normals.mat <= per_site["mat_p90"]))
    assert np.all(
        (normals.map >= per_site["map_p10"] * (1 - 1e-12))
        & (normals.map <= per_site["map_p90"] * (1 + 1e-12))
    )
    jitter = normals.latitude - per_site["latitude"].to_numpy()
    assert abs(jitter.mean()) < 0.2 and jitter.std() == pytest.approx(2.0, rel=0.1)

    abs_lat = np.abs(normals.latitude)
    ratio = normals.t_amplitude / np.clip(1 + 0.3 * abs_lat, 1, 20)
    assert ratio.min() >= 0.7 and ratio.max() <= 1.3
    np.testing.assert_array_equal(normals.warmest_doy, np.where(normals.latitude >= 0, 200.0, 20.0))
    np.testing.assert_allclose(normals.wet_day_fraction, np.clip(0.1 + normals.map / 2500, 0.08, 0.7))
    assert normals.diurnal_range.min() >= 6 and normals.diurnal_range.max() <= 15
    tropical = abs_lat < 25
    assert (
        normals.precip_seasonality[tropical].min() >= 0.3
        and normals.precip_seasonality[~tropical].max() <= 0.6
    )
    mediterranean = (normals.mat > 12) & (normals.map < 800) & (abs_lat > 30)
    assert mediterranean.sum() > 20  # Spain, Israel, Italy, Australia, ...
    offset = (normals.wettest_doy - normals.warmest_doy) % 365
    np.testing.assert_allclose(offset[mediterranean], 182.0)
    summer = np.minimum(offset, 365 - offset)[~mediterranean]
    assert summer.max() <= 60
    assert np.all((normals.wettest_doy >= 1) & (normals.wettest_doy < 366))


def test_sampling_is_reproducible_and_drives_the_generator(table):
    first, country = sample_country_normals(table, 2, np.random.default_rng(11))
    again, _ = sample_country_normals(table, 2, np.random.default_rng(11))
    other, _ = sample_country_normals(table, 2, np.random.default_rng(12))
    for name in vars(first):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.mat, other.mat)
    weather = generate_weather(first, 1, seed=0)
    assert weather.sites == country.size and np.isfinite(weather.pet).all()
    with pytest.raises(InputError):
        sample_country_normals(table, 0, np.random.default_rng(0))
