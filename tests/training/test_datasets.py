from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest
import rasterio

from soilcarbon_core.errors import DataNotFoundError
from soilcarbon_training.datasets import (
    AFRICA_COVARIATES,
    AFRICA_TOPSOIL_ROWS,
    DATA,
    LA_LIBERTAD_BANDS,
    LA_LIBERTAD_COVARIATES,
    SoilDataset,
    decimal_year,
    feature_matrix,
    load_africa,
    load_la_libertad,
)

AFRICA = DATA / "africa_afsp"
LA_LIBERTAD = DATA / "la_libertad"


@pytest.fixture(scope="module")
def africa() -> SoilDataset:
    return load_africa()


@pytest.fixture(scope="module")
def la_libertad() -> SoilDataset:
    return load_la_libertad()


def test_africa_row_count_matches_a_plain_csv_count(africa):
    # Counted with the csv module, independently of pandas: topsoil horizons with an ORCDRC value.
    with gzip.open(AFRICA / "afsp_horizons.csv.gz", "rt", newline="") as handle:
        count = sum(1 for row in csv.DictReader(handle) if row["ORCDRC"] and float(row["UHDICM"]) <= 5)
    assert count == AFRICA_TOPSOIL_ROWS == len(africa) == 23_612
    assert africa.coords.shape == (len(africa), 2) and africa.ids.shape == (len(africa),)
    assert not np.isnan(africa.target).any() and africa.target.min() >= 0
    assert (africa.target_name, africa.unit, africa.crs, africa.geographic) == (
        "ORCDRC",
        "g/kg",
        "EPSG:4326",
        True,
    )
    lon, lat = africa.coords.T
    assert -26 < lon.min() and lon.max() < 64 and -36 < lat.min() and lat.max() < 38  # Africa and islands


def test_africa_covariates_leave_out_nitrogen(africa):
    assert list(africa.covariates.columns) == AFRICA_COVARIATES
    assert "NTO" not in africa.covariates.columns
    assert all(dtype == np.float64 for dtype in africa.covariates.dtypes)
    assert africa.covariates["UHDICM"].max() <= 5
    assert africa.spectral is None and africa.elevation is None and africa.slope is None


def test_africa_join_of_a_known_profile(africa):
    # Raw CSV rows: site "AO W3_0024,AfSPDB,14.776387,-13.412793,-4398.0,..." and its topsoil horizon
    # "AO W3_0024,0.0,9.0,10YR3/3,31.0,5.5,19.0,20.0,61.0,1.0,1.4,11.0,1.5,0.9".
    (row,) = np.flatnonzero(africa.ids == "AO W3_0024")
    np.testing.assert_array_equal(africa.coords[row], [14.776387, -13.412793])
    assert africa.target[row] == 31.0
    assert africa.dates[row] == np.datetime64("1957-12-17")  # 4398 = 12 * 365 + 3 leap days + 15
    expected = [0.0, 9.0, 5.5, 19.0, 20.0, 61.0, 1.0, 1.4, 11.0]
    np.testing.assert_array_equal(africa.covariates.iloc[row].to_numpy(), expected)


def test_africa_repeated_topsoil_horizons_stay_separate_samples(africa):
    # Two 0-20 cm horizons of "Chinyanghuku-1-3" (ORCDRC 3.67 and 5.25 in the raw file), site date 15615.
    rows = np.flatnonzero(africa.ids == "Chinyanghuku-1-3")
    assert rows.size == 2
    np.testing.assert_array_equal(africa.coords[rows], [[36.097, -6.93251]] * 2)
    assert sorted(africa.target[rows]) == [3.67, 5.25]
    assert africa.dates[rows].tolist() == [np.datetime64("2012-10-02").item()] * 2
    assert len(np.unique(africa.ids)) == len(africa) - 1_180


def test_africa_dates_are_nat_exactly_where_the_site_has_none(africa):
    with gzip.open(AFRICA / "afsp_sites.csv.gz", "rt", newline="") as handle:
        undated = {row["SOURCEID"] for row in csv.DictReader(handle) if not row["TIMESTRR"]}
    assert africa.dates.dtype == np.dtype("datetime64[D]")
    np.testing.assert_array_equal(np.isnat(africa.dates), np.isin(africa.ids, list(undated)))
    assert 0 < np.isnat(africa.dates).sum() < len(africa)


def test_decimal_year_known_answers():
    dates = np.array(["2012-01-01", "2012-07-02", "2011-12-31", "1957-12-15", "NaT"], dtype="datetime64[D]")
    result = decimal_year(dates)
    np.testing.assert_allclose(result[:4], [2012.0, 2012 + 183 / 366, 2011 + 364 / 365, 1957 + 348 / 365])
    assert np.isnan(result[4])


def test_africa_feature_matrix(africa):
    x, names = feature_matrix(africa)
    assert names == ["lon", "lat", "decimal_year", *AFRICA_COVARIATES]
    assert x.shape == (len(africa), len(names)) and x.dtype == np.float64
    np.testing.assert_array_equal(x[:, :2], africa.coords)
    np.testing.assert_array_equal(np.isnan(x[:, 2]), np.isnat(africa.dates))
    np.testing.assert_array_equal(x[:, 3:], africa.covariates.to_numpy())  # NaN kept in place


def test_la_libertad_points_and_target(la_libertad):
    assert len(la_libertad) == 118
    assert (la_libertad.target_name, la_libertad.unit, la_libertad.crs) == ("COSha30", "t/ha", "EPSG:32618")
    assert not la_libertad.geographic and la_libertad.dates is None
    # SOURCE.md: mean 50.6, range 32.4-90.3; first CSV row "S1,669030,448722,...,49.19,...".
    assert la_libertad.target.mean() == pytest.approx(50.6, abs=0.05)
    assert la_libertad.target.min() == pytest.approx(32.4, abs=0.05)
    assert la_libertad.target.max() == pytest.approx(90.3, abs=0.05)
    assert la_libertad.ids[0] == "S1" and la_libertad.target[0] == 49.19
    np.testing.assert_array_equal(la_libertad.coords[0], [669030.0, 448722.0])
    assert list(la_libertad.covariates.columns) == list(LA_LIBERTAD_COVARIATES)
    assert list(la_libertad.spectral.columns) == ["RED", "NIR", "SW1", "SW2"]
    assert not la_libertad.covariates.isna().any().any() and not la_libertad.spectral.isna().any().any()
    np.testing.assert_array_equal(la_libertad.elevation, la_libertad.covariates["elevation"])
    np.testing.assert_array_equal(la_libertad.slope, la_libertad.covariates["slope"])


@pytest.mark.parametrize("point", [0, 57, 117])
def test_la_libertad_values_are_bilinear_in_rasterio_samples(la_libertad, point):
    """Each value is the bilinear mean of rasterio's own ``sample()`` at the four surrounding cell centres."""
    x, y = la_libertad.coords[point]
    rasters = {**LA_LIBERTAD_COVARIATES, **LA_LIBERTAD_BANDS}
    for name, file in rasters.items():
        with rasterio.open(LA_LIBERTAD / file) as dataset:
            col, row = ~dataset.transform @ (x, y)
            r0, c0 = int(np.floor(row - 0.5)), int(np.floor(col - 0.5))
            fy, fx = row - 0.5 - r0, col - 0.5 - c0
            centres = [dataset.xy(r0 + dr, c0 + dc) for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1))]
            v = [float(value[0]) for value in dataset.sample(centres)]
        expected = (1 - fy) * ((1 - fx) * v[0] + fx * v[1]) + fy * ((1 - fx) * v[2] + fx * v[3])
        table = la_libertad.spectral if name in LA_LIBERTAD_BANDS else la_libertad.covariates
        assert table[name].iloc[point] == pytest.approx(expected, rel=1e-6, abs=1e-9), name


def test_la_libertad_feature_matrix_has_no_date_column(la_libertad):
    x, names = feature_matrix(la_libertad)
    assert names == ["x", "y", *LA_LIBERTAD_COVARIATES, *LA_LIBERTAD_BANDS]
    np.testing.assert_array_equal(x[:, 2:12], la_libertad.covariates.to_numpy())
    np.testing.assert_array_equal(x[:, 12:], la_libertad.spectral.to_numpy())


def test_missing_data_folder_names_the_file(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"afsp_sites\.csv\.gz"):
        load_africa(tmp_path)
