"""Training KG-FGNN: the autoencoder, pre-training on simulations, fine-tuning on real measurements.

1. Standardisation of the features and of the transformed targets (:mod:`soilcarbon_core.ghg.targets`)
   from the simulations; one feature graph per gas from their rank correlations
   (:func:`soilcarbon_core.ghg.graphs.feature_graphs`).
2. The autoencoder is trained alone first (denoising: 15 % of the entries hidden, scored against the
   full row), then frozen: its code is a fixed summary of the agricultural vector that the GNN reads.
3. Pre-training ("foundation"): all members on all six outputs (3 gases x season, year) with beta-NLL,
   early-stopped on 10 % of the sites held out. Each row is shown with features hidden at random in
   the patterns real tables have (:func:`hide_like_real_tables`), so the model learns to predict from
   what is known and to widen its uncertainty for what is not.
4. Fine-tuning on a real table: one output (e.g. annual N2O) with beta-NLL, the parameters of
   ``mode`` only, early-stopped on a held-out share of the table's studies (grouped, like the test).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from soilcarbon_core.ghg import targets as tg
from soilcarbon_core.ghg.features import CATEGORICAL, FEATURES, FERTILISER_SHARES, feature_index
from soilcarbon_core.ghg.graphs import feature_graphs
from soilcarbon_core.ghg.model import GHGModel, KGFGNNConfig
from soilcarbon_core.nn.feature_autoencoder import mask_features, reconstruction_loss
from soilcarbon_core.progress import ProgressCallback, silent
from soilcarbon_core.settings import JsonSettings

from ..losses import beta_nll
from .scenarios import SimulatedData

CORE_FEATURES = ("soc", "n_rate", *FERTILISER_SHARES)
CLIMATE = tuple(f.name for f in FEATURES if f.group == "climate")


@dataclass
class PretrainConfig(JsonSettings):
    epochs: int = 10
    autoencoder_epochs: int = 3
    #: Rows drawn (without replacement) per epoch: an epoch is a fixed amount of work on 2 CPU cores.
    rows_per_epoch: int = 16_384
    batch_size: int = 1024
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    beta: float = 0.5
    validation_share: float = 0.1
    patience: int = 3
    seed: int = 0


@dataclass
class FinetuneConfig(JsonSettings):
    mode: str = "heads"
    epochs: int = 300
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    beta: float = 0.5
    validation_share: float = 0.2
    patience: int = 30
    seed: int = 0


def hide_like_real_tables(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of the raw features (B, F) with entries set to NaN in the patterns of real data:

    - 20 % of rows keep only SOC, N rate and fertiliser type (a meta-analysis table like SESYNC's);
    - otherwise the whole climate is hidden with probability 0.3, each other feature with 0.15, the
      fertiliser type with 0.1 and the crop with 0.15. The N rate is never hidden.
    """
    x = x.copy()
    b = x.shape[0]
    core = np.array([feature_index(n) for n in CORE_FEATURES])
    core_only = rng.random(b) < 0.2
    keep = np.zeros(x.shape[1], bool)
    keep[core] = True
    x[np.ix_(core_only, ~keep)] = np.nan
    rest = ~core_only
    climate = np.array([feature_index(n) for n in CLIMATE])
    x[np.ix_(rest & (rng.random(b) < 0.3), climate)] = np.nan
    hide = (rng.random(x.shape) < 0.15) & rest[:, None]
    hide[:, [feature_index("n_rate"), *[feature_index(n) for n in FERTILISER_SHARES]]] = False
    x[hide] = np.nan
    shares = np.array([feature_index(n) for n in FERTILISER_SHARES])
    x[np.ix_(rest & (rng.random(b) < 0.1), shares)] = np.nan
    return x


def _feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, sd = np.nanmean(features, axis=0), np.nanstd(features, axis=0)
    for name in CATEGORICAL:
        mean[feature_index(name)], sd[feature_index(name)] = 0.0, 1.0
    return mean, np.where(sd > 0, sd, 1.0)


def transformed_targets(data: SimulatedData) -> np.ndarray:
    """(N, T, P) transformed targets of the simulations (TARGET_COLUMNS are gas-major, then period)."""
    return tg.forward_all(data.targets.reshape(-1, len(tg.TARGETS), len(tg.PERIODS)))


def _site_split(sites: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    unique = np.unique(sites)
    held = rng.choice(unique, size=max(1, round(share * unique.size)), replace=False)
    validation = np.isin(sites, held)
    return np.flatnonzero(~validation), np.flatnonzero(validation)


def pretrain(
    data: SimulatedData,
    model_config: KGFGNNConfig | None = None,
    config: PretrainConfig | None = None,
    progress: ProgressCallback = silent,
) -> tuple[GHGModel, dict]:
    """Build and pre-train a GHG model on simulated site-years; returns the model and its history."""
    model_config = model_config or KGFGNNConfig()
    config = config or PretrainConfig()
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    y = transformed_targets(data)
    target_mean, target_sd = y.mean(axis=0), y.std(axis=0)
    feature_mean, feature_sd = _feature_statistics(data.features)
    graphs = feature_graphs(data.features, y[:, :, 1])
    model = GHGModel.build(
        model_config, graphs, feature_mean, feature_sd, target_mean, target_sd, config.seed
    )
    network = model.network
    fit, validation = _site_split(data.site, config.validation_share, rng)
    validation = validation[: config.rows_per_epoch // 2]
    x_all = torch.as_tensor(data.features, dtype=torch.float32)
    y_all = torch.as_tensor((y - target_mean) / target_sd, dtype=torch.float32)
    history: dict[str, list] = {"autoencoder": [], "fit": [], "validation": []}

    autoencoder = network.autoencoder
    optimiser = torch.optim.AdamW(autoencoder.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    total_epochs = config.autoencoder_epochs + config.epochs
    for epoch in range(config.autoencoder_epochs):
        losses = []
        # The autoencoder is a small MLP: every epoch covers all fit rows.
        for batch in _batches(fit, config.batch_size, rng):
            x = network.standardise(x_all[batch])
            _, x_hat = autoencoder(mask_features(x, 0.15, generator))
            loss = reconstruction_loss(x, x_hat)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        history["autoencoder"].append(float(np.mean(losses)))
        progress((epoch + 1) / total_epochs, f"autoencoder epoch {epoch + 1}: {losses[-1]:.3f}")
    for parameter in autoencoder.parameters():
        parameter.requires_grad_(False)

    trainable = [p for p in network.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    stopper = BestState(network, config.patience)
    x_val = torch.as_tensor(
        hide_like_real_tables(data.features[validation], np.random.default_rng(1)), dtype=torch.float32
    )
    for epoch in range(config.epochs):
        network.train()
        losses = []
        for batch in _batches(fit, config.batch_size, rng, config.rows_per_epoch):
            x = torch.as_tensor(hide_like_real_tables(data.features[batch], rng), dtype=torch.float32)
            out = network(x)
            loss = _nll(out.mean, out.variance, y_all[batch], config.beta).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        network.eval()
        with torch.no_grad():
            val = float(
                np.mean(
                    [
                        _nll(o.mean, o.variance, y_all[validation][i : i + 4096], 0.0).mean().item()
                        for i in range(0, validation.size, 4096)
                        for o in [network(x_val[i : i + 4096])]
                    ]
                )
            )
        history["fit"].append(float(np.mean(losses)))
        history["validation"].append(val)
        progress(
            (config.autoencoder_epochs + epoch + 1) / total_epochs,
            f"epoch {epoch + 1}: validation NLL {val:.3f}",
        )
        if stopper.stop(val):
            break
    stopper.restore()
    network.eval()
    return model, history


class BestState:
    """Early stopping: keeps the network's state at its lowest validation loss."""

    def __init__(self, network: torch.nn.Module, patience: int) -> None:
        self.network, self.patience = network, patience
        self.best, self.state, self.waited = np.inf, None, 0

    def stop(self, loss: float) -> bool:
        """Record an epoch's validation loss; True once ``patience`` epochs passed without improvement."""
        if loss < self.best - 1e-4:
            self.best, self.state, self.waited = loss, copy.deepcopy(self.network.state_dict()), 0
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self) -> None:
        """Load the best state; make every parameter trainable again (fine-tuning froze some)."""
        self.network.load_state_dict(self.state)
        for parameter in self.network.parameters():
            parameter.requires_grad_(True)


def _batches(index: np.ndarray, size: int, rng: np.random.Generator, rows: int | None = None):
    order = rng.permutation(index)[:rows]
    for start in range(0, order.size, size):
        yield order[start : start + size]


def _nll(mean: torch.Tensor, variance: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """beta-NLL per member over every output: (M, B, T, P), (B, T, P) -> (M,)."""
    members = mean.shape[0]
    return beta_nll(mean.reshape(members, -1), variance.reshape(members, -1), target.reshape(-1), beta)


def output_index(target: str, period: str = "annual") -> tuple[int, int]:
    """(t, p) of one output."""
    return tg.TARGETS.index(target), tg.PERIODS.index(period)


def finetune(
    model: GHGModel,
    features: np.ndarray,
    flux: np.ndarray,
    groups: np.ndarray,
    target: str,
    config: FinetuneConfig | None = None,
) -> tuple[GHGModel, dict]:
    """A copy of ``model`` fine-tuned on real fluxes of one gas (annual output). Early stopping on a
    held-out share of the groups (studies); the model is returned at its best validation NLL."""
    config = config or FinetuneConfig()
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    tuned = copy.deepcopy(model)
    network = tuned.network
    t, p = output_index(target)
    z = (tg.forward(target, flux) - tuned.target_mean[t, p]) / tuned.target_sd[t, p]
    fit, validation = _site_split(groups, config.validation_share, rng)
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(z, dtype=torch.float32)
    trainable = network.trainable_for_finetune(config.mode)
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    network.eval()  # dropout off: a few hundred rows are fitted full-batch
    if config.mode == "heads":
        # Only the heads change, so the pooled node states are computed once.
        with torch.no_grad():
            _, pooled, _ = network.encode(x)

        def forward(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            outputs = [member.predict(pooled[m][rows], None) for m, member in enumerate(network.members)]
            return torch.stack([o[0] for o in outputs]), torch.stack([o[1] for o in outputs])

    else:

        def forward(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            out = network(x[rows])
            return out.mean, out.variance

    def loss_of(rows: np.ndarray, beta: float) -> torch.Tensor:
        mean, variance = forward(rows)
        return beta_nll(mean[:, :, t, p], variance[:, :, t, p], y[rows], beta).mean()

    with torch.no_grad():
        start = loss_of(validation, 0.0).item()
    stopper = BestState(network, config.patience)
    stopper.stop(start)
    history = {"validation": [start]}
    for _ in range(config.epochs):
        loss = loss_of(fit, config.beta)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            val = loss_of(validation, 0.0).item()
        history["validation"].append(val)
        if stopper.stop(val):
            break
    stopper.restore()
    history["epochs"] = len(history["validation"]) - 1
    return tuned, history


def predictive_mean(model: GHGModel, features: np.ndarray, target: str, samples: int = 2000, seed: int = 0):
    """Mean, sd and 5 / 95 % quantiles (N,) of the annual flux of one gas, from predictive samples."""
    mean, variance = model.predict(features)
    draws = tg.sample_fluxes(mean, variance, samples, np.random.default_rng(seed))
    t, p = output_index(target)
    values = draws[:, :, t, p]
    return (
        values.mean(axis=0),
        values.std(axis=0),
        np.quantile(values, 0.05, axis=0),
        np.quantile(values, 0.95, axis=0),
    )
