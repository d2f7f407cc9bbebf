"""'Train SOC model' on the 118 La Libertad SOC stocks: the model zip, its manifest and the HTML report."""

from __future__ import annotations

import base64
import re

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeatureSourceDefinition

from plugin.model_manifest import model_summary, read_manifest

from .conftest import LA_LIBERTAD, LA_LIBERTAD_RASTERS

ALGORITHM = "soilcarbon:trainmodel"
#: The rasters' names as the core stores them (layer names made field-safe: '.' -> '_').
RASTER_NAMES = [
    "SRTMGL1_SRTMGL1_2",
    "SRTMGL1_SRTMGL1_2_slope",
    "SRTMGL1_SRTMGL1_2_twi",
    "SRTMGL1_SRTMGL1_2_vbf",
]
IMAGERY = [LA_LIBERTAD / f"GlobalForestChange2000-2014_first_{band}L00.tif" for band in ("RED", "NIR")]
IMAGERY_NAMES = ["GlobalForestChange2000_2014_first_REDL00", "GlobalForestChange2000_2014_first_NIRL00"]
METRICS = ("r2", "rmse", "mae", "nll", "crps", "picp90", "ece", "ence")


def parameters(layer, tmp_path, **more) -> dict:
    return {
        "INPUT": layer,
        "TARGET_FIELD": "COSha30",
        "UNIT": "t/ha",
        "RASTERS": [str(path) for path in LA_LIBERTAD_RASTERS],
        "ELEVATION": "SRTMGL1_SRTMGL1.2",  # the layer name; the core's name is SRTMGL1_SRTMGL1_2
        "SLOPE": "SRTMGL1_SRTMGL1_2_slope",
        "MEMBERS": 2,
        "EPOCHS": 15,
        "TRAIN_SETTINGS": '{"batch_size": 64, "seed": 1}',
        "DEVICE": 1,  # cpu
        "OUTPUT_MODEL": str(tmp_path / "soc.zip"),
        "OUTPUT_REPORT": str(tmp_path / "soc.html"),
        **more,
    }


def report_metrics(html: str) -> dict[str, float]:
    """The exact values of the report's metrics table."""
    rows = re.findall(r'<tr data-metric="(\w+)"><th>[^<]*</th><td class="number" data-value="([^"]+)">', html)
    return {key: float(value) for key, value in rows}


def test_training_writes_a_model_and_a_self_contained_report(provider, la_libertad_layer, tmp_path):
    import processing

    result = processing.run(
        ALGORITHM,
        parameters(
            la_libertad_layer,
            tmp_path,
            IMAGERY=[str(path) for path in IMAGERY],
            COVARIATE_FIELDS=["DA30"],
        ),
    )
    assert result["OUTPUT_MODEL"] == str(tmp_path / "soc.zip") and result["SAMPLES"] == 118
    summary = model_summary(result["OUTPUT_MODEL"])
    assert (summary.kind, summary.target, summary.unit, summary.members) == ("sptgnn", "COSha30", "t/ha", 2)
    assert summary.samples == 118 and summary.source == "la_libertad"  # the layer, not a temporary file
    assert summary.raster_names == RASTER_NAMES + IMAGERY_NAMES
    assert summary.fields == ["DA30"]
    inputs = read_manifest(result["OUTPUT_MODEL"])["inputs"]
    assert (inputs["elevation"], inputs["slope"]) == ("SRTMGL1_SRTMGL1_2", "SRTMGL1_SRTMGL1_2_slope")
    assert read_manifest(result["OUTPUT_MODEL"])["training"]["config"]["batch_size"] == 64

    html = (tmp_path / "soc.html").read_text(encoding="utf-8")
    shown = report_metrics(html)
    assert set(METRICS) <= set(shown)
    for key in METRICS:  # the report shows the model's own validation metrics, to the last digit
        assert repr(shown[key]) == repr(summary.metrics[key])  # exact, NaN included
        assert f"{summary.metrics[key]:.4g}" in html
    assert (result["R2"], result["RMSE"]) == (summary.metrics["r2"], summary.metrics["rmse"])
    assert 0 < summary.metrics["rmse"] < 60  # t/ha: the stocks span about 20-110
    assert "COSha30" in html and "t/ha" in html and "learning_rate" in html  # target, unit, settings
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3  # learning curve, calibration, intervals: one file, nothing beside it
    assert all(base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["soc.html", "soc.zip"]


def test_selected_features_only_trains_on_the_selection(provider, la_libertad_layer, tmp_path):
    import processing

    la_libertad_layer.selectByIds([feature.id() for feature in la_libertad_layer.getFeatures()][:60])
    selection = QgsProcessingFeatureSourceDefinition(la_libertad_layer.id(), selectedFeaturesOnly=True)
    result = processing.run(ALGORITHM, parameters(selection, tmp_path, EPOCHS=5))
    assert result["SAMPLES"] == 60
    assert model_summary(result["OUTPUT_MODEL"]).samples == 60


def raster_without_crs(tmp_path) -> str:
    from osgeo import gdal

    path = tmp_path / "no_crs.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 10, 10, 1, gdal.GDT_Float32)
    dataset.SetGeoTransform((669000, 30, 0, 449000, 0, -30))
    dataset.GetRasterBand(1).Fill(1.0)
    dataset = None
    return str(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"TARGET_FIELD": "SOC"}, r"no field 'SOC' \(the target\)\. Its numeric fields: .*COSha30"),
        ({"TARGET_FIELD": "S_UDS"}, r"field 'S_UDS' of 'la_libertad' \(the target\) is not numeric"),
        ({"COVARIATE_FIELDS": ["DA30", "COB1r"]}, r"'COB1r' .*\(a covariate\) is not numeric"),
        ({"ELEVATION": "dem"}, r"elevation raster 'dem' \(ELEVATION\) is not among the covariate rasters"),
        ({"TRAIN_SETTINGS": '{"batch_size": 64'}, r"TRAIN_SETTINGS\) are not valid JSON"),
        ({"TRAIN_SETTINGS": "[64]"}, r"must be a JSON object"),
        ({"RASTER_NAMES": "a,b,a,c"}, r"Two inputs are named 'a'"),
        ({"OUTPUT_MODEL": "soc.model"}, r"must end in \.zip"),
    ],
)
def test_bad_inputs_are_named_before_the_worker_runs(provider, la_libertad_layer, tmp_path, changes, message):
    import processing

    with pytest.raises(QgsProcessingException, match=message):
        processing.run(ALGORITHM, parameters(la_libertad_layer, tmp_path, **changes))
    assert not list(tmp_path.iterdir())


def test_a_raster_without_crs_is_named(provider, la_libertad_layer, tmp_path):
    import processing

    raster = raster_without_crs(tmp_path)
    rasters = [*parameters(la_libertad_layer, tmp_path)["RASTERS"], raster]
    with pytest.raises(QgsProcessingException, match=r"The raster 'no_crs' .* has no CRS or an unknown one"):
        processing.run(ALGORITHM, parameters(la_libertad_layer, tmp_path, RASTERS=rasters))
