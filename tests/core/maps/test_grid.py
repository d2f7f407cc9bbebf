"""GridSpec: grids from an extent, windows and cell centres."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from soilcarbon_core.errors import CRSError, InputError, RasterError
from soilcarbon_core.maps import GridSpec

from ..conftest import LA_LIBERTAD


def test_extent_grid_covers_the_extent_with_whole_cells():
    grid = GridSpec.from_extent((1000.0, 2000.0, 1095.0, 2040.0), 10.0, "EPSG:32618")
    # 95 m / 10 m -> 10 columns (the last reaches 5 m past xmax); 40 m / 10 m -> exactly 4 rows.
    assert (grid.width, grid.height, grid.cells) == (10, 4, 40)
    assert grid.crs == CRS.from_epsg(32618)
    assert tuple(grid.transform)[:6] == (10.0, 0.0, 1000.0, 0.0, -10.0, 2040.0)


def test_windows_tile_the_grid_exactly_once():
    grid = GridSpec.from_extent((0.0, 0.0, 1030.0, 770.0), 1.0, "EPSG:3857")
    covered = np.zeros((grid.height, grid.width), dtype=int)
    for window in grid.windows(256):
        covered[
            window.row_off : window.row_off + window.height, window.col_off : window.col_off + window.width
        ] += 1
    assert (covered == 1).all()
    assert len(grid.windows(256)) == 5 * 4


def test_cell_centres_match_rasterio():
    grid = GridSpec.from_raster(LA_LIBERTAD / "SRTMGL1_SRTMGL1.2.sdat")
    window = grid.windows(64)[4]
    xs, ys = grid.cell_centres(window)
    rows, cols = np.meshgrid(
        np.arange(window.row_off, window.row_off + window.height),
        np.arange(window.col_off, window.col_off + window.width),
        indexing="ij",
    )
    ref_x, ref_y = rasterio.transform.xy(grid.transform, rows.ravel(), cols.ravel(), offset="center")
    np.testing.assert_allclose(xs, ref_x)
    np.testing.assert_allclose(ys, ref_y)


@pytest.mark.parametrize(
    ("extent", "resolution", "crs", "error", "match"),
    [
        ((0, 0, 0, 10), 1.0, "EPSG:3857", InputError, "empty"),
        ((0, 0, 10, 10), -1.0, "EPSG:3857", InputError, "resolution"),
        ((0, 0, 10, 10), 1.0, "EPSG:nope", CRSError, "map grid.*not a valid CRS"),
    ],
)
def test_bad_grid_parameters_are_named(extent, resolution, crs, error, match):
    with pytest.raises(error, match=match):
        GridSpec.from_extent(extent, resolution, crs)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_template_without_crs_is_named(tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32") as out:
        out.write(np.zeros((1, 4, 4), dtype="float32"))
    with pytest.raises(RasterError, match="has no CRS"):
        GridSpec.from_raster(path)
