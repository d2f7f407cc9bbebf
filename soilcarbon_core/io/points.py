"""Read soil sample points from GeoPackage, GeoJSON, Shapefile or CSV.

Vector formats are read with pyogrio (GDAL/OGR); CSV with pandas, the coordinates taken from named or
recognised columns (x/y, lon/lat, easting/northing, ...) and the CRS given by the caller (lon/lat
columns default to EPSG:4326).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rasterio.crs import CRS
from rasterio.errors import CRSError as RasterioCRSError

from soilcarbon_core.errors import (
    CRSError,
    DataNotFoundError,
    EmptyLayerError,
    InputError,
    PointsFormatError,
)

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}

#: Coordinate column pairs recognised in CSV files (compared case-insensitively), and whether the
#: pair means geographic longitude/latitude.
COORDINATE_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("x", "y", False),
    ("easting", "northing", False),
    ("lon", "lat", True),
    ("long", "lat", True),
    ("lng", "lat", True),
    ("longitude", "latitude", True),
)


@dataclass(frozen=True)
class SamplePoints:
    """Sample locations with their attribute table.

    Attributes:
        x, y: coordinates in ``crs``, shape ``(n,)``, float64.
        crs: the coordinates' CRS.
        attributes: the attribute table, one row per point, in file order.
        dates: sampling dates as ``datetime64[D]`` (NaT where missing), or None without a date field.
        source: where the points came from, for messages.
    """

    x: np.ndarray
    y: np.ndarray
    crs: CRS
    attributes: pd.DataFrame
    dates: np.ndarray | None = None
    source: str = ""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @classmethod
    def at(cls, x: np.ndarray, y: np.ndarray, crs: CRS, source: str = "") -> SamplePoints:
        """Places without attributes (grid cells, candidate sites) at ``x``, ``y`` in ``crs``."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        return cls(x, y, crs, pd.DataFrame(index=range(x.size)), source=source)

    def lonlat(self) -> np.ndarray:
        """``(n, 2)`` WGS 84 longitude and latitude."""
        from rasterio.warp import transform

        lon, lat = transform(self.crs, CRS.from_epsg(4326), self.x, self.y)
        return np.column_stack([lon, lat])


def parse_crs(value: str | CRS, what: str) -> CRS:
    """Parse a user-given CRS ('EPSG:4326', WKT, PROJ string), naming ``what`` on failure."""
    if isinstance(value, CRS):
        return value
    try:
        return CRS.from_user_input(value)
    except (RasterioCRSError, ValueError) as err:
        raise CRSError(
            f"The CRS given for {what} ('{value}') is not a valid CRS: {err}.",
            "Give it as an authority code such as 'EPSG:32756', or as WKT.",
        ) from err


def read_points(
    path: str | os.PathLike[str],
    *,
    layer: str | None = None,
    x_field: str | None = None,
    y_field: str | None = None,
    crs: str | CRS | None = None,
    date_field: str | None = None,
) -> SamplePoints:
    """Read sample points from a vector file or a CSV.

    Args:
        path: GeoPackage, GeoJSON, Shapefile (or any OGR vector format), or CSV.
        layer: layer name for multi-layer files; defaults to the only point layer.
        x_field, y_field: coordinate columns of a CSV; recognised automatically when omitted.
        crs: CRS of a CSV's coordinates, or of a vector layer that has none.
        date_field: optional field holding the sampling date.
    """
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(
            f"The points file '{path}' does not exist.", "Check the path and the file name."
        )
    if path.suffix.lower() in CSV_SUFFIXES:
        points = _read_csv(path, x_field, y_field, crs)
    else:
        points = _read_vector(path, layer, crs)
    if len(points) == 0:
        raise EmptyLayerError(
            f"The points layer '{path.name}' has no features.",
            "Choose a layer with sample points (or select some features when using selected features only).",
        )
    if date_field is not None:
        points = _with_dates(points, date_field)
    return points


def _read_vector(path: Path, layer: str | None, crs: str | CRS | None) -> SamplePoints:
    import pyogrio
    import shapely
    from pyogrio.errors import DataLayerError, DataSourceError
    from pyogrio.raw import read as ogr_read

    try:
        layers = pyogrio.list_layers(path)
    except DataSourceError as err:
        raise PointsFormatError(
            f"'{path}' cannot be read as a vector file: {err}.",
            "Use a GeoPackage, GeoJSON, Shapefile or CSV of sample points.",
        ) from err
    names = [str(name) for name, _ in layers]
    if layer is None:
        point_layers = [str(n) for n, g in layers if g is not None and "Point" in str(g)]
        if len(names) == 1:
            layer = names[0]
        elif len(point_layers) == 1:
            layer = point_layers[0]
        else:
            raise PointsFormatError(
                f"'{path.name}' has {len(names)} layers ({', '.join(names)}).",
                "Name the layer that holds the sample points.",
            )
    elif layer not in names:
        raise PointsFormatError(
            f"'{path.name}' has no layer '{layer}'; its layers are: {', '.join(names)}.",
            "Name one of these layers.",
        )
    try:
        meta, _, wkb, field_data = ogr_read(path, layer=layer, datetime_as_string=False)
    except (DataSourceError, DataLayerError) as err:
        raise PointsFormatError(f"Layer '{layer}' of '{path}' cannot be read: {err}.") from err

    geometry_type = str(meta.get("geometry_type") or "")
    if wkb is None or geometry_type in ("", "None"):
        raise PointsFormatError(
            f"Layer '{layer}' of '{path.name}' has no geometry.",
            "For a table with coordinate columns, save it as CSV and name the columns.",
        )
    geometries = shapely.from_wkb(wkb)
    missing = np.flatnonzero(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    if missing.size:
        raise PointsFormatError(
            f"{missing.size} feature(s) of layer '{layer}' have no geometry (rows {few_rows(missing + 1)}).",
            "Remove them or give them a location.",
        )
    kinds = shapely.get_type_id(geometries)
    multi = kinds == shapely.GeometryType.MULTIPOINT
    if multi.any():
        if (shapely.get_num_geometries(geometries[multi]) != 1).any():
            raise PointsFormatError(
                f"Layer '{layer}' of '{path.name}' has multipoint features with several points.",
                "Split them with Vector › Geometry › Multipart to Singleparts.",
            )
        geometries[multi] = shapely.get_geometry(geometries[multi], 0)
        kinds = shapely.get_type_id(geometries)
    if (kinds != shapely.GeometryType.POINT).any():
        raise PointsFormatError(
            f"Layer '{layer}' of '{path.name}' has {geometry_type} geometry; sample points must be points.",
            "Convert polygons with Vector › Geometry › Centroids, or pick a point layer.",
        )

    if meta.get("crs"):
        points_crs = parse_crs(meta["crs"], f"layer '{layer}'")
    elif crs is not None:
        points_crs = parse_crs(crs, f"layer '{layer}'")
    else:
        raise CRSError(
            f"Layer '{layer}' of '{path.name}' has no CRS.",
            "Assign its CRS (Layer Properties › Source) or pass the CRS explicitly.",
        )
    attributes = pd.DataFrame({name: values for name, values in zip(meta["fields"], field_data, strict=True)})
    return SamplePoints(
        x=shapely.get_x(geometries).astype(np.float64),
        y=shapely.get_y(geometries).astype(np.float64),
        crs=points_crs,
        attributes=attributes,
        source=f"{path.name}:{layer}",
    )


def _read_csv(path: Path, x_field: str | None, y_field: str | None, crs: str | CRS | None) -> SamplePoints:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        head = handle.read(8192)
    try:
        delimiter = csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    try:
        table = pd.read_csv(path, sep=delimiter, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise PointsFormatError(f"'{path.name}' cannot be read as CSV: {err}.") from err

    columns = [str(c) for c in table.columns]
    geographic = False
    if (x_field is None) != (y_field is None):
        raise PointsFormatError("Only one coordinate column was named.", "Name both the x and the y column.")
    if x_field is None:
        lower = {c.lower(): c for c in columns}
        for x_name, y_name, is_geographic in COORDINATE_COLUMNS:
            if x_name in lower and y_name in lower:
                x_field, y_field, geographic = lower[x_name], lower[y_name], is_geographic
                break
        else:
            recognised = ", ".join(f"{x}/{y}" for x, y, _ in COORDINATE_COLUMNS)
            raise PointsFormatError(
                f"The CSV '{path.name}' has no coordinate columns (looked for {recognised}; "
                f"its columns are: {', '.join(columns)}).",
                "Name the x and y columns (and the CRS) explicitly.",
            )
    for field in (x_field, y_field):
        if field not in columns:
            raise PointsFormatError(
                f"The CSV '{path.name}' has no column '{field}'; its columns are: {', '.join(columns)}.",
                "Name an existing column.",
            )
    assert x_field is not None and y_field is not None
    coords = {}
    for field in (x_field, y_field):
        values = pd.to_numeric(table[field], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise PointsFormatError(
                f"Column '{field}' of '{path.name}' has {bad.size} missing or non-numeric value(s) "
                f"(data rows {few_rows(bad + 1)}).",
                "Fix or remove those rows.",
            )
        coords[field] = values

    if crs is None:
        if not geographic:
            raise CRSError(
                f"The CSV '{path.name}' has coordinates in '{x_field}'/'{y_field}' but no CRS.",
                "Give the CRS of the coordinates, e.g. 'EPSG:32756'.",
            )
        crs = "EPSG:4326"
    points_crs = parse_crs(crs, f"the CSV '{path.name}'")
    return SamplePoints(
        x=coords[x_field],
        y=coords[y_field],
        crs=points_crs,
        attributes=table,
        source=path.name,
    )


def _with_dates(points: SamplePoints, date_field: str) -> SamplePoints:
    if date_field not in points.attributes.columns:
        raise InputError(
            f"The points have no date field '{date_field}'; their fields are: "
            f"{', '.join(map(str, points.attributes.columns))}.",
            "Name an existing field, or leave the date field empty.",
        )
    raw = points.attributes[date_field]
    parsed = pd.to_datetime(raw, errors="coerce")
    unparsed = np.flatnonzero(parsed.isna().to_numpy() & raw.notna().to_numpy())
    if unparsed.size:
        raise InputError(
            f"{unparsed.size} value(s) of the date field '{date_field}' are not dates "
            f"(rows {few_rows(unparsed + 1)}, e.g. '{raw.iloc[unparsed[0]]}').",
            "Use ISO dates such as 2021-03-15.",
        )
    dates = parsed.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    return SamplePoints(
        x=points.x,
        y=points.y,
        crs=points.crs,
        attributes=points.attributes,
        dates=dates,
        source=points.source,
    )


def few_rows(rows: np.ndarray, limit: int = 5) -> str:
    """The first ``limit`` row numbers for a message, then ", ..." if there are more."""
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (", ..." if rows.size > limit else "")
