"""Fixtures for the plugin tests (QGIS environment, headless, pytest-qgis).

The worker runs in the core environment: ``SOILCARBON_CORE_PYTHON`` (set by ``make test``) names it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append("/usr/share/qgis/python/plugins")  # QGIS's own 'processing' plugin

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
HUNTER = DATA / "hunter_valley"
HUNTER_RASTERS = {name: HUNTER / f"hunterCovariates_sub_{name}.tif" for name in ("Elevation", "NDVI", "TWI")}


@pytest.fixture(scope="module")  # not session: test_plugin.py registers the provider itself
def provider(qgis_app, qgis_processing):
    from qgis.core import QgsApplication

    from plugin.provider import SoilCarbonProvider

    provider = SoilCarbonProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    yield provider
    QgsApplication.processingRegistry().removeProvider(provider)


def csv_layer(path: Path, x: str, y: str, crs: str, name: str):
    from qgis.core import QgsVectorLayer

    uri = f"file://{path}?delimiter=,&xField={x}&yField={y}&crs={crs}"
    layer = QgsVectorLayer(uri, name, "delimitedtext")
    assert layer.isValid(), uri
    return layer


@pytest.fixture
def hunter_layer(qgis_new_project):
    from qgis.core import QgsProject

    layer = csv_layer(HUNTER / "HV_subsoilpH.csv", "X", "Y", "EPSG:32756", "hunter")
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture
def recording_feedback():
    """A feedback that keeps the errors Processing reports (processing.run only says 'errors')."""
    from qgis.core import QgsProcessingFeedback

    class Recording(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.errors: list[str] = []

        def reportError(self, error: str, fatalError: bool = False) -> None:
            self.errors.append(error)

    return Recording()
