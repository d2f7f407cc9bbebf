"""TerraMind built offline (terramind_v1_tiny, random or from weights files written here), the weights
lookup and its errors, the re-implemented encoder front against terratorch's own forward, and the
fine-tuned head (BackboneHead): what trains in each mode and how modality groups are pooled."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from soilcarbon_core.errors import DataNotFoundError, ModelFileError
from soilcarbon_core.imagery.encoder import (
    RANDOM,
    WIDTH,
    build_terramind,
    encoder_tokens,
    find_weights,
    weights_file_name,
)
from soilcarbon_core.imagery.head import BackboneHead, head_blocks, modality_groups
from soilcarbon_core.imagery.modalities import MODALITIES
from soilcarbon_core.imagery.sources import modality_rasters
from soilcarbon_core.imagery.stream import ImageryEncoder, ImagerySettings

TINY = "terramind_v1_tiny"
S2L2A_ALL = list(MODALITIES["S2L2A"].bands)
SUBSET = ["RED_EDGE_1", "NIR_NARROW", "SWIR_1"]
#: Position of each subset band among the pretrained S2L2A bands (the patch-embedding columns to keep).
SUBSET_INDEX = [S2L2A_ALL.index(b) for b in SUBSET]
EMBEDDING = "untok_sen2l2a@224"
PIXELS = 16 * 16
S2_B05 = Path(__file__).resolve().parents[3] / "data" / "s2_l1c_sample" / "s2_B05.tif"
HUB = "https://huggingface.co/ibm-esa-geospatial/TerraMind-1.0-tiny"


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def tokens_of(model, chips: dict) -> torch.Tensor:
    with torch.no_grad():
        return encoder_tokens(model, chips)


def patch_weight(model) -> torch.Tensor:
    """The S2L2A patch embedding as (D, pixels of a patch, bands): the input layout is (ph pw band)."""
    weight = model.encoder_embeddings[EMBEDDING].proj.weight.detach()
    return weight.view(weight.shape[0], PIXELS, -1)


@pytest.fixture(scope="module")
def source():
    """The model whose weights the files below hold: all S2L2A bands, a seed other than the default."""
    return build_terramind(TINY, {"S2L2A": S2L2A_ALL}, RANDOM, seed=7)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory, source) -> dict[str, Path]:
    """The source's weights as every supported kind of file."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("weights")
    state = {k: v.detach().clone().contiguous() for k, v in source.state_dict().items()}
    files = {
        name: folder / f"{name}.{'safetensors' if name == 'safetensors' else 'pt'}"
        for name in ("pt", "safetensors", "published", "prefixed", "nested")
    }
    torch.save(state, files["pt"])
    save_file(state, files["safetensors"])
    # The published checkpoint holds the decoder too (and other modalities' embeddings).
    decoder = {f"decoder.{i}.weight": randn(8, 8, seed=i) for i in range(3)}
    other = {"encoder_embeddings.untok_sen1grd@224.proj.weight": randn(192, 2 * PIXELS)}
    torch.save({**state, **decoder, **other}, files["published"])
    torch.save({f"model.{k}": v for k, v in state.items()}, files["prefixed"])
    torch.save({"model": state, "epoch": 3}, files["nested"])
    return files


@pytest.fixture(scope="module")
def chips12() -> dict:
    return {"S2L2A": randn(2, len(S2L2A_ALL), 32, 32, seed=1)}


# --- building -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "tokens"), [(64, 16), (128, 64)])
def test_band_subset_gives_one_token_per_patch(size, tokens):
    model = build_terramind(TINY, {"S2L2A": SUBSET}, RANDOM)
    assert model.encoder_embeddings[EMBEDDING].proj.in_features == len(SUBSET) * PIXELS
    out = tokens_of(model, {"S2L2A": randn(3, len(SUBSET), size, size)})
    assert out.shape == (3, tokens, WIDTH[TINY])
    assert torch.isfinite(out).all()
    assert not model.training


def test_random_build_is_seeded(source, chips12):
    again = build_terramind(TINY, {"S2L2A": S2L2A_ALL}, RANDOM, seed=7)
    other = build_terramind(TINY, {"S2L2A": S2L2A_ALL}, RANDOM, seed=0)
    assert torch.equal(tokens_of(again, chips12), tokens_of(source, chips12))
    assert not torch.allclose(tokens_of(other, chips12), tokens_of(source, chips12))


@pytest.mark.parametrize("kind", ["pt", "safetensors", "published", "prefixed", "nested"])
def test_weights_file_reproduces_the_source_model(kind, weight_files, source, chips12):
    # Built with seed 0: every tensor that equals the source's came from the file.
    loaded = build_terramind(TINY, {"S2L2A": S2L2A_ALL}, weight_files[kind], seed=0)
    expected = source.state_dict()
    got = loaded.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert torch.equal(tokens_of(loaded, chips12), tokens_of(source, chips12))


def test_band_subset_keeps_the_pretrained_columns_of_its_bands(weight_files, source, chips12):
    subset = build_terramind(TINY, {"S2L2A": SUBSET}, weight_files["published"], seed=0)
    assert torch.equal(patch_weight(subset), patch_weight(source)[..., SUBSET_INDEX])
    # The patch embedding is linear without bias: the subset model sees what the full model sees when
    # the other bands are zero.
    zeroed = torch.zeros_like(chips12["S2L2A"])
    zeroed[:, SUBSET_INDEX] = chips12["S2L2A"][:, SUBSET_INDEX]
    torch.testing.assert_close(
        tokens_of(subset, {"S2L2A": chips12["S2L2A"][:, SUBSET_INDEX]}),
        tokens_of(source, {"S2L2A": zeroed}),
        rtol=1e-5,
        atol=1e-5,
    )


def test_a_checkpoint_of_another_size_is_refused(tmp_path):
    small = tmp_path / "TerraMind_v1_small.pt"
    torch.save(build_terramind("terramind_v1_small", {"S2L2A": SUBSET}, RANDOM).state_dict(), small)
    unrelated = tmp_path / "unrelated.safetensors"
    from safetensors.torch import save_file

    save_file({"encoder.0.norm1.weight": randn(7), "head.weight": randn(3, 3)}, unrelated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 10)
    for path in (small, unrelated, garbage):
        with pytest.raises(ModelFileError) as error:
            build_terramind(TINY, {"S2L2A": SUBSET}, path)
        assert str(path) in error.value.message


def test_a_checkpoint_without_the_modalitys_patch_embedding_is_refused(tmp_path, weight_files):
    """Encoder blocks alone would load with a random patch embedding: meaningless tokens, no error."""
    subset_state = tmp_path / "subset.pt"  # S2L2A embedding of 3 bands: the wrong shape for the full one
    torch.save(build_terramind(TINY, {"S2L2A": SUBSET}, RANDOM).state_dict(), subset_state)
    for path, modalities in ((weight_files["pt"], {"DEM": ["DEM"]}), (subset_state, {"S2L2A": SUBSET})):
        with pytest.raises(ModelFileError) as error:
            build_terramind(TINY, modalities, path)
        assert str(path) in error.value.message and next(iter(modalities)) in error.value.message


# --- finding the weights ---------------------------------------------------------------------------------


@pytest.fixture
def weights_folder(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "terramind"
    folder.mkdir()
    monkeypatch.setenv("SOILCARBON_TERRAMIND_DIR", str(folder))
    return folder


def assert_explains_the_download(error: DataNotFoundError, folder: Path) -> None:
    assert weights_file_name(TINY) == "TerraMind_v1_tiny.pt"
    assert "TerraMind_v1_tiny.pt" in error.hint
    assert str(folder) in error.hint
    assert HUB in error.hint


def test_a_missing_weights_file_names_the_file_the_folder_and_the_download(weights_folder):
    missing = weights_folder / "elsewhere" / "mine.pt"
    with pytest.raises(DataNotFoundError) as error:
        find_weights(TINY, missing)
    assert str(missing) in error.value.message
    assert_explains_the_download(error.value, weights_folder)


def test_weights_are_looked_up_in_the_weights_folder(weights_folder):
    assert find_weights(TINY) is None
    assert find_weights(TINY, RANDOM) is None
    (weights_folder / "TerraMind_v1_tiny.safetensors").write_bytes(b"x")
    assert find_weights(TINY) == weights_folder / "TerraMind_v1_tiny.safetensors"
    (weights_folder / "TerraMind_v1_tiny.pt").write_bytes(b"x")
    assert find_weights(TINY) == weights_folder / "TerraMind_v1_tiny.pt"
    assert find_weights("terramind_v1_base") is None
    explicit = weights_folder / "other.pt"
    explicit.write_bytes(b"x")
    assert find_weights(TINY, explicit) == explicit


def test_a_terramind_backbone_without_weights_raises(weights_folder):
    rasters = [modality_rasters("S2L1C", [str(S2_B05)])]
    with pytest.raises(DataNotFoundError) as error:
        ImageryEncoder(ImagerySettings(backbone=TINY), rasters, cache_dir=False)
    assert str(weights_folder) in error.value.message
    assert_explains_the_download(error.value, weights_folder)


def test_auto_backbone_falls_back_to_chip_statistics_without_weights(weights_folder):
    encoder = ImageryEncoder(ImagerySettings(), [modality_rasters("S2L1C", [str(S2_B05)])], cache_dir=False)
    assert encoder.settings.backbone == encoder.report.backbone == "none"
    assert encoder.model is None and encoder.head is None
    assert encoder.names == ["S2L1C.RED_EDGE_1.point", "S2L1C.RED_EDGE_1.mean", "S2L1C.RED_EDGE_1.sd"]
    (note,) = [n for n in encoder.report.notes if "TerraMind" in n]
    assert str(weights_folder) in note and "TerraMind_v1_tiny.pt" in note
    random = ImageryEncoder(
        ImagerySettings(), [modality_rasters("S2L1C", [str(S2_B05)])], weights=RANDOM, cache_dir=False
    )
    assert random.settings.backbone == TINY and random.settings.weights_sha256 == "random:0"
    assert len(random.names) == WIDTH[TINY]


# --- the encoder front and the head ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_modalities():
    return build_terramind(TINY, {"S2L1C": ["RED_EDGE_1", "NIR_NARROW"], "DEM": ["DEM"]}, RANDOM)


@pytest.fixture(scope="module")
def two_chips() -> dict:
    return {"S2L1C": randn(3, 2, 32, 32, seed=2), "DEM": randn(3, 1, 32, 32, seed=3)}


@pytest.mark.parametrize(("finetune", "blocks"), [("frozen", 0), ("last_n", 3), ("lora", 1)])
def test_cached_blocks_then_head_equal_terratorchs_forward(finetune, blocks, two_modalities, two_chips):
    """TerraMindViT with merge_method None returns every block's output, the last one normed; its token
    mean is what the stream computes as frozen blocks + head (norm, mean pooling)."""
    head = BackboneHead(two_modalities, WIDTH[TINY], finetune=finetune, blocks=blocks)
    assert head.split == 12 - blocks
    with torch.no_grad():
        expected = two_modalities(dict(two_chips))[-1].mean(dim=1)
        got = head(encoder_tokens(two_modalities, two_chips, upto=head.split))
    assert expected.shape == (3, WIDTH[TINY])
    assert torch.equal(got, expected)


def trainable(module: torch.nn.Module) -> list[str]:
    return [name for name, p in module.named_parameters() if p.requires_grad]


def test_frozen_head_trains_only_an_attention_pooling(two_modalities):
    assert trainable(BackboneHead(two_modalities, WIDTH[TINY])) == []
    assert not BackboneHead(two_modalities, WIDTH[TINY]).trainable
    attention = BackboneHead(two_modalities, WIDTH[TINY], pooling="attention")
    assert attention.trainable
    assert sorted(trainable(attention)) == ["pooling.key.weight", "pooling.query"]


def test_last_n_trains_the_last_blocks_and_the_norm(two_modalities):
    # Built, as the stream does, from a frozen encoder: the copies must still train.
    frozen = copy.deepcopy(two_modalities).requires_grad_(False)
    head = BackboneHead(frozen, WIDTH[TINY], finetune="last_n", blocks=2)
    assert len(head.blocks) == 2 and head.split == 10
    names = trainable(head)
    assert {n.split(".")[0] for n in names} == {"blocks", "norm"}
    assert len(names) == sum(1 for _ in head.blocks.parameters()) + sum(1 for _ in head.norm.parameters())
    source = frozen.encoder[10:].state_dict()
    copied = head.blocks.state_dict()
    assert all(torch.equal(copied[k], source[k]) for k in source)
    # The head holds copies: training it leaves the cached lower model alone.
    assert all(
        p.data_ptr() != q.data_ptr()
        for p, q in zip(head.blocks.parameters(), frozen.encoder[10:].parameters(), strict=True)
    )
    assert head_blocks("last_n", 40) == 12 and head_blocks("last_n", 0) == 1 and head_blocks("frozen", 5) == 0
    with pytest.raises(ValueError, match="finetune"):
        head_blocks("full", 2)


def test_lora_head_changes_only_its_adapters(two_modalities, two_chips):
    head = BackboneHead(two_modalities, WIDTH[TINY], finetune="lora", blocks=2, lora_rank=4)
    names = trainable(head)
    assert names and all("lora_" in n for n in names)
    # qkv and proj of the attention of both blocks, A and B each.
    assert len(names) == 2 * 2 * 2
    tokens = encoder_tokens(two_modalities, two_chips, upto=head.split).detach()
    before = {k: v.clone() for k, v in head.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=0.1)
    head(tokens).square().sum().backward()
    optimizer.step()
    after = head.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)


def test_pool_groups_runs_each_modality_set_on_its_present_tokens(two_modalities):
    head = BackboneHead(two_modalities, WIDTH[TINY], finetune="last_n", blocks=1, pooling="attention")
    with torch.no_grad():
        head.pooling.query.copy_(randn(WIDTH[TINY], seed=4))
    per = 4
    tokens = randn(5, 2 * per, WIDTH[TINY], seed=5)
    present = torch.tensor([[True, True], [True, False], [False, False], [False, True], [True, False]])
    tokens[~present.repeat_interleave(per, dim=1)] = 0.0  # absent modalities are zeros, as cached
    with torch.no_grad():
        out = head.pool_groups(tokens, present, per)
        assert torch.isnan(out[2]).all() and torch.isfinite(out[[0, 1, 3, 4]]).all()
        torch.testing.assert_close(out[0], head(tokens[[0]])[0])
        torch.testing.assert_close(out[[1, 4]], head(tokens[[1, 4], :per]))
        torch.testing.assert_close(out[3], head(tokens[[3], per:])[0])
        # Not the same as letting attention see the zero tokens of the absent modality.
        assert not torch.allclose(out[1], head(tokens[[1]])[0], atol=1e-4)
    groups = modality_groups(present.numpy())
    assert [(p.tolist(), rows.tolist()) for p, rows in groups] == [
        ([False, True], [3]),
        ([True, False], [1, 4]),
        ([True, True], [0]),
    ]
    assert modality_groups(np.zeros((2, 2), bool)) == []
