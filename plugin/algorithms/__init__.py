"""Processing algorithms, one per file."""

from .build_graph import BuildGraphAlgorithm
from .evaluate_model import EvaluateModelAlgorithm
from .imagery_features import ImageryFeaturesAlgorithm
from .plan_campaign import PlanCampaignAlgorithm
from .predict_ghg import PredictGHGAlgorithm
from .predict_map import PredictMapAlgorithm
from .predict_points import PredictPointsAlgorithm
from .sample_covariates import SampleCovariatesAlgorithm
from .train_model import TrainModelAlgorithm

ALGORITHMS = [
    SampleCovariatesAlgorithm,
    TrainModelAlgorithm,
    EvaluateModelAlgorithm,
    ImageryFeaturesAlgorithm,
    PredictPointsAlgorithm,
    PredictMapAlgorithm,
    BuildGraphAlgorithm,
    PredictGHGAlgorithm,
    PlanCampaignAlgorithm,
]
