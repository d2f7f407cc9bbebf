"""Model files: a directory or a zip holding ``manifest.json`` and safetensors weight files.

No pickle anywhere: a model file from a stranger can carry numbers and JSON, never code. The manifest
records a sha256 of every weight file; loading verifies each one, so a modified or truncated file fails
with a clear error instead of producing silently wrong maps. Zips are read member by member in memory
(nothing is extracted, so no path can escape), and only the expected member names are read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from soilcarbon_core.errors import ModelFileError
from soilcarbon_core.io.atomic import atomic_output

MANIFEST = "manifest.json"
FORMAT = "soilcarbon-model"
FORMAT_VERSION = 1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model_files(path: str | os.PathLike[str], manifest: dict, tensors: dict[str, dict]) -> Path:
    """Write ``manifest`` plus one safetensors file per entry of ``tensors`` (file name -> {name: tensor}).

    ``path`` ending in ``.zip`` gives a zip, anything else a directory. The manifest gets ``format``,
    ``format_version`` and ``files`` (sha256 per weight file). Written to a temporary name, then renamed.
    """
    from safetensors.torch import save

    path = Path(path)
    blobs = {
        name: save({k: v.detach().cpu().contiguous() for k, v in state.items()})
        for name, state in tensors.items()
    }
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
    manifest["files"] = {name: _sha256(blob) for name, blob in blobs.items()}
    text = json.dumps(manifest, indent=2, sort_keys=False).encode()
    if path.suffix.lower() == ".zip":
        with atomic_output(path) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, text)
            for name, blob in blobs.items():
                archive.writestr(name, blob)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        (staging / MANIFEST).write_bytes(text)
        for name, blob in blobs.items():
            (staging / name).write_bytes(blob)
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _reader(path: Path):
    if path.is_dir():
        return lambda name: (path / name).read_bytes() if (path / name).is_file() else None
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        names = set(archive.namelist())
        return lambda name: archive.read(name) if name in names else None
    raise ModelFileError(
        f"'{path}' is neither a model directory nor a model zip.",
        "Give the folder or the .zip written by 'soilcarbon train'.",
    )


def load_model_files(path: str | os.PathLike[str]) -> tuple[dict, dict[str, dict]]:
    """Read and verify a model: (manifest, {file name: {tensor name: tensor}})."""
    from safetensors.torch import load

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"The model '{path}' does not exist.", "Check the path of the model file.")
    read = _reader(path)
    raw = read(MANIFEST)
    if raw is None:
        raise ModelFileError(
            f"'{path}' has no {MANIFEST}.", "It is not a soilcarbon model; retrain or re-download it."
        )
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ModelFileError(
            f"The manifest of '{path}' is not valid JSON ({err}).", "The file is damaged."
        ) from err
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not a soilcarbon model (format {manifest.get('format')!r}).")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"'{path}' uses model format {manifest['format_version']}; "
            f"this version reads up to {FORMAT_VERSION}.",
            "Update the soilcarbon package.",
        )
    tensors = {}
    for name, digest in manifest.get("files", {}).items():
        if "/" in name or "\\" in name or name.startswith("."):
            raise ModelFileError(
                f"The manifest of '{path}' names an unexpected file '{name}'.", "The file is damaged."
            )
        blob = read(name)
        if blob is None:
            raise ModelFileError(
                f"The model '{path}' lacks its weight file '{name}'.", "Copy the whole model."
            )
        if _sha256(blob) != digest:
            raise ModelFileError(
                f"The weight file '{name}' of '{path}' fails its sha256 check: it was modified or damaged.",
                "Use an intact copy of the model.",
            )
        tensors[name] = load(blob)
    return manifest, tensors
