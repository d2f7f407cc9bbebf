"""The agricultural feature vector shared by the simulator's scenarios, the real data and KG-FGNN.

Each feature is one node of KG-FGNN's feature graphs. A value may be missing (NaN): the network has a
learned "missing" embedding per feature, and pre-training masks features at random so that a point with
only a few known fields (N rate, fertiliser type, soil carbon) still gets an honest prediction.

The fertiliser type is carried as the shares of applied N by form (urea, ammonium, nitrate, organic),
so mixtures and the codes of published tables map onto the same four numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soilcarbon_core.errors import InputError


@dataclass(frozen=True)
class Feature:
    """One agricultural variable: its name, unit, group and plausible range (for input checks)."""

    name: str
    unit: str
    group: str
    low: float
    high: float
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature("mat", "degC", "climate", -15, 35, "mean annual air temperature"),
    Feature("map", "mm/yr", "climate", 0, 6000, "mean annual precipitation"),
    Feature("pet", "mm/yr", "climate", 0, 3000, "annual potential evapotranspiration (Hargreaves)"),
    Feature("aridity", "1", "climate", 0, 20, "precipitation / PET (above 1: IPCC wet climate)"),
    Feature("season_temp", "degC", "climate", -10, 40, "mean air temperature of the growing season"),
    Feature("season_precip", "mm", "climate", 0, 5000, "precipitation of the growing season"),
    Feature("soc", "%", "soil", 0, 60, "topsoil organic carbon (mass %)"),
    Feature("clay", "%", "soil", 0, 100, "clay content"),
    Feature("sand", "%", "soil", 0, 100, "sand content"),
    Feature("ph", "1", "soil", 2, 11, "soil pH in water"),
    Feature("bulk_density", "g/cm3", "soil", 0.1, 2.2, "topsoil bulk density"),
    Feature("n_rate", "kg N/ha/yr", "management", 0, 1500, "mineral plus organic N applied"),
    Feature("urea_share", "1", "management", 0, 1, "share of applied N as urea"),
    Feature("ammonium_share", "1", "management", 0, 1, "share of applied N as ammonium"),
    Feature("nitrate_share", "1", "management", 0, 1, "share of applied N as nitrate"),
    Feature("organic_share", "1", "management", 0, 1, "share of applied N as manure"),
    Feature("crop", "code", "management", 0, 5, "crop code, see CROPS"),
    Feature("irrigated", "1", "management", 0, 1, "1 when irrigated"),
    Feature("flooded_days", "d/yr", "management", 0, 366, "days per year the field stands flooded"),
    Feature("season_days", "d", "management", 0, 366, "length of the growing season"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FERTILISER_SHARES: tuple[str, ...] = ("urea_share", "ammonium_share", "nitrate_share", "organic_share")
CATEGORICAL: dict[str, int] = {"crop": 6}

CROPS: tuple[str, ...] = ("maize", "wheat", "rice", "soybean", "vegetables", "grassland")

# Shares of N (urea, ammonium, nitrate, organic) of each fertiliser type. The short codes are those of the
# N2O meta-analysis table (SESYNCBayes N2OEmission: A, AN, N, U, UAN, M and their mixtures).
FERTILISER_TYPES: dict[str, tuple[float, float, float, float]] = {
    "urea": (1.0, 0.0, 0.0, 0.0),
    "ammonium": (0.0, 1.0, 0.0, 0.0),
    "nitrate": (0.0, 0.0, 1.0, 0.0),
    "ammonium_nitrate": (0.0, 0.5, 0.5, 0.0),
    "uan": (0.5, 0.25, 0.25, 0.0),
    "manure": (0.0, 0.0, 0.0, 1.0),
    "urea_ammonium": (0.5, 0.5, 0.0, 0.0),
    "ammonium_manure": (0.0, 0.5, 0.0, 0.5),
    "urea_manure": (0.5, 0.0, 0.0, 0.5),
}
FERTILISER_ALIASES: dict[str, str] = {
    "u": "urea",
    "a": "ammonium",
    "as": "ammonium",
    "ammonium_sulphate": "ammonium",
    "ammonium_sulfate": "ammonium",
    "n": "nitrate",
    "an": "ammonium_nitrate",
    "can": "ammonium_nitrate",
    "m": "manure",
    "fym": "manure",
    "slurry": "manure",
    "ua": "urea_ammonium",
    "am": "ammonium_manure",
    "um": "urea_manure",
}


def fertiliser_shares(kind: str) -> tuple[float, float, float, float]:
    """The (urea, ammonium, nitrate, organic) shares of a fertiliser type or code, case-insensitive."""
    key = kind.strip().lower().replace(" ", "_").replace("-", "_")
    key = FERTILISER_ALIASES.get(key, key)
    if key not in FERTILISER_TYPES:
        known = sorted(set(FERTILISER_TYPES) | set(FERTILISER_ALIASES))
        raise InputError(
            f"Unknown fertiliser type {kind!r}.",
            f"Use one of: {', '.join(known)} (or leave the field empty for the documented default).",
        )
    return FERTILISER_TYPES[key]


def crop_code(name: str) -> int:
    """The integer code of a crop name, case-insensitive."""
    key = name.strip().lower()
    if key not in CROPS:
        raise InputError(f"Unknown crop {name!r}.", f"Use one of: {', '.join(CROPS)}.")
    return CROPS.index(key)


def feature_index(name: str) -> int:
    """The column (node) of a feature in the feature matrix."""
    return FEATURE_NAMES.index(name)


def empty_features(n: int) -> np.ndarray:
    """An (n, F) float matrix of missing values (NaN), in FEATURE_NAMES order."""
    return np.full((n, len(FEATURES)), np.nan)
