"""Cold-start user splits and the observed (training) graph."""
from __future__ import annotations

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


def observed_graph(graph: SocialGraph, split: UserSplit) -> SocialGraph:
    r"""The graph that meta-training sees: friendships among training users, the
    interactions of training users (all items kept), and training users' labels.

    User indices are unchanged (val/test users remain as isolated, unlabelled nodes), so
    ids mean the same thing in both graphs. The input graph is not modified.
    """
    is_train = split.is_train()
    out = graph.clone()
    src, dst = graph.friend_index
    out[FRIEND].edge_index = graph.friend_index[:, is_train[src] & is_train[dst]]
    if graph.has_items:
        keep = is_train[graph.interaction_index[0]]
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

