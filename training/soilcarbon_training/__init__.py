"""Producing SpTGNN models: losses, the ensemble trainer, cross-validation, baselines and benchmarks.

Kept apart from ``soilcarbon_core`` (the runtime): this package trains; the core predicts.
"""
