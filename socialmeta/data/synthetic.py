"""A seeded generator of social graphs with planted, learnable structure."""
from __future__ import annotations

import math

import numpy as np
import torch

from socialmeta.data.graph import SocialGraph

SYNTHETIC_NOTES = (
    "Synthetic graph: users belong to communities of log-normal sizes; each user has a "
    "Pareto(degree_exponent) activity; friendships join a user drawn by activity to a "
    "partner drawn by activity inside the same community (probability p_in) or anywhere. "
    "Each community prefers a few interests (p_interest_in vs p_interest_out) and a home "
    "share of the items (p_item_in); features = community centroid + interest signal + "
    "Gaussian noise."
)


def _weighted_pick(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray) -> np.ndarray:
    """Positions drawn with probability proportional to the weights whose cumulative
    sums are :obj:`cum`, restricted to the position ranges ``[lo, hi)``."""
    start = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    r = start + rng.random(len(lo)) * (cum[hi - 1] - start)
    return np.minimum(np.searchsorted(cum, r, side="right"), hi - 1)


class _Groups:
    """Members sorted by group, with cumulative weights for within-group sampling."""

    def __init__(self, group: np.ndarray, weight: np.ndarray, num_groups: int) -> None:
        self.order = np.argsort(group, kind="stable")
        self.cum = np.cumsum(weight[self.order])
        counts = np.bincount(group, minlength=num_groups)
        self.end = np.cumsum(counts)
        self.start = self.end - counts

    def sample(self, rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
        return self.order[_weighted_pick(rng, self.cum, self.start[groups], self.end[groups])]

    def sample_any(self, rng: np.random.Generator, n: int) -> np.ndarray:
        lo = np.zeros(n, dtype=np.int64)
        hi = np.full(n, len(self.order), dtype=np.int64)
        return self.order[_weighted_pick(rng, self.cum, lo, hi)]


def _sample_pairs(rng, num_pairs, src_pool, dst_groups, src_group, p_in, key_base,
                  self_pairs: bool):
    """Distinct (src, dst) pairs: src by weight, dst from src's group w.p. p_in."""
    keys = np.empty(0, dtype=np.int64)
    for _ in range(20):
        need = num_pairs - len(keys)
        if need <= 0:
            break
        n = int(need * 1.15) + 16
        src = src_pool.sample_any(rng, n)
        inside = rng.random(n) < p_in
        dst = np.where(inside, 0, dst_groups.sample_any(rng, n))
        dst[inside] = dst_groups.sample(rng, src_group[src[inside]])
        if self_pairs:  # undirected friendships: canonical (lo, hi), no self-loops
            ok = src != dst
            src, dst = np.minimum(src, dst)[ok], np.maximum(src, dst)[ok]
        keys = np.unique(np.concatenate([keys, src * key_base + dst]))
    keys = keys[rng.permutation(len(keys))[:num_pairs]]
    return keys // key_base, keys % key_base


def generate_synthetic(
    num_users: int = 2000,
    *,
    num_communities: int | None = None,
    avg_degree: float = 20.0,
    p_in: float = 0.8,
    degree_exponent: float = 2.5,
    num_interests: int = 20,
    interests_per_community: int = 3,
    p_interest_in: float = 0.6,
    p_interest_out: float = 0.03,
    num_items: int | None = None,
    avg_items: float = 10.0,
    p_item_in: float = 0.7,
    feature_dim: int = 16,
    feature_noise: float = 1.0,
    seed: int = 0,
) -> SocialGraph:
    r"""Generates a social graph with communities, heavy-tailed degrees, homophilous
    multi-label interests, community-preferred items and informative noisy features.

    The same arguments always give the same graph. About
    ``num_users * avg_degree / 2`` friendships and ``num_users * avg_items``
    interactions are generated; 10^6 users with ``avg_degree=40`` (20M friendships)
    take a few minutes and a few GB (see ``docs/performance.md``).

    Args:
        num_users (int): Number of users (100 to 10^6 tested). (default: :obj:`2000`)
        num_communities (int, optional): Default ``max(2, round(sqrt(num_users) / 2))``.
        avg_degree (float): Mean number of friends. (default: :obj:`20.0`)
        p_in (float): Probability that a friendship stays inside a community.
        degree_exponent (float): Pareto tail exponent of user activity.
        num_interests (int): Interest labels. (default: :obj:`20`)
        interests_per_community (int): Labels each community prefers.
        p_interest_in, p_interest_out (float): Label probabilities for preferred and
            other labels.
        num_items (int, optional): Items; default ``max(50, num_users // 10)``.
        avg_items (float): Mean interactions per user. (default: :obj:`10.0`)
        p_item_in (float): Probability that an interaction is with a home-community item.
        feature_dim (int): User feature dimension. (default: :obj:`16`)
        feature_noise (float): Standard deviation of feature noise.
        seed (int): Random seed. (default: :obj:`0`)

    Example:
        >>> graph = generate_synthetic(1000, seed=1)
        >>> graph.num_users, graph.relations
        (1000, ['friends', 'items', 'features', 'interests'])
    """
    if num_users < 2:
        raise ValueError(f"num_users must be at least 2, got {num_users}")
    rng = np.random.default_rng(seed)
    num_comm = num_communities or max(2, round(math.sqrt(num_users) / 2))
    num_items = num_items or max(50, num_users // 10)

    size_w = rng.lognormal(0.0, 0.5, num_comm)
    community = rng.choice(num_comm, size=num_users, p=size_w / size_w.sum())
    activity = np.minimum(rng.pareto(degree_exponent - 1, num_users) + 1.0,
                          max(10.0, num_users / 20))
    users = _Groups(community, activity, num_comm)
    src, dst = _sample_pairs(rng, int(num_users * avg_degree / 2), users, users,
                             community, p_in, num_users, self_pairs=True)

    preferred = np.stack([rng.choice(num_interests, interests_per_community, replace=False)
                          for _ in range(num_comm)])
    prob = np.full((num_comm, num_interests), p_interest_out)
    np.put_along_axis(prob, preferred, p_interest_in, axis=1)
    interests = rng.random((num_users, num_interests), dtype=np.float32) < prob[community]

    item_home = rng.integers(0, num_comm, num_items)
    popularity = rng.pareto(1.5, num_items) + 1.0
    items = _Groups(item_home, popularity, num_comm)
    iu, ii = _sample_pairs(rng, int(num_users * avg_items), users, items, community,
                           p_item_in, num_items, self_pairs=False)
    plays = rng.geometric(0.05, len(iu)).astype(np.float32)

    centroid = rng.normal(0.0, 1.0, (num_comm, feature_dim))
    interest_proj = rng.normal(0.0, 1.0 / math.sqrt(interests_per_community),
                               (num_interests, feature_dim))
    x = (centroid[community] + interests.astype(np.float64) @ interest_proj
         + rng.normal(0.0, feature_noise, (num_users, feature_dim))).astype(np.float32)

    return SocialGraph.from_parts(
        user_ids=[f"u{i}" for i in range(num_users)],
        friend_index=torch.from_numpy(np.stack([src, dst])),
        x=torch.from_numpy(x), feature_names=[f"f{k}" for k in range(feature_dim)],
        item_ids=[f"i{i}" for i in range(num_items)],
        interaction_index=torch.from_numpy(np.stack([iu, ii])),
        interaction_weight=torch.from_numpy(plays),
        interests=torch.from_numpy(interests),
        interest_names=[f"interest{k}" for k in range(num_interests)],
        name="synthetic", notes=SYNTHETIC_NOTES,
    )
