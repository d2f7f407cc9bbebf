"""Calibration of the simulator's free scalars to the IPCC 2019 Tier 1 emission factors.

Direct N2O emission factor of a site-year: EF = (N2O(N) - N2O(0)) / N, the fertilised run minus the
same site and weather without N (IPCC's definition of the direct EF). Scenario classes and their Tier 1
targets (IPCC 2019 Refinement, Vol. 4, Table 11.1):

- wet climate (MAP / PET > 1, or irrigated), synthetic N (manure share < 0.5), upland: 0.016
- wet climate, other N inputs (manure share >= 0.5), upland: 0.006
- dry climate (MAP / PET <= 1, not irrigated): 0.005
- flooded rice: 0.004

The N2O share of nitrified N and the denitrification scaler minimise the sum over classes of
n_class * log(mean EF of the class / target)^2 (see :func:`calibrate`). The flooded
rice CH4 scaler is then set so that the mean season CH4 of the paddies equals the IPCC Tier 1
expectation (EF_c x SF_w x SF_p x SF_o x flooded days) of the same paddies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from soilcarbon_core.ghg.features import CROPS, feature_index
from soilcarbon_core.ghg.simulator import ProcessParameters, simulate, weather_years_needed
from soilcarbon_core.ghg.simulator.methane import EF_BASELINE_C
from soilcarbon_core.ghg.simulator.model import DRAINED_BEFORE_HARVEST
from soilcarbon_core.ghg.weather import generate_weather
from soilcarbon_core.progress import ProgressCallback, silent

from .scenarios import Scenarios, run_scenarios

TIER1 = {"wet_synthetic": 0.016, "wet_other": 0.006, "dry": 0.005, "flooded_rice": 0.004}
TIER1_AGGREGATED = 0.010
#: Bounds of the N2O share of nitrified N: the range of lab data (0.03 %) to Parton et al. 2001 (2 %).
K_NIT_RANGE = (3e-4, 0.02)
#: Denitrification scalers tried by :func:`calibrate` (log-spaced; the fit interpolates between them).
DENITRIFICATION_GRID = np.geomspace(0.05, 5.0, 7)
YEARS = 1


@dataclass
class Calibration:
    """The fitted scalars and the emission factors they give, per class and aggregated."""

    parameters: ProcessParameters
    emission_factors: dict[str, float]
    site_years: dict[str, int]
    aggregated: float

    def to_dict(self) -> dict:
        return {
            "parameters": self.parameters.to_dict(),
            "emission_factors": self.emission_factors,
            "tier1": TIER1,
            "site_years": self.site_years,
            "aggregated": self.aggregated,
            "tier1_aggregated": TIER1_AGGREGATED,
        }


def ef_classes(features: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks (N,) of the Tier 1 classes of fertilised site-years, from the feature matrix."""
    column = {
        name: features[:, feature_index(name)]
        for name in ("aridity", "irrigated", "organic_share", "crop", "flooded_days", "n_rate")
    }
    fertilised = column["n_rate"] > 0
    rice = (column["crop"] == CROPS.index("rice")) & (column["flooded_days"] > 0)
    wet = (column["aridity"] > 1) | (column["irrigated"] > 0)
    organic = column["organic_share"] >= 0.5
    return {
        "wet_synthetic": fertilised & ~rice & wet & ~organic,
        "wet_other": fertilised & ~rice & wet & organic,
        "dry": fertilised & ~rice & ~wet,
        "flooded_rice": fertilised & rice,
    }


class PairedRuns:
    """Fertilised and unfertilised runs of the same scenarios on the same weather."""

    def __init__(self, scenarios: Scenarios, seed: int) -> None:
        self.scenarios = scenarios
        self.weather = generate_weather(
            scenarios.normals, weather_years_needed(1, YEARS), np.random.default_rng(seed)
        )
        self.controls = scenarios.with_n_rate(0.0)
        self.features: np.ndarray | None = None

    def differences(self, parameters: ProcessParameters) -> dict[str, np.ndarray]:
        """Per fertilised site-year (N,), the fertilised minus control annual totals divided by the N rate:
        ``n2o`` (the EF), ``nitrified`` and ``n2o_denitrification``."""
        fertilised, results = run_scenarios(
            self.scenarios, years=YEARS, seed=0, parameters=parameters, weather=self.weather
        )
        self.features = fertilised.features
        control = simulate(
            self.controls.sites, self.controls.management, self.weather, parameters, years=YEARS
        )
        n_rate = fertilised.features[:, feature_index("n_rate")]
        out = {}
        for name in ("n2o", "nitrified", "n2o_denitrification"):
            treated = np.concatenate([r.annual[name].reshape(-1) for r in results])
            out[name] = np.divide(
                treated - control.annual[name].reshape(-1),
                n_rate,
                out=np.full(n_rate.shape, np.nan),
                where=n_rate > 0,
            )
        return out


def class_means(ef: np.ndarray, features: np.ndarray) -> tuple[dict[str, float], dict[str, int], float]:
    """Mean EF per Tier 1 class, class sizes, and the mean over all fertilised site-years."""
    classes = ef_classes(features)
    means = {name: float(np.mean(ef[mask])) if mask.any() else float("nan") for name, mask in classes.items()}
    counts = {name: int(mask.sum()) for name, mask in classes.items()}
    return means, counts, float(np.nanmean(ef))


def _misfit(ef_means: dict[str, float], counts: dict[str, int]) -> float:
    return sum(counts[c] * np.log(max(ef_means[c], 1e-6) / TIER1[c]) ** 2 for c in TIER1 if counts[c])


def calibrate(
    scenarios: Scenarios,
    seed: int = 0,
    progress: ProgressCallback = silent,
    denitrification_grid: np.ndarray = DENITRIFICATION_GRID,
) -> Calibration:
    """Fit the N2O scalars, then the rice CH4 scaler (see the module docstring).

    N2O from nitrification is proportional to the N2O share k_nit (the share leaves the nitrified N, a
    change of at most a few percent of NO3 for k_nit <= 0.05), so for each denitrification scaler of a
    log-spaced grid one paired run gives every class's EF as k_nit * nitrified + denitrification N2O;
    k_nit is then solved in closed form-ish (a bounded 1-D search) and the grid's best pair refined by
    a 1-D search over the scaler, interpolating the denitrification term log-linearly between grid
    points. A final paired run at the fitted values reports the simulated EFs.
    """
    runs = PairedRuns(scenarios, seed)
    reference_k = ProcessParameters().n2o_nitrification_share
    grid_nit, grid_den = [], []
    for i, scaler in enumerate(denitrification_grid):
        progress(0.8 * i / len(denitrification_grid), f"calibration run {i + 1}/{len(denitrification_grid)}")
        d = runs.differences(
            ProcessParameters(n2o_nitrification_share=reference_k, denitrification_scaler=float(scaler))
        )
        grid_nit.append(d["nitrified"])
        grid_den.append(d["n2o_denitrification"])
    features = runs.features
    classes = ef_classes(features)
    counts = {c: int(m.sum()) for c, m in classes.items()}
    log_grid = np.log(denitrification_grid)

    def class_terms(log_scaler: float) -> tuple[dict[str, float], dict[str, float]]:
        nit, den = {}, {}
        for c, mask in classes.items():
            if not mask.any():
                continue
            nit_curve = np.array([g[mask].mean() for g in grid_nit])
            den_curve = np.array([max(g[mask].mean(), 1e-9) for g in grid_den])
            nit[c] = float(np.interp(log_scaler, log_grid, nit_curve))
            den[c] = float(np.exp(np.interp(log_scaler, log_grid, np.log(den_curve))))
        return nit, den

    def best_k(log_scaler: float) -> tuple[float, float]:
        nit, den = class_terms(log_scaler)

        def misfit(log_k: float) -> float:
            return _misfit({c: np.exp(log_k) * nit[c] + den[c] for c in nit}, counts)

        fit = minimize_scalar(
            misfit, bounds=(np.log(K_NIT_RANGE[0]), np.log(K_NIT_RANGE[1])), method="bounded"
        )
        return float(np.exp(fit.x)), float(fit.fun)

    fit = minimize_scalar(lambda v: best_k(v)[1], bounds=(log_grid[0], log_grid[-1]), method="bounded")
    k_nit = best_k(fit.x)[0]
    parameters = ProcessParameters(n2o_nitrification_share=k_nit, denitrification_scaler=float(np.exp(fit.x)))
    progress(0.85, "rice CH4 scaler")
    parameters.rice_ch4_scaler = _rice_scaler(runs, parameters)
    progress(0.9, "checking the fitted emission factors")
    ef = runs.differences(parameters)["n2o"]
    means, counts, aggregated = class_means(ef, runs.features)
    progress(1.0, "calibrated")
    return Calibration(
        parameters=parameters, emission_factors=means, site_years=counts, aggregated=aggregated
    )


def rice_tier1_season(scenarios: Scenarios, result) -> np.ndarray:
    """IPCC Tier 1 season CH4-C (kg C/ha) of each paddy site-year, with the simulator's own SF_o."""
    flooded_days = scenarios.management.season_days - DRAINED_BEFORE_HARVEST
    return EF_BASELINE_C * result.constants["rice_scaling"] * flooded_days


def _rice_scaler(runs: PairedRuns, parameters: ProcessParameters, iterations: int = 2) -> float:
    """Scale rice CH4 so the paddies' mean season CH4 equals Tier 1 (two fixed-point steps: a cap on
    the decomposed C can bind)."""
    paddy = np.flatnonzero(runs.scenarios.management.flooded)
    if paddy.size == 0:
        return parameters.rice_ch4_scaler
    subset = runs.scenarios.take(paddy)
    weather = runs.weather.take(paddy)
    scaler = parameters.rice_ch4_scaler
    for _ in range(iterations):
        trial = ProcessParameters(**{**parameters.to_dict(), "rice_ch4_scaler": scaler})
        result = simulate(subset.sites, subset.management, weather, trial, years=YEARS)
        simulated = result.annual["ch4_emission"][:, 0]
        scaler *= float(rice_tier1_season(subset, result).mean() / simulated.mean())
    return scaler
