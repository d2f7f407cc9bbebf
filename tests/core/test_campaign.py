"""Campaign planning: the greedy criterion against brute-force Gaussian conditioning, spread, masks."""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest
import rasterio

from soilcarbon_core.campaign import PLAN_FIELDS, PlanInputs, PlannerSettings, plan_campaign, plan_sites
from soilcarbon_core.errors import InputError
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


def _prior(places: PlanInputs, spatial: float, feature: float) -> np.ndarray:
    """The planner's prior covariance, written out directly."""
    d = np.linalg.norm(places.coords[:, None] - places.coords[None], axis=2)
    f = ((places.features[:, None] - places.features[None]) ** 2).mean(axis=2)
    sd = np.sqrt(places.epistemic_var)
    return sd[:, None] * np.exp(-d / spatial - f / (2 * feature**2)) * sd[None]


def test_greedy_reductions_equal_exact_gaussian_conditioning():
    places = _places(40, seed=1)
    settings = PlannerSettings(spatial_range_m=300.0, feature_range=0.8)
    plan = plan_sites(places, places, np.array([[5000.0, 5000.0]]), 6, geographic=False, settings=settings)
    prior = _prior(places, 300.0, 0.8)
    noise = np.diag(places.aleatoric_var)
    chosen = []
    for step, site in enumerate(plan.chosen):
        # Brute force: the mean variance reduction of every candidate given the sites chosen before.
        def reduction(extra: list[int]) -> float:
            if not extra:
                return 0.0
            block = prior[np.ix_(extra, extra)] + noise[np.ix_(extra, extra)]
            posterior = prior - prior[:, extra] @ np.linalg.solve(block, prior[extra, :])
            return float(np.mean(np.diag(prior) - np.diag(posterior)))

        gains = [reduction([*chosen, c]) - reduction(chosen) if c not in chosen else -1 for c in range(40)]
        assert site == int(np.argmax(gains))
        assert plan.reduction[step] == pytest.approx(gains[site], rel=1e-9)
        chosen.append(int(site))
    assert plan.area_var_before == pytest.approx(places.epistemic_var.mean())
    assert plan.area_var_before - plan.area_var_after == pytest.approx(reduction(chosen), rel=1e-9)
    np.testing.assert_allclose(plan.reduction_pct, 100 * plan.reduction / places.epistemic_var.mean())


def test_without_correlation_or_noise_the_most_uncertain_places_come_first():
    places = _places(30, seed=2)
    places = PlanInputs(places.coords, places.features, places.epistemic_var, np.zeros(30))
    settings = PlannerSettings(spatial_range_m=1e-6, feature_range=1e-3)
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
