"""Producing the GHG model: scenarios, calibration, real data, KG-FGNN training."""
