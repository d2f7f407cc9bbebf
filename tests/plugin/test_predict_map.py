"""'Predict SOC map' on the La Libertad terrain grid, with the model the worker trained on its samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
)

from .conftest import LA_LIBERTAD_POINTS, LA_LIBERTAD_RASTERS

ALGORITHM = "soilcarbon:predictmap"
BANDS = [
    "pred_mean",
    "pred_sd_aleatoric",
    "pred_sd_epistemic",
    "pred_sd_total",
    "pred_lower90",
    "pred_upper90",
]
TEMPLATE = LA_LIBERTAD_RASTERS[0]  # 139 x 168 cells of 30 m, EPSG:32618


def parameters(model: Path, output: Path, **more) -> dict:
    return {
        "MODEL": str(model),
        "TEMPLATE": str(TEMPLATE),
        "RASTERS": [str(path) for path in LA_LIBERTAD_RASTERS],
        "OUTPUT": str(output),
        **more,
    }


def run(parameters: dict, feedback=None) -> dict:
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback)


def test_map_is_a_named_cog_with_consistent_bands_and_styled(provider, qgis_new_project, soc_model, tmp_path):
    output = tmp_path / "soc.tif"
    result = run(parameters(soc_model, output, WINDOW_SIZE=64))
    assert result["CELLS"] == 139 * 168
    dataset = gdal.Open(str(output))
    assert (dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount) == (139, 168, 6)
    assert [dataset.GetRasterBand(b).GetDescription() for b in range(1, 7)] == BANDS
    assert dataset.GetMetadata("IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    template = gdal.Open(str(TEMPLATE))
    assert dataset.GetGeoTransform() == pytest.approx(template.GetGeoTransform())
    mean, alea, epi, total, low, high = (dataset.GetRasterBand(b).ReadAsArray() for b in range(1, 7))
    valid = mean != -9999
    assert valid.sum() == result["PREDICTED"] > 0.9 * 139 * 168
    assert np.allclose(total[valid], np.hypot(alea[valid], epi[valid]), rtol=1e-4)
    assert (low[valid] < mean[valid]).all() and (mean[valid] < high[valid]).all()
    assert 10 < np.median(mean[valid]) < 120  # SOC stocks of La Libertad's topsoil, t/ha

    # The sidecar style: the mean on a pseudocolour ramp spanning the band's values.
    assert output.with_suffix(".qml").is_file()
    layer = QgsRasterLayer(str(output), "again")
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer) and renderer.band() == 1
    assert renderer.classificationMin() == pytest.approx(mean[valid].min(), rel=1e-4)
    assert renderer.classificationMax() == pytest.approx(mean[valid].max(), rel=1e-4)
    assert renderer.shader().rasterShaderFunction().legendSettings().suffix() == " t/ha"


def test_extent_and_resolution_give_the_grid(provider, qgis_new_project, soc_model, tmp_path):
    output = tmp_path / "extent.tif"
    extent = "669000,670200,449000,450500 [EPSG:32618]"  # xmin, xmax, ymin, ymax
    result = run(parameters(soc_model, output, TEMPLATE=None, EXTENT=extent, RESOLUTION=100.0))
    assert result["CELLS"] == 12 * 15
    transform = gdal.Open(str(output)).GetGeoTransform()
    assert transform == pytest.approx((669000, 100, 0, 450500, 0, -100))


def test_map_loaded_on_completion_gets_mean_and_sd_layers(provider, qgis_new_project, soc_model, tmp_path):
    """Through the post-processor, as in the QGIS window: the mean on Viridis and the total sd on Magma."""
    import processing
    from qgis.core import QgsProcessingContext

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    output = tmp_path / "loaded.tif"
    processing.runAndLoadResults(ALGORITHM, parameters(soc_model, output), context=context)
    layers = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    assert {"COSha30 mean", "COSha30 total sd"} <= layers.keys(), layers.keys()
    assert layers["COSha30 mean"].renderer().band() == 1
    assert layers["COSha30 total sd"].renderer().band() == 4


def test_cancel_leaves_no_map(provider, qgis_new_project, soc_model, tmp_path):
    class CancelMidway(QgsProcessingFeedback):
        def setProgress(self, progress: float) -> None:
            super().setProgress(progress)
            if progress > 20.0:
                self.cancel()

    output = tmp_path / "cancelled.tif"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run(parameters(soc_model, output, WINDOW_SIZE=16), CancelMidway())
    assert list(tmp_path.iterdir()) == []


def test_qgis_process_predicts_the_map(soc_model, tmp_path, qgis_process):
    output = tmp_path / "cli.tif"
    done = qgis_process(
        "run",
        ALGORITHM,
        "--",
        f"MODEL={soc_model}",
        f"TEMPLATE={TEMPLATE}",
        *(f"RASTERS={path}" for path in LA_LIBERTAD_RASTERS),
        f"OUTPUT={output}",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"CELLS:\t{139 * 168}" in done.stdout
    assert gdal.Open(str(output)).RasterCount == 6 and output.with_suffix(".qml").is_file()


def write_raster_without_crs(path: Path) -> Path:
    source = gdal.Open(str(LA_LIBERTAD_RASTERS[2]))
    copy = gdal.GetDriverByName("GTiff").CreateCopy(str(path), source)
    copy.SetProjection("")
    copy = None
    return path


def test_bad_inputs_are_named(provider, qgis_new_project, soc_model, tmp_path, monkeypatch):
    output = tmp_path / "bad.tif"
    rasters = [str(path) for path in LA_LIBERTAD_RASTERS]
    no_crs = write_raster_without_crs(tmp_path / "SRTMGL1_SRTMGL1.2_twi.tif")
    cases = [
        ({"RASTERS": [*rasters[:2], str(no_crs), rasters[3]]}, "has no CRS or an unknown one"),
        ({"TEMPLATE": None}, "Give the map's grid: a template raster"),
        ({"MODEL": str(LA_LIBERTAD_POINTS)}, "is not a model file"),
        ({"MODEL": str(tmp_path / "nowhere.zip")}, "does not exist"),
        ({"RASTERS": rasters[:3]}, "missing: SRTMGL1_SRTMGL1_2_vbf"),
        ({"DATE": "21/11/2026"}, "is not a date; write it as YYYY-MM-DD"),
    ]
    for changes, message in cases:
        with pytest.raises(QgsProcessingException, match=message.replace("(", r"\(")):
            run({**parameters(soc_model, output), **changes})
    monkeypatch.setenv("SOILCARBON_CORE_PYTHON", "/opt/nowhere/bin/python")
    with pytest.raises(QgsProcessingException, match="core interpreter '/opt/nowhere/bin/python'"):
        run(parameters(soc_model, output))
    assert not output.exists()
