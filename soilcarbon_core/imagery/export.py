"""Imagery-stream features at points, written to a GeoPackage for inspection or for other models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from soilcarbon_core.device import resolve_device
from soilcarbon_core.imagery.inputs import ImageryInputs
from soilcarbon_core.imagery.stream import ImagerySettings
from soilcarbon_core.io.points import SamplePoints, read_points
from soilcarbon_core.io.vector_out import write_points_gpkg
from soilcarbon_core.progress import ProgressCallback, scaled, silent

#: Field flagging points whose chips were all masked (no feature).
VALID_FIELD = "imagery_valid"


def export_imagery_features(
    points: SamplePoints | str | os.PathLike[str],
    output: str | os.PathLike[str],
    imagery: ImageryInputs,
    settings: ImagerySettings | None = None,
    *,
    device: str = "auto",
    progress: ProgressCallback = silent,
    **read_options: object,
) -> dict:
    """Write ``points`` with one field per imagery feature (``terramind.000`` ... or chip statistics,
    NULL where no chip is usable) and ``imagery_valid`` (1/0) to ``output`` (.gpkg)."""
    if not isinstance(points, SamplePoints):
        progress(0.0, "Reading points")
        points = read_points(points, **read_options)  # type: ignore[arg-type]
    encoder = imagery.encoder(settings or ImagerySettings(), device=str(resolve_device(device)))
    values = encoder.features(points.lonlat(), scaled(progress, 0.02, 0.9))
    columns = {name: values[:, i] for i, name in enumerate(encoder.names)}
    columns[VALID_FIELD] = np.isfinite(values).all(axis=1).astype(np.int8)
    write_points_gpkg(output, points, columns, progress=scaled(progress, 0.9, 1.0))
    return {
        "output": str(Path(output)),
        "layer": "samples",
        "fields": encoder.names,
        "valid_field": VALID_FIELD,
        "n_points": len(points),
        "n_valid": int(columns[VALID_FIELD].sum()),
        "imagery": encoder.report.to_dict(),
        "settings": encoder.settings.to_dict(),
    }
