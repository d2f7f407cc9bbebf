"""The plugin loads like QGIS loads it, registers its provider, and its settings page works."""

from __future__ import annotations

import os

import pytest
from qgis.core import QgsApplication

from plugin import classFactory
from plugin.settings import ENV_VARIABLE, core_python, save_core_python


def test_class_factory_registers_provider_and_options_page(qgis_app, qgis_iface, qgis_processing):
    registered = []
    qgis_iface.registerOptionsWidgetFactory = registered.append
    qgis_iface.unregisterOptionsWidgetFactory = registered.remove
    plugin = classFactory(qgis_iface)
    plugin.initGui()
    try:
        registry = QgsApplication.processingRegistry()
        assert registry.providerById("soilcarbon") is not None
        assert registry.algorithmById("soilcarbon:samplecovariates") is not None
        assert len(registered) == 1
        plugin.initProcessing()  # qgis_process calls it too: no second provider
        assert [p.id() for p in registry.providers()].count("soilcarbon") == 1
    finally:
        plugin.unload()
    assert QgsApplication.processingRegistry().providerById("soilcarbon") is None
    assert registered == []


def test_headless_initprocessing_without_iface(qgis_app, qgis_processing):
    plugin = classFactory(None)
    plugin.initProcessing()
    try:
        assert QgsApplication.processingRegistry().providerById("soilcarbon") is not None
    finally:
        plugin.unload()


def test_interpreter_resolution_order(qgis_app, monkeypatch, tmp_path):
    pointer = tmp_path / "soilcarbon" / "core-python"
    pointer.parent.mkdir()
    pointer.write_text("/opt/detected/python\n")
    monkeypatch.setenv("SOILCARBON_CACHE", str(pointer.parent))
    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    save_core_python("")
    assert core_python() == ("/opt/detected/python", f"the set-up's environment ({pointer})")
    save_core_python("/opt/saved/python")
    try:
        assert core_python() == ("/opt/saved/python", "the plugin settings")
        monkeypatch.setenv(ENV_VARIABLE, "/opt/env/python")
        assert core_python() == ("/opt/env/python", f"the {ENV_VARIABLE} environment variable")
    finally:
        save_core_python("")


def test_options_page_checks_the_real_core_environment(qgis_app, monkeypatch):
    from plugin.options_page import SoilCarbonOptionsFactory

    page = SoilCarbonOptionsFactory().createWidget()
    text = page.check()
    assert text.startswith("Working: soilcarbon_core"), text
    assert "torch 2." in text and "Compute device:" in text

    monkeypatch.setenv(ENV_VARIABLE, "/nonexistent/bin/python")
    text = page.check()
    assert "Not working" in text and "'/nonexistent/bin/python'" in text and "does not exist" in text


def test_worker_environment_is_clean(monkeypatch):
    from plugin.worker_client import clean_environment

    for name in ("PYTHONPATH", "PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "LD_LIBRARY_PATH", "PYTHONHOME"):
        monkeypatch.setenv(name, "/from/qgis")
    env = clean_environment()
    for name in ("PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "LD_LIBRARY_PATH", "PYTHONHOME"):
        assert name not in env
    # PYTHONPATH is replaced by the folder holding the soilcarbon_core that matches the plugin.
    core, training = env["PYTHONPATH"].split(os.pathsep)
    assert os.path.isfile(os.path.join(core, "soilcarbon_core", "worker", "__main__.py"))
    assert os.path.isfile(os.path.join(training, "soilcarbon_training", "trainer.py"))
    assert env["PYTHONNOUSERSITE"] == "1"


@pytest.mark.parametrize("path", ["/nonexistent/bin/python", "/etc/hostname", "/usr/bin/python3"])
def test_wrong_interpreter_is_a_clear_error(monkeypatch, path):
    from qgis.core import QgsProcessingFeedback

    from plugin.worker_client import WorkerError, run_task

    monkeypatch.setenv(ENV_VARIABLE, path)
    with pytest.raises(WorkerError) as info:
        run_task("environment", {}, QgsProcessingFeedback())
    assert info.value.code == "worker_not_found"
    assert f"'{path}'" in info.value.message and ENV_VARIABLE in info.value.message
