"""'Plan sampling campaign' on the La Libertad terrain grid, with the model the worker trained on its
118 SOC samples."""

from __future__ import annotations

import csv
import math
from itertools import combinations, pairwise
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsGraduatedSymbolRenderer,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsSimpleMarkerSymbolLayerBase,
    QgsVectorLayer,
)

from .conftest import LA_LIBERTAD_POINTS, LA_LIBERTAD_RASTERS

ALGORITHM = "soilcarbon:plancampaign"
TEMPLATE = LA_LIBERTAD_RASTERS[0]  # the elevation raster: 139 x 168 cells of 30 m, EPSG:32618
PLAN_FIELDS = [
    "rank",
    "expected_reduction",
    "reduction_pct",
    "epistemic_sd",
    "pred_mean",
    "nearest_sample_m",
    "reason",
]
MIN_SPACING = 200.0


def samples() -> np.ndarray:
    with LA_LIBERTAD_POINTS.open(newline="") as handle:
        return np.array([(float(row["x"]), float(row["y"])) for row in csv.DictReader(handle)])


def parameters(model: Path, **more) -> dict:
    return {
        "MODEL": str(model),
        "BUDGET": 5,
        "TEMPLATE": str(TEMPLATE),
        "RASTERS": [str(path) for path in LA_LIBERTAD_RASTERS],
        "OUTPUT": "TEMPORARY_OUTPUT",
        **more,
    }


def run(parameters: dict) -> dict:
    import processing

    return processing.run(ALGORITHM, parameters)


def sites(layer: QgsVectorLayer) -> list[dict]:
    return [
        {**dict(zip(layer.fields().names(), f.attributes(), strict=True)), "xy": f.geometry().asPoint()}
        for f in layer.getFeatures()
    ]


@pytest.fixture(scope="module")
def grid_plan(provider, soc_model, tmp_path_factory) -> tuple[dict, Path]:
    """Five sites among the template's cells, 200 m apart and from the samples, written to a file."""
    output = tmp_path_factory.mktemp("plan") / "campaign.gpkg"
    return run(parameters(soc_model, MIN_SPACING=MIN_SPACING, OUTPUT=str(output))), output


def test_grid_plan_is_ranked_spaced_and_styled(grid_plan):
    result, output = grid_plan
    layer = QgsVectorLayer(result["OUTPUT"], "plan", "ogr")
    assert layer.isValid() and layer.crs().authid() == "EPSG:32618"
    assert [n for n in layer.fields().names() if n != "fid"] == PLAN_FIELDS
    planned = sites(layer)
    assert result["SITES"] == len(planned) == 5
    assert [site["rank"] for site in planned] == [1, 2, 3, 4, 5]
    reductions = [site["expected_reduction"] for site in planned]
    assert all(a > b for a, b in pairwise(reductions)) and reductions[-1] > 0
    # The area's mean epistemic variance falls by the sites' reductions, in the outputs and in percent.
    before, after = result["AREA_SD_BEFORE"], result["AREA_SD_AFTER"]
    assert before**2 - sum(reductions) == pytest.approx(after**2, rel=1e-6)
    for site in planned:
        assert site["reduction_pct"] == pytest.approx(100 * site["expected_reduction"] / before**2, rel=1e-6)
    # Within the template, and each nearest_sample_m is the distance to the nearest La Libertad sample.
    extent = gdal.Info(str(TEMPLATE), format="json")["cornerCoordinates"]
    known = samples()
    for site in planned:
        x, y = site["xy"].x(), site["xy"].y()
        assert extent["upperLeft"][0] < x < extent["lowerRight"][0]
        assert extent["lowerRight"][1] < y < extent["upperLeft"][1]
        nearest = np.hypot(known[:, 0] - x, known[:, 1] - y).min()
        assert site["nearest_sample_m"] == pytest.approx(nearest, rel=1e-6)
        assert site["nearest_sample_m"] >= MIN_SPACING
        assert site["epistemic_sd"] > 0 and 10 < site["pred_mean"] < 150  # SOC stocks, t/ha
        assert f"{nearest / 1000:.1f} km from the nearest sample" in site["reason"]
    for a, b in combinations(planned, 2):
        assert math.dist((a["xy"].x(), a["xy"].y()), (b["xy"].x(), b["xy"].y())) >= MIN_SPACING

    # The .qml beside the file: stars graduated on reduction_pct (% in the legend), labelled by rank.
    assert output.with_suffix(".qml").is_file()
    reloaded = QgsVectorLayer(result["OUTPUT"], "again", "ogr")
    renderer = reloaded.renderer()
    assert isinstance(renderer, QgsGraduatedSymbolRenderer)
    assert renderer.classAttribute() == "reduction_pct" and renderer.ranges()[0].label().endswith("%")
    classes = renderer.ranges()  # (kept: the symbols belong to these copies)
    assert all(c.symbol().symbolLayer(0).shape() == QgsSimpleMarkerSymbolLayerBase.Star for c in classes)
    assert reloaded.labelsEnabled() and reloaded.labeling().settings().fieldName == "rank"


def write_half_mask(path: Path, west: bool) -> Path:
    """The template's grid, 1 (inaccessible) in its western (or eastern) half and 0 in the other."""
    template = gdal.Open(str(TEMPLATE))
    width, height = template.RasterXSize, template.RasterYSize
    mask = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 1, gdal.GDT_Byte)
    mask.SetGeoTransform(template.GetGeoTransform())
    mask.SetProjection(template.GetProjection())
    values = np.zeros((height, width), dtype=np.uint8)
    values[:, : width // 2] = 1
    mask.GetRasterBand(1).WriteArray(values if west else 1 - values)
    mask = None
    return path


def test_noisier_samples_leave_more_uncertainty(grid_plan, soc_model):
    """NOISE_RATIO reaches the planner: with r = 1 (a new sample as noisy as the model's aleatoric
    variance) the five sites remove less of the area's epistemic variance than with the default r = 0.05.
    VARIANCE_POWER too: with r = 1, gamma = 2 (sharper contrasts) removes more than gamma = 1."""
    default = grid_plan[0]
    flat = run(parameters(soc_model, MIN_SPACING=MIN_SPACING, NOISE_RATIO=1.0))
    assert flat["AREA_SD_BEFORE"] == pytest.approx(default["AREA_SD_BEFORE"])
    assert flat["AREA_SD_AFTER"] > default["AREA_SD_AFTER"]
    noisy = run(parameters(soc_model, MIN_SPACING=MIN_SPACING, NOISE_RATIO=1.0, VARIANCE_POWER=2.0))
    assert noisy["AREA_SD_BEFORE"] == pytest.approx(default["AREA_SD_BEFORE"])
    assert flat["AREA_SD_AFTER"] > noisy["AREA_SD_AFTER"]


def test_mask_keeps_sites_out_of_inaccessible_cells(grid_plan, soc_model, tmp_path):
    """The half of the grid where the unmasked plan put its first site is masked: no site lies there."""
    transform = gdal.Open(str(TEMPLATE)).GetGeoTransform()
    middle = transform[0] + transform[1] * (gdal.Open(str(TEMPLATE)).RasterXSize // 2)
    unmasked = sites(QgsVectorLayer(grid_plan[0]["OUTPUT"], "plan", "ogr"))
    west = unmasked[0]["xy"].x() < middle
    mask = write_half_mask(tmp_path / "half.tif", west)
    result = run(parameters(soc_model, MASK=str(mask), MIN_SPACING=MIN_SPACING))
    planned = sites(result["OUTPUT"])
    assert len(planned) == 5 and all((site["xy"].x() > middle) == west for site in planned)


def test_candidate_points_keep_their_attributes(provider, la_libertad_layer, soc_model):
    """The samples themselves as candidates (a re-sampling campaign): their attributes come first."""
    result = run(parameters(soc_model, TEMPLATE=None, CANDIDATES=la_libertad_layer, BUDGET=3))
    layer = result["OUTPUT"]
    assert layer.fields().names() == la_libertad_layer.fields().names() + PLAN_FIELDS
    by_id = {f["ID"]: f for f in la_libertad_layer.getFeatures()}
    planned = sites(layer)
    assert [site["rank"] for site in planned] == [1, 2, 3]
    for site in planned:
        sample = by_id[site["ID"]]
        assert site["xy"] == sample.geometry().asPoint() and site["COSha30"] == sample["COSha30"]
        assert site["nearest_sample_m"] == pytest.approx(0.0, abs=1e-6)


def test_bad_inputs_are_named(provider, la_libertad_layer, soc_model, tmp_path):
    la_libertad_layer.selectByIds([f.id() for f in la_libertad_layer.getFeatures()][:3])
    three = QgsProcessingFeatureSourceDefinition(la_libertad_layer.id(), selectedFeaturesOnly=True)
    tiny = "669000,669060,449000,449060 [EPSG:32618]"  # 2 x 2 cells of 30 m
    mask = write_half_mask(tmp_path / "west.tif", west=True)
    cases = [
        ({"BUDGET": 0}, r"The budget is 0 sites; plan at least one site"),
        ({"TEMPLATE": None, "CANDIDATES": three}, r"The budget \(5 sites\) exceeds the 3 candidate point"),
        ({"TEMPLATE": None, "EXTENT": tiny, "RESOLUTION": 30.0}, r"The budget \(5 sites\) exceeds the 4 "),
        ({"TEMPLATE": None}, r"Give the candidate sites: a point layer \(CANDIDATES\), a template raster"),
        ({"CANDIDATES": three}, r"either as points \(CANDIDATES\) or as a grid"),
        ({"TEMPLATE": None, "CANDIDATES": three, "MASK": str(mask)}, "The mask applies to a grid"),
        ({"RASTERS": [str(path) for path in LA_LIBERTAD_RASTERS[:3]]}, "missing: SRTMGL1_SRTMGL1_2_vbf"),
    ]
    for changes, message in cases:
        with pytest.raises(QgsProcessingException, match=message):
            run(parameters(soc_model, **changes))
