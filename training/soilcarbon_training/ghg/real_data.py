"""Real soil GHG measurements as feature tables: KG-FGNN's fine-tuning data and the baselines' benchmark.

Two public tables (see ``data/n2o_sesync/SOURCE.md`` and ``data/co2_srdb/SOURCE.md``), both mapped onto the
shared agricultural feature vector (:data:`soilcarbon_core.ghg.features.FEATURE_NAMES`, NaN where unknown):

N2O, SESYNCBayes ``N2OEmission`` (563 rows, 107 studies): soc = ``carbon`` (%), n_rate = ``n.input``
    (kg N/ha), the fertiliser shares from the table's fertiliser code (:func:`fertiliser_shares`; code
    "unknown" -> NaN shares); target = ``emission``, the N2O-N a study measured over its campaign
    (kg N2O-N/ha, cumulative, not necessarily a full year).
CO2, SRDB fertilised agriculture (the subset written by :func:`write_srdb_subset`): target = annual
    heterotrophic soil respiration Rh (g C m-2 yr-1 x 10 = kg CO2-C/ha/yr). Where only total soil
    respiration Rs is reported, Rh is estimated with the global relation of Bond-Lamberty, Wang & Gower
    (2004, Global Change Biology 10:1756): ln(Rh) = 1.22 + 0.73 ln(Rs), Rs and Rh in g C m-2 yr-1
    (53 sites, R2 = 0.81). Features: mat, map, bulk_density, clay, sand as reported; n_rate parsed from
    ``Manipulation_level`` (:func:`parse_n_rate`), the fertiliser form from words (:func:`fertiliser_form`),
    the crop from ``Species``/``Site_name`` (:func:`crop_from_text`).

Rows of one study share a group id, so cross-validation can keep a study whole.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from soilcarbon_core.errors import DataNotFoundError, InputError
from soilcarbon_core.ghg.features import (
    CROPS,
    FEATURE_NAMES,
    FERTILISER_SHARES,
    empty_features,
    feature_index,
    fertiliser_shares,
)

from ..datasets import DATA

N2O_UNIT = "kg N2O-N/ha"
CO2_UNIT = "kg CO2-C/ha/yr"
#: 1 g m-2 = 10 kg ha-1.
KG_HA_PER_G_M2 = 10.0
#: Bond-Lamberty, Wang & Gower (2004): ln(Rh) = a + b ln(Rs), both in g C m-2 yr-1.
RH_FROM_RS = (1.22, 0.73)

SESYNC_FILE = "N2OEmission.csv"
SRDB_FILE = "srdb_agriculture_fertilised.csv"
#: SRDB columns kept in the subset (the loader uses all but the identification and provenance fields).
SRDB_COLUMNS = (
    "Record_number",
    "Study_number",
    "Author",
    "Country",
    "Site_name",
    "Study_midyear",
    "Latitude",
    "Longitude",
    "Quality_flag",
    "Ecosystem_type",
    "Manipulation",
    "Manipulation_level",
    "Species",
    "Soil_BD",
    "Soil_sand",
    "Soil_silt",
    "Soil_clay",
    "MAT",
    "MAP",
    "Annual_coverage",
    "Rs_annual",
    "Rh_annual",
    "Notes",
)
#: SRDB quality flags that exclude a record: Q11 suspected problem, Q12 known problem, Q13 duplicate?,
#: Q14 inconsistency (Q10, "potential problem", and the estimated-value flags Q01-Q03 are kept).
SRDB_EXCLUDED_FLAGS = re.compile(r"Q1[1-4]")

_FERTILISED = re.compile(r"fertili[sz]", re.IGNORECASE)
_NOT_FERTILISED = re.compile(r"\bno\s+fertili[sz]", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class RealTable:
    """One table of real flux measurements on the shared feature vector.

    Attributes:
        name: short name ("n2o_sesync", "co2_srdb").
        features: ``(N, F)`` float64, columns in :data:`FEATURE_NAMES` order, NaN where unknown.
        target: ``(N,)`` float64 flux, never NaN.
        unit: unit of ``target`` (:data:`N2O_UNIT` or :data:`CO2_UNIT`).
        groups: ``(N,)`` int64 study id: cross-validation folds keep a study whole.
        target_name: "n2o" or "co2".
        notes: how the table was derived (conversions, counts), for reports.
    """

    name: str
    features: np.ndarray
    target: np.ndarray
    unit: str
    groups: np.ndarray
    target_name: str
    notes: tuple[str, ...]

    def __post_init__(self) -> None:
        n = self.target.shape[0]
        if self.features.shape != (n, len(FEATURE_NAMES)) or self.target.shape != (n,):
            raise InputError(
                f"Table {self.name!r}: features {self.features.shape} and target {self.target.shape} do not "
                f"match ({len(FEATURE_NAMES)} feature columns expected)."
            )
        if self.groups.shape != (n,):
            raise InputError(f"Table {self.name!r}: {self.groups.shape} groups for {n} rows.")
        if not np.isfinite(self.target).all():
            raise InputError(f"Table {self.name!r} has missing targets.", "Drop those rows first.")


def rh_from_rs(rs: np.ndarray) -> np.ndarray:
    """Heterotrophic from total soil respiration, Bond-Lamberty et al. (2004): Rh = exp(1.22) Rs^0.73.

    ``rs`` in g C m-2 yr-1 (any shape, positive); returns Rh in the same unit.
    """
    a, b = RH_FROM_RS
    return np.exp(a + b * np.log(np.asarray(rs, dtype=np.float64)))


def load_n2o_sesync(root: Path = DATA / "n2o_sesync") -> RealTable:
    """The SESYNCBayes N2O emission table (563 rows): soc, n_rate and fertiliser shares; the rest NaN."""
    frame = _read_csv(Path(root) / SESYNC_FILE)
    _require_columns(frame, ("fertilizer", "group", "carbon", "n.input", "emission"), SESYNC_FILE)
    features = empty_features(len(frame))
    features[:, feature_index("soc")] = frame["carbon"].to_numpy(np.float64)
    features[:, feature_index("n_rate")] = frame["n.input"].to_numpy(np.float64)
    codes = frame["fertilizer"].astype(str).str.strip()
    unknown = codes.str.lower().eq("unknown").to_numpy()
    shares = np.array(
        [(np.nan,) * 4 if u else fertiliser_shares(c) for c, u in zip(codes, unknown, strict=True)]
    )
    features[:, [feature_index(s) for s in FERTILISER_SHARES]] = shares
    notes = (
        "target: N2O-N emission measured over each study's campaign (cumulative, not always a full year)",
        f"{int(unknown.sum())} rows with fertiliser 'unknown' have NaN fertiliser shares",
        "codes -> shares of N as (urea, ammonium, nitrate, organic) by soilcarbon_core.ghg.features",
    )
    return RealTable(
        name="n2o_sesync",
        features=features,
        target=frame["emission"].to_numpy(np.float64),
        unit=N2O_UNIT,
        groups=frame["group"].to_numpy(np.int64),
        target_name="n2o",
        notes=notes,
    )


def load_co2_srdb(root: Path = DATA / "co2_srdb") -> RealTable:
    """Annual heterotrophic soil respiration of fertilised agricultural SRDB records (see module docstring).

    Records flagged with :data:`SRDB_EXCLUDED_FLAGS` and records without Rh_annual or a positive
    Rs_annual are dropped.
    """
    frame = _read_csv(Path(root) / SRDB_FILE)
    _require_columns(frame, SRDB_COLUMNS, SRDB_FILE)
    flagged = frame["Quality_flag"].fillna("").astype(str).str.contains(SRDB_EXCLUDED_FLAGS).to_numpy()
    rh = frame["Rh_annual"].to_numpy(np.float64)
    rs = frame["Rs_annual"].to_numpy(np.float64)
    measured = np.isfinite(rh)
    from_rs = ~measured & (rs > 0)  # NaN compares False
    keep = ~flagged & (measured | from_rs)
    both = keep & measured & (rs > 0)
    rh_g = np.where(measured, rh, rh_from_rs(np.where(from_rs, rs, 1.0)))
    log_error = np.log(rh_from_rs(rs[both]) / rh[both])

    frame = frame[keep].reset_index(drop=True)
    features = empty_features(len(frame))
    for feature, column in (
        ("mat", "MAT"),
        ("map", "MAP"),
        ("bulk_density", "Soil_BD"),
        ("clay", "Soil_clay"),
        ("sand", "Soil_sand"),
    ):
        features[:, feature_index(feature)] = pd.to_numeric(frame[column], errors="coerce").to_numpy()
    # The form is read from both fields ("Control, mineral fertilizer + urea"), the N rate from the level.
    texts = frame["Manipulation"].fillna("").astype(str) + "; " + frame["Manipulation_level"].fillna("")
    parsed = [
        _management(text, level) for text, level in zip(texts, frame["Manipulation_level"], strict=True)
    ]
    features[:, feature_index("n_rate")] = [n for n, _ in parsed]
    features[:, [feature_index(s) for s in FERTILISER_SHARES]] = np.array([shares for _, shares in parsed])
    crop_text = frame["Species"].fillna("").astype(str) + "; " + frame["Site_name"].fillna("").astype(str)
    features[:, feature_index("crop")] = [crop_from_text(text) for text in crop_text]

    n_rate = features[:, feature_index("n_rate")]
    notes = (
        f"target: annual heterotrophic respiration; {int((keep & measured).sum())} measured Rh_annual, "
        f"{int((keep & from_rs).sum())} converted from Rs_annual with ln(Rh) = 1.22 + 0.73 ln(Rs) "
        "(Bond-Lamberty, Wang & Gower 2004)",
        f"on the {int(both.sum())} kept rows with both Rs and Rh measured, ln(predicted / measured Rh) has "
        f"mean {log_error.mean():+.3f} and sd {log_error.std():.3f}",
        f"{int((flagged & (measured | from_rs)).sum())} records with a flux dropped for flags Q11-Q14",
        f"n_rate parsed for {int(np.isfinite(n_rate).sum())} of {n_rate.size} rows; "
        f"fertiliser form known for {int(np.isfinite(features[:, feature_index('urea_share')]).sum())}, "
        f"crop for {int(np.isfinite(features[:, feature_index('crop')]).sum())}",
    )
    return RealTable(
        name="co2_srdb",
        features=features,
        target=rh_g[keep] * KG_HA_PER_G_M2,
        unit=CO2_UNIT,
        groups=frame["Study_number"].to_numpy(np.int64),
        target_name="co2",
        notes=notes,
    )


# --- N rate -------------------------------------------------------------------------------------------
_NUM = r"(?<![\w.])\d+(?:\.\d+)?"
# An amount: a number, a range "67–134" (-> midpoint) or a split "120+80" (-> sum).
_AMOUNT = rf"(?P<amount>{_NUM}(?:\s*(?:-|–|—|\bto\b)\s*\d+(?:\.\d+)?|(?:\s*\+\s*\d+(?:\.\d+)?)+)?)"
_KG = r"kg(?:\s*[-−]\s*1)?"  # "315 kg−1 N ha−1" (a stray exponent)
# Each pattern: (regex, kg N/ha per unit of the amount, whether the area unit must be found after it).
_DOSE_PATTERNS: tuple[tuple[re.Pattern[str], float, bool], ...] = (
    # N-P-K triplets, the N first: "270/59/187 N/P/K kg/ha", "100-50-116 kg/ha NPK".
    (
        re.compile(
            rf"(?P<amount>{_NUM})\s*[/-]\s*[\d.]+\s*[/-]\s*[\d.]+\s*"
            r"(?:N\s*/\s*P\s*/\s*K\s*kg\s*/\s*ha|kg\s*/\s*ha\s*NPK)"
        ),
        1.0,
        False,
    ),
    # "105 N, 52 P, 120 K kg/ha/yr".
    (re.compile(rf"(?P<amount>{_NUM})\s*N\s*,[^;]*?\bkg\s*/\s*ha"), 1.0, False),
    # "200 kg/ha N".
    (re.compile(rf"{_AMOUNT}\s*kg\s*/\s*ha\s*N(?![A-Za-z])", re.IGNORECASE), 1.0, False),
    # "150 kg N/ha", "300 kgN/ha", "200 kg-N/ha", "56 kg/N/ha-1", "170 N kg Nha^-1", "160 kg N hm^1".
    (re.compile(rf"{_AMOUNT}\s*(?:N\s*)?{_KG}\s*[-/]?\s*N(?:(?=ha)|(?![A-Za-z]))", re.IGNORECASE), 1.0, True),
    # "13.5 g N/m2", "15 g/N/m2/yr", "6 gN/m2".
    (
        re.compile(rf"{_AMOUNT}\s*g\s*/?\s*N\s*/?\s*m(?:\^?\s*[-−]?\s*2|²)(?![\d])", re.IGNORECASE),
        KG_HA_PER_G_M2,
        False,
    ),
)
# The first area unit after a "kg N" dose: hectares (ha, hm) are accepted, square metres reject the text.
_AREA = re.compile(r"(?P<ha>(?<![A-Za-z])(?:ha|hm)(?![A-Za-z]))|(?<![A-Za-z])m(?:\^?\s*[-−]?\s*2|²)")


def parse_n_rate(text: str | float | None) -> float:
    """The N applied (kg N/ha) that a free-text SRDB ``Manipulation_level`` states, or NaN.

    Doses in N units are recognised ("150 kg N/ha", "300 kgN/ha", "200 kg N ha−1 as urea", "160 kg N hm^1",
    "13.5 g N/m2" -> 135, N-P-K listings "105 N, 52 P, 120 K kg/ha" -> 105); a range "67–134 kg N ha-1"
    gives its midpoint, "120+80" the sum, and several doses in one text (split applications: "140 kg N
    ha-1 (5/27), 70 kg N ha-1 (6/29)") are summed. Product masses ("150 kg Urea ha-1", "60 kg NPK/ha")
    are not N doses. NaN when no dose is found or a dose is per square metre in kg ("120+80 kgN/m2/yr",
    implausible by four orders of magnitude, so a typo of unknown intent).
    """
    if not isinstance(text, str) or not text.strip():
        return float("nan")
    total, found = 0.0, False
    for pattern, factor, needs_area in _DOSE_PATTERNS:
        for match in pattern.finditer(text):
            if needs_area:
                area = _AREA.search(text[match.end() :])  # a substring: "Nha" starts a unit
                if area is None or area.group("ha") is None:
                    return float("nan")
            total += factor * _amount(match.group("amount"))
            found = True
        # Blank the matched doses so that a later, looser pattern does not count them again.
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return total if found else float("nan")


def _amount(expression: str) -> float:
    numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", expression)]
    if "+" in expression:
        return float(sum(numbers))
    return float(np.mean(numbers))  # one number, or the midpoint of a range


# --- fertiliser form ----------------------------------------------------------------------------------
# Searched in this order, each match blanked so that "ammonium nitrate" is not also "ammonium" and "nitrate".
_FORM_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ammonium_nitrate", re.compile(r"ammonium[\s-]*nitrate|NH4NO3", re.IGNORECASE)),
    ("urea", re.compile(r"urea", re.IGNORECASE)),
    ("ammonium", re.compile(r"ammonium|\(NH4\)2SO4", re.IGNORECASE)),
    ("nitrate", re.compile(r"nitrate", re.IGNORECASE)),
)
_ORGANIC = re.compile(r"manure|compost|slurr|sludge|poultry\s+litter|organic\s+fertili[sz]", re.IGNORECASE)
#: Named mixtures of mineral forms, and a mineral form with organic material, as fertiliser types.
_MIXTURES: dict[frozenset[str], str] = {
    frozenset({"urea", "ammonium_nitrate"}): "uan",
    frozenset({"urea", "ammonium"}): "urea_ammonium",
    frozenset({"urea", "organic"}): "urea_manure",
    frozenset({"ammonium", "organic"}): "ammonium_manure",
}
# Mineral N without a named form: "Mineral", "inorganic fertilizer", "NPK", "N and pig manure", or any N dose.
_MINERAL = re.compile(r"mineral|inorganic|synthetic|\bN(?:PK|PS|P|K)?\b")
# A dose stated as organic N: "224 kg N/ha as manure".
_ORGANIC_DOSE = re.compile(r"[^,;]*\bas\s+(?:\w+\s+)?(?:manure|compost|slurr\w*)", re.IGNORECASE)


def fertiliser_form(text: str) -> tuple[float, float, float, float]:
    """(urea, ammonium, nitrate, organic) shares of applied N named in a free text, NaN where unknown.

    Forms are read from words (urea; ammonium nitrate or NH4NO3; ammonium, e.g. sulphate or
    diammonium phosphate; nitrate; manure, compost, slurry, sludge or organic fertiliser). Organic
    material without any sign of mineral N gives (0, 0, 0, 1); one mineral form, or a mixture of
    :data:`_MIXTURES` (urea with ammonium nitrate = UAN, urea with ammonium, urea or ammonium with
    organic material) gives that type's shares (:func:`soilcarbon_core.ghg.features.fertiliser_shares`,
    mixtures as equal shares like the N2O table's codes); anything else (mineral N of unnamed form,
    other mixtures) is NaN.
    """
    forms = set()
    rest = text
    for form, pattern in _FORM_WORDS:
        if pattern.search(rest):
            forms.add(form)
            rest = pattern.sub(" ", rest)
    mineral = bool(forms) or _MINERAL.search(_ORGANIC_DOSE.sub(" ", text)) is not None
    if _ORGANIC.search(text):
        if not mineral:
            return (0.0, 0.0, 0.0, 1.0)
        forms.add("organic")
    if len(forms) == 1 and "organic" not in forms:
        return fertiliser_shares(forms.pop())
    mixture = _MIXTURES.get(frozenset(forms))
    return fertiliser_shares(mixture) if mixture else (np.nan,) * 4


def _management(text: str, level: str | float) -> tuple[float, tuple[float, float, float, float]]:
    """(n_rate, shares) of one SRDB record from its Manipulation and Manipulation_level.

    n_rate is the total N applied: where organic material is applied without its N being stated (only
    "as manure" doses state it), the total is unknown and n_rate is NaN.
    """
    shares = fertiliser_form(text)
    n_rate = parse_n_rate(level)
    if _ORGANIC.search(text) and not _ORGANIC_DOSE.search(text):
        n_rate = float("nan")
    return n_rate, shares


# --- crop ---------------------------------------------------------------------------------------------
_CROP_WORDS: dict[str, re.Pattern[str]] = {
    "maize": re.compile(r"zea\s+mays|maize|\bcorn\b", re.IGNORECASE),
    "wheat": re.compile(r"triticum|wheat", re.IGNORECASE),
    "rice": re.compile(r"oryza|\brice\b|padd(?:y|ies)", re.IGNORECASE),
    "soybean": re.compile(r"glycine\s+max|soy", re.IGNORECASE),
    "vegetables": re.compile(
        r"vegetable|capsicum|lycopersicon|tomato|brassica\s+(?:rapa|oleracea)|raphanus|ipomoea\s+aquatica"
        r"|lactuca|lettuce|spinac|cucumis|cucumber|solanum\s+melongena|coriandrum|cabbage",
        re.IGNORECASE,
    ),
    "grassland": re.compile(
        r"grass|pasture|meadow|lolium|festuca|phalaris|dactylis|phleum|\bpoa\b|miscanthus", re.IGNORECASE
    ),
}
#: Patterns in :data:`CROPS` order: the position is the crop code.
_CROP_PATTERNS = tuple(_CROP_WORDS[crop] for crop in CROPS)


def crop_from_text(text: str) -> float:
    """The :data:`CROPS` code named by a species or site text, NaN when none or several differ.

    A rotation of two listed crops ("Triticum aestivum; Zea mays") is NaN: the feature holds one crop.
    Species outside the six classes (barley, potato, oil palm, ...) are ignored.
    """
    codes = {code for code, pattern in enumerate(_CROP_PATTERNS) if pattern.search(text)}
    return float(codes.pop()) if len(codes) == 1 else float("nan")


# --- the SRDB subset ----------------------------------------------------------------------------------
def srdb_subset_mask(ecosystem: pd.Series, manipulation: pd.Series) -> np.ndarray:
    """``(N,)`` bool: Ecosystem_type "Agriculture" and a Manipulation that mentions fertilisation.

    "Fertilized", "fertilization", "fertilizer" and the British spellings match; "no fertilization"
    (unfertilised controls of an irrigation study) does not.
    """
    ecosystem = ecosystem.fillna("").astype(str).str.strip()
    manipulation = manipulation.fillna("").astype(str)
    return (
        ecosystem.eq("Agriculture")
        & manipulation.str.contains(_FERTILISED)
        & ~manipulation.str.contains(_NOT_FERTILISED)
    ).to_numpy()


def write_srdb_subset(source: Path, out_dir: Path = DATA / "co2_srdb") -> Path:
    """Write the fertilised-agriculture subset of SRDB's ``srdb-data.csv`` (:data:`SRDB_COLUMNS` only).

    Values are copied as text, unchanged. Returns the path of the written CSV.
    """
    raw = pd.read_csv(Path(source), dtype=str, keep_default_na=False, encoding="utf-8")
    _require_columns(raw, SRDB_COLUMNS, str(source))
    subset = raw.loc[srdb_subset_mask(raw["Ecosystem_type"], raw["Manipulation"]), list(SRDB_COLUMNS)]
    out = Path(out_dir) / SRDB_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    subset.to_csv(out, index=False, lineterminator="\n", encoding="utf-8")
    return out


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist.", "Check out the repository's data folder.")
    return pd.read_csv(path, encoding="utf-8", low_memory=False)


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} lacks the column(s) {', '.join(missing)}.", "Use the documented file.")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m soilcarbon_training.ghg.real_data SRDB_CSV [--out DIR]``: regenerate the SRDB subset."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("source", type=Path, help="srdb-data.csv of github.com/bpbond/srdb")
    parser.add_argument("--out", type=Path, default=DATA / "co2_srdb", help="output folder")
    args = parser.parse_args(argv)
    out = write_srdb_subset(args.source, args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
