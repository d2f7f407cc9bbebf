"""The process model against published behaviour, process by process, and its mass balances."""

from __future__ import annotations

import numpy as np
import pytest

from soilcarbon_core.errors import InputError
from soilcarbon_core.ghg.features import CROPS, FERTILISER_TYPES
from soilcarbon_core.ghg.simulator import (
    Management,
    Sites,
    methane,
    nitrogen,
    rothc,
    simulate,
    soil_physics,
    weather_years_needed,
)
from soilcarbon_core.ghg.weather import ClimateNormals, generate_weather


def normals(n: int, mat: float = 12.0, map_: float = 800.0, lat: float = 45.0) -> ClimateNormals:
    full = lambda v: np.full(n, float(v))  # noqa: E731
    return ClimateNormals(
        mat=full(mat),
        map=full(map_),
        t_amplitude=full(9),
        warmest_doy=full(200),
        diurnal_range=full(10),
        wet_day_fraction=full(0.35),
        precip_seasonality=full(0.2),
        wettest_doy=full(200),
        latitude=full(lat),
    )


def sites(n: int, **overrides) -> Sites:
    values = {"clay": 25.0, "sand": 35.0, "soc": 1.5, "ph": 6.5, "bulk_density": 1.35} | overrides
    return Sites(**{k: np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy() for k, v in values.items()})


def management(n: int, n_rate=150.0, fertiliser="urea", crop="maize", **overrides) -> Management:
    crop_code = np.broadcast_to(CROPS.index(crop) if isinstance(crop, str) else np.asarray(crop), (n,))
    values = {
        "n_rate": np.broadcast_to(np.asarray(n_rate, dtype=float), (n,)).copy(),
        "shares": np.tile(FERTILISER_TYPES[fertiliser], (n, 1)),
        "crop": crop_code.copy(),
        "planting_doy": np.full(n, 120),
        "season_days": np.full(n, 140),
        "irrigated": np.zeros(n, bool),
        "flooded": crop_code == CROPS.index("rice"),
        "water_regime": np.ones(n),
    } | overrides
    return Management(**values)


@pytest.fixture(scope="module")
def weather4():
    return generate_weather(normals(4), weather_years_needed(1, 2), seed=3)


# RothC -----------------------------------------------------------------------------------------------


def test_rothc_pools_decay_at_their_published_rates():
    pools = np.diag([1000.0, 1000.0, 1000.0, 1000.0])  # one pool filled per site
    x = np.full(4, 1e12)  # all decomposed C to CO2, so pools only lose
    for _ in range(365):
        rothc.decompose(pools, np.ones(4), x)
    remaining = np.diag(pools) / 1000.0
    np.testing.assert_allclose(remaining, np.exp(-rothc.RATE), rtol=1e-3)
    np.testing.assert_allclose(rothc.RATE, [10.0, 0.3, 0.66, 0.02])


def test_rothc_partition_of_decomposed_carbon():
    clay = np.array([0.0, 23.4, 60.0])
    x = rothc.co2_ratio(clay)
    np.testing.assert_allclose(x[0], 1.67 * 3.45)  # 1.85 + 1.60 at no clay
    pools = np.tile([[0.0], [0.0], [0.0], [500.0]], (1, 3))
    loss, co2, to_bio, to_hum = rothc.decompose(pools, np.full(3, 50.0), x)
    np.testing.assert_allclose(co2 + to_bio + to_hum, loss.sum(axis=0))
    np.testing.assert_allclose(co2 / loss.sum(axis=0), x / (x + 1))
    np.testing.assert_allclose(to_bio / to_hum, 0.46 / 0.54)
    assert co2[0] / loss[:, 0].sum() == pytest.approx(0.852, abs=1e-3)  # sandy soils respire more
    assert np.all(np.diff(co2 / loss.sum(axis=0)) < 0)


def test_rothc_rate_modifiers():
    # a(T): 0 below -5 C, about Q10 2.6 between 10 and 20 C (soil respiration Q10 ~ 2-3).
    assert rothc.temperature_factor(np.array([-6.0]))[0] == 0.0
    a10, a20 = rothc.temperature_factor(np.array([10.0, 20.0]))
    assert a10 == pytest.approx(47.91 / (1 + np.exp(106.06 / 28.27)))
    assert 2.0 < a20 / a10 < 3.0
    smd = rothc.max_deficit(np.array([20.0]), 23.0)[0]
    assert smd == pytest.approx(-(20 + 26 - 4))
    b = rothc.moisture_factor(np.array([0.0, 0.444 * smd, smd]), np.full(3, smd))
    np.testing.assert_allclose(b, [1.0, 1.0, 0.2])
    # bare soil dries to SMDmax / 1.8 at most
    bare = rothc.accumulate_deficit(
        np.zeros(1), np.zeros(1), np.full(1, 500.0), np.full(1, smd), np.zeros(1, bool)
    )
    assert bare[0] == pytest.approx(smd / 1.8)


def test_rothc_inert_matter_and_steady_state():
    assert rothc.inert_organic_matter(np.array([50_000.0]))[0] == pytest.approx(1000 * 0.049 * 50**1.139)
    clay = np.array([15.0, 40.0])
    shares = rothc.steady_state_shares(clay)
    np.testing.assert_allclose(shares.sum(axis=0), 1.0)
    # Feeding the steady-state input keeps the pools where they are.
    active = 30_000.0
    pools = shares * active
    x = rothc.co2_ratio(clay)
    beta_eta = 1.0 / (x + 1.0)
    input_per_year = pools[1] * rothc.RATE[1] / rothc.RESIDUE_SHARES[1]
    start = pools.copy()
    for _ in range(3650):
        rothc.decompose(pools, np.ones(2), x)
        pools += rothc.RESIDUE_SHARES[:, None] * input_per_year * rothc.DAY
    np.testing.assert_allclose(pools, start, rtol=0.02)
    assert np.all(beta_eta < 0.3)


# Soil physics -----------------------------------------------------------------------------------------


def test_saxton_rawls_texture_classes():
    # Saxton & Rawls (2006) Table 3 at 2.5 % OM: sand 5/10 %, loam 14/28 %, clay 30/42 % (WP/FC, vol.).
    capacity, wilting = soil_physics.field_capacity_and_wilting_point(
        np.array([88.0, 40.0, 25.0]), np.array([5.0, 20.0, 50.0]), np.full(3, 2.5 / 1.72)
    )
    np.testing.assert_allclose(wilting, [0.05, 0.14, 0.30], atol=0.01)
    np.testing.assert_allclose(capacity, [0.10, 0.28, 0.42], atol=0.01)


def test_soil_temperature_is_damped_and_lagged():
    doy = np.arange(3 * 365)
    air = 10 + 10 * np.cos(2 * np.pi * (doy - 200) / 365)
    soil = np.empty_like(air)
    t = np.array([air[0]])
    for i, a in enumerate(air):
        t = soil_physics.lag_temperature(t, np.array([a]))
        soil[i] = t[0]
    last = slice(730, 1095)
    assert soil[last].max() - soil[last].min() < air[last].max() - air[last].min()
    assert 1 <= int(np.argmax(soil[last])) - int(np.argmax(air[last])) <= 10


def test_millington_quirk_diffusivity():
    assert soil_physics.relative_diffusivity(np.array([0.2]), np.array([0.5]))[0] == pytest.approx(
        0.3 ** (10 / 3) / 0.25
    )
    assert soil_physics.relative_diffusivity(np.array([0.5]), np.array([0.5]))[0] == 0.0


# N processes ------------------------------------------------------------------------------------------


def test_denitrification_increases_with_wfps():
    wfps = np.linspace(0.4, 1.0, 13)
    n = wfps.size
    dtot, n2o = nitrogen.denitrification(np.full(n, 40.0), np.full(n, 5.0), wfps, np.full(n, 0.05))
    assert dtot[0] == 0.0 or dtot[0] < 0.05 * dtot[-1]
    assert np.all(np.diff(dtot) >= 0) and dtot[-1] > 10 * dtot[n // 2]
    # the N2:N2O ratio grows with WFPS, so N2O is a falling share of the total
    share = n2o[dtot > 0] / dtot[dtot > 0]
    assert np.all(np.diff(share) <= 1e-12)


def test_denitrification_published_limits():
    # F_NO3 saturates near 1.556 + 76.91/2 = 40 ug N/g/d; no CO2, no denitrification.
    dtot, _ = nitrogen.denitrification(np.array([1e6]), np.array([1e6]), np.array([1.0]), np.array([0.0]))
    assert dtot[0] == pytest.approx(
        (1.556 + 76.91 / 2) * (0.45 + np.arctan(0.6 * np.pi * (10 - (9 - 0.145 * 1e6))) / np.pi), rel=1e-3
    )
    assert (
        nitrogen.denitrification(np.array([50.0]), np.array([0.0]), np.array([0.9]), np.array([0.05]))[0][0]
        == 0.0
    )


def test_nitrification_response_curves():
    t = nitrogen.nitrification_temperature(np.array([0.0, 20.0, 35.0, 45.0, 60.0]))
    assert t[2] == pytest.approx(1.0)
    assert t[0] < t[1] < t[2] and t[3] < t[2] and t[4] == 0.0
    ph = nitrogen.nitrification_ph(np.array([4.0, 5.0, 7.0]))
    assert ph[1] == pytest.approx(0.56)
    assert ph[0] < ph[1] < ph[2]
    theta = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    f = nitrogen.nitrification_water(theta, np.full(5, 0.3), np.full(5, 0.1), np.full(5, 0.5))
    assert f[0] == pytest.approx(1 / 31)  # RWC 0 at the wilting point
    assert f[1] < f[2] and f[3] < f[2] and f[4] == 0.0
    assert nitrogen.nitrification(np.array([100.0]), np.ones(1), np.ones(1), np.ones(1))[0] == 10.0


# Whole model ------------------------------------------------------------------------------------------


def test_n2o_increases_with_n_rate(weather4):
    rates = np.array([0.0, 100.0, 200.0, 300.0])
    result = simulate(sites(4), management(4, n_rate=rates), weather4, years=2)
    n2o = result.annual["n2o"].mean(axis=1)
    assert np.all(np.diff(n2o) > 0)
    assert n2o[0] > 0  # background emission from mineralised N
    leaching = result.annual["leaching"].mean(axis=1)
    assert np.all(np.diff(leaching) >= 0)


def test_wetter_soil_denitrifies_more():
    weather = generate_weather(normals(2, map_=600.0), weather_years_needed(1, 1), seed=1)
    dry = simulate(sites(2), management(2), weather, years=1)
    wet = simulate(sites(2), management(2, irrigated=np.ones(2, bool)), weather, years=1)
    assert wet.annual["wfps"].mean() > dry.annual["wfps"].mean()
    assert wet.annual["n2o_denitrification"].mean() > dry.annual["n2o_denitrification"].mean()


def test_upland_soils_take_up_methane_and_paddies_emit(weather4):
    upland = simulate(sites(4), management(4), weather4, years=2)
    assert np.all(upland.annual["ch4"] < 0)
    assert np.all(upland.annual["ch4_emission"] == 0)
    paddy = simulate(
        sites(4), management(4, crop="rice", water_regime=np.array([1.0, 1.0, 0.71, 0.55])), weather4, years=2
    )
    ch4 = paddy.annual["ch4"].mean(axis=1)
    assert np.all(ch4 > 50)  # tens to hundreds of kg CH4-C/ha per season under IPCC Tier 1
    assert ch4[0] > ch4[2] > ch4[3]  # drainage lowers CH4 by the IPCC scaling factors
    tier1 = methane.EF_BASELINE_C * paddy.constants["rice_scaling"] * (140 - 14)
    np.testing.assert_allclose(ch4, tier1, rtol=0.35)


@pytest.mark.parametrize("fertiliser", ["urea", "ammonium_nitrate", "manure", "urea_manure"])
def test_carbon_and_nitrogen_balances_close(weather4, fertiliser):
    crops = np.array([CROPS.index(c) for c in ("maize", "rice", "grassland", "soybean")])
    result = simulate(
        sites(4, soc=np.array([0.8, 1.5, 3.0, 6.0])),
        management(4, fertiliser=fertiliser, crop=crops, irrigated=np.array([True, True, False, False])),
        weather4,
        years=2,
    )
    soil_c = result.balance["soil_c_change"]
    assert np.abs(result.carbon_balance_error()).max() < 1e-6 * np.abs(soil_c).max() + 1e-6
    assert np.abs(result.nitrogen_balance_error()).max() < 1e-6
    assert np.all(result.annual["fertiliser_n"] == pytest.approx(150.0))


def test_records_daily_series(weather4):
    result = simulate(sites(4), management(4), weather4, years=1, record=("wfps", "no3"))
    assert result.daily["wfps"].shape == (4, 365 * 2 + 119)  # spin-up + 1 year from the day-120 planting
    assert np.all((result.daily["wfps"] > 0) & (result.daily["wfps"] <= 1.0 + 1e-6))
    with pytest.raises(InputError, match="Unknown daily variable"):
        simulate(sites(4), management(4), weather4, years=1, record=("nope",))


def test_bad_input_is_named():
    with pytest.raises(InputError, match="n_rate"):
        management(2, n_rate=-5.0)
    with pytest.raises(InputError, match="shares"):
        management(2, shares=np.tile([0.5, 0.0, 0.0, 0.0], (2, 1)))
    with pytest.raises(InputError, match="Clay plus sand"):
        sites(2, clay=60.0, sand=50.0)
    short = generate_weather(normals(2), 2, seed=0)
    with pytest.raises(InputError, match="730 days; 1095 are needed"):
        simulate(sites(2), management(2), short, years=1)
