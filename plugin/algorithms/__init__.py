"""Processing algorithms, one per file."""

from .sample_covariates import SampleCovariatesAlgorithm

ALGORITHMS = [SampleCovariatesAlgorithm]
