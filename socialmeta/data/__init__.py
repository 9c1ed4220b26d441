"""Data layer: raw files, networkx graphs and generators -> validated SocialGraph.

The names below load on first use, so that light modules (``socialmeta.data.errors``,
``socialmeta.data.catalog``) import without torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "atomic_write": "cache", "load_or_build": "cache", "torch_save_atomic": "cache",
    "read_ciaodvd": "ciaodvd",
    "read_csv_graph": "csv_graph", "read_recbole": "recbole",
    "DATASETS": "datasets", "DatasetSpec": "datasets", "load_dataset": "datasets",
    "read_ego_facebook": "ego_facebook",
    "GraphValidationError": "errors",
    "FRIEND": "graph", "INTERACTS": "graph", "MEMBER_OF": "graph", "SocialGraph": "graph",
    "UNDATED": "graph",
    "validate_graph": "graph",
    "read_lastfm": "lastfm",
    "davis": "networkx_graphs", "from_networkx": "networkx_graphs", "karate": "networkx_graphs",
    "graph_info": "stats",
    "generate_synthetic": "synthetic",
    "StructuralFeatures": "transforms", "structural_features": "transforms",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'socialmeta.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"socialmeta.data.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
