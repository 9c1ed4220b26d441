"""The SocialGraph contract: one PyG :class:`HeteroData` per dataset, validated."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from socialmeta.data.errors import GraphValidationError

log = logging.getLogger("socialmeta")

USER, ITEM, CIRCLE = "user", "item", "circle"
FRIEND = (USER, "friend", USER)
INTERACTS = (USER, "interacts", ITEM)
MEMBER_OF = (USER, "member_of", CIRCLE)

#: Format version of processed caches; bump when :meth:`SocialGraph.to_dict` changes.
CACHE_FORMAT = 1
#: time of an undated link in :attr:`SocialGraph.link_time` (a friendship of a graph
#: whose other links are dated): before every time, so known at any cut
UNDATED = torch.iinfo(torch.int64).min


class SocialGraph(HeteroData):
    r"""A social graph: users, their friendships, and optionally items, interests,
    profile features and per-ego label sets (circles).

    Layout (all optional parts may be absent):

    * ``graph["user"].x``: float32 profile features ``[num_users, F]``; ``F == 0`` when
      the dataset has no profile features (structural features are then computed on the
      *observed* graph by :class:`socialmeta.data.StructuralFeatures`, so that held-out
      links never leak into them).
    * ``graph["user", "friend", "user"].edge_index``: undirected, both directions,
      sorted, no self-loops, no duplicates.
    * ``graph["item"].num_nodes`` (and ``x``), ``graph["user", "interacts", "item"]``
      ``.edge_index`` with optional ``edge_weight`` (play counts, ratings).
    * ``graph["user"].interests``: multi-hot bool ``[num_users, L]``,
      ``graph["user"].interest_mask``: which users are labelled, ``graph.interest_names``.
    * ``graph["circle"]`` with ``ego`` ``[C]`` and ``graph["user", "member_of", "circle"]``:
      per-ego label sets such as SNAP ego-Facebook circles.
    * ``graph.raw_ids``: ``{"user": [...], "item": [...], "circle": [...]}``, the
      dataset's own ids in index order; every export and error uses them.
    * ``graph.repairs``: opt-in repairs the loader made (e.g. dropped duplicates).

    Build one with :meth:`from_parts`, which validates the result.
    """

    # ------------------------------------------------------------------ accessors
    @property
    def num_users(self) -> int:
        return int(self[USER].num_nodes)

    @property
    def num_items(self) -> int:
        return int(self[ITEM].num_nodes) if ITEM in self.node_types else 0

    @property
    def friend_index(self) -> Tensor:
        return self[FRIEND].edge_index

    @property
    def num_friendships(self) -> int:
        return self.friend_index.size(1) // 2

    @property
    def has_items(self) -> bool:
        return INTERACTS in self.edge_types

    @property
    def interaction_index(self) -> Tensor:
        return self[INTERACTS].edge_index

    @property
    def has_times(self) -> bool:
        """Whether interactions carry times (``graph[INTERACTS].time``)."""
        return self.has_items and "time" in self[INTERACTS]

    @property
    def interaction_time(self) -> Tensor:
        """Each interaction's time, int64 Unix seconds (UTC)."""
        return self[INTERACTS].time

    @property
    def has_link_times(self) -> bool:
        """Whether the ``user-friend-user`` links carry times (``graph[FRIEND].time``;
        e.g. the adoption graph of dated interactions, where friendships are
        :data:`UNDATED`)."""
        return "time" in self[FRIEND]

    @property
    def link_time(self) -> Tensor:
        """Each ``user-friend-user`` link's time (int64 Unix seconds, :data:`UNDATED`
        where a link has none), in :attr:`friend_index` order."""
        return self[FRIEND].time

    @property
    def has_interests(self) -> bool:
        return "interests" in self[USER]

    @property
    def has_features(self) -> bool:
        return self[USER].x.size(1) > 0

    @property
    def has_circles(self) -> bool:
        return MEMBER_OF in self.edge_types

    @property
    def relations(self) -> list[str]:
        """The relations this dataset has: ``friends``, ``items``, ``features``, ..."""
        out = ["friends"]
        out += ["items"] if self.has_items else []
        out += ["features"] if self.has_features else []
        out += ["interests"] if self.has_interests else []
        out += ["circles"] if self.has_circles else []
        return out

    def user_id(self, index: int) -> str:
        """The dataset's own id of user :obj:`index`."""
        return self.raw_ids[USER][index]

    # --------------------------------------------------------------- construction
    @classmethod
    def from_parts(
        cls,
        *,
        user_ids: Sequence[str],
        friend_index: Tensor,
        x: Tensor | None = None,
        item_ids: Sequence[str] | None = None,
        item_x: Tensor | None = None,
        interaction_index: Tensor | None = None,
        interaction_weight: Tensor | None = None,
        interaction_time: Tensor | None = None,
        friend_time: Tensor | None = None,
        interests: Tensor | None = None,
        interest_mask: Tensor | None = None,
        interest_names: Sequence[str] | None = None,
        circle_ids: Sequence[str] | None = None,
        circle_ego: Tensor | None = None,
        membership_index: Tensor | None = None,
        feature_names: Sequence[str] | None = None,
        name: str = "graph",
        repairs: Sequence[str] = (),
        notes: str = "",
    ) -> SocialGraph:
        r"""Assembles and validates a :class:`SocialGraph` from tensors.

        :obj:`friend_index` may list each friendship in one or both directions; it is
        stored in both. :obj:`interaction_time` holds each interaction's time as int64
        Unix seconds (UTC), stored as ``graph["user", "interacts", "item"].time``;
        :obj:`friend_time` likewise each link of :obj:`friend_index` (both directions of
        a link must agree), stored as ``graph["user", "friend", "user"].time``.
        Raises :class:`GraphValidationError` if the parts disagree.
        """
        num_users = len(user_ids)
        g = cls()
        g.name = name
        g.raw_ids = {USER: [str(u) for u in user_ids]}
        g.repairs = list(repairs)
        g.notes = notes
        g[USER].num_nodes = num_users
        g[USER].x = (torch.zeros(num_users, 0) if x is None else x).float()
        g.feature_names = list(feature_names or [])
        _check_index_range(friend_index, (num_users, num_users), "friendship", "user")
        g[FRIEND].edge_index = symmetrize(friend_index, num_users)
        if friend_time is not None:
            g[FRIEND].time = _symmetric_times(friend_index, friend_time, g[FRIEND].edge_index,
                                              num_users, g.raw_ids[USER])
        if interaction_index is not None:
            if item_ids is None:
                raise GraphValidationError("interactions given without item ids")
            g.raw_ids[ITEM] = [str(i) for i in item_ids]
            g[ITEM].num_nodes = len(item_ids)
            if item_x is not None:
                g[ITEM].x = item_x.float()
            g[INTERACTS].edge_index = interaction_index.long()
            if interaction_weight is not None:
                g[INTERACTS].edge_weight = interaction_weight.float()
            if interaction_time is not None:
                g[INTERACTS].time = interaction_time
        if interests is not None:
            g[USER].interests = interests.bool()
            g[USER].interest_mask = (
                torch.ones(num_users, dtype=torch.bool) if interest_mask is None
                else interest_mask.bool()
            )
            g.interest_names = list(interest_names or [])
        if circle_ego is not None:
            g.raw_ids[CIRCLE] = [str(c) for c in circle_ids or range(len(circle_ego))]
            g[CIRCLE].num_nodes = len(circle_ego)
            g[CIRCLE].ego = circle_ego.long()
            g[MEMBER_OF].edge_index = membership_index.long()
        validate_graph(g)
        return g

    # ---------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of tensors and primitives, loadable with ``weights_only=True``."""
        out: dict[str, Any] = {
            "format": CACHE_FORMAT, "name": self.name, "raw_ids": self.raw_ids,
            "repairs": list(self.repairs), "notes": self.notes,
            "feature_names": self.feature_names, "x": self[USER].x,
            "friend_index": self.friend_index,
        }
        if self.has_link_times:
            out["friend_time"] = self.link_time
        if self.has_items:
            out["interaction_index"] = self.interaction_index
            for key, attr in (("interaction_weight", "edge_weight"),
                              ("interaction_time", "time")):
                if attr in self[INTERACTS]:
                    out[key] = self[INTERACTS][attr]
            if "x" in self[ITEM]:
                out["item_x"] = self[ITEM].x
        if self.has_interests:
            out["interests"] = self[USER].interests
            out["interest_mask"] = self[USER].interest_mask
            out["interest_names"] = self.interest_names
        if self.has_circles:
            out["circle_ego"] = self[CIRCLE].ego
            out["membership_index"] = self[MEMBER_OF].edge_index
        return out

    def with_placeholder_users(self, ids: Sequence[str]) -> SocialGraph:
        r"""A copy with extra users :obj:`ids` appended (indices ``num_users`` on):
        no friendships, items or labels, all-zero features. They stand for brand-new
        users whose links are supplied at query time (e.g. by
        :class:`socialmeta.Recommender`); existing indices keep their meaning."""
        clash = set(ids) & set(self.raw_ids[USER])
        if clash:
            raise ValueError(f"placeholder user ids {sorted(clash)} already exist")
        d = self.to_dict()
        extra = len(ids)
        d["raw_ids"] = {**d["raw_ids"], USER: list(d["raw_ids"][USER]) + list(ids)}
        d["x"] = torch.cat([d["x"], d["x"].new_zeros(extra, d["x"].size(1))])
        if "interests" in d:
            d["interests"] = torch.cat([d["interests"],
                                        d["interests"].new_zeros(extra, d["interests"].size(1))])
            d["interest_mask"] = torch.cat([d["interest_mask"],
                                            d["interest_mask"].new_zeros(extra)])
        return type(self).from_dict(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SocialGraph:
        """Inverse of :meth:`to_dict` (validates again)."""
        if d.get("format") != CACHE_FORMAT:
            raise GraphValidationError(
                f"processed graph has format {d.get('format')!r}",
                expected=f"format {CACHE_FORMAT}")
        raw = d["raw_ids"]
        return cls.from_parts(
            user_ids=raw[USER], friend_index=d["friend_index"], x=d["x"],
            item_ids=raw.get(ITEM), item_x=d.get("item_x"),
            interaction_index=d.get("interaction_index"),
            interaction_weight=d.get("interaction_weight"),
            interaction_time=d.get("interaction_time"), friend_time=d.get("friend_time"),
            interests=d.get("interests"), interest_mask=d.get("interest_mask"),
            interest_names=d.get("interest_names"), circle_ids=raw.get(CIRCLE),
            circle_ego=d.get("circle_ego"), membership_index=d.get("membership_index"),
            feature_names=d.get("feature_names"), name=d["name"],
            repairs=d.get("repairs", ()), notes=d.get("notes", ""),
        )


# ------------------------------------------------------------------------ helpers
def symmetrize(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""Both directions of every undirected edge, sorted by (src, dst), deduplicated."""
    src, dst = edge_index.long()
    lo, hi = torch.minimum(src, dst), torch.maximum(src, dst)
    key = torch.unique(lo * num_nodes + hi)
    lo, hi = key // num_nodes, key % num_nodes
    full = torch.cat([lo * num_nodes + hi, hi * num_nodes + lo]).sort().values
    return torch.stack([full // num_nodes, full % num_nodes])


def _check_times(t: Tensor, count: int, what: str) -> None:
    if t.dtype != torch.int64 or t.shape != (count,):
        raise GraphValidationError(f"{what} times have dtype {t.dtype} and shape "
                                   f"{tuple(t.shape)}",
                                   expected=f"int64 Unix seconds of shape [{count}]")


def _symmetric_times(edge_index: Tensor, time: Tensor, symmetric: Tensor, num_nodes: int,
                     ids: Sequence[str]) -> Tensor:
    """The times of :obj:`edge_index`'s links (given one or both ways) in the order of
    its :func:`symmetrize`-d form :obj:`symmetric`."""
    time = torch.as_tensor(time)
    _check_times(time, edge_index.size(1), "link")
    src, dst = edge_index.long()
    key = torch.minimum(src, dst) * num_nodes + torch.maximum(src, dst)
    order = torch.argsort(key, stable=True)
    key, time = key[order], time[order]
    clash = (key[1:] == key[:-1]) & (time[1:] != time[:-1])
    if clash.any():
        k = int(clash.nonzero()[0])
        a, b = divmod(int(key[k]), num_nodes)
        raise GraphValidationError(f"link ({ids[a]!r}, {ids[b]!r}) is given twice with the "
                                   f"times {int(time[k])} and {int(time[k + 1])}",
                                   expected="one time per link")
    s, d = symmetric
    want = torch.minimum(s, d) * num_nodes + torch.maximum(s, d)
    return time[torch.searchsorted(key, want)]


def _check_index_range(index: Tensor, sizes: tuple[int, int], what: str,
                       kinds: str | tuple[str, str]) -> None:
    kinds = (kinds, kinds) if isinstance(kinds, str) else kinds
    if index.dim() != 2 or index.size(0) != 2:
        raise GraphValidationError(
            f"{what} index has shape {tuple(index.shape)}", expected="shape [2, num_edges]")
    for row, (size, kind) in enumerate(zip(sizes, kinds)):
        bad = (index[row] < 0) | (index[row] >= size)
        if bad.any():
            pos = int(bad.nonzero()[0])
            raise GraphValidationError(
                f"{what} {pos} refers to {kind} index {int(index[row, pos])}",
                expected=f"{kind} indices in [0, {size})")


def _check_unique_pairs(index: Tensor, num_cols: int, what: str, names: tuple) -> None:
    key = index[0] * num_cols + index[1]
    uniq, counts = torch.unique(key, return_counts=True)
    if (counts > 1).any():
        k = int(uniq[counts > 1][0])
        a, b = names[0][k // num_cols], names[1][k % num_cols]
        raise GraphValidationError(f"duplicate {what} ({a!r}, {b!r})", expected="unique pairs")


def _check_finite(t: Tensor, what: str, ids: Sequence[str]) -> None:
    bad = ~torch.isfinite(t)
    if bad.any():
        row, col = (int(v) for v in bad.nonzero()[0])
        raise GraphValidationError(
            f"{what} {ids[row]!r} has {t[row, col].item()} in column {col}",
            expected="finite numbers (no NaN/inf)")


def validate_graph(g: SocialGraph) -> None:
    r"""Checks every invariant of the SocialGraph contract; raises
    :class:`GraphValidationError` naming the offending id."""
    num_users = g.num_users
    user_ids = g.raw_ids[USER]
    if num_users == 0:
        raise GraphValidationError(f"graph {g.name!r} is empty", expected="at least one user")
    x = g[USER].x
    if x.dim() != 2 or x.size(0) != num_users:
        raise GraphValidationError(
            f"user features have shape {tuple(x.shape)}", expected=f"[{num_users}, F]")
    _check_finite(x, "features of user", user_ids)
    ei = g.friend_index
    _check_index_range(ei, (num_users, num_users), "friendship", "user")
    loops = ei[0] == ei[1]
    if loops.any():
        u = user_ids[int(ei[0, loops][0])]
        raise GraphValidationError(f"self-loop on user {u!r}", expected="no self-loops")
    _check_unique_pairs(ei, num_users, "friendship", (user_ids, user_ids))
    if "time" in g[FRIEND]:
        _check_times(g[FRIEND].time, ei.size(1), "link")
    if g.has_items:
        item_ids = g.raw_ids[ITEM]
        ii = g.interaction_index
        _check_index_range(ii, (num_users, len(item_ids)), "interaction", (USER, ITEM))
        _check_unique_pairs(ii, len(item_ids), "interaction", (user_ids, item_ids))
        if "edge_weight" in g[INTERACTS]:
            w = g[INTERACTS].edge_weight
            if w.shape != (ii.size(1),):
                raise GraphValidationError(
                    f"interaction weights have shape {tuple(w.shape)}",
                    expected=f"[{ii.size(1)}]")
            bad = ~torch.isfinite(w)
            if bad.any():
                k = int(bad.nonzero()[0])
                u, i = user_ids[int(ii[0, k])], item_ids[int(ii[1, k])]
                raise GraphValidationError(
                    f"interaction ({u!r}, {i!r}) has weight {w[k].item()}",
                    expected="finite weights (no NaN/inf)")
        if "time" in g[INTERACTS]:
            _check_times(g[INTERACTS].time, ii.size(1), "interaction")
    if g.has_interests:
        y, mask = g[USER].interests, g[USER].interest_mask
        if y.dim() != 2 or y.size(0) != num_users or y.size(1) != len(g.interest_names):
            raise GraphValidationError(
                f"interest labels have shape {tuple(y.shape)} for {num_users} users and "
                f"{len(g.interest_names)} interest names",
                expected=f"[{num_users}, {len(g.interest_names)}]")
        if mask.shape != (num_users,):
            raise GraphValidationError(
                f"interest mask has shape {tuple(mask.shape)}", expected=f"[{num_users}]")
    if g.has_circles:
        mi, ego = g[MEMBER_OF].edge_index, g[CIRCLE].ego
        num_circles = ego.numel()
        _check_index_range(mi, (num_users, num_circles), "circle membership", (USER, CIRCLE))
        _check_index_range(ego.view(1, -1).expand(2, -1), (num_users, num_users),
                           "circle ego", USER)


def undirected_from_pairs(
    src: np.ndarray,
    dst: np.ndarray,
    *,
    lines: np.ndarray,
    path: Any,
    ids: Sequence[str],
    listing: str = "once",
    dedupe: bool = False,
    drop_self_loops: bool = False,
    repairs: list[str] | None = None,
) -> Tensor:
    r"""Checks a raw friendship list and returns it as an undirected ``edge_index``.

    Args:
        src, dst (np.ndarray): User indices of each row.
        lines (np.ndarray): Line number of each row, for error messages.
        path: The file the rows came from.
        ids (list[str]): Raw user ids, for error messages.
        listing (str): ``"once"``: each friendship is listed once, so ``a,b`` plus
            ``b,a`` is a duplicate; ``"both"``: files (like HetRec's) that list every
            friendship in both directions; only an identical repeated row is a
            duplicate. (default: :obj:`"once"`)
        dedupe (bool): Drop duplicates (and report how many) instead of failing.
        drop_self_loops (bool): Drop self-loops (and report how many) instead of failing.
        repairs (list[str], optional): Where repair reports are appended.
    """
    if listing not in ("once", "both"):
        raise ValueError(f"listing must be 'once' or 'both', got {listing!r}")
    repairs = [] if repairs is None else repairs
    n = max(len(ids), 1)
    loops = src == dst
    if loops.any():
        if not drop_self_loops:
            i = int(np.flatnonzero(loops)[0])
            raise GraphValidationError(
                f"self-loop on user {ids[src[i]]!r}", file=path, line=int(lines[i]),
                expected="two different users (or dataset.drop_self_loops=true)")
        _report(repairs, f"{path}: dropped {int(loops.sum())} self-loop row(s)")
        src, dst, lines = src[~loops], dst[~loops], lines[~loops]
    key = (np.minimum(src, dst) * n + np.maximum(src, dst) if listing == "once"
           else src * n + dst)
    keep = keep_first_of_duplicates(
        key, lines, path, dedupe, repairs, "friendship",
        lambda i: f"{ids[src[i]]!r}-{ids[dst[i]]!r}",
        "each friendship once (or dataset.dedupe=true)")
    src, dst = src[keep], dst[keep]
    return torch.from_numpy(np.stack([src, dst])).long()


def keep_first_of_duplicates(
    key: np.ndarray,
    lines: np.ndarray,
    path: Any,
    dedupe: bool,
    repairs: list[str],
    what: str,
    describe: Any,
    expected: str,
) -> np.ndarray:
    r"""Mask keeping the first row of every :obj:`key`.

    Without :obj:`dedupe` a repeated key raises :class:`GraphValidationError` naming both
    lines; with it, the drop is reported in :obj:`repairs`.
    """
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(len(key), dtype=bool)
    keep[first] = True
    if keep.all():
        return keep
    if not dedupe:
        i = int(np.flatnonzero(~keep)[0])
        j = int(np.flatnonzero(key == key[i])[0])
        raise GraphValidationError(
            f"duplicate {what} {describe(i)} (first listed on line {int(lines[j])})",
            file=path, line=int(lines[i]), expected=expected)
    _report(repairs, f"{path}: dropped {int((~keep).sum())} duplicate {what} row(s)")
    return keep


def _report(repairs: list[str], message: str) -> None:
    repairs.append(message)
    log.warning(message)
