"""File outputs and the files that travel with them, for cleaning up after a cancelled run."""

from __future__ import annotations

import os
from pathlib import Path

#: Files SQLite-based formats (GeoPackage) may keep beside the main file.
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
#: Files a Shapefile consists of besides the .shp.
SHAPEFILE_PARTS = (".dbf", ".shx", ".prj", ".cpg", ".qpj")


def with_sidecars(path: Path) -> list[Path]:
    """``path`` and every file that belongs to it."""
    files = [path, *(path.with_name(path.name + suffix) for suffix in SQLITE_SIDECARS)]
    if path.suffix.lower() == ".shp":
        files += [path.with_suffix(suffix) for suffix in SHAPEFILE_PARTS]
    return files


def partial_outputs(destination: str, pid: int) -> list[Path]:
    """What a worker with ``pid`` leaves while writing ``destination``.

    The worker writes ``.<stem>.partial-<pid><suffix>`` and renames it when complete (the core's
    ``soilcarbon_core.io.atomic.partial_path``, which the plugin may not import).
    """
    path = Path(destination)
    return with_sidecars(path.with_name(f".{path.stem}.partial-{pid}{path.suffix}"))


def remove_with_sidecars(path: Path) -> None:
    for candidate in with_sidecars(path):
        if candidate.exists():
            os.remove(candidate)
