"""Assemble the installable plugin folder (and optionally its zip), standard library only.

The folder is ``soilcarbon/``: the contents of ``plugin/``, ``metadata.txt``, ``LICENSE`` and, under
``core/``, the pure-Python ``soilcarbon_core`` package that the worker runs and, under ``core/training/``,
the ``soilcarbon_training`` package for training from QGIS (the plugin never imports either).

    python scripts/stage_plugin.py --dir PROFILE/python/plugins   # install into a QGIS profile
    python scripts/stage_plugin.py --zip dist/                    # dist/soilcarbon-VERSION.zip
"""

from __future__ import annotations

import argparse
import configparser
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "soilcarbon"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def stage(plugins_dir: Path) -> Path:
    """Write ``plugins_dir/soilcarbon`` (replacing it) and return its path."""
    target = plugins_dir / PLUGIN_NAME
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ROOT / "plugin", target, ignore=IGNORE)
    shutil.copy2(ROOT / "metadata.txt", target / "metadata.txt")
    shutil.copy2(ROOT / "LICENSE", target / "LICENSE")
    shutil.copytree(ROOT / "soilcarbon_core", target / "core" / "soilcarbon_core", ignore=IGNORE)
    shutil.copytree(
        ROOT / "training" / "soilcarbon_training",
        target / "core" / "training" / "soilcarbon_training",
        ignore=IGNORE,
    )
    for name in ("core.in", "core.lock"):
        (target / "core" / "requirements").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "requirements" / name, target / "core" / "requirements" / name)
    return target


def version() -> str:
    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "metadata.txt", encoding="utf-8")
    return metadata["general"]["version"]


def build_zip(dist: Path) -> Path:
    dist.mkdir(parents=True, exist_ok=True)
    archive = dist / f"{PLUGIN_NAME}-{version()}.zip"
    with tempfile.TemporaryDirectory() as scratch:
        folder = stage(Path(scratch))
        partial = archive.with_suffix(".zip.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(folder.rglob("*")):
                bundle.write(path, path.relative_to(folder.parent))
        partial.replace(archive)
    return archive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dir", type=Path, help="stage into DIR/soilcarbon")
    group.add_argument("--zip", type=Path, help="write the plugin zip into this folder")
    args = parser.parse_args()
    print(stage(args.dir) if args.dir else build_zip(args.zip))
    return 0


if __name__ == "__main__":
    sys.exit(main())
