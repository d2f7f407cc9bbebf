from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from pyogrio.raw import write

from soilcarbon_core.errors import (
    CRSError,
    DataNotFoundError,
    EmptyLayerError,
    InputError,
    PointsFormatError,
)
from soilcarbon_core.io.points import read_points

from .conftest import HUNTER_CRS, HUNTER_POINTS


@pytest.fixture(scope="module")
def hunter_table() -> pd.DataFrame:
    return pd.read_csv(HUNTER_POINTS)


def write_vector(path, table: pd.DataFrame, crs: str | None = HUNTER_CRS, geometries=None) -> None:
    if geometries is None:
        geometries = shapely.points(table["X"].to_numpy(), table["Y"].to_numpy())
    write(
        path,
        shapely.to_wkb(geometries),
        [table[c].to_numpy() for c in table.columns],
        list(table.columns),
        geometry_type="Unknown" if crs else "Point",
        crs=crs,
    )


def test_csv_with_explicit_crs(hunter_table):
    points = read_points(HUNTER_POINTS, crs=HUNTER_CRS)
    assert len(points) == 506
    assert points.crs.to_epsg() == 32756
    np.testing.assert_array_equal(points.x, hunter_table["X"].to_numpy())
    np.testing.assert_array_equal(points.y, hunter_table["Y"].to_numpy())
    assert list(points.attributes.columns) == list(hunter_table.columns)


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp"])
def test_vector_formats_keep_coordinates_attributes_and_crs(tmp_path, hunter_table, suffix):
    path = tmp_path / f"points{suffix}"
    write_vector(path, hunter_table.head(50))
    points = read_points(path)
    assert len(points) == 50
    assert points.crs.to_epsg() == 32756
    np.testing.assert_allclose(points.x, hunter_table["X"].head(50), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        points.attributes["pH60_100cm"], hunter_table["pH60_100cm"].head(50), atol=1e-6
    )


def test_csv_lon_lat_columns_default_to_wgs84(tmp_path):
    path = tmp_path / "lonlat.csv"
    path.write_text("site;Longitude;Latitude;date\na;151.1;-32.8;2021-03-15\nb;151.2;-32.9;\n")
    points = read_points(path, date_field="date")
    assert points.crs.to_epsg() == 4326
    np.testing.assert_array_equal(points.x, [151.1, 151.2])
    assert points.dates[0] == np.datetime64("2021-03-15")
    assert np.isnat(points.dates[1])


def test_date_field_that_is_not_dates_names_the_rows(tmp_path):
    path = tmp_path / "dates.csv"
    path.write_text("lon,lat,when\n151.1,-32.8,2021-03-15\n151.2,-32.9,yesterday\n")
    with pytest.raises(InputError, match=r"'when'.*rows 2.*yesterday"):
        read_points(path, date_field="when")


def test_csv_without_coordinate_columns_lists_what_it_has(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("site,ph,soc\na,5.1,12\n")
    with pytest.raises(PointsFormatError, match=r"no coordinate columns.*site, ph, soc") as info:
        read_points(path)
    assert "Name the x and y columns" in str(info.value)


def test_csv_projected_columns_without_crs_asks_for_it():
    with pytest.raises(CRSError, match=r"'X'/'Y' but no CRS"):
        read_points(HUNTER_POINTS)


def test_csv_non_numeric_coordinates_name_the_rows(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("x,y\n1,2\nabc,3\n4,\n")
    with pytest.raises(PointsFormatError, match=r"Column 'x'.*1 missing or non-numeric.*rows 2"):
        read_points(path, crs="EPSG:32756")


def test_missing_file():
    with pytest.raises(DataNotFoundError, match="does not exist"):
        read_points("/nonexistent/points.gpkg")


def test_empty_layer(tmp_path, hunter_table):
    path = tmp_path / "empty.gpkg"
    write_vector(path, hunter_table.head(0), geometries=np.array([], dtype=object))
    with pytest.raises(EmptyLayerError, match="no features"):
        read_points(path)


def test_polygons_are_refused_with_the_fix(tmp_path, hunter_table):
    path = tmp_path / "polygons.gpkg"
    table = hunter_table.head(3)
    write_vector(path, table, geometries=shapely.buffer(shapely.points(table["X"], table["Y"]), 5.0))
    with pytest.raises(PointsFormatError, match="Centroids"):
        read_points(path)


def test_layer_without_crs_needs_one(tmp_path, hunter_table):
    path = tmp_path / "nocrs.geojson"
    write_vector(path, hunter_table.head(3), crs=None)
    # GeoJSON without a crs member is WGS 84 by definition; a GeoPackage may truly have none.
    gpkg = tmp_path / "nocrs.gpkg"
    write_vector(gpkg, hunter_table.head(3), crs=None)
    with pytest.raises(CRSError, match="has no CRS"):
        read_points(gpkg)
    assert read_points(gpkg, crs=HUNTER_CRS).crs.to_epsg() == 32756


def test_invalid_crs_text_is_named(tmp_path):
    path = tmp_path / "lonlat.csv"
    path.write_text("lon,lat\n151.1,-32.8\n")
    with pytest.raises(CRSError, match=r"\('EPSG:99999999'\) is not a valid CRS"):
        read_points(path, crs="EPSG:99999999")
