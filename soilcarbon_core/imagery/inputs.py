"""What a run is given for the imagery stream: rasters per modality and local resources.

The same object comes from CLI options (``--s2``, ``--s1``, ``--dem``, ``--terramind-weights``,
``--embedding-cache``) and from the worker's ``imagery`` request parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from soilcarbon_core.errors import InputError
from soilcarbon_core.imagery.sources import ModalityRasters, modality_rasters
from soilcarbon_core.imagery.stream import ImageryEncoder, ImagerySettings
from soilcarbon_core.progress import ProgressCallback, silent
from soilcarbon_core.settings import JsonSettings

S2_LEVELS = ("L2A", "L1C")


@dataclass
class ImageryInputs(JsonSettings):
    """Imagery rasters (``PATH`` or ``PATH=BAND,BAND``) per modality, TerraMind weights, embedding cache."""

    s2: list[str] = field(default_factory=list)
    s2_level: str = "L2A"  #: L2A (surface reflectance) or L1C (top of atmosphere)
    s1: list[str] = field(default_factory=list)
    s1_units: str = "auto"  #: auto | db | linear
    dem: list[str] = field(default_factory=list)
    weights: str | None = None  #: TerraMind weights file (default: the weights folder)
    cache_dir: str | None = None  #: embedding cache folder (default: ~/.cache/soilcarbon/embeddings)
    cache: bool = True

    def __post_init__(self) -> None:
        if self.s2_level not in S2_LEVELS:
            raise InputError(f"Unknown Sentinel-2 level '{self.s2_level}'.", "Use L2A or L1C.")

    @property
    def given(self) -> bool:
        return bool(self.s2 or self.s1 or self.dem)

    def rasters(self) -> list[ModalityRasters]:
        found = []
        if self.s2:
            found.append(modality_rasters(f"S2{self.s2_level}", self.s2))
        if self.s1:
            found.append(modality_rasters("S1GRD", self.s1, self.s1_units))
        if self.dem:
            found.append(modality_rasters("DEM", self.dem))
        return found

    def encoder(
        self, settings: ImagerySettings, *, head_state: dict | None = None, device: str = "cpu"
    ) -> ImageryEncoder:
        return ImageryEncoder(
            settings,
            self.rasters(),
            weights=self.weights,
            head_state=head_state,
            cache_dir=self.cache_dir if self.cache else False,
            device=device,
        )


def chip_features(
    lonlat: np.ndarray, encoder: ImageryEncoder, progress: ProgressCallback = silent
) -> dict[str, np.ndarray]:
    """The encoder's features at ``lonlat`` (N, 2) as named columns (NaN where no chip is usable)."""
    values = encoder.features(lonlat, progress)
    return {name: values[:, i] for i, name in enumerate(encoder.names)}


def default_inputs(values: dict | None) -> ImageryInputs | None:
    """``ImageryInputs`` from a request / options dict; None when no imagery raster is given."""
    if not values:
        return None
    inputs = ImageryInputs.from_dict({k: v for k, v in values.items() if v is not None})
    return inputs if inputs.given else None


__all__ = ["S2_LEVELS", "ImageryInputs", "chip_features", "default_inputs"]
