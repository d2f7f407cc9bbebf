"""Baseline regressors of the real GHG benchmark, the models KG-FGNN has to beat on measured fluxes.

- :func:`tier1_n2o`: IPCC 2019 Refinement Tier 1, aggregated direct N2O-N emission factor:
  N2O-N (kg/ha) = 0.010 x N applied (kg N/ha). Fitted on nothing, so the same for any folds.
- :func:`xgboost_model`: one XGBoost regressor (:data:`soilcarbon_training.baselines.XGB_PARAMS`, the SOC
  benchmark's settings), NaN features handled natively.
- :func:`random_forest_model`: the SOC benchmark's random forest (median-imputed, sd = spread of trees).
- :func:`mlp_model`: scikit-learn MLP on median-imputed, standardised features and a standardised target,
  early stopping on a random 15 % of the training rows.

The learned models see :func:`tabular_matrix`: the table's observed feature columns, with the crop code
one-hot encoded. :func:`run_baselines` returns out-of-fold predictions for every row.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from soilcarbon_core.errors import InputError
from soilcarbon_core.ghg.features import CATEGORICAL, CROPS, FEATURE_NAMES, feature_index

from ..baselines import XGB_PARAMS, _checked, random_forest
from ..folds import Folds
from .real_data import RealTable

#: IPCC 2019 Refinement, Tier 1 aggregated emission factor EF1 (kg N2O-N per kg N applied).
IPCC_TIER1_EF = 0.010

#: MLP settings: two hidden layers of 64 ReLU units, L2 penalty 1e-3, Adam at 1e-3, early stopping
#: after 20 epochs without improvement of the validation score.
MLP_PARAMS = {
    "hidden_layer_sizes": (64, 64),
    "alpha": 1e-3,
    "learning_rate_init": 1e-3,
    "early_stopping": True,
    "validation_fraction": 0.15,
    "n_iter_no_change": 20,
    "max_iter": 2000,
}

#: ``(mean, sd)``, each ``(n_test,)``; sd is None where the method gives none.
Prediction = tuple[np.ndarray, np.ndarray | None]

#: Class names of the categorical features, for the one-hot column names (others: the codes).
_CLASS_NAMES: dict[str, tuple[str, ...]] = {"crop": CROPS}


def tier1_n2o(features: np.ndarray) -> np.ndarray:
    """IPCC Tier 1 direct N2O-N emission (kg N2O-N/ha) = 0.010 x n_rate, from ``(N, F)`` features."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != len(FEATURE_NAMES):
        raise InputError(f"Features must be (N, {len(FEATURE_NAMES)}), not {features.shape}.")
    n_rate = features[:, feature_index("n_rate")]
    if not np.isfinite(n_rate).all():
        raise InputError(
            f"IPCC Tier 1 needs the N rate, missing for {int((~np.isfinite(n_rate)).sum())} rows.",
            "Drop the rows without an N rate or use a model that handles missing values.",
        )
    return IPCC_TIER1_EF * n_rate


def tabular_columns(table: RealTable) -> tuple[str, ...]:
    """Names of :func:`tabular_matrix`'s columns: observed features, crops as "crop=<name>"."""
    return _tabular(table)[1]


def tabular_matrix(table: RealTable) -> np.ndarray:
    """``(N, C)`` design matrix of the tabular baselines: the table's observed columns only.

    Every numeric feature with at least one known value, in :data:`FEATURE_NAMES` order (the fertiliser
    type enters as its four N shares, already a soft one-hot encoding); each categorical feature (the crop)
    becomes one 0/1 column per class that occurs, NaN in every one where the class is unknown.
    """
    return _tabular(table)[0]


def _tabular(table: RealTable) -> tuple[np.ndarray, tuple[str, ...]]:
    columns: list[np.ndarray] = []
    names: list[str] = []
    for j, name in enumerate(FEATURE_NAMES):
        values = table.features[:, j]
        known = np.isfinite(values)
        if not known.any():
            continue
        if name not in CATEGORICAL:
            columns.append(values)
            names.append(name)
            continue
        labels = _CLASS_NAMES.get(name, tuple(str(code) for code in range(CATEGORICAL[name])))
        for code, label in enumerate(labels):
            if np.any(values[known] == code):
                columns.append(np.where(known, (values == code).astype(np.float64), np.nan))
                names.append(f"{name}={label}")
    if not columns:
        raise InputError(f"Table {table.name!r} has no observed feature.")
    return np.column_stack(columns), tuple(names)


def xgboost_model(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    seed: int = 0,
    *,
    threads: int = 1,
    n_estimators: int | None = None,
) -> Prediction:
    """One XGBoost regressor with :data:`XGB_PARAMS` (``n_estimators`` overrides its tree count); no sd."""
    from xgboost import XGBRegressor

    x_train, y_train, x_test = _checked(x_train, y_train, x_test)
    params = XGB_PARAMS | ({} if n_estimators is None else {"n_estimators": n_estimators})
    model = XGBRegressor(**params, n_jobs=threads, random_state=seed).fit(x_train, y_train)
    return np.asarray(model.predict(x_test), dtype=np.float64), None


def random_forest_model(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    seed: int = 0,
    *,
    threads: int = 1,
    n_estimators: int | None = None,
) -> Prediction:
    """:func:`soilcarbon_training.baselines.random_forest` (300 trees unless ``n_estimators``): mean, sd."""
    options = {} if n_estimators is None else {"n_estimators": n_estimators}
    return random_forest(x_train, y_train, x_test, seed=seed, threads=threads, **options)


def mlp_model(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int = 0) -> Prediction:
    """scikit-learn ``MLPRegressor`` (:data:`MLP_PARAMS`, seeded) on standardised, median-imputed features.

    Features: NaN -> training median, then z = (x - mean) / sd with training statistics. The target is
    standardised the same way for fitting and the prediction mapped back. No sd.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train, x_test = _checked(x_train, y_train, x_test)
    centre, scale = y_train.mean(), y_train.std()
    scale = scale if scale > 0 else 1.0
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        MLPRegressor(**MLP_PARAMS, random_state=seed),
    ).fit(x_train, (y_train - centre) / scale)
    return centre + scale * np.asarray(model.predict(x_test), dtype=np.float64), None


def run_baselines(
    table: RealTable,
    folds: Folds,
    seed: int = 0,
    *,
    threads: int = 1,
    n_estimators: int | None = None,
) -> dict[str, np.ndarray]:
    """Out-of-fold mean predictions ``(N,)`` of every baseline, keyed by name.

    "ipcc_tier1" (N2O tables only), "xgboost", "random_forest", "mlp": each learned model is fitted on a
    fold's training rows of :func:`tabular_matrix` and predicts its test rows. ``n_estimators`` overrides
    the tree count of both tree models (e.g. small in tests).
    """
    n = table.target.size
    tested = np.zeros(n, dtype=np.int64)
    for _, test in folds:
        tested[test] += 1
    if not np.all(tested == 1):
        raise InputError("The folds must put every row in exactly one test set.", "Use the folds module.")
    x = tabular_matrix(table)
    models: dict[str, Callable[..., Prediction]] = {
        "xgboost": partial(xgboost_model, threads=threads, n_estimators=n_estimators),
        "random_forest": partial(random_forest_model, threads=threads, n_estimators=n_estimators),
        "mlp": mlp_model,
    }
    predictions: dict[str, np.ndarray] = {}
    if table.target_name == "n2o":
        predictions["ipcc_tier1"] = tier1_n2o(table.features)
    for name, model in models.items():
        out = np.empty(n)
        for train, test in folds:
            out[test] = model(x[train], table.target[train], x[test], seed=seed)[0]
        predictions[name] = out
    return predictions
