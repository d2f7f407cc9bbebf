"""The settings of the three-relation soil graph, validated and JSON-serialisable.

They are stored with a trained model (``to_dict`` / ``from_dict``) so that query nodes are attached at
prediction time through exactly the relations the model was trained on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

from soilcarbon_core.errors import InputError

#: The relations of the soil graph, in this order everywhere (model code indexes relations by position).
RELATIONS = ("spatial", "spectral", "elevation")

_COUNTS = ("k_spatial", "k_spectral", "spectral_components", "k_elevation", "candidates")
_DISTANCES = ("max_distance_m", "spectral_radius_m", "elevation_radius_m")


@dataclass
class GraphParams:
    """How many neighbours each relation takes, and where it looks for them.

    Attributes:
        k_spatial: spatial relation: the k nearest nodes (great-circle metres for geographic coordinates).
        max_distance_m: spatial relation: drop neighbours farther than this (metres); None keeps all k.
        k_spectral: spectral relation: the k nodes with the most similar spectra.
        spectral_radius_m: None: the k most similar spectra among all nodes (global kNN in spectral
            space). A number: the k most similar among the ``candidates`` spatially nearest nodes that
            lie within this radius (metres), so spectral edges stay local.
        spectral_components: the standardised spectral features are reduced to this many principal
            components (fitted on the reference nodes) when they are wider.
        k_elevation: elevation relation: among the ``candidates`` spatially nearest nodes (within
            ``elevation_radius_m`` when set) the k whose elevation differs least.
        elevation_radius_m: the spatial neighbourhood of the elevation relation (metres); None: just the
            ``candidates`` nearest nodes, however far.
        candidates: how many spatially nearest nodes the restricted relations examine per node; bounds the
            work per node. Must be at least the k of every restricted relation.
        slope_weight: w in the elevation score |dz| / s_z + w |d slope| / s_slope when slopes are given
            (s_z, s_slope: standard deviations over the reference nodes); 0 ignores the slope in the
            choice of neighbours (the slope difference is still an edge attribute).
    """

    k_spatial: int = 8
    max_distance_m: float | None = None
    k_spectral: int = 8
    spectral_radius_m: float | None = None
    spectral_components: int = 8
    k_elevation: int = 8
    elevation_radius_m: float | None = None
    candidates: int = 64
    slope_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in _COUNTS:
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise InputError(
                    f"Graph setting '{name}' must be a whole number of at least 1, not {value!r}.",
                    f"Set '{name}' to 1 or more.",
                )
            setattr(self, name, int(value))
        for name in _DISTANCES:
            value = getattr(self, name)
            if value is None:
                continue
            if not _finite_real(value) or value <= 0:
                raise InputError(
                    f"Graph setting '{name}' must be a distance in metres greater than 0, not {value!r}.",
                    f"Give a positive number of metres, or leave '{name}' empty (null) for no limit.",
                )
            setattr(self, name, float(value))
        if not _finite_real(self.slope_weight) or self.slope_weight < 0:
            raise InputError(
                f"Graph setting 'slope_weight' must be a number of at least 0, not {self.slope_weight!r}.",
                "Use 0 to ignore slope when choosing elevation neighbours, 1 to weigh it like elevation.",
            )
        self.slope_weight = float(self.slope_weight)
        restricted = {"k_elevation": self.k_elevation}
        if self.spectral_radius_m is not None:
            restricted["k_spectral"] = self.k_spectral
        for name, k in restricted.items():
            if k > self.candidates:
                raise InputError(
                    f"Graph setting '{name}' ({k}) is larger than 'candidates' ({self.candidates}), the "
                    "number of spatial neighbours it chooses from.",
                    f"Raise 'candidates' to at least {k}, or lower '{name}'.",
                )

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict (numbers and None only)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphParams:
        """Settings from ``to_dict()`` output; keys left out take their defaults.

        Raises:
            InputError: ``data`` is not a mapping, has keys that are not settings, or has invalid values.
        """
        if not isinstance(data, dict):
            raise InputError(
                f"Graph settings must be a mapping of names to values, not {type(data).__name__}.",
                "Pass the dict that GraphParams.to_dict() wrote.",
            )
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise InputError(
                f"Unknown graph setting(s): {', '.join(unknown)}.",
                f"Known settings: {', '.join(known)}. Check the spelling, or the version of the model file.",
            )
        return cls(**data)


def _finite_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
