"""The grid a map is predicted on: a template raster's grid, or an extent, a resolution and a CRS."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from soilcarbon_core.errors import InputError, RasterError

#: Cells on a side of a prediction window (two 256-cell tiles of the output).
WINDOW = 512


@dataclass(frozen=True)
class GridSpec:
    """A north-up raster grid: CRS, geotransform and size in cells."""

    crs: object  #: rasterio.crs.CRS
    transform: object  #: affine.Affine of the upper-left corner and the cell size
    width: int
    height: int

    @classmethod
    def from_raster(cls, path: str | os.PathLike[str]) -> GridSpec:
        """The grid of an existing raster (any GDAL format)."""
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            with rasterio.open(path) as dataset:
                if dataset.crs is None:
                    raise RasterError(
                        f"The template raster '{path}' has no CRS.",
                        "Assign one (Raster › Projections › Assign Projection, or gdal_edit.py -a_srs).",
                    )
                return cls(dataset.crs, dataset.transform, dataset.width, dataset.height)
        except RasterioIOError as err:
            raise RasterError(
                f"The template raster '{path}' cannot be read: {err}.",
                "Give a GeoTIFF or another GDAL raster.",
            ) from err

    @classmethod
    def from_extent(
        cls, extent: tuple[float, float, float, float], resolution: float, crs: str | object
    ) -> GridSpec:
        """A grid covering ``extent`` = (xmin, ymin, xmax, ymax) in ``crs`` with square ``resolution`` cells.

        The upper-left corner is (xmin, ymax); the grid extends right and down to cover the whole extent
        (the last row and column may reach past xmax and ymin by less than a cell)."""
        from affine import Affine

        from soilcarbon_core.io.points import parse_crs

        xmin, ymin, xmax, ymax = (float(v) for v in extent)
        if not (math.isfinite(xmin + ymin + xmax + ymax) and xmax > xmin and ymax > ymin):
            raise InputError(
                f"The extent {extent} is empty or not finite.",
                "Give xmin,ymin,xmax,ymax with xmax > xmin, ymax > ymin.",
            )
        if not (math.isfinite(resolution) and resolution > 0):
            raise InputError(
                f"The resolution {resolution} is not a positive number.", "Give the cell size in CRS units."
            )
        crs = parse_crs(crs, "the map grid")
        width, height = (
            math.ceil((xmax - xmin) / resolution - 1e-9),
            math.ceil((ymax - ymin) / resolution - 1e-9),
        )
        return cls(crs, Affine(resolution, 0.0, xmin, 0.0, -resolution, ymax), width, height)

    @property
    def cells(self) -> int:
        return self.width * self.height

    def windows(self, size: int = WINDOW) -> list:
        """Row-major ``size`` x ``size`` rasterio Windows covering the grid (edge windows are smaller)."""
        from rasterio.windows import Window

        return [
            Window(col, row, min(size, self.width - col), min(size, self.height - row))
            for row in range(0, self.height, size)
            for col in range(0, self.width, size)
        ]

    def cell_centres(self, window) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates ``(x, y)`` of the cell centres of ``window``, each (rows * cols,) row-major."""
        rows, cols = np.meshgrid(
            window.row_off + np.arange(window.height), window.col_off + np.arange(window.width), indexing="ij"
        )
        return self.centres(rows.ravel(), cols.ravel())

    def centres(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates ``(x, y)`` of the centres of cells (``rows``, ``cols``), each ``(n,)``."""
        t, col, row = self.transform, np.asarray(cols) + 0.5, np.asarray(rows) + 0.5
        return t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f

    def to_dict(self) -> dict:
        return {
            "crs": self.crs.to_wkt(),
            "transform": list(self.transform)[:6],
            "width": self.width,
            "height": self.height,
        }
