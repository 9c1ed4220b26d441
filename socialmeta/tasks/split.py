"""Cold-start user splits and the observed (training) graph."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.utils import degree

from socialmeta.data import FRIEND, INTERACTS, SocialGraph


@dataclass(frozen=True)
class UserSplit:
    r"""Disjoint train/val/test users (global user indices, sorted).

    Val/test users are *new* users: meta-training sees none of their links or labels.
    """

    train: Tensor
    val: Tensor
    test: Tensor
    num_users: int

    def role(self) -> Tensor:
        """``[num_users]``: 0 train, 1 val, 2 test."""
        out = torch.zeros(self.num_users, dtype=torch.long)
        out[self.val], out[self.test] = 1, 2
        return out

    def is_train(self) -> Tensor:
        return self.role() == 0

    @property
    def candidate_users(self) -> Tensor:
        """Users that link tasks rank and draw negatives from: the training users
        (an :class:`ItemSplit` narrows them to people)."""
        return self.train

    @property
    def train_pool(self) -> Tensor:
        """Training nodes that may center a training task: the training users (an
        :class:`ItemSplit`'s training items)."""
        return self.train

    def users(self, name: str) -> Tensor:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose one of ['test', 'train', 'val']")
        return getattr(self, name)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(train={self.train.numel()}, "
                f"val={self.val.numel()}, test={self.test.numel()})")


def split_users(
    graph: SocialGraph,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    test_max_degree: int | None = None,
    min_degree: int = 1,
    eval_pool: Tensor | None = None,
) -> UserSplit:
    r"""Splits users into train/val/test by :obj:`seed`.

    Only users with at least :obj:`min_degree` friendships can be val/test users (a new
    user must have links to predict); all others train.

    Args:
        graph (SocialGraph): The graph.
        val_fraction (float): Fraction of eligible users for validation.
        test_fraction (float): Fraction of eligible users for testing.
        seed (int): Seed of the permutation. (default: :obj:`0`)
        test_max_degree (int, optional): If set, val and test users are drawn among
            users with at most this many friendships (low-degree, realistic cold-start).
        min_degree (int): Minimum friendships of a val/test user. (default: :obj:`1`)
        eval_pool (Tensor, optional): Draw val/test users only from these users, and
            apply the fractions to the pool's size (e.g. the egos of per-ego circles).

    Example:
        >>> split = split_users(graph, val_fraction=0.1, test_fraction=0.2, seed=0)
    """
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be >= 0 and sum to < 1, got "
                         f"{val_fraction} and {test_fraction}")
    deg = degree(graph.friend_index[0], graph.num_users)
    eligible = deg >= min_degree
    if test_max_degree is not None:
        eligible &= deg <= test_max_degree
    pool_size = graph.num_users
    if eval_pool is not None:
        in_pool = torch.zeros_like(eligible)
        in_pool[eval_pool] = True
        eligible &= in_pool
        pool_size = int(in_pool.sum())
    candidates = eligible.nonzero().view(-1)
    gen = torch.Generator().manual_seed(seed)
    candidates = candidates[torch.randperm(candidates.numel(), generator=gen)]
    n = graph.num_users
    num_val, num_test = round(val_fraction * pool_size), round(test_fraction * pool_size)
    if num_val + num_test > candidates.numel():
        raise ValueError(f"only {candidates.numel()} users are eligible for val/test, "
                         f"{num_val + num_test} were asked for")
    val = candidates[:num_val].sort().values
    test = candidates[num_val:num_val + num_test].sort().values
    is_train = torch.ones(n, dtype=torch.bool)
    is_train[val] = is_train[test] = False
    return UserSplit(is_train.nonzero().view(-1), val, test, n)


TEMPORAL_USERS = ("warm", "new")


@dataclass(frozen=True)
class TemporalSplit(UserSplit):
    r"""A split at a global time :attr:`cut` (Unix seconds): interactions dated at or
    after it are the future, which no training task, graph, feature or baseline sees.

    ``mode="warm"`` (interest drift): val/test users are users with interactions
    both before and after the cut; their history before it stays observed (known
    users), their interactions after it are the query. ``mode="new"`` (temporal
    cold start): val/test users are users whose first interaction is at or after the
    cut; meta-training sees none of them. Either way *every* eligible user is a
    val/test user (their future cannot train anything), dealt into val and test in
    the ratio ``val_fraction : test_fraction`` by the seed.
    """

    cut: int = 0
    mode: str = "warm"

    def __repr__(self) -> str:
        day = datetime.datetime.fromtimestamp(self.cut, datetime.UTC).isoformat()
        return (f"{self.__class__.__name__}(cut={day}, mode={self.mode!r}, "
                f"train={self.train.numel()}, val={self.val.numel()}, "
                f"test={self.test.numel()})")


def time_cut(graph: SocialGraph, cut: float | int | str, times: Tensor | None = None) -> int:
    r"""The cut of the temporal protocol in Unix seconds (UTC): a float in ``(0, 1)``
    is that quantile of the graph's interaction times (the cut is the first time at
    or above it), an ISO-8601 date or datetime string is that instant (UTC unless it
    says otherwise), an integer is Unix seconds; a string holding a number means that
    number (how a config passes a quantile). :obj:`times` replaces the graph's
    interaction times as the ones a quantile reads (e.g. an adoption graph's dated
    links).

    Example:
        >>> time_cut(graph, 0.7), time_cut(graph, "2009-01-01")
    """
    if times is None and not graph.has_times:
        raise ValueError(f"the temporal protocol needs dated interactions; dataset "
                         f"{graph.name!r} has {'no times' if graph.has_items else 'no items'}")
    if isinstance(cut, bool):
        raise ValueError(f"time cut must be a quantile, a date or Unix seconds, got {cut!r}")
    if isinstance(cut, float):
        if not 0.0 < cut < 1.0:
            raise ValueError(f"a time cut given as a quantile must be in (0, 1), got {cut}")
        times = (graph.interaction_time if times is None else times).sort().values
        return int(times[min(int(cut * times.numel()), times.numel() - 1)])
    if isinstance(cut, str):
        try:   # a number given as text (a config value): a quantile or Unix seconds
            number = float(cut)
        except ValueError:
            number = None
        if number is not None:
            return time_cut(graph, int(number) if number.is_integer() and number >= 1
                            else number, times)
        try:
            when = datetime.datetime.fromisoformat(cut)
        except ValueError:
            raise ValueError(f"time cut {cut!r} is not an ISO-8601 date or datetime "
                             "(e.g. 2009-01-01 or 2009-01-01T12:00:00+00:00)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return int(when.timestamp())
    if isinstance(cut, int):
        return cut
    raise ValueError(f"time cut must be a quantile, a date or Unix seconds, got {cut!r}")


def split_temporal(
    graph: SocialGraph,
    cut: float | int | str,
    *,
    users: str = "warm",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> TemporalSplit:
    r"""The split of the temporal protocol (see :class:`TemporalSplit`).

    Args:
        graph (SocialGraph): A graph with dated interactions.
        cut: The global cut (see :func:`time_cut`).
        users (str): ``"warm"`` (drift) or ``"new"`` (temporal cold start).
        val_fraction, test_fraction (float): Their ratio deals the eligible users into
            val and test (all eligible users are one or the other).
        seed (int): Seed of the deal. (default: :obj:`0`)

    Example:
        >>> split = split_temporal(graph, 0.7, users="warm", seed=0)
    """
    if users not in TEMPORAL_USERS:
        raise ValueError(f"unknown temporal users {users!r}; choose one of "
                         f"{list(TEMPORAL_USERS)}")
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction <= 0:
        raise ValueError("val_fraction and test_fraction must be >= 0 with a positive sum "
                         f"(their ratio deals the eligible users), got {val_fraction} "
                         f"and {test_fraction}")
    cut = time_cut(graph, cut)
    user, when = graph.interaction_index[0], graph.interaction_time
    n = graph.num_users
    before = torch.bincount(user[when < cut], minlength=n)
    after = torch.bincount(user[when >= cut], minlength=n)
    eligible = (after > 0) & ((before > 0) if users == "warm" else (before == 0))
    candidates = eligible.nonzero().view(-1)
    needed = int(val_fraction > 0) + int(test_fraction > 0)   # one val and one test user
    if candidates.numel() < needed:
        raise ValueError(f"only {candidates.numel()} {users} user(s) at the cut "
                         f"{datetime.datetime.fromtimestamp(cut, datetime.UTC)}"
                         " have interactions after it: move the cut")
    gen = torch.Generator().manual_seed(seed)
    candidates = candidates[torch.randperm(candidates.numel(), generator=gen)]
    num_val = round(candidates.numel() * val_fraction / (val_fraction + test_fraction))
    val = candidates[:num_val].sort().values
    test = candidates[num_val:].sort().values
    is_train = torch.ones(n, dtype=torch.bool)
    is_train[candidates] = False
    return TemporalSplit(is_train.nonzero().view(-1), val, test, n, cut=cut, mode=users)


def observed_graph(graph: SocialGraph, split: UserSplit) -> SocialGraph:
    r"""The graph that meta-training sees: friendships among training users, the
    interactions of training users (all items kept), and training users' labels.

    Under a :class:`TemporalSplit` only interactions dated before the cut are kept;
    with ``mode="warm"`` those of the val/test users too (known users' history) and
    every friendship (friendships are undated: they count as known at the cut).

    Under a split with a ``cut`` of its own (the dated :class:`~socialmeta.tasks.ItemSplit`
    of new-item tasks) only the links dated before the cut are kept (undated
    friendships are).

    User indices are unchanged (val/test users remain as isolated, unlabelled nodes), so
    ids mean the same thing in both graphs. The input graph is not modified.
    """
    is_train = split.is_train()
    temporal = isinstance(split, TemporalSplit)
    warm = temporal and split.mode == "warm"
    out = graph.clone()
    src, dst = graph.friend_index
    if not warm:
        keep = is_train[src] & is_train[dst]
        link_cut = getattr(split, "cut", None) if not temporal else None
        if link_cut is not None:
            if not graph.has_link_times:
                raise ValueError(f"a split at a cut needs dated links; graph {graph.name!r} "
                                 "has none")
            keep &= graph.link_time < link_cut
        out[FRIEND].edge_index = graph.friend_index[:, keep]
        if graph.has_link_times:
            out[FRIEND].time = graph.link_time[keep]
    if graph.has_items:
        keep = (torch.ones_like(graph.interaction_index[0], dtype=torch.bool) if warm
                else is_train[graph.interaction_index[0]])
        if temporal:
            keep &= graph.interaction_time < split.cut
        out[INTERACTS].edge_index = graph.interaction_index[:, keep]
        for attr in ("edge_weight", "time"):
            if attr in graph[INTERACTS]:
                out[INTERACTS][attr] = graph[INTERACTS][attr][keep]
    if graph.has_interests:
        out["user"].interest_mask = graph["user"].interest_mask & is_train
    if graph.has_circles:
        ei = graph["user", "member_of", "circle"].edge_index
        out["user", "member_of", "circle"].edge_index = ei[:, is_train[ei[0]]]
    return out

