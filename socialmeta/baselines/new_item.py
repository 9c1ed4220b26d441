r"""New-item baselines: a new item is known by its K first users (its adopters ``S``),
and every user is ranked for it.

They run on the adoption graph (:func:`~socialmeta.tasks.adoption_graph`), split into
its two relations: the friendships ``F`` between users and the holdings ``H`` between
users and (training) items. The friend baselines apply unchanged there (common
neighbours of a user are its friends among the adopters; PageRank walks both
relations; LightGCN folds the new item in from its adopters); these add what a
recommender for new items would try first.
"""
from __future__ import annotations

import torch
from torch import Tensor

from socialmeta.baselines.base import (
    Baseline,
    Sparse,
    center_features,
    cosine_rows,
    support_matrix,
)
from socialmeta.data import FRIEND
from socialmeta.tasks import TaskBatch, TaskSampler, item_nodes
from socialmeta.tasks.new_item import item_feature_columns

#: weight of the activity tie-break (far below one unit of any count score)
TIE_BREAK = 1e-6


class _NewItemBaseline(Baseline):
    kinds = ("new_item",)

    def _fit(self, sampler: TaskSampler) -> None:
        n = sampler.num_users
        self.is_item = item_nodes(sampler.graph)
        src, dst = sampler.observed[FRIEND].edge_index
        held = self.is_item[src] != self.is_item[dst]
        both_users = ~(self.is_item[src] | self.is_item[dst])
        self.friends = Sparse(torch.stack([src[both_users], dst[both_users]]), (n, n))
        self.holdings = Sparse(torch.stack([src[held], dst[held]]), (n, n))   # symmetric
        # items held (users) or training users holding it (items), per node
        self.count = torch.bincount(src[held], minlength=n).float()
        activity = torch.where(self.is_item, 0.0, self.count)
        self.tie_break = TIE_BREAK * activity / activity.max().clamp(min=1.0)

    def _support(self, batch: TaskBatch) -> Tensor:
        return support_matrix(batch, self.sampler.num_users)


class SocialSpread(_NewItemBaseline):
    r"""``|F(c) ∩ S|``: how many of candidate ``c``'s friends already took the item
    (the item spreads over friendships), ties broken by activity."""

    name = "social_spread"

    def scores(self, batch: TaskBatch) -> Tensor:
        return self.friends.rmul(self._support(batch)) + self.tie_break


class UserActivity(_NewItemBaseline):
    """Number of training items each user holds (the same ranking for every item)."""

    name = "user_activity"

    def scores(self, batch: TaskBatch) -> Tensor:
        return torch.where(self.is_item, 0.0, self.count).expand(batch.num_tasks, -1).clone()


class ItemToUserKNN(_NewItemBaseline):
    r"""Item-based CF through the adopters' co-items: the new item's similarity to a
    training item ``j`` is the cosine of their user sets, ``|S ∩ U_j| / sqrt(|S|
    |U_j|)``; the ``k`` most similar items (``k`` tuned on validation items) vote for
    their users with that similarity, ties broken by activity."""

    name = "itemknn"
    grid = {"k": (50, 20, 100, 200)}

    def scores(self, batch: TaskBatch) -> Tensor:
        s = self._support(batch)
        overlap = self.holdings.rmul(s)                      # [T, N], non-zero on items
        sim = overlap / (s.sum(1, keepdim=True) * self.count.clamp(min=1.0)).sqrt().clamp(
            min=1e-12)
        k = min(int(self.hyper["k"]), sim.size(1))
        top = sim.topk(k, dim=1)
        sim = torch.zeros_like(sim).scatter_(1, top.indices, top.values)
        return self.holdings.rmul(sim) + self.tie_break


class GenreSimilarity(_NewItemBaseline):
    r"""Content: the new item's own features (context ``features``, e.g. CiaoDVD's
    genre one-hot) against each user's profile, the sum of the features of the
    training items it holds: their dot product (``normalize=False``: for a one-hot
    genre, how many items of that genre the user holds) or their cosine (the share of
    the user's items in it, whatever its activity); chosen on validation items, ties
    broken by activity."""

    name = "genre"
    requires = ("features",)
    grid = {"normalize": (False, True)}

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        columns = item_feature_columns(sampler.graph)
        if columns.numel() == 0:
            raise ValueError(f"dataset {sampler.graph.name!r} has no item features: the "
                             "genre baseline needs them")
        self.columns = columns
        x = sampler.graph["user"].x[:, columns].float()
        self.profile = self.holdings.rmul(x.t()).t()         # [N, G] (items' rows: 0)
        self.profile[self.is_item] = 0.0
        self.norm = self.profile.norm(dim=1)

    def scores(self, batch: TaskBatch) -> Tensor:
        item_x = center_features(self.sampler, batch)[:, self.columns]
        if self.hyper["normalize"]:
            return cosine_rows(item_x, self.profile, self.norm) + self.tie_break
        return item_x @ self.profile.t() + self.tie_break


NEW_ITEM_BASELINES = {cls.name: cls for cls in (SocialSpread, UserActivity, ItemToUserKNN,
                                                GenreSimilarity)}
