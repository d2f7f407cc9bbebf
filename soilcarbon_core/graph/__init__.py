"""The three-relation soil graph (spatial, spectral, elevation) over sample nodes.

Fit a :class:`ReferenceGraph` once on the reference (labelled) nodes, then :meth:`ReferenceGraph.attach`
each chunk of query nodes to it (or :meth:`ReferenceGraph.attach_tables`: padded neighbour tables).
Everything is numpy and scipy's KD-tree; the model code turns the arrays into tensors.
"""

from soilcarbon_core.graph.geometry import EARTH_RADIUS_M
from soilcarbon_core.graph.neighbours import get_workers, set_workers
from soilcarbon_core.graph.params import RELATIONS, GraphParams
from soilcarbon_core.graph.reference import ReferenceGraph
from soilcarbon_core.graph.relations import NeighbourTable, Relation
from soilcarbon_core.graph.spectral import SpectralSpace

__all__ = [
    "EARTH_RADIUS_M",
    "RELATIONS",
    "GraphParams",
    "NeighbourTable",
    "ReferenceGraph",
    "Relation",
    "SpectralSpace",
    "get_workers",
    "set_workers",
]
