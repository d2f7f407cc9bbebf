"""'Sample covariates at points' through Processing, the worker and back, on the real Hunter Valley data."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsProject,
    QgsVectorLayer,
    QgsWkbTypes,
)

from .conftest import DATA, HUNTER, HUNTER_RASTERS, csv_layer

ALGORITHM = "soilcarbon:samplecovariates"


def run(parameters: dict, feedback=None) -> dict:
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback)


def published(column: str) -> list[float]:
    with open(HUNTER / "HV_subsoilpH.csv", newline="") as handle:
        return [float(row[column]) for row in csv.DictReader(handle)]


def test_samples_reproduce_the_published_covariates(provider, hunter_layer, tmp_path):
    output = tmp_path / "sampled.gpkg"
    result = run(
        {
            "INPUT": hunter_layer,
            "RASTERS": [str(HUNTER_RASTERS["Elevation"]), str(HUNTER_RASTERS["TWI"])],
            "METHOD": 0,
            "OUTPUT": str(output),
        }
    )
    assert result["VALID_COUNT"] == 506
    layer = QgsVectorLayer(result["OUTPUT"], "sampled", "ogr")
    assert layer.isValid() and layer.featureCount() == 506
    assert layer.crs().authid() == "EPSG:32756"
    assert QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.PointGeometry
    names = layer.fields().names()
    assert names[-4:] == ["hunterCovariates_sub_Elevation", "hunterCovariates_sub_TWI", "valid", "problem"]
    assert "pH60_100cm" in names  # the source attributes are kept
    features = sorted(layer.getFeatures(), key=lambda f: (f["X"], f["Y"]))
    for raster, column in (
        ("hunterCovariates_sub_Elevation", "Elevation"),
        ("hunterCovariates_sub_TWI", "TWI"),
    ):
        matches = sum(abs(f[raster] - f[column]) <= 2e-6 * abs(f[column]) + 1e-6 for f in features)
        assert matches >= 500  # the few points exactly on a cell edge may take the neighbour cell
    assert max(abs(f["hunterCovariates_sub_Elevation"] - f["Elevation"]) for f in features) < 2.1
    assert all(f["valid"] == 1 and f["problem"] in ("", None) for f in features)


def test_selected_features_only(provider, hunter_layer, tmp_path):
    hunter_layer.selectByIds(sorted(hunter_layer.allFeatureIds())[:10])
    result = run(
        {
            "INPUT": QgsProcessingFeatureSourceDefinition(hunter_layer.id(), True),
            "RASTERS": [str(HUNTER_RASTERS["NDVI"])],
            "METHOD": 1,
            "OUTPUT": str(tmp_path / "selected.gpkg"),
        }
    )
    layer = QgsVectorLayer(result["OUTPUT"], "sampled", "ogr")
    assert layer.featureCount() == 10
    ndvi = published("NDVI")[:10]
    values = sorted(f["hunterCovariates_sub_NDVI"] for f in layer.getFeatures())
    assert all(-1.0 <= v <= 1.0 for v in values)
    assert abs(sum(values) - sum(ndvi)) < 0.3  # bilinear, close to the published (nearest) values


def memory_points(crs: QgsCoordinateReferenceSystem, points: list[tuple[float, float]], name: str):
    layer = QgsVectorLayer("Point", name, "memory")
    layer.setCrs(crs)
    features = []
    for x, y in points:
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    return layer


def assert_fails(parameters: dict, feedback, expected: str) -> None:
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as info:
        run(parameters, feedback)
    # Processing raises the algorithm's own exception, or reports a parameter check to the feedback.
    messages = [str(info.value), *feedback.errors]
    assert any(expected in message for message in messages), messages
    output = parameters["OUTPUT"]
    assert not os.path.exists(output), "no output may be left behind"


def test_raster_that_does_not_exist(provider, hunter_layer, tmp_path, recording_feedback):
    assert_fails(
        {
            "INPUT": hunter_layer,
            "RASTERS": [str(tmp_path / "missing.tif")],
            "OUTPUT": str(tmp_path / "o.gpkg"),
        },
        recording_feedback,
        f"The raster '{tmp_path / 'missing.tif'}' does not exist",
    )


def test_points_in_a_crs_that_cannot_be_transformed(provider, qgis_new_project, tmp_path, recording_feedback):
    local = QgsCoordinateReferenceSystem.fromWkt(
        'LOCAL_CS["site grid",LOCAL_DATUM["arbitrary",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
    )
    layer = memory_points(local, [(340386.4, 6368689.8)], "local_grid_points")
    assert_fails(
        {"INPUT": layer, "RASTERS": [str(HUNTER_RASTERS["Elevation"])], "OUTPUT": str(tmp_path / "o.gpkg")},
        recording_feedback,
        "cannot be transformed to the CRS of raster 'hunterCovariates_sub_Elevation.tif' (EPSG:32756)",
    )


def test_points_all_outside_the_rasters(provider, qgis_new_project, tmp_path, recording_feedback):
    colombia = csv_layer(DATA / "la_libertad" / "COSha30.csv", "x", "y", "EPSG:32618", "colombia_layer")
    QgsProject.instance().addMapLayer(colombia)
    assert_fails(
        {
            "INPUT": colombia,
            "RASTERS": [str(HUNTER_RASTERS["Elevation"])],
            "OUTPUT": str(tmp_path / "o.gpkg"),
        },
        recording_feedback,
        "None of the 118 points lies inside any raster",
    )


def test_empty_layer(provider, qgis_new_project, tmp_path, recording_feedback):
    layer = memory_points(QgsCoordinateReferenceSystem("EPSG:32756"), [], "empty_layer")
    assert_fails(
        {"INPUT": layer, "RASTERS": [str(HUNTER_RASTERS["Elevation"])], "OUTPUT": str(tmp_path / "o.gpkg")},
        recording_feedback,
        "has no features",
    )


def test_wrong_worker_interpreter(provider, hunter_layer, tmp_path, recording_feedback, monkeypatch):
    monkeypatch.setenv("SOILCARBON_CORE_PYTHON", "/opt/nowhere/bin/python")
    assert_fails(
        {
            "INPUT": hunter_layer,
            "RASTERS": [str(HUNTER_RASTERS["Elevation"])],
            "OUTPUT": str(tmp_path / "o.gpkg"),
        },
        recording_feedback,
        "The core interpreter '/opt/nowhere/bin/python' (from the SOILCARBON_CORE_PYTHON environment "
        "variable) does not exist",
    )


def test_cancel_leaves_no_output(provider, qgis_new_project, tmp_path):
    from qgis.core import QgsProcessingException

    class CancelInWorker(QgsProcessingFeedback):
        def setProgress(self, progress: float) -> None:
            super().setProgress(progress)
            if progress > 6.0:  # the worker has started sampling
                self.cancel()

    step = 2.0
    grid = [(338500 + i * step * 25, 6364300 + j * step * 25) for i in range(100) for j in range(120)]
    layer = memory_points(QgsCoordinateReferenceSystem("EPSG:32756"), grid, "many_points_layer")
    output = tmp_path / "cancelled.gpkg"
    with pytest.raises(QgsProcessingException):
        run(
            {"INPUT": layer, "RASTERS": [str(p) for p in HUNTER_RASTERS.values()], "OUTPUT": str(output)},
            CancelInWorker(),
        )
    assert not output.exists()
    # The worker writes its own output into Processing's temporary folder: no partial file stays there.
    assert not list(Path(QgsProcessingUtils.tempFolder()).rglob("*.partial-*"))


def test_qgis_process_runs_the_algorithm(tmp_path, hunter_layer, qgis_process):
    """Headless `qgis_process run`, with the plugin installed in a profile."""
    points = tmp_path / "points.gpkg"
    from qgis.core import QgsVectorFileWriter

    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    error = QgsVectorFileWriter.writeAsVectorFormatV3(
        hunter_layer, str(points), QgsProject.instance().transformContext(), options
    )
    assert error[0] == QgsVectorFileWriter.NoError
    output = tmp_path / "out.gpkg"
    done = qgis_process(
        "run",
        ALGORITHM,
        "--",
        f"INPUT={points}",
        f"RASTERS={HUNTER_RASTERS['Elevation']}",
        "METHOD=1",
        f"OUTPUT={output}",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID_COUNT:\t506" in done.stdout
    layer = QgsVectorLayer(str(output), "out", "ogr")
    assert layer.featureCount() == 506
    assert "hunterCovariates_sub_Elevation" in layer.fields().names()
