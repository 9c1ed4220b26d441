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
from torch import Tensor

log = logging.getLogger("socialmeta")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb"):
    r"""Opens a temporary file beside :obj:`path` and moves it into place on success.

    A crash or exception leaves no half-written :obj:`path` behind. The file gets the
    mode a plain ``open`` would give it (``0666`` less the umask), not the temporary
    file's private ``0600``.

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
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno and not isinstance(e.filename, str):
            # a write through the descriptor names no file: name the output
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


@contextmanager
def atomic_dir(path: str | Path, marker: str = "manifest.json"):
    r"""Yields a fresh temporary folder beside :obj:`path` and, on success, moves it
    into place as :obj:`path` in one rename, replacing an earlier output.

    A crash or exception leaves :obj:`path` as it was (the old output, whole) and no
    temporary folder behind; a process killed outright leaves a hidden
    ``.<name>.tmp-<pid>-*`` folder that the next call removes. An existing non-empty
    :obj:`path` without :obj:`marker` (not an earlier output) is refused, never
    replaced.

    Example:
        >>> with atomic_dir("export/") as tmp:
        ...     (tmp / "manifest.json").write_text("{}")
    """
    import shutil

    path = Path(path)
    if path.exists() and (not path.is_dir() or (any(path.iterdir())
                                                 and not (path / marker).is_file())):
        raise ValueError(f"{path} exists and is not an earlier output (no {marker}); "
                         "choose a new or empty folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        pid = stale.name.split("-")[-2] if stale.name.count("-") >= 2 else ""
        if not (pid.isdigit() and process_alive(int(pid))):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-",
                                dir=path.parent))
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_umask())   # as mkdir would make it, not mkdtemp's 0700
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-",
                                        dir=path.parent))
            os.replace(path, old / "old")   # fails on a mount point: nothing moved
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old / "old", path)   # the earlier output goes back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not (old / "old").exists():
            shutil.rmtree(old, ignore_errors=True)
        raise


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def process_alive(pid: int) -> bool:
    """Whether process :obj:`pid` runs on this machine (this process counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def torch_save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def tensor_digest(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over names, shapes and bytes of :obj:`tensors` (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def graph_digest(graph) -> str:
    """Digest of a :class:`SocialGraph`'s tensors (friendships, features, interactions,
    labels): what a checkpoint and an export record of the data they were made on."""
    return tensor_digest({k: v for k, v in graph.to_dict().items() if isinstance(v, Tensor)})


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
