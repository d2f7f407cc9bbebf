"""Fine-tuning the TerraMind head on the real La Libertad samples (118 points, SRTM DEM chips of 32 x 10 m,
a random terramind_v1_tiny), then train -> predict end to end with the fine-tuned head in the model file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from pyogrio.raw import read

from soilcarbon_core.errors import SchemaMismatchError
from soilcarbon_core.imagery import ImageryInputs, ImagerySettings
from soilcarbon_core.imagery.stream import _state_sha256
from soilcarbon_core.model import BACKBONE, SoilCarbonModel
from soilcarbon_core.prediction import imagery_encoder, predict_points
from soilcarbon_core.predictor import PREDICTION_FIELDS
from soilcarbon_training.finetune import FineTuneConfig, fine_tune_head
from soilcarbon_training.folds import validation_split
from soilcarbon_training.jobs import prepare_data, train_model
from soilcarbon_training.trainer import TrainConfig

DATA = Path(__file__).resolve().parents[2] / "data" / "la_libertad"
POINTS = DATA / "COSha30.csv"
DEM = str(DATA / "SRTMGL1_SRTMGL1.2.sdat")
CRS = "EPSG:32618"


def labelled(cache_dir: Path, **settings):
    """The La Libertad samples with DEM chips for a random tiny TerraMind."""
    return prepare_data(
        POINTS,
        target="COSha30",
        crs=CRS,
        imagery_inputs=ImageryInputs(dem=[DEM], weights="random", cache_dir=str(cache_dir)),
        imagery_settings=ImagerySettings(backbone="terramind_v1_tiny", chip_size=32, **settings),
        device="cpu",
    )


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def equal(a: dict, b: dict) -> list[str]:
    """Names of the tensors that are bit-identical in both."""
    return [k for k in a if torch.equal(a[k], b[k])]


@pytest.fixture(scope="module")
def last_n(tmp_path_factory):
    data = labelled(tmp_path_factory.mktemp("cache"), finetune="last_n", blocks=1)
    fit, val = validation_split(
        np.arange(len(data.target)), data.table.xy, geographic=False, block_size_m=500.0, seed=0
    )
    return data, fit, val


def test_fine_tuning_trains_the_head_and_leaves_the_lower_model_alone(last_n):
    data, fit, val = last_n
    encoder = data.encoder
    assert len(data.target) == 118 and encoder.split == 11
    initial, lower = state(encoder.head), state(encoder.model)
    config = FineTuneConfig(epochs=6, patience=10)
    history = fine_tune_head(encoder, data.table, data.target, fit, val, config)
    assert [h["epoch"] for h in history] == list(range(6))
    scores = [h["validation_nll"] for h in history]
    assert np.isfinite(scores).all() and min(scores[1:]) < scores[0]

    tuned = state(encoder.head)
    # Every parameter of the last block and the final norm moved (the rest of the head is buffers).
    trained = {n for n, p in encoder.head.named_parameters() if p.requires_grad}
    assert {n.split(".")[0] for n in trained} == {"blocks", "norm"}
    assert trained == set(tuned) - set(equal(tuned, initial))
    assert len(equal(state(encoder.model), lower)) == len(lower)  # bit-identical
    assert encoder.report.encoded == 0  # the token pass of fine-tuning is not counted as the run's output

    # Fine-tuning starts from the initial head: a second run is the same run.
    again = fine_tune_head(encoder, data.table, data.target, fit, val, config)
    assert again == history
    assert len(equal(state(encoder.head), tuned)) == len(tuned)

    encoder.reset_head()
    assert len(equal(state(encoder.head), initial)) == len(initial)


def test_fine_tuned_features_differ_from_the_initial_heads(last_n):
    data, fit, val = last_n
    encoder = data.encoder
    encoder.reset_head()
    before = encoder.features(data.table.lonlat)
    fine_tune_head(encoder, data.table, data.target, fit, val, FineTuneConfig(epochs=2))
    after = encoder.features(data.table.lonlat)
    usable = np.isfinite(before).all(axis=1)
    assert usable.sum() == 117  # one sample's chip is mostly off the DEM
    np.testing.assert_array_equal(np.isfinite(after).all(axis=1), usable)
    assert np.abs(after[usable] - before[usable]).max() > 1e-4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    data = labelled(folder / "cache", finetune="lora", blocks=1)
    output = folder / "model.zip"
    summary = train_model(
        data,
        output,
        target="COSha30",
        unit="t/ha",
        members=2,
        train_config=TrainConfig(epochs=3),
        device="cpu",
    )
    return summary, output, folder / "cache"


def test_the_model_file_holds_the_fine_tuned_head(trained):
    summary, output, _ = trained
    assert Path(summary["output"]) == output and summary["samples"] == 118
    with zipfile.ZipFile(output) as archive:
        assert BACKBONE in archive.namelist()
        chips = json.loads(archive.read("manifest.json"))["inputs"]["chips"]
    assert chips["weights_sha256"] == "random:0"
    assert chips["finetune"] == "lora" and chips["modalities"] == {"DEM": ["DEM"]}
    model = SoilCarbonModel.load(output)
    assert model.backbone and all("lora_" in k or k.startswith(("blocks.", "norm.")) for k in model.backbone)
    assert chips["head_sha256"] == _state_sha256(model.backbone)
    assert model.schema.imagery == [f"terramind.{i:03d}" for i in range(192)]
    assert set(model.schema.sources.values()) == {"chips"}


def test_prediction_reads_the_training_features_from_the_cache(trained, tmp_path):
    _, output, cache = trained
    imagery = ImageryInputs(dem=[DEM], weights="random", cache_dir=str(cache))
    result = predict_points(output, POINTS, tmp_path / "pred.gpkg", imagery=imagery, device="cpu", crs=CRS)
    report = result["imagery"]
    assert (report["points"], report["cache_hits"], report["encoded"]) == (118, 118, 0)
    assert result["n_predicted"] == 118
    meta, _, _, data = read(tmp_path / "pred.gpkg", layer="samples")
    fields = list(meta["fields"])
    for name in PREDICTION_FIELDS:
        assert np.isfinite(data[fields.index(name)].astype(float)).all()

    # Without the cache, the fine-tuned head from the model file gives the features trained on.
    model = SoilCarbonModel.load(output)
    fresh = ImageryInputs(dem=[DEM], weights="random", cache=False)
    features = imagery_encoder(model, fresh, "cpu").features(model.reference.lonlat)
    np.testing.assert_allclose(features, model.reference.imagery, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_prediction_without_the_imagery_is_refused(trained, tmp_path):
    _, output, _ = trained
    with pytest.raises(SchemaMismatchError, match="DEM"):
        predict_points(output, POINTS, tmp_path / "pred.gpkg", device="cpu", crs=CRS)
    assert not (tmp_path / "pred.gpkg").exists()
