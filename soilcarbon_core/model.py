"""A trained SpTGNN model: network, reference nodes, normalisation, graph, calibration and manifest."""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

import soilcarbon_core
from soilcarbon_core.errors import InputError, ModelFileError
from soilcarbon_core.features import NodeTable, Normaliser
from soilcarbon_core.graph import GraphParams
from soilcarbon_core.model_files import load_model_files, save_model_files
from soilcarbon_core.predictor import EnsemblePredictor
from soilcarbon_core.schema import InputSchema
from soilcarbon_core.uncertainty import calibrator_from_dict

WEIGHTS = "weights.safetensors"
REFERENCE = "reference.safetensors"
#: The fine-tuned TerraMind head of the imagery stream (shared by all members), when there is one.
BACKBONE = "backbone.safetensors"
_TABLE_FIELDS = ("lonlat", "xy", "covariates", "imagery", "decimal_year", "elevation", "slope")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {
        "soilcarbon_core": soilcarbon_core.__version__,
        "python": platform.python_version(),
    }
    for package in ("torch", "numpy", "torch-geometric", "safetensors"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


@dataclass
class SoilCarbonModel:
    """Everything needed to predict a target with uncertainty at new places."""

    target: str
    unit: str
    schema: InputSchema
    network: object  #: soilcarbon_core.nn.SpTGNN
    normaliser: Normaliser
    graph_params: GraphParams
    reference: NodeTable
    reference_target: np.ndarray
    calibrator: object = None
    backbone: dict | None = None  #: fine-tuned imagery head tensors (soilcarbon_core.imagery.head)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def predictor(self, device=None) -> EnsemblePredictor:
        return EnsemblePredictor(
            self.network,
            self.normaliser,
            self.graph_params,
            self.reference,
            self.reference_target,
            geographic=self.schema.geographic,
            calibrator=self.calibrator,
            device=device,
        )

    def manifest(self) -> dict:
        return {
            "kind": "sptgnn",
            "target": {"name": self.target, "unit": self.unit},
            "inputs": self.schema.to_dict(),
            "normalisation": self.normaliser.to_dict(),
            "graph": self.graph_params.to_dict(),
            "model": self.network.config.to_dict(),
            "ensemble_size": self.network.config.members,
            "calibration": None if self.calibrator is None else self.calibrator.to_dict(),
            "reference_nodes": len(self.reference),
            "training": self.training,
            "metrics": self.metrics,
            "versions": versions(),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        import torch

        table = {
            name: torch.tensor(np.asarray(value, dtype=np.float64))
            for name in _TABLE_FIELDS
            if (value := getattr(self.reference, name)) is not None
        }
        table["target"] = torch.tensor(np.asarray(self.reference_target, dtype=np.float64))
        files = {WEIGHTS: self.network.state_dict(), REFERENCE: table}
        if self.backbone is not None:
            files[BACKBONE] = self.backbone
        return save_model_files(path, self.manifest(), files)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SoilCarbonModel:
        from soilcarbon_core.nn import SpTGNN, SpTGNNConfig

        manifest, tensors = load_model_files(path)
        if manifest.get("kind") == "ghg-kgfgnn":
            raise ModelFileError(
                f"'{path}' is a GHG flux model, not a SOC model.", "Use it with 'soilcarbon ghg predict'."
            )
        try:
            network = SpTGNN(SpTGNNConfig.from_dict(manifest["model"]))
            network.load_state_dict(tensors[WEIGHTS])
            reference = {k: v.numpy() for k, v in tensors[REFERENCE].items()}
            target = reference.pop("target")
            model = cls(
                target=manifest["target"]["name"],
                unit=manifest["target"]["unit"],
                schema=InputSchema.from_dict(manifest["inputs"]),
                network=network.eval(),
                normaliser=Normaliser.from_dict(manifest["normalisation"]),
                graph_params=GraphParams.from_dict(manifest["graph"]),
                reference=NodeTable(**{k: reference.get(k) for k in _TABLE_FIELDS}),
                reference_target=target,
                calibrator=None
                if manifest["calibration"] is None
                else calibrator_from_dict(manifest["calibration"]),
                backbone=tensors.get(BACKBONE),
                training=manifest.get("training", {}),
                metrics=manifest.get("metrics", {}),
            )
        except (InputError, KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ModelFileError(
                f"The model '{path}' is incomplete or inconsistent ({type(err).__name__}: {err}).",
                "It was written by an incompatible version or damaged; retrain it.",
            ) from err
        return model
