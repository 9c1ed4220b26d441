"""Datasets by name: one registry, with download and processed-cache handling."""
from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socialmeta.data.cache import default_cache_dir, load_or_build
from socialmeta.data.catalog import DESCRIPTIONS
from socialmeta.data.ciaodvd import CIAODVD_FILES, CIAODVD_URL, read_ciaodvd
from socialmeta.data.csv_graph import csv_raw_files, read_csv_graph
from socialmeta.data.download import ensure_raw_files
from socialmeta.data.ego_facebook import (
    EGO_FACEBOOK_FILES,
    EGO_FACEBOOK_URLS,
    combined_edges_path,
    read_ego_facebook,
)
from socialmeta.data.graph import SocialGraph
from socialmeta.data.lastfm import LASTFM_FILES, LASTFM_URL, read_lastfm
from socialmeta.data.networkx_graphs import davis, karate
from socialmeta.data.recbole import read_recbole, recbole_raw_files
from socialmeta.data.synthetic import generate_synthetic


@dataclass(frozen=True)
class DatasetSpec:
    r"""How to obtain one named dataset.

    Args:
        reader: The function that builds the graph; its keyword arguments are the
            dataset's options (``dataset.<option>=...`` on the command line).
        takes_root: Whether :obj:`reader` reads raw files from a root folder.
        raw_files: Files under root whose content keys the processed cache, from the
            root and the dataset's options.
        urls: Where the raw files come from (empty for generated/bundled graphs).
        description: One line for ``socialmeta-data list``.
        required: Raw files that must exist under root (downloaded if missing).
        flatten: Folder inside the downloaded archive whose content goes to root.
    """

    reader: Callable[..., SocialGraph]
    description: str
    takes_root: bool = False
    raw_files: Callable[..., list[Path]] | None = None
    urls: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    flatten: str | None = None

    def option_names(self) -> list[str]:
        params = inspect.signature(self.reader).parameters
        return [n for n in params if n != "root"]

    def check_options(self, name: str, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.option_names()))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for dataset {name!r}; "
                             f"valid options: {self.option_names()}")


DATASETS: dict[str, DatasetSpec] = {
    "synthetic": DatasetSpec(generate_synthetic, DESCRIPTIONS["synthetic"]),
    "karate": DatasetSpec(karate, DESCRIPTIONS["karate"]),
    "davis": DatasetSpec(davis, DESCRIPTIONS["davis"]),
    "ego_facebook": DatasetSpec(
        read_ego_facebook, DESCRIPTIONS["ego_facebook"],
        takes_root=True,
        raw_files=lambda root, **_: [root / f for f in EGO_FACEBOOK_FILES]
        + [combined_edges_path(root)],
        urls=EGO_FACEBOOK_URLS, required=EGO_FACEBOOK_FILES),
    "lastfm": DatasetSpec(
        read_lastfm, DESCRIPTIONS["lastfm"],
        takes_root=True, raw_files=lambda root, **_: [root / f for f in LASTFM_FILES],
        urls=(LASTFM_URL,), required=LASTFM_FILES, flatten="hetrec2011-lastfm-2k"),
    "ciaodvd": DatasetSpec(
        read_ciaodvd, DESCRIPTIONS["ciaodvd"], takes_root=True,
        raw_files=lambda root, **_: [root / f for f in CIAODVD_FILES],
        urls=(CIAODVD_URL,), required=CIAODVD_FILES),
    "csv": DatasetSpec(
        read_csv_graph, DESCRIPTIONS["csv"],
        takes_root=True, raw_files=lambda root, **_: csv_raw_files(root),
        required=("friendships.csv",)),
    "recbole": DatasetSpec(
        read_recbole, DESCRIPTIONS["recbole"], takes_root=True,
        raw_files=lambda root, name="", **_: recbole_raw_files(root, name)),
}


def default_data_root(name: str) -> Path:
    """``$SOCIALMETA_DATA/<name>``, else ``graphs/<name>`` under the working directory."""
    return Path(os.environ.get("SOCIALMETA_DATA", "graphs")) / name


def load_dataset(
    name: str,
    /,
    *,
    root: str | Path | None = None,
    cache_dir: str | Path | None | bool = True,
    download: bool = True,
    **options: Any,
) -> SocialGraph:
    r"""Loads a dataset by name as a validated :class:`SocialGraph`.

    Args:
        name (str): One of :obj:`DATASETS` (``synthetic``, ``karate``, ``davis``,
            ``ego_facebook``, ``lastfm``, ``csv``).
        root (str or Path, optional): Folder with the raw files. Files already there are
            used as they are; missing ones are downloaded from the dataset's real URL
            when :obj:`download` is set. Default: :func:`default_data_root`.
        cache_dir (str, Path, bool or None): Processed-cache folder; :obj:`True` means
            :func:`default_cache_dir`, :obj:`None`/:obj:`False` disables caching.
            Generated graphs are not cached.
        download (bool): Allow downloading missing raw files. (default: :obj:`True`)
        **options: Loader options (e.g. ``dedupe=True``, ``num_users=10000``).

    Example:
        >>> graph = load_dataset("lastfm", root="../shared/datasets/hetrec-lastfm-2k")
        >>> graph.num_users
        1892
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    spec.check_options(name, options)
    if not spec.takes_root:
        return spec.reader(**options)
    root = Path(root) if root is not None else default_data_root(name)
    if spec.urls:
        ensure_raw_files(root, spec.required, spec.urls, download_ok=download,
                         flatten=spec.flatten)
    else:
        ensure_raw_files(root, spec.required, (), download_ok=False)
    if cache_dir is True:
        cache_dir = default_cache_dir()
    processed = load_or_build(
        name, options, spec.raw_files(root, **options),
        lambda: spec.reader(root, **options).to_dict(), cache_dir or None)
    return SocialGraph.from_dict(processed)
