r"""New-item tasks: a new item with K known users, ranked against every user.

A new-item task is the mirror image of a friend task. Its center is an item, its K
support links are the users known to have taken it up (its first adopters), and its
query is the item's other users, ranked against every user. To run it through the
same sampler, models, learners, baselines and evaluator as friend tasks, the dataset
is viewed as its **adoption graph** (:func:`adoption_graph`): one node per user and
one per item, linked by friendships and by user-item interactions. A new item is then
a new node whose support "friends" are its adopters, and its task graph holds the
item, its support users, their friends and their other items, exactly as DESIGN §13
asks. Items are split train/val/test by seed (:func:`split_items`): the val/test items'
interactions are out of the observed graph, every user stays a training node (and a
candidate), and only item nodes center tasks.

What the view gives for free: personalised PageRank from the adopters walks over
friendships *and* co-adopted items; common neighbours of a candidate are its friends
among the adopters (social spread); LightGCN on the adoption graph folds the new item
in from its adopters. The baselines made for new items (social spread, user activity,
item-to-user ItemKNN, genre similarity) are in :mod:`socialmeta.baselines.new_item`.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
from torch import Tensor

from socialmeta.data.graph import ITEM, UNDATED, SocialGraph
from socialmeta.tasks.split import UserSplit, time_cut

#: raw id prefix of item nodes in the adoption graph (``item:<the item's own id>``)
ITEM_PREFIX = "item:"
#: name of the adoption graph's last feature column: 1 for item nodes, 0 for users
ITEM_FLAG = "is_item"


@dataclass(frozen=True)
class ItemSplit(UserSplit):
    r"""A split of the items of an adoption graph into train/val/test.

    :attr:`train` holds every user and the training items (the observed graph keeps
    exactly their links); :attr:`val` and :attr:`test` are item nodes, new items whose
    interactions meta-training never sees. :attr:`people` are the user nodes: the
    candidates that every task ranks and draws negatives from.

    Under the temporal protocol :attr:`cut` is the global cut (Unix seconds): the
    val/test items are the items first taken up at or after it, and the observed
    graph keeps only the links dated before it (``None``: a split by seed).
    """

    people: Tensor | None = None
    cut: int | None = None

    @property
    def candidate_users(self) -> Tensor:
        return self.people

    @property
    def train_pool(self) -> Tensor:
        """The training items (item nodes), the centers of training tasks."""
        return self.train[~torch.isin(self.train, self.people)]

    def __repr__(self) -> str:
        cut = "" if self.cut is None else f"cut={_day(self.cut)}, "
        return (f"{self.__class__.__name__}({cut}users={self.people.numel()}, "
                f"train_items={self.train.numel() - self.people.numel()}, "
                f"val={self.val.numel()}, test={self.test.numel()})")


def _day(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


def is_adoption_graph(graph: SocialGraph) -> bool:
    """Whether :obj:`graph` is an :func:`adoption_graph` (its last feature column is
    the item flag)."""
    names = getattr(graph, "feature_names", [])
    return bool(names) and names[-1] == ITEM_FLAG


def item_nodes(graph: SocialGraph) -> Tensor:
    """``bool [num_nodes]``: which nodes of an adoption graph are items."""
    if not is_adoption_graph(graph):
        raise ValueError(f"graph {graph.name!r} is not an adoption graph (users and items "
                         "as nodes): build it with socialmeta.tasks.adoption_graph")
    return graph["user"].x[:, -1] > 0.5


def item_feature_columns(graph: SocialGraph) -> Tensor:
    """Columns of an adoption graph's node features that hold the items' own features
    (e.g. genre); empty when the items have none."""
    item_nodes(graph)  # checks the graph
    names = graph.feature_names
    return torch.tensor([k for k, n in enumerate(names) if n.startswith(ITEM_PREFIX)],
                        dtype=torch.long)


def adoption_graph(graph: SocialGraph) -> SocialGraph:
    r"""Users and items of :obj:`graph` as the nodes of one graph.

    Nodes ``0 .. U-1`` are the users (same indices), nodes ``U .. U+I-1`` the items
    (raw ids ``item:<id>``). Edges: the friendships and every user-item interaction,
    undirected. Node features: ``[user features | item features | is_item]`` (zeros
    where a node has no such part), so item content (e.g. CiaoDVD's genre) reaches
    the encoder and the genre baseline. Interaction times, when the graph has them,
    become the link times of the user-item edges (:attr:`SocialGraph.link_time`;
    friendships are :data:`~socialmeta.data.graph.UNDATED`), which the temporal
    protocol reads. Interests, circles and weights are not carried over: the tasks on
    this view rank users for items.

    Raises:
        ValueError: If the graph has no interactions, or a user id already starts
            with ``item:``.
    """
    if is_adoption_graph(graph):
        raise ValueError(f"graph {graph.name!r} is already an adoption graph")
    if not graph.has_items:
        raise ValueError(f"new-item tasks need user-item interactions; dataset "
                         f"{graph.name!r} has only {graph.relations}")
    user_ids = graph.raw_ids["user"]
    clash = next((u for u in user_ids if u.startswith(ITEM_PREFIX)), None)
    if clash is not None:
        raise ValueError(f"user id {clash!r} starts with {ITEM_PREFIX!r}, the prefix of "
                         "item nodes in the adoption graph: rename the user")
    clash = next((f for f in graph.feature_names if f.startswith(ITEM_PREFIX)), None)
    if clash is not None:
        raise ValueError(f"user feature {clash!r} starts with {ITEM_PREFIX!r}, the prefix "
                         "of item features in the adoption graph: rename it")
    num_users, num_items = graph.num_users, graph.num_items
    user_x = graph["user"].x.float()
    item_x = graph[ITEM].x.float() if "x" in graph[ITEM] else torch.zeros(num_items, 0)
    flag = torch.cat([torch.zeros(num_users, 1), torch.ones(num_items, 1)])
    x = torch.cat([
        torch.cat([user_x, torch.zeros(num_items, user_x.size(1))]),
        torch.cat([torch.zeros(num_users, item_x.size(1)), item_x]),
        flag], 1)
    user, item = graph.interaction_index
    edges = torch.cat([graph.friend_index, torch.stack([user, item + num_users])], 1)
    times = None
    if graph.has_times:
        times = torch.cat([torch.full((graph.friend_index.size(1),), UNDATED),
                           graph.interaction_time])
    item_names = [f"{ITEM_PREFIX}{k}" for k in range(item_x.size(1))]
    return SocialGraph.from_parts(
        user_ids=list(user_ids) + [ITEM_PREFIX + i for i in graph.raw_ids[ITEM]],
        friend_index=edges, x=x, friend_time=times,
        feature_names=list(graph.feature_names) + item_names + [ITEM_FLAG],
        name=f"{graph.name}:adoption", repairs=graph.repairs,
        notes=(graph.notes + "\n" if graph.notes else "") + (
            "Adoption graph: users and items as nodes, friendships and interactions "
            "as edges (socialmeta.tasks.adoption_graph)."))


def split_items(graph: SocialGraph, *, val_fraction: float = 0.1,
                test_fraction: float = 0.1, seed: int = 0, min_users: int = 2,
                cut: float | int | str | None = None) -> ItemSplit:
    r"""Splits the items of an adoption graph into train/val/test.

    By seed (:obj:`cut` ``None``): only items with at least :obj:`min_users` users
    can be val/test items (a new item needs a support user and one to predict); the
    fractions are of those eligible items.

    By date (:obj:`cut` given, the temporal protocol; the graph needs link times): the
    cut is a quantile of the interaction times, a date or Unix seconds (as
    :func:`~socialmeta.tasks.time_cut`). The eligible items are those *first taken up
    at or after the cut* with at least :obj:`min_users` users; all of them are new
    items (their interactions are the future, which trains nothing), dealt into val
    and test in the ratio ``val_fraction : test_fraction`` by :obj:`seed`. Older items
    train, on their links before the cut only (see
    :func:`~socialmeta.tasks.observed_graph`).

    Every user is a training node and a candidate.

    Example:
        >>> view = adoption_graph(graph)
        >>> split = split_items(view, val_fraction=0.1, test_fraction=0.1, seed=0)
        >>> dated = split_items(view, cut="2010-06-01", seed=0)
    """
    if cut is None and not (0 <= val_fraction and 0 <= test_fraction
                            and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be >= 0 and sum to < 1, got "
                         f"{val_fraction} and {test_fraction}")
    if cut is not None and (val_fraction < 0 or test_fraction < 0
                            or val_fraction + test_fraction <= 0):
        raise ValueError("val_fraction and test_fraction must be >= 0 with a positive sum "
                         f"(their ratio deals the new items), got {val_fraction} and "
                         f"{test_fraction}")
    is_item = item_nodes(graph)
    n = graph.num_users
    src = graph.friend_index[0]
    degree = torch.bincount(src, minlength=n)
    eligible = is_item & (degree >= min_users)
    if cut is not None:
        if not graph.has_link_times:
            raise ValueError(f"a split by date needs dated interactions; the adoption graph "
                             f"{graph.name!r} has no link times (its dataset has none)")
        dated = graph.link_time != UNDATED
        cut = time_cut(graph, cut, times=graph.link_time[dated])
        first = torch.full((n,), torch.iinfo(torch.int64).max).scatter_reduce(
            0, src[dated], graph.link_time[dated], "amin")
        eligible &= first >= cut
    eligible = eligible.nonzero().view(-1)
    gen = torch.Generator().manual_seed(seed)
    eligible = eligible[torch.randperm(eligible.numel(), generator=gen)]
    if cut is None:
        num_val = round(val_fraction * eligible.numel())
        num_test = round(test_fraction * eligible.numel())
    else:
        needed = int(val_fraction > 0) + int(test_fraction > 0)
        if eligible.numel() < needed:
            raise ValueError(f"only {eligible.numel()} item(s) first taken up at or after "
                             f"the cut {_day(cut)} have {min_users} users: move the cut")
        num_val = round(eligible.numel() * val_fraction / (val_fraction + test_fraction))
        num_test = eligible.numel() - num_val
    val = eligible[:num_val].sort().values
    test = eligible[num_val:num_val + num_test].sort().values
    is_train = torch.ones(n, dtype=torch.bool)
    is_train[val] = is_train[test] = False
    return ItemSplit(is_train.nonzero().view(-1), val, test, n,
                     people=(~is_item).nonzero().view(-1), cut=cut)
