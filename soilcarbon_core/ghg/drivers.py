"""From simulator inputs to KG-FGNN's feature vector: one row per site-year.

The climate features of a site-year are computed from the daily weather of that planting-year (the
same window the simulator reports), so the simulations and a prediction from a real weather series
see the same quantities: mean air temperature, precipitation, Hargreaves PET, their ratio, and the
temperature and precipitation of the growing season.
"""

from __future__ import annotations

import numpy as np

from soilcarbon_core.ghg.features import FEATURE_NAMES, FERTILISER_SHARES, empty_features
from soilcarbon_core.ghg.simulator.model import DRAINED_BEFORE_HARVEST, RICE, Management, Sites


def planting_year_windows(
    planting_doy: np.ndarray, first_doy: int, spinup_years: int, years: int
) -> np.ndarray:
    """(S, Y) index of the first day of each reported site-year in a weather series starting on
    ``first_doy`` (as :func:`soilcarbon_core.ghg.simulator.simulate` counts them)."""
    offset = (np.asarray(planting_doy, dtype=np.int64) - first_doy) % 365
    return offset[:, None] + 365 * (spinup_years + np.arange(years))[None, :]


def climate_features(
    weather, planting_doy: np.ndarray, season_days: np.ndarray, *, spinup_years: int, years: int
) -> dict[str, np.ndarray]:
    """Climate of each site-year, (S, Y) arrays keyed by feature name.

    ``weather`` has ``tavg``, ``precip`` and ``pet`` (S, D) (e.g. DailyWeather); days are counted as in
    :func:`soilcarbon_core.ghg.simulator.simulate`.
    """
    tavg, precip, pet = (
        np.asarray(getattr(weather, name), dtype=np.float64) for name in ("tavg", "precip", "pet")
    )
    starts = planting_year_windows(planting_doy, int(np.asarray(weather.doy)[0]), spinup_years, years)
    index = starts[:, :, None] + np.arange(365)[None, None, :]  # (S, Y, 365)
    rows = np.arange(tavg.shape[0])[:, None, None]
    in_season = np.arange(365)[None, None, :] < np.asarray(season_days)[:, None, None]
    t, p, e = tavg[rows, index], precip[rows, index], pet[rows, index]
    annual_p, annual_pet = p.sum(axis=2), e.sum(axis=2)
    return {
        "mat": t.mean(axis=2),
        "map": annual_p,
        "pet": annual_pet,
        "aridity": annual_p / np.maximum(annual_pet, 1.0),
        "season_temp": (t * in_season).sum(axis=2) / in_season.sum(axis=2),
        "season_precip": (p * in_season).sum(axis=2),
    }


def feature_matrix(sites: Sites, management: Management, climate: dict[str, np.ndarray]) -> np.ndarray:
    """(S * Y, F) features in FEATURE_NAMES order, site-major (row = site * Y + year).

    Flooded days are those of the simulator's paddy: the season minus the days drained before harvest.
    """
    years = next(iter(climate.values())).shape[1]
    s = sites.count
    paddy = np.asarray(management.flooded, dtype=bool) & (np.asarray(management.crop) == RICE)
    per_site = {
        "soc": sites.soc,
        "clay": sites.clay,
        "sand": sites.sand,
        "ph": sites.ph,
        "bulk_density": sites.bulk_density,
        "n_rate": management.n_rate,
        "crop": management.crop,
        "irrigated": management.irrigated,
        "flooded_days": np.where(paddy, np.asarray(management.season_days) - DRAINED_BEFORE_HARVEST, 0),
        "season_days": management.season_days,
    }
    per_site.update({name: np.asarray(management.shares)[:, i] for i, name in enumerate(FERTILISER_SHARES)})
    out = empty_features(s * years)
    for column, name in enumerate(FEATURE_NAMES):
        if name in climate:
            out[:, column] = np.asarray(climate[name], dtype=np.float64).reshape(-1)
        else:
            out[:, column] = np.repeat(np.asarray(per_site[name], dtype=np.float64), years)
    return out
