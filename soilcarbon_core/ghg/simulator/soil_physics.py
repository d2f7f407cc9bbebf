"""Soil water and temperature: texture pedotransfer, the bucket water balance, gas diffusivity.

Sources, equation by equation:

- Water at field capacity (-33 kPa) and wilting point (-1500 kPa) from sand, clay and organic matter:
  Saxton & Rawls (2006, Soil Sci. Soc. Am. J. 70:1569), eqs. 1 and 2 (S, C as fractions, OM in %):
  theta_1500t = -0.024 S + 0.487 C + 0.006 OM + 0.005 S OM - 0.013 C OM + 0.068 S C + 0.031,
  theta_1500 = theta_1500t + 0.14 theta_1500t - 0.02;
  theta_33t = -0.251 S + 0.195 C + 0.011 OM + 0.006 S OM - 0.027 C OM + 0.452 S C + 0.299,
  theta_33 = theta_33t + 1.283 theta_33t^2 - 0.374 theta_33t - 0.015. OM = 1.72 SOC (van Bemmelen).
- Porosity phi = 1 - BD / 2.65 and WFPS = theta / phi (METHODS.md, process model step 1).
- Relative gas diffusivity D/D0 = eps_a^(10/3) / phi^2 with eps_a = phi - theta (Millington & Quirk
  1961), the accepted substitute for the D_fc of Del Grosso et al. (2000).
- Topsoil temperature: the air temperature lagged by a first-order filter,
  T_s(t) = T_s(t-1) + LAG (T_air(t) - T_s(t-1)) (damped and lagged, as in the soil temperature of
  the EPIC/DNDC family; LAG = 0.25 per day is our choice for a 0-20 cm layer).
- Bucket: one layer of the topsoil depth. Rain and irrigation fill it; water above saturation runs off;
  water above field capacity drains at a rate that grows with sand (our choice, k = 0.3 + 0.5 sand);
  evapotranspiration = PET * crop coefficient * a soil-water stress factor that is 1 above 70 % of the
  available water and falls linearly to 0 at the wilting point (FAO-56 chapter 8 form, p = 0.3).
  A flooded paddy is held at saturation and loses PADDY_PERCOLATION mm a day downwards.
"""

from __future__ import annotations

import numpy as np

#: Daily relaxation of topsoil temperature towards air temperature.
TEMPERATURE_LAG = 0.25
#: Percolation under a flooded paddy, mm/day (a common design figure for puddled soils).
PADDY_PERCOLATION = 2.0
#: Share of the available water below which evapotranspiration is limited (FAO-56 p, as 1 - p).
STRESS_THRESHOLD = 0.7


def field_capacity_and_wilting_point(
    sand: np.ndarray, clay: np.ndarray, soc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Volumetric water (m3/m3) at -33 and -1500 kPa (Saxton & Rawls 2006). Inputs in %, shapes (S,)."""
    s, c = np.asarray(sand) / 100.0, np.asarray(clay) / 100.0
    om = np.minimum(1.72 * np.asarray(soc), 8.0)  # the regression was fitted up to 8 % OM
    t1500 = -0.024 * s + 0.487 * c + 0.006 * om + 0.005 * s * om - 0.013 * c * om + 0.068 * s * c + 0.031
    t33 = -0.251 * s + 0.195 * c + 0.011 * om + 0.006 * s * om - 0.027 * c * om + 0.452 * s * c + 0.299
    wilting = t1500 + (0.14 * t1500 - 0.02)
    capacity = t33 + (1.283 * t33**2 - 0.374 * t33 - 0.015)
    return capacity, wilting


def porosity(bulk_density: np.ndarray) -> np.ndarray:
    """Total porosity 1 - BD / 2.65 (particle density of mineral soil, g/cm3)."""
    return 1.0 - np.asarray(bulk_density) / 2.65


def relative_diffusivity(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Millington-Quirk relative gas diffusivity D/D0 = (phi - theta)^(10/3) / phi^2."""
    air = np.clip(phi - theta, 0.0, None)
    return air ** (10.0 / 3.0) / phi**2


def lag_temperature(soil: np.ndarray, air: np.ndarray) -> np.ndarray:
    """One day of the first-order lag of topsoil temperature behind air temperature."""
    return soil + TEMPERATURE_LAG * (air - soil)


def drainage_rate(sand: np.ndarray) -> np.ndarray:
    """Share of the water above field capacity that drains in a day (faster in sandy soils)."""
    return 0.3 + 0.5 * np.asarray(sand) / 100.0


def water_stress(theta: np.ndarray, capacity: np.ndarray, wilting: np.ndarray) -> np.ndarray:
    """Evapotranspiration factor: 1 above 70 % of the available water, linear to 0 at wilting point."""
    available = (theta - wilting) / np.maximum(capacity - wilting, 1e-6)
    return np.clip(available / STRESS_THRESHOLD, 0.0, 1.0)
