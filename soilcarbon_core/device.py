"""Choosing the compute device: ``auto`` takes the GPU when there is one, CPU-only machines just work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def one_thread_each() -> Iterator[None]:
    """Torch's, numpy's BLAS and the KD-tree's work on one thread each inside the block, restored after.

    For work split into tasks that run on parallel threads (or forked processes), one core per task:
    the intra-op threads of several tasks would otherwise contend for the same cores. OpenMP slows down
    several times over; OpenBLAS (numpy's matrix products) keeps its idle threads spinning for a while
    after every product, so on a 2-core machine two map windows side by side each took 4.85 s instead of
    4.08 s (training/reports/bench_map_windows.md)."""
    import torch
    from threadpoolctl import threadpool_limits

    from soilcarbon_core.graph import neighbours

    threads = torch.get_num_threads()
    workers = neighbours.set_workers(1)
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(threads)
        neighbours.set_workers(workers)
