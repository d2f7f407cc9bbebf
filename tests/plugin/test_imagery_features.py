"""'Imagery features at points' through Processing, the worker and back, on real Sentinel-2 L1C bands.

The bands (data/s2_l1c_sample, EPSG:32618, 20 m cells, uint16 reflectance x 10000) are read again here with
QGIS's own raster provider and compared with what the worker's chip statistics wrote.
"""

from __future__ import annotations

import os
import statistics

import pytest
from qgis.core import (
    NULL,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from .conftest import DATA, HUNTER_RASTERS

ALGORITHM = "soilcarbon:imageryfeatures"
S2 = DATA / "s2_l1c_sample"
#: Upper-left corner and cell size of the 20 m bands (B05, B8A, B11 share this grid).
ORIGIN_X, ORIGIN_Y, CELL = 435720.0, 4179460.0, 20.0
CHIP = 64  #: chip cells of 10 m: each 20 m raster cell holds 2 x 2 of them
#: (site, row, col) of the 20 m cells the points sit in, at least CHIP / 4 cells from every edge.
INSIDE = [("a", 100, 120), ("b", 486, 483), ("c", 800, 900)]
OUTSIDE = ("far", 300000.0, 4169000.0)  #: 135 km west of the tile
#: Output band name (TerraMind's order) -> file holding it.
BANDS = {"RED_EDGE_1": S2 / "s2_B05.tif", "NIR_NARROW": S2 / "s2_B8A.tif", "SWIR_1": S2 / "s2_B11.tif"}


def cell_point(row: int, col: int) -> tuple[float, float]:
    """5 m right of and below the cell's top-left corner.

    The chip's pixel centres are then the point plus multiples of 10 m, all 5 m inside a raster cell, never
    on a cell edge: the chip is exactly the 32 x 32 cells around the point's, each taken 2 x 2 times, so its
    mean and (population) standard deviation are those of these cells.
    """
    return ORIGIN_X + col * CELL + 5.0, ORIGIN_Y - row * CELL - 5.0


def chip_cells(path, row: int, col: int) -> list[float]:
    """The raster cells under the chip of the point in cell (row, col), read with QGIS."""
    half = CHIP // 4
    extent = QgsRectangle(
        ORIGIN_X + (col - half) * CELL,
        ORIGIN_Y - (row + half) * CELL,
        ORIGIN_X + (col + half) * CELL,
        ORIGIN_Y - (row - half) * CELL,
    )
    layer = QgsRasterLayer(str(path), "reference", "gdal")
    block = layer.dataProvider().block(1, extent, 2 * half, 2 * half)
    return [block.value(r, c) for r in range(2 * half) for c in range(2 * half)]


def value_at(path, x: float, y: float) -> float:
    layer = QgsRasterLayer(str(path), "reference", "gdal")
    value, ok = layer.dataProvider().sample(QgsPointXY(x, y), 1)
    assert ok
    return value


def sites_layer(sites: list[tuple[str, float, float]]) -> QgsVectorLayer:
    layer = QgsVectorLayer("Point?crs=EPSG:32618", "sites", "memory")
    layer.dataProvider().addAttributes([QgsField("site", QVariant.String)])
    layer.updateFields()
    features = []
    for site, x, y in sites:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttribute("site", site)
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


ALL_SITES = [(site, *cell_point(row, col)) for site, row, col in INSIDE] + [OUTSIDE]


class LogFeedback(QgsProcessingFeedback):
    """Keeps what the algorithm writes to the log."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def pushInfo(self, info: str) -> None:
        self.log.append(info)

    def pushWarning(self, warning: str) -> None:
        self.log.append(warning)


def run(parameters: dict, feedback=None) -> dict:
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """B05 and B11 as one two-band GeoTIFF without band descriptions: its band names must be given.

    A GeoTIFF, not a VRT: QGIS writes the statistics it computes into a VRT, which changes the file and so
    the embedding cache's fingerprint of it.
    """
    from osgeo import gdal

    path = tmp_path_factory.mktemp("stack") / "s2_stack.tif"
    bands = gdal.BuildVRT("", [str(BANDS["RED_EDGE_1"]), str(BANDS["SWIR_1"])], separate=True)
    gdal.Translate(str(path), bands, format="GTiff").FlushCache()
    return path


def statistics_parameters(stack, cache, output, **overrides) -> dict:
    """Chip statistics of the stack (named B05,B11) and the B8A file (named by its file name)."""
    return {
        "S2": [str(stack), str(BANDS["NIR_NARROW"])],
        "S2_LEVEL": 1,  # L1C
        "S2_BANDS": "B05, B11;",
        "BACKBONE": 1,  # none
        "EMBEDDING_CACHE": str(cache),
        "DEVICE": 1,  # cpu
        "OUTPUT": str(output),
        **overrides,
    }


@pytest.fixture(scope="module")
def first_run(provider, stack, tmp_path_factory):
    folder = tmp_path_factory.mktemp("first_run")
    feedback = LogFeedback()
    parameters = statistics_parameters(stack, folder / "cache", folder / "features.gpkg")
    result = run({"INPUT": sites_layer(ALL_SITES), **parameters}, feedback)
    layer = QgsVectorLayer(result["OUTPUT"], "features", "ogr")
    assert layer.isValid()
    return {
        "result": result,
        "layer": layer,
        "features": {f["site"]: f for f in layer.getFeatures()},
        "log": feedback.log,
        "stack": stack,
        "cache": folder / "cache",
    }


def test_fields_are_the_chip_statistics_of_the_bands(first_run):
    layer, result = first_run["layer"], first_run["result"]
    assert result["BACKBONE_USED"] == "none" and result["VALID_COUNT"] == 3
    assert layer.featureCount() == len(ALL_SITES)
    assert layer.crs().authid() == "EPSG:32618"
    expected = [f"S2L1C.{band}.{stat}" for band in BANDS for stat in ("point", "mean", "sd")]
    # The GeoPackage's fid, the source's attributes, the features; no join key left over.
    assert layer.fields().names() == ["fid", "site", *expected, "imagery_valid"]
    for site, row, col in INSIDE:
        feature = first_run["features"][site]
        assert feature["imagery_valid"] == 1
        x, y = cell_point(row, col)
        assert feature.geometry().asPoint() == QgsPointXY(x, y)
        for band, path in BANDS.items():
            cells = chip_cells(path, row, col)
            assert feature[f"S2L1C.{band}.point"] == value_at(path, x, y)  # integers, exact in float32
            assert feature[f"S2L1C.{band}.mean"] == pytest.approx(statistics.fmean(cells), rel=1e-6)
            assert feature[f"S2L1C.{band}.sd"] == pytest.approx(statistics.pstdev(cells), rel=1e-5)
            assert statistics.pstdev(cells) > 10.0  # a real texture, so a wrong window would show


def test_a_point_outside_the_rasters_is_masked(first_run):
    outside = first_run["features"]["far"]
    assert outside["imagery_valid"] == 0
    assert all(outside[name] == NULL for name in outside.fields().names() if name.startswith("S2L1C."))
    log = first_run["log"]
    assert "Backbone: none, chip statistics (point value, chip mean and sd per band): 9 fields." in log
    assert any(line.startswith("S2L1C: 1 of 4 chip(s) masked") for line in log), log
    assert "Embedding cache: 0 of 4 point(s) read from the cache, 4 computed." in log
    assert "3 of 4 point(s) have imagery features (imagery_valid = 1)." in log


def test_selected_features_come_from_the_cache(first_run, qgis_new_project, tmp_path):
    layer = sites_layer(ALL_SITES)
    QgsProject.instance().addMapLayer(layer)
    chosen = {f.id(): f["site"] for f in layer.getFeatures() if f["site"] in ("a", "c")}
    layer.selectByIds(list(chosen))
    feedback = LogFeedback()
    parameters = statistics_parameters(first_run["stack"], first_run["cache"], tmp_path / "selected.gpkg")
    result = run({"INPUT": QgsProcessingFeatureSourceDefinition(layer.id(), True), **parameters}, feedback)
    selected = QgsVectorLayer(result["OUTPUT"], "selected", "ogr")
    assert selected.featureCount() == 2 and result["VALID_COUNT"] == 2
    assert "Embedding cache: 2 of 2 point(s) read from the cache, 0 computed." in feedback.log
    names = [name for name in selected.fields().names() if name.startswith("S2L1C.")]
    for feature in selected.getFeatures():
        before = first_run["features"][feature["site"]]
        assert [feature[name] for name in names] == [before[name] for name in names]


def assert_fails(parameters: dict, expected: str) -> None:
    with pytest.raises(QgsProcessingException) as info:
        run(parameters)
    assert expected in str(info.value)
    assert not os.path.exists(parameters["OUTPUT"]), "no output may be left behind"


def test_terramind_without_its_weights(provider, tmp_path):
    missing = tmp_path / "TerraMind_v1_tiny.pt"
    assert_fails(
        {
            "INPUT": sites_layer(ALL_SITES[:1]),
            "S2": [str(BANDS["RED_EDGE_1"])],
            "S2_LEVEL": 1,
            "DEM": str(HUNTER_RASTERS["Elevation"]),  # any single-band raster: the weights are missed first
            "BACKBONE": 2,  # terramind_v1_tiny
            "TERRAMIND_WEIGHTS": str(missing),
            "EMBEDDING_CACHE": str(tmp_path / "cache"),
            "DEVICE": 1,
            "OUTPUT": str(tmp_path / "o.gpkg"),
        },
        f"TerraMind weights are needed and missing: '{missing}' does not exist.",
    )


def test_no_imagery_raster(provider, tmp_path):
    assert_fails(
        {"INPUT": sites_layer(ALL_SITES), "OUTPUT": str(tmp_path / "o.gpkg")},
        "No imagery raster was given: choose Sentinel-2 rasters (S2), Sentinel-1 rasters (S1) or a DEM "
        "(DEM).",
    )


def test_band_groups_must_match_the_rasters(provider, stack, tmp_path):
    parameters = statistics_parameters(stack, tmp_path / "cache", tmp_path / "o.gpkg", S2_BANDS="B05,B11")
    assert_fails(
        {"INPUT": sites_layer(ALL_SITES), **parameters},
        "'B05,B11' names 1 band group(s) for 2 Sentinel-2 raster(s).",
    )
