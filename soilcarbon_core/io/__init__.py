"""Data I/O at the package's edges: sample points in, rasters sampled, GeoPackages out."""

from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.io.points import SamplePoints, read_points
from soilcarbon_core.io.rasters import RasterSource, SampledBands, SampleStatus, sample_rasters
from soilcarbon_core.io.vector_out import write_points_gpkg

__all__ = [
    "RasterSource",
    "SamplePoints",
    "SampleStatus",
    "SampledBands",
    "atomic_output",
    "read_points",
    "sample_rasters",
    "write_points_gpkg",
]
