"""Uncertainty metrics, ensembles, recalibration and plots, against references and known answers."""

from __future__ import annotations

import json
import math

import esda
import libpysal
import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    r2_score,
)

from soilcarbon_core.errors import InputError
from soilcarbon_core.uncertainty import (
    IsotonicCalibration,
    SigmaScaling,
    UncertaintyInputError,
    calibration_curve,
    calibrator_from_dict,
    combine_members,
    crps_gaussian,
    ece,
    ence,
    fit_calibrator,
    gaussian_interval,
    gaussian_nll,
    isotonic_regression,
    mae,
    mape,
    morans_i,
    picp,
    plot_calibration,
    plot_intervals,
    r2,
    regression_metrics,
    rmse,
)

Z90 = 1.6448536269514722  # Phi^-1(0.95)


def heteroscedastic(rng: np.random.Generator, n: int, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """Targets drawn from N(mean, (scale * sd)^2) with varying means and sds: ``(y, mean, sd)``."""
    mean = rng.normal(20.0, 5.0, n)
    sd = rng.uniform(0.5, 3.0, n)
    return mean + scale * sd * rng.standard_normal(n), mean, sd


def skewed(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Miscalibrated in every way: biased, overdispersed, right-skewed (gamma) errors."""
    mean = rng.normal(0.0, 3.0, n)
    sd = rng.uniform(0.5, 2.0, n)
    noise = 1.5 * (rng.gamma(2.0, 1.0, n) - 2.0) / math.sqrt(2.0) + 0.3
    return mean + sd * noise, mean, sd


# --- point metrics -----------------------------------------------------------------------------------


def test_point_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, mean, _ = heteroscedastic(rng, 500)
    mean = mean + rng.normal(0, 2, 500)
    assert r2(y, mean) == pytest.approx(r2_score(y, mean), rel=1e-12)
    assert rmse(y, mean) == pytest.approx(math.sqrt(mean_squared_error(y, mean)), rel=1e-12)
    assert mae(y, mean) == pytest.approx(mean_absolute_error(y, mean), rel=1e-12)
    assert mape(y, mean) == pytest.approx(100 * mean_absolute_percentage_error(y, mean), rel=1e-12)


def test_mape_skips_zero_targets_and_r2_of_constant_target_is_nan():
    y = np.array([0.0, 2.0, 4.0, 0.0])
    mean = np.array([5.0, 3.0, 3.0, -1.0])
    assert mape(y, mean) == pytest.approx(100 * (0.5 + 0.25) / 2)
    assert math.isnan(mape(np.zeros(3), np.ones(3)))
    assert math.isnan(r2(np.ones(3), np.arange(3.0)))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.ones(3), np.ones(4), np.ones(3)), "different lengths"),
        ((np.ones((3, 1)), np.ones(3), np.ones(3)), "1-D"),
        ((np.array([1.0, np.nan]), np.ones(2), np.ones(2)), "NaN"),
        ((np.ones(2), np.ones(2), np.array([1.0, 0.0])), "'sd' must be > 0"),
        ((np.ones(0), np.ones(0), np.ones(0)), "empty"),
    ],
)
def test_bad_arrays_raise_a_clear_value_error(args, match):
    with pytest.raises(ValueError, match=match) as caught:
        gaussian_nll(*args)
    assert isinstance(caught.value, InputError)


# --- probabilistic scores ------------------------------------------------------------------------------


def test_gaussian_nll_matches_scipy_logpdf():
    rng = np.random.default_rng(1)
    y, mean, sd = heteroscedastic(rng, 300, scale=1.7)
    assert gaussian_nll(y, mean, sd) == pytest.approx(-norm.logpdf(y, mean, sd).mean(), rel=1e-12)


def test_crps_matches_numerical_integration():
    """CRPS = integral of (F(x) - 1{x >= y})^2 dx, integrated on either side of y."""
    rng = np.random.default_rng(2)
    y, mean, sd = heteroscedastic(rng, 12, scale=2.0)
    numeric = []
    for yi, mi, si in zip(y, mean, sd, strict=True):
        below = integrate.quad(lambda x, m=mi, s=si: norm.cdf(x, m, s) ** 2, -np.inf, yi)[0]
        above = integrate.quad(lambda x, m=mi, s=si: (1 - norm.cdf(x, m, s)) ** 2, yi, np.inf)[0]
        numeric.append(below + above)
    assert crps_gaussian(y, mean, sd) == pytest.approx(np.mean(numeric), rel=1e-7)
    # A perfect point forecast with a vanishing sd has CRPS -> |y - mean| (the MAE).
    assert crps_gaussian(np.array([3.0]), np.array([1.0]), np.array([1e-9])) == pytest.approx(2.0)


# --- intervals and calibration -------------------------------------------------------------------------


def test_gaussian_interval_known_answers():
    lower, upper = gaussian_interval(np.array([10.0, 0.0]), np.array([2.0, 1.0]), 0.9)
    np.testing.assert_allclose(lower, [10 - 2 * Z90, -Z90], rtol=1e-12)
    np.testing.assert_allclose(upper, [10 + 2 * Z90, Z90], rtol=1e-12)
    lower, upper = gaussian_interval(np.array([5.0]), np.array([2.0]), 0.0)
    assert lower[0] == upper[0] == 5.0
    lower, upper = gaussian_interval(np.array([5.0]), np.array([2.0]), 1.0)
    assert lower[0] == -np.inf and upper[0] == np.inf
    with pytest.raises(ValueError, match="outside"):
        gaussian_interval(np.zeros(1), np.ones(1), 90)


def test_picp_known_answer():
    # Standardised residuals; the 90 % interval holds |z| <= 1.6449.
    z = np.array([0.0, 1.0, 1.6, -1.64, 1.7, -2.0, 3.0, -0.5])
    sd = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 2.0, 0.1, 4.0])
    mean = np.arange(8.0)
    assert picp(mean + z * sd, mean, sd, 0.9) == pytest.approx(5 / 8)
    assert picp(mean + z * sd, mean, sd, 0.5) == pytest.approx(2 / 8)  # |z| <= 0.6745
    # Bounds count as inside: a target on its bound, or on a zero-width (level 0) interval.
    assert picp(gaussian_interval(mean, sd, 0.8)[1], mean, sd, 0.8) == 1.0
    assert picp(mean, mean, sd, 0.0) == 1.0


def test_calibration_curve_levels_and_ends():
    rng = np.random.default_rng(3)
    y, mean, sd = heteroscedastic(rng, 1000)
    expected, observed = calibration_curve(y, mean, sd)
    np.testing.assert_array_equal(expected, np.linspace(0, 1, 100))
    assert observed[0] == 0.0 and observed[-1] == 1.0
    assert (np.diff(observed) >= 0).all()


def test_ece_of_calibrated_sample_is_small():
    rng = np.random.default_rng(4)
    y, mean, sd = heteroscedastic(rng, 20000)
    assert ece(y, mean, sd) < 0.01


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_ece_of_mis_scaled_sd_matches_analytic_value(factor):
    """Truth N(0, 1), predicted sd = factor: obs(p) = 2 Phi(factor Phi^-1((1 + p) / 2)) - 1."""
    rng = np.random.default_rng(5)
    n = 20000
    p = np.linspace(0, 1, 100)
    analytic = np.mean(np.abs(p - (2 * norm.cdf(factor * norm.ppf((1 + p) / 2)) - 1)))
    assert analytic > 0.2
    assert ece(rng.standard_normal(n), np.zeros(n), np.full(n, factor)) == pytest.approx(analytic, abs=0.006)


def test_ece_worst_case():
    """Every target far outside: obs = 0 except at p = 1 (an infinite interval), so ECE = 0.5 - 1/100."""
    n = 50
    assert ece(np.full(n, 1e6), np.zeros(n), np.ones(n)) == pytest.approx(0.49)


def test_ence_zero_for_matching_spread_and_hand_computed_case():
    rng = np.random.default_rng(6)
    sd = np.repeat([0.5, 1.0, 2.0, 4.0, 8.0], 20)
    signs = rng.choice([-1.0, 1.0], sd.size)
    order = rng.permutation(sd.size)  # input order must not matter
    assert ence((signs * sd)[order], np.zeros(sd.size), sd[order], bins=5) == pytest.approx(0.0, abs=1e-12)
    # Bins {sd 1, 2} and {sd 3, 4}: RMV sqrt(2.5), RMSE sqrt(5) -> sqrt(2) - 1; RMV = RMSE = sqrt(12.5) -> 0.
    sd = np.array([4.0, 1.0, 3.0, 2.0])
    residual = np.array([5.0, 1.0, 0.0, -3.0])
    assert ence(residual, np.zeros(4), sd, bins=2) == pytest.approx((math.sqrt(2) - 1) / 2, rel=1e-12)
    # Fewer samples than bins: one bin per sample, |sd - |r|| / sd.
    assert ence(residual, np.zeros(4), sd, bins=10) == pytest.approx(
        np.mean(np.abs(sd - np.abs(residual)) / sd)
    )


# --- Moran's I -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def knn_graph():
    """A directed 4-nearest-neighbour graph on 80 random points, inverse-distance weights, and a trend."""
    rng = np.random.default_rng(7)
    n, k = 80, 4
    xy = rng.uniform(0, 10, (n, 2))
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    np.fill_diagonal(distance, np.inf)
    neighbours = np.argsort(distance, axis=1)[:, :k]
    source, target = np.repeat(np.arange(n), k), neighbours.ravel()
    values = xy[:, 0] + rng.normal(0, 2, n)
    return values, np.stack([source, target]), 1.0 / distance[source, target]


def esda_moran(values, edges, weights, transformation):
    n = values.size
    neighbours = {i: edges[1, edges[0] == i].tolist() for i in range(n)}
    w = {i: weights[edges[0] == i].tolist() for i in range(n)}
    return esda.Moran(
        values, libpysal.weights.W(neighbours, w), transformation=transformation, permutations=0
    ).I


def test_morans_i_binary_weights_match_esda(knn_graph):
    values, edges, weights = knn_graph
    ours = morans_i(values, edges)
    assert ours == pytest.approx(esda_moran(values, edges, weights, "B"), rel=1e-10)
    assert ours > 0.3  # the trend in x is strongly autocorrelated


def test_morans_i_non_uniform_weights_match_esda(knn_graph):
    values, edges, weights = knn_graph
    ours = morans_i(values, edges, weights)
    assert ours == pytest.approx(esda_moran(values, edges, weights, "O"), rel=1e-10)
    assert ours != pytest.approx(morans_i(values, edges), rel=1e-3)  # weights matter here
    row_sums = np.bincount(edges[0], weights=weights)
    standardised = weights / row_sums[edges[0]]
    assert morans_i(values, edges, standardised) == pytest.approx(
        esda_moran(values, edges, weights, "R"), rel=1e-10
    )


def test_morans_i_of_independent_noise_averages_minus_one_over_n_minus_one(knn_graph):
    _, edges, weights = knn_graph
    rng = np.random.default_rng(8)
    draws = [morans_i(rng.standard_normal(80), edges, weights) for _ in range(400)]
    assert np.mean(draws) == pytest.approx(-1 / 79, abs=0.01)


def test_morans_i_rejects_bad_edges_and_is_nan_for_constant_values():
    with pytest.raises(ValueError, match="outside"):
        morans_i(np.arange(3.0), np.array([[0, 1], [1, 3]]))
    with pytest.raises(ValueError, match=r"shape \(2, E\)"):
        morans_i(np.arange(3.0), np.array([0, 1]))
    with pytest.raises(ValueError, match="one per edge"):
        morans_i(np.arange(3.0), np.array([[0, 1], [1, 2]]), np.ones(3))
    assert math.isnan(morans_i(np.ones(3), np.array([[0, 1], [1, 2]])))


def test_regression_metrics_collects_every_metric(knn_graph):
    values, edges, weights = knn_graph
    rng = np.random.default_rng(9)
    mean = values + rng.normal(0, 1, values.size)
    sd = rng.uniform(0.5, 1.5, values.size)
    result = regression_metrics(values, mean, sd, edge_index=edges, edge_weight=weights)
    assert result == {
        "n": 80,
        "r2": r2(values, mean),
        "rmse": rmse(values, mean),
        "mae": mae(values, mean),
        "mape": mape(values, mean),
        "nll": gaussian_nll(values, mean, sd),
        "crps": crps_gaussian(values, mean, sd),
        "picp90": picp(values, mean, sd, 0.9),
        "ece": ece(values, mean, sd),
        "ence": ence(values, mean, sd),
        "morans_i_residuals": morans_i(values - mean, edges, weights),
    }
    json.dumps(result)
    assert "morans_i_residuals" not in regression_metrics(values, mean, sd)


# --- ensembles -----------------------------------------------------------------------------------------


def test_combine_members_matches_explicit_formulas():
    rng = np.random.default_rng(10)
    members, n = 5, 7
    means = rng.normal(10, 2, (members, n))
    variances = rng.uniform(0.1, 4, (members, n))
    combined = combine_members(means, variances)
    mu = sum(means[m] for m in range(members)) / members
    aleatoric = sum(variances[m] for m in range(members)) / members
    epistemic = sum((means[m] - mu) ** 2 for m in range(members)) / members
    np.testing.assert_allclose(combined.mean, mu, rtol=1e-12)
    np.testing.assert_allclose(combined.aleatoric_sd**2, aleatoric, rtol=1e-12)
    np.testing.assert_allclose(combined.epistemic_sd**2, epistemic, rtol=1e-12)
    # The total is the variance of the equally weighted mixture: E[s2 + mu^2] - E[mu]^2.
    mixture = (variances + means**2).mean(axis=0) - mu**2
    np.testing.assert_allclose(combined.total_sd**2, mixture, rtol=1e-10)
    single = combine_members(means[:1], variances[:1])
    np.testing.assert_array_equal(single.epistemic_sd, 0.0)
    with pytest.raises(ValueError, match="one shape"):
        combine_members(means, variances[:, :3])
    with pytest.raises(ValueError, match=">= 0"):
        combine_members(means, -variances)


# --- recalibration -------------------------------------------------------------------------------------


def test_isotonic_regression_matches_sklearn():
    rng = np.random.default_rng(11)
    x = rng.integers(0, 40, 300).astype(float)  # many ties
    y = 0.1 * x + rng.normal(0, 1.5, 300)
    weights = rng.uniform(0.5, 2.0, 300)
    x_unique, fitted = isotonic_regression(x, y, weights)
    reference = IsotonicRegression().fit(x, y, sample_weight=weights).predict(x_unique)
    np.testing.assert_allclose(fitted, reference, rtol=1e-10, atol=1e-12)
    assert (np.diff(fitted) >= 0).all() and len(set(fitted.tolist())) < x_unique.size  # something pooled


@pytest.mark.parametrize("objective", ["nll", "ece"])
def test_sigma_scaling_recovers_the_true_factor(objective):
    rng = np.random.default_rng(12)
    y, mean, true_sd = heteroscedastic(rng, 8000)
    predicted_sd = true_sd / 3
    calibrator = SigmaScaling(objective).fit(y, mean, predicted_sd)
    assert calibrator.scale == pytest.approx(3.0, rel=0.03)
    np.testing.assert_allclose(calibrator.scale_sd(mean, predicted_sd), calibrator.scale * predicted_sd)
    if objective == "nll":
        # Closed form, and a minimum of the NLL.
        assert calibrator.scale == pytest.approx(
            np.sqrt(np.mean(((y - mean) / predicted_sd) ** 2)), rel=1e-12
        )
        best = gaussian_nll(y, mean, calibrator.scale * predicted_sd)
        for nudge in (0.99, 1.01):
            assert gaussian_nll(y, mean, nudge * calibrator.scale * predicted_sd) > best
    else:
        nll_scale = SigmaScaling("nll").fit(y, mean, predicted_sd).scale
        assert ece(y, mean, predicted_sd, interval=calibrator.interval) <= ece(
            y, mean, nll_scale * predicted_sd
        )
    assert ece(y, mean, predicted_sd, interval=calibrator.interval) < 0.01
    lower, upper = calibrator.interval(mean, predicted_sd, 0.9)
    np.testing.assert_allclose(upper - lower, 2 * Z90 * calibrator.scale * predicted_sd, rtol=1e-12)


def test_isotonic_calibration_fixes_ece_on_held_out_data():
    rng = np.random.default_rng(13)
    validation, test = skewed(rng, 4000), skewed(rng, 20000)
    calibrator = fit_calibrator("isotonic", *validation)
    assert ece(*test) > 0.05
    assert ece(*test, interval=calibrator.interval) < 0.015
    assert picp(*test, 0.9, interval=calibrator.interval) == pytest.approx(0.9, abs=0.015)
    # The calibrated CDF of held-out targets is close to uniform.
    pit = np.sort(calibrator.cdf(*test))
    assert np.max(np.abs(pit - np.arange(1, pit.size + 1) / pit.size)) < 0.03


def test_isotonic_intervals_are_nested_and_round_trip_through_json():
    rng = np.random.default_rng(14)
    y, mean, sd = skewed(rng, 3000)
    calibrator = IsotonicCalibration().fit(y, mean, sd)
    levels = np.linspace(0, 1, 41)
    bounds = np.array([calibrator.interval(mean[:50], sd[:50], level) for level in levels])  # (L, 2, 50)
    assert (np.diff(bounds[:, 0], axis=0) <= 0).all() and (np.diff(bounds[:, 1], axis=0) >= 0).all()
    assert (bounds[:, 0] <= bounds[:, 1]).all()
    assert np.isinf(bounds[-1]).all()  # level 1: the whole line
    stored = calibrator.to_dict()
    assert stored["method"] == "isotonic" and len(stored["pit"]) <= 102
    restored = calibrator_from_dict(json.loads(json.dumps(stored)))
    for level in (0.1, 0.5, 0.9, 0.99):
        for got, want in zip(
            restored.interval(mean, sd, level), calibrator.interval(mean, sd, level), strict=True
        ):
            np.testing.assert_array_equal(got, want)


def test_isotonic_scale_sd_recovers_a_gaussian_scale_factor():
    """For purely mis-scaled Gaussians the Gaussian-equivalent sd is the true sd."""
    rng = np.random.default_rng(15)
    y, mean, true_sd = heteroscedastic(rng, 8000)
    calibrator = fit_calibrator("isotonic", y, mean, true_sd / 3)
    np.testing.assert_allclose(calibrator.scale_sd(mean, true_sd / 3), true_sd, rtol=0.05)


def test_calibrators_serialise_and_reject_unknown_methods():
    rng = np.random.default_rng(16)
    y, mean, sd = heteroscedastic(rng, 500, scale=2.0)
    identity = fit_calibrator("none", y, mean, sd)
    assert identity.scale == 1.0
    np.testing.assert_array_equal(identity.interval(mean, sd, 0.9)[1], gaussian_interval(mean, sd, 0.9)[1])
    for method in ("none", "sigma_scaling", "sigma_scaling_ece"):
        calibrator = fit_calibrator(method, y, mean, sd)
        restored = calibrator_from_dict(json.loads(json.dumps(calibrator.to_dict())))
        assert isinstance(restored, SigmaScaling)
        assert (restored.scale, restored.objective) == (calibrator.scale, calibrator.objective)
    with pytest.raises(ValueError, match="Unknown calibrator method 'platt'"):
        calibrator_from_dict({"method": "platt"})
    with pytest.raises(UncertaintyInputError, match="Malformed"):
        calibrator_from_dict({"method": "sigma_scaling"})
    with pytest.raises(ValueError, match="rising strictly"):
        calibrator_from_dict({"method": "isotonic", "pit": [0.0, 0.7, 0.5, 1.0], "cdf": [0.0, 0.2, 0.4, 1.0]})
    with pytest.raises(ValueError, match="Unknown calibration method"):
        fit_calibrator("temperature", y, mean, sd)
    with pytest.raises(ValueError, match="not fitted"):
        SigmaScaling().interval(mean, sd, 0.9)
    with pytest.raises(ValueError, match="not fitted"):
        IsotonicCalibration().to_dict()


# --- plots ---------------------------------------------------------------------------------------------


def test_plots_write_png_files(tmp_path):
    rng = np.random.default_rng(17)
    y, mean, sd = skewed(rng, 3000)
    calibrator = fit_calibrator("isotonic", y, mean, sd)
    written = [
        plot_calibration(y, mean, sd, tmp_path / "calibration.png", title="raw"),
        plot_calibration(y, mean, sd, tmp_path / "calibrated.png", interval=calibrator.interval),
        plot_intervals(y, mean, sd, tmp_path / "intervals.png", interval=calibrator.interval, max_points=500),
    ]
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "calibrated.png",
        "calibration.png",
        "intervals.png",
    ]
