"""The GHG model file: a KG-FGNN ensemble with its feature schema, graphs and target transforms.

Saved like every model of the package (:mod:`soilcarbon_core.model_files`): ``manifest.json`` plus
``kgfgnn.safetensors``, with ``"kind": "ghg-kgfgnn"`` so a SOC model and a GHG model are never confused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soilcarbon_core.errors import ModelFileError
from soilcarbon_core.ghg import targets as tg
from soilcarbon_core.ghg.features import CATEGORICAL, FEATURE_NAMES, FEATURES, feature_index
from soilcarbon_core.model_files import load_model_files, save_model_files
from soilcarbon_core.settings import JsonSettings

KIND = "ghg-kgfgnn"
WEIGHTS = "kgfgnn.safetensors"
#: The model shipped with the package, produced by `make ghg-model` (training/README.md).
PRETRAINED = Path(__file__).parent / "pretrained" / "kgfgnn_ghg.zip"


@dataclass
class KGFGNNConfig(JsonSettings):
    """Architecture of the network (see :class:`soilcarbon_core.nn.kgfgnn.KGFGNN`). Narrow (16) on purpose:
    20 feature nodes need little width, and pre-training on 100,000 site-years must run on 2 CPU cores."""

    members: int = 5
    hidden: int = 16
    layers: int = 2
    heads: int = 2
    latent: int = 8
    dropout: float = 0.1
    sample_graph_k: int = 0


@dataclass
class GHGModel:
    """A trained KG-FGNN ensemble and what is needed to use it.

    ``target_mean``, ``target_sd`` (T, P): standardisation of the transformed targets
    (:mod:`soilcarbon_core.ghg.targets`); the network predicts standardised values.
    """

    network: object
    config: KGFGNNConfig
    target_mean: np.ndarray
    target_sd: np.ndarray
    training: dict = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        config: KGFGNNConfig,
        graphs: np.ndarray,
        feature_mean: np.ndarray,
        feature_sd: np.ndarray,
        target_mean: np.ndarray,
        target_sd: np.ndarray,
        seed: int = 0,
    ) -> GHGModel:
        import torch

        from soilcarbon_core.nn.kgfgnn import KGFGNN

        torch.manual_seed(seed)
        network = KGFGNN(
            torch.as_tensor(graphs, dtype=torch.float32),
            torch.as_tensor(feature_mean, dtype=torch.float32),
            torch.as_tensor(feature_sd, dtype=torch.float32),
            {feature_index(name): n for name, n in CATEGORICAL.items()},
            members=config.members,
            hidden=config.hidden,
            layers=config.layers,
            heads=config.heads,
            latent=config.latent,
            periods=len(tg.PERIODS),
            dropout=config.dropout,
            sample_graph_k=config.sample_graph_k,
        )
        return cls(network, config, np.asarray(target_mean, float), np.asarray(target_sd, float))

    def predict(self, features: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble predictions in the transformed (not standardised) target space.

        Shapes: ``features`` (N, F) raw values with NaN for unknown -> mean, variance (M, N, T, P).
        """
        import torch

        network = self.network
        network.eval()
        means, variances = [], []
        with torch.no_grad():
            for start in range(0, features.shape[0], batch_size):
                x = torch.as_tensor(features[start : start + batch_size], dtype=torch.float32)
                out = network(x)
                means.append(out.mean.double().numpy())
                variances.append(out.variance.double().numpy())
        mean = np.concatenate(means, axis=1) * self.target_sd + self.target_mean
        variance = np.concatenate(variances, axis=1) * self.target_sd**2
        return mean, variance

    def manifest(self) -> dict:
        from soilcarbon_core.model import versions

        return {
            "kind": KIND,
            "predicts": {
                "targets": list(tg.TARGETS),
                "periods": list(tg.PERIODS),
                "units": tg.UNITS,
                "transforms": "n2o: log(y + 0.1); co2: log(y + 10); ch4: asinh(y / 0.5)",
            },
            "features": [
                {"name": f.name, "unit": f.unit, "group": f.group, "description": f.description}
                for f in FEATURES
            ],
            "config": self.config.to_dict(),
            "target_mean": self.target_mean.tolist(),
            "target_sd": self.target_sd.tolist(),
            "training": self.training,
            "versions": versions(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        return save_model_files(path, self.manifest(), {WEIGHTS: self.network.state_dict()})

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> GHGModel:
        """Load a GHG model file; the shipped pre-trained model when ``path`` is None."""
        path = PRETRAINED if path is None else Path(path)
        manifest, tensors = load_model_files(path)
        if manifest.get("kind") != KIND:
            raise ModelFileError(
                f"'{path}' is not a GHG model (it is a {manifest.get('kind', 'SOC')} model).",
                "Give a model written by 'soilcarbon ghg train', or none for the shipped one.",
            )
        names = [f["name"] for f in manifest["features"]]
        if names != list(FEATURE_NAMES):
            raise ModelFileError(
                f"'{path}' was trained on other features ({', '.join(names)}).",
                "Use a model made by this version of soilcarbon.",
            )
        state = tensors[WEIGHTS]
        model = cls.build(
            KGFGNNConfig.from_dict(manifest["config"]),
            state["graphs"].numpy(),
            state["feature_mean"].numpy(),
            state["feature_sd"].numpy(),
            np.asarray(manifest["target_mean"]),
            np.asarray(manifest["target_sd"]),
        )
        model.network.load_state_dict(state)
        model.training = manifest.get("training", {})
        return model
