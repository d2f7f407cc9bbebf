"""Soil greenhouse-gas fluxes under fertilisation: the process simulator and the KG-FGNN model."""
