"""Daily weather for the soil simulator: real station files, and a stochastic generator from normals.

Arrays are site-vectorised: every daily driver is ``(S, D)`` for S sites over D days, with one day-of-year
axis ``(D,)`` shared by all sites.

Potential evapotranspiration is Hargreaves' (FAO-56 eq. 52),
``PET = 0.0023 (Tmean + 17.8) sqrt(Tmax - Tmin) Ra * 0.408`` mm/d with ``Tmean = (Tmax + Tmin) / 2``,
where the extraterrestrial radiation Ra (MJ m-2 d-1) follows FAO-56 eq. 21-25 from latitude and day of
year, and 0.408 converts MJ m-2 to mm of evaporated water.

The weather generator is ours, of the Richardson (1981) WGEN type, parameterised by climate normals
(:class:`ClimateNormals`) instead of station statistics:

Precipitation occurrence is a first-order two-state Markov chain per site. With persistence ``r`` the
    transition probabilities are ``p01 = (1 - r) pi(d)`` and ``p11 = r + (1 - r) pi(d)``, so the lag-1
    autocorrelation of occurrence is ``r`` and the stationary wet-day probability is ``pi(d)``. The
    seasonal cycle ``g(d) = 1 + s cos(2 pi (d - wettest_doy) / 365)`` (s = precip_seasonality) is shared
    between occurrence and amount: ``pi(d) = pi (1 + a cos(...))`` with ``a = min(s / 2, 0.95 / pi - 1)``
    (the annual mean of pi(d) stays the normal's wet-day fraction, and pi(d) <= 0.95), and the mean
    amount on a wet day is ``mu(d) = mu0 g(d) / (1 + a cos(...))``, so the expected daily total
    follows ``g(d)``. ``mu0`` is set so that the expected annual total, summed with the chain's periodic
    marginal wet probability ``q(d) = r q(d - 1) + (1 - r) pi(d)``, equals the normal's ``map``.
    Wet-day amounts are gamma distributed with shape 0.75 (the usual range of fitted WGEN shapes is
    0.6-0.9; a shape below 1 gives the skewed, mostly-light daily rain of real records).
Temperature: ``Tmean = mat + t_amplitude cos(2 pi (d - warmest_doy) / 365) + x`` with an AR(1) anomaly
    ``x(d) = 0.7 x(d - 1) + e``, stationary standard deviation 2 degC, shared by Tmin and Tmax.
    ``Tmax = Tmean + DTR / 2 - 1.0 (w - q(d))`` and ``Tmin = Tmean - DTR / 2 + 0.5 (w - q(d))`` where w is
    1 on wet days: wet days are 1 degC cooler in Tmax and 0.5 degC warmer in Tmin than dry days, and
    because the expected value of ``w - q(d)`` is 0 the mean climate stays the normal's.

Every year has 365 days (``doy`` 1..365 repeating); the generator loops over days only, every operation
inside is vectorised over sites, and years are generated one at a time to bound memory.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from soilcarbon_core.errors import DataNotFoundError, InputError

#: FAO-56 solar constant, MJ m-2 min-1.
SOLAR_CONSTANT = 0.0820
#: MJ m-2 of radiation -> mm of evaporated water (1 / latent heat of vaporisation, FAO-56 eq. 20).
MJ_TO_MM = 0.408

#: Gaps (missing rows or values) of at most this many consecutive days are filled when reading a file.
MAX_GAP_DAYS = 5
#: A weather file must cover at least one year.
MIN_DAYS = 365

#: Accepted column names (compared case-insensitively, surrounding spaces ignored), by role.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "day", "days", "datetime", "time"),
    "tmin": tuple(
        """tmin tmin_c min_temp mint mint_wrcc t_min temp_min tmn min_temperature minimum_temperature
        tasmin""".split()
    ),
    "tmax": tuple(
        """tmax tmax_c max_temp maxt maxt_wrcc t_max temp_max tmx max_temperature maximum_temperature
        tasmax""".split()
    ),
    "precip": tuple(
        "precip prcp rain rainfall precipitation precip_wrcc precip_mm prec ppt pr rain_mm".split()
    ),
}
#: Plausible daily air temperatures, degC (outside: probably Kelvin or Fahrenheit).
_TEMPERATURE_RANGE = (-90.0, 60.0)

#: Generator constants (see the module docstring).
WET_PERSISTENCE = 0.3
GAMMA_SHAPE = 0.75
ANOMALY_PHI = 0.7
ANOMALY_SD = 2.0
WET_TMAX_SHIFT = -1.0
WET_TMIN_SHIFT = 0.5
_MAX_WET_PROBABILITY = 0.95
#: Wet days narrow the diurnal range by 1.5 degC at most, so a mean range of 2 keeps Tmax >= Tmin.
MIN_DIURNAL_RANGE = 2.0
_YEAR = 365


@dataclass(frozen=True)
class DailyWeather:
    """Daily drivers for S sites over D days.

    Attributes:
        tmin: ``(S, D)`` daily minimum air temperature, degC.
        tmax: ``(S, D)`` daily maximum air temperature, degC.
        precip: ``(S, D)`` precipitation, mm/day.
        doy: ``(D,)`` day of year, 1..366.
        latitude: ``(S,)`` degrees north.
        notes: what was done to the data on the way in (e.g. gap filling).
    """

    tmin: np.ndarray
    tmax: np.ndarray
    precip: np.ndarray
    doy: np.ndarray
    latitude: np.ndarray
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        latitude = np.atleast_1d(np.asarray(self.latitude, dtype=float))
        doy = np.asarray(self.doy).astype(int)
        shape = (latitude.size, doy.size)
        for name in ("tmin", "tmax", "precip"):
            values = np.asarray(getattr(self, name))
            if values.dtype.kind != "f":
                values = values.astype(float)
            if values.shape != shape:
                raise InputError(
                    f"Weather '{name}' has shape {values.shape}, expected (sites, days) = {shape}.",
                    "Give one row per latitude and one column per day of year.",
                )
            object.__setattr__(self, name, values)
        if latitude.ndim != 1 or doy.ndim != 1:
            raise InputError(
                "Weather latitude and doy must be one-dimensional.", "Pass (S,) and (D,) arrays."
            )
        if np.any((doy < 1) | (doy > 366)):
            raise InputError("Weather day of year outside 1..366.", "Give days of year counted from 1.")
        _check_latitude(latitude)
        object.__setattr__(self, "latitude", latitude)
        object.__setattr__(self, "doy", doy)
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def sites(self) -> int:
        """S, the number of sites."""
        return self.latitude.size

    @property
    def days(self) -> int:
        """D, the number of days."""
        return self.doy.size

    @property
    def tavg(self) -> np.ndarray:
        """``(S, D)`` daily mean air temperature ``(tmin + tmax) / 2``, degC."""
        return 0.5 * (self.tmin + self.tmax)

    @property
    def pet(self) -> np.ndarray:
        """``(S, D)`` Hargreaves potential evapotranspiration, mm/day (computed on each access)."""
        ra, inverse = _radiation_by_day(self.latitude, self.doy)
        ra = ra.astype(self.tmin.dtype, copy=False)  # float32 weather gets a float32 Ra
        # Expand Ra to (S, D) in the temperatures' memory order (day-major for generated weather).
        day_major = self.tmin.flags.f_contiguous and not self.tmin.flags.c_contiguous
        full = ra.T[inverse].T if day_major else ra[:, inverse]
        return hargreaves_pet(self.tmin, self.tmax, full)

    def take(self, sites: npt.ArrayLike) -> DailyWeather:
        """The weather of a subset of sites: integer indices or an ``(S,)`` boolean mask."""
        index = np.asarray(sites)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return DailyWeather(
            self.tmin[index], self.tmax[index], self.precip[index], self.doy, self.latitude[index], self.notes
        )

    def repeat_sites(self, latitude: npt.ArrayLike) -> DailyWeather:
        """``len(latitude)`` copies of this single-site series, one per given latitude.

        The temperature and precipitation series are the same for every copy (a read-only broadcast
        view, no memory per copy); only the latitude, and so the day length and PET, differ.
        """
        if self.sites != 1:
            raise InputError(
                f"repeat_sites needs a single-site series; this one has {self.sites} sites.",
                "Take one site first with .take([i]).",
            )
        latitude = np.atleast_1d(np.asarray(latitude, dtype=float))
        shape = (latitude.size, self.days)
        return DailyWeather(
            np.broadcast_to(self.tmin, shape),
            np.broadcast_to(self.tmax, shape),
            np.broadcast_to(self.precip, shape),
            self.doy,
            latitude,
            self.notes,
        )


def _check_latitude(latitude: np.ndarray) -> None:
    if not np.all(np.abs(latitude) <= 90):
        raise InputError(
            f"Latitude outside -90..90 degrees: {latitude[~(np.abs(latitude) <= 90)][:3].tolist()}.",
            "Give latitudes in decimal degrees, positive north.",
        )


def extraterrestrial_radiation(latitude: npt.ArrayLike, doy: npt.ArrayLike) -> np.ndarray:
    """``(S, D)`` daily extraterrestrial radiation Ra, MJ m-2 d-1 (FAO-56 eq. 21-25).

    ``Ra = 24 * 60 / pi * Gsc * dr * (ws sin(phi) sin(delta) + cos(phi) cos(delta) sin(ws))`` with
    ``dr = 1 + 0.033 cos(2 pi J / 365)``, ``delta = 0.409 sin(2 pi J / 365 - 1.39)`` and the sunset hour
    angle ``ws = arccos(-tan(phi) tan(delta))``, whose argument is clipped to [-1, 1]: ws = 0 in polar
    night (Ra = 0) and ws = pi in polar day.

    Args:
        latitude: ``(S,)`` degrees north.
        doy: ``(D,)`` day of year J.
    """
    ra, inverse = _radiation_by_day(latitude, doy)
    return ra[:, inverse]


def _radiation_by_day(latitude: npt.ArrayLike, doy: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Ra ``(S, U)`` for the U distinct days of year, and the ``(D,)`` index of each day among them."""
    phi = np.radians(np.atleast_1d(np.asarray(latitude, dtype=float)))[:, None]
    # The trigonometry runs once per distinct day of year; multi-year series repeat them.
    days, inverse = np.unique(np.atleast_1d(np.asarray(doy, dtype=float)), return_inverse=True)
    day_angle = 2.0 * np.pi * days[None, :] / 365.0
    inverse_distance = 1.0 + 0.033 * np.cos(day_angle)
    declination = 0.409 * np.sin(day_angle - 1.39)
    sunset = np.arccos(np.clip(-np.tan(phi) * np.tan(declination), -1.0, 1.0))
    ra = (
        24.0
        * 60.0
        / np.pi
        * SOLAR_CONSTANT
        * inverse_distance
        * (sunset * np.sin(phi) * np.sin(declination) + np.cos(phi) * np.cos(declination) * np.sin(sunset))
    )
    # Rounding leaves about -1e-16 where the sun does not rise.
    return np.maximum(ra, 0.0), inverse


def hargreaves_pet(tmin: npt.ArrayLike, tmax: npt.ArrayLike, ra: npt.ArrayLike) -> np.ndarray:
    """Hargreaves reference evapotranspiration, mm/day (FAO-56 eq. 52), never negative.

    ``0.0023 (Tmean + 17.8) sqrt(max(Tmax - Tmin, 0)) Ra * 0.408`` with ``Tmean = (Tmax + Tmin) / 2`` in
    degC and Ra in MJ m-2 d-1; arrays broadcast together.
    """
    dtype = np.result_type(tmin, tmax, ra)
    if dtype.kind != "f":  # integers and Python numbers compute in float64; float32 arrays stay float32
        dtype = np.dtype(np.float64)
    tmin, tmax, ra = (np.asarray(x, dtype=dtype) for x in (tmin, tmax, ra))
    # In-place steps: for (S, D) inputs of many sites the temporaries are the memory peak.
    spread = np.asarray(tmax - tmin)
    np.sqrt(np.maximum(spread, 0.0, out=spread), out=spread)
    pet = np.asarray(tmin + tmax)
    pet *= 0.5
    pet += 17.8
    pet = np.multiply(pet, spread, out=pet if pet.shape == spread.shape else None)
    del spread
    pet = np.multiply(pet, ra, out=pet if pet.shape == np.broadcast_shapes(pet.shape, ra.shape) else None)
    pet *= 0.0023 * MJ_TO_MM
    return np.maximum(pet, 0.0, out=pet)


# ---------------------------------------------------------------------------------------------------------
# Weather files


def read_weather_csv(path: str | Path, latitude: float) -> DailyWeather:
    """Read one station's daily weather (S = 1) from a CSV file.

    Columns are found by name, case-insensitively (see :data:`COLUMN_ALIASES`): a date (ISO dates, or
    numbers counting days since 1970-01-01), daily minimum and maximum temperature (degC) and
    precipitation (mm). Rows are sorted by date. Missing days or values in runs of at most
    :data:`MAX_GAP_DAYS` days are filled, temperatures by linear interpolation in time (the nearest value
    at either end of the record) and precipitation with 0, and a note says how many days were filled.

    Raises:
        DataNotFoundError: the file does not exist.
        InputError: a column is missing or unreadable, a gap is longer than MAX_GAP_DAYS, tmin > tmax,
            negative precipitation, implausible temperatures, or fewer than 365 days.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"The weather file '{path}' does not exist.", "Check the path and file name.")
    _check_latitude(np.atleast_1d(float(latitude)))
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(
            f"The weather file '{path}' cannot be read as CSV: {exc}",
            "Save it as comma-separated text with a header row.",
        ) from exc
    columns = {role: _find_column(table, role, path) for role in COLUMN_ALIASES}
    if table.empty:
        raise InputError(
            f"The weather file '{path}' has no rows.", "Give at least one year of daily weather."
        )

    day = _day_numbers(table[columns["date"]], path, columns["date"])
    order = np.argsort(day, kind="stable")
    day = day[order]
    repeated = day[1:][np.diff(day) == 0]
    if repeated.size:
        raise InputError(
            f"The weather file '{path}' has more than one row for {_iso(repeated[0])} "
            f"(column '{columns['date']}').",
            "Keep one row per day.",
        )
    all_days = np.arange(day[0], day[-1] + 1)
    if all_days.size < MIN_DAYS:
        raise InputError(
            f"The weather file '{path}' covers {all_days.size} days (column '{columns['date']}'); "
            f"at least {MIN_DAYS} are needed.",
            "Give at least one full year of daily weather.",
        )
    present = np.zeros(all_days.size, bool)
    present[day - day[0]] = True
    _check_gaps(~present, all_days, path, f"rows (column '{columns['date']}')")

    values: dict[str, np.ndarray] = {}
    filled = ~present
    for role in ("tmin", "tmax", "precip"):
        column = columns[role]
        raw = pd.to_numeric(table[column], errors="coerce").to_numpy(float)[order]
        text = table[column].iloc[order]
        unreadable = np.flatnonzero(np.isnan(raw) & text.notna().to_numpy())
        if unreadable.size:
            raise InputError(
                f"The weather file '{path}' has a value that is not a number in column '{column}' "
                f"on {_iso(day[unreadable[0]])}: {text.iloc[unreadable[0]]!r}.",
                "Use numbers (decimal point) and leave missing values empty.",
            )
        series = np.full(all_days.size, np.nan)
        series[day - day[0]] = raw
        missing = np.isnan(series)
        _check_gaps(missing, all_days, path, f"values in column '{column}'")
        if missing.all():
            raise InputError(f"Column '{column}' of '{path}' is empty.", "Fill in the daily values.")
        if missing.any():
            if role == "precip":
                series[missing] = 0.0
            else:
                series[missing] = np.interp(all_days[missing], all_days[~missing], series[~missing])
        filled = filled | missing
        values[role] = series
    _check_values(values, columns, all_days, path)

    notes: tuple[str, ...] = ()
    if filled.any():
        notes = (
            f"{path.name}: filled {int(filled.sum())} missing days (gaps of at most {MAX_GAP_DAYS} days; "
            "temperatures interpolated linearly, precipitation set to 0)",
        )
    doy = pd.DatetimeIndex(all_days.astype("datetime64[D]")).day_of_year.to_numpy()
    return DailyWeather(
        values["tmin"][None, :],
        values["tmax"][None, :],
        values["precip"][None, :],
        doy,
        np.array([float(latitude)]),
        notes,
    )


def _find_column(table: pd.DataFrame, role: str, path: Path) -> str:
    by_name = {str(c).strip().lower(): c for c in table.columns}
    for alias in COLUMN_ALIASES[role]:
        if alias in by_name:
            return by_name[alias]
    raise InputError(
        f"The weather file '{path}' has no {role} column (columns: {', '.join(map(str, table.columns))}).",
        f"Name the {role} column one of: {', '.join(COLUMN_ALIASES[role])} (any letter case).",
    )


def _day_numbers(column: pd.Series, path: Path, name: str) -> np.ndarray:
    """Days since 1970-01-01 of a date column: ISO dates, or numbers already counting those days."""
    if column.isna().any():
        raise InputError(
            f"The weather file '{path}' has a row without a date (column '{name}', "
            f"line {int(np.argmax(column.isna())) + 2}).",
            "Give every row a date.",
        )
    if pd.api.types.is_numeric_dtype(column):
        numbers = column.to_numpy(float)
        if not np.all(numbers == np.round(numbers)):
            raise InputError(
                f"The date column '{name}' of '{path}' has fractional day numbers.",
                "Give whole days since 1970-01-01, or ISO dates (YYYY-MM-DD).",
            )
        return numbers.astype(np.int64)
    try:
        dates = pd.to_datetime(column.astype(str).str.strip(), format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"The date column '{name}' of '{path}' has values that are not dates: {exc}",
            "Use ISO dates (YYYY-MM-DD) or whole days since 1970-01-01.",
        ) from exc
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    return dates.to_numpy().astype("datetime64[D]").astype(np.int64)


def _iso(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


def _check_gaps(missing: np.ndarray, all_days: np.ndarray, path: Path, what: str) -> None:
    """Raise for the first run of more than MAX_GAP_DAYS consecutive missing days."""
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long = np.flatnonzero(ends - starts > MAX_GAP_DAYS)
    if long.size:
        first, last = starts[long[0]], ends[long[0]] - 1
        raise InputError(
            f"The weather file '{path}' is missing {what} for {last - first + 1} consecutive days, "
            f"{_iso(all_days[first])} to {_iso(all_days[last])}.",
            f"Gaps of up to {MAX_GAP_DAYS} days are filled automatically; fill longer ones from a nearby "
            "station or a reanalysis, or use a period without them.",
        )


def _check_values(
    values: dict[str, np.ndarray], columns: dict[str, str], days: np.ndarray, path: Path
) -> None:
    low, high = _TEMPERATURE_RANGE
    for role in ("tmin", "tmax"):
        bad = np.flatnonzero((values[role] < low) | (values[role] > high))
        if bad.size:
            raise InputError(
                f"Column '{columns[role]}' of '{path}' has {values[role][bad[0]]} on {_iso(days[bad[0]])}, "
                f"outside {low:g}..{high:g}.",
                "Give temperatures in degrees Celsius.",
            )
    swapped = np.flatnonzero(values["tmin"] > values["tmax"])
    if swapped.size:
        raise InputError(
            f"In '{path}', '{columns['tmin']}' exceeds '{columns['tmax']}' on {swapped.size} days, "
            f"first on {_iso(days[swapped[0]])}.",
            "Check that the minimum and maximum temperature columns are not swapped or mislabelled.",
        )
    negative = np.flatnonzero(values["precip"] < 0)
    if negative.size:
        raise InputError(
            f"Column '{columns['precip']}' of '{path}' has negative precipitation "
            f"({values['precip'][negative[0]]}) on {_iso(days[negative[0]])}.",
            "Precipitation is mm per day, zero or more; leave unknown values empty.",
        )


# ---------------------------------------------------------------------------------------------------------
# Weather generator


@dataclass(frozen=True)
class ClimateNormals:
    """Climate normals of S sites, every field ``(S,)``: the parameters of :func:`generate_weather`.

    Attributes:
        mat: mean annual air temperature, degC.
        map: mean annual precipitation, mm.
        t_amplitude: half the annual range of monthly mean temperature, degC.
        warmest_doy: day of year of the temperature maximum.
        diurnal_range: mean Tmax - Tmin, degC (at least 2, so wet days keep Tmax >= Tmin).
        wet_day_fraction: share of days with precipitation, in (0, 0.95].
        precip_seasonality: 0..1 relative amplitude of the seasonal cycle of precipitation.
        wettest_doy: day of year of the precipitation maximum.
        latitude: degrees north.
    """

    mat: np.ndarray
    map: np.ndarray
    t_amplitude: np.ndarray
    warmest_doy: np.ndarray
    diurnal_range: np.ndarray
    wet_day_fraction: np.ndarray
    precip_seasonality: np.ndarray
    wettest_doy: np.ndarray
    latitude: np.ndarray

    def __post_init__(self) -> None:
        arrays = {f.name: np.atleast_1d(np.asarray(getattr(self, f.name), dtype=float)) for f in fields(self)}
        sites = arrays["mat"].shape
        for name, values in arrays.items():
            if values.shape != sites or len(sites) != 1:
                raise InputError(
                    f"Climate normal '{name}' has shape {values.shape}; every normal must be (S,) = {sites}.",
                    "Give one value per site for every field.",
                )
            if not np.all(np.isfinite(values)):
                raise InputError(
                    f"Climate normal '{name}' has missing values.", "Give a value for every site."
                )
            object.__setattr__(self, name, values)
        ranges = {
            "map": (0.0, np.inf),
            "t_amplitude": (0.0, np.inf),
            "diurnal_range": (MIN_DIURNAL_RANGE, np.inf),
            "wet_day_fraction": (1e-3, _MAX_WET_PROBABILITY),
            "precip_seasonality": (0.0, 1.0),
        }
        for name, (low, high) in ranges.items():
            bad = (arrays[name] < low) | (arrays[name] > high)
            if bad.any():
                raise InputError(
                    f"Climate normal '{name}' is {arrays[name][bad][0]:g} at site {int(np.argmax(bad))}, "
                    f"outside {low:g}..{high:g}.",
                    "Correct the value or the units of this normal.",
                )
        _check_latitude(arrays["latitude"])

    @property
    def sites(self) -> int:
        """S, the number of sites."""
        return self.mat.size


def generate_weather(
    normals: ClimateNormals,
    years: int,
    seed: int | np.random.Generator,
    *,
    dtype: npt.DTypeLike = np.float32,
) -> DailyWeather:
    """Stochastic daily weather of ``years`` 365-day years at every site (see the module docstring).

    Args:
        normals: the climate of S sites.
        years: number of years; D = 365 * years, ``doy`` 1..365 repeating.
        seed: an integer seed or a Generator; the same seed (and dtype) gives the same weather.
        dtype: float32 (default) or float64, of the arrays and of the arithmetic. float32 halves the
            memory of large site batches (20,000 sites x 6 years is 175 MB per variable) and the time.

    The arrays are ``(S, D)`` views of day-major ``(D, S)`` storage, so ``weather.tmin[:, d]`` (one day of
    every site) is contiguous.
    """
    if int(years) != years or years < 1:
        raise InputError(f"Weather years must be a whole number of at least 1, not {years}.", "Give e.g. 6.")
    work = np.dtype(dtype)
    if work not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, not {work}")
    years = int(years)
    rng = np.random.default_rng(seed)
    sites = normals.sites

    tables = _DailyTables.build(normals, work)
    persistence, phi = work.type(WET_PERSISTENCE), work.type(ANOMALY_PHI)
    shift_max, shift_min = work.type(WET_TMAX_SHIFT), work.type(WET_TMIN_SHIFT)
    innovation_sd = work.type(ANOMALY_SD * np.sqrt(1.0 - ANOMALY_PHI**2))

    # Day-major storage: one day of every site is contiguous, the access pattern of a daily-step model.
    tmin, tmax = (np.empty((_YEAR * years, sites), dtype=work) for _ in range(2))
    precip = np.zeros((_YEAR * years, sites), dtype=work)
    # Start in the chain's and the AR(1)'s stationary state on the day before 1 January.
    wet = rng.random(sites, dtype=work) < tables.last_marginal
    anomaly = ANOMALY_SD * rng.standard_normal(sites, dtype=work)
    wet_year = np.empty((_YEAR, sites), dtype=bool)
    scratch = np.empty(sites, dtype=work)
    for year in range(years):
        uniform = rng.random((_YEAR, sites), dtype=work)
        innovation = rng.standard_normal((_YEAR, sites), dtype=work)
        innovation *= innovation_sd
        first = year * _YEAR
        for k in range(_YEAR):
            np.multiply(wet, persistence, out=scratch)
            scratch += tables.chain_base[k]
            wet = np.less(uniform[k], scratch, out=wet_year[k])
            anomaly *= phi
            anomaly += innovation[k]
            day_max, day_min = tmax[first + k], tmin[first + k]
            np.add(tables.high[k], anomaly, out=day_max)
            np.add(tables.low[k], anomaly, out=day_min)
            np.multiply(wet, shift_max, out=scratch)
            day_max += scratch
            np.multiply(wet, shift_min, out=scratch)
            day_min += scratch
        # Gamma amounts, mean mu(d), drawn for the wet days only.
        block = precip[first : first + _YEAR].reshape(-1)  # contiguous rows: a view
        wet_days = np.flatnonzero(wet_year)
        amounts = rng.standard_gamma(GAMMA_SHAPE, wet_days.size, dtype=work)
        amounts /= work.type(GAMMA_SHAPE)
        amounts *= tables.mean_amount.reshape(-1)[wet_days]
        block[wet_days] = amounts
    doy = np.tile(np.arange(1, _YEAR + 1), years)
    return DailyWeather(tmin.T, tmax.T, precip.T, doy, normals.latitude)


@dataclass(frozen=True)
class _DailyTables:
    """The deterministic part of the generator for each day of the year, ``(365, S)`` tables.

    chain_base: ``(1 - r) pi(d)``, the wet probability after a dry day (after a wet day add r).
    mean_amount: mu(d), the mean precipitation of a wet day, mm.
    high, low: ``mat + A cos(...) +- DTR / 2 - shift * q(d)``: Tmax and Tmin before the anomaly and the
        wet-day shift, which is centred on its expectation q(d) so it leaves the mean climate unchanged.
    last_marginal: ``(S,)`` q(365), the wet probability of the day before 1 January.
    """

    chain_base: np.ndarray
    mean_amount: np.ndarray
    high: np.ndarray
    low: np.ndarray
    last_marginal: np.ndarray

    @classmethod
    def build(cls, normals: ClimateNormals, dtype: np.dtype) -> _DailyTables:
        """Fill the tables row by row: small per-day vectors stay in cache, no (365, S) temporaries."""
        shape = (_YEAR, normals.sites)
        chain_base, mean_amount, high, low = (np.empty(shape, dtype=dtype) for _ in range(4))
        # cos(2 pi (d - peak) / 365) = cos(a_d) cos(a_peak) + sin(a_d) sin(a_peak): trigonometry on
        # (365,) and (S,) vectors only.
        day_cos, day_sin = _cos_sin(np.arange(1, _YEAR + 1))
        wet_cos, wet_sin = _cos_sin(normals.wettest_doy)
        warm_cos, warm_sin = _cos_sin(normals.warmest_doy)
        wet_fraction, seasonality = normals.wet_day_fraction, normals.precip_seasonality
        amplitude = np.minimum(0.5 * seasonality, _MAX_WET_PROBABILITY / wet_fraction - 1.0)
        for k in range(_YEAR):
            season = day_cos[k] * wet_cos + day_sin[k] * wet_sin
            occurrence = 1.0 + amplitude * season
            chain_base[k] = (1.0 - WET_PERSISTENCE) * wet_fraction * occurrence
            mean_amount[k] = (1.0 + seasonality * season) / occurrence
        # q(d) = r q(d - 1) + (1 - r) pi(d) lags pi(d); a first pass from the annual mean forgets the
        # start (as r**365), the second is the periodic solution.
        marginal = wet_fraction.copy()
        expected_total = np.zeros(normals.sites)
        for passes in range(2):
            for k in range(_YEAR):
                marginal = WET_PERSISTENCE * marginal + chain_base[k]
                if passes:
                    expected_total += marginal * mean_amount[k]
                    season = day_cos[k] * warm_cos + day_sin[k] * warm_sin
                    cycle = normals.mat + normals.t_amplitude * season
                    high[k] = cycle + 0.5 * normals.diurnal_range - WET_TMAX_SHIFT * marginal
                    low[k] = cycle - 0.5 * normals.diurnal_range - WET_TMIN_SHIFT * marginal
        # Scale the amount cycle so the expected annual total sum_d q(d) mu(d) equals the normal.
        mean_amount *= (normals.map / expected_total).astype(dtype)
        return cls(chain_base, mean_amount, high, low, marginal)


def _cos_sin(doy: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and sine of the annual phase angle ``2 pi doy / 365``."""
    angle = 2.0 * np.pi * np.asarray(doy, dtype=float) / _YEAR
    return np.cos(angle), np.sin(angle)
