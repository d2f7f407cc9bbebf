"""Baseline regressors of the SOC benchmark: each fits on a training fold and predicts a mean and a
standard deviation for the test fold.

- :func:`xgboost_bootstrap`: M XGBoost regressors, each on a bootstrap resample of the training set;
  mean = mean of the members, sd = their spread (population sd), i.e. epistemic uncertainty only, as
  in the reference tabular baseline.
- :func:`xgboost_quantile`: one XGBoost model with the pinball loss at 5 %, 50 % and 95 %; mean = the
  median, sd = (q95 - q05) / (2 * 1.6449), the sd of a Gaussian with the same central 90 % interval.
- :func:`random_forest`: scikit-learn random forest on median-imputed features; sd = spread of the
  per-tree predictions.
- :func:`ordinary_kriging`: ordinary kriging from the coordinates alone, in a local neighbourhood.

:data:`BASELINES` wraps them with a common signature ``(dataset, train_idx, test_idx, seed, threads)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree

from soilcarbon_core.errors import InputError
from soilcarbon_core.graph.geometry import SpatialFrame

from .datasets import SoilDataset, feature_matrix

#: z of the 95th percentile of the standard normal: a central 90 % interval is mean +- Z90 * sd.
Z90 = 1.6448536269514722

#: XGBoost hyper-parameters shared by both XGBoost baselines (common defaults, not tuned per data set).
XGB_PARAMS = {
    "n_estimators": 400,
    "max_depth": 6,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "tree_method": "hist",
}

#: Share of the features tried at each random-forest split (the usual choice for regression).
RF_MAX_FEATURES = 1 / 3

#: pykrige's cut-off below which a distance counts as zero (a prediction point on a data point).
_KRIGING_EPS = 1.0e-10

Prediction = tuple[np.ndarray, np.ndarray]


def xgboost_bootstrap(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    *,
    members: int = 5,
    seed: int = 0,
    threads: int = 1,
) -> Prediction:
    """Bootstrap ensemble of XGBoost regressors (:data:`XGB_PARAMS`); NaN features handled natively.

    Member m is fitted on N rows drawn with replacement from the N training rows; with predictions
    f_m(x): mean = (1/M) sum_m f_m(x), sd = sqrt((1/M) sum_m (f_m(x) - mean)^2).

    Returns:
        ``(mean, sd)``, each ``(n_test,)``.
    """
    from xgboost import XGBRegressor

    x_train, y_train, x_test = _checked(x_train, y_train, x_test)
    rng = np.random.default_rng(seed)
    predictions = np.empty((members, x_test.shape[0]))
    for m in range(members):
        rows = rng.integers(0, y_train.size, y_train.size)
        model = XGBRegressor(**XGB_PARAMS, n_jobs=threads, random_state=int(rng.integers(2**31)))
        model.fit(x_train[rows], y_train[rows])
        predictions[m] = model.predict(x_test)
    return predictions.mean(axis=0), predictions.std(axis=0)


def xgboost_quantile(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, seed: int = 0, threads: int = 1
) -> Prediction:
    """One XGBoost model with the quantile (pinball) loss at 0.05, 0.5 and 0.95 (``reg:quantileerror``).

    The three predicted quantiles are sorted per sample (separate trees per quantile may cross);
    mean = q50, sd = (q95 - q05) / (2 * Z90).
    """
    from xgboost import XGBRegressor

    x_train, y_train, x_test = _checked(x_train, y_train, x_test)
    model = XGBRegressor(
        **XGB_PARAMS,
        objective="reg:quantileerror",
        quantile_alpha=np.array([0.05, 0.5, 0.95]),
        n_jobs=threads,
        random_state=seed,
    )
    model.fit(x_train, y_train)
    quantiles = np.sort(np.asarray(model.predict(x_test), dtype=np.float64).reshape(-1, 3), axis=1)
    return quantiles[:, 1], (quantiles[:, 2] - quantiles[:, 0]) / (2.0 * Z90)


def random_forest(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    *,
    seed: int = 0,
    threads: int = 1,
    n_estimators: int = 300,
) -> Prediction:
    """Random forest regression; NaN replaced by the training median of each feature.

    :data:`RF_MAX_FEATURES` of the features are tried at each split. With tree
    predictions t_j(x): mean = (1/T) sum_j t_j(x) (the forest's prediction), sd = population sd of t_j(x).
    """
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer

    x_train, y_train, x_test = _checked(x_train, y_train, x_test)
    # keep_empty_features: an all-NaN training column becomes 0 rather than silently shifting columns.
    imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(x_train)
    forest = RandomForestRegressor(
        n_estimators=n_estimators, max_features=RF_MAX_FEATURES, n_jobs=threads, random_state=seed
    ).fit(imputer.transform(x_train), y_train)
    test = imputer.transform(x_test)
    trees = np.stack([tree.predict(test) for tree in forest.estimators_])
    return trees.mean(axis=0), trees.std(axis=0)


def ordinary_kriging(
    coords_train: np.ndarray,
    y_train: np.ndarray,
    coords_test: np.ndarray,
    *,
    geographic: bool,
    n_closest: int = 64,
    variogram_model: str = "exponential",
    variogram_parameters: dict[str, float] | None = None,
    nlags: int = 20,
    max_variogram_points: int = 2000,
    seed: int = 0,
    new_observation: bool = False,
) -> Prediction:
    """Ordinary kriging in a moving neighbourhood of the ``n_closest`` training points.

    The variogram is fitted by PyKrige (``OrdinaryKriging``: weighted least squares on ``nlags``
    experimental semivariance bins, short lags weighted more) on the training points, or on a seeded
    random subset of ``max_variogram_points`` of them because PyKrige's fit is O(N^2) in memory;
    ``variogram_parameters`` (e.g. ``{"sill": 1, "range": 10, "nugget": 0}``) fixes it instead.
    Distances are euclidean in the coordinates' unit, or great-circle in degrees of arc when
    ``geographic`` (lon/lat degrees), as in PyKrige.

    For each test point x0 with neighbours x_1..x_k and semivariogram g, the system
        [G 1; 1' 0] [w; mu] = [g0; 1],  G_ij = g(|x_i - x_j|) with G_ii = 0,  g0_i = g(|x_i - x0|)
    gives the prediction sum_i w_i z_i and the kriging variance s2 = w'g0 + mu; sd = sqrt(max(s2, 0)).
    This is exactly PyKrige's ``execute("points", ..., n_closest_points=k, backend="loop")`` (with its
    exact-value rule: g0_i = 0 when x0 is on x_i), solved in batches without PyKrige's N x N matrix, so
    it scales to tens of thousands of training points. Training points that share coordinates are
    first merged into one with their mean value (coinciding points make the system singular).

    With ``new_observation`` the fitted nugget is added to the variance: the uncertainty of a new
    measurement rather than of the noise-free signal (which is 0 on a training location, where a
    repeated measurement is not).

    Returns:
        ``(mean, sd)``, each ``(n_test,)``.
    """
    from pykrige.ok import OrdinaryKriging

    coords_train, y_train, coords_test = _checked(coords_train, y_train, coords_test)
    if coords_train.shape[1] != 2:
        raise InputError(f"Kriging needs (N, 2) coordinates, not {coords_train.shape}.")
    coords_train, y_train = _merge_duplicates(coords_train, y_train)
    if y_train.size < 2:
        raise InputError("Kriging needs at least two distinct training locations.")
    coordinates_type = "geographic" if geographic else "euclidean"

    fit_rows = np.arange(y_train.size)
    if y_train.size > max_variogram_points:
        fit_rows = np.sort(
            np.random.default_rng(seed).choice(y_train.size, max_variogram_points, replace=False)
        )
    fitted = OrdinaryKriging(
        coords_train[fit_rows, 0],
        coords_train[fit_rows, 1],
        y_train[fit_rows],
        variogram_model=variogram_model,
        variogram_parameters=variogram_parameters,
        nlags=nlags,
        weight=True,
        coordinates_type=coordinates_type,
    )

    def semivariance(d: np.ndarray) -> np.ndarray:
        return fitted.variogram_function(fitted.variogram_model_parameters, d)

    k = min(n_closest, y_train.size)
    neighbours = _neighbours(coords_train, coords_test, k, geographic)
    mean = np.empty(coords_test.shape[0])
    variance = np.empty(coords_test.shape[0])
    for start in range(0, coords_test.shape[0], 1024):  # bounded memory: 1024 systems of k+1 at a time
        rows = slice(start, start + 1024)
        idx = neighbours[rows]
        near = coords_train[idx]  # (m, k, 2)
        a = np.ones((idx.shape[0], k + 1, k + 1))
        a[:, :k, :k] = -semivariance(_distance(near[:, :, None, :], near[:, None, :, :], geographic))
        a[:, np.arange(k), np.arange(k)] = 0.0
        a[:, k, k] = 0.0
        to_point = _distance(coords_test[rows, None, :], near, geographic)  # (m, k)
        b = np.ones((idx.shape[0], k + 1))
        b[:, :k] = np.where(to_point <= _KRIGING_EPS, 0.0, -semivariance(to_point))
        solution = _solve(a, b)
        mean[rows] = np.einsum("mk,mk->m", solution[:, :k], y_train[idx])
        variance[rows] = -np.einsum("mk,mk->m", solution, b)
    if new_observation:
        variance = variance + fitted.variogram_model_parameters[-1]  # the nugget comes last in PyKrige
    return mean, np.sqrt(np.clip(variance, 0.0, None))


def _neighbours(coords_train: np.ndarray, coords_test: np.ndarray, k: int, geographic: bool) -> np.ndarray:
    """``(n_test, k)`` indices of the k nearest training points (on the unit sphere if geographic)."""
    # Great-circle neighbours as chord neighbours on the sphere, without the antimeridian seam.
    frame = SpatialFrame(geographic)
    _, idx = cKDTree(frame.embed(coords_train)).query(frame.embed(coords_test), k=k)
    return np.asarray(idx, dtype=np.int64).reshape(coords_test.shape[0], k)


def _distance(p: np.ndarray, q: np.ndarray, geographic: bool) -> np.ndarray:
    """Broadcast distances between points ``p[..., 2]`` and ``q[..., 2]``."""
    if geographic:
        from pykrige.core import great_circle_distance

        return great_circle_distance(p[..., 0], p[..., 1], q[..., 0], q[..., 1])
    return np.hypot(p[..., 0] - q[..., 0], p[..., 1] - q[..., 1])


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        # A singular neighbourhood (e.g. zero nugget with collinear points): least-norm solution.
        return np.einsum("mij,mj->mi", np.linalg.pinv(a), b)


def _merge_duplicates(coords: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(coords, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if unique.shape[0] == coords.shape[0]:
        return coords, values
    return unique, np.bincount(inverse, weights=values) / np.bincount(inverse)


def _checked(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, ...]:
    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    y_train = np.asarray(y_train, np.float64).reshape(-1)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise InputError(
            f"Train and test inputs must be 2-D with equal columns: {x_train.shape}, {x_test.shape}."
        )
    if x_train.shape[0] != y_train.size or y_train.size == 0:
        raise InputError(f"{x_train.shape[0]} training rows but {y_train.size} targets.")
    if not np.isfinite(y_train).all():
        raise InputError("The training targets contain NaN or infinite values.", "Drop those samples.")
    return x_train, y_train, x_test


def _tabular(model: Callable[..., Prediction]) -> Callable[..., Prediction]:
    def run(
        dataset: SoilDataset, train_idx: np.ndarray, test_idx: np.ndarray, seed: int = 0, threads: int = 1
    ) -> Prediction:
        x, _ = feature_matrix(dataset)
        return model(x[train_idx], dataset.target[train_idx], x[test_idx], seed=seed, threads=threads)

    run.__doc__ = f"{model.__name__} on :func:`feature_matrix` of the data set."
    return run


def _kriging(
    dataset: SoilDataset, train_idx: np.ndarray, test_idx: np.ndarray, seed: int = 0, threads: int = 1
) -> Prediction:
    """Ordinary kriging from the coordinates alone, sd of a new measurement (``threads`` unused)."""
    return ordinary_kriging(
        dataset.coords[train_idx],
        dataset.target[train_idx],
        dataset.coords[test_idx],
        geographic=dataset.geographic,
        seed=seed,
        new_observation=True,
    )


#: Baseline name -> ``callable(dataset, train_idx, test_idx, seed, threads) -> (mean, sd)``.
BASELINES: dict[str, Callable[..., Prediction]] = {
    "xgboost_bootstrap": _tabular(xgboost_bootstrap),
    "xgboost_quantile": _tabular(xgboost_quantile),
    "random_forest": _tabular(random_forest),
    "ordinary_kriging": _kriging,
}
