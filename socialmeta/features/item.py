r"""Pair features of every (new user, item) pair for item tasks, over the whole
observed graph, as batched tensor ops.

A task's new user ``u`` is known by its K support items ``S`` (and, with the
``friends`` context, its friends among training users). Every feature is the score of
an item-recommendation baseline (:mod:`socialmeta.baselines.item`) for ``u``:

* **evaluation tasks** (val/test centers hold nothing in the observed graph) get the
  baselines' scores exactly (tested feature by feature); under the temporal protocol's
  drift setting a warm test user's history before the cut *is* observed, and, as for a
  training center, its own interactions are left out of its features (so that training
  and test tasks see one definition: the other users' interactions);
* **training tasks** are centered on training users, whose items *are* observed. Each
  feature is computed on the observed graph **without the center's own items** (item
  counts corrected per task, the center's column of every user-user step zeroed), so a
  training center's query items never reach its features.

All of it is dense ``[T, I]`` / ``[T, U]`` arithmetic and sparse-dense products
(no per-candidate or per-task Python).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from socialmeta.features.sparse import CSR, Sparse, candidate_normalized

#: the item pair features, in the order they are stacked (``recent_popularity``
#: stands for one channel per half-life)
ITEM_FEATURES = ("itemknn", "userknn", "popularity", "social_popularity",
                 "recent_popularity")
#: bound of the scaled item features (:meth:`ItemPairFeatures.__call__`)
ITEM_FEATURE_CLIP = 10.0
#: half-lives in days of the ``recent_popularity`` channels (the baseline's grid)
RECENT_HALF_LIVES = (7.0, 30.0, 90.0, 365.0, 1825.0)
#: the center's relation each context feature reads
ITEM_NEEDS = {"social_popularity": "friends"}
#: neighbours of the ``userknn`` feature (the baseline's default ``k``)
USERKNN_K = 50


class ItemPairFeatures:
    r"""Pair features ``[T, I, P]`` of item tasks from the observed interactions.

    Args:
        interactions: ``[2, E]`` observed (user, item) pairs (duplicates allowed).
        num_users: ``U``.
        num_items: ``I``.
        names: Features to compute, from :data:`ITEM_FEATURES`.
        userknn_k: Neighbours of ``userknn``. (default: :obj:`50`)
        times: ``[E]`` each interaction's time (Unix seconds), for
            ``recent_popularity``: every interaction counts ``2^(-(cut - t) / h)`` at
            each half-life ``h`` of :data:`RECENT_HALF_LIVES` (days), as the
            :class:`~socialmeta.baselines.item.RecentPopularity` baseline counts it.
        cut: The time ages are measured from (the temporal split's cut; default the
            latest time plus one second).

    Example:
        >>> feats = ItemPairFeatures(observed_interactions, U, I, ["itemknn", "popularity"])
        >>> raw = feats.raw(batch.center, support)            # {"itemknn": [T, I], ...}
        >>> phi = feats(batch.center, support, candidates)   # [T, I, P], scaled per task
    """

    def __init__(self, interactions: Tensor, num_users: int, num_items: int,
                 names: Sequence[str], userknn_k: int = USERKNN_K,
                 times: Tensor | None = None, cut: int | None = None) -> None:
        unknown = [n for n in names if n not in ITEM_FEATURES]
        if unknown:
            raise ValueError(f"unknown item pair feature {unknown[0]!r}; choose from "
                             f"{list(ITEM_FEATURES)}")
        if userknn_k < 1:
            raise ValueError(f"userknn_k must be >= 1, got {userknn_k}")
        self.names = tuple(n for n in ITEM_FEATURES if n in names)
        self.num_users, self.num_items, self.userknn_k = num_users, num_items, userknn_k
        key = torch.unique(interactions[0] * num_items + interactions[1])
        index = torch.stack([key // num_items, key % num_items])
        self.counts = torch.bincount(index[1], minlength=num_items).float()
        degree = torch.bincount(index[0], minlength=num_users).float()
        self.user_norm = degree.clamp(min=1.0).rsqrt()
        self.user_items = Sparse(index, (num_users, num_items))         # [T, U] -> [T, I]
        self.item_users = Sparse(index.flip(0), (num_items, num_users))  # [T, I] -> [T, U]
        self.items = CSR.from_edge_index(index, num_users, num_items)
        if "recent_popularity" in self.names:
            if times is None:
                raise ValueError("item pair feature 'recent_popularity' needs dated "
                                 "interactions")
            if times.numel() != interactions.size(1):
                raise ValueError(f"{times.numel()} interaction times for "
                                 f"{interactions.size(1)} interactions")
            if cut is None:
                cut = int(times.max()) + 1 if times.numel() else 0
            age_days = (cut - times).double() / 86400.0
            weight = torch.exp2(-age_days.unsqueeze(1)
                                / torch.tensor(RECENT_HALF_LIVES, dtype=torch.float64))
            # every interaction counts (repeats too), as in the baseline; per user in
            # CSR order, to take a training center's own out per task
            self.recent = torch.zeros(num_items, len(RECENT_HALF_LIVES),
                                      dtype=torch.float64).index_add_(0, interactions[1], weight)
            self.recent_rows, self.recent_weight = CSR.with_values(
                interactions, num_users, num_items, weight)

    @property
    def channels(self) -> list[str]:
        return item_channels(self.names)

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels})"

    def __call__(self, center: Tensor, support: Tensor, candidates: Tensor,
                 friends: Tensor | None = None) -> Tensor:
        r"""``[T, I, P]``: every channel of :meth:`raw`, divided by its largest
        absolute value among the task's :obj:`candidates` (``[T, I]`` bool), clipped
        to ``±ITEM_FEATURE_CLIP``, and zero at items that are neither candidates nor
        positive support items (a warm user's history under the drift protocol: never
        ranked, never a target).

        The clip: a support item may score above every candidate (on lastfm up to 3.9x
        the candidates' maximum), but where no candidate carries a channel's signal
        (drift: every item the user's neighbours hold is already in its history) the
        ratio reached ~10^7, the inner loop's gate step on the support loss blew up and
        meta-training diverged. On lastfm item tasks the largest value in three training
        batches of 64 was 3.9: the clip leaves them as they were."""
        raw = self.raw(center, support, friends)
        keep = (candidates | (support > 0)).unsqueeze(-1)
        scaled = torch.stack([candidate_normalized(v, candidates) for v in raw.values()], -1)
        return scaled.clamp(-ITEM_FEATURE_CLIP, ITEM_FEATURE_CLIP).masked_fill(~keep, 0.0)

    def raw(self, center: Tensor, support: Tensor, friends: Tensor | None = None
            ) -> dict[str, Tensor]:
        r"""Unscaled features ``{name: [T, I]}``.

        Args:
            center: ``[T]`` center user of each task.
            support: ``[T, I]`` 0/1 positive support items.
            friends: ``[T, U]`` 0/1 friends of the center among training users
                (``social_popularity``).
        """
        t = torch.arange(center.numel())
        counts = self.counts - self.items.dense_rows(center)   # without the center's own
        top = counts.max(1, keepdim=True).values.clamp(min=1.0)
        tie = 1e-6 * counts / top                               # the baselines' tie-break
        norm = counts.clamp(min=1.0).rsqrt()
        out: dict[str, Tensor] = {}
        for name in self.names:
            if name == "recent_popularity":
                out.update(self._recent(center, tie))
                continue
            if name == "popularity":
                value = counts
            elif name == "itemknn":   # sum over S of cos(i, j), item columns without u
                users = self.item_users.rmul(support * norm)
                users[t, center] = 0.0
                value = self.user_items.rmul(users) * norm
            elif name == "userknn":   # the k most similar other users vote
                sim = (self.item_users.rmul(support) * self.user_norm
                       / support.sum(1, keepdim=True).clamp(min=1).sqrt())
                sim[t, center] = 0.0
                top_k = sim.topk(min(self.userknn_k, sim.size(1)), dim=1)
                votes = torch.zeros_like(sim).scatter_(1, top_k.indices, top_k.values)
                value = self.user_items.rmul(votes) + tie
            else:
                if friends is None:
                    raise ValueError("item pair feature 'social_popularity' needs the "
                                     "center's friends (task context 'friends')")
                friends = friends.clone()
                friends[t, center] = 0.0
                value = self.user_items.rmul(friends) + tie
            out[name] = value
        return out


    def _recent(self, center: Tensor, tie: Tensor) -> dict[str, Tensor]:
        r"""The ``recent_popularity`` channels: the baseline's score, recency-weighted
        counts over their largest plus :obj:`tie` (all-time counts at ``1e-6``, its
        tie-break, as :meth:`raw` computes it), without the center's own
        interactions."""
        pos, slot = self.recent_rows.slots(center)
        own = torch.zeros(center.numel(), self.num_items, len(RECENT_HALF_LIVES),
                          dtype=torch.float64)
        own.index_put_((pos, self.recent_rows.col[slot]), self.recent_weight[slot],
                       accumulate=True)
        recent = (self.recent.unsqueeze(0) - own).clamp(min=0.0).float()
        top = recent.amax(1, keepdim=True).clamp(min=1e-30)
        return {name: recent[..., h] / top[..., h] + tie
                for h, name in enumerate(item_channels(("recent_popularity",)))}


def item_channels(names: Sequence[str]) -> list[str]:
    """Channel names of the item pair features :obj:`names`, in stacking order
    (``recent_popularity@<half-life in days>`` per half-life)."""
    out = []
    for name in (n for n in ITEM_FEATURES if n in names):
        out += ([f"recent_popularity@{h:g}" for h in RECENT_HALF_LIVES]
                if name == "recent_popularity" else [name])
    return out


def allowed_item_features(context: Sequence[str], dated: bool = False) -> list[str]:
    """Every item pair feature that a task with :obj:`context` can compute
    (``recent_popularity`` only on :obj:`dated` tasks: the temporal protocol's)."""
    return [n for n in ITEM_FEATURES
            if (ITEM_NEEDS.get(n) is None or ITEM_NEEDS[n] in context)
            and (dated or n != "recent_popularity")]
