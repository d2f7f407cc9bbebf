"""Fixtures for the core tests: the bundled real data, and tiny generated rasters for mechanics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

DATA = Path(__file__).resolve().parents[2] / "data"
HUNTER = DATA / "hunter_valley"
HUNTER_POINTS = HUNTER / "HV_subsoilpH.csv"
HUNTER_CRS = "EPSG:32756"
#: The 11 covariate columns of the Hunter Valley table, each extracted from hunterCovariates_sub_<name>.tif.
HUNTER_COVARIATES = [
    "Terrain_Ruggedness_Index",
    "AACN",
    "Landsat_Band1",
    "Elevation",
    "Hillshading",
    "Light_insolation",
    "Mid_Slope_Positon",
    "MRVBF",
    "NDVI",
    "TWI",
    "Slope",
]
LA_LIBERTAD = DATA / "la_libertad"


def hunter_raster(name: str) -> Path:
    return HUNTER / f"hunterCovariates_sub_{name}.tif"


@pytest.fixture
def grid_raster(tmp_path: Path):
    """Factory: a small GeoTIFF in EPSG:32756 with given values (bands, rows, cols) and nodata."""

    def make(values: np.ndarray, nodata: float | None = None, name: str = "grid.tif", **profile) -> Path:
        values = np.asarray(values, dtype=np.float32)
        if values.ndim == 2:
            values = values[None]
        path = tmp_path / name
        meta = {
            "driver": "GTiff",
            "height": values.shape[1],
            "width": values.shape[2],
            "count": values.shape[0],
            "dtype": "float32",
            "crs": HUNTER_CRS,
            "transform": from_origin(1000.0, 2000.0, 10.0, 10.0),
            "nodata": nodata,
            **profile,
        }
        with rasterio.open(path, "w", **meta) as dataset:
            dataset.write(values)
        return path

    return make
