"""Benchmark data sets for SOC prediction, prepared the same way for every model.

Two public data sets (see ``data/*/SOURCE.md``):

Africa (AfSP + AfSIS, R package GSIF): topsoil organic carbon ORCDRC (g/kg) of every horizon whose upper
    depth is at most 5 cm, joined to its site for WGS84 coordinates and the sampling date. Features are
    the other laboratory and horizon properties measured on the same horizon; total nitrogen (NTO) is
    left out because it is nearly collinear with organic carbon (it would leak the target).
La Libertad (Colombia, ISRIC GSIF tutorial): SOC stock 0-30 cm (t/ha) at 118 points in UTM 18N, with
    terrain derivatives, tree cover and four Landsat bands sampled bilinearly at the points by the
    project's own raster sampling (:func:`soilcarbon_core.io.rasters.sample_rasters`).

Every model of the benchmark sees the same :class:`SoilDataset`; tabular baselines get the design matrix
of :func:`feature_matrix`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from soilcarbon_core.errors import DataNotFoundError, InputError
from soilcarbon_core.features import NodeTable, decimal_year
from soilcarbon_core.io.points import read_points
from soilcarbon_core.io.rasters import RasterSource, sample_rasters

#: The repository's bundled data folder.
DATA = Path(__file__).resolve().parents[2] / "data"

#: Horizons whose upper depth (UHDICM, cm) is at most this are topsoil.
TOPSOIL_MAX_UPPER_DEPTH_CM = 5.0
#: Rows ``load_africa`` yields: SOURCE.md counts 23,612 topsoil horizons with ORCDRC, all with site
#: coordinates. 1,180 of them share their SOURCEID with another topsoil horizon (replicate or split
#: topsoil horizons of one profile); they stay separate samples, so ``ids`` are not unique.
AFRICA_TOPSOIL_ROWS = 23_612
#: Horizon columns used as environmental covariates (NTO deliberately absent, see the module docstring):
#: upper/lower depth (cm), pH in water, sand/silt/clay (%), coarse fragments (vol %), bulk density, cation
#: exchange capacity (cmol/kg). BLD is in g/cm3 (values 0.16-2.7), not kg/m3 as SOURCE.md says.
AFRICA_COVARIATES = ["UHDICM", "LHDICM", "PHIHOX", "SNDPPT", "SLTPPT", "CLYPPT", "CRFVOL", "BLD", "CEC"]

LA_LIBERTAD_CRS = "EPSG:32618"
_SRTM = "SRTMGL1_SRTMGL1.2"
#: Covariate name -> raster file of the La Libertad folder.
LA_LIBERTAD_COVARIATES = {
    "elevation": f"{_SRTM}.sdat",
    **{
        name: f"{_SRTM}_{name}.sdat"
        for name in ("slope", "twi", "vbf", "cprof", "devmean", "openn", "openp", "vdepth")
    },
    "treecover2000": "GlobalForestChange2000-2014_treecover2000.tif",
}
#: Spectral band name -> Landsat composite of the La Libertad folder.
LA_LIBERTAD_BANDS = {
    band: f"GlobalForestChange2000-2014_first_{band}L00.tif" for band in ("RED", "NIR", "SW1", "SW2")
}


@dataclass
class SoilDataset:
    """One benchmark data set: N samples with their target and every input stream.

    Attributes:
        name: short name ("africa", "la_libertad").
        coords: ``(N, 2)`` float64: lon/lat in degrees when ``geographic``, else projected x/y in metres.
        geographic: whether ``coords`` are longitude/latitude.
        crs: the CRS of ``coords``, e.g. "EPSG:4326".
        target: ``(N,)`` float64, never NaN.
        target_name, unit: what the target is and its unit.
        covariates: ``(N, F)`` float64 environmental covariates, NaN where missing.
        spectral: ``(N, B)`` float64 imagery bands, or None where there is no imagery.
        elevation: ``(N,)`` metres, or None where unknown.
        slope: ``(N,)`` terrain slope as the grid stores it (radians for the La Libertad SAGA grid), or None.
        dates: ``(N,)`` datetime64[D] sampling dates (NaT where unknown), or None without any dates.
        ids: ``(N,)`` source ids as strings (not necessarily unique).
    """

    name: str
    coords: np.ndarray
    geographic: bool
    crs: str
    target: np.ndarray
    target_name: str
    unit: str
    covariates: pd.DataFrame
    spectral: pd.DataFrame | None
    elevation: np.ndarray | None
    slope: np.ndarray | None
    dates: np.ndarray | None
    ids: np.ndarray

    def __len__(self) -> int:
        return int(self.target.shape[0])


def load_africa(root: Path = DATA / "africa_afsp") -> SoilDataset:
    """Topsoil ORCDRC (g/kg) of the Africa Soil Profiles database, one sample per topsoil horizon.

    Horizons with ``UHDICM <= 5`` cm and a measured ORCDRC are joined (left join on SOURCEID) to their
    site for LONWGS84/LATWGS84 and TIMESTRR (days since 1970-01-01; NaT where missing); rows without
    coordinates are dropped. Rows stay in the horizon file's order.
    """
    root = Path(root)
    sites = pd.read_csv(_existing(root / "afsp_sites.csv.gz"))
    horizons = pd.read_csv(_existing(root / "afsp_horizons.csv.gz"))
    topsoil = horizons[(horizons["UHDICM"] <= TOPSOIL_MAX_UPPER_DEPTH_CM) & horizons["ORCDRC"].notna()]
    if sites["SOURCEID"].duplicated().any():
        raise InputError(f"'{root}/afsp_sites.csv.gz' has duplicate SOURCEIDs.", "Use the unmodified file.")
    table = topsoil.merge(
        sites[["SOURCEID", "LONWGS84", "LATWGS84", "TIMESTRR"]], on="SOURCEID", how="left", validate="m:1"
    )
    table = table[table["LONWGS84"].notna() & table["LATWGS84"].notna()].reset_index(drop=True)

    days = table["TIMESTRR"].to_numpy(dtype=np.float64)
    dates = np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[D]")
    known = np.isfinite(days)
    dates[known] = np.datetime64("1970-01-01", "D") + np.floor(days[known]).astype(np.int64)
    return SoilDataset(
        name="africa",
        coords=table[["LONWGS84", "LATWGS84"]].to_numpy(dtype=np.float64),
        geographic=True,
        crs="EPSG:4326",
        target=table["ORCDRC"].to_numpy(dtype=np.float64),
        target_name="ORCDRC",
        unit="g/kg",
        covariates=table[AFRICA_COVARIATES].astype(np.float64),
        spectral=None,
        elevation=None,
        slope=None,
        dates=dates,
        ids=table["SOURCEID"].astype(str).to_numpy(),
    )


def load_la_libertad(root: Path = DATA / "la_libertad") -> SoilDataset:
    """SOC stock 0-30 cm (t/ha) at the 118 La Libertad points (EPSG:32618).

    Covariates (terrain grids and tree cover) and spectral bands are sampled bilinearly at the points;
    a value is NaN where the point's own cell is nodata (none is, for the bundled grids).
    """
    root = Path(root)
    points = read_points(_existing(root / "COSha30.csv"), crs=LA_LIBERTAD_CRS)
    target = pd.to_numeric(points.attributes["COSha30"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(target).any():
        raise InputError(f"'{root}/COSha30.csv' has missing COSha30 values.", "Use the unmodified file.")

    def sample(files: dict[str, str]) -> pd.DataFrame:
        sources = [RasterSource(root / file, name) for name, file in files.items()]
        sampled = sample_rasters(points, sources, method="bilinear")
        return pd.DataFrame(sampled.values, columns=list(files))

    covariates = sample(LA_LIBERTAD_COVARIATES)
    return SoilDataset(
        name="la_libertad",
        coords=np.column_stack([points.x, points.y]),
        geographic=False,
        crs=LA_LIBERTAD_CRS,
        target=target,
        target_name="COSha30",
        unit="t/ha",
        covariates=covariates,
        spectral=sample(LA_LIBERTAD_BANDS),
        elevation=covariates["elevation"].to_numpy(),
        slope=covariates["slope"].to_numpy(),
        dates=None,
        ids=points.attributes["ID"].astype(str).to_numpy(),
    )


def feature_matrix(dataset: SoilDataset) -> tuple[np.ndarray, list[str]]:
    """The design matrix every tabular baseline gets, and its column names.

    Columns: location (lon, lat or x, y), the decimal year of the sampling date (only when the data set
    has dates; NaN where a date is unknown), every covariate, every spectral band. Shape ``(N, F)``
    float64; missing values stay NaN (XGBoost handles them, the random forest imputes).
    """
    location = ["lon", "lat"] if dataset.geographic else ["x", "y"]
    columns = [dataset.coords[:, 0], dataset.coords[:, 1]]
    names = list(location)
    if dataset.dates is not None:
        columns.append(decimal_year(dataset.dates))
        names.append("decimal_year")
    for table in (dataset.covariates, dataset.spectral):
        if table is not None:
            columns += [table[c].to_numpy(dtype=np.float64) for c in table.columns]
            names += [str(c) for c in table.columns]
    return np.column_stack(columns).astype(np.float64), names


def _existing(path: Path) -> Path:
    if not path.exists():
        raise DataNotFoundError(
            f"The benchmark data file '{path}' does not exist.",
            "Pass the folder that holds the bundled data set (see data/README.md).",
        )
    return path


def node_table(dataset: SoilDataset) -> NodeTable:
    """The :class:`~soilcarbon_core.features.NodeTable` of a benchmark data set (SpTGNN's inputs).

    Covariates feed the covariate stream, spectral bands the imagery stream; with no imagery (Africa) the
    spectral-similarity relation is built on the covariates instead.
    """
    if dataset.geographic:
        lonlat = dataset.coords
    else:
        from rasterio.crs import CRS
        from rasterio.warp import transform

        lon, lat = transform(CRS.from_user_input(dataset.crs), CRS.from_epsg(4326), *dataset.coords.T)
        lonlat = np.column_stack([lon, lat])
    n = len(dataset.target)
    return NodeTable(
        lonlat=lonlat,
        xy=dataset.coords,
        covariates=dataset.covariates.to_numpy(dtype=np.float64),
        imagery=np.empty((n, 0)) if dataset.spectral is None else dataset.spectral.to_numpy(dtype=np.float64),
        decimal_year=None if dataset.dates is None else decimal_year(dataset.dates),
        elevation=dataset.elevation,
        slope=dataset.slope,
    )
