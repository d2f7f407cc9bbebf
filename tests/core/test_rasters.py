from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.warp import transform
from scipy.interpolate import RegularGridInterpolator

from soilcarbon_core.errors import CRSError, DataNotFoundError, RasterError
from soilcarbon_core.io.points import SamplePoints, read_points
from soilcarbon_core.io.rasters import RasterSource, SampleStatus, pixel_coordinates, sample_rasters

from .conftest import HUNTER_COVARIATES, HUNTER_CRS, HUNTER_POINTS, LA_LIBERTAD, hunter_raster


@pytest.fixture(scope="module")
def hunter():
    return read_points(HUNTER_POINTS, crs=HUNTER_CRS)


def points_at(x, y, crs=HUNTER_CRS) -> SamplePoints:
    x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
    return SamplePoints(x=x, y=y, crs=CRS.from_user_input(crs), attributes=pd.DataFrame(index=range(x.size)))


def cell_indices(path, x, y):
    with rasterio.open(path) as dataset:
        col, row = pixel_coordinates(dataset.transform, x, y)
        return dataset.read(1), row, col


def test_hunter_valley_known_answer_nearest(hunter):
    """Nearest sampling reproduces the 11 columns the ithir authors extracted.

    Every point inside a cell gets exactly the published value. A few points lie exactly on a cell
    edge; the authors' tool put those in the other of the two cells that share the edge, so for them
    the published value must be one of those two cells' values.
    """
    sampled = sample_rasters(hunter, [RasterSource(hunter_raster(c), c) for c in HUNTER_COVARIATES])
    assert sampled.names == HUNTER_COVARIATES
    assert sampled.valid.all()
    for index, name in enumerate(HUNTER_COVARIATES):
        published = hunter.attributes[name].to_numpy()
        grid, row, col = cell_indices(hunter_raster(name), hunter.x, hunter.y)
        on_row_edge = np.isclose(row, np.round(row), atol=1e-6)
        on_col_edge = np.isclose(col, np.round(col), atol=1e-6)
        on_edge = on_row_edge | on_col_edge
        assert on_edge.sum() <= 6
        np.testing.assert_allclose(sampled.values[~on_edge, index], published[~on_edge], rtol=2e-6, atol=1e-6)
        for i in np.flatnonzero(on_edge):
            r, c = int(np.floor(row[i])), int(np.floor(col[i]))
            assert sampled.values[i, index] == pytest.approx(grid[r, c])
            other = grid[r - 1, c] if on_row_edge[i] else grid[r, c - 1]
            assert np.isclose([grid[r, c], other], published[i], rtol=2e-6, atol=1e-6).any(), (name, i)
    elevation = sampled.values[:, HUNTER_COVARIATES.index("Elevation")]
    assert np.abs(elevation - hunter.attributes["Elevation"]).max() < 2.1


def test_bilinear_matches_scipy_on_interior_points(hunter):
    path = hunter_raster("Elevation")
    sampled = sample_rasters(hunter, [path], method="bilinear")
    grid, row, col = cell_indices(path, hunter.x, hunter.y)
    centres = RegularGridInterpolator((np.arange(grid.shape[0]) + 0.5, np.arange(grid.shape[1]) + 0.5), grid)
    interior = (row > 0.5) & (row < grid.shape[0] - 0.5) & (col > 0.5) & (col < grid.shape[1] - 0.5)
    expected = centres(np.column_stack([row, col]))
    interior &= np.isfinite(expected)  # scipy has no notion of nodata; compare where all 4 cells are data
    assert interior.sum() > 480
    expected = expected[interior]
    np.testing.assert_allclose(sampled.values[interior, 0], expected, rtol=1e-6)


def test_points_in_another_crs_land_on_the_same_cells(hunter):
    lon, lat = transform(HUNTER_CRS, "EPSG:4326", hunter.x, hunter.y)
    geographic = points_at(lon, lat, "EPSG:4326")
    rasters = [hunter_raster("Elevation"), hunter_raster("NDVI")]
    native = sample_rasters(hunter, rasters, method="bilinear")
    moved = sample_rasters(geographic, rasters, method="bilinear")
    np.testing.assert_allclose(moved.values, native.values, rtol=1e-5)


def test_saga_grids_match_rasterio_sample():
    points = read_points(LA_LIBERTAD / "COSha30.csv", crs="EPSG:32618")
    grids = [LA_LIBERTAD / "SRTMGL1_SRTMGL1.2.sdat", LA_LIBERTAD / "SRTMGL1_SRTMGL1.2_twi.sdat"]
    sampled = sample_rasters(points, grids)
    assert sampled.names == ["SRTMGL1_SRTMGL1_2", "SRTMGL1_SRTMGL1_2_twi"]
    assert sampled.valid.all() and len(points) == 118
    for index, grid in enumerate(grids):
        with rasterio.open(grid) as dataset:
            reference = np.array(
                [v[0] for v in dataset.sample(zip(points.x, points.y, strict=True))], dtype=float
            )
        np.testing.assert_array_equal(sampled.values[:, index], reference)


def test_nodata_outside_and_nan_are_reported_never_zero(grid_raster):
    values = np.arange(16, dtype=float).reshape(4, 4)
    values[1, 1] = -9999.0
    values[2, 3] = np.nan
    path = grid_raster(values, nodata=-9999.0)
    # Cell (row r, col c) spans x 1000+10c..+10, y 2000-10r..-10.
    points = points_at([1015.0, 1035.0, 1005.0, 2000.0], [1985.0, 1975.0, 1995.0, 1995.0])
    sampled = sample_rasters(points, [path])
    assert sampled.status[:, 0].tolist() == [
        SampleStatus.NODATA,
        SampleStatus.NODATA,
        SampleStatus.VALID,
        SampleStatus.OUTSIDE,
    ]
    assert np.isnan(sampled.values[[0, 1, 3], 0]).all()
    assert sampled.values[2, 0] == 0.0  # a real zero stays a value
    assert sampled.reports[0]["n_nodata"] == 2 and sampled.reports[0]["n_outside"] == 1


def test_bilinear_renormalises_over_valid_neighbours(grid_raster):
    values = np.arange(16, dtype=float).reshape(4, 4)
    values[1, 1] = -9999.0
    path = grid_raster(values, nodata=-9999.0)
    # Inside cell (0, 0), 3/8 of the way from its centre to the centre of cell (1, 1).
    point = points_at(1008.75, 1991.25)
    sampled = sample_rasters(point, [path], method="bilinear")
    # Neighbours (0,0)=0, (0,1)=1, (1,0)=4, (1,1)=nodata, weights 25/64, 15/64, 15/64, 9/64.
    expected = (0 * 25 + 1 * 15 + 4 * 15) / (25 + 15 + 15)
    assert sampled.values[0, 0] == pytest.approx(expected)
    own_cell_nodata = points_at(1014.0, 1986.0)
    assert sample_rasters(own_cell_nodata, [path], method="bilinear").status[0, 0] == SampleStatus.NODATA


def test_tiled_large_raster_matches_direct_indexing(grid_raster):
    rng = np.random.default_rng(7)
    values = rng.normal(size=(1300, 1100))
    path = grid_raster(values, tiled=True, blockxsize=256, blockysize=256)
    x = 1000.0 + rng.uniform(0, 11000, 5000)
    y = 2000.0 - rng.uniform(0, 13000, 5000)
    grid, row, col = cell_indices(path, x, y)
    nearest = sample_rasters(points_at(x, y), [path])
    np.testing.assert_array_equal(
        nearest.values[:, 0], grid[np.floor(row).astype(int), np.floor(col).astype(int)]
    )
    bilinear = sample_rasters(points_at(x, y), [path], method="bilinear")
    centres = RegularGridInterpolator((np.arange(1300) + 0.5, np.arange(1100) + 0.5), grid.astype(float))
    interior = (row > 0.5) & (row < 1299.5) & (col > 0.5) & (col < 1099.5)
    np.testing.assert_allclose(
        bilinear.values[interior, 0], centres(np.column_stack([row, col])[interior]), rtol=1e-5, atol=1e-6
    )


def test_bands_are_named_and_scaled(grid_raster, tmp_path):
    path = grid_raster(np.stack([np.full((2, 2), 10.0), np.full((2, 2), 20.0), np.full((2, 2), 30.0)]))
    with rasterio.open(path, "r+") as dataset:
        dataset.set_band_description(1, "red")
        dataset.set_band_description(2, "near infrared")
        dataset.scales = (0.5, 1.0, 1.0)
        dataset.offsets = (1.0, 0.0, 0.0)
    sampled = sample_rasters(points_at(1005.0, 1995.0), [RasterSource(path, "s2")])
    assert sampled.names == ["s2_red", "s2_near_infrared", "s2_b3"]
    assert sampled.values[0].tolist() == [6.0, 20.0, 30.0]


def test_duplicate_raster_names_get_suffixes(grid_raster):
    path = grid_raster(np.ones((2, 2)))
    sampled = sample_rasters(points_at(1005.0, 1995.0), [path, path], reserved_names=["grid_2"])
    assert sampled.names == ["grid", "grid_3"]


def test_missing_raster_is_named():
    with pytest.raises(DataNotFoundError, match=r"'/nowhere/dem\.tif' does not exist"):
        sample_rasters(points_at(0, 0), ["/nowhere/dem.tif"])


def test_raster_without_crs(grid_raster):
    path = grid_raster(np.ones((2, 2)), crs=None)
    with pytest.raises(RasterError, match="has no CRS"):
        sample_rasters(points_at(1005.0, 1995.0), [path])


def test_points_that_cannot_be_transformed(grid_raster):
    path = grid_raster(np.ones((2, 2)))
    local = 'LOCAL_CS["site grid",LOCAL_DATUM["arbitrary",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
    with pytest.raises(
        CRSError, match=r"cannot be transformed to the CRS of raster 'grid.tif' \(EPSG:32756\)"
    ):
        sample_rasters(points_at(1005.0, 1995.0, local), [path])


def test_unreadable_file_is_not_a_raster(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("not a raster")
    with pytest.raises(RasterError, match="cannot be read as a raster"):
        sample_rasters(points_at(0, 0), [path])
