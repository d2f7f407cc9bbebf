"""Predictive uncertainty: metrics, deep-ensemble combination, post-hoc recalibration and plots.

Metrics, ensembles and calibration need only numpy and scipy; plots import matplotlib when called.
"""

from soilcarbon_core.uncertainty.calibration import (
    CALIBRATION_METHODS,
    Calibrator,
    IsotonicCalibration,
    SigmaScaling,
    calibrator_from_dict,
    fit_calibrator,
    isotonic_regression,
)
from soilcarbon_core.uncertainty.ensemble import EnsemblePrediction, combine_members
from soilcarbon_core.uncertainty.metrics import (
    Interval,
    UncertaintyInputError,
    calibration_curve,
    crps_gaussian,
    ece,
    ence,
    gaussian_interval,
    gaussian_nll,
    mae,
    mape,
    morans_i,
    picp,
    r2,
    regression_metrics,
    rmse,
)
from soilcarbon_core.uncertainty.plots import plot_calibration, plot_intervals, plot_learning_curve

__all__ = [
    "CALIBRATION_METHODS",
    "Calibrator",
    "EnsemblePrediction",
    "Interval",
    "IsotonicCalibration",
    "SigmaScaling",
    "UncertaintyInputError",
    "calibration_curve",
    "calibrator_from_dict",
    "combine_members",
    "crps_gaussian",
    "ece",
    "ence",
    "fit_calibrator",
    "gaussian_interval",
    "gaussian_nll",
    "isotonic_regression",
    "mae",
    "mape",
    "morans_i",
    "picp",
    "plot_calibration",
    "plot_intervals",
    "plot_learning_curve",
    "r2",
    "regression_metrics",
    "rmse",
]
