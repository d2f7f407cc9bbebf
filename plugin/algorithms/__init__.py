"""Processing algorithms, one per file."""

from .imagery_features import ImageryFeaturesAlgorithm
from .sample_covariates import SampleCovariatesAlgorithm

ALGORITHMS = [SampleCovariatesAlgorithm, ImageryFeaturesAlgorithm]
