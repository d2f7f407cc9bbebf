"""Which raster band holds which band of which modality, and in what units.

A modality's bands come from one multi-band file or one file per band. Bands are mapped by name: given
explicitly (``PATH=B04,B08``), else from the file's band descriptions, else from a band id in the file
name (``T18SVG_B8A.tif``, ``s1_VH.tif``), else, for a file with exactly the modality's band count, in
TerraMind's band order. Units are put right once per band: Sentinel-1 linear power to dB, Sentinel-2
reflectance in 0-1 to reflectance x 10000; each conversion is reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from soilcarbon_core.errors import DataNotFoundError, InputError, RasterError
from soilcarbon_core.imagery.modalities import OPTICAL, Modality, modality

#: Smallest linear backscatter put into the logarithm (-100 dB).
_MIN_POWER = 1e-10


@dataclass(frozen=True)
class BandRef:
    """Band ``index`` (1-based) of the raster at ``path`` is band ``band`` of its modality."""

    path: Path
    index: int
    band: str
    conversion: str = ""  #: "" | "linear_to_db" | "reflectance_x10000"

    def convert(self, values: np.ndarray) -> np.ndarray:
        if self.conversion == "linear_to_db":
            return 10.0 * np.log10(np.maximum(values, _MIN_POWER))
        if self.conversion == "reflectance_x10000":
            return values * 10000.0
        return values


@dataclass
class ModalityRasters:
    """The bands of one modality, in TerraMind's band order (a subset when not all are given)."""

    modality: Modality
    bands: list[BandRef]
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.modality.name

    @property
    def band_names(self) -> list[str]:
        return [b.band for b in self.bands]


def _open(path: Path):
    if not path.exists():
        raise DataNotFoundError(f"The raster '{path}' does not exist.", "Check the path.")
    try:
        return rasterio.open(path)
    except RasterioIOError as err:
        raise RasterError(
            f"The raster '{path}' cannot be read ({err}).", "Give a GeoTIFF or GDAL raster."
        ) from err


def _name_tokens(stem: str) -> list[str]:
    return [t for t in re.split(r"[_\-.\s]+", stem) if t]


def _bands_of(path: Path, given: list[str] | None, modality: Modality) -> list[tuple[int, str]]:
    """(1-based band index, canonical band name) of each band of ``path`` that the modality uses."""
    with _open(path) as src:
        count, descriptions = src.count, src.descriptions
        if src.crs is None:
            raise RasterError(
                f"The raster '{path}' has no CRS.", "Assign its CRS (e.g. gdal_edit.py -a_srs EPSG:32618)."
            )
    if given:
        if len(given) != count:
            raise InputError(
                f"'{path.name}' has {count} band(s) but {len(given)} band name(s) were given for it.",
                f"Name each band of the file in order, e.g. {path.name}={','.join(modality.bands[:count])}.",
            )
        return [(i + 1, modality.band(name)) for i, name in enumerate(given)]
    if all(descriptions) and count:
        try:
            return [(i + 1, modality.band(d)) for i, d in enumerate(descriptions)]
        except InputError:
            pass
    if count == 1:
        if len(modality.bands) == 1:
            return [(1, modality.bands[0])]
        for token in reversed(_name_tokens(path.stem)):
            try:
                return [(1, modality.band(token))]
            except InputError:
                continue
    elif count == len(modality.bands):
        return [(i + 1, b) for i, b in enumerate(modality.bands)]
    raise InputError(
        f"Cannot tell which {modality.name} band(s) '{path.name}' holds (no band descriptions, no band id "
        "in the file name).",
        f"Name them: {path.name}={','.join(modality.bands[:count])} (bands: {', '.join(modality.bands)}).",
    )


def _overview(ref: BandRef) -> np.ndarray:
    """Valid values of a decimated read of the band (at most 256 x 256 cells)."""
    with rasterio.open(ref.path) as src:
        scale = max(src.width, src.height) / 256
        shape = (max(1, int(src.height / max(scale, 1))), max(1, int(src.width / max(scale, 1))))
        values = src.read(ref.index, out_shape=shape, masked=True).astype(np.float64)
    return values.compressed()[np.isfinite(values.compressed())]


def _conversion(modality: Modality, ref: BandRef, units: str) -> str:
    if modality.name == "S1GRD":
        if units == "auto":
            values = _overview(ref)
            # dB backscatter of land is mostly negative; linear power never is.
            units = "linear" if values.size and values.min() >= 0 else "db"
        return "linear_to_db" if units == "linear" else ""
    if modality.name in OPTICAL and units == "auto":
        values = _overview(ref)
        if values.size and np.percentile(values, 99) <= 2.0:
            return "reflectance_x10000"
    return ""


def modality_rasters(name: str, specs: list[str], units: str = "auto") -> ModalityRasters:
    """Resolve ``specs`` (``PATH`` or ``PATH=BAND,BAND``) into the bands of modality ``name``.

    ``units``: for S1GRD "auto" (linear power when no value is negative), "db" or "linear"; for S2,
    "auto" scales reflectance in 0-1 by 10000.
    """
    if units not in ("auto", "db", "linear"):
        raise InputError(f"Unknown units '{units}'.", "Use auto, db or linear.")
    kind = modality(name)
    found: dict[str, BandRef] = {}
    notes = []
    for spec in specs:
        path_text, _, names = str(spec).partition("=")
        path = Path(path_text)
        given = [n for n in names.split(",") if n.strip()] if names else None
        for index, band in _bands_of(path, given, kind):
            if band in found:
                raise InputError(
                    f"{kind.name} band {band} is given twice ('{found[band].path.name}' and '{path.name}').",
                    "Give each band once.",
                )
            ref = BandRef(path, index, band)
            conversion = _conversion(kind, ref, units)
            if conversion:
                ref = BandRef(path, index, band, conversion)
                notes.append(
                    f"{kind.name} {band} ({path.name}): "
                    + (
                        "linear power converted to dB"
                        if conversion == "linear_to_db"
                        else "reflectance x 10000"
                    )
                )
            found[band] = ref
    if not found:
        raise InputError(f"No raster was given for {kind.name}.", "Give at least one raster.")
    ordered = [found[b] for b in kind.bands if b in found]
    return ModalityRasters(kind, ordered, notes)
