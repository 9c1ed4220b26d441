"""SNAP ego-Facebook: friendships, profile features unified by name, circles per ego."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from socialmeta.data.errors import GraphValidationError
from socialmeta.data.graph import SocialGraph, undirected_from_pairs
from socialmeta.data.readers import IdIndex, Table, read_table

EGO_FACEBOOK_URLS = (
    "https://snap.stanford.edu/data/facebook.tar.gz",
    "https://snap.stanford.edu/data/facebook_combined.txt.gz",
)
EGO_IDS = ("0", "107", "348", "414", "686", "698", "1684", "1912", "3437", "3980")
EGO_FACEBOOK_FILES = tuple(
    f"facebook/{e}.{ext}" for e in EGO_IDS
    for ext in ("edges", "circles", "feat", "egofeat", "featnames"))

EGO_FACEBOOK_NOTES = (
    "Friendships: facebook_combined.txt. Features: every ego's anonymised binary profile "
    "features, unified across egos by feature name (a user described by several egos "
    "gets the OR of their rows). Circles: each ego's circles, ids '<ego>/<circle>', kept "
    "as per-ego label sets. `<ego>.featnames` files are read line by line, so the last "
    "name of 0.featnames (no trailing newline; torch_geometric's read_ego drops it) is kept."
)


def combined_edges_path(root: Path) -> Path:
    """``facebook_combined.txt`` inside ``root/facebook/`` or ``root/``."""
    for p in (root / "facebook" / "facebook_combined.txt", root / "facebook_combined.txt"):
        if p.is_file():
            return p
    raise GraphValidationError("facebook_combined.txt not found", file=root,
                               expected="root/facebook/facebook_combined.txt")


def _feature_names(path: Path) -> list[str]:
    names = []
    with open(path, encoding="utf-8") as f:  # line iteration keeps a last line without \n
        for lineno, line in enumerate(f, start=1):
            parts = line.strip().split(" ", 1)
            if not line.strip():
                continue
            if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(names):
                raise GraphValidationError(
                    f"unparsable feature name line {line.strip()!r}", file=path, line=lineno,
                    expected=f"'{len(names)} <name>'")
            names.append(parts[1])
    return names


def read_ego_facebook(root: str | Path, *, dedupe: bool = False) -> SocialGraph:
    r"""Reads SNAP ego-Facebook from ``root/facebook/`` (the content of SNAP's
    ``facebook.tar.gz``) and ``facebook_combined.txt``.

    Gives 4,039 users, 88,234 friendships, binary profile features unified by name
    across the 10 ego-networks, and their 193 circles as per-ego label sets
    (``graph["circle"].ego`` and ``graph["user", "member_of", "circle"]``).

    Args:
        root (str or Path): Dataset folder.
        dedupe (bool): Drop repeated friendship rows (reported) instead of failing.
    """
    root = Path(root)
    repairs: list[str] = []
    combined = read_table(combined_edges_path(root), sep=None, header=["src", "dst"])
    users = IdIndex.from_values(combined.strings("src"), combined.strings("dst"))
    friend_index = undirected_from_pairs(
        users.lookup(combined.strings("src"), combined, "src"),
        users.lookup(combined.strings("dst"), combined, "dst"),
        lines=combined.lines, path=combined.path, ids=users.ids, dedupe=dedupe,
        repairs=repairs)

    vocab: dict[str, int] = {}
    rows: list[tuple[np.ndarray, np.ndarray]] = []  # (user indices, global columns) pairs
    circle_ids, circle_ego, member_u, member_c = [], [], [], []
    for ego in EGO_IDS:
        base = root / "facebook" / ego
        names = _feature_names(base.with_suffix(".featnames"))
        cols = np.asarray([vocab.setdefault(n, len(vocab)) for n in names], dtype=np.int64)
        feat = read_table(base.with_suffix(".feat"), sep=None,
                          header=["id"] + [f"f{k}" for k in range(len(names))])
        egofeat = read_table(base.with_suffix(".egofeat"), sep=None,
                             header=[f"f{k}" for k in range(len(names))])
        who = np.concatenate([users.lookup(feat.strings("id"), feat, "id"),
                              users.lookup(np.asarray([ego]))])
        values = np.concatenate([
            np.stack([feat.ints(f"f{k}") for k in range(len(names))], 1),
            np.stack([egofeat.ints(f"f{k}") for k in range(len(names))], 1)])
        r, c = np.nonzero(values)
        rows.append((who[r], cols[c]))
        for name, members, line in _read_circles(base.with_suffix(".circles")):
            where = read_table_stub(base.with_suffix(".circles"), line, len(members))
            member_u.append(users.lookup(members, where, "members"))
            member_c.append(np.full(len(members), len(circle_ids)))
            circle_ids.append(f"{ego}/{name}")
            circle_ego.append(users.lookup(np.asarray([ego]))[0])

    x = torch.zeros(len(users), len(vocab))
    fu = np.concatenate([u for u, _ in rows])
    fc = np.concatenate([c for _, c in rows])
    x[torch.from_numpy(fu), torch.from_numpy(fc)] = 1.0
    return SocialGraph.from_parts(
        user_ids=users.ids, friend_index=friend_index, x=x, feature_names=list(vocab),
        circle_ids=circle_ids, circle_ego=torch.tensor(circle_ego),
        membership_index=torch.from_numpy(np.stack([np.concatenate(member_u),
                                                    np.concatenate(member_c)])),
        name="ego_facebook", repairs=repairs, notes=EGO_FACEBOOK_NOTES)


def _read_circles(path: Path) -> list[tuple[str, np.ndarray, int]]:
    """``(name, member ids, line)`` for every circle line of a ``.circles`` file."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            fields = raw.split()
            if fields:
                out.append((fields[0], np.asarray(fields[1:], dtype=str), lineno))
    return out


def read_table_stub(path: Path, line: int, num_rows: int) -> Table:
    """A :class:`Table` whose rows all sit on one line, so lookups name that line."""
    return Table(path, {}, np.full(num_rows, line, dtype=np.int64))
