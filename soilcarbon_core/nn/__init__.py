"""Neural-network operators of SpTGNN, written for a batched deep ensemble.

Every parameter carries a leading member dimension ``M``, and every activation is shaped
``(M, N, features)``: the M members of the ensemble run as one batched computation (one matrix multiply
per layer for all members) instead of M sequential passes. ``M = 1`` is a single model.
"""

from soilcarbon_core.nn.ensemble_linear import EnsembleLinear, EnsembleMLP
from soilcarbon_core.nn.moe import SparseMoE
from soilcarbon_core.nn.relational_attention import RelationalAttention
from soilcarbon_core.nn.sptgnn import SpTGNN, SpTGNNConfig

__all__ = ["EnsembleLinear", "EnsembleMLP", "RelationalAttention", "SpTGNN", "SpTGNNConfig", "SparseMoE"]
