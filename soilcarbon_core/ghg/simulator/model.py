"""The daily process model: sites x days, vectorised over sites with numpy.

One day, in order (the modules cited hold each equation and its source):

1. Management events. Mineral N is applied in two equal doses, at planting and 30 days later; manure
   at planting. Losses as NH3 (+ NOx) follow the IPCC 2019 disaggregated FracGASF/FracGASM: 15 % of
   urea N (at hydrolysis), 8 % of ammonium, 1 % of nitrate, 21 % of manure N. Manure N is 40 %
   ammoniacal and 60 % organic at C:N 15. Residues return at harvest (:mod:`.crops`).
2. Irrigation (irrigated sites, in season) refills to field capacity when half the available water is
   used; a paddy is flooded from planting to 14 days before harvest.
3. Bucket water balance and topsoil temperature (:mod:`.soil_physics`).
4. RothC decomposition (:mod:`.rothc`). Organic N follows C: each pool carries its own N; decomposed N
   is released and the new BIO and HUM take N at C:N 8.5 (net mineralisation = released - taken; when
   mineral N cannot meet immobilisation the new material is N-poorer, so N is conserved exactly).
5. Urea hydrolysis (rate 0.4/day x clip(T/20, 0.1, 1.5), ours), plant uptake (season demand spread as
   a sine over the season, at most 80 % of mineral N a day), nitrification, denitrification
   (:mod:`.nitrogen`), nitrate leaching with drainage (complete mixing of the layer's water).
6. CH4: upland uptake, or flooded-rice emission taken from the day's decomposed C (:mod:`.methane`).

Each site's year starts at its planting day, so a season is never cut by the calendar: site-year y
covers days [p + 365 (spinup + y), p + 365 (spinup + y + 1)) where p is the day of the first planting
in the weather series (the series may start on any day of the year; years are counted as 365 days).
The weather therefore needs spinup + years + 1 years.

Carbon balance: change of SOC = residue C + manure C - CO2-C - CH4-C emitted (oxidised atmospheric CH4
is not soil C). Nitrogen balance: change of (organic N + NH4 + NO3 + urea) = fertiliser N + residue N -
uptake - leaching - NH3 - N2O - N2. Both close to rounding (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from soilcarbon_core.errors import InputError
from soilcarbon_core.ghg.features import CROPS
from soilcarbon_core.ghg.simulator import methane, nitrogen, rothc, soil_physics
from soilcarbon_core.ghg.simulator.crops import KC_BARE, crop_table, residue_carbon
from soilcarbon_core.progress import ProgressCallback, silent
from soilcarbon_core.settings import JsonSettings

#: C:N of the soil's BIO and HUM pools (Bradbury et al. 1993, SUNDIAL).
SOIL_CN = 8.5
MANURE_CN = 15.0
MANURE_AMMONIACAL = 0.4
#: IPCC 2019 FracGASF (urea, ammonium-based, nitrate-based) and FracGASM.
VOLATILISED = {"urea": 0.15, "ammonium": 0.08, "nitrate": 0.01, "manure": 0.21}
SECOND_DOSE_DAY = 30
DRAINED_BEFORE_HARVEST = 14
RICE = CROPS.index("rice")
#: Dry matter of farmyard manure per kg of its C (C is about 35 % of manure dry matter).
MANURE_DM_PER_C = 1.0 / 0.35

OUTPUTS = (
    "n2o",
    "n2o_nitrification",
    "n2o_denitrification",
    "n2",
    "co2",
    "ch4",
    "ch4_emission",
    "ch4_uptake",
    "nh3",
    "leaching",
    "uptake",
    "mineralisation",
    "nitrified",
    "drainage",
    "irrigation",
    "fertiliser_n",
    "residue_c",
    "residue_n",
    "manure_c",
    "wfps",
)
SEASON_OUTPUTS = ("n2o", "co2", "ch4")
DAILY = ("wfps", "theta", "soil_temperature", "nh4", "no3", "n2o", "co2", "ch4", "soc")


@dataclass
class ProcessParameters(JsonSettings):
    """The free scalars of the model; the defaults are the values calibrated to IPCC 2019 Tier 1
    (see training/soilcarbon_training/ghg/calibration.py and docs/ghg.md)."""

    n2o_nitrification_share: float = 3.0e-4
    denitrification_scaler: float = 0.6799
    rice_ch4_scaler: float = 0.9640
    upland_ch4_scaler: float = 1.0


@dataclass(frozen=True)
class Sites:
    """Soil of S sites, every field (S,): clay, sand, SOC in %, pH, bulk density g/cm3."""

    clay: np.ndarray
    sand: np.ndarray
    soc: np.ndarray
    ph: np.ndarray
    bulk_density: np.ndarray
    depth_cm: float = 20.0

    def __post_init__(self) -> None:
        _check_ranges(
            "soil",
            {
                "clay": (self.clay, 0, 100),
                "sand": (self.sand, 0, 100),
                "soc": (self.soc, 0.01, 60),
                "ph": (self.ph, 2, 11),
                "bulk_density": (self.bulk_density, 0.1, 2.2),
            },
        )
        if np.any(np.asarray(self.clay) + np.asarray(self.sand) > 100):
            raise InputError("Clay plus sand exceeds 100 % at some sites.", "Check the texture fields.")

    @property
    def count(self) -> int:
        return int(np.asarray(self.clay).size)


@dataclass(frozen=True)
class Management:
    """Management of S sites, every field (S,) except ``shares`` (S, 4: urea, ammonium, nitrate, organic).

    ``water_regime`` is the IPCC SF_w of a flooded paddy (1 elsewhere).
    """

    n_rate: np.ndarray
    shares: np.ndarray
    crop: np.ndarray
    planting_doy: np.ndarray
    season_days: np.ndarray
    irrigated: np.ndarray
    flooded: np.ndarray
    water_regime: np.ndarray

    def __post_init__(self) -> None:
        _check_ranges(
            "management",
            {
                "n_rate": (self.n_rate, 0, 1500),
                "crop": (self.crop, 0, len(CROPS) - 1),
                "planting_doy": (self.planting_doy, 1, 365),
                "season_days": (self.season_days, 30, 364),
                "water_regime": (self.water_regime, 0, 1),
            },
        )
        shares = np.asarray(self.shares)
        if shares.ndim != 2 or shares.shape[1] != 4 or np.any(shares < 0):
            raise InputError("Fertiliser shares must be (sites, 4) and not negative.", "Give urea,")
        if np.any(np.abs(shares.sum(axis=1) - 1) > 1e-6):
            raise InputError(
                "The fertiliser shares (urea, ammonium, nitrate, organic) must sum to 1 at every site.",
                "Use soilcarbon_core.ghg.features.fertiliser_shares to get them from a fertiliser type.",
            )


@dataclass
class SimulationResult:
    """Per site-year totals: ``annual[name]`` and ``season[name]`` (S, Y); kg N/ha, kg C/ha, mm; WFPS is
    the annual mean. ``daily[name]`` (S, days simulated) for the variables asked for. ``balance`` holds, per
    site-year, the pool changes and the net fluxes whose difference is the mass-balance error.
    ``constants`` (S,): the soil's field capacity, wilting point, porosity, D_fc and the paddy's IPCC
    scaling SF_w x SF_o."""

    annual: dict[str, np.ndarray]
    season: dict[str, np.ndarray]
    daily: dict[str, np.ndarray] = field(default_factory=dict)
    balance: dict[str, np.ndarray] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)

    def carbon_balance_error(self) -> np.ndarray:
        """Change of soil C minus (inputs - CO2 - CH4 emitted), kg C/ha, (S, Y)."""
        a = self.annual
        net = a["residue_c"] + a["manure_c"] - a["co2"] - a["ch4_emission"]
        return self.balance["soil_c_change"] - net

    def nitrogen_balance_error(self) -> np.ndarray:
        """Change of soil N minus (inputs - outputs), kg N/ha, (S, Y)."""
        a = self.annual
        net = a["fertiliser_n"] + a["residue_n"] - a["uptake"] - a["leaching"] - a["nh3"] - a["n2o"] - a["n2"]
        return self.balance["soil_n_change"] - net


def _check_ranges(what: str, checks: dict[str, tuple[np.ndarray, float, float]]) -> None:
    for name, (values, low, high) in checks.items():
        values = np.asarray(values, dtype=np.float64)
        bad = ~np.isfinite(values) | (values < low) | (values > high)
        if np.any(bad):
            raise InputError(
                f"{what.capitalize()} field {name!r} is outside [{low}, {high}] or missing at "
                f"{int(bad.sum())} site(s) (first: {values[bad][0]}).",
                f"Fix {name!r} or leave it empty for the documented default.",
            )


def weather_years_needed(spinup_years: int, years: int) -> int:
    """Years of daily weather :func:`simulate` needs to report ``years`` site-years."""
    return spinup_years + years + 1


def simulate(
    sites: Sites,
    management: Management,
    weather,
    parameters: ProcessParameters | None = None,
    *,
    years: int,
    spinup_years: int = 1,
    record: tuple[str, ...] = (),
    progress: ProgressCallback = silent,
) -> SimulationResult:
    """Run the model for ``spinup_years + years`` planting-years at every site.

    Args:
        sites, management: S sites.
        weather: daily drivers with ``tavg``, ``precip``, ``pet`` (S, D) and ``doy`` (D,), D >= 365 x
            :func:`weather_years_needed` (e.g. :class:`soilcarbon_core.ghg.weather.DailyWeather`).
        parameters: the calibrated scalars (defaults when None).
        years: site-years reported per site.
        record: daily variables to keep, any of ``wfps``, ``theta``, ``soil_temperature``, ``nh4``,
            ``no3``, ``n2o``, ``co2``, ``ch4``, ``soc`` (kg C/ha incl. IOM).
        progress: called about every 10 % of the days; it may raise Cancelled.
    """
    p = parameters or ProcessParameters()
    unknown = [name for name in record if name not in DAILY]
    if unknown:
        raise InputError(f"Unknown daily variable {unknown[0]!r}.", f"Record any of: {', '.join(DAILY)}.")
    s = sites.count
    # Day-major (D, S) copies: the loop reads one day of every site at a time.
    tavg, precip, pet = (
        np.ascontiguousarray(np.asarray(getattr(weather, name), dtype=np.float64).T)
        for name in ("tavg", "precip", "pet")
    )
    days = tavg.shape[0]
    if tavg.shape[1] != s or management.n_rate.shape[0] != s:
        raise InputError(
            f"Weather has {tavg.shape[1]} sites, soil {s}, management {management.n_rate.shape[0]}.",
            "Give one weather series per site (DailyWeather.repeat_sites for one station).",
        )
    needed = 365 * weather_years_needed(spinup_years, years)
    if days < needed:
        raise InputError(
            f"The weather covers {days} days; {needed} are needed for {spinup_years} spin-up and {years} "
            "reported year(s) (each site's year starts at its planting day).",
            "Give a longer daily series, or fewer years.",
        )
    d_mm = sites.depth_cm * 10.0
    bd = np.asarray(sites.bulk_density, dtype=np.float64)
    phi = soil_physics.porosity(bd)
    capacity, wilting = soil_physics.field_capacity_and_wilting_point(sites.sand, sites.clay, sites.soc)
    capacity = np.minimum(capacity, phi - 0.02)
    wilting = np.minimum(wilting, capacity - 0.03)
    d_fc = soil_physics.relative_diffusivity(capacity, phi)
    k_drain = soil_physics.drainage_rate(sites.sand)
    smd_max = rothc.max_deficit(sites.clay, sites.depth_cm)
    x_ratio = rothc.co2_ratio(sites.clay)
    to_ppm = nitrogen.ppm_per_kg_ha(bd, sites.depth_cm)
    f_ph = nitrogen.nitrification_ph(sites.ph)

    crop = np.asarray(management.crop, dtype=np.int64)
    planting = np.asarray(management.planting_doy, dtype=np.int64)
    season_days = np.asarray(management.season_days, dtype=np.int64)
    n_rate = np.asarray(management.n_rate, dtype=np.float64)
    shares = np.asarray(management.shares, dtype=np.float64)
    flooded_site = np.asarray(management.flooded, dtype=bool) & (crop == RICE)
    irrigated = np.asarray(management.irrigated, dtype=bool)
    perennial = crop_table("perennial_cover", crop).astype(bool)
    kc_mid = crop_table("kc_mid", crop)
    n_demand = crop_table("n_demand", crop)
    residue_c_in = residue_carbon(crop, n_rate)
    residue_cn = crop_table("residue_cn", crop)
    manure_n = n_rate * shares[:, 3]
    manure_c = MANURE_CN * manure_n  # C:N 15 on the manure's total N
    # IPCC SF_o: residue straw incorporated shortly (< 30 days) or long before the next planting.
    fallow = 365 - season_days
    cfoa_straw = np.where(fallow < 30, methane.CFOA_STRAW, 0.19)
    rice_scaling = np.asarray(management.water_regime, dtype=np.float64) * (
        (
            1.0
            + residue_c_in / 1000 / methane.RESIDUE_C_FRACTION * cfoa_straw
            + manure_c / 1000 * MANURE_DM_PER_C * methane.CFOA_MANURE
        )
        ** 0.59
    )

    # State.
    soc_stock = np.asarray(sites.soc) * bd * sites.depth_cm * 1000.0  # kg C/ha
    iom = rothc.inert_organic_matter(soc_stock)
    pools_c = rothc.steady_state_shares(sites.clay) * (soc_stock - iom)
    cn = np.stack([residue_cn, residue_cn, np.full(s, SOIL_CN), np.full(s, SOIL_CN)])
    pools_n = pools_c / cn
    theta = capacity.copy()
    deficit = np.zeros(s)
    soil_t = tavg[:30].mean(axis=0)
    urea = np.zeros(s)
    nh4 = np.full(s, 5.0)
    no3 = np.full(s, 10.0)
    season_t = np.zeros(s)  # running mean topsoil temperature of the current flooded season

    offset = (planting - int(np.asarray(weather.doy)[0])) % 365
    start_day = offset + 365 * spinup_years
    annual = {name: np.zeros((s, years)) for name in OUTPUTS}
    season = {name: np.zeros((s, years)) for name in SEASON_OUTPUTS}
    soil_c_start = np.zeros((s, years))
    soil_n_start = np.zeros((s, years))
    soil_c_end = np.zeros((s, years))
    soil_n_end = np.zeros((s, years))
    rows = np.arange(s)
    sites_planted = np.zeros(s, dtype=bool)  # before the first planting the field lies bare

    def soil_c() -> np.ndarray:
        return pools_c.sum(axis=0) + iom

    def soil_n() -> np.ndarray:
        return pools_n.sum(axis=0) + nh4 + no3 + urea

    last_day = int(start_day.max()) + 365 * years
    daily = {name: np.zeros((s, last_day), dtype=np.float32) for name in record}
    report_every = max(1, last_day // 10)
    for day in range(last_day):
        if day % report_every == 0:
            progress(day / last_day, "simulating soil processes")
        since = day - offset
        year = np.floor_divide(since, 365) - spinup_years
        in_year = (year >= 0) & (year < years)
        yi = np.clip(year, 0, years - 1)
        boundary = in_year & (since % 365 == 0)
        if boundary.any():
            soil_c_start[rows[boundary], yi[boundary]] = soil_c()[boundary]
            soil_n_start[rows[boundary], yi[boundary]] = soil_n()[boundary]
        day_of_season = np.where(since >= 0, since % 365, -1)
        sites_planted |= day_of_season == 0
        in_season = sites_planted & (day_of_season >= 0) & (day_of_season < season_days)
        covered = in_season | (perennial & sites_planted)
        flooded = flooded_site & in_season & (day_of_season < season_days - DRAINED_BEFORE_HARVEST)

        # 1. Management events.
        fert_in = np.zeros(s)
        nh3 = np.zeros(s)
        dose = np.where(day_of_season == 0, 0.5, 0.0) + np.where(day_of_season == SECOND_DOSE_DAY, 0.5, 0.0)
        if dose.any():
            mineral = n_rate * dose
            urea += mineral * shares[:, 0]
            nh4 += mineral * shares[:, 1] * (1 - VOLATILISED["ammonium"])
            no3 += mineral * shares[:, 2] * (1 - VOLATILISED["nitrate"])
            nh3 += mineral * (shares[:, 1] * VOLATILISED["ammonium"] + shares[:, 2] * VOLATILISED["nitrate"])
            fert_in += mineral * shares[:, :3].sum(axis=1)
        manure_day = (day_of_season == 0) & (manure_n > 0)
        manure_c_today = np.where(manure_day, manure_c, 0.0)
        if manure_day.any():
            m_n = np.where(manure_day, manure_n, 0.0)
            nh4 += m_n * MANURE_AMMONIACAL - m_n * VOLATILISED["manure"]
            nh3 += m_n * VOLATILISED["manure"]
            organic_n = m_n * (1 - MANURE_AMMONIACAL)
            pools_c += rothc.MANURE_SHARES[:, None] * manure_c_today
            pools_n += rothc.MANURE_SHARES[:, None] * organic_n
            fert_in += m_n
        harvest = sites_planted & (day_of_season == season_days)
        residue_c_today = np.where(harvest, residue_c_in, 0.0)
        residue_n_today = residue_c_today / residue_cn
        if harvest.any():
            pools_c += rothc.RESIDUE_SHARES[:, None] * residue_c_today
            pools_n += rothc.RESIDUE_SHARES[:, None] * residue_n_today

        # 2-3. Water and temperature.
        t_air, rain, pet_today = tavg[day], precip[day], pet[day]
        refill = irrigated & in_season & (theta < wilting + 0.5 * (capacity - wilting))
        irrigation = np.where(refill, (capacity - theta) * d_mm, 0.0)
        water = theta * d_mm + rain + irrigation
        water -= np.maximum(water - phi * d_mm, 0.0)  # runoff above saturation
        drainage = k_drain * np.maximum(water - capacity * d_mm, 0.0)
        water -= drainage
        canopy = np.where(in_season, np.sin(np.pi * np.clip(day_of_season / season_days, 0, 1)), 0.0)
        canopy = np.where(perennial & sites_planted, np.maximum(canopy, 0.6), canopy)
        kc = KC_BARE + (kc_mid - KC_BARE) * canopy
        theta_now = water / d_mm
        et = pet_today * kc * soil_physics.water_stress(theta_now, capacity, wilting)
        water = np.maximum(water - et, 0.3 * wilting * d_mm)
        # A paddy is held at saturation and percolates; the water that keeps it flooded is supplied.
        drainage = np.where(flooded, soil_physics.PADDY_PERCOLATION, drainage)
        water = np.where(flooded, phi * d_mm, water)
        theta = water / d_mm
        wfps = theta / phi
        soil_t = soil_physics.lag_temperature(soil_t, t_air)

        # 4. RothC, organic N.
        deficit = rothc.accumulate_deficit(deficit, rain + irrigation, pet_today, smd_max, covered)
        deficit = np.where(flooded, 0.0, deficit)
        modifier = (
            rothc.temperature_factor(t_air)
            * rothc.moisture_factor(deficit, smd_max)
            * np.where(covered, rothc.COVER_FACTOR, 1.0)
            * np.where(flooded, rothc.FLOODED_FACTOR, 1.0)
        )
        ratio_n = np.divide(pools_n, pools_c, out=np.zeros_like(pools_n), where=pools_c > 0)
        loss_c, co2, to_bio, to_hum = rothc.decompose(pools_c, modifier, x_ratio)
        released = (loss_c * ratio_n).sum(axis=0)
        pools_n -= loss_c * ratio_n
        demand = (to_bio + to_hum) / SOIL_CN
        net = released - demand
        immobilised = np.minimum(np.maximum(-net, 0.0), nh4 + no3)
        from_nh4 = np.minimum(immobilised, nh4)
        nh4 = nh4 - from_nh4 + np.maximum(net, 0.0)
        no3 = no3 - (immobilised - from_nh4)
        new_n = np.minimum(released + immobilised, demand)  # N-poorer new material when N is short
        share_bio = np.divide(to_bio, to_bio + to_hum, out=np.zeros(s), where=(to_bio + to_hum) > 0)
        pools_n[2] += new_n * share_bio
        pools_n[3] += new_n * (1 - share_bio)
        mineralisation = released - new_n

        # 6a. Rice CH4 comes out of the day's decomposed C.
        season_t = np.where(
            day_of_season == 0, soil_t, season_t + (soil_t - season_t) / np.maximum(day_of_season + 1, 1)
        )
        ch4_emission = np.where(
            flooded,
            np.minimum(methane.rice_emission(rice_scaling, soil_t, season_t, p.rice_ch4_scaler), 0.9 * co2),
            0.0,
        )
        co2 = co2 - ch4_emission

        # 5. Mineral N.
        hydrolysis = urea * 0.4 * np.clip(soil_t / 20.0, 0.1, 1.5)
        urea -= hydrolysis
        nh4 += hydrolysis * (1 - VOLATILISED["urea"])
        nh3 += hydrolysis * VOLATILISED["urea"]
        uptake_share = np.where(
            in_season & ~perennial,
            np.pi / (2 * season_days) * np.sin(np.pi * np.clip(day_of_season, 0, None) / season_days),
            np.where(perennial & sites_planted, 1.0 / 365.0, 0.0),
        )
        mineral_n = nh4 + no3
        uptake = np.minimum(n_demand * uptake_share, 0.8 * mineral_n)
        from_nh4 = uptake * np.divide(nh4, mineral_n, out=np.zeros(s), where=mineral_n > 0)
        nh4 -= from_nh4
        no3 -= uptake - from_nh4
        f_water = nitrogen.nitrification_water(theta, capacity, wilting, phi)
        nitrified = np.minimum(
            nitrogen.nitrification(nh4, f_ph, f_water, nitrogen.nitrification_temperature(soil_t)), nh4
        )
        n2o_nit = p.n2o_nitrification_share * nitrified
        nh4 -= nitrified
        no3 += nitrified - n2o_nit
        dtot_ppm, n2o_den_ppm = nitrogen.denitrification(no3 * to_ppm, co2 * to_ppm, wfps, d_fc)
        dtot = np.minimum(p.denitrification_scaler * dtot_ppm / to_ppm, 0.5 * no3)
        n2o_den = dtot * np.divide(n2o_den_ppm, dtot_ppm, out=np.zeros(s), where=dtot_ppm > 0)
        no3 -= dtot
        leaching = no3 * drainage / (water + drainage)
        no3 -= leaching

        # 6b. Upland CH4 uptake.
        uptake_ch4 = np.where(
            flooded,
            0.0,
            p.upland_ch4_scaler
            * methane.upland_uptake(
                soil_physics.relative_diffusivity(theta, phi),
                d_fc,
                theta,
                capacity,
                wilting,
                soil_t,
                nh4 * to_ppm,
            ),
        )

        # Accounting.
        fluxes = {
            "n2o": n2o_nit + n2o_den,
            "n2o_nitrification": n2o_nit,
            "n2o_denitrification": n2o_den,
            "n2": dtot - n2o_den,
            "co2": co2,
            "ch4": ch4_emission - uptake_ch4,
            "ch4_emission": ch4_emission,
            "ch4_uptake": uptake_ch4,
            "nh3": nh3,
            "leaching": leaching,
            "uptake": uptake,
            "mineralisation": mineralisation,
            "nitrified": nitrified,
            "drainage": drainage,
            "irrigation": irrigation,
            "fertiliser_n": fert_in,
            "residue_c": residue_c_today,
            "residue_n": residue_n_today,
            "manure_c": manure_c_today,
            "wfps": wfps / 365.0,
        }
        target = (rows[in_year], yi[in_year])
        for name, value in fluxes.items():
            annual[name][target] += value[in_year]
        season_mask = in_year & in_season
        season_target = (rows[season_mask], yi[season_mask])
        for name in SEASON_OUTPUTS:
            season[name][season_target] += fluxes[name][season_mask]
        last = in_year & (since % 365 == 364)
        if last.any():
            soil_c_end[rows[last], yi[last]] = soil_c()[last]
            soil_n_end[rows[last], yi[last]] = soil_n()[last]
        if record:
            values = {
                "wfps": wfps,
                "theta": theta,
                "soil_temperature": soil_t,
                "nh4": nh4,
                "no3": no3,
                "n2o": fluxes["n2o"],
                "co2": co2,
                "ch4": fluxes["ch4"],
            }
            for name in record:
                daily[name][:, day] = soil_c() if name == "soc" else values[name]
    progress(1.0, "simulation done")
    balance = {"soil_c_change": soil_c_end - soil_c_start, "soil_n_change": soil_n_end - soil_n_start}
    constants = {
        "field_capacity": capacity,
        "wilting_point": wilting,
        "porosity": phi,
        "d_fc": d_fc,
        "rice_scaling": rice_scaling,
    }
    return SimulationResult(annual=annual, season=season, daily=daily, balance=balance, constants=constants)
