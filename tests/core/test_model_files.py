"""Model files: safetensors + manifest, checksums, zips read without extraction, schema errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from soilcarbon_core.errors import ModelFileError, SchemaMismatchError
from soilcarbon_core.io.points import read_points
from soilcarbon_core.model import SoilCarbonModel
from soilcarbon_core.schema import available_features

from .conftest import LA_LIBERTAD_CRS, LA_LIBERTAD_POINTS, build_untrained_model, la_libertad_rasters


def _predict(model: SoilCarbonModel, n: int = 20):
    points = read_points(LA_LIBERTAD_POINTS, crs=LA_LIBERTAD_CRS)
    values, _, _ = available_features(points, la_libertad_rasters())
    return model.predictor().predict(model.schema.table(points, values).select(np.arange(n)))


@pytest.mark.parametrize("name", ["model", "model.zip"])
def test_round_trip_gives_identical_predictions(tmp_path, name):
    model = build_untrained_model()
    path = model.save(tmp_path / name)
    loaded = SoilCarbonModel.load(path)
    for field in ("mean", "aleatoric_sd", "epistemic_sd", "total_sd", "lower", "upper"):
        np.testing.assert_array_equal(getattr(_predict(loaded), field), getattr(_predict(model), field))
    assert loaded.schema == model.schema
    assert loaded.calibrator.scale == 1.5
    assert not list(tmp_path.glob("*partial*"))


def test_manifest_describes_the_model(untrained_model_path):
    with zipfile.ZipFile(untrained_model_path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert sorted(archive.namelist()) == ["manifest.json", "reference.safetensors", "weights.safetensors"]
        assert all(archive.read(name)[:8] != b"\x80\x04\x95" for name in archive.namelist())  # no pickle
    assert manifest["format"] == "soilcarbon-model"
    assert manifest["target"] == {"name": "COSha30", "unit": "t/ha"}
    assert manifest["ensemble_size"] == 2
    assert manifest["inputs"]["covariates"] == ["elevation", "slope", "CO30"]
    assert manifest["inputs"]["sources"]["red"] == "raster"
    assert len(manifest["normalisation"]["covariate_mean"]) == 3
    assert set(manifest["graph"]) >= {"k_spatial", "k_spectral", "k_elevation"}
    assert manifest["calibration"]["method"] == "sigma_scaling"
    assert manifest["reference_nodes"] == 118
    assert set(manifest["files"]) == {"weights.safetensors", "reference.safetensors"}
    assert all(len(digest) == 64 for digest in manifest["files"].values())
    assert manifest["versions"]["torch"]


def test_a_tampered_weight_file_fails_its_checksum(tmp_path):
    path = build_untrained_model().save(tmp_path / "model")
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"weights\.safetensors.*sha256"):
        SoilCarbonModel.load(path)


def test_missing_parts_and_foreign_files_are_named(tmp_path):
    path = build_untrained_model().save(tmp_path / "model")
    (path / "reference.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"lacks its weight file 'reference\.safetensors'"):
        SoilCarbonModel.load(path)
    with pytest.raises(ModelFileError, match="does not exist"):
        SoilCarbonModel.load(tmp_path / "nothing.zip")
    not_a_model = tmp_path / "other.zip"
    with zipfile.ZipFile(not_a_model, "w") as archive:
        archive.writestr(
            "manifest.json", json.dumps({"format": "soilcarbon-model", "files": {"../evil": "0" * 64}})
        )
    with pytest.raises(ModelFileError, match="unexpected file"):
        SoilCarbonModel.load(not_a_model)


def test_inputs_missing_a_feature_name_it_and_the_fix():
    model = build_untrained_model()
    points = read_points(LA_LIBERTAD_POINTS, crs=LA_LIBERTAD_CRS)
    values, _, _ = available_features(points, la_libertad_rasters()[:2])  # no Landsat bands
    del values["CO30"]
    with pytest.raises(SchemaMismatchError) as caught:
        model.schema.table(points, values)
    message = str(caught.value)
    assert "'red' (a raster: give it as PATH=red)" in message
    assert "'nir'" in message
    assert "'CO30' (a numeric field of the points)" in message
    assert "'elevation'" not in message
