"""Fixtures for the plugin tests (QGIS environment, headless, pytest-qgis).

The worker runs in the core environment: ``SOILCARBON_CORE_PYTHON`` (set by ``make test``) names it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.append("/usr/share/qgis/python/plugins")  # QGIS's own 'processing' plugin
# Raster statistics stay in memory: no .aux.xml files written beside the bundled data.
os.environ["GDAL_PAM_ENABLED"] = "NO"

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


LA_LIBERTAD = DATA / "la_libertad"
LA_LIBERTAD_POINTS = LA_LIBERTAD / "COSha30.csv"
#: Terrain rasters of La Libertad; a model trained on them under their file stems (the layer names QGIS
#: and qgis_process give them) predicts from the same files without 'Raster names'.
LA_LIBERTAD_RASTERS = [
    LA_LIBERTAD / f"SRTMGL1_SRTMGL1.2{suffix}.sdat" for suffix in ("", "_slope", "_twi", "_vbf")
]


@pytest.fixture
def la_libertad_layer(qgis_new_project):
    from qgis.core import QgsProject

    layer = csv_layer(LA_LIBERTAD_POINTS, "x", "y", "EPSG:32618", "la_libertad")
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture(scope="session")
def soc_model(tmp_path_factory) -> Path:
    """A small SOC model (2 members) trained by the worker on the 118 La Libertad SOC stocks (t/ha)."""
    from qgis.core import QgsProcessingFeedback

    from plugin.worker_client import run_task

    output = tmp_path_factory.mktemp("model") / "la_libertad.zip"
    run_task(
        "train",
        {
            "points": {"path": str(LA_LIBERTAD_POINTS), "x_field": "x", "y_field": "y", "crs": "EPSG:32618"},
            "target": "COSha30",
            "unit": "t/ha",
            "rasters": [{"path": str(path), "name": path.stem} for path in LA_LIBERTAD_RASTERS],
            # Feature names are the raster names made field-safe ('.' -> '_').
            "elevation": "SRTMGL1_SRTMGL1_2",
            "slope": "SRTMGL1_SRTMGL1_2_slope",
            "members": 2,
            "device": "cpu",
            "train": {"epochs": 20, "batch_size": 64, "seed": 1},
            "output": str(output),
        },
        QgsProcessingFeedback(),
    )
    return output


@pytest.fixture(scope="session")
def qgis_process(tmp_path_factory):
    """Run ``qgis_process`` headless with the plugin staged (as ``make package`` does) in a fresh profile.

    Returns ``run(*arguments) -> CompletedProcess``; the staged plugin stands on its own (no PYTHONPATH).
    """
    import subprocess

    config = tmp_path_factory.mktemp("qgis-config")
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stage_plugin.py"), "--dir", str(plugins)], check=True
    )
    env = {**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(config), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONPATH", None)
    # Debian's /usr/bin/qgis_process wrapper passes --noversioncheck, which 3.22's binary rejects.
    program = "qgis_process.bin" if Path("/usr/bin/qgis_process.bin").exists() else "qgis_process"

    def run(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([program, *arguments], env=env, capture_output=True, text=True, timeout=timeout)

    enabled = run("plugins", "enable", "soilcarbon")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return run
