"""Fetching raw dataset files (only when they are not already in place)."""
from __future__ import annotations

import gzip
import logging
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from socialmeta.data.cache import atomic_write
from socialmeta.data.errors import GraphValidationError

log = logging.getLogger("socialmeta")


def download(url: str, path: str | Path) -> Path:
    """Downloads :obj:`url` to :obj:`path` atomically (``file://`` URLs work too)."""
    path = Path(path)
    log.info("downloading %s -> %s", url, path)
    with urllib.request.urlopen(url) as response, atomic_write(path, "wb") as f:
        shutil.copyfileobj(response, f)
    return path


def extract(archive: Path, into: Path) -> None:
    """Unpacks a ``.zip``, ``.tar.gz``/``.tgz`` or ``.gz`` file into :obj:`into`."""
    name = archive.name
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    elif name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")
    elif name.endswith(".gz"):
        with gzip.open(archive, "rb") as src, atomic_write(into / name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        raise ValueError(f"don't know how to extract {archive}")


def ensure_raw_files(
    root: str | Path,
    required: Sequence[str],
    urls: Sequence[str],
    *,
    download_ok: bool = True,
    flatten: str | None = None,
) -> Path:
    r"""Makes sure ``root/<f>`` exists for every :obj:`required` file.

    Files already in place are used as they are (tests point :obj:`root` at pre-placed
    files and never reach the network). Otherwise each of :obj:`urls` is downloaded and
    extracted into a staging folder inside ``root``; only once every required file is
    there are the extracted files moved into ``root`` (files already in ``root`` are
    kept). A failed download or an archive that lacks a required file leaves nothing
    behind: no staging folder, no partial tree, and no ``root`` (or parent) folder that
    this call created.

    Args:
        root: Dataset folder.
        required: Relative paths that must exist afterwards.
        urls: Archives (or files) to fetch when something is missing.
        download_ok: Fetch missing files; if :obj:`False`, raise instead.
        flatten: A folder inside an archive whose content should land in ``root``
            (e.g. an archive that wraps its files in ``hetrec2011-lastfm-2k/``).
    """
    root = Path(root)
    missing = [f for f in required if not (root / f).exists()]
    if not missing:
        return root
    if not download_ok:
        raise GraphValidationError(
            f"raw file(s) {missing} not found under {root}",
            expected="the dataset's raw files (or dataset.download=true)")
    created = [p for p in (root, *root.parents) if not p.exists()]   # deepest first
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    done = False
    try:
        tree = staging / "files"
        tree.mkdir()
        for url in urls:
            try:
                archive = download(url, staging / "archives" / url.rsplit("/", 1)[-1])
            except OSError as e:  # URLError, timeouts, refused connections
                raise GraphValidationError(
                    f"raw file(s) {missing} not found under {root}, and downloading {url} "
                    f"failed ({e})",
                    expected="network access, or the raw files placed under that root "
                             "(set dataset.root=DIR)") from None
            extract(archive, tree)
        if flatten and (tree / flatten).is_dir():
            tree = tree / flatten
        still = [f for f in missing if not (tree / f).exists()]
        if still:
            raise GraphValidationError(
                f"after download, {still} still missing under {root}",
                expected=f"the archives {list(urls)} to contain them")
        _merge(tree, root)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            for p in created:    # only folders this call made, and only while empty
                try:
                    p.rmdir()
                except OSError:
                    break
    return root


def _merge(src: Path, dst: Path) -> None:
    """Moves every entry of :obj:`src` into :obj:`dst`, recursing into folders that
    exist on both sides; an entry already in :obj:`dst` is kept."""
    for entry in src.iterdir():
        target = dst / entry.name
        if not target.exists():
            entry.replace(target)
        elif entry.is_dir() and target.is_dir():
            _merge(entry, target)
