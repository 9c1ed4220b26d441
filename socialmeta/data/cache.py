"""Atomic writes and processed-graph caches keyed by raw files and loader options."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("socialmeta")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb"):
    r"""Opens a temporary file beside :obj:`path` and moves it into place on success.

    A crash or exception leaves no half-written :obj:`path` behind.

    Example:
        >>> with atomic_write("out/metrics.json", "w") as f:
        ...     json.dump({"recall@10": 0.3}, f)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def torch_save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def file_digest(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(name: str, options: dict[str, Any], raw_files: Iterable[str | Path]) -> str:
    """A digest of the loader name, its options and the content of its raw files."""
    h = hashlib.sha256()
    h.update(json.dumps({"name": name, "options": options}, sort_keys=True,
                        default=str).encode())
    for path in sorted(str(p) for p in raw_files):
        h.update(Path(path).name.encode())
        h.update(file_digest(path).encode())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    """``$SOCIALMETA_CACHE``, else ``~/.cache/socialmeta``."""
    env = os.environ.get("SOCIALMETA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "socialmeta"


def load_or_build(
    name: str,
    options: dict[str, Any],
    raw_files: Iterable[str | Path],
    build: Callable[[], dict[str, Any]],
    cache_dir: str | Path | None,
) -> dict[str, Any]:
    r"""Returns the processed dict for (:obj:`name`, :obj:`options`, raw files).

    The cache lives at ``cache_dir/name-<key>.pt``, where the key hashes the raw files'
    content and the options, so editing a raw file or changing an option builds anew.
    The file is a dict of tensors and primitives, loadable with
    ``torch.load(path, weights_only=True)``, and is written atomically.
    :obj:`cache_dir=None` disables caching.
    """
    if cache_dir is None:
        return build()
    path = Path(cache_dir) / f"{name}-{cache_key(name, options, raw_files)}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception as e:  # corrupt or foreign file: rebuild, never trust it
            log.warning("ignoring unreadable cache %s (%s); rebuilding", path, e)
    processed = build()
    torch_save_atomic(processed, path)
    return processed
