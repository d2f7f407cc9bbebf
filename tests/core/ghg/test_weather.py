from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilcarbon_core.errors import DataNotFoundError, InputError
from soilcarbon_core.ghg.weather import (
    ClimateNormals,
    DailyWeather,
    extraterrestrial_radiation,
    generate_weather,
    hargreaves_pet,
    read_weather_csv,
)

REPO = Path(__file__).resolve().parents[3]
#: Cook Agronomy Farm daily weather (GSIF, GPL): bundled if a data folder holds it, else the shared copy.
COOKFARM = next(
    (
        p
        for p in (
            REPO / "data" / "weather_cookfarm" / "cookfarm_weather.csv",
            Path("/work/shared/data/weather_cookfarm/cookfarm_weather.csv"),
        )
        if p.is_file()
    ),
    None,
)


# --- radiation and PET -----------------------------------------------------------------------------------


def test_extraterrestrial_radiation_fao56_example_8():
    """FAO-56 Example 8: 20 deg S on 3 September (J = 246), Ra = 32.2 MJ m-2 d-1."""
    ra = extraterrestrial_radiation(np.array([-20.0]), np.array([246]))
    assert ra.shape == (1, 1)
    assert ra[0, 0] == pytest.approx(32.2, abs=0.05)


def test_extraterrestrial_radiation_polar_night_and_day():
    """At 80 deg N the sun does not rise near the December solstice (Ra = 0); at 80 deg S it does not set,
    so the sunset hour angle is pi and Ra = 24 * 60 / pi * Gsc * dr * pi * sin(phi) sin(delta)."""
    ra = extraterrestrial_radiation(np.array([80.0, -80.0]), np.array([355]))
    assert ra[0, 0] == 0.0
    angle = 2 * np.pi * 355 / 365
    declination = 0.409 * np.sin(angle - 1.39)
    expected = 24 * 60 * 0.0820 * (1 + 0.033 * np.cos(angle)) * np.sin(np.radians(-80)) * np.sin(declination)
    assert ra[1, 0] == pytest.approx(expected, rel=1e-12)
    assert expected > 40  # the long summer day beats the equator's ~35 MJ m-2 d-1


def test_extraterrestrial_radiation_repeated_days_and_shape():
    lat = np.array([0.0, 45.0, -30.0])
    doy = np.array([1, 172, 246, 1, 172])
    ra = extraterrestrial_radiation(lat, doy)
    assert ra.shape == (3, 5)
    np.testing.assert_array_equal(ra[:, 3:], ra[:, :2])
    for j, day in enumerate(doy):
        np.testing.assert_array_equal(ra[:, j], extraterrestrial_radiation(lat, np.array([day]))[:, 0])
    # Northern summer solstice: more radiation at 45 N than at 30 S.
    assert ra[1, 1] > 2 * ra[2, 1]


def test_hargreaves_hand_computed():
    # Tmean 17: 0.0023 * (17 + 17.8) * sqrt(14) * 30 * 0.408 = 3.66566 mm/d
    assert hargreaves_pet(10.0, 24.0, 30.0) == pytest.approx(3.66566, abs=1e-5)
    # Below Tmean = -17.8 the formula goes negative, and Tmax < Tmin has no real root: both give 0.
    np.testing.assert_array_equal(hargreaves_pet(np.array([-30.0, 12.0]), np.array([-20.0, 10.0]), 30.0), 0.0)


# --- DailyWeather ------------------------------------------------------------------------------------------


def small_weather() -> DailyWeather:
    tmin = np.array([[0.0, 2.0, 4.0], [10.0, 11.0, 12.0]])
    return DailyWeather(
        tmin, tmin + 10, np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]), [1, 2, 3], [50.0, -10.0]
    )


def test_daily_weather_derived_fields():
    weather = small_weather()
    assert (weather.sites, weather.days) == (2, 3)
    np.testing.assert_array_equal(weather.tavg, weather.tmin + 5)
    ra = extraterrestrial_radiation(weather.latitude, weather.doy)
    np.testing.assert_allclose(weather.pet, 0.0023 * (weather.tmin + 5 + 17.8) * np.sqrt(10) * ra * 0.408)


def test_take_and_repeat_sites():
    weather = small_weather()
    second = weather.take([1])
    np.testing.assert_array_equal(second.tmin, [[10.0, 11.0, 12.0]])
    np.testing.assert_array_equal(weather.take(np.array([True, False])).precip, [[0.0, 1.0, 2.0]])
    copies = second.repeat_sites(np.array([0.0, 60.0, -60.0]))
    assert (copies.sites, copies.days) == (3, 3)
    np.testing.assert_array_equal(copies.precip, np.tile([3.0, 0.0, 0.0], (3, 1)))
    np.testing.assert_array_equal(copies.latitude, [0.0, 60.0, -60.0])
    # Same temperatures, different radiation: on 1 January, southern summer, PET is highest at 60 S and
    # lowest at 60 N.
    pet = copies.pet[:, 0]
    assert pet[2] > pet[0] > pet[1]
    ra = extraterrestrial_radiation(copies.latitude, [1])[:, 0]
    np.testing.assert_allclose(pet, hargreaves_pet(10.0, 20.0, ra))
    with pytest.raises(InputError, match="single-site"):
        weather.repeat_sites([0.0])


def test_daily_weather_rejects_bad_shapes():
    with pytest.raises(InputError, match="shape"):
        DailyWeather(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 4)), [1, 2, 3], [0.0, 1.0])
    with pytest.raises(InputError, match="Latitude"):
        DailyWeather(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), [1], [95.0])


# --- generator ---------------------------------------------------------------------------------------------

#: Five climates: temperate, tropical monsoon, Mediterranean semi-arid, southern hemisphere without a
#: precipitation season, cold continental. Columns follow ClimateNormals' fields.
CLIMATES = {
    "mat": [10.0, 26.0, 18.0, 15.0, -2.0],
    "map": [800.0, 1800.0, 350.0, 1200.0, 500.0],
    "t_amplitude": [10.0, 2.0, 8.0, 6.0, 18.0],
    "warmest_doy": [200.0, 120.0, 200.0, 20.0, 200.0],
    "diurnal_range": [10.0, 9.0, 14.0, 11.0, 12.0],
    "wet_day_fraction": [0.4, 0.45, 0.15, 0.5, 0.3],
    "precip_seasonality": [0.2, 0.8, 0.5, 0.0, 0.4],
    "wettest_doy": [300.0, 200.0, 20.0, 100.0, 190.0],
    "latitude": [50.0, 15.0, 35.0, -35.0, 55.0],
}
REPLICATES = 20
YEARS = 30
NO_SEASON = 3  # the climate without a precipitation season


def replicated_normals(replicates: int = REPLICATES) -> ClimateNormals:
    return ClimateNormals(**{k: np.repeat(np.array(v), replicates) for k, v in CLIMATES.items()})


@pytest.fixture(scope="module")
def generated() -> DailyWeather:
    return generate_weather(replicated_normals(), YEARS, seed=2024)


def per_climate(values: np.ndarray) -> np.ndarray:
    """Mean over the replicate sites of each climate: (S, ...) -> (5, ...)."""
    return values.reshape(len(CLIMATES["mat"]), REPLICATES, *values.shape[1:]).mean(axis=1)


def first_harmonic(series: np.ndarray, doy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares annual harmonic of each climate's replicate-mean daily series (S, D): its mean,
    amplitude and peak day of year, (5,) each. Averaging the series before taking amplitudes avoids the
    upward bias of averaging per-site amplitudes."""
    series = per_climate(series.astype(float))
    angle = 2 * np.pi * doy / 365
    mean = series.mean(axis=1)
    a = 2 * (series * np.cos(angle)).mean(axis=1)
    b = 2 * (series * np.sin(angle)).mean(axis=1)
    peak = np.degrees(np.arctan2(b, a)) / 360 * 365 % 365
    return mean, np.hypot(a, b), peak


def day_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((np.asarray(a) - np.asarray(b) + 182.5) % 365 - 182.5)


def test_generated_shape_layout_and_bounds(generated):
    assert (generated.sites, generated.days) == (5 * REPLICATES, 365 * YEARS)
    np.testing.assert_array_equal(generated.doy[:365], np.arange(1, 366))
    np.testing.assert_array_equal(generated.doy[365:730], np.arange(1, 366))
    assert generated.tmin.dtype == np.float32
    assert generated.tmin[:, 100].flags.c_contiguous  # one day of every site is contiguous
    assert np.all(generated.tmax >= generated.tmin)
    assert np.all(generated.precip >= 0)
    assert np.isfinite(generated.tmin).all() and np.isfinite(generated.precip).all()


def test_generated_annual_means_match_the_normals(generated):
    mean_t, amplitude, warmest = first_harmonic(generated.tavg, generated.doy)
    # Tolerances are about five standard errors of 600 site-years; a wet-day shift that were not centred
    # on its expectation would bias the mean by about 0.25 * wet_day_fraction.
    np.testing.assert_allclose(mean_t, CLIMATES["mat"], atol=0.05)
    np.testing.assert_allclose(amplitude, CLIMATES["t_amplitude"], atol=0.1)
    assert np.all(day_distance(warmest, CLIMATES["warmest_doy"]) < 3)

    annual_precip = generated.precip.sum(axis=1, dtype=float) / YEARS
    np.testing.assert_allclose(per_climate(annual_precip), CLIMATES["map"], rtol=0.03)
    wet_fraction = (generated.precip > 0).mean(axis=1)
    np.testing.assert_allclose(per_climate(wet_fraction), CLIMATES["wet_day_fraction"], atol=0.01)


def test_generated_precipitation_season(generated):
    """The mean daily precipitation follows 1 + s cos(2 pi (d - wettest) / 365) relative to its mean."""
    mean, amplitude, wettest = first_harmonic(generated.precip, generated.doy)
    np.testing.assert_allclose(amplitude / mean, CLIMATES["precip_seasonality"], atol=0.03)
    seasonal = np.array(CLIMATES["precip_seasonality"]) >= 0.4
    assert np.all(day_distance(wettest, CLIMATES["wettest_doy"])[seasonal] < 5)


def test_generated_markov_chain_and_wet_day_effects(generated):
    """Without a season: P(wet | wet) - P(wet | dry) = 0.3, Tmax 1 degC lower and Tmin 0.5 higher on wet
    days, wet-day amounts with mean map / (365 wet_fraction) and the gamma(0.75) coefficient of variation."""
    sites = slice(NO_SEASON * REPLICATES, (NO_SEASON + 1) * REPLICATES)
    wet = generated.precip[sites] > 0
    yesterday, today = wet[:, :-1], wet[:, 1:]
    persistence = today[yesterday].mean() - today[~yesterday].mean()
    assert persistence == pytest.approx(0.3, abs=0.01)

    tmax, tmin = generated.tmax[sites].astype(float), generated.tmin[sites].astype(float)
    assert tmax[wet].mean() - tmax[~wet].mean() == pytest.approx(-1.0, abs=0.1)
    assert tmin[wet].mean() - tmin[~wet].mean() == pytest.approx(0.5, abs=0.1)

    amounts = generated.precip[sites][wet].astype(float)
    assert amounts.mean() == pytest.approx(1200 / (365 * 0.5), rel=0.02)
    assert amounts.std() / amounts.mean() == pytest.approx(1 / np.sqrt(0.75), abs=0.04)


def test_generator_is_reproducible():
    normals = replicated_normals(2)
    first = generate_weather(normals, 2, seed=7)
    again = generate_weather(normals, 2, seed=np.random.default_rng(7))
    other = generate_weather(normals, 2, seed=8)
    for field in ("tmin", "tmax", "precip"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
        assert not np.array_equal(getattr(first, field), getattr(other, field))
    double = generate_weather(normals, 1, seed=7, dtype=np.float64)
    assert double.tmin.dtype == np.float64


def test_climate_normals_are_checked():
    values = {k: np.array(v) for k, v in CLIMATES.items()}
    with pytest.raises(InputError, match="wet_day_fraction"):
        ClimateNormals(**{**values, "wet_day_fraction": np.full(5, 0.99)})
    with pytest.raises(InputError, match="diurnal_range"):
        ClimateNormals(**{**values, "diurnal_range": np.full(5, 1.0)})
    with pytest.raises(InputError, match="shape"):
        ClimateNormals(**{**values, "map": np.ones(4)})
    with pytest.raises(InputError, match="years"):
        generate_weather(ClimateNormals(**values), 0, seed=1)


# --- weather files ----------------------------------------------------------------------------------------


@pytest.mark.skipif(COOKFARM is None, reason="Cook Agronomy Farm weather file not available")
def test_read_cookfarm_weather():
    weather = read_weather_csv(COOKFARM, latitude=46.78)
    assert (weather.sites, weather.days) == (1, 729)
    # First row: Date 14976 (days since 1970-01-01, as R's Date counts them) = 2011-01-02, day of year 2.
    assert weather.doy[0] == 2
    assert (weather.tmin[0, 0], weather.tmax[0, 0], weather.precip[0, 0]) == (-12.8, -6.7, 0.0)
    assert (weather.tmin[0, 3], weather.tmax[0, 3], weather.precip[0, 3]) == (-8.3, -1.1, 1.5)
    assert weather.doy[-1] == 365  # 2012-12-30 in a leap year
    assert weather.notes == ()
    assert np.all(weather.pet >= 0) and weather.latitude.tolist() == [46.78]


def write_weather(path: Path, table: pd.DataFrame) -> Path:
    table.to_csv(path, index=False)
    return path


def daily_table(days: int = 400) -> pd.DataFrame:
    """Linear temperatures in time (so interpolation is exact), 1 mm of rain every day."""
    i = np.arange(days)
    return pd.DataFrame(
        {
            "DATE": pd.date_range("2020-01-01", periods=days).strftime("%Y-%m-%d"),
            "TMIN": 0.1 * i - 5,
            "TMAX": 0.1 * i + 3,
            "PRCP": np.ones(days),
        }
    )


def test_numeric_and_iso_dates_read_the_same(tmp_path):
    table = daily_table()
    iso = read_weather_csv(write_weather(tmp_path / "iso.csv", table), 10.0)
    numeric = table.assign(DATE=(pd.to_datetime(table["DATE"]) - pd.Timestamp("1970-01-01")).dt.days)
    days = read_weather_csv(
        write_weather(tmp_path / "numeric.csv", numeric.sample(frac=1, random_state=0)), 10.0
    )
    for field in ("tmin", "tmax", "precip", "doy"):
        np.testing.assert_array_equal(getattr(iso, field), getattr(days, field))
    np.testing.assert_allclose(iso.tmin[0], 0.1 * np.arange(400) - 5)
    assert iso.doy[0] == 1 and iso.doy[365] == 366  # 2020 is a leap year


def test_short_gaps_are_filled(tmp_path):
    table = daily_table()
    table.loc[30, "TMAX"] = np.nan  # one missing value
    gapped = table.drop(index=[10, 11])  # two missing days
    weather = read_weather_csv(write_weather(tmp_path / "gaps.csv", gapped), 10.0)
    assert weather.days == 400
    np.testing.assert_allclose(weather.tmin[0, 10:12], [-4.0, -3.9])
    np.testing.assert_allclose(weather.tmax[0, [10, 11, 30]], [4.0, 4.1, 6.0])
    np.testing.assert_array_equal(weather.precip[0, 9:13], [1.0, 0.0, 0.0, 1.0])
    assert weather.precip[0, 30] == 1.0  # the row with missing TMAX kept its rain
    assert len(weather.notes) == 1 and "filled 3 missing days" in weather.notes[0]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop(index=range(100, 110)), "rows .*10 consecutive days, 2020-04-10 to 2020-04-19"),
        (lambda t: t.assign(TMIN=np.where(np.arange(len(t)) // 6 == 20, np.nan, t["TMIN"])), "'TMIN'"),
        (lambda t: t.drop(columns="PRCP"), "no precip column.*prcp"),
        (lambda t: t.rename(columns={"TMIN": "TMAX", "TMAX": "TMIN"}), "'TMIN' exceeds 'TMAX' on 400 days"),
        (lambda t: t.assign(PRCP=-t["PRCP"]), "negative precipitation"),
        (lambda t: t.assign(TMIN=t["TMIN"] + 273.15, TMAX=t["TMAX"] + 273.15), "degrees Celsius"),
        (lambda t: t.iloc[:300], "300 days"),
        (lambda t: t.iloc[:0], "no rows"),
        (lambda t: pd.concat([t, t.iloc[[5]]]), "more than one row for 2020-01-06"),
        (lambda t: t.assign(DATE=t["DATE"].where(t.index != 3, "3rd of Jan")), "not dates"),
    ],
)
def test_bad_weather_files_are_refused(tmp_path, change, match):
    path = write_weather(tmp_path / "bad.csv", change(daily_table()))
    with pytest.raises(InputError, match=match) as error:
        read_weather_csv(path, 10.0)
    assert "bad.csv" in error.value.message
    assert error.value.hint


def test_missing_weather_file(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"nothere\.csv"):
        read_weather_csv(tmp_path / "nothere.csv", 10.0)
