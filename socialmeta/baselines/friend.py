r"""Friend-recommendation baselines: a new user is known by its K support friends.

Every score is computed as if the new user ``u`` were added to the observed graph
(training users' friendships) with edges to its support friends ``S``: common
neighbours are ``|N(c) ∩ S|``, personalised PageRank restarts at ``u``, and so on.
All of them are sparse-dense products over a whole batch of tasks at once.
"""
from __future__ import annotations

import torch
from torch import Tensor

from socialmeta.baselines.base import (
    Baseline,
    Blend,
    Sparse,
    center_features,
    center_items,
    cosine_rows,
    friend_matrix,
    interaction_index,
    support_matrix,
)
from socialmeta.data import FRIEND
from socialmeta.features.push import push_pagerank
from socialmeta.features.sparse import CSR
from socialmeta.tasks import TaskBatch, TaskSampler


class _FriendBaseline(Baseline):
    kinds = ("friend", "new_item")   # new items: on the adoption graph of users and items

    def _fit(self, sampler: TaskSampler) -> None:
        self.adj = friend_matrix(sampler)
        self.degree = self.adj.rmul(torch.ones(1, sampler.num_users)).view(-1)

    def _support(self, batch: TaskBatch) -> Tensor:
        return support_matrix(batch, self.sampler.num_users)


class Popularity(_FriendBaseline):
    """Degree in the observed graph (the same ranking for every new user)."""

    name = "popularity"

    def scores(self, batch: TaskBatch) -> Tensor:
        return self.degree.expand(batch.num_tasks, -1).clone()


class CommonNeighbors(_FriendBaseline):
    r"""``|N(c) ∩ S|``: support friends that candidate ``c`` is friends with."""

    name = "common_neighbors"

    def scores(self, batch: TaskBatch) -> Tensor:
        return self.adj.rmul(self._support(batch))


class AdamicAdar(_FriendBaseline):
    r"""``Σ_{z ∈ N(c) ∩ S} 1 / log d(z)`` with ``d(z)`` the degree of ``z`` once the
    new user is added (observed degree + 1)."""

    name = "adamic_adar"

    def scores(self, batch: TaskBatch) -> Tensor:
        weight = 1.0 / torch.log(self.degree + 1.0).clamp(min=torch.log(torch.tensor(2.0)))
        return self.adj.rmul(self._support(batch) * weight)


class ResourceAllocation(_FriendBaseline):
    r"""``Σ_{z ∈ N(c) ∩ S} 1 / d(z)`` (degree with the new user added)."""

    name = "resource_allocation"

    def scores(self, batch: TaskBatch) -> Tensor:
        return self.adj.rmul(self._support(batch) / (self.degree + 1.0))


class Jaccard(_FriendBaseline):
    r"""``|N(c) ∩ S| / |N(c) ∪ S|``."""

    name = "jaccard"

    def scores(self, batch: TaskBatch) -> Tensor:
        s = self._support(batch)
        common = self.adj.rmul(s)
        union = self.degree + s.sum(1, keepdim=True) - common
        return common / union.clamp(min=1.0)


def personalized_pagerank(adj, restart: Tensor, alpha: float, iterations: int = 50
                          ) -> Tensor:
    r"""Personalised PageRank vectors ``[T, n]`` by power iteration,
    ``p ← α r + (1 - α) p D⁻¹A`` from restart distributions ``r [T, n]`` (rows sum
    to 1); mass reaching a node without edges is dropped (ranking is unaffected).

    Args:
        adj: :class:`~socialmeta.baselines.base.Sparse` symmetric adjacency.
        alpha: Restart probability.
    """
    degree = adj.rmul(torch.ones(1, adj.shape[0])).view(-1)
    inv = torch.where(degree > 0, 1.0 / degree.clamp(min=1.0), 0.0)
    p = restart.clone()
    for _ in range(iterations):
        p = alpha * restart + (1 - alpha) * adj.rmul(p * inv)
    return p


class PersonalizedPageRank(_FriendBaseline):
    r"""Personalised PageRank on the observed graph with restarts spread uniformly
    over the support friends ``S`` (restart probability ``alpha``, tuned on
    validation users)."""

    name = "ppr"
    grid = {"alpha": (0.15, 0.05, 0.3, 0.5)}

    def scores(self, batch: TaskBatch) -> Tensor:
        s = self._support(batch)
        restart = s / s.sum(1, keepdim=True).clamp(min=1.0)
        return personalized_pagerank(self.adj, restart, float(self.hyper["alpha"]))


class PushPageRank(PersonalizedPageRank):
    r"""Personalised PageRank by local push (:func:`~socialmeta.features.push.push_pagerank`):
    the converged PageRank to within ``epsilon`` times a node's degree, touching only
    the support's neighbourhood. The baseline twin of the ``ppr`` pair feature under
    ``task.pair_local=true``, and the PageRank baseline for graphs where a pass over
    every edge per batch is too slow. Not part of ``eval.baselines=all``: it
    approximates ``ppr`` (which is in it) and costs more than it on small graphs;
    name it (``eval.baselines=[ppr_push]``) to run it."""

    name = "ppr_push"
    in_all = False
    grid = {"alpha": (0.15, 0.05, 0.3, 0.5), "epsilon": (1e-6,)}

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        self.links = CSR.from_edge_index(sampler.observed[FRIEND].edge_index,
                                         sampler.num_users, sampler.num_users)

    def scores(self, batch: TaskBatch) -> Tensor:
        s = self._support(batch)
        restart = s / s.sum(1, keepdim=True).clamp(min=1.0)
        (p,) = push_pagerank(self.links, self.degree, restart, [float(self.hyper["alpha"])],
                             float(self.hyper["epsilon"]))
        return p


def _weighted_items(sampler: TaskSampler, idf: bool
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""The observed (user, item) pairs ``[2, E]``, their weights ``[E]``, the item
    weights ``[I]`` (``log(U / (1 + n_i))`` with :obj:`idf`, else ones) and every
    user's norm ``[U]`` under them: what the taste cosines read."""
    index = interaction_index(sampler)
    counts = torch.bincount(index[1], minlength=sampler.num_items).float()
    weight = (torch.log(sampler.num_users / (1.0 + counts)).clamp(min=0.0)
              if idf else torch.ones(sampler.num_items))
    values = weight[index[1]]
    norm = torch.zeros(sampler.num_users).index_add_(0, index[0], values.pow(2)).sqrt()
    return index, values, weight, norm


class TasteSimilarity(_FriendBaseline):
    r"""Cosine between the new user's items (context ``items``) and each training
    user's items; with ``idf`` the items are weighted by ``log(U / (1 + n_i))``
    (``n_i`` training users with item ``i``), which down-weights blockbusters."""

    name = "taste"
    kinds = ("friend",)
    requires = ("items",)
    grid = {"idf": (True, False)}

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        index, values, self.item_weight, self.norm = _weighted_items(sampler,
                                                                     self.hyper["idf"])
        self.items_t = Sparse(index.flip(0), (sampler.num_items, sampler.num_users), values)

    def scores(self, batch: TaskBatch) -> Tensor:
        return cosine_rows(center_items(self.sampler, batch) * self.item_weight,
                           self.items_t, self.norm)


class FriendsTaste(_FriendBaseline):
    r"""Cosine between each training user's items and the pooled items of the new
    user's support friends, ``cos(r_v, Σ_{s ∈ S} r_s / |r_s|)`` with every item
    weighted by ``log(U / (1 + n_i))`` as :class:`TasteSimilarity` (``idf=True``).

    Needs no context: the support friends are training users, whose items are
    observed; the new user's own items are never read. On a dataset with items it is
    the taste homophily of the support ("users who listen to what my friends listen
    to"), which no graph heuristic sees."""

    name = "friends_taste"
    kinds = ("friend",)
    in_all = "friends_taste"    # with task.friends_taste, as the hybrid's feature

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        if not sampler.graph.has_items:
            raise ValueError(f"baseline 'friends_taste' reads the support friends' items; "
                             f"dataset {sampler.graph.name!r} has none")
        index, values, _, self.norm = _weighted_items(sampler, idf=True)
        self.items = Sparse(index, (sampler.num_users, sampler.num_items), values)
        self.items_t = Sparse(index.flip(0), (sampler.num_items, sampler.num_users), values)
        self.unit = torch.where(self.norm > 0, 1.0 / self.norm.clamp(min=1e-12), 0.0)

    def scores(self, batch: TaskBatch) -> Tensor:
        pooled = self.items.rmul(self._support(batch) * self.unit)    # [T, I]
        return cosine_rows(pooled, self.items_t, self.norm)


class FeatureSimilarity(_FriendBaseline):
    r"""Cosine between the new user's profile features (context ``features``) and
    each training user's."""

    name = "feature_similarity"
    kinds = ("friend",)   # an item's and a user's feature blocks never overlap
    requires = ("features",)

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        self.x = sampler.graph["user"].x.float()
        if self.x.size(1) == 0:
            raise ValueError(f"dataset {sampler.graph.name!r} has no user features")
        self.norm = self.x.norm(dim=1)

    def scores(self, batch: TaskBatch) -> Tensor:
        return cosine_rows(center_features(self.sampler, batch), self.x, self.norm)


class PPRTaste(Blend):
    r"""``(1 - weight) · PPR + weight · taste`` (both scaled by their largest
    candidate score); ``alpha``, ``idf`` and ``weight`` tuned on validation users."""

    name = "ppr_taste"
    kinds = ("friend",)
    parts = (PersonalizedPageRank, TasteSimilarity)
    grid = {"alpha": (0.15, 0.3), "idf": (True,), "weight": (0.5, 0.1, 0.25, 0.75, 0.9)}


class PPRFriendsTaste(Blend):
    r"""``(1 - weight) · PPR + weight · friends' taste`` (both scaled by their largest
    candidate score); ``alpha`` and ``weight`` tuned on validation users. Needs a
    dataset with items, no context."""

    name = "ppr_friends_taste"
    kinds = ("friend",)
    in_all = "friends_taste"
    parts = (PersonalizedPageRank, FriendsTaste)
    grid = {"alpha": (0.15, 0.3), "weight": (0.3, 0.1, 0.2, 0.4, 0.5)}


class PPRFeatures(Blend):
    r"""``(1 - weight) · PPR + weight · feature similarity`` (both scaled by their
    largest candidate score); ``alpha`` and ``weight`` tuned on validation users."""

    name = "ppr_features"
    kinds = ("friend",)
    parts = (PersonalizedPageRank, FeatureSimilarity)
    grid = {"alpha": (0.15, 0.3), "weight": (0.5, 0.1, 0.25, 0.75, 0.9)}


FRIEND_BASELINES = {cls.name: cls for cls in (Popularity, CommonNeighbors, AdamicAdar,
                                              ResourceAllocation, Jaccard,
                                              PersonalizedPageRank, PushPageRank,
                                              TasteSimilarity, FriendsTaste,
                                              FeatureSimilarity, PPRTaste, PPRFriendsTaste,
                                              PPRFeatures)}
