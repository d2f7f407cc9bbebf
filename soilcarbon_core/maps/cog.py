"""A multi-band map written window by window, resumable after an interruption, finished as a COG.

While a map is computed its windows go to ``<output>.partial/data.tif`` (a tiled GeoTIFF) and the ids of
the finished windows to ``<output>.partial/state.json``, next to a fingerprint of everything the values
depend on (model, inputs, grid, window size). A window is recorded only after its data is on disk
(the dataset is closed, which flushes it), so a run killed at any moment leaves a consistent partial
map; a later run with the same fingerprint skips the recorded windows. A different fingerprint starts
afresh. The partial GeoTIFF is uncompressed (4 bytes a cell and band). When every window is done it is
copied to a Cloud-Optimised GeoTIFF (internal tiles, deflate, overviews averaged over valid cells) under
a temporary name and renamed onto ``output``: the output exists only when complete.
:meth:`PartialMap.discard` (cancel) removes the partial folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from soilcarbon_core.errors import OutputError
from soilcarbon_core.io.atomic import atomic_output

#: Output tiles (the COG's internal blocks), cells on a side.
TILE = 256
#: GDAL's block cache while maps are written: bounded, whatever the raster size.
GDAL_CACHE_MB = 256


class PartialMap:
    """The unfinished map of ``output``: a tiled float32 GeoTIFF of ``bands`` and the finished windows."""

    def __init__(
        self,
        output: str | os.PathLike[str],
        grid,
        bands: list[str],
        fingerprint: dict,
        *,
        nodata: float,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.output = Path(output)
        self.folder = self.output.with_name(self.output.name + ".partial")
        self.data = self.folder / "data.tif"
        self.state_file = self.folder / "state.json"
        self.grid, self.bands, self.nodata, self.tags = grid, list(bands), nodata, dict(tags or {})
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        self.done: dict[int, int] = {}  #: finished window id -> its number of valid (predicted) cells
        self.resumed = self._resume()

    def _resume(self) -> bool:
        """Take over a partial map of the same fingerprint; otherwise start a new one. True when resumed."""
        try:
            state = json.loads(self.state_file.read_text())
            if state.get("fingerprint") == self.fingerprint and self.data.exists():
                self.done = {int(i): int(n) for i, n in state["done"].items()}
                return True
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self._create()
        return False

    def _create(self) -> None:
        import rasterio

        shutil.rmtree(self.folder, ignore_errors=True)
        if not self.output.parent.is_dir():
            raise OutputError(
                f"Cannot write '{self.output}': the folder '{self.output.parent}' does not exist.",
                "Create the folder or choose another output path.",
            )
        try:
            self.folder.mkdir()
        except OSError as err:
            raise OutputError(
                f"Cannot create '{self.folder}': {err.strerror}.", "Choose an output folder you can write to."
            ) from err
        profile = {
            "driver": "GTiff",
            "width": self.grid.width,
            "height": self.grid.height,
            "count": len(self.bands),
            "dtype": "float32",
            "crs": self.grid.crs,
            "transform": self.grid.transform,
            "nodata": self.nodata,
            "tiled": True,
            "blockxsize": TILE,
            "blockysize": TILE,
            # Uncompressed: compressing here, then decompressing to copy,
            # took two-thirds of the finishing time, and the COG compresses float maps only to about 0.7.
            "BIGTIFF": "IF_SAFER",
        }
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(self.data, "w", **profile) as out:
            for band, name in enumerate(self.bands, start=1):
                out.set_band_description(band, name)
            out.update_tags(**self.tags)
        self._save_state()

    def _save_state(self) -> None:
        with atomic_output(self.state_file) as partial:
            partial.write_text(json.dumps({"fingerprint": self.fingerprint, "done": self.done}))

    def write(self, window_id: int, window, values: np.ndarray, valid_cells: int) -> None:
        """Write ``values`` (bands, rows, cols) into ``window`` and record it as finished."""
        import rasterio

        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(self.data, "r+") as out:
            out.write(values.astype(np.float32, copy=False), window=window)
        self.done[window_id] = valid_cells
        self._save_state()

    def finish(self) -> Path:
        """Copy the finished map to a COG at ``output`` (written to a temporary name, then renamed)."""
        import rasterio
        from rasterio.shutil import copy

        with (
            atomic_output(self.output) as partial,
            rasterio.Env(
                GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_NUM_THREADS=os.environ.get("GDAL_NUM_THREADS", "2")
            ),
        ):
            copy(
                self.data,
                partial,
                driver="COG",
                BLOCKSIZE=TILE,
                COMPRESS="DEFLATE",
                PREDICTOR="YES",
                LEVEL=1,  # as small as the default level 6 for float maps (within 0.2 %), in 3/4 of the time
                OVERVIEWS="IGNORE_EXISTING",
                OVERVIEW_RESAMPLING="AVERAGE",
                BIGTIFF="IF_SAFER",
            )
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.output

    def discard(self) -> None:
        """Remove the partial map (a cancelled run leaves nothing)."""
        shutil.rmtree(self.folder, ignore_errors=True)
