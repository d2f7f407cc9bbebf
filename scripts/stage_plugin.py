"""Assemble the installable plugin folder (and optionally its zip), standard library only.

The folder is ``soilcarbon/``: the contents of ``plugin/``, ``metadata.txt``, ``LICENSE`` and, under
``core/``, the pure-Python ``soilcarbon_core`` package that the worker runs and, under ``core/training/``,
the ``soilcarbon_training`` package for training from QGIS (the plugin never imports either).

Before anything is installed or zipped, the staged folder is checked against what the QGIS plugin
repository requires (metadata fields, licence, icon, no compiled binaries, zip under 25 MB).

    python scripts/stage_plugin.py --dir PROFILE/python/plugins   # install into a QGIS profile
    python scripts/stage_plugin.py --zip dist/                    # dist/soilcarbon-VERSION.zip
"""

from __future__ import annotations

import argparse
import configparser
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "soilcarbon"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".ruff_cache")
#: The plugin repository's upper limit for an uploaded zip.
MAX_ZIP_BYTES = 25_000_000
#: metadata.txt fields the QGIS plugin repository requires or expects.
REQUIRED_METADATA = (
    "name",
    "qgisMinimumVersion",
    "description",
    "about",
    "version",
    "author",
    "email",
    "repository",
    "tracker",
    "homepage",
    "category",
    "icon",
    "tags",
    "hasProcessingProvider",
    "experimental",
    "deprecated",
    "changelog",
)
#: Compiled code: the repository rejects it, and it would tie the plugin to one platform.
BINARY_NAME = re.compile(r"\.(so(\.\d+)*|pyd|dll|exe|dylib|pyc|pyo|o|a|lib)$", re.IGNORECASE)
BINARY_MAGIC = (b"\x7fELF", b"MZ", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


class PackageError(Exception):
    """The plugin cannot be staged or packaged; the message says what is wrong and how to fix it."""


def read_metadata(folder: Path) -> dict[str, str]:
    """The ``[general]`` section of ``folder/metadata.txt`` (empty when the file is missing)."""
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    metadata.read(folder / "metadata.txt", encoding="utf-8")
    return dict(metadata["general"]) if metadata.has_section("general") else {}


def is_binary(path: Path) -> bool:
    """Whether ``path`` is compiled code, by its name or by its first bytes (ELF, PE, Mach-O)."""
    if BINARY_NAME.search(path.name):
        return True
    with path.open("rb") as handle:
        return handle.read(4).startswith(BINARY_MAGIC)


def problems(folder: Path) -> list[str]:
    """What stops the staged plugin ``folder`` from being a valid repository plugin (empty: none)."""
    found = []
    if not (folder / "metadata.txt").is_file():
        return ["metadata.txt is missing: copy it into the plugin folder."]
    metadata = read_metadata(folder)
    missing = [key for key in REQUIRED_METADATA if not metadata.get(key, "").strip()]
    if missing:
        found.append(
            f"metadata.txt lacks the required field(s) {', '.join(missing)}: add them under [general]."
        )
    provider = metadata.get("hasProcessingProvider", "").strip()
    if provider and provider != "yes":
        found.append(f"metadata.txt says hasProcessingProvider={provider}; it must be 'yes'.")
    icon = metadata.get("icon", "").strip()
    if icon and not (folder / icon).is_file():
        found.append(
            f"The icon '{icon}' named in metadata.txt is not in the plugin folder: add it to plugin/."
        )
    if not (folder / "LICENSE").is_file():
        found.append("LICENSE is missing: the repository requires the licence in the zip.")
    binaries = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and is_binary(p))
    if binaries:
        found.append(f"Compiled files are not allowed in the plugin: {', '.join(binaries)}. Remove them.")
    return found


def check(folder: Path) -> None:
    """Raise :class:`PackageError` listing every problem of the staged ``folder``."""
    found = problems(folder)
    if found:
        raise PackageError("The plugin is not fit for the QGIS plugin repository:\n- " + "\n- ".join(found))


def stage(plugins_dir: Path) -> Path:
    """Write and check ``plugins_dir/soilcarbon`` (replacing it only once it passed) and return its path."""
    plugins_dir.mkdir(parents=True, exist_ok=True)
    target = plugins_dir / PLUGIN_NAME
    with tempfile.TemporaryDirectory(prefix=f".{PLUGIN_NAME}-", dir=plugins_dir) as scratch:
        folder = Path(scratch) / PLUGIN_NAME
        shutil.copytree(ROOT / "plugin", folder, ignore=IGNORE)
        shutil.copy2(ROOT / "metadata.txt", folder / "metadata.txt")
        shutil.copy2(ROOT / "LICENSE", folder / "LICENSE")
        shutil.copytree(ROOT / "soilcarbon_core", folder / "core" / "soilcarbon_core", ignore=IGNORE)
        shutil.copytree(
            ROOT / "training" / "soilcarbon_training",
            folder / "core" / "training" / "soilcarbon_training",
            ignore=IGNORE,
        )
        (folder / "core" / "requirements").mkdir(parents=True)
        for name in ("core.in", "core.lock"):
            shutil.copy2(ROOT / "requirements" / name, folder / "core" / "requirements" / name)
        check(folder)
        if target.exists():
            shutil.rmtree(target)
        folder.rename(target)
    return target


def build_zip(dist: Path, max_bytes: int = MAX_ZIP_BYTES) -> Path:
    """Write ``dist/soilcarbon-VERSION.zip`` (atomically) from a checked staging and return its path."""
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = stage(Path(scratch))
        archive = dist / f"{PLUGIN_NAME}-{read_metadata(folder)['version']}.zip"
        partial = archive.with_suffix(".zip.partial")
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
                for path in sorted(folder.rglob("*")):
                    bundle.write(path, path.relative_to(folder.parent))
            size = partial.stat().st_size
            if size >= max_bytes:
                raise PackageError(
                    f"The plugin zip would be {size / 1e6:.1f} MB; the QGIS plugin repository takes at most "
                    f"{max_bytes / 1e6:.1f} MB. Move large data (models, rasters) out of plugin/ and "
                    "soilcarbon_core/ into a download."
                )
            partial.replace(archive)
        finally:
            partial.unlink(missing_ok=True)
    return archive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dir", type=Path, help="stage into DIR/soilcarbon")
    group.add_argument("--zip", type=Path, help="write the plugin zip into this folder")
    args = parser.parse_args()
    try:
        print(stage(args.dir) if args.dir else build_zip(args.zip))
    except PackageError as err:
        print(f"stage_plugin: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
