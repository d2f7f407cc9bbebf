"""Neural-network operators of SpTGNN (batched deep ensemble) and KG-FGNN (feature graphs).

Every parameter carries a leading member dimension ``M``, and every activation is shaped
``(M, N, features)``: the M members of the ensemble run as one batched computation (one matrix multiply
per layer for all members) instead of M sequential passes. ``M = 1`` is a single model.
"""

from soilcarbon_core.nn.ensemble_linear import EnsembleLinear, EnsembleMLP
from soilcarbon_core.nn.feature_autoencoder import (
    FeatureAutoencoder,
    feature_sensitivity,
    reconstruction_loss,
)
from soilcarbon_core.nn.feature_graph import FeatureGraphAttention
from soilcarbon_core.nn.kgfgnn import KGFGNN, KGFGNNOutput
from soilcarbon_core.nn.moe import SparseMoE
from soilcarbon_core.nn.relational_attention import RelationalAttention
from soilcarbon_core.nn.sptgnn import SpTGNN, SpTGNNConfig

__all__ = [
    "KGFGNN",
    "EnsembleLinear",
    "EnsembleMLP",
    "FeatureAutoencoder",
    "FeatureGraphAttention",
    "KGFGNNOutput",
    "RelationalAttention",
    "SpTGNN",
    "SpTGNNConfig",
    "SparseMoE",
    "feature_sensitivity",
    "reconstruction_loss",
]
