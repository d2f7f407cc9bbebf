"""RothC 26.3 soil organic carbon pools and heterotrophic CO2, applied with a daily step.

Coleman & Jenkinson (1996, RothC-26.3, in NATO ASI I 38:237), equation by equation (METHODS.md, step 2):

- Temperature: a = 47.91 / (1 + exp(106.06 / (T + 18.27))) for T > -5 C (air temperature), else 0.
- Moisture: the topsoil moisture deficit (TSMD, mm, <= 0) accumulates rain + irrigation - PET (RothC's
  0.75 x open-pan evaporation is taken as PET) and is bounded below by
  SMDmax = -(20 + 1.3 clay - 0.01 clay^2) * depth / 23 (depth in cm), or SMDmax / 1.8 under bare soil;
  b = 1 while TSMD > 0.444 SMDmax, else 0.2 + 0.8 (SMDmax - TSMD) / (SMDmax - 0.444 SMDmax).
- Plant cover: c = 0.6 while a crop covers the soil, 1.0 when bare.
- Each pool decays by Y(t + dt) = Y(t) exp(-a b c k dt) with k = 10, 0.3, 0.66, 0.02 per year for DPM,
  RPM, BIO and HUM; dt = 1/365.
- Decomposed C splits by x = 1.67 (1.85 + 1.60 exp(-0.0786 clay)) into CO2 x/(x + 1), BIO 0.46/(x + 1)
  and HUM 0.54/(x + 1).
- Inert organic matter IOM = 0.049 SOC^1.139 (t C/ha, Falloon et al. 1998).
- Plant residues enter as DPM:RPM = 1.44 (agricultural crops); farmyard manure 49 % DPM, 49 % RPM, 2 % HUM.

Our additions, documented as such:

- Flooded paddy: decomposition is slowed by FLOODED_FACTOR (anaerobic conditions; RothC itself is an
  upland model, and paddy versions such as Shirato & Yokozawa 2005 slow decomposition while flooded).
- Initial pools: the measured SOC minus IOM is split in the proportions of the RothC steady state for a
  residue input at DPM:RPM = 1.44 (derived in :func:`steady_state_shares`), so simulations start near
  equilibrium instead of needing a centuries-long spin-up.

Pools are held in kg C/ha, shape (4, S) in the order DPM, RPM, BIO, HUM.
"""

from __future__ import annotations

import numpy as np

POOLS = ("DPM", "RPM", "BIO", "HUM")
#: Decomposition rate constants, per year.
RATE = np.array([10.0, 0.3, 0.66, 0.02])
#: DPM:RPM ratio of crop residues, and the resulting shares of residue C.
DPM_RPM_CROP = 1.44
RESIDUE_SHARES = np.array([DPM_RPM_CROP / (1 + DPM_RPM_CROP), 1 / (1 + DPM_RPM_CROP), 0.0, 0.0])
#: Farmyard manure shares of C (DPM, RPM, BIO, HUM).
MANURE_SHARES = np.array([0.49, 0.49, 0.0, 0.02])
COVER_FACTOR = 0.6
FLOODED_FACTOR = 0.6
DAY = 1.0 / 365.0


def temperature_factor(temperature: np.ndarray) -> np.ndarray:
    """RothC rate modifier a(T); 0 at or below -5 C."""
    t = np.asarray(temperature, dtype=np.float64)
    safe = np.where(t > -5.0, t, 0.0)
    return np.where(t > -5.0, 47.91 / (1.0 + np.exp(106.06 / (safe + 18.27))), 0.0)


def max_deficit(clay: np.ndarray, depth_cm: float) -> np.ndarray:
    """SMDmax (mm, negative) of a covered topsoil of ``depth_cm``."""
    clay = np.asarray(clay, dtype=np.float64)
    return -(20.0 + 1.3 * clay - 0.01 * clay**2) * depth_cm / 23.0


def accumulate_deficit(
    deficit: np.ndarray, water_in: np.ndarray, pet: np.ndarray, smd_max: np.ndarray, covered: np.ndarray
) -> np.ndarray:
    """One day of the TSMD: ``deficit + water_in - pet`` bounded to [SMDmax (or SMDmax/1.8 bare), 0]."""
    floor = np.where(covered, smd_max, smd_max / 1.8)
    return np.clip(deficit + water_in - pet, floor, 0.0)


def moisture_factor(deficit: np.ndarray, smd_max: np.ndarray) -> np.ndarray:
    """RothC rate modifier b(TSMD)."""
    knee = 0.444 * smd_max
    dry = 0.2 + 0.8 * (smd_max - deficit) / (smd_max - knee)
    return np.where(deficit > knee, 1.0, dry)


def co2_ratio(clay: np.ndarray) -> np.ndarray:
    """x = CO2 / (BIO + HUM) of decomposed C: 1.67 (1.85 + 1.60 exp(-0.0786 clay))."""
    return 1.67 * (1.85 + 1.60 * np.exp(-0.0786 * np.asarray(clay, dtype=np.float64)))


def inert_organic_matter(soc_stock: np.ndarray) -> np.ndarray:
    """IOM (kg C/ha) from total SOC (kg C/ha), Falloon et al. (1998): 0.049 SOC^1.139 in t C/ha."""
    return 1000.0 * 0.049 * (np.asarray(soc_stock) / 1000.0) ** 1.139


def steady_state_shares(clay: np.ndarray) -> np.ndarray:
    r"""Shares (4, S) of active SOC in DPM, RPM, BIO, HUM at RothC steady state under residue input.

    With input I split into DPM and RPM by 1.44:1, the decay fluxes at steady state are F_DPM = I_DPM,
    F_RPM = I_RPM, and with beta = 0.46/(x+1), eta = 0.54/(x+1) the recycled fluxes are F_BIO = beta S,
    F_HUM = eta S where S = I / (1 - beta - eta) is the total decay flux. Pool sizes are F_i / k_i
    (the rate modifiers scale all pools alike, so shares do not depend on climate).
    """
    x = co2_ratio(clay)
    beta, eta = 0.46 / (x + 1.0), 0.54 / (x + 1.0)
    total_flux = 1.0 / (1.0 - beta - eta)
    flux = np.stack(
        [
            np.full_like(x, RESIDUE_SHARES[0]),
            np.full_like(x, RESIDUE_SHARES[1]),
            beta * total_flux,
            eta * total_flux,
        ]
    )
    stock = flux / RATE[:, None]
    return stock / stock.sum(axis=0)


def decompose(
    pools: np.ndarray, rate_modifier: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One day of decay of every pool.

    Args:
        pools: (4, S) kg C/ha, updated in place (losses removed, new BIO and HUM added).
        rate_modifier: (S,) a * b * c (* the flooded factor).
        x: (S,) the CO2 : (BIO + HUM) ratio.

    Returns:
        ``(loss, co2, to_bio, to_hum)``: the C decomposed from each pool (4, S), and the CO2-C, new BIO-C
        and new HUM-C (S,), all kg C/ha for the day. ``loss.sum(0) == co2 + to_bio + to_hum``.
    """
    loss = pools * -np.expm1(-RATE[:, None] * rate_modifier[None, :] * DAY)
    decomposed = loss.sum(axis=0)
    co2 = decomposed * x / (x + 1.0)
    to_bio = decomposed * 0.46 / (x + 1.0)
    to_hum = decomposed - co2 - to_bio
    pools -= loss
    pools[2] += to_bio
    pools[3] += to_hum
    return loss, co2, to_bio, to_hum
