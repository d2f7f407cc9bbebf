"""Mineral N transformations and the two N2O sources: nitrification (DayCent) and denitrification
(Del Grosso et al. 2000). All pools in kg N/ha of the topsoil layer; concentrations in ug N per g soil
(ppm) where the published curves need them: ppm = kg/ha / (0.1 * BD * depth_cm).

Nitrification (Parton et al. 2001, J. Geophys. Res. 106:17403; METHODS.md step 4):
  rate = min(MAX_NITRIFICATION, 0.15 NH4) * f_pH * max(f_WFPS * f_T, 0.03)
  f_pH = 0.56 + atan(pi * 0.45 * (pH - 5)) / pi
  f_WFPS = 1 / (1 + 30 exp(-9 RWC)) up to field capacity (RWC = relative water content between wilting
  point and field capacity); above field capacity it falls linearly to 0 at saturation (our reading of
  DayCent's drop of nitrification in wet, anaerobic soil);
  f_T = a generalised Poisson curve (DayCent's f_gen_poisson_density) with optimum NIT_T_OPT = 35 C and
  zero at NIT_T_MAX = 58 C; shape c = 1.2, d = 2.5 (ours) give f_T(20 C) = 0.55, f_T(5 C) = 0.09,
  f_T(0 C) = 0.04.
  N2O from nitrification = k_nit * rate, k_nit the calibrated N2O share of nitrified N.

Denitrification (Del Grosso et al. 2000, Global Biogeochem. Cycles 14:1045; METHODS.md step 5), ppm per
day:
  Dtot = min(F_NO3, F_CO2) * F_WFPS
  F_NO3 = 1.556 + 76.91/pi * atan(pi * 0.00222 * (NO3 - 9.23)), F_CO2 = max(0, 0.1 CO2^1.3 - 0.1)
  F_WFPS = max(0, 0.45 + atan(0.6 pi (10 WFPS - x_inf)) / pi), x_inf = 9 - M CO2,
  M = -1.25 min(0.113, D_fc) + 0.145
  N2:N2O = R = max(0.1, F_r(NO3/CO2) F_r(WFPS)), k1 = max(1.5, 38.4 - 350 D_fc),
  F_r(NO3/CO2) = max(0.16 k1, k1 exp(-0.8 NO3/CO2)), F_r(WFPS) = max(0.1, 0.015 WFPS% - 0.32)
  N2O = Dtot / (R + 1), N2 = Dtot - N2O; Dtot is scaled by the calibrated denitrification scaler.
CO2 is heterotrophic respiration of the day (ppm C); D_fc the relative gas diffusivity at field capacity.
"""

from __future__ import annotations

import numpy as np

#: Largest nitrification in a day, kg N/ha (DayCent's ceiling on the daily rate).
MAX_NITRIFICATION = 10.0
#: Generalised Poisson temperature curve of nitrification: optimum, zero point and shape (ours).
NIT_T_OPT, NIT_T_MAX, NIT_SHAPE_C, NIT_SHAPE_D = 35.0, 58.0, 1.2, 2.5


def ppm_per_kg_ha(bulk_density: np.ndarray, depth_cm: float) -> np.ndarray:
    """Factor from kg/ha to ug/g (ppm) in a layer of ``depth_cm`` at ``bulk_density`` g/cm3."""
    return 1.0 / (0.1 * np.asarray(bulk_density) * depth_cm)


def generalised_poisson(x: np.ndarray, opt: float, zero: float, c: float, d: float) -> np.ndarray:
    """DayCent's f_gen_poisson_density: ((zero-x)/(zero-opt))^c exp(c/d (1 - ((zero-x)/(zero-opt))^d))."""
    r = np.clip((zero - np.asarray(x, dtype=np.float64)) / (zero - opt), 0.0, None)
    return r**c * np.exp(c / d * (1.0 - r**d))


def nitrification_temperature(soil_temperature: np.ndarray) -> np.ndarray:
    """f_T of nitrification: 1 at 35 C, 0 at 58 C and above."""
    return generalised_poisson(soil_temperature, NIT_T_OPT, NIT_T_MAX, NIT_SHAPE_C, NIT_SHAPE_D)


def nitrification_ph(ph: np.ndarray) -> np.ndarray:
    """f_pH = 0.56 + atan(pi 0.45 (pH - 5)) / pi."""
    return 0.56 + np.arctan(np.pi * 0.45 * (np.asarray(ph) - 5.0)) / np.pi


def nitrification_water(
    theta: np.ndarray, capacity: np.ndarray, wilting: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """f_WFPS: 1 / (1 + 30 exp(-9 RWC)) up to field capacity, then linear to 0 at saturation."""
    rwc = np.clip((theta - wilting) / np.maximum(capacity - wilting, 1e-6), 0.0, 1.0)
    dry_side = 1.0 / (1.0 + 30.0 * np.exp(-9.0 * rwc))
    wet_fraction = np.clip((phi - theta) / np.maximum(phi - capacity, 1e-6), 0.0, 1.0)
    return np.where(theta <= capacity, dry_side, dry_side * wet_fraction)


def nitrification(
    nh4: np.ndarray, f_ph: np.ndarray, f_water: np.ndarray, f_temperature: np.ndarray
) -> np.ndarray:
    """Nitrified N of the day, kg N/ha: min(MAX, 0.15 NH4) f_pH max(f_WFPS f_T, 0.03)."""
    return np.minimum(MAX_NITRIFICATION, 0.15 * nh4) * f_ph * np.maximum(f_water * f_temperature, 0.03)


def denitrification(
    no3_ppm: np.ndarray, co2_ppm: np.ndarray, wfps: np.ndarray, d_fc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Del Grosso et al. (2000) total denitrification and its N2O part, ppm N per day (before scaling).

    Shapes: all (S,) -> ``(dtot, n2o)`` (S,).
    """
    f_no3 = 1.556 + 76.91 / np.pi * np.arctan(np.pi * 0.00222 * (no3_ppm - 9.23))
    f_co2 = np.maximum(0.0, 0.1 * co2_ppm**1.3 - 0.1)
    m = -1.25 * np.minimum(0.113, d_fc) + 0.145
    x_inf = 9.0 - m * co2_ppm
    f_wfps = np.maximum(0.0, 0.45 + np.arctan(0.6 * np.pi * (10.0 * wfps - x_inf)) / np.pi)
    dtot = np.maximum(np.minimum(f_no3, f_co2), 0.0) * f_wfps
    k1 = np.maximum(1.5, 38.4 - 350.0 * d_fc)
    ratio_no3_co2 = no3_ppm / np.maximum(co2_ppm, 1e-9)
    fr_substrate = np.maximum(0.16 * k1, k1 * np.exp(-0.8 * ratio_no3_co2))
    fr_water = np.maximum(0.1, 0.015 * wfps * 100.0 - 0.32)
    ratio = np.maximum(0.1, fr_substrate * fr_water)
    return dtot, dtot / (ratio + 1.0)
