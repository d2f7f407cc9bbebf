"""The embedding cache: exact round trips, one namespace per thing that determines a vector, damaged shards
rebuilt, shards merged; and through ImageryEncoder on the real Sentinel-2 bands, a second run that
encodes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from safetensors import safe_open

from soilcarbon_core.imagery import cache as cache_module
from soilcarbon_core.imagery.cache import EmbeddingCache, file_sha256, point_keys
from soilcarbon_core.imagery.encoder import RANDOM, build_terramind
from soilcarbon_core.imagery.modalities import MODALITIES
from soilcarbon_core.imagery.stream import ImageryEncoder, ImagerySettings
from tests.core.imagery.test_stream import S2_SPECS, TINY, lonlat_of, s2_rasters

#: 10 points inside the tile, 5 m inside a 20 m source cell.
XY = np.column_stack([437_205.0 + 1_800.0 * np.arange(10), 4_162_005.0 + 1_600.0 * np.arange(10)])
LONLAT = lonlat_of(XY)
B05, B8A = S2_SPECS[1], S2_SPECS[2]


def random_entries(n: int, seed: int, shape: tuple[int, ...] = (3, 2)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = np.column_stack([rng.integers(-1_800_000_000, 1_800_000_000, n), rng.integers(0, 900_000_000, n)])
    return keys.astype(np.int64), rng.normal(size=(n, *shape)).astype(np.float32)


def shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("**/shard-*.safetensors"))


def shard_keys(path: Path) -> np.ndarray:
    with safe_open(path, framework="np") as handle:
        return handle.get_tensor("keys")


# --- EmbeddingCache ---------------------------------------------------------------------------------------


def test_put_then_get_returns_the_values_and_the_hits(tmp_path):
    keys, values = random_entries(20, seed=0)
    cache = EmbeddingCache(tmp_path, {"a": 1, "b": [1, 2]})
    cache.put(keys[:12], values[:12])
    cache.put(keys[12:15], values[12:15])
    order = np.array([14, 3, 19, 0, 12, 17])  # hits and misses, shuffled
    got, hit = cache.get(keys[order], (3, 2))
    np.testing.assert_array_equal(hit, [True, True, False, True, True, False])
    np.testing.assert_array_equal(got[hit], values[order[hit]])
    assert np.isnan(got[~hit]).all() and got.dtype == np.float32
    # The namespace is the folder, whatever the order of its keys; its description is kept beside.
    same = EmbeddingCache(tmp_path, {"b": [1, 2], "a": 1})
    assert same.folder == cache.folder
    assert json.loads((cache.folder / "namespace.json").read_text()) == {"a": 1, "b": [1, 2]}
    np.testing.assert_array_equal(same.get(keys[:15], (3, 2))[0], values[:15])
    other = EmbeddingCache(tmp_path, {"a": 2, "b": [1, 2]})
    assert other.folder != cache.folder and not other.get(keys, (3, 2))[1].any()


def test_a_place_asked_for_twice_is_served_twice(tmp_path):
    keys, values = random_entries(4, seed=1)
    cache = EmbeddingCache(tmp_path, {"a": 1})
    cache.put(keys, values)
    # The same place more than once in a request (several depths of one profile) is a hit every time.
    got, hit = cache.get(keys[[2, 0, 2, 2]], (3, 2))
    assert hit.all()
    np.testing.assert_array_equal(got, values[[2, 0, 2, 2]])


def test_point_keys_are_exact_to_1e7_degree():
    keys = point_keys(np.array([[-73.123456789, 4.0000000449], [179.99999995, -89.9]]))
    np.testing.assert_array_equal(keys, [[-731_234_568, 40_000_000], [1_800_000_000, -899_000_000]])
    assert keys.dtype == np.int64


def flip_payload(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the last values: still a valid safetensors file, a wrong checksum
    path.write_bytes(bytes(data))


def flip_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # inside the JSON header: not a readable file any more
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [flip_payload, flip_header, truncate])
def test_a_damaged_shard_is_a_miss_and_is_deleted(tmp_path, damage):
    keys, values = random_entries(8, seed=1)
    cache = EmbeddingCache(tmp_path, {"n": 1})
    cache.put(keys[:5], values[:5])
    cache.put(keys[5:], values[5:])
    first, second = shards(tmp_path)
    damaged = {tuple(k) for k in shard_keys(first).tolist()}
    damage(first)
    got, hit = cache.get(keys, (3, 2))
    assert cache.rebuilt == 1 and not first.exists() and second.exists()
    np.testing.assert_array_equal(hit, [tuple(k) not in damaged for k in keys.tolist()])
    np.testing.assert_array_equal(got[hit], values[hit])
    cache.get(keys, (3, 2))
    assert cache.rebuilt == 0


def test_a_shard_of_another_shape_is_deleted(tmp_path):
    keys, values = random_entries(4, seed=2, shape=(5,))
    cache = EmbeddingCache(tmp_path, {"n": 1})
    cache.put(keys, values)
    _, hit = cache.get(keys, (3, 2))
    assert not hit.any() and cache.rebuilt == 1 and not shards(tmp_path)


def test_shards_are_merged_beyond_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_MAX_SHARDS", 3)
    keys, values = random_entries(25, seed=3)
    cache = EmbeddingCache(tmp_path, {"n": 1})
    counts = []
    for start in range(0, 25, 5):
        cache.put(keys[start : start + 5], values[start : start + 5])
        counts.append(len(shards(tmp_path)))
    # Three shards, then the fourth write merges all into one, then one more.
    assert counts == [1, 2, 3, 1, 2]
    assert sorted(len(shard_keys(p)) for p in shards(tmp_path)) == [5, 20]
    got, hit = cache.get(keys, (3, 2))
    assert hit.all() and cache.rebuilt == 0
    np.testing.assert_array_equal(got, values)
    # Points stored twice are kept once on merging.
    cache.put(keys[:2], values[:2])
    cache.put(keys[:2], values[:2])
    (merged,) = shards(tmp_path)
    assert len(shard_keys(merged)) == 25


# --- through the encoder ------------------------------------------------------------------------------------


def run(cache_dir, specs=(B05, B8A), weights=RANDOM, **settings) -> tuple[np.ndarray, ImageryEncoder]:
    """Features of the points with a fresh encoder (its report counts this run only)."""
    settings = {"backbone": TINY, "chip_size": 32, "batch_size": 4, **settings}
    encoder = ImageryEncoder(
        ImagerySettings(**settings), [s2_rasters(list(specs))], weights=weights, cache_dir=cache_dir
    )
    return encoder.features(LONLAT), encoder


@pytest.fixture(scope="module")
def fresh() -> np.ndarray:
    """TerraMind features without a cache."""
    return run(False)[0]


def test_a_second_run_is_served_from_the_cache(tmp_path, fresh):
    first, encoder = run(tmp_path)
    assert (encoder.report.cache_hits, encoder.report.encoded, encoder.report.points) == (0, 10, 10)
    assert len(shards(tmp_path)) == 3  # batches of 4
    second, encoder = run(tmp_path)
    assert (encoder.report.cache_hits, encoder.report.encoded) == (10, 0)
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(first, fresh)
    assert np.isfinite(first).all()


def test_each_setting_that_determines_the_vectors_has_its_own_namespace(tmp_path):
    def hits(**changes) -> int:
        return run(tmp_path, backbone="none", **changes)[1].report.cache_hits

    assert hits() == 0
    assert hits() == 10
    assert hits(chip_size=16) == 0
    assert hits(specs=(B05,)) == 0
    assert hits(min_valid=0.9) == 0
    assert hits(resolution=20.0) == 0
    assert hits() == hits(chip_size=16) == hits(specs=(B05,)) == 10  # none overwrote another


def test_other_weights_are_another_namespace(tmp_path, fresh):
    """A weights file holding the very tensors of the random model: the same vectors, another hash."""
    state = build_terramind(TINY, {"S2L1C": list(MODALITIES["S2L1C"].bands)}, RANDOM, seed=0).state_dict()
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    run(tmp_path / "cache")
    values, encoder = run(tmp_path / "cache", weights=path)
    assert encoder.report.cache_hits == 0 and encoder.settings.weights_sha256 != "random:0"
    np.testing.assert_array_equal(values, fresh)
    assert run(tmp_path / "cache", weights=path)[1].report.cache_hits == 10


def test_raster_content_not_its_path_is_in_the_namespace(tmp_path):
    copy, changed = tmp_path / "copy.tif", tmp_path / "changed.tif"
    shutil.copy(B05, copy)
    shutil.copy(B05, changed)
    with rasterio.open(changed, "r+") as dst:
        row, col = dst.index(*XY[0])
        pixel = dst.read(1, window=((row, row + 1), (col, col + 1)))
        dst.write(pixel + 1000, 1, window=((row, row + 1), (col, col + 1)))
    assert file_sha256(copy) == file_sha256(B05) != file_sha256(changed)

    original, _ = run(tmp_path / "cache", specs=(f"{B05}=B05",), backbone="none")
    moved, encoder = run(tmp_path / "cache", specs=(f"{copy}=B05",), backbone="none")
    assert encoder.report.cache_hits == 10
    np.testing.assert_array_equal(moved, original)
    edited, encoder = run(tmp_path / "cache", specs=(f"{changed}=B05",), backbone="none")
    assert encoder.report.cache_hits == 0
    # Only the first point's chip covers the edited cell: its centre value is 1000 higher.
    assert edited[0, 0] == original[0, 0] + 1000
    np.testing.assert_array_equal(edited[1:], original[1:])


@pytest.mark.parametrize("damage", [flip_payload, truncate])
def test_a_damaged_shard_is_recomputed_to_the_same_values(tmp_path, fresh, damage):
    run(tmp_path)
    target = shards(tmp_path)[0]
    lost = len(shard_keys(target))
    damage(target)
    values, encoder = run(tmp_path)
    assert (encoder.report.cache_hits, encoder.report.encoded) == (10 - lost, lost)
    assert not target.exists() and len(shards(tmp_path)) == 3
    np.testing.assert_array_equal(values, fresh)
    assert run(tmp_path)[1].report.cache_hits == 10
