"""Settings dataclasses that travel in model manifests and worker requests as JSON objects."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Self

from soilcarbon_core.errors import InputError


class JsonSettings:
    """Mixin for a dataclass of settings: ``to_dict`` and a ``from_dict`` that names unknown keys."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(values) - known
        if unknown:
            raise InputError(
                f"Unknown {cls.__name__} settings: {', '.join(sorted(unknown))}.",
                f"Known settings: {', '.join(sorted(known))}.",
            )
        return cls(**values)
