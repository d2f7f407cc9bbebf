"""The error hierarchy: every error a user can cause names the problem and the fix.

Each class carries a stable ``code`` that the worker protocol sends to the plugin, so the plugin can
react to a kind of error without parsing messages.
"""

from __future__ import annotations


class SoilCarbonError(Exception):
    """Base of every error this package raises on purpose."""

    code = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class InputError(SoilCarbonError):
    """Input data that cannot be used as given."""

    code = "bad_input"


class DataNotFoundError(InputError):
    """A file that was named does not exist."""

    code = "not_found"


class PointsFormatError(InputError):
    """A points file that cannot be read as sample points (no coordinates, not points, ...)."""

    code = "points_format"


class EmptyLayerError(InputError):
    """A points layer with no features."""

    code = "empty_layer"


class CRSError(InputError):
    """A missing CRS, or coordinates that cannot be transformed between two CRSs."""

    code = "crs"


class RasterError(InputError):
    """A raster that cannot be read or used."""

    code = "raster"


class NoValidSamplesError(InputError):
    """No point falls on valid data of any raster."""

    code = "no_valid_samples"


class OutputError(SoilCarbonError):
    """An output that cannot be written."""

    code = "output"


class Cancelled(SoilCarbonError):
    """The caller asked to stop; nothing was written."""

    code = "cancelled"


class ModelFileError(SoilCarbonError):
    """A model file that cannot be used: missing parts, a failed checksum, a format we do not know."""

    code = "model_file"


class SchemaMismatchError(InputError):
    """Inputs that do not provide what a model was trained on."""

    code = "schema_mismatch"
