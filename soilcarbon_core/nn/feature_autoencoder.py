"""KG-FGNN's autoencoder of the agricultural feature vector, with missing values and masked training."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def category_index(codes: torch.Tensor, categories: int) -> torch.Tensor:
    """Integer category codes (float, NaN = missing) -> long indices, missing mapped to ``categories``.

    Shapes: ``codes`` (B,) -> (B,). Raises ``ValueError`` for a code that is not an integer in
    [0, categories): a wrong code is a data error that must not be embedded silently.
    """
    missing = torch.isnan(codes)
    filled = torch.where(missing, torch.zeros_like(codes), codes)
    if bool(((filled != filled.round()) | (filled < 0) | (filled >= categories)).any()):
        raise ValueError(f"Category codes must be integers in [0, {categories}) or NaN (missing).")
    return torch.where(missing, torch.full_like(filled, categories), filled).long()


def mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    """``Linear -> GELU -> Linear -> GELU -> Linear``."""
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.GELU(),
        nn.Linear(hidden, hidden),
        nn.GELU(),
        nn.Linear(hidden, out_features),
    )


class FeatureAutoencoder(nn.Module):
    r"""An MLP autoencoder of a partly observed feature vector: x (B, F) -> latent z (B, L) -> x̂ (B, F).

    Encoder input, for the numeric columns :math:`N` and categorical columns :math:`C`:

    .. math:: u = \big[\, x_N \text{ (NaN} \to 0),\ \mathrm{onehot}(x_c)_{c \in C},\ m \,\big], \qquad
              z = \mathrm{MLP}_{enc}(u), \qquad \hat x_N = \mathrm{MLP}_{dec}(z)

    where :math:`m \in \{0, 1\}^F` flags the missing entries (a missing category has an all-zero one-hot),
    so a missing value is never confused with the mean (0 after standardisation).

    Categorical columns (the crop code) feed the encoder but are not reconstructed: their entries of
    x̂ are NaN, which :func:`reconstruction_loss` skips. The autoencoder owns no normalisation: numeric
    columns arrive standardised (KG-FGNN standardises) and categorical ones as integer codes.

    Args:
        features: F, the number of columns.
        categorical: column index -> number of categories.
        latent: L, the width of the code.
        hidden: width of the two hidden layers of encoder and decoder.

    Shapes: ``x`` (B, F) -> ``(z, x_hat)``: z (B, L), x_hat (B, F).
    """

    def __init__(
        self, features: int, categorical: dict[int, int] | None = None, latent: int = 8, hidden: int = 64
    ) -> None:
        super().__init__()
        self.categorical = dict(sorted((categorical or {}).items()))
        if any(not 0 <= c < features for c in self.categorical):
            raise ValueError(
                f"categorical columns must lie in [0, {features}), not {list(self.categorical)}."
            )
        self.features, self.latent = features, latent
        numeric = [c for c in range(features) if c not in self.categorical]
        self.register_buffer("numeric", torch.tensor(numeric, dtype=torch.long), persistent=False)
        encoder_in = len(numeric) + sum(self.categorical.values()) + features
        self.encoder = mlp(encoder_in, hidden, latent)
        self.decoder = mlp(latent, hidden, len(numeric))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised features (B, F), NaN for missing -> latent code (B, L)."""
        missing = torch.isnan(x)
        parts = [torch.where(missing, 0.0, x).index_select(1, self.numeric)]
        for column, categories in self.categorical.items():
            index = category_index(x[:, column], categories)
            # The extra class "missing" is dropped: a missing category is an all-zero one-hot.
            parts.append(F.one_hot(index, categories + 1)[:, :categories].to(x.dtype))
        parts.append(missing.to(x.dtype))
        return self.encoder(torch.cat(parts, dim=1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent code (B, L) -> reconstruction (B, F), NaN in the categorical columns."""
        numeric = self.decoder(z)
        out = numeric.new_full((z.shape[0], self.features), float("nan"))
        return out.index_copy(1, self.numeric, numeric)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decode(z)


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    r"""Mean squared error over the entries observed in ``x`` and reconstructed in ``x_hat``.

    .. math:: L = \frac{1}{|O|} \sum_{(b, f) \in O} (\hat x_{bf} - x_{bf})^2, \quad
              O = \{(b, f) : x_{bf}, \hat x_{bf} \text{ finite}\}

    A missing target entry contributes nothing (value and gradient); 0 when O is empty.
    Shapes: (B, F), (B, F) -> scalar.
    """
    observed = torch.isfinite(x) & torch.isfinite(x_hat)
    # torch.where, not a product with the mask: NaN * 0 is NaN and would poison the gradient.
    squared = torch.where(observed, x_hat - torch.where(observed, x, 0.0), 0.0).square()
    return squared.sum() / observed.sum().clamp(min=1)


def mask_features(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A copy of ``x`` (B, F) with each observed entry hidden (set to NaN) independently with probability p.

    Denoising training: encode ``mask_features(x, p)`` and score the reconstruction against ``x``, so the
    code learns to infer a feature from the others, as it must at prediction time when few are known.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], not {p}.")
    hide = torch.rand(x.shape, generator=generator, device=x.device) < p
    return torch.where(hide, float("nan"), x)


@torch.no_grad()
def feature_sensitivity(autoencoder: FeatureAutoencoder, x: torch.Tensor) -> np.ndarray:
    r"""How much the autoencoder relies on each feature to reconstruct the *other* features.

    For feature f, hide it (NaN) in every row where it is observed and measure the increase of the
    squared reconstruction error of the other observed, reconstructed features g:

    .. math:: S_f = \operatorname{mean}_{b \in R_f} \operatorname{mean}_{g \in O_b \setminus f}
              \big[(\hat x^{(-f)}_{bg} - x_{bg})^2 - (\hat x_{bg} - x_{bg})^2\big]

    with :math:`R_f` the rows where f and at least one other numeric feature are observed. In
    standardised units S_f is the share of the others' variance lost without f: it is large for a
    feature that carries information the others share (a driver of the data) and near 0 (possibly
    slightly negative) for one the code ignores or that is pure noise. The change of the latent code
    is not used: a noise feature the code stores verbatim moves the code a lot while telling nothing
    about the rest, and a driver measured by several redundant features moves it little.

    Shapes: ``x`` (N, F) standardised, NaN for missing -> (F,) float64; NaN where S_f cannot be
    measured (f never observed together with another numeric feature).
    """
    was_training = autoencoder.training
    autoencoder.eval()
    try:
        x_hat = autoencoder(x)[1]
        observed = torch.isfinite(x) & torch.isfinite(x_hat)  # the entries scored: observed numeric ones
        base = torch.where(observed, x_hat - torch.where(observed, x, 0.0), 0.0).square()
        out = np.full(x.shape[1], np.nan)
        for f in range(x.shape[1]):
            others = observed.clone()
            others[:, f] = False
            rows = torch.isfinite(x[:, f]) & others.any(dim=1)
            if not bool(rows.any()):
                continue
            hidden = x[rows].clone()
            hidden[:, f] = float("nan")
            error = (autoencoder(hidden)[1] - torch.where(others[rows], x[rows], 0.0)).square()
            increase = torch.where(others[rows], error - base[rows], 0.0)
            out[f] = float((increase.sum(1) / others[rows].sum(1)).mean())
        return out
    finally:
        autoencoder.train(was_training)
