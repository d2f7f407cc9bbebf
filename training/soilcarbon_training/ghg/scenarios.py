"""Simulated agricultural data for 47 countries: the pre-training set of KG-FGNN.

Each scenario is a site: a country's climate (:mod:`.countries`, from the SRDB site normals), a soil, a
crop with its calendar, an N rate and fertiliser type, irrigation and (for rice) flooding. Its daily
weather is generated from the normals, the process model runs one spin-up year and then ``years``
reported site-years, and each site-year becomes a row: the agricultural features (FEATURE_NAMES) and
the simulated N2O-N, CO2-C and CH4-C of the season and the year.

Sampling choices (ours, documented here and in docs/ghg.md):

- Soil: clay U(5, 55) %, sand U(5, 95 - clay) %; SOC log-normal (median 1.4 %, sd of log 0.55), higher
  in cool climates (x exp(-0.03 (MAT - 12))), clipped to [0.3, 8]; pH 8.3 - 2.8 min(MAP / 1500, 1)
  + N(0, 0.5) clipped to [4.2, 8.8] (leached soils are acid); bulk density 1.55 - 0.06 SOC + N(0, 0.07)
  clipped to [0.9, 1.75] (falls with organic matter).
- Crop: maize 0.25, wheat 0.23, soybean 0.12, vegetables 0.12, grassland 0.16, rice 0.12 (rice only
  where MAT >= 12 C and MAP >= 700 mm, or irrigated; otherwise it is redrawn as maize). Calendar:
  spring-sown crops around the day of year 100-150 north of the equator, 182 days later south of it,
  and 30 days before the wettest time of year in the tropics (|lat| < 23); winter wheat where MAT is
  between 4 and 16 C (sown in autumn, 270-day season); season lengths per crop.
- N: 10 % unfertilised, else log-normal around a crop median (maize 150, wheat 130, rice 120,
  soybean 30, vegetables 180, grassland 110 kg N/ha, sd of log 0.5) clipped to [10, 400]. Type: urea
  0.30, ammonium nitrate 0.15, UAN 0.10, ammonium 0.10, nitrate 0.05, manure 0.15, urea + ammonium 0.05,
  ammonium + manure 0.05, urea + manure 0.05.
- Irrigation: probability 0.6 where MAP / PET < 0.5, 0.25 below 1, 0.05 otherwise. Rice paddies are
  flooded; water regime continuous 0.5, single drainage 0.3, multiple drainage 0.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from soilcarbon_core.ghg.drivers import climate_features, feature_matrix
from soilcarbon_core.ghg.features import CROPS, FEATURE_NAMES, FERTILISER_TYPES
from soilcarbon_core.ghg.simulator import Management, ProcessParameters, Sites, simulate, weather_years_needed
from soilcarbon_core.ghg.simulator.methane import WATER_REGIMES
from soilcarbon_core.ghg.weather import (
    ClimateNormals,
    DailyWeather,
    extraterrestrial_radiation,
    generate_weather,
    hargreaves_pet,
)
from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.progress import ProgressCallback, scaled, silent

from .countries import load_country_climate, sample_country_normals

TARGETS = ("n2o", "co2", "ch4")
PERIODS = ("season", "annual")
TARGET_COLUMNS = tuple(f"{target}_{period}" for target in TARGETS for period in PERIODS)

CROP_PROBABILITY = {
    "maize": 0.25,
    "wheat": 0.23,
    "rice": 0.12,
    "soybean": 0.12,
    "vegetables": 0.12,
    "grassland": 0.16,
}
N_MEDIAN = {"maize": 150, "wheat": 130, "rice": 120, "soybean": 30, "vegetables": 180, "grassland": 110}
#: (first sowing day in the north, spread of sowing days, season length range) per crop.
CALENDAR = {
    "maize": (110, 30, (130, 160)),
    "wheat": (80, 30, (110, 140)),
    "rice": (120, 40, (110, 150)),
    "soybean": (130, 30, (110, 140)),
    "vegetables": (90, 60, (80, 120)),
    "grassland": (70, 30, (180, 240)),
}
FERTILISER_PROBABILITY = {
    "urea": 0.30,
    "ammonium_nitrate": 0.15,
    "uan": 0.10,
    "ammonium": 0.10,
    "nitrate": 0.05,
    "manure": 0.15,
    "urea_ammonium": 0.05,
    "ammonium_manure": 0.05,
    "urea_manure": 0.05,
}
WATER_REGIME_PROBABILITY = {"continuous": 0.5, "single_drainage": 0.3, "multiple_drainage": 0.2}


@dataclass(frozen=True)
class Scenarios:
    """S sampled sites: soil, management, climate normals and country."""

    sites: Sites
    management: Management
    normals: ClimateNormals
    country: np.ndarray

    @property
    def count(self) -> int:
        return self.sites.count

    def take(self, index: np.ndarray) -> Scenarios:
        """The scenarios at ``index``."""
        pick = _taker(index)
        return Scenarios(
            sites=Sites(**{k: v if k == "depth_cm" else pick(v) for k, v in vars(self.sites).items()}),
            management=Management(**{k: pick(v) for k, v in vars(self.management).items()}),
            normals=ClimateNormals(**{k: pick(v) for k, v in vars(self.normals).items()}),
            country=self.country[index],
        )

    def with_n_rate(self, n_rate: np.ndarray | float) -> Scenarios:
        """The same scenarios with another N rate (e.g. 0 for the unfertilised controls of an EF)."""
        fields = dict(vars(self.management))
        fields["n_rate"] = np.broadcast_to(
            np.asarray(n_rate, dtype=np.float64), fields["n_rate"].shape
        ).copy()
        return Scenarios(self.sites, Management(**fields), self.normals, self.country)


def _taker(index: np.ndarray):
    def pick(values):
        return np.asarray(values)[index]

    return pick


def _choice(rng: np.random.Generator, table: dict[str, float], n: int) -> np.ndarray:
    names = list(table)
    p = np.array([table[k] for k in names])
    return rng.choice(len(names), size=n, p=p / p.sum())


def sample_scenarios(sites_per_country: int, seed: int, table: pd.DataFrame | None = None) -> Scenarios:
    """47 x ``sites_per_country`` scenarios, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    normals, country = sample_country_normals(
        load_country_climate() if table is None else table, sites_per_country, rng
    )
    s = normals.sites
    mat, map_, lat = normals.mat, normals.map, normals.latitude
    clay = rng.uniform(5, 55, s)
    sand = 5 + rng.uniform(0, 1, s) * (90 - clay)
    soc = np.clip(1.4 * np.exp(rng.normal(0, 0.55, s)) * np.exp(-0.03 * (mat - 12)), 0.3, 8.0)
    ph = np.clip(8.3 - 2.8 * np.minimum(map_ / 1500, 1) + rng.normal(0, 0.5, s), 4.2, 8.8)
    bd = np.clip(1.55 - 0.06 * soc + rng.normal(0, 0.07, s), 0.9, 1.75)
    sites = Sites(clay=clay, sand=sand, soc=soc, ph=ph, bulk_density=bd)

    # Aridity from the normals (annual PET of the generator's mean temperature cycle, Hargreaves).
    aridity = map_ / _normal_pet(normals)
    irrigated = rng.random(s) < np.where(aridity < 0.5, 0.6, np.where(aridity < 1.0, 0.25, 0.05))
    crops = np.array(list(CROP_PROBABILITY))
    crop = _choice(rng, CROP_PROBABILITY, s)
    rice_ok = ((mat >= 12) & (map_ >= 700)) | irrigated
    crop = np.where((crops[crop] == "rice") & ~rice_ok, list(CROPS).index("maize"), crop)
    crop_names = crops[crop]
    crop = np.array([CROPS.index(c) for c in crop_names])

    first = np.array([CALENDAR[c][0] for c in crop_names], dtype=np.float64)
    spread = np.array([CALENDAR[c][1] for c in crop_names], dtype=np.float64)
    low = np.array([CALENDAR[c][2][0] for c in crop_names])
    high = np.array([CALENDAR[c][2][1] for c in crop_names])
    season = rng.integers(low, high + 1)
    planting = first + rng.uniform(0, spread)
    winter_wheat = (crop_names == "wheat") & (mat > 4) & (mat < 16) & (rng.random(s) < 0.7)
    planting = np.where(winter_wheat, 280 + rng.uniform(0, 30, s), planting)
    season = np.where(winter_wheat, 270, season)
    planting = np.where(lat < 0, planting + 182, planting)
    tropics = np.abs(lat) < 23
    planting = np.where(tropics & ~winter_wheat, normals.wettest_doy - 30 + rng.uniform(-15, 15, s), planting)
    planting = (np.round(planting).astype(np.int64) - 1) % 365 + 1

    n_rate = np.clip(np.array([N_MEDIAN[c] for c in crop_names]) * np.exp(rng.normal(0, 0.5, s)), 10, 400)
    n_rate = np.where(rng.random(s) < 0.1, 0.0, n_rate)
    kinds = list(FERTILISER_PROBABILITY)
    shares = np.array([FERTILISER_TYPES[kinds[i]] for i in _choice(rng, FERTILISER_PROBABILITY, s)])
    regimes = list(WATER_REGIME_PROBABILITY)
    regime = np.array([WATER_REGIMES[regimes[i]] for i in _choice(rng, WATER_REGIME_PROBABILITY, s)])
    paddy = crop == CROPS.index("rice")
    management = Management(
        n_rate=n_rate,
        shares=shares,
        crop=crop,
        planting_doy=planting,
        season_days=season.astype(np.int64),
        irrigated=irrigated | paddy,
        flooded=paddy,
        water_regime=np.where(paddy, regime, 1.0),
    )
    return Scenarios(sites=sites, management=management, normals=normals, country=country)


def _normal_pet(normals: ClimateNormals) -> np.ndarray:
    """Annual Hargreaves PET (mm) of the normals' mean daily temperature cycle."""
    doy = np.arange(1, 366)
    cycle = normals.mat[:, None] + normals.t_amplitude[:, None] * np.cos(
        2 * np.pi * (doy[None, :] - normals.warmest_doy[:, None]) / 365
    )
    half = normals.diurnal_range[:, None] / 2
    ra = extraterrestrial_radiation(normals.latitude, doy)
    return hargreaves_pet(cycle - half, cycle + half, ra).sum(axis=1)


@dataclass
class SimulatedData:
    """Site-year rows: ``features`` (N, F), ``targets`` (N, 6) in TARGET_COLUMNS order (kg N or C/ha),
    and the country, site and year of each row."""

    features: np.ndarray
    targets: np.ndarray
    country: np.ndarray
    site: np.ndarray
    year: np.ndarray

    def frame(self) -> pd.DataFrame:
        table = pd.DataFrame(self.features, columns=list(FEATURE_NAMES))
        for i, name in enumerate(TARGET_COLUMNS):
            table[name] = self.targets[:, i]
        table["country"], table["site"], table["year"] = self.country, self.site, self.year
        return table


def run_scenarios(
    scenarios: Scenarios,
    *,
    years: int,
    seed: int,
    parameters: ProcessParameters | None = None,
    weather: DailyWeather | None = None,
    chunk: int = 10_000,
    progress: ProgressCallback = silent,
) -> tuple[SimulatedData, list]:
    """Generate weather (from ``seed``) and simulate every scenario; returns the rows and the per-chunk
    :class:`SimulationResult` objects (for the mass-balance and EF checks)."""
    spinup = 1
    total_years = weather_years_needed(spinup, years)
    parts, results = [], []
    starts = list(range(0, scenarios.count, chunk))
    for k, start in enumerate(starts):
        index = np.arange(start, min(start + chunk, scenarios.count))
        part = scenarios.take(index)
        daily = (
            weather.take(index)
            if weather is not None
            else generate_weather(part.normals, total_years, np.random.default_rng([seed, k]))
        )
        report = scaled(progress, k / len(starts), (k + 1) / len(starts))
        result = simulate(
            part.sites, part.management, daily, parameters, years=years, spinup_years=spinup, progress=report
        )
        climate = climate_features(
            daily, part.management.planting_doy, part.management.season_days, spinup_years=spinup, years=years
        )
        targets = np.stack(
            [
                (result.season if period == "season" else result.annual)[target].reshape(-1)
                for target in TARGETS
                for period in PERIODS
            ],
            axis=1,
        )
        parts.append(
            SimulatedData(
                features=feature_matrix(part.sites, part.management, climate),
                targets=targets,
                country=np.repeat(part.country, years),
                site=np.repeat(index, years),
                year=np.tile(np.arange(years), index.size),
            )
        )
        results.append(result)
    data = SimulatedData(
        *(
            np.concatenate([getattr(p, name) for p in parts])
            for name in ("features", "targets", "country", "site", "year")
        )
    )
    return data, results


def write_dataset(data: SimulatedData, path: Path) -> Path:
    """Write the rows as Parquet, atomically."""
    with atomic_output(path) as tmp:
        data.frame().to_parquet(tmp, index=False)
    return path
