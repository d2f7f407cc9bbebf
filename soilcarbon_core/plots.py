"""Plots a person would rather look at than read (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from soilcarbon_core.io.atomic import atomic_output


def plot_sampled_points(
    gpkg: str | os.PathLike[str], png: str | os.PathLike[str], layer: str = "samples"
) -> Path:
    """One small map per sampled field of a ``soilcarbon sample`` output; invalid points as red crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shapely
    from pyogrio.raw import read as ogr_read

    meta, _, wkb, data = ogr_read(gpkg, layer=layer)
    fields = dict(zip(meta["fields"], data, strict=True))
    geometry = shapely.from_wkb(wkb)
    x, y = shapely.get_x(geometry), shapely.get_y(geometry)
    valid_names = [name for name in fields if name not in ("valid", "problem")]
    bands = [n for n in valid_names if np.issubdtype(np.asarray(fields[n]).dtype, np.floating)]
    bands = bands[-12:]  # the sampled fields come last; keep the figure readable
    columns = min(4, len(bands)) or 1
    rows = math.ceil(len(bands) / columns) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.0 * rows), squeeze=False)
    for axis, name in zip(axes.flat, bands, strict=False):
        values = np.asarray(fields[name], dtype=float)
        ok = np.isfinite(values)
        scatter = axis.scatter(x[ok], y[ok], c=values[ok], s=9, cmap="viridis")
        axis.scatter(x[~ok], y[~ok], marker="x", color="red", s=12, label="no value")
        figure.colorbar(scatter, ax=axis, shrink=0.8)
        axis.set_title(name, fontsize=9)
        axis.set_aspect("equal")
        axis.tick_params(labelsize=6)
    for axis in list(axes.flat)[len(bands) :]:
        axis.set_visible(False)
    figure.suptitle(f"{Path(gpkg).name}: sampled values ({len(x)} points)", fontsize=11)
    figure.tight_layout()
    with atomic_output(png) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return Path(png)
