"""The imagery stream's node features: TerraMind embeddings of chips, or chip statistics without it.

:class:`ImageryEncoder` turns points into one feature vector each, batch by batch: chips are cut
(:func:`~soilcarbon_core.imagery.chips.extract_chips`), normalised with TerraMind's pretraining
statistics, run through the frozen lower blocks and the (possibly fine-tuned) head, grouped by the set
of modalities each point has. Results are cached on disk (:class:`EmbeddingCache`).

Fallback (backbone ``none``, or ``auto`` without weights): per modality and band, the value at the point
(the chip's centre pixel), and the chip's mean and standard deviation: 3 features per band, in the
bands' units. The product works offline with these; the spectral-similarity relation uses them too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soilcarbon_core.errors import InputError, SchemaMismatchError
from soilcarbon_core.imagery.cache import EmbeddingCache, default_cache_dir, file_sha256, point_keys
from soilcarbon_core.imagery.chips import PATCH, Chips, check_chip_size, extract_chips
from soilcarbon_core.imagery.encoder import (
    BACKBONES,
    RANDOM,
    WIDTH,
    build_terramind,
    encoder_tokens,
    find_weights,
    missing_weights,
    weights_dir,
    weights_file_name,
)
from soilcarbon_core.imagery.head import FINETUNES, BackboneHead, modality_groups
from soilcarbon_core.imagery.modalities import modality
from soilcarbon_core.imagery.sources import ModalityRasters
from soilcarbon_core.nn.token_pooling import POOLINGS
from soilcarbon_core.progress import ProgressCallback, silent
from soilcarbon_core.settings import JsonSettings

FALLBACK_STATISTICS = ("point", "mean", "sd")
_CACHE_VERSION = 1
#: Points pooled per step from cached tokens (about 40 MB of tiny tokens at chip 64, three modalities).
_POOL_BATCH = 1024


@dataclass
class ImagerySettings(JsonSettings):
    """How imagery becomes node features; stored in the model manifest (``inputs.chips``)."""

    modalities: dict[str, list[str]] = field(default_factory=dict)  #: modality -> bands (set at training)
    chip_size: int = 64
    resolution: float = 10.0  #: chip cell size, metres
    min_valid: float = 0.5  #: a chip with fewer valid pixels masks the modality
    backbone: str = "auto"  #: auto | none | terramind_v1_tiny | terramind_v1_small | terramind_v1_base
    pooling: str = "mean"  #: mean | attention
    finetune: str = "frozen"  #: frozen | last_n | lora
    blocks: int = 2  #: blocks fine-tuned (last_n, lora)
    lora_rank: int = 4
    weights_sha256: str = ""  #: of the TerraMind weights the model was trained with ("random:<seed>")
    head_sha256: str = ""  #: of the fine-tuned head saved in the model file
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_chip_size(self.chip_size)
        choices = {
            "backbone": ("auto", "none", *BACKBONES),
            "pooling": POOLINGS,
            "finetune": FINETUNES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(
                    f"Unknown imagery {name} '{getattr(self, name)}'.", f"Use one of: {', '.join(allowed)}."
                )
        if not 0.0 < self.min_valid <= 1.0:
            raise InputError(f"min_valid must be in (0, 1], not {self.min_valid}.", "For example 0.5.")

    @property
    def uses_terramind(self) -> bool:
        return self.backbone in BACKBONES

    @property
    def trains_head(self) -> bool:
        """Whether the head has parameters to fine-tune (blocks, or an attention pooling)."""
        return self.uses_terramind and (self.finetune != "frozen" or self.pooling == "attention")


@dataclass
class ImageryReport:
    """What happened: chips masked per modality, unit conversions, cache hits, the backbone used."""

    backbone: str
    points: int = 0
    masked: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cache_hits: int = 0
    encoded: int = 0
    #: points with no feature for some modality (masked chips), counted on the results, cached or not
    incomplete: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _state_sha256(state: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class ImageryEncoder:
    """Points -> imagery features (N, F), for fixed rasters and :class:`ImagerySettings`.

    ``weights``: the TerraMind weights file, ``"random"`` (tests), or None (the default location).
    ``head_state``: the fine-tuned head from a model file. ``cache_dir``: None for the default
    folder, False for no cache.
    """

    def __init__(
        self,
        settings: ImagerySettings,
        rasters: list[ModalityRasters],
        *,
        weights: str | os.PathLike[str] | None = None,
        head_state: dict | None = None,
        cache_dir: str | os.PathLike[str] | bool | None = None,
        device: str = "cpu",
    ) -> None:
        self.settings = settings
        self.rasters = self._ordered(settings, rasters)
        self.device = device
        self.report = ImageryReport(backbone=settings.backbone)
        for r in self.rasters:
            self.report.notes.extend(r.notes)
        self.model = self.head = None
        if settings.backbone == "auto":
            found = find_weights(BACKBONES[0], weights)
            settings.backbone = BACKBONES[0] if found or str(weights) == RANDOM else "none"
            if settings.backbone == "none":
                self.report.notes.append(
                    f"No TerraMind weights found in {weights_dir()}: the imagery stream uses chip statistics "
                    f"(put {weights_file_name(BACKBONES[0])} there to use TerraMind)."
                )
            self.report.backbone = settings.backbone
        if settings.uses_terramind:
            self._build(weights, head_state)
        self._cache_dir = None if cache_dir is False else Path(cache_dir or default_cache_dir())

    @staticmethod
    def _ordered(settings: ImagerySettings, rasters: list[ModalityRasters]) -> list[ModalityRasters]:
        """The rasters in a fixed modality order; with trained settings, checked against them."""
        given = {r.name: r for r in rasters}
        if not settings.modalities:
            settings.modalities = {r.name: r.band_names for r in rasters}
            if not rasters:
                raise InputError(
                    "No imagery raster was given.", "Give Sentinel-2, Sentinel-1 or DEM rasters."
                )
        problems = []
        for name, bands in settings.modalities.items():
            if name not in given:
                problems.append(f"{name} bands {', '.join(bands)} (none given)")
            elif given[name].band_names != bands:
                problems.append(
                    f"{name} bands {', '.join(bands)} (given: {', '.join(given[name].band_names)})"
                )
        if problems:
            raise SchemaMismatchError(
                f"The imagery differs from the model's: it needs {'; '.join(problems)}.",
                "Give the same modalities and bands as at training (--s2 / --s1 / --dem).",
            )
        return [given[name] for name in settings.modalities]

    def _build(self, weights, head_state: dict | None) -> None:
        import torch

        s = self.settings
        path = find_weights(s.backbone, weights) if str(weights) != RANDOM else None
        if path is None and str(weights) != RANDOM:
            raise missing_weights(s.backbone)
        digest = f"{RANDOM}:{s.seed}" if path is None else file_sha256(path)
        if s.weights_sha256 and s.weights_sha256 != digest:
            raise SchemaMismatchError(
                f"The model was trained with other TerraMind weights (sha256 {s.weights_sha256[:12]}..., "
                f"given {digest[:12]}...).",
                f"Give the same {s.backbone} weights file as at training.",
            )
        s.weights_sha256 = digest
        self.model = build_terramind(s.backbone, s.modalities, RANDOM if path is None else path, seed=s.seed)
        self.model.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            self.head = BackboneHead(
                self.model,
                WIDTH[s.backbone],
                finetune=s.finetune,
                blocks=s.blocks,
                pooling=s.pooling,
                lora_rank=s.lora_rank,
            )
        if head_state is not None:
            self.head.load_state_dict(head_state)
        self._initial_head = {k: v.detach().clone() for k, v in self.head.state_dict().items()}
        self.model.to(self.device)
        self.head.to(self.device).eval()

    # --- what comes out --------------------------------------------------------------------------------

    @property
    def split(self) -> int:
        """Blocks run before the head (cached)."""
        return self.head.split if self.head is not None else 0

    @property
    def tokens_per_modality(self) -> int:
        return (self.settings.chip_size // PATCH) ** 2

    @property
    def names(self) -> list[str]:
        """Feature names: ``terramind.000`` ... or ``S2L2A.RED.point`` / ``.mean`` / ``.sd``."""
        if self.settings.uses_terramind:
            return [f"terramind.{i:03d}" for i in range(WIDTH[self.settings.backbone])]
        return [
            f"{name}.{band}.{stat}"
            for name, bands in self.settings.modalities.items()
            for band in bands
            for stat in FALLBACK_STATISTICS
        ]

    def reset_head(self) -> None:
        """Put the head back as built (before any fine-tuning), e.g. for the next cross-validation fold."""
        self.head.load_state_dict(self._initial_head)

    def head_state(self) -> dict | None:
        """The head's tensors for the model file, when it has anything trained."""
        if self.head is None or not self.settings.trains_head:
            return None
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        self.settings.head_sha256 = _state_sha256(state)
        return state

    # --- computing ---------------------------------------------------------------------------------

    def _namespace(self, output: str) -> dict:
        s = self.settings
        return {
            "version": _CACHE_VERSION,
            "output": output,
            "rasters": [
                [r.name, b.band, b.index, b.conversion, file_sha256(b.path)]
                for r in self.rasters
                for b in r.bands
            ],
            "chip_size": s.chip_size,
            "resolution": s.resolution,
            "min_valid": s.min_valid,
            "backbone": s.backbone,
            "weights": s.weights_sha256,
            "head": _state_sha256(self.head.state_dict()) if output == "features" and self.head else "",
            "pooling": s.pooling if output == "features" else "",
        }

    def features(self, lonlat: np.ndarray, progress: ProgressCallback = silent) -> np.ndarray:
        """(N, F) float64 imagery features, NaN for points with no usable chip."""
        return self._cached("features", lonlat, (len(self.names),), self._feature_batch, progress)

    def tokens(
        self, lonlat: np.ndarray, progress: ProgressCallback = silent, *, store: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tokens after the frozen blocks (N, K P, D) (zeros for absent modalities) and ``present`` (N, K).

        ``store=False`` reads cached tokens but does not cache new ones (they are large)."""
        k, p, d = len(self.rasters), self.tokens_per_modality, WIDTH[self.settings.backbone]
        flat = self._cached(
            f"tokens@{self.split}", lonlat, (k + k * p * d,), self._token_batch, progress, store=store
        )
        present = flat[:, :k] > 0.5
        return np.nan_to_num(flat[:, k:].reshape(len(lonlat), k * p, d)), present

    def _cached(
        self, output: str, lonlat, shape, compute, progress: ProgressCallback, *, store: bool = True
    ) -> np.ndarray:
        """``compute(lonlat rows) -> (values, present)`` for the points the cache does not hold."""
        lonlat = np.asarray(lonlat, dtype=np.float64)
        counted = output == "features"  # the token pass of fine-tuning is not the run's result
        self.report.points += len(lonlat) if counted else 0
        cache = EmbeddingCache(self._cache_dir, self._namespace(output)) if self._cache_dir else None
        keys = point_keys(np.nan_to_num(lonlat, nan=1e3))
        if cache is not None:
            values, hit = cache.get(keys, shape)
        else:
            values, hit = (
                np.full((len(lonlat), *shape), np.nan, dtype=np.float32),
                np.zeros(len(lonlat), bool),
            )
        self.report.cache_hits += int(hit.sum()) if counted else 0
        todo = np.flatnonzero(~hit)
        step = self.settings.batch_size if self.settings.uses_terramind else 256
        if output == "features" and self.settings.trains_head:
            step = _POOL_BATCH  # token batches are encoded (batch_size at a time) inside self.tokens
        for start in range(0, len(todo), step):
            progress(start / max(len(todo), 1), f"Imagery: {start}/{len(todo)} points encoded")
            rows = todo[start : start + step]
            values[rows], present = compute(lonlat[rows])
            for k, raster in enumerate(self.rasters):
                masked = int((~present[:, k]).sum()) if counted else 0
                self.report.masked[raster.name] = self.report.masked.get(raster.name, 0) + masked
            if cache is not None and store:
                cache.put(keys[rows], values[rows])
        self.report.encoded += len(todo) if counted else 0
        self.report.incomplete += int(np.isnan(values).any(axis=1).sum()) if counted else 0
        progress(1.0, f"Imagery: {len(lonlat)} points ({self.report.cache_hits} from the cache)")
        return values.astype(np.float64) if output == "features" else values

    def _cut(self, lonlat: np.ndarray) -> Chips:
        s = self.settings
        return extract_chips(
            lonlat, self.rasters, s.chip_size, resolution=s.resolution, min_valid=s.min_valid
        )

    def _feature_batch(self, lonlat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.settings.trains_head:
            # Fine-tuning cached the frozen blocks' tokens: pool those through the head instead of cutting
            # and encoding the chips again (new places' tokens are computed, not stored).
            tokens, present = self.tokens(lonlat, store=False)
            return self._pool(tokens, present), present
        chips = self._cut(lonlat)
        if not self.settings.uses_terramind:
            return _chip_statistics(chips), chips.present
        return self._encode(chips, pooled=True), chips.present

    def _token_batch(self, lonlat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chips = self._cut(lonlat)
        encoded = self._encode(chips, pooled=False)
        flat = np.concatenate([chips.present.astype(np.float32), encoded.reshape(len(chips), -1)], axis=1)
        return flat, chips.present

    def _pool(self, tokens: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Head embeddings (N, D) float32 of frozen-block tokens, NaN where no modality is present."""
        import torch

        with torch.no_grad():
            pooled = self.head.pool_groups(
                torch.as_tensor(tokens, dtype=torch.float32, device=self.device),
                torch.as_tensor(present, device=self.device),
                self.tokens_per_modality,
            )
        return pooled.float().cpu().numpy()

    def _encode(self, chips: Chips, pooled: bool) -> np.ndarray:
        import torch

        n, p, d = len(chips), self.tokens_per_modality, WIDTH[self.settings.backbone]
        out = np.full((n, d) if pooled else (n, len(chips.modalities) * p, d), np.nan if pooled else 0.0)
        normalised = {name: _normalise(chips, name) for name in chips.modalities}
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(self.device).startswith("cuda"))
        with torch.no_grad(), autocast:
            for pattern, rows in modality_groups(chips.present):
                inputs = {
                    name: torch.as_tensor(normalised[name][rows], device=self.device)
                    for name, keep in zip(chips.modalities, pattern, strict=True)
                    if keep
                }
                tokens = encoder_tokens(self.model, inputs, upto=self.split)
                if pooled:
                    out[rows] = self.head(tokens).float().cpu().numpy()
                else:
                    keep = np.repeat(pattern, p)
                    block = out[rows]
                    block[:, keep] = tokens.float().cpu().numpy()
                    out[rows] = block
        return out.astype(np.float32)


def _normalise(chips: Chips, name: str) -> np.ndarray:
    """Chips of one modality standardised with TerraMind's pretraining statistics, band by band."""
    mean, std = modality(name).statistics(chips.bands[name])
    values = (chips.values[name] - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[
        :, None, None
    ]
    return np.ascontiguousarray(values, dtype=np.float32)


def _chip_statistics(chips: Chips) -> np.ndarray:
    """Per modality and band: the centre pixel, the chip mean and sd; NaN where the modality is masked."""
    columns = []
    centre = chips.values[chips.modalities[0]].shape[-1] // 2
    for k, name in enumerate(chips.modalities):
        values = chips.values[name].astype(np.float64)
        stats = np.stack(
            [values[:, :, centre, centre], values.mean(axis=(2, 3)), values.std(axis=(2, 3))], axis=2
        )
        stats[~chips.present[:, k]] = np.nan
        columns.append(stats.reshape(len(chips), -1))
    return np.concatenate(columns, axis=1).astype(np.float32)
