"""Choosing the compute device: ``auto`` takes the GPU when there is one, CPU-only machines just work."""

from __future__ import annotations

from soilcarbon_core.errors import InputError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto"):
    """``auto`` | ``cpu`` | ``cuda`` (or ``cuda:N``) -> a ``torch.device``; a clear error without a GPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(
                f"The device '{name}' was asked for, but this PyTorch sees no CUDA GPU.",
                "Use --device auto (GPU when there is one) or --device cpu.",
            )
        return torch.device(name)
    raise InputError(f"Unknown device '{name}'.", f"Use one of: {', '.join(DEVICES)}.")
