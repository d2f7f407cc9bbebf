"""CH4: oxidation of atmospheric CH4 in upland soils and emission from flooded rice.

Upland uptake after Del Grosso et al. (2000, Global Biogeochem. Cycles 14:999), g CH4-C/ha/day:
  uptake = CH4max * F_water * F_T * F_ag, CH4max = 53.8 D_fc + 0.58 (D_fc: relative gas diffusivity at
  field capacity), F_T = 0.0209 T + 0.845 (>= 0), F_ag the reduction of uptake in cultivated soils.
Our simplifications, documented as such: F_water is the gas-diffusion limit min(1, D/D_fc) on the wet
side times a microbial-stress ramp on the dry side (0 at half the wilting point, 1 midway between
wilting point and field capacity); F_ag = 0.4 (cultivation keeps about 40 % of the uptake of native
soils, Mosier et al. 1991) times an ammonium inhibition 1 / (1 + NH4 / 20 ppm); no uptake while flooded.

Flooded rice after the IPCC 2019 Refinement, Vol. 4, ch. 5.5 (Tier 1), kg CH4/ha/day:
  EF_i = EF_c * SF_w * SF_p * SF_o, EF_c = 1.19 (global default), SF_p = 1 (non-flooded pre-season of
  less than 180 days), SF_o = (1 + sum_i ROA_i CFOA_i)^0.59 with ROA in t dry matter/ha and CFOA = 1.0
  for straw incorporated shortly before cultivation and 0.21 for farmyard manure; SF_w = 1 continuously
  flooded, 0.71 single drainage, 0.55 multiple drainage.
Our addition: the daily flux follows topsoil temperature with Q10 = 2 around the season mean, through a
rice scaler calibrated so that the season total equals Tier 1 on average over the rice scenarios.
Methane C comes out of the C decomposed that day (methanogenesis diverts it from CO2), so the carbon
balance stays closed.
"""

from __future__ import annotations

import numpy as np

#: IPCC 2019 default baseline emission factor for continuously flooded fields without organic
#: amendments, kg CH4/ha/day, and its C equivalent.
EF_BASELINE_CH4 = 1.19
EF_BASELINE_C = EF_BASELINE_CH4 * 12.0 / 16.0
#: Scaling factors for the water regime during cultivation (IPCC 2019, Table 5.12).
WATER_REGIMES = {"continuous": 1.0, "single_drainage": 0.71, "multiple_drainage": 0.55}
#: Conversion factors of organic amendments (IPCC 2019, Table 5.14).
CFOA_STRAW, CFOA_MANURE = 1.0, 0.21
#: Share of C in crop residue dry matter.
RESIDUE_C_FRACTION = 0.45
#: Reduction of CH4 uptake under cultivation (Mosier et al. 1991, as used by Del Grosso et al. 2000).
AGRICULTURE_FACTOR = 0.4
#: Ammonium concentration (ppm) that halves CH4 uptake.
AMMONIUM_INHIBITION_PPM = 20.0


def upland_uptake(
    d_rel: np.ndarray,
    d_fc: np.ndarray,
    theta: np.ndarray,
    capacity: np.ndarray,
    wilting: np.ndarray,
    soil_temperature: np.ndarray,
    nh4_ppm: np.ndarray,
) -> np.ndarray:
    """CH4 oxidation of the day, kg CH4-C/ha (>= 0). Shapes (S,)."""
    ch4_max = 53.8 * d_fc + 0.58
    dry_floor = 0.5 * wilting
    dry_ramp = np.clip((theta - dry_floor) / np.maximum(0.5 * (capacity + wilting) - dry_floor, 1e-6), 0, 1)
    f_water = np.minimum(1.0, d_rel / np.maximum(d_fc, 1e-9)) * dry_ramp
    f_temperature = np.maximum(0.0, 0.0209 * soil_temperature + 0.845)
    f_ag = AGRICULTURE_FACTOR / (1.0 + nh4_ppm / AMMONIUM_INHIBITION_PPM)
    return ch4_max * f_water * f_temperature * f_ag / 1000.0


def organic_amendment_factor(straw_t_dm: np.ndarray, manure_t_dm: np.ndarray) -> np.ndarray:
    """SF_o = (1 + ROA_straw CFOA_straw + ROA_manure CFOA_manure)^0.59."""
    return (1.0 + straw_t_dm * CFOA_STRAW + manure_t_dm * CFOA_MANURE) ** 0.59


def rice_emission(
    scaling: np.ndarray, soil_temperature: np.ndarray, season_temperature: np.ndarray, scaler: float
) -> np.ndarray:
    """CH4-C of a flooded day, kg C/ha: EF_c * (SF_w SF_p SF_o) * Q10^((T - T_season)/10) * scaler."""
    return EF_BASELINE_C * scaling * 2.0 ** ((soil_temperature - season_temperature) / 10.0) * scaler
