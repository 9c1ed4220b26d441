r"""Pair features of every (new user, candidate) pair for friend tasks, over the whole
observed graph, as batched tensor ops.

A task's new user ``u`` is known by its K support friends ``S`` (and, where its
context allows, its items and profile features). Every feature is the score of a
friend-recommendation baseline (:mod:`socialmeta.baselines.friend`) computed as if
``u`` were a new node of the observed graph with edges to ``S`` only:

* **evaluation tasks** (val/test centers) are isolated in the observed graph, so the
  features equal the baselines' scores exactly;
* **training tasks** are centered on training users, whose every link *is* observed.
  Each feature is computed on the observed graph **minus all of the center's own
  links and items** (degrees, PageRank transitions, item counts corrected per task),
  so a training center's query links never reach its features and a training task
  sees what a real new user would see.

All of it is dense ``[T, U]`` arithmetic plus sparse-dense products ``[U, U] x
[U, T]`` (no per-candidate or per-task Python).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from socialmeta.features.push import DEFAULT_EPSILON, push_pagerank
from socialmeta.features.sparse import CSR, Sparse, candidate_normalized, cosine_rows

#: the friend pair features, in the order they are stacked (``ppr`` stands for one
#: channel per restart probability)
FRIEND_FEATURES = ("ppr", "common_neighbors", "adamic_adar", "resource_allocation",
                   "jaccard", "paths3", "popularity", "friends_taste", "taste",
                   "feature_similarity")
#: the center's relation each context feature reads
NEEDS = {"taste": "items", "feature_similarity": "features"}
DEFAULT_ALPHAS = (0.05, 0.15, 0.3, 0.5)
PPR_ITERATIONS = 50
MIN_COLUMNS = 32


class FriendPairFeatures:
    r"""Pair features ``[T, U, P]`` of friend tasks from the observed graph.

    Args:
        friend_index: ``[2, E]`` observed friendships (both directions).
        num_users: ``U``.
        names: Features to compute, from :data:`FRIEND_FEATURES`.
        alphas: PageRank restart probabilities (one channel each).
            (default: :obj:`(0.05, 0.15, 0.3, 0.5)`)
        interactions: ``[2, E']`` observed (user, item) pairs and ``num_items``, for
            ``taste`` (cosine of item sets, idf-weighted like
            :class:`~socialmeta.baselines.friend.TasteSimilarity` with ``idf=True``)
            and ``friends_taste`` (the same cosine with the support friends' pooled
            items: :class:`~socialmeta.baselines.friend.FriendsTaste`; no context).
        x: ``[U, F]`` user features, for ``feature_similarity``.
        local (bool): Compute every graph feature from the support's neighbourhood
            only, for graphs where a pass over every edge per batch is too slow (10^6
            users): PageRank by local push (:func:`~socialmeta.features.push.push_pagerank`,
            the converged PageRank to within ``ppr_epsilon`` times a node's degree,
            instead of the 50-step walk), and the neighbour sums (common neighbours,
            Adamic-Adar, resource allocation, Jaccard, 3-paths) by gathering the
            support's neighbours, which gives the same values as the sparse products.
            (default: :obj:`False`)
        ppr_epsilon (float): ``ε`` of the local push. (default: :obj:`1e-6`)

    Example:
        >>> feats = FriendPairFeatures(observed_friends, num_users, ["ppr", "adamic_adar"])
        >>> raw = feats.raw(batch.center, support)            # {"ppr@0.15": [T, U], ...}
        >>> phi = feats(batch.center, support, candidates)   # [T, U, P], scaled per task
    """

    def __init__(self, friend_index: Tensor, num_users: int, names: Sequence[str],
                 alphas: Sequence[float] = DEFAULT_ALPHAS,
                 interactions: Tensor | None = None, num_items: int = 0,
                 x: Tensor | None = None, local: bool = False,
                 ppr_epsilon: float = DEFAULT_EPSILON) -> None:
        unknown = [n for n in names if n not in FRIEND_FEATURES]
        if unknown:
            raise ValueError(f"unknown friend pair feature {unknown[0]!r}; choose from "
                             f"{list(FRIEND_FEATURES)}")
        self.names = tuple(n for n in FRIEND_FEATURES if n in names)
        self.alphas = tuple(float(a) for a in alphas)
        if "ppr" in self.names and not self.alphas:
            raise ValueError("pair feature 'ppr' needs at least one restart probability")
        if local and ppr_epsilon <= 0:
            raise ValueError(f"ppr_epsilon must be > 0, got {ppr_epsilon}")
        self.local, self.ppr_epsilon = bool(local), float(ppr_epsilon)
        self.num_users = num_users
        self.adj = Sparse(friend_index, (num_users, num_users))
        with warnings.catch_warnings():  # "sparse CSR support is in beta": used as documented
            warnings.simplefilter("ignore", UserWarning)
            self.adj_csr = self.adj.t.to_sparse_csr()     # symmetric: Aᵀ = A
        self.degree = torch.bincount(friend_index[0], minlength=num_users).float()
        self.links = CSR.from_edge_index(friend_index, num_users, num_users)
        for name in ("taste", "friends_taste"):
            if name in self.names and (interactions is None or not num_items):
                raise ValueError(f"pair feature {name!r} needs the observed interactions "
                                 "(a dataset with items)")
        if {"taste", "friends_taste"} & set(self.names):
            key = torch.unique(interactions[0] * num_items + interactions[1])
            index = torch.stack([key // num_items, key % num_items])
            self.num_items = num_items
            self.item_counts = torch.bincount(index[1], minlength=num_items).float()
            self.user_items = Sparse(index.flip(0), (num_items, num_users))   # R^T
            self.item_rows = Sparse(index, (num_users, num_items))            # R
            self.items = CSR.from_edge_index(index, num_users, num_items)
        if "feature_similarity" in self.names:
            if x is None or x.size(1) == 0:
                raise ValueError("pair feature 'feature_similarity' needs user features")
            self.x = x.float()
            self.x_norm = self.x.norm(dim=1)

    @property
    def channels(self) -> list[str]:
        """Channel names in stacking order (``ppr@<alpha>`` per restart probability)."""
        return friend_channels(self.names, self.alphas)

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels})"

    # ----------------------------------------------------------------- public
    def __call__(self, center: Tensor, support: Tensor, candidates: Tensor,
                 context_items: Tensor | None = None, context_x: Tensor | None = None
                 ) -> Tensor:
        r"""``[T, U, P]``: every channel of :meth:`raw`, divided by its largest
        absolute value among the task's :obj:`candidates` (``[T, U]`` bool), as the
        learned ranker scales its inputs."""
        raw = self.raw(center, support, context_items, context_x)
        return torch.stack([candidate_normalized(v, candidates) for v in raw.values()], -1)

    def raw(self, center: Tensor, support: Tensor, context_items: Tensor | None = None,
            context_x: Tensor | None = None) -> dict[str, Tensor]:
        r"""Unscaled features ``{channel: [T, U]}``.

        Args:
            center: ``[T]`` center user of each task.
            support: ``[T, U]`` 0/1 positive support friends.
            context_items: ``[T, num_items]`` 0/1 items of the center (``taste``).
            context_x: ``[T, F]`` the center's features (``feature_similarity``).

        The center's own column is zero in every channel (it is never a candidate).
        """
        t = torch.arange(center.numel())
        own = self.links.dense_rows(center)            # the center's observed links
        degree = self.degree - own                      # degrees without the center
        degree[t, center] = 0.0
        keep = torch.ones_like(support)
        keep[t, center] = 0.0
        out: dict[str, Tensor] = {}
        common = None
        spread = self._spread if self.local else self.adj.rmul
        for name in self.names:
            if name == "ppr":
                ppr = self._push if self.local else self._ppr
                for alpha, p in zip(self.alphas, ppr(support, degree, keep, center)):
                    out[f"ppr@{alpha:g}"] = p
                continue
            if name in ("common_neighbors", "jaccard"):
                common = spread(support) if common is None else common
            if name == "common_neighbors":
                value = common
            elif name == "adamic_adar":
                weight = 1.0 / torch.log(degree + 1.0).clamp(min=torch.log(torch.tensor(2.0)))
                value = spread(support * weight)
            elif name == "resource_allocation":
                value = spread(support / (degree + 1.0))
            elif name == "jaccard":
                union = degree + support.sum(1, keepdim=True) - common
                value = common / union.clamp(min=1.0)
            elif name == "paths3":
                value = spread(spread(support) * keep)
            elif name == "popularity":
                value = degree
            elif name == "taste":
                value = self._taste(center, context_items)
            elif name == "friends_taste":
                value = self._friends_taste(center, support)
            else:
                value = self._feature_similarity(context_x)
            out[name] = value * keep
        return out

    # -------------------------------------------------------------- internals
    def _spread(self, rows: Tensor) -> Tensor:
        r"""``rows @ A`` for ``rows [T, U]`` from their nonzero entries only: each
        entry's value added to its node's neighbours (one CSR gather and one
        ``index_add`` for the batch; the same sums as the sparse product, in another
        order)."""
        task, node = rows.nonzero(as_tuple=True)
        pos, nbr = self.links.gather(node)
        out = rows.new_zeros(rows.numel())
        out.index_add_(0, task[pos] * rows.size(1) + nbr, rows[task, node][pos])
        return out.view_as(rows)

    def _push(self, support: Tensor, degree: Tensor, keep: Tensor, center: Tensor
              ) -> list[Tensor]:
        """Local-push PageRank from the support on the graph without each task's center
        (:func:`~socialmeta.features.push.push_pagerank`)."""
        restart = support / support.sum(1, keepdim=True).clamp(min=1.0)
        return push_pagerank(self.links, self.degree, restart, self.alphas, self.ppr_epsilon,
                             center=center)

    def _ppr(self, support: Tensor, degree: Tensor, keep: Tensor, center: Tensor
             ) -> list[Tensor]:
        r"""PageRank from the support for every restart probability, on the graph
        without the center's links (its column of the transition is dropped through
        ``keep``, its row through its zero degree).

        The baseline's power iteration (:func:`~socialmeta.baselines.personalized_pagerank`)
        ``p_{k+1} = α r + (1 - α) M p_k`` from ``p_0 = r`` unrolls to
        ``p_K = Σ_{j<K} α (1 - α)^j M^j r + (1 - α)^K M^K r``: the walk iterates
        ``x_j = M^j r`` do not depend on ``α``, so one walk of ``K`` CSR products over
        ``T`` columns serves every restart probability (``len(alphas)`` times fewer
        sparse products than iterating each one) and gives the same polynomial, equal
        to the iteration up to float rounding."""
        restart = support / support.sum(1, keepdim=True).clamp(min=1.0)
        inv = torch.where(degree > 0, 1.0 / degree.clamp(min=1.0), 0.0)
        # column layout [U, T]: one CSR product per step, no transposes; at least
        # MIN_COLUMNS columns (zero-padded), because below that the CPU CSR x dense
        # product's rounding depends on the column count (measured on torch 2.13 with
        # MKL), and a task's features must not depend on the size of its batch
        t = restart.size(0)
        pad = max(MIN_COLUMNS - t, 0)
        x, inv, keep = (torch.cat([v.t(), v.new_zeros(v.size(1), pad)], 1)
                        for v in (restart, inv, keep))
        out = [alpha * x for alpha in self.alphas]
        for step in range(1, PPR_ITERATIONS + 1):
            x = keep * (self.adj_csr @ (x * inv))
            for p, alpha in zip(out, self.alphas):
                weight = (1 - alpha) ** step
                p.add_(x, alpha=weight * alpha if step < PPR_ITERATIONS else weight)
        return [p[:, :t].t() for p in out]

    def _idf(self, center: Tensor) -> tuple[Tensor, Tensor]:
        r"""Per task, the idf weight of every item ``[T, I]`` over the training users
        without the center (its items leave the counts, as if it were a new user) and
        every user's norm under it ``[T, U]``."""
        counts = self.item_counts - self.items.dense_rows(center)   # without the center's own
        weight = torch.log(self.num_users / (1.0 + counts)).clamp(min=0.0)
        return weight, self.user_items.rmul(weight.pow(2)).sqrt()

    def _taste(self, center: Tensor, context_items: Tensor | None) -> Tensor:
        if context_items is None:
            raise ValueError("pair feature 'taste' needs the center's items (task context "
                             "'items')")
        weight, norm = self._idf(center)
        return self._cosine(context_items * weight, weight, norm)

    def _friends_taste(self, center: Tensor, support: Tensor) -> Tensor:
        r"""Cosine of every user's weighted items with the sum of the support friends'
        unit-norm weighted item vectors (the baseline's pooling)."""
        weight, norm = self._idf(center)
        unit = torch.where(norm > 0, 1.0 / norm.clamp(min=1e-12), 0.0)
        return self._cosine(self.item_rows.rmul(support * unit) * weight, weight, norm)

    def _cosine(self, query: Tensor, weight: Tensor, norm: Tensor) -> Tensor:
        """Cosine of each task's weighted item vector :obj:`query` ``[T, I]`` with every
        user's items weighted by :obj:`weight` (norms :obj:`norm`)."""
        dots = self.user_items.rmul(query * weight)
        norms = query.norm(dim=1, keepdim=True) * norm
        return torch.where(norms > 0, dots / norms.clamp(min=1e-12), 0.0)

    def _feature_similarity(self, context_x: Tensor | None) -> Tensor:
        if context_x is None:
            raise ValueError("pair feature 'feature_similarity' needs the center's features "
                             "(task context 'features')")
        return cosine_rows(context_x.float(), self.x, self.x_norm)


def friend_channels(names: Sequence[str], alphas: Sequence[float] = DEFAULT_ALPHAS
                    ) -> list[str]:
    """Channel names of the friend pair features :obj:`names`, in stacking order."""
    out = []
    for name in (n for n in FRIEND_FEATURES if n in names):
        out += [f"ppr@{float(a):g}" for a in alphas] if name == "ppr" else [name]
    return out


def allowed_friend_features(context: Sequence[str], friends_taste: bool = False
                            ) -> list[str]:
    """Every friend pair feature that a task with :obj:`context` can compute;
    ``friends_taste`` (which needs a dataset with items, not a context) only if
    :obj:`friends_taste`."""
    return [n for n in FRIEND_FEATURES if (NEEDS.get(n) is None or NEEDS[n] in context)
            and (n != "friends_taste" or friends_taste)]
