"""Ego-net tasks of every kind, built vectorised for many centers at once."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from socialmeta.data import FRIEND, INTERACTS, MEMBER_OF, SocialGraph
from socialmeta.features import DEFAULT_ALPHAS, FRIEND_FEATURES, FriendPairFeatures
from socialmeta.features.friend import NEEDS as FEATURE_NEEDS
from socialmeta.features.item import ITEM_FEATURES, ITEM_NEEDS, ItemPairFeatures
from socialmeta.features.sparse import indicator, support_matrix
from socialmeta.tasks.batch import TaskBatch, dense
from socialmeta.tasks.egonet import (
    CSR,
    EgoNets,
    induced_edges,
    member_index,
    rank_in_group,
    sample_egonets,
)
from socialmeta.tasks.new_item import ItemSplit, is_adoption_graph
from socialmeta.tasks.random import hash_keys, priority, randint
from socialmeta.tasks.split import TEMPORAL_USERS, TemporalSplit, UserSplit, observed_graph

KINDS = ("friend", "item", "interest", "new_item")
#: kinds whose candidates are users (``new_item``: a friend task on the adoption graph)
USER_TARGETS = ("friend", "new_item")
ITEM_ORDERS = ("hash", "shared")
PROTOCOLS = ("random", "temporal")
VARIANTS = ("center", "members")
LABEL_SOURCES = ("interests", "circles")
#: relations of the center a task kind may observe as context, and the default
CONTEXTS = {"friend": ("items", "features"), "item": ("friends", "features", "history"),
            "interest": ("friends", "items", "features"), "new_item": ("features",)}
DEFAULT_CONTEXT = {"friend": (), "item": ("friends",), "interest": ("friends",),
                   "new_item": ("features",)}
# salts that keep the hash streams of different random choices apart
_SHOTS, _NEG_SUPPORT, _NEG_QUERY, _ITEM, _LABEL, _CUT, _ORDER = 11, 13, 17, 19, 23, 29, 31
_NEG_ATTEMPTS = 8
EVAL_EPOCH = -1


@dataclass
class TaskConfig:
    r"""What a task is and how big it may get.

    Args:
        kind: ``"friend"``, ``"item"`` or ``"interest"``.
        variant: Interest tasks only: ``"center"`` (labelled members are the support,
            the center's labels the query) or ``"members"`` (K labelled members per
            label are the support, the other members the query).
        label_source: Interest tasks: ``"interests"`` or ``"circles"`` (per-ego).
        shots: K values; each training task draws one. (default: ``(1, 3, 5, 10)``)
        fanouts: Per-hop fan-out caps; its length is the number of hops (1-3); ``-1``
            keeps all neighbours. (default: ``(20, 10)``)
        node_cap: N, users per task including the center. (default: :obj:`64`)
        item_cap: I, items per task (item tasks, and tasks that observe ``items``).
            (default: :obj:`64`)
        item_order: Which items a task keeps when its ego-net holds more than
            ``item_cap``: the center's visible items always come first, then
            ``"hash"`` (a seeded random choice) or ``"shared"`` (the items held by
            the most ego-net users first, ties by the same random choice; what
            per-item counts over the ego-net, e.g. ``ItemModel(heuristics=True)``,
            need). (default: :obj:`"hash"`)
        query_cap: Q, query targets per training task (positives and negatives).
        negatives: Sampled negatives per positive target. (default: :obj:`1`)
        taste_fanout: Friend tasks that observe ``items``, and item tasks: besides
            the users reached over friendships, the ego-net takes at hop 2 (two steps
            away, over an item) the ``taste_fanout`` training users who share the most
            of the center's visible items (its context items; an item task's K support
            items), weighted like Adamic-Adar (each shared item counts
            ``1 / log(1 + its number of training users)``); the task's user cap
            grows by as much (:attr:`user_cap`). ``0`` turns it off; interest tasks
            ignore it. (default: :obj:`0`)
        context: Relations of the center observed as side information besides its
            K-shot support: ``items`` and/or ``features`` for friend tasks (default
            ``[]``, pure cold start), ``friends`` and/or ``features`` for item tasks
            (default ``[friends]``), ``friends`` (required), ``items``, ``features``
            for interest tasks (default ``[friends]``). Without ``features`` the
            center's own feature row is zeroed and flagged (see
            :func:`task_feature_channels`). The query relation is never context.
        support_input: Item tasks: whether the center's K support items are part of
            the task's input (its rows of the user-item adjacency, the first task
            items, the taste neighbours they select). With :obj:`False` only the
            support targets carry them, so only a learner's inner loop (its support
            loss) can use them: an ablation of amortised conditioning against
            gradient adaptation. (default: :obj:`True`)
        pair_features: Friend and new-item tasks: names of the pair features
            (:data:`~socialmeta.features.FRIEND_FEATURES`) that every batch carries in
            ``pair_features`` ``[T, num_users, P]``, computed over the whole observed
            graph from the support and context only (a training center's own links
            removed, see :class:`~socialmeta.features.FriendPairFeatures`); ``taste``
            needs ``items`` in the context, ``feature_similarity`` ``features``.
            Item tasks: names from :data:`~socialmeta.features.ITEM_FEATURES`
            (``[T, num_items, P]``, :class:`~socialmeta.features.ItemPairFeatures`;
            ``social_popularity`` needs ``friends``). (default: ``()``, none)
        friends_taste: Friend tasks on a dataset with items: the support friends'
            taste (:class:`~socialmeta.baselines.friend.FriendsTaste`, the cosine of
            a candidate's items with the support friends' pooled items; no context
            needed) is one of the heuristics: a hybrid's ``auto`` pair features and an
            input of the learned ranker include it. (default: :obj:`False`)
        ppr_alphas: Restart probabilities of the ``ppr`` pair feature (one channel
            each). (default: ``(0.05, 0.15, 0.3, 0.5)``)
        pair_local: Friend and new-item pair features from the support's neighbourhood
            only (PageRank by local push, neighbour sums by gathering the support's
            neighbours: :class:`~socialmeta.features.FriendPairFeatures` ``local``), for
            graphs too large for a pass over every edge per batch. (default:
            :obj:`False`)
        ppr_epsilon: ``ε`` of the local push: PageRank to within ``ε`` times a node's
            degree. (default: ``1e-6``)
        protocol: ``"random"`` (support and query are a seeded random split of the
            center's links) or ``"temporal"`` (item tasks on dated interactions: the
            support comes before the task's cut, the query after it; nothing dated
            after the cut reaches the task, see :class:`~socialmeta.tasks.TemporalSplit`
            and docs/design.md; new-item tasks: the new items are those first taken up
            after the cut, their support is their first K users by date, see
            :func:`~socialmeta.tasks.split_items`). (default: :obj:`"random"`)
        temporal_users: Under ``protocol="temporal"``: ``"warm"`` (drift: support =
            a known user's last K interactions before the global cut, query = those
            after it; training tasks put a seeded cut inside a training user's history)
            or ``"new"`` (users who arrive after the cut: support = their first K
            interactions, query = the later ones). Not used by new-item tasks.
            (default: :obj:`"warm"`)
        time_cut: The global cut: a quantile of the interaction times in ``(0, 1)``,
            an ISO-8601 date or Unix seconds (:func:`~socialmeta.tasks.time_cut`).
            (default: :obj:`0.7`)
        seed: Seed of every random choice. (default: :obj:`0`)
    """

    kind: str = "friend"
    variant: str = "center"
    label_source: str = "interests"
    shots: Sequence[int] = (1, 3, 5, 10)
    fanouts: Sequence[int] = (20, 10)
    node_cap: int = 64
    item_cap: int = 64
    item_order: str = "hash"
    query_cap: int = 32
    negatives: int = 1
    taste_fanout: int = 0
    context: Sequence[str] | None = None
    support_input: bool = True
    pair_features: Sequence[str] = ()
    friends_taste: bool = False
    ppr_alphas: Sequence[float] = DEFAULT_ALPHAS
    pair_local: bool = False
    ppr_epsilon: float = 1e-6
    protocol: str = "random"
    temporal_users: str = "warm"
    time_cut: float | int | str = 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, choices in (("kind", self.kind, KINDS),
                                     ("variant", self.variant, VARIANTS),
                                     ("label_source", self.label_source, LABEL_SOURCES),
                                     ("item_order", self.item_order, ITEM_ORDERS),
                                     ("protocol", self.protocol, PROTOCOLS),
                                     ("temporal_users", self.temporal_users, TEMPORAL_USERS)):
            if value not in choices:
                raise ValueError(f"unknown task {name} {value!r}; choose one of {list(choices)}")
        if not 1 <= len(self.fanouts) <= 3:
            raise ValueError(f"fanouts must list 1 to 3 hops, got {list(self.fanouts)}")
        if self.taste_fanout < 0:
            raise ValueError(f"taste_fanout must be >= 0, got {self.taste_fanout}")
        if self.taste_fanout and len(self.fanouts) < 2:
            raise ValueError("taste_fanout adds users at hop 2: fanouts must list at "
                             f"least 2 hops, got {list(self.fanouts)}")
        if not self.shots or min(self.shots) < 1:
            raise ValueError(f"shots must be positive integers, got {list(self.shots)}")
        self.shots, self.fanouts = tuple(self.shots), tuple(self.fanouts)
        if self.context is None:
            self.context = DEFAULT_CONTEXT[self.kind]
        if isinstance(self.context, str):
            raise ValueError(f"task context must be a list of relations, got {self.context!r}")
        allowed = CONTEXTS[self.kind]
        for relation in self.context:
            if relation not in allowed:
                raise ValueError(f"unknown context {relation!r} for {self.kind!r} tasks; "
                                 f"choose from {list(allowed)}")
        self.context = tuple(r for r in allowed if r in self.context)  # canonical order
        if not self.support_input and self.kind != "item":
            raise ValueError(f"support_input=false is defined for item tasks only, not "
                             f"{self.kind!r}: a {self.kind} task's support builds the "
                             "ego-net its model scores")
        self.pair_features, self.ppr_alphas = tuple(self.pair_features), tuple(self.ppr_alphas)
        if self.pair_features and self.kind not in (*USER_TARGETS, "item"):
            raise ValueError(f"pair_features are defined for {[*USER_TARGETS, 'item']} "
                             f"tasks, not {self.kind!r}")
        names, needs = ((ITEM_FEATURES, ITEM_NEEDS) if self.kind == "item"
                        else (FRIEND_FEATURES, FEATURE_NEEDS))
        for name in self.pair_features:
            if name not in names:
                raise ValueError(f"unknown pair feature {name!r} for {self.kind} tasks; "
                                 f"choose from {list(names)}")
            need = needs.get(name)
            if need and need not in self.context:
                raise ValueError(f"pair feature {name!r} reads the center's {need}: add "
                                 f"{need!r} to the task context (now {list(self.context)})")
        if self.friends_taste and self.kind != "friend":
            raise ValueError(f"friends_taste is defined for friend tasks, not {self.kind!r}")
        if self.protocol == "temporal" and self.kind not in ("item", "new_item"):
            raise ValueError(f"protocol=temporal is defined for item and new-item tasks, not "
                             f"{self.kind!r}: only user-item interactions carry times "
                             "(no loader dates friendships or labels)")
        if "history" in self.context and not (self.protocol == "temporal"
                                               and self.temporal_users == "warm"):
            raise ValueError("context 'history' (a warm user's older interactions) needs "
                             "protocol=temporal with temporal_users=warm")
        if self.kind == "interest" and "friends" not in self.context:
            raise ValueError("interest tasks need 'friends' in their context: the support "
                             "is the labelled friends of the ego-net")

    def observes(self, relation: str) -> bool:
        """Whether the center's :obj:`relation` is visible as context."""
        return relation in self.context

    @property
    def uses_taste(self) -> bool:
        """Whether ego-nets take taste neighbours (see ``taste_fanout``)."""
        return self.taste_fanout > 0 and (
            self.kind == "item" or (self.kind == "friend" and self.observes("items")))

    @property
    def user_cap(self) -> int:
        """Users per task: ``node_cap``, plus ``taste_fanout`` where taste
        neighbours are taken."""
        return self.node_cap + (self.taste_fanout if self.uses_taste else 0)

    @property
    def support_cap(self) -> int:
        return max(self.shots) * (1 + self.negatives)


def task_feature_channels(graph: SocialGraph) -> int:
    r"""Width ``F'`` of a task's node features ``x``: the graph's ``F`` user features
    plus one "feature row hidden" flag when ``F > 0`` (the center's row is zeroed and
    flagged unless its task observes ``features``); 0 for featureless graphs."""
    num_features = graph["user"].x.size(1)
    return num_features + 1 if num_features else 0


class TaskSampler:
    r"""Turns a :class:`SocialGraph` and a :class:`UserSplit` into ego-net tasks.

    Training tasks (:meth:`train_batch`) are centered on training users and built on
    the observed graph (training users only); the center's support/query split
    simulates a cold-start user. Evaluation tasks (:meth:`eval_batch`) are centered on
    val/test users, who arrive as new users: their only visible links are the K
    support links (plus, for item and interest tasks, their friendships with training
    users). Query links and labels never enter a task's graph, features or support.

    Every random choice hashes ``(seed, epoch, task index, ...)``: a task is the same
    whatever batch size, worker or rank builds it.

    Example:
        >>> split = split_users(graph, seed=0)
        >>> sampler = TaskSampler(graph, split, TaskConfig(kind="friend"))
        >>> batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=64)
        >>> batch.adj.shape
        torch.Size([64, 64, 64])
    """

    def __init__(self, graph: SocialGraph, split: UserSplit, config: TaskConfig) -> None:
        self.graph, self.split, self.config = graph, split, config
        self._check_relations()
        self.temporal = self._check_protocol()
        self.observed = observed_graph(graph, split)
        self.num_users = graph.num_users
        self.is_train = split.is_train()
        # new-item tasks under the temporal protocol: with each link's time (column order)
        dated = self.temporal and config.kind == "new_item"
        self.background, self.background_link_time = CSR.with_values(
            self.observed[FRIEND].edge_index, self.num_users, self.num_users,
            self.observed[FRIEND].time if dated else None)
        self.friends, self.link_time = CSR.with_values(
            graph.friend_index, self.num_users, self.num_users,
            graph.link_time if dated else None)
        # links that training negatives avoid (by date: the known ones, before the cut)
        src, dst = (self.observed if dated else graph).friend_index
        self.friend_keys = (src * self.num_users + dst).sort().values
        if graph.has_items:
            self.num_items = graph.num_items
            # under the temporal protocol with each edge's time in the CSRs' column order
            self.items, self.item_time = CSR.with_values(
                graph.interaction_index, self.num_users, self.num_items,
                graph.interaction_time if self.temporal else None)
            self.background_items, self.background_time = CSR.with_values(
                self.observed[INTERACTS].edge_index, self.num_users, self.num_items,
                self.observed[INTERACTS].time if self.temporal else None)
            # item -> its training users, where taste neighbours are taken
            self.background_users = (CSR.from_edge_index(
                self.observed[INTERACTS].edge_index.flip(0), self.num_items, self.num_users)
                if config.uses_taste else None)
            u, i = graph.interaction_index
            self.item_keys = (u * self.num_items + i).sort().values
            if self.temporal:  # the observed pairs (query negatives avoid them)
                ou, oi = self.observed[INTERACTS].edge_index
                self.observed_item_keys = (ou * self.num_items + oi).sort().values
        self._labels = self._label_matrix()
        self.pair_features = self._pair_feature_maker()
        self._epoch_cache: tuple[int, Tensor] | None = None
        self._train_centers: Tensor | None = None
        self._links: dict[str, tuple[Tensor, Tensor]] | None = None

    # ----------------------------------------------------------------- public
    def share_memory(self) -> TaskSampler:
        r"""Moves every tensor the sampler reads (the graph, the observed graph, the
        CSR indexes, keys and labels) to shared memory, in place, so that worker
        processes map them instead of copying them. Returns :obj:`self`."""
        for tensor in self._tensors():
            tensor.share_memory_()
        return self

    def _tensors(self):
        for value in vars(self).values():
            if isinstance(value, Tensor):
                yield value
            elif isinstance(value, CSR):
                yield from (value.rowptr, value.col)
            elif isinstance(value, SocialGraph):
                for store in value.stores:
                    yield from (v for v in store.values() if isinstance(v, Tensor))

    @property
    def in_channels(self) -> int:
        """Width of the tasks' node features (see :func:`task_feature_channels`)."""
        return task_feature_channels(self.graph)

    def train_centers(self) -> Tensor:
        """Training users that can center a training task of this kind (computed once:
        it reads every training user's links)."""
        if self._train_centers is None:
            if self.temporal and self.config.kind == "item":  # two interactions before the cut
                users = self.split.train
                self._train_centers = users[self.background_items.degree(users) >= 2]
            elif self.temporal:  # new items: items with two users before the cut
                pool = self.split.train_pool
                self._train_centers = pool[self.background.degree(pool) >= 2]
            else:
                self._train_centers = self._eligible(self.split.train_pool, min_links=2)
        return self._train_centers

    def eval_centers(self, split: str, shots: int) -> Tensor:
        """Val/test users with more than :obj:`shots` links (at least one to predict);
        under the temporal protocol with warm users, at least :obj:`shots`
        interactions before the cut and one after it."""
        users = self.split.users(split)
        if self.temporal and self.config.kind == "item" and \
                self.config.temporal_users == "warm":
            before = self.background_items.degree(users)
            return users[(before >= shots) & (self.items.degree(users) > before)]
        return self._eligible(users, min_links=shots + 1)

    def train_batch(self, epoch: int, batch_index: int, batch_size: int) -> TaskBatch:
        r"""Training tasks ``batch_index * batch_size ... + batch_size - 1`` of
        :obj:`epoch`; task ``i`` of an epoch is centered on the ``i``-th user of a
        seeded permutation of :meth:`train_centers`."""
        index = torch.arange(batch_index * batch_size, (batch_index + 1) * batch_size)
        return self.train_tasks(epoch, index)

    def train_tasks(self, epoch: int, index: Tensor) -> TaskBatch:
        """Training tasks with the given indices (any order, any grouping)."""
        centers = self._epoch_centers(epoch, index)
        keys = hash_keys(self.config.seed, epoch, index)
        shots = torch.tensor(self.config.shots)[randint(len(self.config.shots), keys, _SHOTS)]
        return self._build(centers, keys, shots, index, train=True)

    def eval_batch(self, users: Tensor, shots: int) -> TaskBatch:
        r"""Cold-start tasks for val/test :obj:`users` with :obj:`shots` support links.

        The support of K=1 is contained in that of K=3, and so on (same priorities).
        Queries are all the user's remaining links (uncapped) for full ranking.
        """
        users = torch.as_tensor(users, dtype=torch.long).view(-1)
        if self.is_train[users].any():
            bad = users[self.is_train[users]][0]
            raise ValueError(f"user {self.graph.user_id(int(bad))!r} is a training user; "
                             "evaluation tasks are for val/test users")
        keys = hash_keys(self.config.seed, EVAL_EPOCH, users)
        return self._build(users, keys, torch.full_like(users, shots), users, train=False)

    def support_batch(self, centers: Tensor, friends: Sequence[Tensor] | None = None,
                      items: Sequence[Tensor] | None = None) -> TaskBatch:
        r"""One task per center whose support is *all* its given links, with nothing
        held out and no query: what recommending to a user adapts on.

        Args:
            centers: ``[T]`` user ids (any role; a user not in the observed graph, e.g.
                a placeholder row for a brand-new user, has no links of its own).
            friends: Per center, global ids of its friends (training users): the
                support of friend tasks, the context of item and interest tasks.
                ``None``: each center's own friendships with training users.
            items: Per center, global item ids: the support of item tasks, the
                context of tasks that observe ``items``. ``None``: each center's own
                items.
        """
        centers = torch.as_tensor(centers, dtype=torch.long).view(-1)

        def flat(per_center: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
            ids = [torch.as_tensor(v, dtype=torch.long).view(-1) for v in per_center]
            if len(ids) != centers.numel():
                raise ValueError(f"{len(ids)} link lists for {centers.numel()} centers")
            pos = torch.repeat_interleave(torch.arange(len(ids)),
                                          torch.tensor([v.numel() for v in ids]))
            return pos, torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long)

        links = {"friends": flat(friends) if friends is not None
                 else self._training_friends(centers)}
        if self.config.kind == "item" or self.config.observes("items"):
            links["items"] = flat(items) if items is not None else self.items.gather(centers)
        sizes = torch.bincount(links["items" if self.config.kind == "item" else "friends"][0],
                               minlength=centers.numel())
        shots = sizes.clamp(min=1) if self.config.kind != "interest" else torch.full_like(
            centers, self.config.user_cap)
        keys = hash_keys(self.config.seed, EVAL_EPOCH, centers)
        self._links = links
        try:
            return self._build(centers, keys, shots, centers, train=False)
        finally:
            self._links = None

    def candidate_mask(self, batch: TaskBatch) -> Tensor:
        r"""Full-ranking candidates of each task, ``bool [T, num_users]`` for friend
        tasks (every training user except the center and its support friends) or
        ``[T, num_items]`` for item tasks (every item except the support items).

        A task's query positives are always candidates; nothing else is excluded, so
        query links are ranked against the whole catalogue, not sampled negatives.
        """
        kind = self.config.kind
        if kind == "interest":
            raise ValueError(f"{kind!r} tasks have no link candidates")
        mask = torch.zeros(batch.num_tasks, self.num_candidates, dtype=torch.bool)
        if kind in USER_TARGETS:
            mask[:, self.split.candidate_users] = True
            mask[torch.arange(batch.num_tasks), batch.center] = False
        else:
            mask[:] = True
        support = batch.support_mask & (batch.support_label == 1)
        mask[support.nonzero()[:, 0], batch.support_ids[support]] = False
        seen_ids = getattr(batch, "seen_ids", None)   # hand-made batches may lack it
        if seen_ids is not None and seen_ids.numel():
            seen = seen_ids >= 0
            mask[seen.nonzero()[:, 0], seen_ids[seen]] = False
        return mask

    @property
    def num_candidates(self) -> int:
        """Width of a link task's candidate scores: users (friend and new-item
        tasks; the adoption graph's nodes, of which the users are candidates) or
        items (item tasks)."""
        return self.num_items if self.config.kind == "item" else self.num_users

    def context_friends(self, users: Tensor) -> tuple[Tensor, Tensor]:
        r"""Friendships of :obj:`users` with training users, as ``(position in
        users, friend id)``: what item and interest tasks see of a user's friends."""
        return self._training_friends(users)

    def context_items(self, users: Tensor) -> tuple[Tensor, Tensor]:
        r"""Items of :obj:`users` as ``(position in users, item id)``: what tasks that
        observe ``items`` see of their center."""
        if not self.graph.has_items:
            raise ValueError(f"dataset {self.graph.name!r} has no items")
        return self.items.gather(users)

    # -------------------------------------------------------------- internals
    def _check_relations(self) -> None:
        cfg, g = self.config, self.graph
        need = {"item": "items"}.get(cfg.kind)
        if cfg.kind == "interest":
            need = cfg.label_source
        if need and need not in g.relations:
            raise ValueError(f"a {cfg.kind!r} task needs {need!r}, but dataset {g.name!r} "
                             f"has only {g.relations}")
        if cfg.kind == "interest" and need == "interests":
            used = (g["user"].interests.sum(0) > 0).nonzero().view(-1).tolist()
            if len(used) < 2:   # one label: every ranking of it is perfect
                names = [g.interest_names[i] for i in used]
                raise ValueError(f"interest tasks rank a user's interests, but every "
                                 f"labelled user of dataset {g.name!r} has the same one "
                                 f"{names}: there is nothing to rank (at least 2 interests "
                                 "are needed)")
        for relation in cfg.context:
            if relation == "history":  # the temporal protocol's; needs times (checked)
                continue
            if relation not in g.relations:
                raise ValueError(f"task context {relation!r} is not available: dataset "
                                 f"{g.name!r} has only the relations {g.relations}")
        if cfg.kind == "new_item":
            if not is_adoption_graph(g):
                raise ValueError(f"new-item tasks run on the adoption graph of users and "
                                 f"items; dataset {g.name!r} is not one (build it with "
                                 "socialmeta.tasks.adoption_graph)")
            if not isinstance(self.split, ItemSplit):
                raise ValueError("new-item tasks need an item split "
                                 "(socialmeta.tasks.split_items)")

        elif isinstance(self.split, ItemSplit):
            raise ValueError(f"an item split is for new-item tasks, not {cfg.kind!r}")
        if cfg.kind == "interest" and cfg.label_source == "circles" and cfg.variant != "members":
            raise ValueError("circles are per-ego label sets: use task.variant=members")

    def _check_protocol(self) -> bool:
        """Whether tasks follow the temporal protocol; its split and data must match."""
        cfg, split = self.config, self.split
        temporal = cfg.protocol == "temporal"
        if cfg.kind == "new_item":  # split by date or by seed (checked in _check_relations)
            if temporal and split.cut is None:
                raise ValueError("task.protocol=temporal needs items split by date "
                                 "(socialmeta.tasks.split_items with cut=task.time_cut)")
            if not temporal and split.cut is not None:
                raise ValueError("items split by date need task.protocol=temporal")
            if temporal and not self.graph.has_link_times:
                raise ValueError(f"task.protocol=temporal needs dated interactions; the "
                                 f"adoption graph {self.graph.name!r} has no link times")
            return temporal
        if temporal and not isinstance(split, TemporalSplit):
            raise ValueError("task.protocol=temporal needs a temporal split "
                             "(socialmeta.tasks.split_temporal at task.time_cut)")
        if not temporal and isinstance(split, TemporalSplit):
            raise ValueError("a temporal split needs task.protocol=temporal")
        if temporal:
            if not self.graph.has_times:
                raise ValueError(f"task.protocol=temporal needs dated interactions; "
                                 f"dataset {self.graph.name!r} has no interaction times")
            if split.mode != cfg.temporal_users:
                raise ValueError(f"the split has {split.mode!r} users, the task config "
                                 f"{cfg.temporal_users!r} (task.temporal_users)")
        return temporal

    def _pair_feature_maker(self) -> FriendPairFeatures | ItemPairFeatures | None:
        cfg = self.config
        if not cfg.pair_features:
            return None
        if cfg.kind == "item":
            dated = "recent_popularity" in cfg.pair_features
            if dated and not self.observed.has_times:
                raise ValueError(f"pair feature 'recent_popularity' needs dated "
                                 f"interactions; dataset {self.graph.name!r} has none")
            return ItemPairFeatures(self.observed[INTERACTS].edge_index, self.num_users,
                                    self.num_items, cfg.pair_features,
                                    times=self.observed.interaction_time if dated else None,
                                    cut=getattr(self.split, "cut", None))
        has_items = self.graph.has_items
        return FriendPairFeatures(
            self.observed[FRIEND].edge_index, self.num_users, cfg.pair_features,
            cfg.ppr_alphas,
            interactions=self.observed[INTERACTS].edge_index if has_items else None,
            num_items=self.graph.num_items if has_items else 0, x=self.graph["user"].x,
            local=cfg.pair_local, ppr_epsilon=cfg.ppr_epsilon)

    def _with_pair_features(self, batch: TaskBatch, links) -> TaskBatch:
        r"""Fills ``batch.pair_features`` (friend tasks with ``pair_features``): from
        the positive support and the context items/features, each channel scaled per
        task over its candidates (:meth:`candidate_mask`)."""
        if self.pair_features is None:
            return batch
        num_tasks = batch.num_tasks
        if isinstance(self.pair_features, ItemPairFeatures):
            friends = None
            if "social_popularity" in self.pair_features.names:
                friends = indicator(*self._context_friends(batch.center, links), num_tasks,
                                    self.num_users)
            batch.pair_features = self.pair_features(
                batch.center, support_matrix(batch, self.num_items),
                self.candidate_mask(batch), friends)
            return batch
        support = support_matrix(batch, self.num_users)
        items = x = None
        if "taste" in self.pair_features.names:
            items = indicator(*self._center_items(batch.center, links), num_tasks,
                              self.num_items)
        if "feature_similarity" in self.pair_features.names:
            x = self.graph["user"].x[batch.center]
        batch.pair_features = self.pair_features(batch.center, support,
                                                 self.candidate_mask(batch), items, x)
        return batch

    def _label_matrix(self) -> Tensor | None:
        if self.config.kind != "interest" or self.config.label_source != "interests":
            return None
        return self.graph["user"].interests.float()

    def _training_friends(self, users: Tensor) -> tuple[Tensor, Tensor]:
        """Friendships of :obj:`users` with training users, as ``(position, friend)``."""
        pos, friend = self.friends.gather(users)
        ok = self.is_train[friend]
        return pos[ok], friend[ok]

    def _links_of(self, users: Tensor) -> Tensor:
        """Number of predictable links of each user (friends with training users,
        items, or labelled neighbours), the quantity that eligibility needs."""
        kind = self.config.kind
        if kind == "item":
            return self.items.degree(users)
        pos, nbr = self._training_friends(users)
        if kind == "interest":
            ok = self._observed_labelled(nbr)
            pos = pos[ok]
        return torch.bincount(pos, minlength=users.numel())

    def _observed_labelled(self, users: Tensor) -> Tensor:
        if self.config.label_source == "circles":
            return self.is_train[users]
        return self.observed["user"].interest_mask[users]

    def _eligible(self, users: Tensor, min_links: int) -> Tensor:
        ok = self._links_of(users) >= min_links
        if self.config.kind == "interest":
            if self.config.label_source == "circles":
                ok &= torch.isin(users, self.graph["circle"].ego)
            elif self.config.variant == "center":
                ok &= self.graph["user"].interest_mask[users]
        return users[ok]

    def _epoch_centers(self, epoch: int, index: Tensor) -> Tensor:
        r"""The centers at positions :obj:`index` (modulo their number) of epoch
        :obj:`epoch`'s seeded permutation of :meth:`train_centers` (ascending hash
        priority). When the positions are few, only the first of them are selected
        (``topk``, O(U)) instead of sorting every center (O(U log U) per meta-step: the
        cost that dominated sampling at 10^6 users); the result is the same, since
        63-bit priorities do not tie (checked; a tie falls back to the full sort)."""
        centers = self.train_centers()
        n = centers.numel()
        if n == 0:
            raise ValueError(f"no training user can center a {self.config.kind!r} task")
        pos = index % n
        k = int(pos.max()) + 1 if pos.numel() else 0
        cached = self._epoch_cache is not None and self._epoch_cache[0] == epoch
        if not cached and k + 1 < n // 4:
            prio = priority(self.config.seed, epoch, centers)
            values, first = torch.topk(prio, k + 1, largest=False, sorted=True)
            if bool((values[1:] > values[:-1]).all()):
                return centers[first[pos]]
        if not cached:
            prio = priority(self.config.seed, epoch, centers)
            self._epoch_cache = (epoch, centers[torch.argsort(prio)])
        return self._epoch_cache[1][pos]

    def _build(self, centers: Tensor, keys: Tensor, shots: Tensor, index: Tensor,
               train: bool) -> TaskBatch:
        builder = {"friend": self._friend, "item": self._item,
                   "interest": self._interest, "new_item": self._friend}[self.config.kind]
        return builder(centers, keys, shots, index, train, self._links)

    # ------------------------------------------------------------ link tasks
    def _split_links(self, t: Tensor, target: Tensor, keys: Tensor, shots: Tensor,
                     train: bool, num_tasks: int, time: Tensor | None = None):
        """Support (rank < K) and query (the rest, capped in training) of each task's
        links ``(t, target)``, ranked by a hash of (task, target); with :obj:`time`,
        by time first (the support is the first K links, ties by the hash)."""
        order = priority(keys[t], target)
        if time is not None:   # position of each link by (time, hash)
            by_hash = torch.argsort(order)
            by_time = by_hash[torch.argsort(time[by_hash], stable=True)]
            order = torch.empty_like(by_time)
            order[by_time] = torch.arange(by_time.numel())
        rank = rank_in_group(t, order)
        count = torch.bincount(t, minlength=num_tasks)
        hold_out = 0 if self._links is not None else 1   # support_batch holds nothing out
        k = torch.minimum(shots, count - hold_out).clamp(min=0)
        support = rank < k[t]
        query = ~support
        if train:
            query &= rank < k[t] + max(1, self.config.query_cap // (1 + self.config.negatives))
        return rank, k, support, query

    def _negatives(self, keys: Tensor, centers: Tensor, per_task: Tensor, salt: int,
                   pool: Tensor, linked: Tensor, also_linked: Tensor | None = None
                   ) -> tuple[Tensor, Tensor]:
        r"""``per_task[t]`` targets from :obj:`pool` not linked to the center (the
        sorted keys :obj:`linked`, and :obj:`also_linked` when given, hold
        ``center * size + target``), as flat ``(t, target)``; a slot whose attempts
        all fail stays empty."""
        t = torch.repeat_interleave(torch.arange(centers.numel()), per_task)
        slot = torch.arange(t.numel()) - torch.repeat_interleave(per_task.cumsum(0) - per_task,
                                                                 per_task)
        size = self.num_candidates
        attempts = torch.arange(_NEG_ATTEMPTS).view(1, -1)
        cand = pool[randint(pool.numel(), keys[t].view(-1, 1), salt, slot.view(-1, 1), attempts)]
        key = centers[t].view(-1, 1) * size + cand
        bad = member_index(linked, key) >= 0
        if also_linked is not None:
            bad |= member_index(also_linked, key) >= 0
        if self.config.kind != "item":
            bad |= cand == centers[t].view(-1, 1)
        ok = ~bad
        first = torch.where(ok.any(1), ok.float().argmax(1), -1)
        keep = first >= 0
        return t[keep], cand[keep, first[keep]]

    def _link_targets(self, centers, keys, shots, train, pool_t, pool_target, pool, linked,
                      time=None):
        r"""Support and query targets ``(t, id, label)`` of friend or item tasks.

        :obj:`linked` (sorted ``center * size + target`` keys of every link) keeps
        training negatives off true links. An evaluation task's support negatives avoid
        only its visible links (the positive support): which users or items are its
        query must not shape what it adapts on."""
        _, k, sup, qry = self._split_links(pool_t, pool_target, keys, shots, train,
                                           centers.numel(), time)
        if not train:
            linked = (centers[pool_t[sup]] * self.num_candidates + pool_target[sup]
                      ).sort().values
        return k, self._link_sides(centers, keys, k, train, (pool_t[sup], pool_target[sup]),
                                   (pool_t[qry], pool_target[qry]), pool, linked)

    def _link_sides(self, centers, keys, k, train, support, query, pool, linked,
                    also_linked=None) -> dict:
        """Support and query ``(pos t, pos id, neg t, neg id)`` from the positive
        support and query: K·negatives sampled support negatives, and in training as
        many query negatives per query positive."""
        neg = self.config.negatives
        s_neg_t, s_neg = self._negatives(keys, centers, k * neg, _NEG_SUPPORT, pool, linked,
                                         also_linked)
        sides = {"support": (*support, s_neg_t, s_neg)}
        if train:
            q_pos = torch.bincount(query[0], minlength=centers.numel())
            q_neg_t, q_neg = self._negatives(keys, centers, q_pos * neg, _NEG_QUERY, pool,
                                             linked, also_linked)
        else:  # full ranking: negatives are all candidates, chosen by the evaluator
            q_neg_t = q_neg = torch.zeros(0, dtype=torch.long)
        sides["query"] = (*query, q_neg_t, q_neg)
        return sides

    def _friend(self, centers, keys, shots, index, train, links) -> TaskBatch:
        time = None
        if links:
            pos, friend = links["friends"]
        elif self.temporal:  # new items by date: a training item's links before the cut
            pos, friend, time = self._dated_links(centers, train)
        else:
            pos, friend = self._training_friends(centers)
        k, sides = self._link_targets(centers, keys, shots, train, pos, friend,
                                      self.split.candidate_users, self.friend_keys, time)
        sup_t, sup_node = sides["support"][0], sides["support"][1]
        center_items = (self._center_items(centers, links)
                        if self.config.observes("items") else None)
        ego = self._egonets(centers, keys, sup_t, sup_node, visible_items=center_items)
        batch = self._assemble(centers, keys, index, k, ego, sup_t, sup_node)
        if center_items is not None:
            self._add_items(batch, ego, keys, *center_items)
        batch = self._with_targets(batch, sides, self.num_users,
                                   _LocalKeys(ego.keys(), ego.local), train)
        return self._with_pair_features(batch, links)

    def _dated_links(self, centers: Tensor, train: bool) -> tuple[Tensor, Tensor, Tensor]:
        r"""Links of new-item task centers with their times, ``(position, user, time)``:
        a training item's links before the cut (the observed graph), a val/test item's
        links (all dated at or after it)."""
        csr, time = ((self.background, self.background_link_time) if train
                     else (self.friends, self.link_time))
        pos, slot = csr.slots(centers)
        return pos, csr.col[slot], time[slot]

    def _item(self, centers, keys, shots, index, train, links) -> TaskBatch:
        history = None
        if self.temporal and not links:
            k, support, history, query = self._temporal_items(centers, keys, shots, train)
            visible = (centers[torch.cat([support[0], history[0]])] * self.num_items
                       + torch.cat([support[1], history[1]]))
            sides = self._link_sides(centers, keys, k, train, support, query,
                                     torch.arange(self.num_items), self.observed_item_keys,
                                     visible.sort().values)
        else:
            pos, item = links["items"] if links else self.items.gather(centers)
            k, sides = self._link_targets(centers, keys, shots, train, pos, item,
                                          torch.arange(self.num_items), self.item_keys)
        f_pos, friend = self._context_friends(centers, links)
        support_items = sides["support"][:2]
        if not self.config.support_input:  # only the support targets carry them
            support_items = tuple(v[:0] for v in support_items)
        visible, prio = support_items, None
        if history is not None and self.config.observes("history"):
            # the center's visible items: its support first, then its history, the
            # most recent first (what the item cap keeps)
            visible = tuple(torch.cat([a, b]) for a, b in zip(support_items, history[:2]))
            prio = torch.cat([torch.full_like(support_items[0], -(2**40)), -1 - history[2]])
        ego = self._egonets(centers, keys, f_pos, friend, visible_items=visible)
        batch = self._assemble(centers, keys, index, k, ego, f_pos, friend)
        item_keys = self._add_items(batch, ego, keys, *visible, center_prio=prio)
        if history is not None:  # not candidates (candidate_mask), most recent first
            h_t, h_item, h_rank = history
            width = int(torch.bincount(h_t).max()) if h_t.numel() else 0
            batch.seen_ids = dense(h_t, rank_in_group(h_t, -h_rank), h_item,
                                   centers.numel(), width, -1)
        batch = self._with_targets(batch, sides, self.num_items, item_keys, train)
        return self._with_pair_features(batch, links)

    def _temporal_items(self, centers: Tensor, keys: Tensor, shots: Tensor, train: bool):
        r"""Positive support, history and query items of item tasks under the temporal
        protocol, as flat ``(t, item)`` (history: ``(t, item, rank in time)``), and K.

        A center's items are ordered by time (ties by a seeded hash). Training tasks
        read the training user's items before the global cut: with warm users the task
        cuts them at a seeded position ``p >= K`` (support = the K before ``p``,
        history = the older ones, query = the next ones from ``p``); with new users
        the support is the first K and the query the next ones. Evaluation tasks of
        warm users: support = the last K before the global cut, history = the older
        ones, query = every item after the cut not seen before it; of new users:
        support = the first K, query = the later ones.
        """
        warm = self.config.temporal_users == "warm"
        num_tasks = centers.numel()
        source, times = ((self.background_items, self.background_time) if train or warm
                         else (self.items, self.item_time))
        pos, slot = source.slots(centers)
        item, when = source.col[slot], times[slot]
        order = torch.argsort(priority(keys[pos], _ORDER, item), stable=True)
        order = order[torch.argsort(when[order], stable=True)]
        in_time = torch.empty_like(order)
        in_time[order] = torch.arange(order.numel())
        rank = rank_in_group(pos, in_time)
        count = torch.bincount(pos, minlength=num_tasks)
        if train:
            k = torch.minimum(shots, count - 1).clamp(min=0)
            cut = k + randint((count - k).clamp(min=1), keys, _CUT) if warm else k
            window = max(1, self.config.query_cap // (1 + self.config.negatives))
            query = (rank >= cut[pos]) & (rank < cut[pos] + window)
        elif warm:
            k = torch.minimum(shots, count)
            cut = count
            query = torch.zeros_like(pos, dtype=torch.bool)
        else:
            k = torch.minimum(shots, count - 1).clamp(min=0)
            cut = k
            query = rank >= k[pos]
        support = (rank >= (cut - k)[pos]) & (rank < cut[pos])
        history = rank < (cut - k)[pos]
        q_t, q_item = pos[query], item[query]
        if warm and not train:  # every item after the cut
            a_pos, a_slot = self.items.slots(centers)
            after = self.item_time[a_slot] >= self.split.cut
            q_t, q_item = a_pos[after], self.items.col[a_slot][after]
        # an item the center had before its cut (a repeat) is not a new item to predict
        before = support | history
        seen = torch.unique(pos[before] * self.num_items + item[before])
        new = member_index(seen, q_t * self.num_items + q_item) < 0
        return (k, (pos[support], item[support]), (pos[history], item[history], rank[history]),
                (q_t[new], q_item[new]))

    def _context_friends(self, centers: Tensor, links) -> tuple[Tensor, Tensor]:
        """The center's friendships with training users when the task observes
        ``friends`` (always for interest tasks), else none."""
        if not self.config.observes("friends"):
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty
        return links["friends"] if links else self._training_friends(centers)

    def _center_items(self, centers: Tensor, links) -> tuple[Tensor, Tensor]:
        """``(position, item)`` of the centers' own items: the ``items`` context."""
        return links["items"] if links else self.items.gather(centers)

    def _add_items(self, batch: TaskBatch, ego: EgoNets, keys: Tensor, center_t: Tensor,
                   center_item: Tensor, center_prio: Tensor | None = None) -> _LocalKeys:
        """Fills the task items (the center's visible items first, in the order of
        :obj:`center_prio` when given, then the observed items of the other ego-net
        users) and the user-item adjacency."""
        item_t, item_id, item_keys = self._task_items(ego, keys, center_t, center_item,
                                                      center_prio)
        batch.item_ids = dense(item_t, rank_in_group(item_t, torch.arange(item_t.numel())),
                               item_id, batch.num_tasks, self.config.item_cap, -1)
        batch.item_mask = batch.item_ids >= 0
        batch.item_adj = self._item_adj(ego, item_keys, center_t, center_item)
        return item_keys

    def _task_items(self, ego: EgoNets, keys: Tensor, sup_t: Tensor, sup_item: Tensor,
                    sup_prio: Tensor | None = None):
        """Items of a task: the center's visible items (support or context) first, then
        items of the other ego-net users (observed interactions), capped at I by a hash
        priority (``item_order="hash"``) or by how many ego-net users hold them, ties
        by the hash (``"shared"``)."""
        members = ego.local != 0
        pos, bg_item = self.background_items.gather(ego.node[members])
        bg_t = ego.task[members][pos]
        t, item = torch.cat([sup_t, bg_t]), torch.cat([sup_item, bg_item])
        if sup_prio is None:
            sup_prio = torch.full_like(sup_item, -1)
        prio = torch.cat([sup_prio, priority(keys[bg_t], _ITEM, bg_item)])
        key = t * self.num_items + item
        uniq, inverse = torch.unique(key, return_inverse=True)
        best = torch.full((uniq.numel(),), 2**63 - 1, dtype=torch.long).scatter_reduce(
            0, inverse, prio, reduce="amin")
        if self.config.item_order == "shared" and uniq.numel():
            # (most holders first, then the hash order); visible items stay first
            held = torch.bincount(inverse[sup_t.numel():], minlength=uniq.numel())
            hash_rank = torch.empty_like(best)
            hash_rank[torch.argsort(best)] = torch.arange(best.numel())
            best = torch.where(best < 0, best,
                               (int(held.max()) - held) * best.numel() + hash_rank)
        t, item = uniq // self.num_items, uniq % self.num_items
        rank = rank_in_group(t, best)
        keep = rank < self.config.item_cap
        t, item, rank = t[keep], item[keep], rank[keep]
        order = torch.argsort(t * self.config.item_cap + rank)
        t, item = t[order], item[order]
        # item_keys (sorted) -> local item index, for member_index lookups
        return t, item, _LocalKeys(t * self.num_items + item,
                                   rank_in_group(t, torch.arange(t.numel())))

    def _item_adj(self, ego: EgoNets, item_keys: _LocalKeys, sup_t: Tensor,
                  sup_item: Tensor) -> Tensor:
        members = ego.local != 0
        pos, item = self.background_items.gather(ego.node[members])
        t = torch.cat([ego.task[members][pos], sup_t])
        user_local = torch.cat([ego.local[members][pos], torch.zeros_like(sup_t)])
        item_local = item_keys.lookup(t * self.num_items + torch.cat([item, sup_item]))
        ok = item_local >= 0
        adj = torch.zeros(ego.num_tasks, self.config.user_cap, self.config.item_cap)
        adj[t[ok], user_local[ok], item_local[ok]] = 1.0
        return adj

    def _with_targets(self, batch: TaskBatch, sides: dict, size: int, lookup: _LocalKeys,
                      train: bool) -> TaskBatch:
        """Packs support/query targets ``(t, id, label)`` into ``[T, S]``/``[T, Q]``;
        eval queries are padded to the longest query of the batch."""
        num_tasks = batch.num_tasks
        for name, (pos_t, pos_id, neg_t, neg_id) in sides.items():
            t = torch.cat([pos_t, neg_t])
            ids = torch.cat([pos_id, neg_id])
            label = torch.cat([torch.ones(pos_t.numel()), torch.zeros(neg_t.numel())])
            order = torch.argsort(t, stable=True)
            t, ids, label = t[order], ids[order], label[order]
            slot = rank_in_group(t, torch.arange(t.numel()))
            if name == "support" and self._links is None:
                cap = self.config.support_cap
            elif train:
                cap = self.config.query_cap
            else:
                cap = int(slot.max()) + 1 if slot.numel() else 1
            local = lookup.lookup(t * size + ids)
            setattr(batch, f"{name}_ids", dense(t, slot, ids, num_tasks, cap, -1))
            setattr(batch, f"{name}_local", dense(t, slot, local, num_tasks, cap, -1))
            setattr(batch, f"{name}_label", dense(t, slot, label, num_tasks, cap, 0.0))
            setattr(batch, f"{name}_mask", getattr(batch, f"{name}_ids") >= 0)
        return batch

    # ------------------------------------------------------------ ego-nets
    def _egonets(self, centers: Tensor, keys: Tensor, first_t: Tensor, first_node: Tensor,
                 visible_items: tuple[Tensor, Tensor] | None = None) -> EgoNets:
        """Ego-nets whose hop 1 is ``(first_t, first_node)``; with taste neighbours
        (``TaskConfig.uses_taste``) also those of the centers' :obj:`visible_items`
        ``(task, item)`` at hop 2."""
        prio = priority(keys[first_t], first_node)
        second = (self._taste_neighbours(centers, *visible_items)
                  if self.config.uses_taste and visible_items is not None else None)
        return sample_egonets(self.background, centers, keys, first_t, first_node, prio,
                              self.config.fanouts, self.config.user_cap, second=second)

    def _taste_neighbours(self, centers: Tensor, center_t: Tensor,
                          center_item: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""The ``taste_fanout`` training users sharing the most (Adamic-Adar
        weighted) of each task's visible center items ``(center_t, center_item)``, as
        ``(task, user, priority)``; priorities are negative (before any hashed one), the
        most similar first; ties go to the smaller user id. The center itself (a
        training center's own interactions are observed) is never its own taste
        neighbour."""
        users_of = self.background_users
        assert users_of is not None, "taste neighbours need TaskConfig.uses_taste"
        deg = users_of.degree(center_item)
        pos, user = users_of.gather(center_item)
        t = center_t[pos]
        weight = 1.0 / torch.log1p(deg[pos].double())
        other = user != centers[t]
        t, user, weight = t[other], user[other], weight[other]
        key, inverse = torch.unique(t * self.num_users + user, return_inverse=True)
        score = torch.zeros(key.numel(), dtype=torch.double).index_add_(0, inverse, weight)
        t, user = key // self.num_users, key % self.num_users
        # rank by score (descending), ties by user id: keys are sorted by (t, user)
        rank = rank_in_group(t, -score)
        keep = rank < self.config.taste_fanout
        t, user, rank = t[keep], user[keep], rank[keep]
        return t, user, rank - self.config.taste_fanout

    def _assemble(self, centers, keys, index, shots, ego: EgoNets, vis_t: Tensor,
                  vis_node: Tensor) -> TaskBatch:
        cfg, num_tasks, n = self.config, centers.numel(), self.config.user_cap
        et, ei, ej = induced_edges(ego, self.background, vis_t, vis_node)
        adj = torch.zeros(num_tasks, n, n)
        adj[et, ei, ej] = 1.0
        node_ids = dense(ego.task, ego.local, ego.node, num_tasks, n, -1)
        x_all = self.graph["user"].x
        x = torch.zeros(num_tasks, n, x_all.size(1))
        x[ego.task, ego.local] = x_all[ego.node]
        if x_all.size(1):  # the "feature row hidden" flag (task_feature_channels)
            hidden = torch.zeros(num_tasks, n, 1)
            if not cfg.observes("features"):
                x[:, 0], hidden[:, 0] = 0.0, 1.0
            x = torch.cat([x, hidden], -1)
        empty = torch.zeros(num_tasks, 0, dtype=torch.long)
        return TaskBatch(
            kind=cfg.kind, center=centers, task_index=index, num_shots=shots,
            node_ids=node_ids, node_mask=node_ids >= 0,
            hop=dense(ego.task, ego.local, ego.hop, num_tasks, n, -1), x=x, adj=adj,
            item_ids=empty, item_mask=empty.bool(), item_adj=torch.zeros(num_tasks, n, 0),
            support_ids=empty, support_local=empty, support_label=empty.float(),
            support_mask=empty.bool(), query_ids=empty, query_local=empty,
            query_label=empty.float(), query_mask=empty.bool(),
            labels=torch.zeros(num_tasks, n, 0), label_mask=torch.zeros(num_tasks, n,
                                                                        dtype=torch.bool),
            query_node_mask=torch.zeros(num_tasks, n, dtype=torch.bool),
            query_labels=torch.zeros(num_tasks, n, 0), label_valid=torch.zeros(num_tasks, 0,
                                                                               dtype=torch.bool),
            pair_features=torch.zeros(num_tasks, 0, 0),
            seen_ids=torch.zeros(num_tasks, 0, dtype=torch.long))

    # -------------------------------------------------------- interest tasks
    def _interest(self, centers, keys, shots, index, train, links) -> TaskBatch:
        f_pos, friend = self._context_friends(centers, links)
        ego = self._egonets(centers, keys, f_pos, friend)
        batch = self._assemble(centers, keys, index, shots, ego, f_pos, friend)
        if self.config.observes("items"):
            self._add_items(batch, ego, keys, *self._center_items(centers, links))
        y, labelled, valid = self._member_labels(ego, centers)
        members = (ego.local != 0) & labelled
        if self.config.variant == "center":
            rank = rank_in_group(ego.task[members], priority(keys[ego.task[members]],
                                                             _LABEL, ego.node[members]))
            support = torch.zeros_like(members)
            support[members] = rank < shots[ego.task[members]]
            query = ego.local == 0
            center_y = self._center_labels(centers)
        else:  # K positive members per label, the union is the support
            support = self._per_label_support(ego, keys, shots, y, members)
            query = members & ~support
            center_y = None
        n, num_tasks = self.config.user_cap, centers.numel()
        labels = torch.zeros(num_tasks, n, y.size(1))
        labels[ego.task[support], ego.local[support]] = y[support]
        batch.labels, batch.label_valid = labels, valid
        batch.label_mask = dense(ego.task, ego.local, support, num_tasks, n, False)
        batch.query_node_mask = dense(ego.task, ego.local, query, num_tasks, n, False)
        query_labels = torch.zeros_like(labels)
        if center_y is None:
            query_labels[ego.task[query], ego.local[query]] = y[query]
        else:
            query_labels[:, 0] = center_y
        batch.query_labels = query_labels
        batch.num_shots = torch.bincount(ego.task[support], minlength=num_tasks)
        return batch

    def _center_labels(self, centers: Tensor) -> Tensor:
        assert self._labels is not None
        return self._labels[centers]

    def _member_labels(self, ego: EgoNets, centers: Tensor):
        """Labels of every ego-net node ``[num_flat, L]``, whether it is labelled, and
        which labels exist per task."""
        if self.config.label_source == "interests":
            assert self._labels is not None
            labelled = self.observed["user"].interest_mask[ego.node]
            y = self._labels[ego.node] * labelled.unsqueeze(1)
            return y, labelled, torch.ones(centers.numel(), y.size(1), dtype=torch.bool)
        return self._circle_labels(ego, centers)

    def _circle_labels(self, ego: EgoNets, centers: Tensor):
        circle_ego = self.graph["circle"].ego
        members = self.observed[MEMBER_OF].edge_index
        # circles of each task's center, numbered 0.. within the ego
        c_task, c_id = (circle_ego.view(1, -1) == centers.view(-1, 1)).nonzero().t()
        c_slot = rank_in_group(c_task, c_id)
        # every task has as many label slots as the ego with the most circles (the
        # model's head size); label_valid marks the slots a task really has
        num_labels = int(torch.bincount(circle_ego).max()) if circle_ego.numel() else 0
        valid = dense(c_task, c_slot, torch.ones_like(c_task, dtype=torch.bool),
                      centers.numel(), num_labels, False)
        slot_of = torch.full((centers.numel(), circle_ego.numel()), -1, dtype=torch.long)
        slot_of[c_task, c_id] = c_slot
        # (user, circle) memberships -> (flat ego-net node, slot)
        lookup = _LocalKeys(ego.keys(), torch.arange(ego.node.numel()))
        y = torch.zeros(ego.node.numel(), num_labels)
        u, c = members
        hit_t = (circle_ego[c].view(-1, 1) == centers.view(1, -1)).nonzero()
        flat = lookup.lookup(hit_t[:, 1] * ego.num_nodes + u[hit_t[:, 0]])
        ok = flat >= 0
        y[flat[ok], slot_of[hit_t[ok, 1], c[hit_t[ok, 0]]]] = 1.0
        return y, self.is_train[ego.node], valid

    def _per_label_support(self, ego: EgoNets, keys: Tensor, shots: Tensor, y: Tensor,
                           members: Tensor) -> Tensor:
        flat, label = (y * members.unsqueeze(1)).nonzero().t()
        t = ego.task[flat]
        rank = rank_in_group(t * y.size(1) + label,
                             priority(keys[t], _LABEL, label, ego.node[flat]))
        support = torch.zeros_like(members)
        support[flat[rank < shots[t]]] = True
        return support


class _LocalKeys:
    """Sorted ``key -> value`` lookup (``-1`` for absent keys)."""

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        order = torch.argsort(keys)
        self.keys, self.values = keys[order], values[order]

    def lookup(self, keys: Tensor) -> Tensor:
        pos = member_index(self.keys, keys)
        return torch.where(pos >= 0, self.values[pos.clamp(min=0)], -1)
