"""Progress reporting shared by the CLI, the worker and library callers.

A progress callback takes a fraction in [0, 1] and a short message. Callers that can be cancelled (the
worker) raise :class:`~soilcarbon_core.errors.Cancelled` from inside the callback, so every place that
reports progress is also a place where work stops promptly and cleanly.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[float, str], None]


def silent(fraction: float, message: str = "") -> None:
    """A progress callback that reports nothing."""


def scaled(progress: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """Map a sub-task's [0, 1] progress onto [start, end] of the parent's."""

    def report(fraction: float, message: str = "") -> None:
        progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report
