"""GHG flux tables: points with management fields -> N2O, CO2 and CH4 per season and year with
uncertainty, CO2-equivalents and the driving values used.

Fields of the points (case-insensitive; aliases in :data:`FIELD_ALIASES`):

- required: ``n_rate`` (kg N/ha/yr, mineral plus organic; >= 0).
- management, each with a documented default and a flag in ``defaults_used`` when missing:
  ``fertiliser`` (type or code, see :data:`~soilcarbon_core.ghg.features.FERTILISER_TYPES`; default
  unknown: the model averages over types, as it learned with types hidden), ``crop`` (default unknown),
  ``planting_date`` and ``harvest_date`` (default unknown: no season climate or length), ``irrigated``
  (default 0), ``flooded`` (default 1 for rice, else 0).
- soil: ``soc`` (%), ``clay``, ``sand`` (%), ``ph``, ``bulk_density`` (g/cm3); a missing one is unknown
  to the model (flagged), which widens the uncertainty.
- climate: a daily weather CSV (``weather``) gives each point's climate over the series' planting-years;
  without it, per-point ``mat`` and ``map`` fields are used where present, the rest is unknown (flagged).

SOC from an SpTGNN prediction (``soc_field`` and ``soc_sd_field``, e.g. ``pred_mean`` and
``pred_sd_total`` of ``soilcarbon predict``): SOC is drawn from N(mean, sd) (truncated at 0.05 %) for
every predictive sample, so its uncertainty propagates into the fluxes; ``soc_source`` says so.

Each output has mean, sd and the 5 and 95 % quantiles of the predictive distribution (deep-ensemble
mixture, :func:`soilcarbon_core.ghg.targets.sample_fluxes`), in the units of the model's manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from soilcarbon_core.errors import InputError
from soilcarbon_core.ghg import targets as tg
from soilcarbon_core.ghg.drivers import climate_features
from soilcarbon_core.ghg.features import (
    FEATURE_NAMES,
    FEATURES,
    FERTILISER_SHARES,
    crop_code,
    empty_features,
    feature_index,
    fertiliser_shares,
)
from soilcarbon_core.ghg.model import GHGModel
from soilcarbon_core.ghg.weather import DailyWeather, read_weather_csv
from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.io.points import SamplePoints, few_rows, read_points
from soilcarbon_core.io.vector_out import write_points_gpkg
from soilcarbon_core.progress import ProgressCallback, silent

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "n_rate": ("n_rate", "n_input", "n.input", "nrate", "n_kg_ha", "nitrogen"),
    "fertiliser": ("fertiliser", "fertilizer", "fertiliser_type", "fertilizer_type", "fert_type"),
    "crop": ("crop",),
    "planting_date": ("planting_date", "sowing_date", "planting"),
    "harvest_date": ("harvest_date", "harvest"),
    "irrigated": ("irrigated", "irrigation"),
    "flooded": ("flooded", "paddy"),
    "soc": ("soc", "soc_pct", "carbon"),
    "clay": ("clay",),
    "sand": ("sand",),
    "ph": ("ph", "ph_h2o"),
    "bulk_density": ("bulk_density", "bd"),
    "mat": ("mat",),
    "map": ("map",),
}
SOC_UNITS = {"%": 1.0, "g/kg": 0.1}
SOC_FLOOR = 0.05


@dataclass
class GHGInputs:
    """Where the drivers come from besides the points' own fields."""

    weather: str | os.PathLike[str] | None = None
    soc_field: str | None = None
    soc_sd_field: str | None = None
    soc_unit: str = "%"


def _column(table: pd.DataFrame, name: str) -> str | None:
    lower = {c.lower(): c for c in table.columns}
    return next((lower[a] for a in FIELD_ALIASES[name] if a in lower), None)


def _numbers(table: pd.DataFrame, column: str, what: str) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = table[column].notna().to_numpy() & ~np.isfinite(values)
    if bad.any():
        raise InputError(
            f"Field '{column}' ({what}) has values that are not numbers at row(s) {_rows(bad)}.",
            f"Give {what} as a number, or leave it empty.",
        )
    return values


def _rows(mask: np.ndarray) -> str:
    """1-based row numbers of ``mask`` for a message."""
    return few_rows(np.flatnonzero(mask) + 1)


def _day_of_year(table: pd.DataFrame, column: str) -> np.ndarray:
    dates = pd.to_datetime(table[column], errors="coerce", format="ISO8601")
    bad = table[column].notna().to_numpy() & dates.isna().to_numpy()
    if bad.any():
        raise InputError(
            f"Field '{column}' has values that are not dates at row(s) {_rows(bad)}.",
            "Write dates as YYYY-MM-DD.",
        )
    return dates.dt.day_of_year.to_numpy(dtype=np.float64)


def management_features(table: pd.DataFrame) -> tuple[np.ndarray, list[list[str]], dict[str, np.ndarray]]:
    """Features (N, F) from the attribute table (climate left unknown), the defaults used per row, and
    the calendar (planting day of year, season days; NaN when unknown)."""
    n = len(table)
    x = empty_features(n)
    flags: list[list[str]] = [[] for _ in range(n)]

    def flag(mask: np.ndarray, text: str) -> None:
        for row in np.flatnonzero(mask):
            flags[row].append(text)

    column = _column(table, "n_rate")
    if column is None:
        raise InputError(
            f"The points have no N rate field (looked for {', '.join(FIELD_ALIASES['n_rate'])}).",
            "Add a field 'n_rate' with the N applied in kg N/ha per year (0 for unfertilised).",
        )
    n_rate = _numbers(table, column, "the N rate in kg N/ha")
    if np.any(~np.isfinite(n_rate)):
        raise InputError(
            f"The N rate ('{column}') is empty at row(s) {_rows(~np.isfinite(n_rate))}.",
            "Give the N applied in kg N/ha per year at every point (0 for unfertilised plots).",
        )
    if np.any(n_rate < 0):
        raise InputError(
            f"The N rate ('{column}') is negative at row(s) {_rows(n_rate < 0)}.", "N rates are >= 0 kg N/ha."
        )
    x[:, feature_index("n_rate")] = n_rate

    column = _column(table, "fertiliser")
    shares = np.full((n, len(FERTILISER_SHARES)), np.nan)
    if column is not None:
        for row, value in enumerate(table[column]):
            if isinstance(value, str) and value.strip() and value.strip().lower() != "unknown":
                try:
                    shares[row] = fertiliser_shares(value)
                except InputError as err:
                    raise InputError(f"Row {row + 1}, field '{column}': {err.message}", err.hint) from err
    flag(np.isnan(shares[:, 0]), "fertiliser type unknown")
    for i, name in enumerate(FERTILISER_SHARES):
        x[:, feature_index(name)] = shares[:, i]

    crops = np.full(n, np.nan)
    column = _column(table, "crop")
    if column is not None:
        for row, value in enumerate(table[column]):
            if isinstance(value, str) and value.strip():
                try:
                    crops[row] = crop_code(value)
                except InputError as err:
                    raise InputError(f"Row {row + 1}, field '{column}': {err.message}", err.hint) from err
    flag(np.isnan(crops), "crop unknown")
    x[:, feature_index("crop")] = crops

    planting = harvest = np.full(n, np.nan)
    if (column := _column(table, "planting_date")) is not None:
        planting = _day_of_year(table, column)
    if (column := _column(table, "harvest_date")) is not None:
        harvest = _day_of_year(table, column)
    season = (harvest - planting) % 365
    season = np.where(season >= 30, season, np.nan)
    flag(np.isnan(season), "planting or harvest date unknown")
    x[:, feature_index("season_days")] = season

    for name, default in (
        ("irrigated", np.zeros(n)),
        ("flooded", (crops == crop_code("rice")).astype(float)),
    ):
        column = _column(table, name)
        values = np.full(n, np.nan) if column is None else _numbers(table, column, f"{name} (0 or 1)")
        flag(np.isnan(values), f"{name} defaulted to {'1 for rice, else 0' if name == 'flooded' else '0'}")
        values = np.where(np.isnan(values), default, values)
        if name == "irrigated":
            x[:, feature_index("irrigated")] = values
        else:
            flooded_days = np.where(np.isnan(season), 120.0, season - 14.0)
            x[:, feature_index("flooded_days")] = np.where(values > 0, flooded_days, 0.0)

    for name in ("soc", "clay", "sand", "ph", "bulk_density", "mat", "map"):
        column = _column(table, name)
        if column is not None:
            x[:, feature_index(name)] = _numbers(table, column, name)
        if name not in ("mat", "map"):
            flag(np.isnan(x[:, feature_index(name)]), f"{name} unknown")
    return x, flags, {"planting_doy": planting, "season_days": season}


def weather_climate(
    weather: DailyWeather, latitude: np.ndarray, calendar: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Each point's climate features averaged over the whole planting-years of the series (N,)."""
    planting = np.where(np.isfinite(calendar["planting_doy"]), calendar["planting_doy"], weather.doy[0])
    season = np.where(np.isfinite(calendar["season_days"]), calendar["season_days"], 365)
    offset = (planting.astype(int) - int(weather.doy[0])) % 365
    years = int((weather.days - offset.max()) // 365)
    if years < 1:
        raise InputError(
            f"The weather series ({weather.days} days) does not hold a whole year from the planting dates.",
            "Give at least one full year of daily weather after the earliest planting date.",
        )
    series = weather.repeat_sites(latitude)
    climate = climate_features(series, planting.astype(int), season.astype(int), spinup_years=0, years=years)
    out = {name: values.mean(axis=1) for name, values in climate.items()}
    unknown_season = ~np.isfinite(calendar["season_days"])
    for name in ("season_temp", "season_precip"):
        out[name] = np.where(unknown_season, np.nan, out[name])
    return out


def _check_ranges(x: np.ndarray) -> None:
    for column, feature in enumerate(FEATURES):
        values = x[:, column]
        bad = np.isfinite(values) & ((values < feature.low) | (values > feature.high))
        if bad.any():
            raise InputError(
                f"'{feature.name}' ({feature.description}, {feature.unit}) is outside "
                f"[{feature.low:g}, {feature.high:g}] at row(s) {_rows(bad)}.",
                f"Check the field's values and units ({feature.unit}).",
            )


def ghg_table(
    model: GHGModel,
    points: SamplePoints,
    inputs: GHGInputs | None = None,
    *,
    samples: int = 256,
    seed: int = 0,
    progress: ProgressCallback = silent,
) -> tuple[pd.DataFrame, dict]:
    """The flux table (one row per point) and a summary (notes, defaults used, units)."""
    inputs = inputs or GHGInputs()
    table = points.attributes.reset_index(drop=True)
    x, flags, calendar = management_features(table)
    notes: list[str] = []
    soc_source = np.where(np.isfinite(x[:, feature_index("soc")]), "field", "unknown").astype(object)
    soc_sd = np.zeros(len(table))
    if inputs.soc_field:
        if inputs.soc_unit not in SOC_UNITS:
            raise InputError(
                f"SOC unit '{inputs.soc_unit}' cannot be used for fluxes.",
                f"Use one of {', '.join(SOC_UNITS)} (a stock in t/ha needs a depth and a bulk density).",
            )
        for field in (inputs.soc_field, inputs.soc_sd_field):
            if field and field not in table.columns:
                raise InputError(
                    f"The points have no field '{field}'.", f"Fields: {', '.join(table.columns)}."
                )
        factor = SOC_UNITS[inputs.soc_unit]
        x[:, feature_index("soc")] = _numbers(table, inputs.soc_field, "SOC") * factor
        if inputs.soc_sd_field:
            soc_sd = np.nan_to_num(_numbers(table, inputs.soc_sd_field, "SOC sd") * factor)
        soc_source[:] = "sptgnn: mean and sd sampled" if inputs.soc_sd_field else "sptgnn: mean"
        for row in range(len(table)):
            flags[row] = [f for f in flags[row] if f != "soc unknown"]
        notes.append(
            f"SOC from fields '{inputs.soc_field}'/'{inputs.soc_sd_field}' ({inputs.soc_unit}), sampled."
        )
    if inputs.weather is not None:
        latitude = points.lonlat()[:, 1]
        weather = read_weather_csv(inputs.weather, float(np.mean(latitude)))
        notes += list(weather.notes)
        for name, values in weather_climate(weather, latitude, calendar).items():
            x[:, feature_index(name)] = values
        notes.append(f"Climate from the daily weather '{Path(inputs.weather).name}' ({weather.days} days).")
    climate_known = np.isfinite(x[:, feature_index("mat")]) | np.isfinite(x[:, feature_index("map")])
    for row in np.flatnonzero(~climate_known):
        flags[row].append("climate unknown")
    _check_ranges(x)
    progress(0.1, "predicting fluxes")

    rng = np.random.default_rng(seed)
    soc_draws = max(1, samples // 8) if np.any(soc_sd > 0) else 1
    per_draw = max(1, samples // soc_draws)
    n = len(table)
    repeated = np.repeat(x[None], soc_draws, axis=0)
    if soc_draws > 1:
        soc = repeated[:, :, feature_index("soc")]
        repeated[:, :, feature_index("soc")] = np.maximum(
            soc + soc_sd * rng.standard_normal(soc.shape), SOC_FLOOR
        )
    mean, variance = model.predict(repeated.reshape(-1, x.shape[1]))
    progress(0.8, "summarising")
    draws = tg.sample_fluxes(mean, variance, per_draw, rng)  # (per_draw, soc_draws * N, T, P)
    draws = draws.reshape(per_draw, soc_draws, n, *draws.shape[2:]).reshape(
        per_draw * soc_draws, n, *draws.shape[2:]
    )
    columns: dict[str, np.ndarray] = {}
    for t, gas in enumerate(tg.TARGETS):
        for p, period in enumerate(tg.PERIODS):
            values = draws[:, :, t, p]
            stem = f"{gas}_{period}"
            columns[f"{stem}_mean"] = values.mean(axis=0)
            columns[f"{stem}_sd"] = values.std(axis=0)
            columns[f"{stem}_p05"], columns[f"{stem}_p95"] = np.quantile(values, [0.05, 0.95], axis=0)
    for period in tg.PERIODS:
        n2o = tg.co2_equivalent("n2o", draws[:, :, 0, tg.PERIODS.index(period)])
        ch4 = tg.co2_equivalent("ch4", draws[:, :, 2, tg.PERIODS.index(period)])
        columns[f"co2e_n2o_{period}"] = n2o.mean(axis=0)
        columns[f"co2e_ch4_{period}"] = ch4.mean(axis=0)
        columns[f"co2e_{period}_mean"] = (n2o + ch4).mean(axis=0)
        columns[f"co2e_{period}_sd"] = (n2o + ch4).std(axis=0)
    for column, name in enumerate(FEATURE_NAMES):
        columns[f"in_{name}"] = x[:, column]
    columns["soc_source"] = soc_source
    columns["soc_sd_used"] = soc_sd
    columns["defaults_used"] = np.array(["; ".join(f) for f in flags], dtype=object)
    out = pd.DataFrame(columns)
    summary = {
        "points": n,
        "samples": per_draw * soc_draws,
        "units": {**{gas: tg.UNITS[gas] for gas in tg.TARGETS}, "co2e": "kg CO2-eq/ha (GWP100, IPCC AR6)"},
        "co2e": "N2O (273) + CH4 (27); heterotrophic soil CO2 is reported but not added: it returns carbon "
        "that plants fixed, and SOC change is the net CO2 term",
        "notes": notes,
        "points_with_defaults": int(sum(1 for f in flags if f)),
    }
    progress(1.0, "done")
    return out, summary


def predict_ghg(
    points: str | os.PathLike[str] | SamplePoints,
    output: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    inputs: GHGInputs | None = None,
    samples: int = 256,
    seed: int = 0,
    progress: ProgressCallback = silent,
    **read_options: object,
) -> dict:
    """Write the GHG flux table for ``points``: a GeoPackage (points plus fields) or, for ``.csv``, a
    CSV of the attributes plus fields. ``model`` None uses the model shipped with the package."""
    progress(0.0, "loading the GHG model")
    ghg_model = GHGModel.load(model)
    if not isinstance(points, SamplePoints):
        points = read_points(points, **read_options)  # type: ignore[arg-type]
    fluxes, summary = ghg_table(
        ghg_model,
        points,
        inputs,
        samples=samples,
        seed=seed,
        progress=lambda f, m: progress(0.05 + 0.85 * f, m),
    )
    output = Path(output)
    if output.suffix.lower() == ".csv":
        with atomic_output(output) as partial:
            pd.concat([points.attributes.reset_index(drop=True), fluxes], axis=1).to_csv(partial, index=False)
    else:
        write_points_gpkg(
            output, points, {c: fluxes[c].to_numpy() for c in fluxes.columns}, layer="ghg_fluxes"
        )
    progress(1.0, "written")
    return {"output": str(output), "fields": list(fluxes.columns), **summary}
