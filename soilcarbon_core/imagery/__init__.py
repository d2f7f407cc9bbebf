"""The imagery stream: chips from Sentinel-2, Sentinel-1 and DEM rasters, TerraMind embeddings or chip
statistics, an embedding cache, and the fine-tuned head saved with a model."""

from soilcarbon_core.imagery.cache import EmbeddingCache, default_cache_dir
from soilcarbon_core.imagery.chips import Chips, extract_chips
from soilcarbon_core.imagery.encoder import BACKBONES, weights_dir
from soilcarbon_core.imagery.inputs import ImageryInputs, chip_features, default_inputs
from soilcarbon_core.imagery.modalities import MODALITIES
from soilcarbon_core.imagery.sources import ModalityRasters, modality_rasters
from soilcarbon_core.imagery.stream import ImageryEncoder, ImageryReport, ImagerySettings

__all__ = [
    "BACKBONES",
    "MODALITIES",
    "Chips",
    "EmbeddingCache",
    "ImageryEncoder",
    "ImageryInputs",
    "ImageryReport",
    "ImagerySettings",
    "ModalityRasters",
    "chip_features",
    "default_cache_dir",
    "default_inputs",
    "extract_chips",
    "modality_rasters",
    "weights_dir",
]
