"""The imagery stream's node features on the real Sentinel-2 L1C bands of tile 18SVG (EPSG:32618): chip
statistics without TerraMind, TerraMind embeddings per modality set, the token path used for
fine-tuning against the feature path used for prediction, and the checks against a model's settings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from affine import Affine
from pyogrio.raw import read
from rasterio.crs import CRS
from rasterio.warp import transform

from soilcarbon_core.errors import InputError, SchemaMismatchError
from soilcarbon_core.imagery.chips import extract_chips
from soilcarbon_core.imagery.encoder import RANDOM, WIDTH, encoder_tokens
from soilcarbon_core.imagery.export import VALID_FIELD, export_imagery_features
from soilcarbon_core.imagery.inputs import ImageryInputs, chip_features, default_inputs
from soilcarbon_core.imagery.modalities import MODALITIES
from soilcarbon_core.imagery.sources import modality_rasters
from soilcarbon_core.imagery.stream import ImageryEncoder, ImagerySettings
from soilcarbon_core.io.points import SamplePoints
from soilcarbon_core.prediction import imagery_encoder

S2 = Path(__file__).resolve().parents[3] / "data" / "s2_l1c_sample"
TILE = "EPSG:32618"
TINY = "terramind_v1_tiny"
#: The bundled bands as CLI specs, and their TerraMind names in S2L1C order.
S2_SPECS = [str(S2 / f"s2_{band}.tif") for band in ("B01", "B05", "B8A", "B11", "B12")]
S2_BANDS = ["COASTAL_AEROSOL", "RED_EDGE_1", "NIR_NARROW", "SWIR_1", "SWIR_2"]
#: UTM points inside the tile, 5 m or more inside a source cell of every band (20 m and 60 m lattices),
#: one near the tile's west edge (its 32 x 10 m chip is 80 % inside), one east of the tile.
INSIDE = np.array([[441_235.0, 4_171_005.0], [447_865.0, 4_165_455.0], [452_005.0, 4_176_125.0]])
EDGE = np.array([[435_825.0, 4_168_005.0]])
OUTSIDE = np.array([[460_000.0, 4_170_000.0]])
#: West of this easting, the generated DEM covers the tile.
DEM_EAST = 445_000.0


def lonlat_of(xy: np.ndarray) -> np.ndarray:
    lon, lat = transform(TILE, "EPSG:4326", xy[:, 0], xy[:, 1])
    return np.column_stack([lon, lat])


def s2_rasters(specs: list[str] = S2_SPECS):
    return modality_rasters("S2L1C", specs)


def write_dem(path: Path) -> Path:
    """A 30 m float32 DEM (m) in EPSG:32618 over the west part of the tile; smooth relief with a ridge."""
    left, top, cell = 435_000.0, 4_180_000.0, 30.0
    cols, rows = int((DEM_EAST - left) / cell), int((top - 4_159_000.0) / cell)
    x = left + cell * (np.arange(cols) + 0.5)
    y = top - cell * (np.arange(rows) + 0.5)
    elevation = 150.0 + 0.02 * (x[None] - left) + 40.0 * np.sin(y[:, None] / 700.0)
    profile = {"driver": "GTiff", "height": rows, "width": cols, "count": 1, "dtype": "float32", "crs": TILE}
    with rasterio.open(path, "w", transform=Affine(cell, 0.0, left, 0.0, -cell, top), **profile) as dst:
        dst.write(elevation.astype(np.float32)[None])
    return path


@pytest.fixture(scope="module")
def dem(tmp_path_factory) -> Path:
    return write_dem(tmp_path_factory.mktemp("dem") / "dem.tif")


# --- chip statistics ------------------------------------------------------------------------------------


def test_chip_statistics_are_centre_mean_and_sd_of_the_chips():
    lonlat = lonlat_of(np.concatenate([INSIDE, EDGE, OUTSIDE]))
    lonlat = np.concatenate([lonlat, [[np.nan, np.nan]]])
    encoder = ImageryEncoder(ImagerySettings(backbone="none", chip_size=32), [s2_rasters()], cache_dir=False)
    assert encoder.names[:3] == [
        "S2L1C.COASTAL_AEROSOL.point",
        "S2L1C.COASTAL_AEROSOL.mean",
        "S2L1C.COASTAL_AEROSOL.sd",
    ]
    assert len(encoder.names) == 3 * len(S2_BANDS)
    got = encoder.features(lonlat)
    assert got.dtype == np.float64 and got.shape == (6, 15)

    chips = extract_chips(lonlat, encoder.rasters, 32)
    values = chips.values["S2L1C"].astype(np.float64)  # (N, 5, 32, 32)
    expected = np.stack([values[:, :, 16, 16], values.mean(axis=(2, 3)), values.std(axis=(2, 3))], axis=2)
    expected = expected.reshape(len(lonlat), -1)
    np.testing.assert_array_equal(chips.present[:, 0], [True, True, True, True, False, False])
    np.testing.assert_allclose(got[:4], expected[:4], rtol=1e-6)
    assert np.isnan(got[4:]).all()
    assert encoder.report.masked == {"S2L1C": 2} and encoder.report.encoded == 6

    # The centre pixel is the raster cell under the point itself (the bands' own lookup).
    for k, spec in enumerate(S2_SPECS):
        with rasterio.open(spec) as src:
            at_points = np.array([v[0] for v in src.sample(INSIDE.tolist())], dtype=np.float64)
        np.testing.assert_array_equal(got[:3, 3 * k], at_points)
    assert (got[:4, 2::3] > 0).all()  # real imagery varies within 320 m


def test_chip_features_and_export_carry_the_same_values(tmp_path):
    xy = np.concatenate([INSIDE, OUTSIDE])
    points = SamplePoints(xy[:, 0], xy[:, 1], CRS.from_string(TILE), pd.DataFrame({"id": range(4)}))
    inputs = ImageryInputs(s2=S2_SPECS[1:3], s2_level="L1C", cache=False)
    settings = ImagerySettings(backbone="none", chip_size=16)
    columns = chip_features(points.lonlat(), inputs.encoder(settings))
    assert list(columns) == [
        f"S2L1C.{b}.{s}" for b in ("RED_EDGE_1", "NIR_NARROW") for s in ("point", "mean", "sd")
    ]

    summary = export_imagery_features(points, tmp_path / "features.gpkg", inputs, settings, device="cpu")
    assert summary["n_points"] == 4 and summary["n_valid"] == 3
    assert summary["fields"] == list(columns)
    meta, _, _, data = read(tmp_path / "features.gpkg", layer="samples")
    fields = list(meta["fields"])
    np.testing.assert_array_equal(data[fields.index(VALID_FIELD)], [1, 1, 1, 0])
    for name, values in columns.items():
        np.testing.assert_allclose(data[fields.index(name)][:3], values[:3], rtol=1e-6)
    assert default_inputs({"s2": [], "dem": None}) is None
    assert default_inputs({"dem": ["a.tif"], "weights": None}).dem == ["a.tif"]


# --- TerraMind features ---------------------------------------------------------------------------------


def normalised(chips, name: str) -> torch.Tensor:
    """Chips standardised with TerraMind's pretraining statistics of their bands."""
    mean, std = MODALITIES[name].statistics(chips.bands[name])
    values = (chips.values[name] - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    return torch.as_tensor(values, dtype=torch.float32)


@pytest.fixture(scope="module")
def s2_and_dem(dem) -> ImageryEncoder:
    settings = ImagerySettings(backbone=TINY, chip_size=32, batch_size=8)
    return ImageryEncoder(
        settings,
        [s2_rasters(S2_SPECS[1:3]), modality_rasters("DEM", [str(dem)])],
        weights=RANDOM,
        cache_dir=False,
    )


def test_points_with_other_modality_sets_are_encoded_on_their_own_tokens(s2_and_dem):
    """Point 0 has S2 and DEM, points 1-2 only S2 (east of the DEM), point 3 nothing."""
    encoder = s2_and_dem
    lonlat = lonlat_of(np.concatenate([INSIDE, OUTSIDE]))
    got = encoder.features(lonlat)
    assert got.shape == (4, WIDTH[TINY]) and encoder.names[0] == "terramind.000"

    chips = extract_chips(lonlat, encoder.rasters, 32)
    np.testing.assert_array_equal(chips.present, [[True, True], [True, False], [True, False], [False, False]])
    s2, elevation = normalised(chips, "S2L1C"), normalised(chips, "DEM")
    model, head = encoder.model, encoder.head
    with torch.no_grad():
        both = head(encoder_tokens(model, {"S2L1C": s2[[0]], "DEM": elevation[[0]]}))
        s2_only = head(encoder_tokens(model, {"S2L1C": s2[[1, 2]]}))
        # What a single batch of all modalities would give for points 1-2 (their masked DEM chips are 0).
        padded = head(encoder_tokens(model, {"S2L1C": s2[[1, 2]], "DEM": elevation[[1, 2]]}))
    np.testing.assert_allclose(got[0], both[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[1:3], s2_only.numpy(), rtol=1e-4, atol=1e-5)
    assert np.abs(got[1:3] - padded.numpy()).max() > 1e-2
    assert np.isnan(got[3]).all()
    assert encoder.report.masked["DEM"] >= 3


def test_cached_tokens_and_pooled_groups_equal_the_features(dem):
    """Fine-tuning trains on cached tokens + BackboneHead.pool_groups; features() pools the same tokens and
    equals encoding the chips end to end: one head, the same vectors."""
    settings = ImagerySettings(backbone=TINY, chip_size=32, finetune="last_n", blocks=1, pooling="attention")
    encoder = ImageryEncoder(
        settings,
        [s2_rasters(S2_SPECS[1:3]), modality_rasters("DEM", [str(dem)])],
        weights=RANDOM,
        cache_dir=False,
    )
    with torch.no_grad():
        encoder.head.pooling.query.normal_(generator=torch.Generator().manual_seed(0))
    lonlat = lonlat_of(np.concatenate([INSIDE, OUTSIDE]))
    tokens, present = encoder.tokens(lonlat)
    assert encoder.split == 11 and encoder.tokens_per_modality == 4
    assert tokens.shape == (4, 2 * 4, WIDTH[TINY])
    np.testing.assert_array_equal(present, [[True, True], [True, False], [True, False], [False, False]])
    assert not tokens[1:3, 4:].any() and not tokens[3].any()  # absent modalities are zeros
    with torch.no_grad():
        pooled = encoder.head.pool_groups(torch.as_tensor(tokens), torch.as_tensor(present), 4).numpy()
    features = encoder.features(lonlat)
    np.testing.assert_allclose(pooled[:3], features[:3], rtol=1e-4, atol=1e-5)
    assert np.isnan(pooled[3]).all() and np.isnan(features[3]).all()
    # features() pools cached tokens for a trainable head: it must equal encoding the chips end to end.
    direct = encoder._encode(encoder._cut(lonlat), pooled=True)
    np.testing.assert_allclose(features[:3], direct[:3], rtol=1e-4, atol=1e-5)
    assert np.isnan(direct[3]).all()


# --- settings ------------------------------------------------------------------------------------------


def test_settings_are_checked():
    for bad in (
        {"chip_size": 40},
        {"backbone": "resnet"},
        {"pooling": "max"},
        {"finetune": "all"},
        {"min_valid": 0.0},
    ):
        with pytest.raises(InputError):
            ImagerySettings(**bad)
    assert not ImagerySettings(backbone="none", pooling="attention").trains_head
    assert not ImagerySettings(backbone=TINY).trains_head
    assert ImagerySettings(backbone=TINY, pooling="attention").trains_head
    assert ImagerySettings(backbone=TINY, finetune="lora").trains_head
    settings = ImagerySettings(backbone=TINY, modalities={"DEM": ["DEM"]}, head_sha256="ab")
    assert ImagerySettings.from_dict(settings.to_dict()) == settings


def stored(settings: ImagerySettings, head: dict | None = None) -> SimpleNamespace:
    """What :func:`imagery_encoder` reads of a model: its chip settings and head."""
    return SimpleNamespace(schema=SimpleNamespace(chips=settings.to_dict()), backbone=head)


def test_prediction_imagery_must_match_the_models_bands_and_modalities(dem):
    trained = ImagerySettings(
        backbone="none", chip_size=32, modalities={"S2L1C": ["RED_EDGE_1", "NIR_NARROW"]}
    )
    other_bands = ImageryInputs(s2=[S2_SPECS[1], S2_SPECS[3]], s2_level="L1C", cache=False)
    with pytest.raises(SchemaMismatchError) as error:
        imagery_encoder(stored(trained), other_bands, "cpu")
    assert "S2L1C" in error.value.message and "NIR_NARROW" in error.value.message
    assert "SWIR_1" in error.value.message  # what was given

    other_modality = ImageryInputs(dem=[str(dem)], cache=False)
    with pytest.raises(SchemaMismatchError, match="S2L1C"):
        imagery_encoder(stored(trained), other_modality, "cpu")
    with pytest.raises(SchemaMismatchError, match="no imagery raster"):
        imagery_encoder(stored(trained), None, "cpu")
    same = ImageryInputs(s2=S2_SPECS[1:3], s2_level="L1C", cache=False)
    assert imagery_encoder(stored(trained), same, "cpu").names[0] == "S2L1C.RED_EDGE_1.point"
    assert imagery_encoder(SimpleNamespace(schema=SimpleNamespace(chips=None)), None, "cpu") is None


@pytest.mark.parametrize("recorded", ["0" * 64, "random:1"])
def test_other_terramind_weights_than_at_training_are_refused(recorded):
    settings = ImagerySettings(backbone=TINY, modalities={"S2L1C": ["RED_EDGE_1"]}, weights_sha256=recorded)
    with pytest.raises(SchemaMismatchError, match="other TerraMind weights"):
        ImageryEncoder(settings, [s2_rasters(S2_SPECS[1:2])], weights=RANDOM, cache_dir=False)
