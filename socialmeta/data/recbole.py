"""RecBole atomic files: ``NAME.inter``, ``NAME.net`` and optional ``NAME.user`` /
``NAME.item``, read as they are (no conversion), into the same :class:`SocialGraph` the
CSV format gives.

Format (RecBole's "atomic files"; the social ``.net`` file as RecBole-GNN names it):
tab-separated, a header of ``name:type`` fields, types ``token`` (an id or category),
``token_seq`` (space-separated tokens), ``float`` and ``float_seq``.

* ``NAME.inter``: ``user_id:token``, ``item_id:token``, optional ``rating:float`` (the
  edge weight) and ``timestamp:float`` (Unix seconds; the interaction time).
* ``NAME.net``: ``source_id:token``, ``target_id:token`` (+ optional
  ``weight:float``, which must be 1 if present): social links, directed in the file and
  made undirected (RecBole-GNN's ``undirected_net: True``); a pair listed both ways is
  one friendship.
* ``NAME.user`` / ``NAME.item``: ``user_id:token`` / ``item_id:token`` plus features:
  ``float`` columns as they are, ``token`` columns one-hot (one column per value,
  ``field=value``), ``token_seq`` columns multi-hot. ``float_seq`` is not supported.

Any other column is an error naming it, unless listed in ``ignore_columns`` (so that
nothing is dropped silently).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from socialmeta.data.csv_graph import assemble_graph
from socialmeta.data.errors import GraphValidationError
from socialmeta.data.graph import SocialGraph
from socialmeta.data.readers import Table, read_table

TYPES = ("token", "token_seq", "float", "float_seq")
#: the RecBole field names read from each file, and the CSV format's column for each
FIELDS = {
    "inter": {"user_id:token": "user_id", "item_id:token": "item_id",
              "rating:float": "weight", "timestamp:float": "timestamp"},
    "net": {"source_id:token": "src", "target_id:token": "dst"},
    "user": {"user_id:token": "user_id"},
    "item": {"item_id:token": "item_id"},
}
REQUIRED = {"inter": ("user_id:token", "item_id:token"),
            "net": ("source_id:token", "target_id:token"),
            "user": ("user_id:token",), "item": ("item_id:token",)}


def recbole_raw_files(root: str | Path, name: str) -> list[Path]:
    """The atomic files of dataset :obj:`name` under :obj:`root` that exist."""
    root = Path(root)
    return [root / f"{name}.{s}" for s in FIELDS if (root / f"{name}.{s}").exists()]


def read_recbole(
    root: str | Path,
    *,
    name: str,
    dedupe: bool = False,
    drop_self_loops: bool = False,
    ignore_columns: list[str] | tuple[str, ...] = (),
) -> SocialGraph:
    r"""Reads RecBole atomic files ``root/NAME.inter``, ``root/NAME.net`` and the
    optional ``root/NAME.user`` and ``root/NAME.item`` (format in the module
    docstring and ``docs/data-format.md``).

    Args:
        root (str or Path): The folder (RecBole's ``data_path/NAME``).
        name (str): The dataset name, the files' stem.
        dedupe (bool): Drop repeated rows (reported) instead of failing.
        drop_self_loops (bool): Drop self-links in ``.net`` (reported) instead of failing.
        ignore_columns (list[str]): Header fields (``name:type``) to skip; any other
            field that socialmeta does not read is an error. (default: :obj:`()`)

    Example:
        >>> graph = read_recbole("dataset/lastfm", name="lastfm")
    """
    root = Path(root)
    if not name:
        raise GraphValidationError("dataset.name is empty", file=root,
                                   expected="the stem of the atomic files (NAME.inter)")
    files = {suffix: root / f"{name}.{suffix}" for suffix in FIELDS}
    for suffix in ("inter", "net"):
        if not files[suffix].exists():
            present = sorted(p.name for p in root.glob("*")) if root.is_dir() else []
            raise GraphValidationError(
                "file not found", file=files[suffix],
                expected=f"{name}.inter and {name}.net in {root} (found {present[:8]})")
    tables = {s: _read(p, s, set(ignore_columns)) for s, p in files.items()
              if s in ("inter", "net") or p.exists()}
    return assemble_graph(tables["net"], tables.get("user"), tables.get("item"),
                          tables["inter"], dedupe=dedupe, drop_self_loops=drop_self_loops,
                          symmetric=True, name=name)


def _read(path: Path, suffix: str, ignore: set[str]) -> Table:
    """One atomic file as a :class:`Table` in the CSV format's columns."""
    raw = read_table(path, sep="\t")
    header = raw.names
    for field in header:
        kind = field.rpartition(":")[2] if ":" in field else None
        if kind not in TYPES:
            raise GraphValidationError(
                f"header field {field!r} has {'no type' if kind is None else f'type {kind!r}'}",
                file=path, line=1, expected=f"name:type with a type in {list(TYPES)}")
    missing = [f for f in REQUIRED[suffix] if f not in header]
    if missing:
        raise GraphValidationError(f"missing field(s) {missing}; header has {header}",
                                   file=path, line=1, expected=f"fields {list(REQUIRED[suffix])}")
    known = FIELDS[suffix]
    columns: dict[str, list[str]] = {known[f]: raw.columns[f] for f in header if f in known}
    for field in header:
        if field in known or field in ignore:
            continue
        base, _, kind = field.rpartition(":")
        if suffix in ("user", "item") and kind in ("float", "token", "token_seq"):
            columns.update(_feature_columns(raw, field, base, kind))
        elif suffix == "net" and field == "weight:float":
            values = raw.floats(field)
            if (values != 1).any():
                r = int(np.flatnonzero(values != 1)[0])
                raise GraphValidationError(
                    f"weight {values[r]:g} in field {field!r}", file=path,
                    line=int(raw.lines[r]), expected="1 (an unweighted social link)")
        else:
            raise GraphValidationError(
                f"field {field!r} is not read by socialmeta", file=path, line=1,
                expected=f"only {sorted(known)}"
                + (" plus float/token/token_seq features" if suffix in ("user", "item")
                   else "") + f" (or dataset.ignore_columns=['{field}'])")
    labels = {known[f]: f for f in header if f in known}
    return Table(path, columns, raw.lines, labels)


def _feature_columns(raw: Table, field: str, base: str, kind: str) -> dict[str, list[str]]:
    """A feature field as numeric string columns: ``float`` as it is, ``token``
    one-hot, ``token_seq`` multi-hot (``base=value`` per distinct value, sorted)."""
    if kind == "float":
        raw.floats(field)  # an unparsable number names its line here
        return {base: raw.columns[field]}
    cells = [v.split() if kind == "token_seq" else [v.strip()] for v in raw.columns[field]]
    values = sorted({t for tokens in cells for t in tokens if t})
    return {f"{base}={value}": ["1" if value in tokens else "0" for tokens in cells]
            for value in values}
