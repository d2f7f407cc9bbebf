"""What a model needs as input, and assembling it from points, their fields and rasters.

A feature is named; at prediction time it is looked up by that name among the points' fields and the
fields sampled from the rasters given (``PATH=NAME``), exactly as at training time. A model that needs a
feature the inputs lack gets an error naming every missing feature and how it was given in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from soilcarbon_core.errors import SchemaMismatchError
from soilcarbon_core.features import NodeTable, decimal_year
from soilcarbon_core.io.points import SamplePoints
from soilcarbon_core.io.rasters import RasterSource, sample_rasters
from soilcarbon_core.progress import ProgressCallback, silent


@dataclass
class InputSchema:
    """The inputs of a model: the CRS of its graph, and the named features of each stream."""

    crs: str  #: WKT of the CRS the graph distances are computed in
    geographic: bool
    covariates: list[str] = field(default_factory=list)
    imagery: list[str] = field(default_factory=list)
    date_field: str | None = None
    elevation: str | None = None  #: feature used by the elevation relation
    slope: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  #: feature -> "field" or "raster" (for messages)
    rasters: dict[str, str] = field(default_factory=dict)  #: raster feature -> name of its raster
    #: ImagerySettings of the imagery stream's chip features (source "chips"), None without chips
    chips: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> InputSchema:
        return cls(**values)

    @property
    def features(self) -> list[str]:
        names = [*self.covariates, *self.imagery, self.elevation, self.slope]
        return list(dict.fromkeys(n for n in names if n))

    def require(self, available: dict[str, np.ndarray], points: SamplePoints) -> None:
        """Raise :class:`SchemaMismatchError` naming every feature (and the date) the inputs lack."""
        missing = [name for name in self.features if name not in available]
        problems = []
        if any(self.sources.get(name) == "chips" for name in missing):
            modalities = ", ".join(self.chips["modalities"]) if self.chips else "imagery"
            problems.append(f"imagery chips of {modalities} (give those rasters: --s2 / --s1 / --dem)")
        for name in missing:
            if self.sources.get(name) == "chips":
                continue
            if self.sources.get(name) == "raster":
                problems.append(f"'{name}' (a raster: give it as PATH={self.rasters.get(name, name)})")
            else:
                problems.append(f"'{name}' (a numeric field of the points)")
        if self.date_field and points.dates is None:
            problems.append(f"the sampling date (field '{self.date_field}' at training; give the date field)")
        if problems:
            raise SchemaMismatchError(
                f"The inputs lack what the model was trained with: {'; '.join(problems)}.",
                "Give the same rasters (with the same names) and fields as at training.",
            )

    def table(self, points: SamplePoints, available: dict[str, np.ndarray]) -> NodeTable:
        """The :class:`NodeTable` of ``points`` (reprojected to the model's CRS) from named features."""
        from rasterio.crs import CRS
        from rasterio.warp import transform

        self.require(available, points)
        crs = CRS.from_wkt(self.crs)
        # Points already in the model's CRS (a map on the model's grid) skip PROJ's identity pass.
        x, y = (points.x, points.y) if points.crs == crs else transform(points.crs, crs, points.x, points.y)

        def stack(names: list[str]) -> np.ndarray:
            if not names:
                return np.empty((len(points), 0))
            return np.column_stack([np.asarray(available[n], dtype=np.float64) for n in names])

        return NodeTable(
            lonlat=points.lonlat(),
            xy=np.column_stack([x, y]),
            covariates=stack(self.covariates),
            imagery=stack(self.imagery),
            decimal_year=decimal_year(points.dates) if self.date_field and points.dates is not None else None,
            elevation=np.asarray(available[self.elevation], dtype=np.float64) if self.elevation else None,
            slope=np.asarray(available[self.slope], dtype=np.float64) if self.slope else None,
        )


def available_features(
    points: SamplePoints,
    rasters: list[RasterSource],
    *,
    method: str = "bilinear",
    progress: ProgressCallback = silent,
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """Numeric fields of the points and fields sampled from ``rasters``.

    Returns ``({name: values}, {name: "field" or "raster"}, {raster field: the raster's name})``; a
    multi-band raster named ``s2`` gives one field per band, each mapped to ``s2``.
    """
    values: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    origins: dict[str, str] = {}
    for column in points.attributes.columns:
        numeric = pd.to_numeric(points.attributes[column], errors="coerce")
        if numeric.notna().any():
            values[str(column)] = numeric.to_numpy(dtype=np.float64)
            sources[str(column)] = "field"
    if rasters:
        # A raster given by name wins over a field of the same name.
        sampled = sample_rasters(points, rasters, method=method, progress=progress)
        for index, (name, raster) in enumerate(zip(sampled.names, sampled.raster_names, strict=True)):
            values[name] = sampled.values[:, index].astype(np.float64)
            sources[name] = "raster"
            origins[name] = raster
    return values, sources, origins
