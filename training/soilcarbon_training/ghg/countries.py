"""The climates of 47 countries, from site normals of the global soil respiration database (SRDB).

SRDB (Bond-Lamberty & Thomson 2010; Jian et al. 2021; MIT) reports, for each of its records, the mean
annual temperature (MAT) and precipitation (MAP) of the study site as the study gives them.
:func:`build_country_climate` harmonises the country names, drops records without usable normals and
places without field agriculture, and summarises each country by the median, 10th and 90th percentile
of its records' normals and the median of their coordinates. The 47 countries with the most records are
kept. ``python -m soilcarbon_training.ghg.countries SRDB_CSV`` writes
``data/ghg_climate/country_climate.csv``.

:func:`sample_country_normals` turns the table into :class:`~soilcarbon_core.ghg.weather.ClimateNormals`
for simulated sites. MAT and MAP come from the country's range; the other normals follow our own
climate-zone parameterisation (rules of thumb, not fitted to data):

- latitude: the country's median latitude + N(0, 2 deg).
- t_amplitude = clip(1 + 0.3 |lat|, 1, 20) x U(0.7, 1.3), the factor standing for continentality.
- warmest_doy = 200 north of the equator, 20 south of it (near the equator the amplitude is small).
- diurnal_range = clip(14 - MAP / 300 + N(0, 1), 6, 15) degC: humid climates have smaller ranges.
- wet_day_fraction = clip(0.1 + MAP / 2500, 0.08, 0.7).
- precip_seasonality ~ U(0, 0.6), or U(0.3, 0.9) in the tropics and monsoon belt (|lat| < 25).
- wettest_doy = warmest_doy + U(-60, 60) (summer rain), except Mediterranean-type climates
  (MAT > 12 C, MAP < 800 mm, |lat| > 30) whose rain falls in winter: warmest_doy + 182.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from soilcarbon_core.errors import DataNotFoundError, InputError
from soilcarbon_core.ghg.features import FEATURES
from soilcarbon_core.ghg.weather import ClimateNormals
from soilcarbon_core.io.atomic import atomic_output

#: The repository's data folder (this file is training/soilcarbon_training/ghg/countries.py).
DATA = Path(__file__).resolve().parents[3] / "data"
COUNTRY_CLIMATE_CSV = DATA / "ghg_climate" / "country_climate.csv"
N_COUNTRIES = 47
COLUMNS = (
    "country",
    "records",
    "latitude",
    "longitude",
    "mat_median",
    "mat_p10",
    "mat_p90",
    "map_median",
    "map_p10",
    "map_p90",
)

#: SRDB spellings -> one name per country (after trimming spaces). "Congo" is resolved by longitude.
COUNTRY_ALIASES = {
    "USA": "United States",
    "UK": "United Kingdom",
    "England": "United Kingdom",
    "Scotland": "United Kingdom",
    "Wales": "United Kingdom",
    "Korea": "South Korea",
    "Czechia": "Czech Republic",
    "Czech": "Czech Republic",
    "Cesko": "Czech Republic",
    "Czechoslovakia": "Czech Republic",  # its SRDB site (Lanzhot) lies in today's Czech Republic
    "Isreal": "Israel",
    "Signapore": "Singapore",
    "Bennin": "Benin",
    "The Netherlands": "Netherlands",
    "Tuscany": "Italy",
    "Palma": "Spain",
    "Republic of Congo": "Republic of the Congo",
    "Democratic Republic of Congo": "DR Congo",
    "Kingdom of Saudi Arabia": "Saudi Arabia",
    "Republic of Niger": "Niger",
}
#: East of this longitude a record labelled "Congo" is in the Democratic Republic (the Republic of the
#: Congo ends at about 18.6 E; SRDB's "Congo" sites are Pointe-Noire/Kondi/Kissoko near 12 E and
#: Yangambi near 24 E).
_CONGO_SPLIT_LONGITUDE = 18.7
#: Regions, polar territories and non-countries: no field agriculture, or not a country.
EXCLUDED = frozenset(
    {
        "Greenland",
        "Antarctica",
        "Antarctic",
        "Arctic",
        "French Guiana",
        "Svalbard",
        "Africa",
        "Europe",
        "Global",
    }
)
#: Records poleward of this latitude are polar (Svalbard, Greenland stations filed under Denmark, the
#: Canadian and Siberian Arctic): beyond the northernmost field agriculture, about 70 N.
MAX_ABS_LATITUDE = 70.0


def _feature_range(name: str) -> tuple[float, float]:
    feature = next(f for f in FEATURES if f.name == name)
    return feature.low, feature.high


def harmonise_country(country: pd.Series, longitude: pd.Series) -> pd.Series:
    """One name per country: spaces trimmed, SRDB's spellings mapped by COUNTRY_ALIASES, "Congo" split
    by longitude; missing names become empty strings."""
    names = country.fillna("").astype(str).str.strip().replace(COUNTRY_ALIASES)
    congo = names == "Congo"
    names = names.mask(congo & (longitude > _CONGO_SPLIT_LONGITUDE), "DR Congo")
    return names.mask(congo & ~(longitude > _CONGO_SPLIT_LONGITUDE), "Republic of the Congo")


def build_country_climate(srdb_csv: Path, n_countries: int = N_COUNTRIES) -> pd.DataFrame:
    """The country climate table (columns COLUMNS, one row per country, most records first).

    A record counts when its country is named and not EXCLUDED, it is not poleward of
    MAX_ABS_LATITUDE, and its MAT and MAP lie in the plausible ranges of the agricultural features
    (MAT -15..35 C, MAP above 0 and at most 6000 mm). Per country: the number of records, the median
    latitude (signed) and longitude of those with coordinates, and the median and 10th / 90th
    percentiles (linear interpolation) of MAT and MAP. Ties in the record count are broken by name.
    """
    srdb_csv = Path(srdb_csv)
    if not srdb_csv.is_file():
        raise DataNotFoundError(
            f"The SRDB file '{srdb_csv}' does not exist.",
            "Give the path of srdb-data.csv from the repository bpbond/srdb.",
        )
    table = pd.read_csv(
        srdb_csv, usecols=["Country", "Latitude", "Longitude", "MAT", "MAP"], low_memory=False
    )
    for column in ("Latitude", "Longitude", "MAT", "MAP"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table["country"] = harmonise_country(table["Country"], table["Longitude"])

    mat_low, mat_high = _feature_range("mat")
    _, map_high = _feature_range("map")
    usable = (
        table["MAT"].between(mat_low, mat_high)
        & (table["MAP"] > 0)
        & (table["MAP"] <= map_high)
        & (table["country"] != "")
        & ~table["country"].isin(EXCLUDED)
        & ~(table["Latitude"].abs() > MAX_ABS_LATITUDE)  # records without coordinates stay
    )
    groups = table[usable].groupby("country")
    summary = pd.DataFrame(
        {
            "records": groups.size(),
            "latitude": groups["Latitude"].median(),
            "longitude": groups["Longitude"].median(),
            **{
                f"{name}_{stat}": groups[column].quantile(q)
                for name, column in (("mat", "MAT"), ("map", "MAP"))
                for stat, q in (("median", 0.5), ("p10", 0.1), ("p90", 0.9))
            },
        }
    ).reset_index()
    if len(summary) < n_countries:
        raise InputError(
            f"'{srdb_csv}' has usable climate normals for {len(summary)} countries, "
            f"fewer than {n_countries}.",
            "Use the full srdb-data.csv, or ask for fewer countries.",
        )
    summary = summary.sort_values(["records", "country"], ascending=[False, True]).head(n_countries)
    return summary[list(COLUMNS)].reset_index(drop=True)


def load_country_climate(path: Path | None = None) -> pd.DataFrame:
    """The bundled country climate table (``data/ghg_climate/country_climate.csv`` by default), checked."""
    path = COUNTRY_CLIMATE_CSV if path is None else Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"The country climate table '{path}' does not exist.",
            "Build it with: python -m soilcarbon_training.ghg.countries PATH/TO/srdb-data.csv",
        )
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing or len(table) != N_COUNTRIES or table["country"].duplicated().any():
        raise InputError(
            f"'{path}' is not a country climate table of {N_COUNTRIES} distinct countries "
            f"({len(table)} rows; missing columns: {missing or 'none'}).",
            "Rebuild it with: python -m soilcarbon_training.ghg.countries PATH/TO/srdb-data.csv",
        )
    for name in ("mat", "map"):
        low, median, high = (table[f"{name}_{stat}"] for stat in ("p10", "median", "p90"))
        if not ((low <= median) & (median <= high)).all():
            raise InputError(f"'{path}': {name}_p10 <= {name}_median <= {name}_p90 fails.", "Rebuild it.")
    return table[list(COLUMNS)]


def sample_country_normals(
    table: pd.DataFrame, sites_per_country: int, rng: np.random.Generator
) -> tuple[ClimateNormals, np.ndarray]:
    """Climate normals of ``sites_per_country`` sites in each country of ``table``.

    Returns the normals (S = rows x sites_per_country, the sites of one country contiguous, in the
    table's order) and the ``(S,)`` country name of each site. MAT is uniform between the country's
    p10 and p90, MAP log-uniform between them; the other fields follow the module docstring.
    """
    if sites_per_country < 1:
        raise InputError(f"sites_per_country must be at least 1, not {sites_per_country}.", "Give e.g. 100.")
    country = np.repeat(table["country"].to_numpy(dtype=object), sites_per_country)
    s = country.size

    def per_site(column: str) -> np.ndarray:
        return np.repeat(table[column].to_numpy(dtype=float), sites_per_country)

    # Every random array is drawn whatever the branch, so a seed gives the same sites for any table.
    mat = rng.uniform(per_site("mat_p10"), per_site("mat_p90"))
    map_ = np.exp(rng.uniform(np.log(per_site("map_p10")), np.log(per_site("map_p90"))))
    latitude = np.clip(per_site("latitude") + rng.normal(0.0, 2.0, s), -89.0, 89.0)
    continentality = rng.uniform(0.7, 1.3, s)
    diurnal_noise = rng.normal(0.0, 1.0, s)
    seasonality_extratropical = rng.uniform(0.0, 0.6, s)
    seasonality_tropical = rng.uniform(0.3, 0.9, s)
    wettest_offset = rng.uniform(-60.0, 60.0, s)

    abs_lat = np.abs(latitude)
    t_amplitude = np.clip(1.0 + 0.3 * abs_lat, 1.0, 20.0) * continentality
    warmest_doy = np.where(latitude >= 0, 200.0, 20.0)
    mediterranean = (mat > 12) & (map_ < 800) & (abs_lat > 30)
    wettest = warmest_doy + np.where(mediterranean, 182.0, wettest_offset)
    normals = ClimateNormals(
        mat=mat,
        map=map_,
        t_amplitude=t_amplitude,
        warmest_doy=warmest_doy,
        diurnal_range=np.clip(14.0 - map_ / 300.0 + diurnal_noise, 6.0, 15.0),
        wet_day_fraction=np.clip(0.1 + map_ / 2500.0, 0.08, 0.7),
        precip_seasonality=np.where(abs_lat < 25, seasonality_tropical, seasonality_extratropical),
        wettest_doy=(wettest - 1.0) % 365.0 + 1.0,
        latitude=latitude,
    )
    return normals, country


def main(argv: list[str] | None = None) -> None:
    """Build the country climate table from SRDB's srdb-data.csv and write it atomically."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("srdb_csv", type=Path, help="srdb-data.csv of the repository bpbond/srdb")
    parser.add_argument("--output", type=Path, default=COUNTRY_CLIMATE_CSV, help="CSV to write")
    args = parser.parse_args(argv)
    table = build_country_climate(args.srdb_csv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.output) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    print(f"Wrote {len(table)} countries to {args.output}")


if __name__ == "__main__":
    main()
