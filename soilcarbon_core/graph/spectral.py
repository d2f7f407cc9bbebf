"""The space in which spectral similarity is measured: standardised bands, reduced by PCA when wide.

Fitted on the reference nodes only (rows with every band finite), then applied unchanged to query nodes:

    z = (x - mean) / std                      per band; constant bands (std ~ 0) are dropped
    s = z @ V                                 V: (bands, c) top-c eigenvectors of cov(z), only when bands > c

The sign of each principal axis is fixed so that its largest-magnitude loading is positive, which makes
the projection deterministic (an eigensolver may return either sign). Euclidean distance in s is the
spectral distance. PCA scores are not whitened: a component counts in proportion to the variance it
explains, so the distance approximates the distance between the full standardised spectra.
"""

from __future__ import annotations

import numpy as np

from soilcarbon_core.errors import InputError

#: A band whose standard deviation is below this fraction of its mean magnitude is treated as constant.
_CONSTANT_RTOL = 1e-10


class SpectralSpace:
    """Standardisation (and PCA) fitted on reference spectra.

    Attributes:
        bands: width of the input features, F.
        informative: ``(F,)`` bool, the bands that vary over the reference nodes.
        mean, std: ``(F,)`` reference mean and standard deviation (ddof 0) of each band.
        components: ``(F', c)`` principal axes over the informative bands, or None (no PCA).
        explained_variance_ratio: ``(c,)`` share of the standardised variance per axis, or None.
    """

    def __init__(self, features: np.ndarray, usable: np.ndarray, max_components: int) -> None:
        """Fit on ``features[usable]`` (``(N, F)``; ``usable`` ``(N,)`` bool, rows all finite)."""
        rows = features[usable]
        self.bands = features.shape[1]
        self.mean = rows.mean(axis=0)
        self.std = rows.std(axis=0)
        self.informative = (self.std > 0) & (self.std > _CONSTANT_RTOL * np.abs(self.mean))
        self.components: np.ndarray | None = None
        self.explained_variance_ratio: np.ndarray | None = None
        if int(self.informative.sum()) > max_components:
            z = self._standardise(rows)
            variance, vectors = np.linalg.eigh(z.T @ z / z.shape[0])
            top = np.argsort(variance)[::-1][:max_components]
            vectors = vectors[:, top]
            largest = np.argmax(np.abs(vectors), axis=0)
            vectors = vectors * np.sign(vectors[largest, np.arange(vectors.shape[1])])
            self.components = vectors
            self.explained_variance_ratio = variance[top] / variance.sum()

    @property
    def dims(self) -> int:
        """Dimension of the spectral space (0 when every band is constant)."""
        return int(self.informative.sum()) if self.components is None else self.components.shape[1]

    def transform(self, features: np.ndarray) -> np.ndarray:
        """``(n, F)`` features -> ``(n, dims)`` float64 points of the spectral space (NaN rows stay NaN)."""
        if features.shape[1] != self.bands:
            raise InputError(
                f"The query nodes have {features.shape[1]} spectral features but the reference graph was "
                f"built with {self.bands}.",
                "Pass the same spectral bands, in the same order, as for the reference nodes.",
            )
        z = self._standardise(features)
        return np.ascontiguousarray(z if self.components is None else z @ self.components)

    def _standardise(self, features: np.ndarray) -> np.ndarray:
        keep = self.informative
        return (features[:, keep] - self.mean[keep]) / self.std[keep]
