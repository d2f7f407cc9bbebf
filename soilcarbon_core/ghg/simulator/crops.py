"""Crop parameters of the simulator (our parameterisation, typical values of the agronomic literature).

Per crop: residue plus root C returned to the soil at full N supply (t C/ha/yr), its C:N ratio, the N
taken up from the soil over a season (kg N/ha), the crop coefficient at full canopy (FAO-56 Table 12
mid-season Kc) and whether the soil stays covered all year (grassland).
Residue C at lower N supply falls linearly to RESIDUE_AT_ZERO_N of the full value, a plain yield response.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soilcarbon_core.ghg.features import CROPS


@dataclass(frozen=True)
class CropParameters:
    residue_c: float
    residue_cn: float
    n_demand: float
    kc_mid: float
    perennial_cover: bool


CROP_PARAMETERS: dict[str, CropParameters] = {
    "maize": CropParameters(3.0, 60.0, 180.0, 1.20, False),
    "wheat": CropParameters(2.4, 80.0, 140.0, 1.15, False),
    "rice": CropParameters(2.2, 60.0, 110.0, 1.20, False),
    "soybean": CropParameters(1.6, 25.0, 80.0, 1.15, False),
    "vegetables": CropParameters(1.0, 15.0, 140.0, 1.05, False),
    "grassland": CropParameters(3.0, 25.0, 180.0, 1.00, True),
}
RESIDUE_AT_ZERO_N = 0.6
#: Crop coefficient of bare soil (evaporation only).
KC_BARE = 0.4


def crop_table(field: str, crop: np.ndarray) -> np.ndarray:
    """The value of one CropParameters field for each site's crop code (S,)."""
    values = np.array([getattr(CROP_PARAMETERS[name], field) for name in CROPS], dtype=np.float64)
    return values[np.asarray(crop, dtype=np.int64)]


def residue_carbon(crop: np.ndarray, n_rate: np.ndarray) -> np.ndarray:
    """Residue C returned at harvest, kg C/ha: full value at N rate >= demand, down to 60 % at no N."""
    supply = np.clip(np.asarray(n_rate) / crop_table("n_demand", crop), 0.0, 1.0)
    return 1000.0 * crop_table("residue_c", crop) * (RESIDUE_AT_ZERO_N + (1 - RESIDUE_AT_ZERO_N) * supply)
