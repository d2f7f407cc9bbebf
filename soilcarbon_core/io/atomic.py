"""Atomic file output: write beside the destination under a temporary name, then rename.

A reader never sees a half-written file: the destination either keeps its old content or gets the
complete new one. On any error (or cancel) the temporary file and its SQLite sidecars are removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from soilcarbon_core.errors import OutputError

#: Sidecar files that SQLite-based formats (GeoPackage) may leave next to the main file.
_SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")


def partial_path(destination: Path, pid: int | None = None) -> Path:
    """The temporary name used while ``destination`` is being written by process ``pid``.

    It is hidden, keeps the suffix (drivers pick the format from it) and carries the writer's pid, so
    a supervisor that had to kill a writer knows exactly which leftovers to remove.
    """
    pid = os.getpid() if pid is None else pid
    return destination.with_name(f".{destination.stem}.partial-{pid}{destination.suffix}")


def remove_partial(path: Path) -> None:
    """Remove a temporary output and its sidecars, if present."""
    for candidate in [path, *(path.with_name(path.name + s) for s in _SIDECAR_SUFFIXES)]:
        candidate.unlink(missing_ok=True)


@contextmanager
def atomic_output(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; rename it to ``destination`` when the block succeeds."""
    destination = Path(destination)
    if not destination.parent.is_dir():
        raise OutputError(
            f"Cannot write '{destination}': the folder '{destination.parent}' does not exist.",
            "Create the folder or choose another output path.",
        )
    if destination.is_dir():
        raise OutputError(f"Cannot write '{destination}': it is a folder.", "Give a file name.")
    temporary = partial_path(destination)
    remove_partial(temporary)
    try:
        yield temporary
        if not temporary.exists():
            raise OutputError(f"Nothing was written for '{destination}'.")
        os.replace(temporary, destination)
    except BaseException:
        remove_partial(temporary)
        raise
    finally:
        # Sidecars of a cleanly closed GeoPackage are already gone; remove any stragglers.
        remove_partial(temporary)
