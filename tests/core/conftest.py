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


LA_LIBERTAD_CRS = "EPSG:32618"
LA_LIBERTAD_POINTS = LA_LIBERTAD / "COSha30.csv"


def la_libertad_rasters() -> list:
    """Elevation, slope and two Landsat bands of La Libertad as named raster sources."""
    from soilcarbon_core.io.rasters import RasterSource

    terrain = LA_LIBERTAD / "SRTMGL1_SRTMGL1.2"
    return [
        RasterSource(Path(f"{terrain}.sdat"), "elevation"),
        RasterSource(Path(f"{terrain}_slope.sdat"), "slope"),
        RasterSource(LA_LIBERTAD / "GlobalForestChange2000-2014_first_REDL00.tif", "red"),
        RasterSource(LA_LIBERTAD / "GlobalForestChange2000-2014_first_NIRL00.tif", "nir"),
    ]


def build_untrained_model(members: int = 2, field_covariate: bool = True):
    """A complete (untrained, seeded) SoilCarbonModel on the La Libertad points: the mechanics of saving,
    loading and predicting do not depend on training."""
    from soilcarbon_core.features import Normaliser
    from soilcarbon_core.graph import GraphParams
    from soilcarbon_core.io.points import read_points
    from soilcarbon_core.model import SoilCarbonModel
    from soilcarbon_core.nn import SpTGNN, SpTGNNConfig
    from soilcarbon_core.predictor import reference_graph
    from soilcarbon_core.schema import InputSchema, available_features
    from soilcarbon_core.uncertainty import SigmaScaling

    points = read_points(LA_LIBERTAD_POINTS, crs=LA_LIBERTAD_CRS)
    values, sources, _ = available_features(points, la_libertad_rasters())
    covariates = ["elevation", "slope", "CO30"] if field_covariate else ["elevation", "slope"]
    schema = InputSchema(
        crs=points.crs.to_wkt(),
        geographic=False,
        covariates=covariates,
        imagery=["red", "nir"],
        elevation="elevation",
        slope="slope",
        sources={n: sources[n] for n in (*covariates, "red", "nir")},
    )
    table = schema.table(points, values)
    target = values["COSha30"]
    normaliser = Normaliser.fit(table, target)
    params = GraphParams(k_spatial=6, k_spectral=4, k_elevation=4)
    graph = reference_graph(table, normaliser, params, geographic=False)
    normaliser.fit_edges(graph.relations)
    config = SpTGNNConfig(
        members=members,
        imagery_features=2,
        covariate_features=len(covariates),
        hidden=16,
        relations={"spatial": 1, "spectral": 2, "elevation": 3},
    )
    return SoilCarbonModel(
        target="COSha30",
        unit="t/ha",
        schema=schema,
        network=SpTGNN(config).eval(),
        normaliser=normaliser,
        graph_params=params,
        reference=table,
        reference_target=target,
        calibrator=SigmaScaling(scale=1.5),
    )


@pytest.fixture(scope="session")
def untrained_model_path(tmp_path_factory) -> Path:
    return build_untrained_model().save(tmp_path_factory.mktemp("model") / "model.zip")


@pytest.fixture(scope="session")
def raster_model_path(tmp_path_factory) -> Path:
    """A model whose every input is a raster, so it can map a grid."""
    return build_untrained_model(field_covariate=False).save(tmp_path_factory.mktemp("model") / "rasters.zip")
