"""'Evaluate model (spatial cross-validation)' on the 118 La Libertad SOC stocks: 3 spatial folds."""

from __future__ import annotations

import base64
import json
import math
import re

import pytest
from qgis.core import QgsProcessingException

from .conftest import LA_LIBERTAD_RASTERS
from .test_train_model import report_metrics

ALGORITHM = "soilcarbon:evaluatemodel"


def parameters(layer, tmp_path, **more) -> dict:
    return {
        "INPUT": layer,
        "TARGET_FIELD": "COSha30",
        "UNIT": "t/ha",
        "RASTERS": [str(path) for path in LA_LIBERTAD_RASTERS],
        "ELEVATION": "SRTMGL1_SRTMGL1.2",
        "MEMBERS": 2,
        "EPOCHS": 10,
        "TRAIN_SETTINGS": '{"batch_size": 64, "seed": 1}',
        "DEVICE": 1,  # cpu
        "CV": 0,  # spatial
        "FOLDS": 3,
        "BLOCK_SIZE": 1500,
        "OUTPUT_REPORT": str(tmp_path / "cv.html"),
        "OUTPUT_FOLDER": str(tmp_path / "cv"),
        **more,
    }


def test_spatial_cross_validation_reports_pooled_out_of_fold_metrics(provider, la_libertad_layer, tmp_path):
    import processing

    result = processing.run(ALGORITHM, parameters(la_libertad_layer, tmp_path))
    folder = tmp_path / "cv"
    assert result["OUTPUT_FOLDER"] == str(folder)
    assert sorted(path.name for path in folder.iterdir()) == [
        "calibration.png",
        "intervals.png",
        "report.json",
        "report.md",
    ]
    raw = json.loads((folder / "report.json").read_text())
    assert (raw["cv"], raw["folds"], raw["block_size_m"], raw["samples"], raw["members"]) == (
        "spatial",
        3,
        1500,
        118,
        2,
    )

    html = (tmp_path / "cv.html").read_text(encoding="utf-8")
    shown = report_metrics(html)
    assert {key: shown[key] for key in raw["metrics"]} == raw["metrics"]  # the worker's values, exactly
    for key in ("r2", "rmse", "mae", "nll", "crps", "picp90", "ece", "ence"):
        assert math.isfinite(shown[key]), key
    assert shown["r2"] <= 1 and 0 <= shown["picp90"] <= 1 and 0 <= shown["ece"] <= 0.5
    assert 0 < shown["rmse"] < 60 and shown["n"] == 118  # t/ha; every sample predicted once
    assert (result["R2"], result["RMSE"], result["PICP90"]) == (shown["r2"], shown["rmse"], shown["picp90"])
    assert "3-fold spatial" in html and "1500" in html and "batch_size" in html
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert [base64.b64decode(image) for image in images] == [
        (folder / "calibration.png").read_bytes(),
        (folder / "intervals.png").read_bytes(),
    ]


def test_the_raw_report_goes_to_a_temporary_folder_by_default(provider, la_libertad_layer, tmp_path):
    """Random folds, no output folder: the report still comes with its raw files somewhere temporary."""
    import processing

    more = {"CV": 1, "FOLDS": 2, "EPOCHS": 3, "BLOCK_SIZE": 0, "OUTPUT_FOLDER": None}
    result = processing.run(ALGORITHM, parameters(la_libertad_layer, tmp_path, **more))
    raw = json.loads(open(f"{result['OUTPUT_FOLDER']}/report.json").read())
    assert (raw["cv"], raw["folds"], raw["block_size_m"]) == ("random", 2, None)
    assert not str(result["OUTPUT_FOLDER"]).startswith(str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cv.html"]


def test_bad_training_settings_are_named(provider, la_libertad_layer, tmp_path):
    import processing

    with pytest.raises(QgsProcessingException, match=r"Unknown TrainConfig settings: batchsize"):
        processing.run(ALGORITHM, parameters(la_libertad_layer, tmp_path, TRAIN_SETTINGS='{"batchsize": 64}'))
    assert not (tmp_path / "cv.html").exists()
