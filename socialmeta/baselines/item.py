r"""Item-recommendation baselines: a new user is known by K support items and, as
context, its friends among training users (the item task's ego-net holds them too)."""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

from socialmeta.baselines.base import (
    Baseline,
    Blend,
    Sparse,
    context_friends,
    indicator,
    interaction_index,
    support_matrix,
)
from socialmeta.tasks import TaskBatch, TaskSampler


class _ItemBaseline(Baseline):
    kinds = ("item",)

    def _fit(self, sampler: TaskSampler) -> None:
        self.index = interaction_index(sampler)
        self.shape = (sampler.num_users, sampler.num_items)
        self.counts = torch.bincount(self.index[1], minlength=sampler.num_items).float()

    def _support(self, batch: TaskBatch) -> Tensor:
        return support_matrix(batch, self.sampler.num_items)


class ItemPopularity(_ItemBaseline):
    """Number of training users with the item."""

    name = "popularity"

    def scores(self, batch: TaskBatch) -> Tensor:
        return self.counts.expand(batch.num_tasks, -1).clone()


class SocialPopularity(_ItemBaseline):
    r"""Number of the user's friends with the item (context ``friends``), global
    popularity breaking ties (weight ``1e-6``)."""

    name = "social_popularity"
    requires = ("friends",)

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        self.user_items = Sparse(self.index, self.shape)

    def scores(self, batch: TaskBatch) -> Tensor:
        friends = context_friends(self.sampler, batch)
        return self.user_items.rmul(friends) + 1e-6 * self.counts / self.counts.max()


class ItemKNN(_ItemBaseline):
    r"""Item-based collaborative filtering: ``Σ_{j ∈ S} cos(i, j)`` over the support
    items ``S``, cosine between the items' training-user columns (full item-item
    similarity, computed as two sparse products, never materialised)."""

    name = "itemknn"

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        norm = self.counts.clamp(min=1.0).rsqrt()
        values = norm[self.index[1]]
        self.normed = Sparse(self.index, self.shape, values)          # R D^-1/2 [U, I]
        self.normed_t = Sparse(self.index.flip(0), self.shape[::-1], values)

    def scores(self, batch: TaskBatch) -> Tensor:
        users = self.normed_t.rmul(self._support(batch))
        return self.normed.rmul(users)


class UserKNN(_ItemBaseline):
    r"""User-based collaborative filtering from the support items: cosine between the
    new user's support items and every training user's items, the ``k`` most similar
    users vote with their similarity (``k`` tuned on validation users)."""

    name = "userknn"
    grid = {"k": (50, 20, 100, 200)}

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        self.user_items = Sparse(self.index, self.shape)
        self.item_users = Sparse(self.index.flip(0), self.shape[::-1])
        degree = torch.bincount(self.index[0], minlength=self.shape[0]).float()
        self.user_norm = degree.clamp(min=1.0).rsqrt()

    def scores(self, batch: TaskBatch) -> Tensor:
        s = self._support(batch)
        sim = self.item_users.rmul(s) * self.user_norm / s.sum(1, keepdim=True).clamp(min=1).sqrt()
        k = min(int(self.hyper["k"]), sim.size(1))
        top = sim.topk(k, dim=1)
        sparse_sim = torch.zeros_like(sim).scatter_(1, top.indices, top.values)
        return self.user_items.rmul(sparse_sim) + 1e-6 * self.counts / self.counts.max()


class EASE(_ItemBaseline):
    r"""EASE\ :sup:`R` (Steck, 2019): ``B = I - P diag(1/diag P)`` with
    ``P = (XᵀX + λI)⁻¹``, zero diagonal; scores ``s B`` for the support row ``s``.

    The dense ``I x I`` inverse is restricted to items with at least ``min_users``
    training users (others score by popularity below every kept item), so that it
    fits in memory on large catalogues; ``λ`` is tuned on validation users.
    """

    name = "ease"
    grid = {"l2": (200.0, 50.0, 500.0, 1000.0), "min_users": (2,)}

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        keep = (self.counts >= int(self.hyper["min_users"])).nonzero().view(-1)
        self.kept = keep
        col = torch.full((self.shape[1],), -1, dtype=torch.long)
        col[keep] = torch.arange(keep.numel())
        ok = col[self.index[1]] >= 0
        # the 0/1 user-item matrix as a sparse one (a pair once, however often it occurs)
        pairs = torch.unique(self.index[0, ok] * keep.numel() + col[self.index[1, ok]])
        x = torch.sparse_coo_tensor(
            torch.stack([pairs // keep.numel(), pairs % keep.numel()]),
            torch.ones(pairs.numel(), dtype=torch.float64), (self.shape[0], keep.numel()),
            is_coalesced=True, check_invariants=False)   # sorted, unique: coalesced
        self.weights = ease_weights(x, float(self.hyper["l2"])).float()

    def scores(self, batch: TaskBatch) -> Tensor:
        s = self._support(batch)
        # items below the cut rank after every kept item, by popularity
        out = (self.counts / self.counts.max() - 2.0).expand(batch.num_tasks, -1).clone()
        kept_scores = s[:, self.kept] @ self.weights
        out[:, self.kept] = kept_scores + 1e-6 * self.counts[self.kept] / self.counts.max()
        return out


def ease_weights(x: Tensor, l2: float) -> Tensor:
    r"""EASE's closed form ``B`` ``[I, I]`` for a user-item matrix :obj:`x` ``[U, I]``,
    dense or sparse (COO). A sparse :obj:`x` forms the Gram matrix ``XᵀX`` as a
    sparse product over its nonzeros instead of the dense ``O(U I²)`` one, which was
    most of the fit's time on CiaoDVD (19,533 users, 4,943 kept items), and never
    holds a dense ``[U, I]``. For a 0/1 matrix both are the same counts, exactly (sums
    of ones, exact in float64), so the weights are bit-identical
    (``tests/baselines/test_baselines.py``)."""
    if x.is_sparse:
        with warnings.catch_warnings():   # "sparse CSR support is in beta" (used inside)
            warnings.simplefilter("ignore", UserWarning)
            gram = torch.sparse.mm(x.t().coalesce(), x).to_dense()
    else:
        gram = x.t() @ x
    gram.diagonal().add_(l2)
    p = torch.linalg.inv(gram)
    b = -p / p.diagonal().unsqueeze(0)
    b.diagonal().zero_()
    return b


class SocialItemKNN(Blend):
    r"""Blend of social popularity (context ``friends``) and ItemKNN from the support
    items: ``(1 - weight) · social + weight · itemknn``, both scaled by their largest
    candidate score; ``weight`` tuned on validation users."""

    name = "social_itemknn"
    kinds = ("item",)
    parts = (SocialPopularity, ItemKNN)
    grid = {"weight": (0.5, 0.1, 0.25, 0.75, 0.9)}


# ------------------------------------------------- drift (temporal protocol)
def history_matrix(batch: TaskBatch, size: int) -> Tensor:
    r"""``[T, size]`` 0/1 indicator of each task's :attr:`~TaskBatch.seen_ids`: a warm
    user's interactions before its support under the temporal protocol."""
    seen = getattr(batch, "seen_ids", torch.zeros(batch.num_tasks, 0, dtype=torch.long))
    ok = seen >= 0
    return indicator(ok.nonzero()[:, 0], seen[ok], batch.num_tasks, size)


class _FromHistory:
    r"""Reads a warm user's whole history: the profile is the K recent support items
    plus ``history_weight`` times each older item (context ``history``)."""

    requires = ("history",)

    def _support(self, batch: TaskBatch) -> Tensor:
        recent = support_matrix(batch, self.sampler.num_items)
        older = history_matrix(batch, self.sampler.num_items)
        return recent + float(self.hyper["history_weight"]) * older * (recent == 0)


class HistoryItemKNN(_FromHistory, ItemKNN):
    r""":class:`ItemKNN` from the user's whole history (the K recent items plus the
    older ones, weighted ``history_weight``, tuned): against ItemKNN from the recent K
    alone, what the history is worth."""

    name = "itemknn_history"
    grid = {"history_weight": (0.5, 0.1, 0.25, 1.0)}


class HistoryEASE(_FromHistory, EASE):
    r""":class:`EASE` scored from the user's whole history (as :class:`HistoryItemKNN`)."""

    name = "ease_history"
    grid = {**EASE.grid, "history_weight": (0.5, 0.1, 0.25, 1.0)}


class RecentPopularity(_ItemBaseline):
    r"""Recency-weighted popularity: each observed interaction counts
    ``2 ** (-(cut - t) / half_life)``, with ``t`` its time and ``cut`` the temporal
    split's cut (the latest observed time plus one second on other splits);
    ``half_life`` in days, tuned on validation users. Needs dated interactions."""

    name = "recent_popularity"
    grid = {"half_life": (90.0, 7.0, 30.0, 365.0, 1825.0)}

    def _fit(self, sampler: TaskSampler) -> None:
        super()._fit(sampler)
        observed = sampler.observed
        if not observed.has_times:
            raise ValueError(f"baseline {self.name!r} needs dated interactions; dataset "
                             f"{sampler.graph.name!r} has none")
        user_item, when = observed.interaction_index, observed.interaction_time
        cut = getattr(sampler.split, "cut", None)
        if cut is None:
            cut = int(when.max()) + 1 if when.numel() else 0
        age_days = (cut - when).double() / 86400.0
        weight = torch.exp2(-age_days / float(self.hyper["half_life"]))
        self.recent = torch.zeros(sampler.num_items, dtype=torch.float64).index_add_(
            0, user_item[1], weight).float()

    def scores(self, batch: TaskBatch) -> Tensor:
        # all-time popularity breaks the ties of items no one has rated lately
        ties = 1e-6 * self.counts / self.counts.max().clamp(min=1)
        return (self.recent / self.recent.max().clamp(min=1e-30) + ties).expand(
            batch.num_tasks, -1).clone()


ITEM_BASELINES = {cls.name: cls for cls in (ItemPopularity, SocialPopularity, ItemKNN,
                                            UserKNN, EASE, SocialItemKNN, RecentPopularity,
                                            HistoryItemKNN, HistoryEASE)}
