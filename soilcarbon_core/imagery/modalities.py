"""The imagery modalities TerraMind reads, their band names and its pretraining statistics.

Statistics are terratorch v1's pretraining means and standard deviations per band (TerraMind does not
normalise its inputs): S2 in reflectance x 10000, S1 backscatter in dB, DEM in metres.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from soilcarbon_core.errors import InputError


@dataclass(frozen=True)
class Modality:
    """One TerraMind input modality: its band names in TerraMind's order and their statistics."""

    name: str
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    aliases: dict[str, str]  #: lower-case alias -> band name

    def band(self, name: str) -> str:
        """The canonical band name for ``name`` (a band name, a Sentinel band id like B8A, a common name)."""
        key = name.strip()
        if key.upper() in self.bands:
            return key.upper()
        found = self.aliases.get(key.lower()) or self.aliases.get(_band_id(key))
        if found is None:
            raise InputError(
                f"'{name}' is not a band of {self.name}.",
                f"Use one of: {', '.join(self.bands)} (or the band ids {', '.join(self.aliases)}).",
            )
        return found

    def statistics(self, bands: list[str] | tuple[str, ...]) -> tuple[list[float], list[float]]:
        index = [self.bands.index(b) for b in bands]
        return [self.mean[i] for i in index], [self.std[i] for i in index]


def _band_id(name: str) -> str:
    """'B8A', 'b08', 'B8' -> 'b8a', 'b8', 'b8' (leading zeros dropped)."""
    match = re.fullmatch(r"[bB]0*(\d+)([aA]?)", name.strip())
    return f"b{match.group(1)}{match.group(2).lower()}" if match else name.strip().lower()


_S2_IDS = ("b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b8a", "b9", "b10", "b11", "b12")
_S2_COMMON = {
    "coastal": "COASTAL_AEROSOL",
    "blue": "BLUE",
    "green": "GREEN",
    "red": "RED",
    "rededge1": "RED_EDGE_1",
    "rededge2": "RED_EDGE_2",
    "rededge3": "RED_EDGE_3",
    "nir": "NIR_BROAD",
    "nir08": "NIR_NARROW",
    "nirnarrow": "NIR_NARROW",
    "watervapor": "WATER_VAPOR",
    "cirrus": "CIRRUS",
    "swir1": "SWIR_1",
    "swir16": "SWIR_1",
    "swir2": "SWIR_2",
    "swir22": "SWIR_2",
}
_S2L1C_BANDS = (
    "COASTAL_AEROSOL",
    "BLUE",
    "GREEN",
    "RED",
    "RED_EDGE_1",
    "RED_EDGE_2",
    "RED_EDGE_3",
    "NIR_BROAD",
    "NIR_NARROW",
    "WATER_VAPOR",
    "CIRRUS",
    "SWIR_1",
    "SWIR_2",
)


def _s2_aliases(bands: tuple[str, ...]) -> dict[str, str]:
    aliases = {i: b for i, b in zip(_S2_IDS, _S2L1C_BANDS, strict=True) if b in bands}
    aliases.update({k: v for k, v in _S2_COMMON.items() if v in bands})
    return aliases


_S2L2A_BANDS = tuple(b for b in _S2L1C_BANDS if b != "CIRRUS")

MODALITIES: dict[str, Modality] = {
    "S2L2A": Modality(
        "S2L2A",
        _S2L2A_BANDS,
        (
            1390.458,
            1503.317,
            1718.197,
            1853.91,
            2199.1,
            2779.975,
            2987.011,
            3083.234,
            3132.22,
            3162.988,
            2424.884,
            1857.648,
        ),
        (
            2106.761,
            2141.107,
            2038.973,
            2134.138,
            2085.321,
            1889.926,
            1820.257,
            1871.918,
            1753.829,
            1797.379,
            1434.261,
            1334.311,
        ),
        _s2_aliases(_S2L2A_BANDS),
    ),
    "S2L1C": Modality(
        "S2L1C",
        _S2L1C_BANDS,
        (
            2357.089,
            2137.385,
            2018.788,
            2082.986,
            2295.651,
            2854.537,
            3122.849,
            3040.56,
            3306.481,
            1473.847,
            506.07,
            2472.825,
            1838.929,
        ),
        (
            1624.683,
            1675.806,
            1557.708,
            1833.702,
            1823.738,
            1733.977,
            1732.131,
            1679.732,
            1727.26,
            1024.687,
            442.165,
            1331.411,
            1160.419,
        ),
        _s2_aliases(_S2L1C_BANDS),
    ),
    "S1GRD": Modality("S1GRD", ("VV", "VH"), (-12.599, -20.293), (5.195, 5.890), {"vv": "VV", "vh": "VH"}),
    "DEM": Modality(
        "DEM", ("DEM",), (670.665,), (951.272,), {"dem": "DEM", "elevation": "DEM", "height": "DEM"}
    ),
}

#: The input names users give for each modality (CLI ``--s2``/``--s1``/``--dem``).
OPTICAL = ("S2L2A", "S2L1C")


def modality(name: str) -> Modality:
    try:
        return MODALITIES[name.upper()]
    except KeyError:
        raise InputError(
            f"Unknown imagery modality '{name}'.", f"Use one of: {', '.join(MODALITIES)}."
        ) from None
