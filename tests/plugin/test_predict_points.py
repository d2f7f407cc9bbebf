"""'Predict SOC at points' on the La Libertad samples with a model the worker trained on them."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
from qgis.core import (
    QgsGraduatedSymbolRenderer,
    QgsProcessingFeatureSourceDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsSymbolLayer,
    QgsVectorLayer,
)

from plugin.settings import core_python

from .conftest import LA_LIBERTAD_POINTS, LA_LIBERTAD_RASTERS, ROOT

ALGORITHM = "soilcarbon:predictpoints"
FIELDS = [
    "pred_mean",
    "pred_sd_aleatoric",
    "pred_sd_epistemic",
    "pred_sd_total",
    "pred_lower90",
    "pred_upper90",
]


def rasters() -> list[str]:
    return [str(path) for path in LA_LIBERTAD_RASTERS]


def core_predictions(model: Path) -> dict[str, list[float]]:
    """Sample ID -> [mean, total sd] from ``soilcarbon_core.prediction`` itself, run in the core env."""
    python, _ = core_python()
    script = f"""
import json
from pathlib import Path
from soilcarbon_core.io.points import read_points
from soilcarbon_core.io.rasters import RasterSource
from soilcarbon_core.model import SoilCarbonModel
from soilcarbon_core.prediction import predict_valid
model = SoilCarbonModel.load({str(model)!r})
points = read_points({str(LA_LIBERTAD_POINTS)!r}, x_field="x", y_field="y", crs="EPSG:32618")
rasters = [RasterSource(path, Path(path).stem) for path in {rasters()!r}]
prediction, _, _ = predict_valid(model, model.predictor(), points, rasters, "bilinear", lambda *a: None)
ids = points.attributes["ID"].tolist()
print(json.dumps(dict(zip(ids, zip(prediction.mean.tolist(), prediction.total_sd.tolist())))))
"""
    done = subprocess.run(
        [python, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_points_get_calibrated_predictions_and_a_styled_sidecar(
    provider, la_libertad_layer, soc_model, tmp_path
):
    import processing

    output = tmp_path / "soc.gpkg"
    result = processing.run(
        ALGORITHM,
        {"INPUT": la_libertad_layer, "MODEL": str(soc_model), "RASTERS": rasters(), "OUTPUT": str(output)},
    )
    assert (result["PREDICTED"], result["TARGET"], result["UNIT"]) == (118, "COSha30", "t/ha")
    layer = QgsVectorLayer(result["OUTPUT"], "soc", "ogr")
    assert layer.isValid() and layer.featureCount() == 118
    assert layer.crs().authid() == "EPSG:32618"
    assert layer.fields().names()[-len(FIELDS) :] == FIELDS
    assert "COSha30" in layer.fields().names()  # the source attributes are kept
    core = core_predictions(soc_model)
    for feature in layer.getFeatures():
        mean, alea, epi, total, low, high = (feature[name] for name in FIELDS)
        # Invariants of the ensemble's decomposition and the interval around the mean.
        assert total == pytest.approx(math.hypot(alea, epi), rel=1e-4)
        assert low < mean < high
        assert 20 < mean < 150  # trained on SOC stocks of 20-110 t/ha
        # Each point keeps its own prediction: the core's, for the same model, points and rasters.
        assert [mean, total] == pytest.approx(core[feature["ID"]], rel=1e-5)

    # The .qml beside the file is what QGIS loads with it: graduated on the mean, unit in the legend.
    assert output.with_suffix(".qml").is_file()
    reloaded = QgsVectorLayer(result["OUTPUT"], "again", "ogr")
    renderer = reloaded.renderer()
    assert isinstance(renderer, QgsGraduatedSymbolRenderer)
    assert renderer.classAttribute() == "pred_mean"
    assert len(renderer.ranges()) == 5 and renderer.ranges()[0].label().endswith("t/ha")
    # Uncertainty as marker size: every class's marker scales with the total sd.
    for item in renderer.ranges():
        size = item.symbol().symbolLayer(0).dataDefinedProperties().property(QgsSymbolLayer.PropertySize)
        assert size.isActive() and "pred_sd_total" in size.expressionString()


def test_selected_features_only(provider, la_libertad_layer, soc_model, tmp_path):
    import processing

    la_libertad_layer.selectByIds([feature.id() for feature in la_libertad_layer.getFeatures()][:3])
    result = processing.run(
        ALGORITHM,
        {
            "INPUT": QgsProcessingFeatureSourceDefinition(la_libertad_layer.id(), selectedFeaturesOnly=True),
            "MODEL": str(soc_model),
            "RASTERS": rasters(),
            "OUTPUT": str(tmp_path / "selected.gpkg"),
        },
    )
    assert result["PREDICTED"] == 3


def test_missing_raster_is_named_before_the_worker_runs(provider, la_libertad_layer, soc_model):
    import processing
    from qgis.core import QgsProcessingException

    parameters = {"INPUT": la_libertad_layer, "MODEL": str(soc_model), "OUTPUT": "TEMPORARY_OUTPUT"}
    with pytest.raises(QgsProcessingException, match="missing: SRTMGL1_SRTMGL1_2_twi, SRTMGL1_SRTMGL1_2_vbf"):
        processing.run(ALGORITHM, {**parameters, "RASTERS": rasters()[:2]})


def test_raster_names_rename_the_layers(provider, la_libertad_layer, soc_model, tmp_path):
    """Layers named otherwise are matched through 'Raster names'."""
    import processing

    layers = [QgsRasterLayer(path, f"layer{index}") for index, path in enumerate(rasters())]
    for layer in layers:
        QgsProject.instance().addMapLayer(layer)
    result = processing.run(
        ALGORITHM,
        {
            "INPUT": la_libertad_layer,
            "MODEL": str(soc_model),
            "RASTERS": layers,
            "RASTER_NAMES": ",".join(path.stem for path in LA_LIBERTAD_RASTERS),
            "OUTPUT": str(tmp_path / "renamed.gpkg"),
        },
    )
    assert result["PREDICTED"] == 118
