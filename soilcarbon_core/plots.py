"""Plots a person would rather look at than read (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from soilcarbon_core.io.atomic import atomic_output


def plot_sampled_points(
    gpkg: str | os.PathLike[str], png: str | os.PathLike[str], fields: list[str], layer: str = "samples"
) -> Path:
    """One small map per field (e.g. the sampled bands); points without a value as red crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shapely
    from pyogrio.raw import read as ogr_read

    meta, _, wkb, data = ogr_read(gpkg, layer=layer)
    columns = dict(zip(meta["fields"], data, strict=True))
    geometry = shapely.from_wkb(wkb)
    x, y = shapely.get_x(geometry), shapely.get_y(geometry)
    per_row = min(4, len(fields)) or 1
    rows = math.ceil(len(fields) / per_row) or 1
    figure, axes = plt.subplots(rows, per_row, figsize=(3.4 * per_row, 3.0 * rows), squeeze=False)
    for axis, name in zip(axes.flat, fields, strict=False):
        values = np.asarray(columns[name], dtype=float)
        ok = np.isfinite(values)
        scatter = axis.scatter(x[ok], y[ok], c=values[ok], s=9, cmap="viridis")
        axis.scatter(x[~ok], y[~ok], marker="x", color="red", s=12, label="no value")
        figure.colorbar(scatter, ax=axis, shrink=0.8)
        axis.set_title(name, fontsize=9)
        axis.set_aspect("equal")
        axis.tick_params(labelsize=6)
    for axis in list(axes.flat)[len(fields) :]:
        axis.set_visible(False)
    figure.suptitle(f"{Path(gpkg).name}: sampled values ({len(x)} points)", fontsize=11)
    figure.tight_layout()
    with atomic_output(png) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return Path(png)
