"""An on-disk cache of per-point imagery embeddings, so a second run over the same inputs encodes nothing.

A cache folder holds one sub-folder per *namespace*: the hash of everything that is the same for every
point of a run and determines the vector (the rasters' content fingerprints and band mapping, chip size
and resolution, backbone, weights hash, fine-tuned head hash, pooling, what is stored). Inside it, a
point's key is its coordinates in units of 1e-7 degree (about 1 cm), so the key is exact, not a hash.

Entries are written in shards (safetensors: ``keys`` (n, 2) int64, ``values`` (n, ...) float32) with the
sha256 of their payload in the header; a shard is written to a temporary name and renamed. A shard
that cannot be read, fails its checksum or has the wrong shape is deleted and its points recomputed:
a damaged cache costs time, never wrong vectors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np

from soilcarbon_core.io.atomic import atomic_output

logger = logging.getLogger(__name__)

#: Shards beyond this count are merged into one on the next write.
_MAX_SHARDS = 32


def cache_root() -> Path:
    """The project's cache folder: ``$XDG_CACHE_HOME/soilcarbon`` (default ``~/.cache/soilcarbon``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "soilcarbon"


def default_cache_dir() -> Path:
    return Path(os.environ.get("SOILCARBON_EMBEDDING_CACHE", cache_root() / "embeddings"))


@lru_cache(maxsize=256)
def _fingerprint(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (rasters, weights), memoised per path, size and modification time."""
    stat = Path(path).stat()
    return _fingerprint(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def point_keys(lonlat: np.ndarray) -> np.ndarray:
    """(N, 2) int64 keys: longitude and latitude in 1e-7 degree."""
    return np.round(np.asarray(lonlat, dtype=np.float64) * 1e7).astype(np.int64)


def _payload_digest(keys: np.ndarray, values: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(keys).tobytes())
    digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """Per-point arrays of one shape, stored under ``folder`` for one ``namespace`` (a JSON-able dict)."""

    def __init__(self, folder: str | os.PathLike[str], namespace: dict) -> None:
        text = json.dumps(namespace, sort_keys=True, default=str)
        self.folder = Path(folder) / hashlib.sha256(text.encode()).hexdigest()[:32]
        self.folder.mkdir(parents=True, exist_ok=True)
        description = self.folder / "namespace.json"
        if not description.exists():
            with atomic_output(description) as partial:
                partial.write_text(json.dumps(namespace, indent=1, sort_keys=True, default=str))
        self.rebuilt = 0  #: damaged shards deleted by the last :meth:`get`

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.safetensors"))

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        from safetensors import safe_open

        try:
            with safe_open(path, framework="np") as handle:
                expected = (handle.metadata() or {}).get("sha256")
                keys, values = handle.get_tensor("keys"), handle.get_tensor("values")
            if keys.ndim != 2 or keys.shape[1] != 2 or len(keys) != len(values):
                raise ValueError("inconsistent shapes")
            if _payload_digest(keys, values) != expected:
                raise ValueError("checksum mismatch")
        except Exception as err:  # noqa: BLE001 - whatever is wrong with a shard, it is rebuilt
            logger.warning("Embedding cache shard %s is damaged (%s); it is deleted and rebuilt.", path, err)
            path.unlink(missing_ok=True)
            self.rebuilt += 1
            return None
        return keys, values

    def get(self, keys: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Cached values (N, *shape) float32 (NaN where missing) and the hit mask (N,)."""
        self.rebuilt = 0
        wanted: dict[tuple, list[int]] = {}
        for i, k in enumerate(np.asarray(keys).tolist()):
            wanted.setdefault(tuple(k), []).append(i)  # a place may come more than once (profile depths)
        values = np.full((len(keys), *shape), np.nan, dtype=np.float32)
        hit = np.zeros(len(keys), dtype=bool)
        for path in self._shards():
            shard = self._read(path)
            if shard is None:
                continue
            if shard[1].shape[1:] != tuple(shape):
                logger.warning("Embedding cache shard %s has shape %s; deleted.", path, shard[1].shape[1:])
                path.unlink(missing_ok=True)
                self.rebuilt += 1
                continue
            for row, key in enumerate(shard[0].tolist()):
                for index in wanted.get(tuple(key), ()):
                    values[index] = shard[1][row]
                    hit[index] = True
        return values, hit

    def put(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Store values (N, ...) for keys (N, 2); merge shards when there are many."""
        if not len(keys):
            return
        shards = self._shards()
        if len(shards) >= _MAX_SHARDS:
            merged = [s for s in (self._read(p) for p in shards) if s is not None]
            keys = np.concatenate([*(k for k, _ in merged), keys])
            values = np.concatenate([*(v for _, v in merged), values])
            keys, first = np.unique(keys, axis=0, return_index=True)
            values = values[first]
        self._write(
            np.ascontiguousarray(keys, dtype=np.int64), np.ascontiguousarray(values, dtype=np.float32)
        )
        if len(shards) >= _MAX_SHARDS:
            for path in shards:
                path.unlink(missing_ok=True)

    def _write(self, keys: np.ndarray, values: np.ndarray) -> None:
        from safetensors.numpy import save_file

        destination = self.folder / f"shard-{uuid.uuid4().hex}.safetensors"
        with atomic_output(destination) as partial:
            save_file(
                {"keys": keys, "values": values}, partial, metadata={"sha256": _payload_digest(keys, values)}
            )
