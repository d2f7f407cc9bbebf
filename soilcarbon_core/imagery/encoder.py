"""TerraMind through terratorch's backbone registry, built offline and loaded from a local weights file.

terratorch is imported only here and only when a TerraMind backbone is asked for (the import takes
about 10 s and 700 MB). The model is always built with ``pretrained=False`` (a hub download is never
attempted); weights come from a local file: the published full checkpoint
(``TerraMind_v1_{size}.pt``, encoder and decoder) or an encoder-only state dict, as ``.pt`` (read with
``weights_only=True``, no arbitrary unpickling) or ``.safetensors``. Keys that are not the encoder's are
ignored; a file that fills too few of the encoder's tensors is refused. A band subset is applied after
loading, by keeping the pretrained patch-embedding weights of the given bands (terratorch's
``select_modality_patch_embed_weights``).

``weights="random"`` builds a seeded, randomly initialised encoder: for tests and benchmarks only.
"""

from __future__ import annotations

import os
from pathlib import Path

from soilcarbon_core.errors import DataNotFoundError, ModelFileError
from soilcarbon_core.imagery.cache import cache_root

BACKBONES = ("terramind_v1_tiny", "terramind_v1_small", "terramind_v1_base")
#: Transformer blocks of every TerraMind v1 encoder.
DEPTH = 12
#: Token width per backbone.
WIDTH = {"terramind_v1_tiny": 192, "terramind_v1_small": 384, "terramind_v1_base": 768}
RANDOM = "random"
_HUB = "https://huggingface.co/ibm-esa-geospatial/TerraMind-1.0-{size}"
#: Fewer of the encoder's tensors than this fraction found in a weights file: not a TerraMind checkpoint.
_MIN_MATCHED = 0.9


def weights_dir() -> Path:
    """Where TerraMind weights are looked for by default (``$SOILCARBON_TERRAMIND_DIR``)."""
    return Path(os.environ.get("SOILCARBON_TERRAMIND_DIR", cache_root() / "terramind"))


def weights_file_name(backbone: str) -> str:
    return f"TerraMind_v1_{backbone.rsplit('_', 1)[-1]}.pt"


def find_weights(backbone: str, path: str | os.PathLike[str] | None = None) -> Path | None:
    """The weights file to use: ``path`` when given (it must exist), else the default location if present."""
    if path is not None:
        if str(path) == RANDOM:
            return None
        found = Path(path)
        if not found.is_file():
            raise missing_weights(backbone, found)
        return found
    for name in (weights_file_name(backbone), weights_file_name(backbone).replace(".pt", ".safetensors")):
        if (weights_dir() / name).is_file():
            return weights_dir() / name
    return None


def missing_weights(backbone: str, path: Path | None = None) -> DataNotFoundError:
    size = backbone.rsplit("_", 1)[-1]
    where = f"'{path}' does not exist" if path else f"no weights for {backbone} in {weights_dir()}"
    return DataNotFoundError(
        f"TerraMind weights are needed and missing: {where}.",
        f"Download {weights_file_name(backbone)} from {_HUB.format(size=size)} (Apache-2.0) and put it in "
        f"{weights_dir()} (or set SOILCARBON_TERRAMIND_DIR, or pass its path as the weights file). "
        "Without weights, use backbone 'none': chip statistics instead of TerraMind embeddings.",
    )


def read_state_dict(path: Path) -> dict:
    """A state dict from ``.safetensors`` or ``.pt``/``.pth`` (tensors only; may be nested in "model")."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is the same problem for the user
        raise ModelFileError(
            f"The TerraMind weights '{path}' cannot be read ({type(err).__name__}: {err}).",
            "Give the published TerraMind_v1_<size>.pt or an encoder state dict (.pt or .safetensors).",
        ) from err
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def _matching(state: dict, target: dict) -> dict:
    """The tensors of ``state`` that fill ``target``'s, trying common key prefixes ('encoder.', 'model.')."""
    best: dict = {}
    for prefix in ("", "model.", "backbone.", "encoder."):
        found = {
            key[len(prefix) :]: value
            for key, value in state.items()
            if key.startswith(prefix)
            and key[len(prefix) :] in target
            and tuple(value.shape) == tuple(target[key[len(prefix) :]].shape)
        }
        if len(found) > len(best):
            best = found
    return best


def build_terramind(
    backbone: str,
    modalities: dict[str, list[str]],
    weights: Path | str | None,
    *,
    seed: int = 0,
):
    """A TerraMindViT for ``modalities`` ({modality: bands}) with weights from a local file.

    ``weights``: a path, or ``"random"`` (seeded random initialisation). Returns the module in eval mode.
    """
    import torch
    from terratorch.models.backbones.terramind.model.terramind_register import (
        PRETRAINED_BANDS,
        select_modality_patch_embed_weights,
    )
    from terratorch.registry import BACKBONE_REGISTRY

    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BACKBONE_REGISTRY.build(
            backbone, pretrained=False, modalities=list(modalities), merge_method=None
        )
    if weights != RANDOM:
        path = Path(weights)
        target = model.state_dict()
        found = _matching(read_state_dict(path), target)
        encoder_keys = [k for k in target if k.startswith(("encoder.", "encoder_norm"))]
        matched = sum(k in found for k in encoder_keys) / max(len(encoder_keys), 1)
        if matched < _MIN_MATCHED:
            raise ModelFileError(
                f"'{path}' is not a {backbone} checkpoint: it fills {matched:.0%} of the encoder's tensors.",
                f"Give {weights_file_name(backbone)} (the size must match the backbone).",
            )
        # A patch embedding left at its random initialisation would give meaningless tokens.
        lacking = [
            name
            for name in modalities
            if f"encoder_embeddings.{model.mod_name_mapping[name]}.proj.weight" not in found
        ]
        if lacking:
            raise ModelFileError(
                f"'{path}' has no patch embedding (of all its bands) for {', '.join(lacking)}.",
                f"Give the full {weights_file_name(backbone)}, or an encoder state dict of every band of "
                "those modalities.",
            )
        model.load_state_dict(found, strict=False)
    subsets = {
        name: bands
        for name, bands in modalities.items()
        if len(bands) != len(PRETRAINED_BANDS.get(model.mod_name_mapping[name], bands))
    }
    if subsets:
        with torch.random.fork_rng(devices=[]):  # it builds new layers: keep the caller's RNG untouched
            model = select_modality_patch_embed_weights(model, subsets, PRETRAINED_BANDS)
    return model.eval()


def encoder_tokens(model, chips: dict, upto: int = DEPTH):
    """Token states (B, T, D) after ``upto`` transformer blocks for normalised ``chips``.

    ``chips``: {modality: (B, C, S, S) tensor}, only the modalities present for this batch, in the
    model's modality order; T = (number of modalities) x (S / 16)^2 tokens, modality after modality.
    TerraMind's final norm is not applied (it belongs to the head, see :class:`BackboneHead`).
    """
    import torch

    tokens = []
    for name, tensor in chips.items():
        embedded = model.encoder_embeddings[model.mod_name_mapping[name]](tensor)
        tokens.append(embedded["x"] + embedded["emb"])
    x = torch.cat(tokens, dim=1)
    for block in model.encoder[:upto]:
        x = block(x)
    return x
