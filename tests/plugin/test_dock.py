"""The analyst's dock: manifest display, the parameters it builds, and real runs in the task manager."""

from __future__ import annotations

import time

import pytest
from qgis.core import (
    QgsApplication,
    QgsGraduatedSymbolRenderer,
    QgsProcessingFeatureSourceDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt

from plugin.dock import (
    PREDICT_MAP,
    PREDICT_POINTS,
    RESULTS_GROUP,
    DockState,
    SoilCarbonDock,
    dock_parameters,
    error_text,
)

from .conftest import LA_LIBERTAD_POINTS, LA_LIBERTAD_RASTERS, csv_layer

TIMEOUT_S = 180


@pytest.fixture
def dock(qgis_iface, qgis_new_project, provider):
    dock = SoilCarbonDock(qgis_iface.mainWindow())
    yield dock
    dock.shutdown()
    dock.deleteLater()


@pytest.fixture
def rasters(qgis_new_project) -> list[QgsRasterLayer]:
    layers = [QgsRasterLayer(str(path), path.stem) for path in LA_LIBERTAD_RASTERS]
    QgsProject.instance().addMapLayers(layers)
    return layers


def wait_until_idle(dock: SoilCarbonDock) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while dock.current_run is not None:
        assert time.monotonic() < deadline, "the run did not end in time"
        QgsApplication.processEvents()
        time.sleep(0.02)


def checked_names(dock: SoilCarbonDock) -> list[str]:
    items = [dock.rasters.item(row) for row in range(dock.rasters.count())]
    return [item.text() for item in items if item.checkState() == Qt.Checked]


def test_dock_builds_and_waits_for_a_model(dock, la_libertad_layer):
    assert dock.points.currentLayer() is la_libertad_layer  # the only point layer
    assert [dock.action.itemData(i) for i in range(dock.action.count())] == [PREDICT_POINTS, PREDICT_MAP]
    assert [dock.device.itemText(i) for i in range(dock.device.count())] == ["auto", "cpu", "cuda"]
    assert not dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()
    assert dock.template.isEnabled() is False  # points mode


def test_choosing_the_model_shows_its_manifest_and_checks_its_rasters(dock, soc_model, rasters):
    other = QgsRasterLayer(str(LA_LIBERTAD_RASTERS[0].with_name("SRTMGL1_SRTMGL1.2_cprof.sdat")), "cprof")
    QgsProject.instance().addMapLayer(other)
    assert dock.rasters.count() == 5
    dock.model.setFilePath(str(soc_model))
    text = dock.manifest.text()
    assert text.startswith("Target: COSha30 (t/ha), 2-member ensemble"), text
    assert "Trained on 118 samples" in text and "Validation: r2" in text
    assert dock.manifest.styleSheet() == ""
    assert checked_names(dock) == [layer.name() for layer in rasters]  # not 'cprof'
    assert not dock.run_button.isEnabled() and dock.run_button.toolTip() == "Choose the point layer."
    QgsProject.instance().addMapLayer(csv_layer(LA_LIBERTAD_POINTS, "x", "y", "EPSG:32618", "la_libertad"))
    assert dock.run_button.isEnabled()


def test_unreadable_model_shows_the_error_and_run_stays_disabled(dock, la_libertad_layer, tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_text("not a model")
    dock.model.setFilePath(str(broken))
    assert "broken.zip' is not a model file" in dock.manifest.text()
    assert "#b00020" in dock.manifest.styleSheet()  # red
    assert not dock.run_button.isEnabled()


def test_dock_parameters_points_selected_only():
    state = DockState(
        action=PREDICT_POINTS,
        model="/models/soc.zip",
        points="points_id",
        selected_only=True,
        rasters=("elev_id", "slope_id"),
        dem="dem_id",
        device="cuda",
    )
    algorithm, parameters = dock_parameters(state)
    assert algorithm == "soilcarbon:predictpoints"
    assert parameters == {
        "MODEL": "/models/soc.zip",
        "RASTERS": ["elev_id", "slope_id"],
        "DEVICE": 2,
        "OUTPUT": "TEMPORARY_OUTPUT",
        "DEM": "dem_id",
        "INPUT": QgsProcessingFeatureSourceDefinition("points_id", selectedFeaturesOnly=True),
    }
    assert parameters["INPUT"].selectedFeaturesOnly
    _algorithm, all_points = dock_parameters(DockState(model="m.zip", points="points_id"))
    assert all_points["INPUT"] == "points_id"


def test_dock_parameters_map():
    state = DockState(
        action=PREDICT_MAP, model="m.zip", points="ignored", template="grid_id", s2="s2_id", s1="s1_id"
    )
    assert dock_parameters(state) == (
        "soilcarbon:predictmap",
        {
            "MODEL": "m.zip",
            "RASTERS": [],
            "DEVICE": 0,
            "OUTPUT": "TEMPORARY_OUTPUT",
            "S2": ["s2_id"],
            "S1": ["s1_id"],
            "TEMPLATE": "grid_id",
        },
    )


def test_error_text_keeps_the_message_not_the_traceback():
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad value\n'
    assert (
        error_text(["The raster 'a' has no CRS.", traceback])
        == "The raster 'a' has no CRS.\nValueError: bad value"
    )


def test_predict_at_points_through_the_task_manager(dock, la_libertad_layer, rasters, soc_model):
    dock.model.setFilePath(str(soc_model))
    dock.device.setCurrentText("cpu")
    dock.run_button.click()
    assert not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
    wait_until_idle(dock)

    assert "#b00020" not in dock.status.styleSheet(), dock.status.text()
    group = QgsProject.instance().layerTreeRoot().findGroup(RESULTS_GROUP)
    assert group is not None
    [layer] = [node.layer() for node in group.findLayers()]
    assert isinstance(layer, QgsVectorLayer) and layer.featureCount() == 118
    assert layer.name() == "COSha30 prediction"
    renderer = layer.renderer()
    assert isinstance(renderer, QgsGraduatedSymbolRenderer) and renderer.classAttribute() == "pred_mean"
    assert renderer.ranges()[0].label().endswith("t/ha")
    assert dock.status.text().startswith("Predicted 118 point(s); added 'COSha30 prediction'")
    assert dock.progress.value() == 100
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()


def test_cancel_while_the_worker_runs_adds_nothing(dock, la_libertad_layer, rasters, soc_model):
    before = set(QgsProject.instance().mapLayers())
    dock.model.setFilePath(str(soc_model))
    dock.run_button.click()
    # Cancel once the worker reports progress (past the points export, 0-5 %): it is running then.
    deadline = time.monotonic() + TIMEOUT_S
    while dock.progress.value() <= 5 and dock.current_run is not None:
        assert time.monotonic() < deadline, "the worker never reported progress"
        QgsApplication.processEvents()
        time.sleep(0.01)
    assert dock.current_run is not None, "the run ended before it could be cancelled"
    dock.cancel_button.click()
    wait_until_idle(dock)
    assert set(QgsProject.instance().mapLayers()) == before
    assert QgsProject.instance().layerTreeRoot().findGroup(RESULTS_GROUP) is None
    assert dock.status.text() == "Cancelled; nothing was added."
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()


def test_failure_shows_the_algorithms_message(dock, la_libertad_layer, soc_model):
    """Without the model's rasters the algorithm refuses, naming them; the dock shows that text."""
    dock.model.setFilePath(str(soc_model))
    dock.run_button.click()
    wait_until_idle(dock)
    assert "missing: SRTMGL1_SRTMGL1_2, SRTMGL1_SRTMGL1_2_slope" in dock.status.text()
    assert "Traceback" not in dock.status.text() and "#b00020" in dock.status.styleSheet()
    assert dock.run_button.isEnabled()


def test_predict_map_over_a_template_adds_mean_and_sd(dock, rasters, soc_model):
    dock.model.setFilePath(str(soc_model))
    dock.action.setCurrentIndex(dock.action.findData(PREDICT_MAP))
    dock.template.setLayer(rasters[0])
    dock.run_button.click()
    wait_until_idle(dock)
    assert "#b00020" not in dock.status.styleSheet(), dock.status.text()
    group = QgsProject.instance().layerTreeRoot().findGroup(RESULTS_GROUP)
    layers = {node.layer().name(): node.layer() for node in group.findLayers()}
    assert sorted(layers) == ["COSha30 mean", "COSha30 total sd"]  # the sd the post-processor adds, too
    assert all(isinstance(layer, QgsRasterLayer) and layer.bandCount() == 6 for layer in layers.values())
    assert (layers["COSha30 mean"].width(), layers["COSha30 mean"].height()) == (139, 168)
    assert QgsProject.instance().layerTreeRoot().findLayer(layers["COSha30 total sd"].id()).parent() is group
    assert dock.status.text().startswith("Predicted ")
    assert "of 23352 cells; added " in dock.status.text()


def test_plugin_action_toggles_the_dock_and_unload_removes_it(qgis_iface, qgis_new_project):
    from plugin import classFactory

    plugin = classFactory(qgis_iface)
    plugin.initProcessing = lambda: None  # the module's provider fixture is registered already
    plugin.initGui()
    window = qgis_iface.mainWindow()
    window.show()
    try:
        dock = plugin.dock
        assert dock is not None and not dock.isUserVisible() and not plugin.dock_action.isChecked()
        plugin.dock_action.trigger()
        assert dock.isUserVisible() and plugin.dock_action.isChecked()
        plugin.dock_action.trigger()
        assert not dock.isUserVisible() and not plugin.dock_action.isChecked()
    finally:
        plugin.unload()
        window.hide()
    assert plugin.dock is None and plugin.dock_action is None
