"""Campaign planning: the greedy criterion against brute-force Gaussian conditioning, spread, masks."""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest
import rasterio

from soilcarbon_core.campaign import (
    PLAN_FIELDS,
    PlanInputs,
    PlannerSettings,
    plan_campaign,
    plan_sites,
    samples_near,
)
from soilcarbon_core.errors import InputError
from soilcarbon_core.graph.geometry import SpatialFrame
from soilcarbon_core.model import SoilCarbonModel

from .conftest import LA_LIBERTAD, la_libertad_rasters


def _places(n: int, seed: int, features: int = 2) -> PlanInputs:
    rng = np.random.default_rng(seed)
    return PlanInputs(
        coords=rng.uniform(0, 1000, (n, 2)),
        features=rng.normal(size=(n, features)),
        epistemic_var=rng.uniform(0.5, 4.0, n),
        aleatoric_var=rng.uniform(0.1, 1.0, n),
    )


def _prior(places: PlanInputs, spatial: float, feature: float, power: float, mean: float) -> np.ndarray:
    """The planner's prior covariance, written out directly (``mean``: the area's mean epistemic var)."""
    d = np.linalg.norm(places.coords[:, None] - places.coords[None], axis=2)
    f = ((places.features[:, None] - places.features[None]) ** 2).mean(axis=2)
    sd = np.sqrt(mean * (places.epistemic_var / mean) ** power)
    return sd[:, None] * np.exp(-d / spatial - f / (2 * feature**2)) * sd[None]


def _joined(first: PlanInputs, second: PlanInputs) -> PlanInputs:
    return PlanInputs(
        *(
            np.concatenate([getattr(first, name), getattr(second, name)])
            for name in PlanInputs.__annotations__
        )
    )


@pytest.mark.parametrize(
    ("noise_ratio", "power", "measured_count"), [(1.0, 1.0, 0), (0.05, 2.0, 0), (0.2, 0.5, 0), (0.05, 1.0, 8)]
)
def test_greedy_reductions_equal_exact_gaussian_conditioning(noise_ratio, power, measured_count):
    """With ``measured_count`` existing samples the field is first conditioned on them (their noise r x
    their aleatoric variance): the brute force conditions the joint prior on samples and sites together."""
    places = _places(40, seed=1)
    measured = _places(measured_count, seed=6)
    settings = PlannerSettings(
        spatial_range_m=300.0, feature_range=0.8, noise_ratio=noise_ratio, variance_power=power
    )
    plan = plan_sites(
        places,
        places,
        np.array([[5000.0, 5000.0]]),
        6,
        geographic=False,
        measured=measured if measured_count else None,
        settings=settings,
    )
    # Joint prior over [places; samples]; the samples are indices 40... and always conditioned on.
    joint = _joined(places, measured)
    prior = _prior(joint, 300.0, 0.8, power, places.epistemic_var.mean())
    noise = np.diag(noise_ratio * joint.aleatoric_var)
    samples = list(range(40, 40 + measured_count))

    def posterior_var(extra: list[int]) -> np.ndarray:
        """The places' variances given the samples and the sites ``extra``."""
        given = [*samples, *extra]
        if not given:
            return np.diag(prior)[:40]
        block = prior[np.ix_(given, given)] + noise[np.ix_(given, given)]
        return np.diag(prior - prior[:, given] @ np.linalg.solve(block, prior[given, :]))[:40]

    def reduction(extra: list[int]) -> float:
        return float(np.mean(posterior_var([]) - posterior_var(extra)))

    # Reported in the epistemic variance's units: the field's reductions times mean(sigma_e^2) / mean(v),
    # v being the field's variance given the existing samples.
    to_epistemic = places.epistemic_var.mean() / posterior_var([]).mean()
    chosen = []
    for step, site in enumerate(plan.chosen):
        # Brute force: the mean variance reduction of every candidate given the sites chosen before.
        gains = [reduction([*chosen, c]) - reduction(chosen) if c not in chosen else -1 for c in range(40)]
        assert site == int(np.argmax(gains))
        assert plan.reduction[step] == pytest.approx(gains[site] * to_epistemic, rel=1e-9)
        chosen.append(int(site))
    assert plan.area_var_before == pytest.approx(places.epistemic_var.mean(), rel=1e-12)
    assert plan.area_var_before - plan.area_var_after == pytest.approx(
        reduction(chosen) * to_epistemic, rel=1e-9
    )
    np.testing.assert_allclose(plan.reduction_pct, 100 * plan.reduction / places.epistemic_var.mean())


@pytest.mark.parametrize(
    ("noise_ratio", "power", "expected"),
    [
        (0.5, 1.0, [1.7]),  # (16 + 1) / (4 + 0.5 * 2) / 2
        (1.0, 1.0, [17 / 12]),  # (16 + 1) / (4 + 2) / 2
        (0.0, 1.0, [2.125, 0.375]),  # (4 + 0.25) / 2, then (1 - 0.25) / 2 left at site 1
        # v = 2.5 (4 / 2.5)^2 = 6.4 and 0.4: gains (6.4 + 0.1) / 2 and 0.3 / 2 of v, whose mean is 3.4;
        # reported in epistemic units (mean 2.5): x 2.5 / 3.4.
        (0.0, 2.0, [3.25 * 2.5 / 3.4, 0.15 * 2.5 / 3.4]),
    ],
)
def test_two_places_known_answer(noise_ratio, power, expected):
    """Epistemic variances 4 and 1, correlation 0.5, aleatoric variance 2: the gains written out by hand.

    Site 0 first: G = (C00^2 + C10^2) / (C00 + 2 r) / 2. Without noise the second site removes what is
    left, so no variance remains.
    """
    places = PlanInputs(
        coords=np.array([[0.0, 0.0], [100.0 * np.log(2.0), 0.0]]),  # exp(-d / L_s) = 0.5 for L_s = 100 m
        features=np.empty((2, 0)),
        epistemic_var=np.array([4.0, 1.0]),
        aleatoric_var=np.array([2.0, 2.0]),
    )
    settings = PlannerSettings(spatial_range_m=100.0, noise_ratio=noise_ratio, variance_power=power)
    plan = plan_sites(places, places, np.empty((0, 2)), 2, geographic=False, settings=settings)
    assert plan.chosen.tolist() == [0, 1]
    np.testing.assert_allclose(plan.reduction[: len(expected)], expected, rtol=1e-12)
    if noise_ratio == 0.0:
        assert plan.area_var_after == pytest.approx(0.0, abs=1e-12)


def test_low_noise_spreads_sites_over_the_uncertainty_mass():
    """A 20 x 20 grid (variance 1) and a dense patch of 40 places with twice the variance: with gamma = 2,
    v = 0.92 and 3.67, so the patch holds 29 % of the field's variance mass (4.6 sites of 16). With the
    noise equal to the aleatoric variance (9x the epistemic, as on the Africa data) a sample removes
    little, so the greedy plan keeps returning to the patch; with the default noise ratio a site clears
    its surroundings and the sites follow the variance mass."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(20.0), np.arange(20.0)), axis=-1).reshape(-1, 2) * 100.0
    coords = np.vstack([grid, rng.uniform(200.0, 350.0, (40, 2))])
    variance = np.r_[np.ones(400), np.full(40, 2.0)]
    places = PlanInputs(coords, np.empty((440, 0)), variance, 9.0 * variance)

    def plan(settings: PlannerSettings) -> tuple[int, float]:
        """Sites in the patch, and the smallest distance between two sites."""
        chosen = plan_sites(places, places, np.empty((0, 2)), 16, geographic=False, settings=settings).chosen
        sites = coords[chosen]
        gaps = np.linalg.norm(sites[:, None] - sites[None], axis=2)[np.triu_indices(16, 1)]
        return int((chosen >= 400).sum()), float(gaps.min())

    in_patch, closest = plan(PlannerSettings(spatial_range_m=300.0, noise_ratio=1.0, variance_power=2.0))
    assert in_patch >= 12 and closest < 30.0
    in_patch, closest = plan(PlannerSettings(spatial_range_m=300.0, variance_power=2.0))
    assert 3 <= in_patch <= 6 and closest > 50.0


def test_samples_near_are_the_places_nearest_neighbours_capped_by_distance():
    """Samples on a line at x = 0, 1, ..., 9 (metres), places at 2.2 and 7.6: the two nearest of each
    place are 2, 3 and 7, 8; capped at three, the farthest of them (3, 0.8 m from a place) goes."""
    frame = SpatialFrame(geographic=False)
    samples = np.column_stack([np.arange(10.0), np.zeros(10)])
    places = np.array([[2.2, 0.0], [7.6, 0.0]])
    assert samples_near(frame, samples, places, limit=10, neighbours=2).tolist() == [2, 3, 7, 8]
    assert samples_near(frame, samples, places, limit=3, neighbours=2).tolist() == [2, 7, 8]
    assert samples_near(frame, samples[:0], places, limit=3).size == 0


def test_without_correlation_or_noise_the_most_uncertain_places_come_first():
    places = _places(30, seed=2)
    places = PlanInputs(places.coords, places.features, places.epistemic_var, np.zeros(30))
    settings = PlannerSettings(spatial_range_m=1e-6, feature_range=1e-3, variance_power=1.0)
    plan = plan_sites(places, places, np.empty((0, 2)), 5, geographic=False, settings=settings)
    np.testing.assert_array_equal(plan.chosen, np.argsort(-places.epistemic_var)[:5])
    np.testing.assert_allclose(plan.reduction, np.sort(places.epistemic_var)[::-1][:5] / 30)


def test_a_measured_place_loses_its_uncertainty_so_the_next_site_goes_elsewhere():
    """Ten candidates at one spot with the highest uncertainty: one site there, the next elsewhere."""
    places = _places(40, seed=3, features=0)
    coords = places.coords.copy()
    coords[:10] = coords[0]
    variance = places.epistemic_var.copy()
    variance[:10] = 10.0
    places = PlanInputs(coords, places.features, variance, np.zeros(40))
    plan = plan_sites(places, places, np.empty((0, 2)), 3, geographic=False)
    assert plan.chosen[0] < 10
    assert (plan.chosen[1:] >= 10).all()


def test_minimum_spacing_is_kept_and_reported_when_impossible():
    places = _places(60, seed=4)
    samples = np.array([[500.0, 500.0]])
    settings = PlannerSettings(spatial_range_m=200.0, min_spacing_m=150.0)
    plan = plan_sites(places, places, samples, 8, geographic=False, settings=settings)
    sites = places.coords[plan.chosen]
    gaps = np.linalg.norm(sites[:, None] - sites[None], axis=2)[np.triu_indices(8, 1)]
    assert gaps.min() >= 150.0
    assert (np.linalg.norm(sites - samples, axis=1) >= 150.0).all()
    np.testing.assert_allclose(plan.nearest_sample_m, np.linalg.norm(sites - samples, axis=1))
    with pytest.raises(InputError, match=r"Only .* sites fit at least 900 m apart"):
        plan_sites(
            places, places, samples, 8, geographic=False, settings=PlannerSettings(min_spacing_m=900.0)
        )


@pytest.mark.parametrize(("budget", "match"), [(0, "at least one site"), (61, "exceeds the 60 candidate")])
def test_bad_budgets_are_named(budget, match):
    places = _places(60, seed=5)
    with pytest.raises(InputError, match=match):
        plan_sites(places, places, np.empty((0, 2)), budget, geographic=False)


def test_planned_campaign_is_a_ranked_point_layer_outside_the_mask(tmp_path, raster_model_path):
    template = LA_LIBERTAD / "SRTMGL1_SRTMGL1.2.sdat"
    with rasterio.open(template) as grid:
        profile = {**grid.profile, "driver": "GTiff", "dtype": "uint8", "nodata": None, "count": 1}
        mask = np.zeros((grid.height, grid.width), dtype="uint8")
        mask[:, : grid.width // 2] = 1  # the western half is inaccessible
        middle_x = grid.transform.c + grid.transform.a * (grid.width // 2)
    with rasterio.open(tmp_path / "mask.tif", "w", **profile) as out:
        out.write(mask, 1)
    output = tmp_path / "plan.gpkg"
    summary = plan_campaign(
        raster_model_path,
        output,
        12,
        grid=template,
        rasters=la_libertad_rasters(),
        mask=tmp_path / "mask.tif",
        device="cpu",
        settings=PlannerSettings(max_candidates=500, max_area_cells=500),
    )
    table = pyogrio.read_dataframe(output, layer="campaign")
    assert list(table.columns[: len(PLAN_FIELDS)]) == list(PLAN_FIELDS)
    assert table["rank"].tolist() == list(range(1, 13))
    assert (table.geometry.x > middle_x).all()
    model = SoilCarbonModel.load(raster_model_path)
    sites = np.column_stack([table.geometry.x, table.geometry.y])
    nearest = np.linalg.norm(sites[:, None] - model.reference.xy[None], axis=2).min(axis=1)
    np.testing.assert_allclose(table["nearest_sample_m"], nearest, rtol=1e-9)
    assert (table["expected_reduction"] > 0).all() and (table["epistemic_sd"] > 0).all()
    assert table["reason"][0].startswith("expected to cut the area's epistemic variance by")
    assert summary["sites"] == 12 and summary["area_epistemic_sd_after"] < summary["area_epistemic_sd_before"]
