"""Bring your own graph: a folder of CSV files (format in ``docs/data-format.md``)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from socialmeta.data.errors import GraphValidationError
from socialmeta.data.graph import SocialGraph, keep_first_of_duplicates, undirected_from_pairs
from socialmeta.data.readers import IdIndex, Table, read_table

FRIENDSHIPS, USERS, ITEMS = "friendships.csv", "users.csv", "items.csv"
INTERACTIONS, INTERESTS = "interactions.csv", "interests.csv"
#: the columns interactions.csv may have (any other is an error)
INTERACTION_COLUMNS = ["user_id", "item_id", "weight", "timestamp"]
CSV_FILES = (FRIENDSHIPS, USERS, ITEMS, INTERACTIONS, INTERESTS)


def csv_raw_files(root: str | Path) -> list[Path]:
    """The files of a CSV graph folder that exist (the cache key hashes them); one of
    their names that is not a regular file (a directory) is an error, not skipped."""
    root = Path(root)
    for name in CSV_FILES:
        if (root / name).exists() and not (root / name).is_file():
            raise GraphValidationError("not a file (a directory?)", file=root / name,
                                       expected="a regular file")
    return [root / f for f in CSV_FILES if (root / f).exists()]


def _features(table: Table, id_column: str) -> tuple[np.ndarray, list[str]]:
    names = [c for c in table.names if c != id_column]
    if not names:
        return np.zeros((len(table), 0), dtype=np.float32), []
    cols = [table.floats(c) for c in names]
    x = np.stack(cols, axis=1)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise GraphValidationError(
            f"{id_column} {str(table.strings(id_column)[r])!r} has {x[r, c]} in column "
            f"{names[c]!r}", file=table.path, line=int(table.lines[r]),
            expected="finite numbers (no NaN/inf)")
    return x.astype(np.float32), names


def read_csv_graph(
    root: str | Path,
    *,
    dedupe: bool = False,
    drop_self_loops: bool = False,
    symmetric: bool = False,
    strip_ids: bool = False,
    name: str = "csv",
) -> SocialGraph:
    r"""Reads a graph from ``root/friendships.csv`` and optional ``users.csv``,
    ``items.csv``, ``interactions.csv`` and ``interests.csv``.

    Ids are arbitrary strings (or integers) and are kept as the graph's ``raw_ids``.
    When ``users.csv`` exists it defines the users and any other id is an error;
    otherwise the users are those named anywhere. Likewise ``items.csv`` for items.

    Args:
        root (str or Path): The folder.
        dedupe (bool): Drop repeated rows (reported) instead of failing.
            (default: :obj:`False`)
        drop_self_loops (bool): Drop ``a,a`` friendships (reported) instead of failing.
            (default: :obj:`False`)
        symmetric (bool): ``friendships.csv`` lists each friendship in both directions
            (otherwise ``a,b`` plus ``b,a`` is a duplicate). (default: :obj:`False`)
        strip_ids (bool): Strip whitespace around ids (reported) instead of failing;
            ids are otherwise kept verbatim. (default: :obj:`False`)
        name (str): Name of the graph. (default: :obj:`"csv"`)

    Example:
        >>> graph = read_csv_graph("my_graph/")
        >>> graph.num_users, graph.num_friendships
    """
    root = Path(root)
    friends = read_table(root / FRIENDSHIPS, required=["src", "dst"], allowed=["src", "dst"])
    if (root / ITEMS).exists() and not (root / INTERACTIONS).exists():
        raise GraphValidationError(
            f"{ITEMS} without {INTERACTIONS}: its items would link to no user",
            file=root / ITEMS, expected=f"{INTERACTIONS} beside it (or no {ITEMS})")
    optional = {f: read_table(root / f, required=req, allowed=allowed) for f, req, allowed in (
        (USERS, ["user_id"], None), (ITEMS, ["item_id"], None),
        (INTERACTIONS, ["user_id", "item_id"], INTERACTION_COLUMNS),
        (INTERESTS, ["user_id", "interest"], ["user_id", "interest"]),
    ) if (root / f).exists()}
    return assemble_graph(friends, optional.get(USERS), optional.get(ITEMS),
                          optional.get(INTERACTIONS), optional.get(INTERESTS), dedupe=dedupe,
                          drop_self_loops=drop_self_loops, symmetric=symmetric,
                          strip_ids=strip_ids, name=name)


def assemble_graph(
    friends: Table,
    users_t: Table | None = None,
    items_t: Table | None = None,
    inter_t: Table | None = None,
    interest_t: Table | None = None,
    *,
    dedupe: bool = False,
    drop_self_loops: bool = False,
    symmetric: bool = False,
    strip_ids: bool = False,
    name: str = "csv",
    repairs: list[str] | None = None,
) -> SocialGraph:
    r"""A :class:`SocialGraph` from tables in the CSV format's columns (``src``/``dst``;
    ``user_id`` + numeric features; ``item_id`` + numeric features;
    ``user_id``/``item_id``[/``weight``][/``timestamp``]; ``user_id``/``interest``),
    whichever file format they were read from. The options are
    :func:`read_csv_graph`'s; :obj:`repairs` may hold the reader's own reports."""
    repairs = [] if repairs is None else repairs
    if len(friends) == 0:
        raise GraphValidationError("empty graph: no friendship rows", file=friends.path,
                                   expected="at least one friendship row")

    def ids(table: Table, column: str, kind: str) -> np.ndarray:
        return table.ids(column, kind, strip=strip_ids, repairs=repairs)

    if users_t is not None:
        users = _unique_ids(ids(users_t, "user_id", "user"), users_t, "user")
    else:
        named = [ids(friends, "src", "user"), ids(friends, "dst", "user")]
        named += [ids(t, "user_id", "user") for t in (inter_t, interest_t) if t is not None]
        users = IdIndex.from_values(*named, kind="user")
    src = users.lookup(ids(friends, "src", "user"), friends, "src")
    dst = users.lookup(ids(friends, "dst", "user"), friends, "dst")
    friend_index = undirected_from_pairs(
        src, dst, lines=friends.lines, path=friends.path, ids=users.ids,
        listing="both" if symmetric else "once", dedupe=dedupe,
        drop_self_loops=drop_self_loops, repairs=repairs)

    x = feature_names = None
    if users_t is not None:
        x_np, feature_names = _features(users_t, "user_id")
        x = torch.from_numpy(x_np)
    parts: dict = {}
    if inter_t is not None:
        parts.update(_interactions(inter_t, items_t, users, dedupe, ids, repairs))
    if interest_t is not None:
        parts.update(_interests(interest_t, users, dedupe, ids, repairs))
    return SocialGraph.from_parts(
        user_ids=users.ids, friend_index=friend_index, x=x, feature_names=feature_names,
        name=name, repairs=repairs, **parts)


def _unique_ids(values: np.ndarray, table: Table, kind: str) -> IdIndex:
    keep = keep_first_of_duplicates(
        values, table.lines, table.path, False, [], f"{kind} id", lambda i: repr(str(values[i])),
        f"each {kind} once")
    assert keep.all()
    return IdIndex(values.tolist(), kind=kind)


def _interactions(inter_t: Table, items_t: Table | None, users: IdIndex, dedupe: bool,
                  ids: Callable[[Table, str, str], np.ndarray], repairs: list[str]) -> dict:
    if items_t is not None:
        items = _unique_ids(ids(items_t, "item_id", "item"), items_t, "item")
        item_x_np, _ = _features(items_t, "item_id")
        item_x = torch.from_numpy(item_x_np) if item_x_np.shape[1] else None
    else:
        items = IdIndex.from_values(ids(inter_t, "item_id", "item"), kind="item")
        item_x = None
    u = users.lookup(ids(inter_t, "user_id", "user"), inter_t, "user_id")
    i = items.lookup(ids(inter_t, "item_id", "item"), inter_t, "item_id")
    weight = inter_t.floats("weight") if "weight" in inter_t.columns else None
    if weight is not None and not (np.isfinite(weight) & (weight > 0)).all():
        r = int(np.flatnonzero(~(np.isfinite(weight) & (weight > 0)))[0])
        raise GraphValidationError(f"weight {weight[r]:g}", file=inter_t.path,
                                   line=int(inter_t.lines[r]),
                                   expected="a finite positive number (a play count or "
                                   "rating; leave a row out rather than weigh it 0)")
    keep = keep_first_of_duplicates(
        u * len(items) + i, inter_t.lines, inter_t.path, dedupe, repairs, "interaction",
        lambda r: f"({users.ids[u[r]]!r}, {items.ids[i[r]]!r})",
        "each (user, item) once (or dataset.dedupe=true)")
    out = {"item_ids": items.ids, "item_x": item_x,
           "interaction_index": torch.from_numpy(np.stack([u[keep], i[keep]]))}
    if weight is not None:
        out["interaction_weight"] = torch.from_numpy(weight[keep]).float()
    if "timestamp" in inter_t.columns:
        out["interaction_time"] = torch.from_numpy(inter_t.times("timestamp")[keep])
    return out


def _interests(table: Table, users: IdIndex, dedupe: bool,
               ids: Callable[[Table, str, str], np.ndarray], repairs: list[str]) -> dict:
    u = users.lookup(ids(table, "user_id", "user"), table, "user_id")
    names = ids(table, "interest", "interest")
    labels = IdIndex.from_values(names, kind="interest")
    lab = labels.lookup(names, table, "interest")
    keep = keep_first_of_duplicates(
        u * len(labels) + lab, table.lines, table.path, dedupe, repairs, "interest",
        lambda r: f"({users.ids[u[r]]!r}, {labels.ids[lab[r]]!r})",
        "each (user, interest) once (or dataset.dedupe=true)")
    y = torch.zeros(len(users), len(labels), dtype=torch.bool)
    y[torch.from_numpy(u[keep]), torch.from_numpy(lab[keep])] = True
    return {"interests": y, "interest_mask": y.any(1), "interest_names": labels.ids}
