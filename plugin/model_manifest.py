"""The manifest of a model file, read on the QGIS side (standard library only, no model stack).

A model file is a folder or a zip with ``manifest.json`` beside its safetensors weights (see
``soilcarbon_core.model_files``). The plugin reads the manifest to show what a model is (target, unit,
training data, metrics), to check the rasters given against the ones it was trained with before the
worker starts, and to label styled outputs with the target's unit.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


class ManifestError(Exception):
    """The file is not a readable model; the message says which file and what to give instead."""


@dataclass(frozen=True)
class ModelSummary:
    """What an analyst needs to know about a model before using it."""

    kind: str  #: "sptgnn" (SOC) or "ghg-kgfgnn" (GHG fluxes)
    target: str
    unit: str
    #: raster feature -> the raster name it was trained with (names are matched at prediction)
    rasters: dict[str, str] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)  #: numeric point fields used as features
    chip_modalities: dict[str, list[str]] = field(default_factory=dict)  #: imagery chips: modality -> bands
    date_field: str | None = None
    members: int = 0
    samples: int = 0
    source: str = ""
    metrics: dict[str, float] = field(default_factory=dict)  #: validation metrics
    created: str = ""

    @property
    def raster_names(self) -> list[str]:
        """The names of the rasters to give, in a stable order, each once."""
        return list(dict.fromkeys(self.rasters.values()))

    def describe(self) -> str:
        """A few lines for the dock and the log."""
        lines = [f"Target: {self.target} ({self.unit or 'no unit'}), {self.members}-member ensemble"]
        if self.samples:
            lines.append(
                f"Trained on {self.samples} samples" + (f" from {self.source}" if self.source else "")
            )
        if self.raster_names:
            lines.append("Rasters: " + ", ".join(self.raster_names))
        if self.fields:
            lines.append("Point fields: " + ", ".join(self.fields))
        if self.chip_modalities:
            chips = "; ".join(f"{m} ({', '.join(b)})" for m, b in self.chip_modalities.items())
            lines.append("Imagery chips: " + chips)
        if self.date_field:
            lines.append(f"Sampling date: field '{self.date_field}' at training")
        shown = [(k, self.metrics[k]) for k in ("r2", "rmse", "picp90", "ece") if k in self.metrics]
        if shown:
            lines.append("Validation: " + ", ".join(f"{k} {v:.3g}" for k, v in shown))
        if self.created:
            lines.append(f"Created {self.created}")
        return "\n".join(lines)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The raw manifest of the model folder or zip at ``path``."""
    path = Path(path)
    try:
        if path.is_dir():
            text = (path / MANIFEST).read_bytes()
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                text = archive.read(MANIFEST)
        elif path.exists():
            raise ManifestError(
                f"'{path}' is not a model file (neither a model folder nor a zip). "
                "Give the .zip written by 'Train SOC model' or 'soilcarbon train'."
            )
        else:
            raise ManifestError(f"The model file '{path}' does not exist.")
        manifest = json.loads(text)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ManifestError(
            f"'{path}' has no readable {MANIFEST} ({err}). Give the .zip written by 'Train SOC model'."
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format") != "soilcarbon-model":
        raise ManifestError(f"'{path}' is not a soil-carbon model file (its manifest has another format).")
    return manifest


def model_summary(path: str | Path) -> ModelSummary:
    """The :class:`ModelSummary` of the model at ``path`` (raises :class:`ManifestError`)."""
    manifest = read_manifest(path)
    target = manifest.get("target") or {}
    if manifest.get("kind") != "sptgnn":
        return ModelSummary(kind=str(manifest.get("kind", "")), target=str(target.get("name", "")), unit="")
    inputs = manifest.get("inputs") or {}
    sources = inputs.get("sources") or {}
    training = manifest.get("training") or {}
    chips = inputs.get("chips") or {}
    return ModelSummary(
        kind="sptgnn",
        target=str(target.get("name", "")),
        unit=str(target.get("unit", "")),
        rasters=dict(inputs.get("rasters") or {}),
        fields=[name for name, origin in sources.items() if origin == "field"],
        chip_modalities=dict(chips.get("modalities") or {}),
        date_field=inputs.get("date_field"),
        members=int(manifest.get("ensemble_size", 0)),
        samples=int(training.get("samples", 0)),
        source=str(training.get("source", "")),
        metrics=dict((manifest.get("metrics") or {}).get("validation") or {}),
        created=str(manifest.get("created", "")),
    )
