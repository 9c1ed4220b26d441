r"""The hybrid scorers of friend, item and interest tasks (DESIGN §11).

``score(u, v) = egonet(u, v) + q_u' · c_v + mlp(φ(u, v)) + g(q_u) · φ(u, v)`` for every
user ``v`` of the graph:

* ``q_u``: the ego-net encoder's center vector (labeling trick; what
  :class:`~socialmeta.models.LinkModel` computes), adapted by the learner;
* ``egonet``: the ego-net model's own pair score (inside the ego-net; its learned
  ``far`` score for everyone outside);
* ``c_v``: the candidate tower, an inductive GNN over the observed graph computed once
  per batch, shared by its tasks (never adapted in an inner loop);
* ``φ(u, v)``: the pair features of the batch (:mod:`socialmeta.features`), read by an
  MLP (the learned ranker's form) and re-weighted per user by ``g(q_u)``.

Any subset of the three parts can be switched off (``parts``): ``("tower",)`` is a
LightGCN-like fold-in model, ``("pairs",)`` the learned ranker, ``("egonet",)`` the
ego-net model scored over the whole graph.

**Leakage.** A training center's own links must not reach the candidate tower. The
training users are split into ``tower_folds`` seeded folds; a task centered on a
training user of fold ``f`` reads the tower computed on the observed graph *without
any link of fold f's users*; val/test centers (never in the observed graph) read the
tower of the whole observed graph. A task's scores therefore depend on the task only,
not on the other tasks of its batch, the batch size or the rank that built it.

**Loss.** A softmax over every candidate (:func:`whole_graph_loss`). Past
``sampled_above`` candidates, meta-training (inner and outer loss) uses a sampled
softmax instead (:func:`sampled_softmax_loss`): each task draws ``softmax_samples``
candidates from a proposal ``Q`` (uniform, or by observed degree^0.75) with the
counter-based hash of its ``(task_index, center)`` (the same negatives whatever batch
or rank builds the task), scores only those and its targets (the batch's scored
candidates, :meth:`HybridLinkModel.batch_inputs`: the pair MLP and the tower term on
their rows alone), and corrects each sample's logit by
``-log(S Q(v))`` (logQ correction), a consistent estimate of the full softmax. Evaluation (no autograd) always adapts with the full softmax.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from socialmeta.features.interest import label_propagation, neighbour_labels
from socialmeta.models.encoders import Encoder, MeanAdjacency
from socialmeta.models.interest import InterestModel
from socialmeta.models.item import ItemModel, item_list_loss
from socialmeta.models.link import LinkModel
from socialmeta.models.ops import matvec

PARTS = ("egonet", "tower", "pairs")
#: proposals of the sampled softmax: uniform over the candidates, or proportional to
#: ``(observed degree + 1) ** 0.75`` (word2vec's unigram^0.75; popular users are drawn
#: more often, as they are the hard negatives)
PROPOSALS = ("uniform", "degree")


class StartsFromFeatures:
    r"""``model.pair_init`` for the hybrid scorers (mixed in before the model class):
    start the model as one of its pair features, or as an MLP over them, with every
    other term of the score zero. A model zeroes its own other terms in
    ``_start_base(scale, prior)``; its pair terms are ``pair_mlp`` and ``pair_gate``
    and its feature names ``channels``."""

    def start_from(self, channel: str, prior: Tensor | None = None, scale: float = 10.0
                   ) -> None:
        r"""Initialises the scorer as the pair feature :obj:`channel` alone (one of
        :attr:`channels`): the model's other score terms constant (``_start_base``:
        the ego-net head, ``fold``, the item or label head), the pair MLP's output
        layer zero, the gate's bias :obj:`scale` on that channel, so the model ranks
        as that feature — as the baseline whose score the channel is — and leaves it
        only where meta-training finds better on validation users (with
        ``train.eval_at_start`` the Trainer validates this starting point too).
        :obj:`prior` (``[L]``, interest tasks) adds the label propagation baseline's
        tie-break by label frequency. ``model.pair_init``."""
        self._check_pairs()
        if channel not in self.channels:
            raise ValueError(f"unknown feature channel {channel!r}; choose one of "
                             f"{self.channels}")
        with torch.no_grad():
            self._start_base(scale, prior)
            self._zero_pair_terms()
            self.pair_gate.bias[self.channels.index(channel)] = scale

    def start_from_mlp(self, mlp: nn.Sequential, names: Sequence[str]) -> None:
        r"""Initialises the scorer as an MLP over named pair features alone (the
        fitted learned ranker's, ``model.pair_init=learned_ranker``): the other terms
        zero as in :meth:`start_from`, the gate zero, the MLP copied into the pair MLP
        (:func:`load_pair_mlp`)."""
        self._check_pairs()
        with torch.no_grad():
            self._start_base(0.0, None)
            self._zero_pair_terms()
        load_pair_mlp(self, mlp, names)

    def _check_pairs(self) -> None:
        if not hasattr(self, "pair_gate"):
            raise ValueError("starting from pair features needs the 'pairs' part "
                             "(model.hybrid_parts)")

    def _zero_pair_terms(self) -> None:
        self.pair_mlp[-1].weight.zero_()
        self.pair_mlp[-1].bias.zero_()
        self.pair_gate.weight.zero_()
        self.pair_gate.bias.zero_()


class HybridLinkModel(StartsFromFeatures, LinkModel):
    r"""Scores every user of the graph for a friend task: ego-net encoder, candidate
    tower and pair features (see the module docstring).

    Args:
        in_channels (int): Task node feature size ``F'`` (may be 0).
        num_hops (int): Hops of the ego-nets.
        num_users (int): Users of the graph (the candidates are its training users).
        num_pair_features (int): ``P``, channels of ``TaskBatch.pair_features``
            (0 without the ``pairs`` part).
        parts (sequence of str): Which of ``"egonet"``, ``"tower"``, ``"pairs"`` the
            score sums. (default: all three)
        tower_layers (int): Layers of the candidate tower. (default: :obj:`2`)
        tower_folds (int): Folds of training users for the tower (see the module
            docstring). (default: :obj:`5`)
        pair_hidden (int): Width of the pair-feature MLP. (default: :obj:`32`)
        tower_refresh (int): Meta-training recomputes the tower every this many
            batches and reuses the cached (detached) embeddings in between, so the
            tower is trained on refresh steps only; ``1`` computes it afresh for every
            batch. Evaluation (no autograd) always computes it afresh.
            (default: :obj:`1`)
        tower_fanout (sequence of int, optional): The neighbour-sampled tower for
            large graphs: while meta-training, layer ``l`` of the tower reads at most
            ``tower_fanout[l]`` in-neighbours of each user, drawn uniformly without
            replacement from its fold's graph (one draw per training step, the same
            for every fold, task and rank: :meth:`sampled_tower_graph`), so a tower
            forward costs ``O(U · fanout)`` messages instead of ``O(E)``.
            Evaluation and serving always read every neighbour. :obj:`None` reads
            every neighbour in training too. (default: :obj:`None`)
        softmax_samples (int): ``S``, candidates each task draws for the sampled
            softmax (``0``: always the full softmax). (default: :obj:`1024`)
        sampled_above (int): Meta-training switches to the sampled softmax when
            there are more candidates than this. (default: :obj:`100000`)
        proposal (str): The sampled softmax's proposal, one of :obj:`PROPOSALS`.
            (default: :obj:`"uniform"`)
        channels (sequence of str, optional): The pair features' channel names
            (:func:`~socialmeta.features.friend_channels`), for :meth:`start_from`.
        **kwargs: The ego-net encoder's options (:class:`LinkModel`: ``conv``,
            ``hidden_channels``, ``num_layers``, ``head``, ``heuristics``, ...).

    Call :meth:`set_graph` with the observed graph before use.

    Example:
        >>> model = HybridLinkModel(sampler.in_channels, 2, graph.num_users,
        ...                         sampler.pair_features.num_channels)
        >>> model.set_graph(sampler.observed, sampler.split.train, seed=0)
        >>> loss, grads = meta_gradient(model, sampler.train_batch(0, 0, 64), inner)
    """

    #: parameters that no inner loop adapts: the tower and the pair MLP are computed once
    #: per batch (:meth:`batch_inputs`); the per-user heads ``fold`` and ``pair_gate``
    #: are what adaptation re-weights
    shared_prefixes = ("tower.", "pair_mlp.")
    #: entries of :meth:`batch_inputs` that are one row per task
    per_task_inputs = ("pair_scores", "negatives", "negative_logq", "scored_ids",
                       "scored_tower", "scored_pair_features", "scored_pair_scores")
    task_fields = (*LinkModel.task_fields, "center", "node_ids", "support_ids",
                   "query_ids", "pair_features")

    def __init__(self, in_channels: int, num_hops: int, num_users: int,
                 num_pair_features: int = 0, parts: Sequence[str] = PARTS,
                 tower_layers: int = 2, tower_folds: int = 5, pair_hidden: int = 32,
                 tower_refresh: int = 1, softmax_samples: int = 1024,
                 sampled_above: int = 100_000, proposal: str = "uniform",
                 tower_fanout: Sequence[int] | None = None,
                 channels: Sequence[str] | None = None, **kwargs) -> None:
        kwargs.pop("loss", None)
        super().__init__(in_channels, num_hops, num_users=num_users, loss="softmax",
                         **kwargs)
        parts = tuple(parts)
        unknown = [p for p in parts if p not in PARTS]
        if unknown or not parts:
            raise ValueError(f"hybrid parts must be a non-empty subset of {list(PARTS)}, "
                             f"got {list(parts)}")
        if "pairs" in parts and num_pair_features < 1:
            raise ValueError("the 'pairs' part needs pair features (num_pair_features > 0)")
        if tower_folds < 2:
            raise ValueError(f"tower_folds must be >= 2, got {tower_folds}")
        if tower_refresh < 1:
            raise ValueError(f"tower_refresh must be >= 1, got {tower_refresh}")
        if tower_fanout is not None:
            tower_fanout = tuple(int(f) for f in tower_fanout)
            if len(tower_fanout) != tower_layers or min(tower_fanout) < 1:
                raise ValueError(f"tower_fanout needs one positive fanout per tower layer "
                                 f"({tower_layers}), got {list(tower_fanout)}")
        self.tower_fanout = tower_fanout
        self._draw = 0   # the training step that keys the tower's neighbour sample
        if softmax_samples < 0 or sampled_above < 0:
            raise ValueError(f"softmax_samples and sampled_above must be >= 0, got "
                             f"{softmax_samples} and {sampled_above}")
        if proposal not in PROPOSALS:
            raise ValueError(f"unknown proposal {proposal!r}; choose one of {list(PROPOSALS)}")
        self.softmax_samples, self.sampled_above = softmax_samples, sampled_above
        self.proposal = proposal
        self.tower_refresh = tower_refresh
        self._cache: tuple[int, Tensor] | None = None   # (batches served, embeddings)
        self._served: Tensor | None = None              # the serving tower (serve_tower)
        self.parts = tuple(p for p in PARTS if p in parts)
        self.tower_folds = tower_folds
        hidden = self.encoder.hidden_channels
        self.user_features = max(in_channels - 1, 0)   # the graph's F (no hidden flag)
        if "tower" in self.parts:
            self.tower = Encoder(kwargs.get("conv", "sage"), self.user_features + 1, hidden,
                                 tower_layers)
            self.fold = nn.Linear(hidden, hidden)
        if "pairs" in self.parts:
            self.pair_mlp = PairMLP(num_pair_features, pair_hidden)
            self.pair_gate = nn.Linear(hidden, num_pair_features)
            nn.init.zeros_(self.pair_gate.weight)
            nn.init.zeros_(self.pair_gate.bias)
        if "egonet" not in self.parts:  # no unused parameters (inner loops differentiate all)
            del self.head, self.far
        self.head_prefixes = ("head.", "fold.", "pair_gate.")
        self._graph_set = False
        self._fold_graphs: dict = {}   # (fold, part) -> _fold_graph (_keep_fold_graphs)
        if channels is not None and len(channels) != num_pair_features:
            raise ValueError(f"{len(channels)} channel names for {num_pair_features} "
                             "pair features")
        self.channels = (list(channels) if channels is not None
                         else [f"pair_{i}" for i in range(num_pair_features)])

    def _start_base(self, scale: float, prior: Tensor | None) -> None:
        """:meth:`StartsFromFeatures.start_from`: the ego-net head's output zero
        (bilinear: its weight and bias; dot: its scale; mlp: its last layer) and
        ``fold`` zero (no tower term)."""
        if "egonet" in self.parts:
            last = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
            for p in last.parameters():
                p.zero_()
        if "tower" in self.parts:
            self.fold.weight.zero_()
            self.fold.bias.zero_()

    # ------------------------------------------------------------- the graph
    def set_graph(self, observed, train_users: Tensor, seed: int = 0,
                  candidates: Tensor | None = None) -> HybridLinkModel:
        r"""The observed graph the tower reads (:obj:`observed`: a
        :class:`~socialmeta.data.SocialGraph` of training users' links), its training
        nodes (:obj:`train_users`, dealt into the seeded tower folds), and the
        candidates it ranks (:obj:`candidates`; default the training users; for
        new-item tasks the users of the adoption graph). Stored as non-persistent
        buffers: moved by ``.to()``, never written to checkpoints."""
        from socialmeta.data import FRIEND

        num_users = self.num_users
        is_train = torch.zeros(num_users, dtype=torch.bool)
        is_train[train_users if candidates is None else candidates] = True
        gen = torch.Generator().manual_seed(seed + 104729)
        fold_of = torch.full((num_users,), self.tower_folds, dtype=torch.long)
        order = train_users[torch.randperm(train_users.numel(), generator=gen)]
        fold_of[order] = torch.arange(order.numel()) % self.tower_folds
        x = observed["user"].x.float()
        edges = observed[FRIEND].edge_index
        edges = edges[:, torch.argsort(edges[0] * num_users + edges[1])]  # canonical order
        self.register_buffer("graph_edges", edges, persistent=False)
        self.register_buffer("edge_ptr", torch.searchsorted(
            edges[0], torch.arange(num_users + 1)), persistent=False)   # CSR by sender
        self.register_buffer("graph_x", x, persistent=False)
        self.register_buffer("is_candidate", is_train, persistent=False)
        self.register_buffer("fold_of", fold_of, persistent=False)
        # the sampled softmax's proposal over the candidates: ids, cumulative Q, log Q
        ids = is_train.nonzero().view(-1)
        if self.proposal == "degree":
            degree = torch.bincount(edges[0], minlength=num_users)[ids].double()
            weight = (degree + 1) ** 0.75
        else:
            weight = torch.ones(ids.numel(), dtype=torch.double)
        # Q in fixed point (int64: exact, and untouched by a later ``.to(dtype)``)
        width = (weight / weight.sum() * 2.0 ** 40).round().long().clamp(min=1)
        cdf = width.cumsum(0)
        self.register_buffer("proposal_ids", ids, persistent=False)
        self.register_buffer("proposal_cdf", cdf, persistent=False)
        self.register_buffer("proposal_logq", (width.double() / float(cdf[-1])).log(),
                             persistent=False)
        self._graph_set, self._fold_seed = True, seed
        self._cache = self._served = None        # towers of another graph
        self._fold_graphs = {}
        if "tower" in self.parts:
            self._keep_fold_graphs()
        return self

    @property
    def sampled(self) -> bool:
        """Whether meta-training uses the sampled softmax (more candidates than
        ``sampled_above``, and ``softmax_samples > 0``)."""
        self._check_graph()
        return self.softmax_samples > 0 and self.proposal_ids.numel() > self.sampled_above

    def draw_negatives(self, task_index: Tensor, center: Tensor) -> tuple[Tensor, Tensor]:
        r"""``(ids, log(S Q(ids)))``, each ``[T, S]``: the sampled softmax's candidates
        of each task, drawn with replacement from the proposal by the hash of the
        task's ``(task_index, center)``: a task draws the same whatever batch, worker
        or rank builds it."""
        from socialmeta.tasks.random import uniform

        self._check_graph()
        device = self.proposal_cdf.device
        draw = torch.arange(self.softmax_samples, device=device)
        u = uniform(self._fold_seed + 7919, task_index.to(device).view(-1, 1),
                    center.to(device).view(-1, 1), draw)
        x = (u * float(self.proposal_cdf[-1])).long()            # in [0, total)
        pick = torch.searchsorted(self.proposal_cdf, x, right=True)
        pick = pick.clamp(max=self.proposal_ids.numel() - 1)
        logq = self.proposal_logq[pick] + math.log(self.softmax_samples)
        return self.proposal_ids[pick], logq

    def for_graph(self, observed, train_users: Tensor, candidates: Tensor | None = None
                  ) -> HybridLinkModel:
        r"""A copy (same parameters) that scores the users of another observed graph
        with the same training users, e.g. the graph with a placeholder row for a
        brand-new user that :class:`~socialmeta.Recommender` adds. Tower folds are the
        same for the same training users."""
        other = copy.deepcopy(self)
        other.num_users = observed.num_users
        return other.set_graph(observed, train_users, seed=self._fold_seed,
                               candidates=candidates)

    def _check_graph(self) -> None:
        if not self._graph_set:
            raise RuntimeError("HybridLinkModel needs the observed graph: call "
                               "model.set_graph(observed, train_users) first")

    def tower_graph(self, fold: int) -> Tensor:
        r"""Edges the tower reads for tasks of :obj:`fold` (``tower_folds``: the whole
        observed graph): every link of the fold's training users removed."""
        self._check_graph()
        src, dst = self.graph_edges
        if fold == self.tower_folds:
            return self.graph_edges
        keep = (self.fold_of[src] != fold) & (self.fold_of[dst] != fold)
        return self.graph_edges[:, keep]

    def sampled_tower_graph(self, folds: Sequence[int], draw: int) -> dict[int, list[Tensor]]:
        r"""The neighbour sample of draw :obj:`draw` (``tower_fanout``): for each fold
        of :obj:`folds`, one edge index per tower layer in which every user keeps at
        most ``tower_fanout[l]`` of its in-edges of :meth:`tower_graph`, drawn
        uniformly without replacement. Every edge gets one random key per
        ``(draw, layer)`` (a counter-based hash: the same in any process), and a user
        keeps the in-edges of its fold's graph with the smallest keys; so the sample
        is a subset of the fold's graph (no link of the fold's users enters it) and is
        the whole fold graph when no user has more in-edges than the fanout."""
        from socialmeta.tasks.random import priority

        self._check_graph()
        if self.tower_fanout is None:
            raise RuntimeError("sampled_tower_graph needs tower_fanout")
        edges = self.graph_edges
        src = edges[0]   # the graph is symmetric: sampling out-edges of u, then
        #                  flipping them, samples u's in-edges
        device, num_edges = edges.device, edges.size(1)
        bits = max(int(self.num_users).bit_length(), 1)
        if bits > 40:
            raise ValueError(f"sampled_tower_graph supports up to 2**40 users, got "
                             f"{self.num_users}")
        keep = {fold: (torch.ones(num_edges, dtype=torch.bool, device=device)
                       if fold == self.tower_folds else
                       (self.fold_of[edges[0]] != fold) & (self.fold_of[edges[1]] != fold))
                for fold in folds}
        out: dict[int, list[Tensor]] = {fold: [] for fold in folds}
        for layer, fanout in enumerate(self.tower_fanout):
            key = priority(self._fold_seed + 15485863, draw, layer,
                           torch.arange(num_edges, device=device))
            # one sort by (source, key): sources stay grouped (the edges are sorted by
            # source), each group in key order
            order = torch.argsort((src << (62 - bits)) | (key >> (bits + 1)), stable=True)
            for fold in folds:
                kept = order[keep[fold][order]]
                group = src[kept]
                rank = torch.arange(kept.numel(), device=device) - torch.searchsorted(
                    group, group)
                chosen = kept[rank < fanout].sort().values
                out[fold].append(edges[:, chosen].flip(0))
        return out

    def sampled_in_edges(self, users: Tensor, fold: int, draw: int, layer: int) -> Tensor:
        r"""``[2, E']`` (neighbour -> user): the in-edges that layer :obj:`layer` of
        draw :obj:`draw`'s neighbour sample (:meth:`sampled_tower_graph`) keeps for
        :obj:`users` (sorted, distinct) in fold :obj:`fold`'s graph, computed from
        those users' edges alone (``O(sum of their degrees)``): the same edges as the
        whole sample's, restricted to these receivers (the same per-edge keys and
        the same stable tie-break)."""
        from socialmeta.tasks.random import priority

        start, end = self.edge_ptr[users], self.edge_ptr[users + 1]
        count = end - start
        offset = torch.cumsum(count, 0) - count
        idx = (start.repeat_interleave(count)
               + torch.arange(int(count.sum()), device=users.device)
               - offset.repeat_interleave(count))                     # ascending edge ids
        src, dst = self.graph_edges[0, idx], self.graph_edges[1, idx]
        bits = max(int(self.num_users).bit_length(), 1)
        key = priority(self._fold_seed + 15485863, draw, layer, idx)
        order = torch.argsort((src << (62 - bits)) | (key >> (bits + 1)), stable=True)
        if fold != self.tower_folds:
            order = order[((self.fold_of[src] != fold) & (self.fold_of[dst] != fold))[order]]
        group = src[order]
        rank = torch.arange(order.numel(), device=users.device) - torch.searchsorted(
            group, group)
        chosen = order[rank < self.tower_fanout[layer]]
        return torch.stack([dst[chosen], src[chosen]])

    def tower_at(self, users: Tensor, fold: int, draw: int) -> Tensor:
        r"""``[len(users), H]``: rows :obj:`users` (sorted, distinct) of fold
        :obj:`fold`'s neighbour-sampled tower of draw :obj:`draw`, computed on their
        sampled neighbourhoods only (layer by layer from the top: each layer's
        receivers' sampled in-edges, :meth:`sampled_in_edges`), so its cost does not
        grow with the graph. Equal to the same rows of :meth:`candidate_embeddings`
        with that draw (SAGE towers; ``model.tower_fanout``)."""
        sets, layers = [users], []
        for layer in reversed(range(len(self.tower_fanout))):
            edges = self.sampled_in_edges(sets[0], fold, draw, layer)
            senders = torch.unique(torch.cat([sets[0], edges[0]]))
            local = torch.stack([torch.searchsorted(senders, edges[0]),
                                 torch.searchsorted(sets[0], edges[1])])
            layers.insert(0, (MeanAdjacency(local, senders.numel(), self.graph_x.dtype,
                                            num_dst=sets[0].numel()),
                              torch.searchsorted(senders, sets[0])))
            sets.insert(0, senders)
        inputs = self._fold_graph(fold, "inputs").index_select(0, sets[0])
        return self.tower.forward_bipartite(inputs, [a for a, _ in layers],
                                            [r for _, r in layers])

    def candidate_embeddings(self, folds: Sequence[int], draw: int | None = None) -> Tensor:
        r"""``[tower_folds + 1, U, H]``: the tower on each fold's graph (rows of folds
        not asked for are zero); with :obj:`draw`, on that neighbour sample of it
        (:meth:`sampled_tower_graph`). Two or more training folds read unsampled go
        through the tower together (:meth:`_stacked_tower`)."""
        sampled = (self.sampled_tower_graph(folds, draw) if draw is not None
                   else None)
        out: list[Tensor | None] = [None] * (self.tower_folds + 1)
        training = [f for f in range(self.tower_folds) if f in folds]
        if sampled is None and len(training) > 1:
            blocks = self._stacked_tower().unbind(0)
            for fold in training:
                out[fold] = blocks[fold]
        for fold in range(self.tower_folds + 1):
            if fold not in folds or out[fold] is not None:
                continue
            graph = (self._fold_graph(fold, "graph") if sampled is None
                     else [self._adjacency(e) for e in sampled[fold]])
            out[fold] = self.tower.forward_sparse(self._fold_graph(fold, "inputs"), graph)
        like = next(o for o in out if o is not None)
        return torch.stack([torch.zeros_like(like) if o is None else o for o in out])

    def _stacked_tower(self) -> Tensor:
        r"""``[tower_folds, U, H]``: the tower of every training fold in one forward,
        the folds' graphs side by side as one block-diagonal graph of
        ``tower_folds x U`` nodes (fold ``f``'s users at ``f U .. (f + 1) U - 1``, no
        edge between blocks), so each layer is one sparse product and one pair of
        linear maps for all folds instead of one per fold (on lastfm friend the
        tower's forward and backward take half the time, docs/performance.md). The
        same embeddings as the per-fold forwards (bit for bit with the CSR ``"sage"``
        path; the weight gradients sum the folds' rows in one product, so they agree
        up to float rounding)."""
        h = self.tower.forward_sparse(self._fold_graph("stacked", "inputs"),
                                      self._fold_graph("stacked", "graph"))
        return h.view(self.tower_folds, self.num_users, -1)

    def _adjacency(self, edges: Tensor, num_nodes: int | None = None
                   ) -> Tensor | MeanAdjacency:
        """What the tower's ``forward_sparse`` reads for :obj:`edges` over
        :obj:`num_nodes` nodes (default: the graph's users): the CSR mean aggregation
        of a ``"sage"`` tower (:class:`MeanAdjacency`: one sparse product per layer
        instead of PyG's gather and scatter of ``[E, H]`` messages; 36% off the step at
        10^5 users, docs/performance.md), else the edge index."""
        if self.tower.conv_name != "sage":
            return edges
        return MeanAdjacency(edges, num_nodes or self.num_users, self.graph_x.dtype)

    def _fold_graph(self, fold: int | str, part: str) -> Tensor | MeanAdjacency:
        """Fold :obj:`fold`'s tower ``"inputs"`` ``[U, F + 1]`` (user features and log
        degree in the fold's graph) or ``"graph"`` (:meth:`_adjacency` of
        :meth:`tower_graph`), or, for ``fold="stacked"``, those of every training fold
        side by side (:meth:`_stacked_tower`): from the cache :meth:`_keep_fold_graphs`
        fills, or built afresh."""
        kept = self._fold_graphs.get((fold, part))
        if kept is not None:
            return kept
        if fold == "stacked":
            if part == "inputs":
                return torch.cat([self._fold_graph(f, "inputs")
                                  for f in range(self.tower_folds)])
            return self._adjacency(torch.cat([self.tower_graph(f) + f * self.num_users
                                              for f in range(self.tower_folds)], 1),
                                   self.tower_folds * self.num_users)
        edges = self.tower_graph(fold)
        if part == "graph":
            return self._adjacency(edges)
        degree = torch.bincount(edges[0], minlength=self.num_users).to(self.graph_x.dtype)
        return torch.cat([self.graph_x, degree.log1p().unsqueeze(-1)], -1)

    def _keep_fold_graphs(self) -> None:
        """Builds the tower's per-fold inputs and graphs once, for every later batch
        (neither depends on the parameters): every fold's input, and the graphs the
        tower reads unsampled (every fold's; with ``tower_fanout`` only the whole
        graph's, which evaluation reads). Called by :meth:`set_graph` and after every
        ``.to()``, never inside a ``torch.func`` transform (whose outputs are
        wrapped tensors that must not outlive it)."""
        self._fold_graphs = {}
        for fold in range(self.tower_folds + 1):
            self._fold_graphs[fold, "inputs"] = self._fold_graph(fold, "inputs")
            if self.tower_fanout is None or fold == self.tower_folds:
                self._fold_graphs[fold, "graph"] = self._fold_graph(fold, "graph")
        if self.tower_fanout is None:
            for part in ("inputs", "graph"):
                self._fold_graphs["stacked", part] = self._fold_graph("stacked", part)

    def _apply(self, fn, recurse: bool = True):
        out = super()._apply(fn, recurse)
        if getattr(self, "_graph_set", False) and "tower" in self.parts:
            kept = self._fold_graphs.get((self.tower_folds, "inputs"))
            if kept is None or (kept.device, kept.dtype) != (self.graph_x.device,
                                                            self.graph_x.dtype):
                self._keep_fold_graphs()     # the buffers moved or changed dtype
        return out

    # -------------------------------------------------- learner entry points
    def batch_inputs(self, call, batch) -> dict[str, Tensor]:
        r"""What the tasks of :obj:`batch` read, computed once per batch with the
        meta-parameters (:obj:`call`: the model's forward): the candidate tower of the
        folds its centers belong to (``"candidates"`` ``[f + 1, U, H]``, folds ``0..f``
        where ``f`` is the batch's last: a training batch leaves out the whole-graph
        fold ``tower_folds``; shared; a task dots the folds' rows, side by side, with
        its user vector in its own fold's block, which under ``vmap`` is a single
        ``[U, (f + 1) H] x [(f + 1) H, T]`` GEMM) and the pair MLP's score of every
        candidate of every task (``"pair_scores"`` ``[T, U]``).

        In meta-training with the sampled softmax, a task's loss reads the scores of
        its targets and its drawn negatives only, so the pair MLP and the tower term
        are computed at those ``M`` candidates alone: ``"scored_ids"`` ``[T, M]`` (the
        support ids, the query ids, the draws), their pair features and pair-MLP
        scores and their rows of the tower, gathered once per batch outside the
        ``vmap`` (the gather's gradient is one ``index_add`` into the shared tower,
        not a dense ``[T, U, ...]`` tensor per task). A step then costs ``O(T M)``
        pair-MLP rows instead of ``O(T U)``."""
        out = {}
        sampled = torch.is_grad_enabled() and self.sampled  # meta-training past the threshold
        if "tower" in self.parts and not (sampled and self._tower_at_scored):
            self._check_graph()
            folds = torch.unique(self.fold_of[batch.center.to(self.fold_of.device)]).tolist()
            # the folds up to the batch's last (training batches: not the whole-graph
            # fold, whose block of the side-by-side product would be zero)
            out["candidates"] = self._tower(call, folds)[:max(folds) + 1]
        if sampled:
            out["negatives"], out["negative_logq"] = self.draw_negatives(batch.task_index,
                                                                         batch.center)
            ids = torch.cat([batch.support_ids, batch.query_ids,
                             out["negatives"].to(batch.support_ids.device)], 1).clamp(min=0)
            out["scored_ids"] = ids
            if "tower" in self.parts:
                out["scored_tower"] = self._scored_tower(call, out, batch.center, ids)
            if "pairs" in self.parts:
                phi = batch.pair_features.gather(
                    1, ids.unsqueeze(-1).expand(-1, -1, batch.pair_features.size(-1)))
                out["scored_pair_features"] = phi                     # [T, M, P]
                out["scored_pair_scores"] = call(phi, mode="pair_mlp")
        elif "pairs" in self.parts:
            out["pair_scores"] = call(batch.pair_features, mode="pair_mlp")
        return out

    @property
    def _tower_at_scored(self) -> bool:
        """Whether a sampled-softmax step computes the tower at its scored candidates
        only (:meth:`tower_at`): a neighbour-sampled SAGE tower, neither cached
        (``tower_refresh``) nor served."""
        return (self.tower_fanout is not None and self.tower.conv_name == "sage"
                and self.tower_refresh == 1 and self._served is None)

    def _scored_tower(self, call, out: dict, center: Tensor, ids: Tensor) -> Tensor:
        r"""``[T, M, H]``: each task's own fold's tower rows at its scored candidates
        :obj:`ids`, gathered outside the ``vmap``: from the batch's tower, or, where
        :attr:`_tower_at_scored`, from :meth:`tower_at` per fold on the union of its
        tasks' scored candidates (``out["tower_draw"]`` then names the sample, for the
        per-task reference loop, which computes the whole sampled tower)."""
        fold = self.fold_of[center.to(self.fold_of.device)]
        if "candidates" in out:
            return out["candidates"][fold.unsqueeze(-1), ids.to(fold.device)]
        self._check_graph()
        draw, self._draw = self._draw, self._draw + 1
        out["tower_draw"] = draw
        rows, order = [], []
        for f in torch.unique(fold).tolist():
            tasks = (fold == f).nonzero().view(-1)
            users = torch.unique(ids[tasks])
            at = call(mode="tower_at", users=users, fold=f, draw=draw)
            rows.append(at[torch.searchsorted(users, ids[tasks])])
            order.append(tasks)
        return torch.cat(rows)[torch.argsort(torch.cat(order))]

    def _tower(self, call, folds: list[int]) -> Tensor:
        r"""The tower of :obj:`folds`: afresh, or from the cache while meta-training
        with ``tower_refresh > 1`` (a refresh computes every training fold, so that
        the cache serves any later batch)."""
        if self._served is not None:
            return self._served
        training = torch.is_grad_enabled()
        draw = self._draw if training and self.tower_fanout is not None else None
        if training:
            self._draw += 1
        if not (self.tower_refresh > 1 and training):
            return call(mode="tower", folds=tuple(folds), draw=draw)
        if (self._cache is not None and self._cache[0] < self.tower_refresh
                and max(folds) < self.tower_folds):
            served, cached = self._cache
            self._cache = (served + 1, cached)
            return cached
        fresh = call(mode="tower", folds=tuple(range(self.tower_folds)), draw=draw)
        self._cache = (1, fresh.detach())
        return fresh

    def begin_step(self, step: int) -> None:
        r"""Keys the next meta-training batch's tower sample (``tower_fanout``) by the
        training :obj:`step`, so that a resumed run and every torchrun rank draw the
        same sample at the same step (without it, batches are counted from 0 in
        each process). Called by :class:`~socialmeta.train.Trainer`."""
        self._draw = int(step)

    def clear_tower_cache(self) -> None:
        """Forgets the cached tower (the next meta-training batch recomputes it)."""
        self._cache = None

    def serve_tower(self, params: dict[str, Tensor] | None) -> None:
        r"""Serving: computes the tower of every fold once with :obj:`params` (the
        model's meta-parameters) and hands it to every later batch, instead of a
        whole-graph forward per request. Exact while the parameters and the graph do
        not change: the tower reads neither the task nor adapted weights (learners
        adapt the user side and the head). ``None`` goes back to computing it per
        batch. For :class:`~socialmeta.Recommender`'s private copy of the model;
        never while meta-training."""
        if params is None or "tower" not in self.parts:
            self._served = None
            return
        self._check_graph()
        own = {n: p for n, p in params.items() if "::" not in n}
        with torch.no_grad():
            self._served = torch.func.functional_call(
                self, own, (), {"mode": "tower", "folds": tuple(range(self.tower_folds + 1))})

    def score_all(self, call, task: dict[str, Tensor], prototype: bool = False,
                  at: Tensor | None = None) -> Tensor:
        """Scores ``[U]`` of every user for one dense task (with its shared inputs),
        or of the users :obj:`at` only (``[M]`` global ids, at the cost of M users)."""
        kwargs = {"mode": "all", "center": task["center"], "node_ids": task["node_ids"],
                  "pair_features": task["pair_features"],
                  "candidates": task.get("candidates"),
                  "pair_scores": task.get("pair_scores"), "prototype": prototype,
                  "support_mask": task["support_mask"], "at": at}
        if at is not None and "scored_ids" in task:
            if at is not task["scored_ids"]:
                raise ValueError("with the batch's scored candidates, score_all scores "
                                 "exactly task['scored_ids']")
            kwargs["scored"] = {k: task[k] for k in ("scored_tower", "scored_pair_features",
                                                     "scored_pair_scores") if k in task}
        if self.num_items:
            kwargs.update(item_ids=task["item_ids"], item_graph=task["item_adj"])
        return call(task["x"], task["adj"], task["node_mask"], task["hop"],
                    task["support_local"], task["support_label"], **kwargs)

    def task_loss(self, call, task: dict[str, Tensor], side: str, prototype: bool = False
                  ) -> Tensor:
        """Softmax over every candidate of one dense task (:func:`whole_graph_loss`),
        or over its drawn negatives (:func:`sampled_softmax_loss`) when the batch drew
        them."""
        if "scored_ids" in task:    # scores at the batch's scored candidates only
            targets, negatives = task[f"{side}_ids"], task["negatives"]
            scores = self.score_all(call, task, prototype, at=task["scored_ids"])
            first = 0 if side == "support" else task["support_ids"].numel()
            return sampled_softmax_loss(
                scores[first:first + targets.numel()], scores[-negatives.numel():],
                task["negative_logq"], negatives, task["center"], task["support_ids"],
                task["support_label"] * task["support_mask"], targets,
                task[f"{side}_label"] * task[f"{side}_mask"], side)
        if "negatives" in task:
            targets, negatives = task[f"{side}_ids"], task["negatives"]
            scores = self.score_all(call, task, prototype,
                                    at=torch.cat([targets.clamp(min=0), negatives]))
            return sampled_softmax_loss(
                scores[:targets.numel()], scores[targets.numel():], task["negative_logq"],
                negatives, task["center"], task["support_ids"],
                task["support_label"] * task["support_mask"], targets,
                task[f"{side}_label"] * task[f"{side}_mask"], side)
        return whole_graph_loss(self.score_all(call, task, prototype), self.is_candidate,
                                task["center"], task["support_ids"],
                                task["support_label"] * task["support_mask"],
                                task[f"{side}_ids"],
                                task[f"{side}_label"] * task[f"{side}_mask"], side)

    def sparse_task_loss(self, call, data, side: str, prototype: bool = False) -> Tensor:
        """The same loss from one sparse PyG task (the reference loop)."""
        candidates = getattr(data, "candidates", None)
        if candidates is None and hasattr(data, "tower_draw"):
            # the batch computed the tower at its scored users only: the reference
            # computes the task's fold's whole sampled tower of the same draw
            fold = int(self.fold_of[data.center[0]])
            candidates = call(mode="tower", folds=(fold,), draw=data.tower_draw)
        kwargs = {"sparse": True, "mode": "all", "center": data.center[0],
                  "node_ids": data.node_ids, "pair_features": data.pair_features,
                  "candidates": candidates,
                  "pair_scores": getattr(data, "pair_scores", None),
                  "prototype": prototype}
        if self.num_items:
            kwargs.update(item_ids=data.item_ids, item_graph=data.item_edge_index)
        label = getattr(data, f"{side}_label")
        negatives = getattr(data, "negatives", None)
        if negatives is not None:
            targets = getattr(data, f"{side}_ids")
            scores = call(data.x, data.edge_index, data.hop, data.support_local,
                          data.support_label, at=torch.cat([targets, negatives]), **kwargs)
            return sampled_softmax_loss(
                scores[:targets.numel()], scores[targets.numel():], data.negative_logq,
                negatives, data.center[0], data.support_ids, data.support_label, targets,
                label, side)
        scores = call(data.x, data.edge_index, data.hop, data.support_local,
                      data.support_label, **kwargs)
        return whole_graph_loss(scores, self.is_candidate, data.center[0], data.support_ids,
                                data.support_label, getattr(data, f"{side}_ids"), label, side)

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        if self.num_items:
            self._reset_items()
        for name in ("head", "tower", "fold", "pair_mlp"):   # those the parts have
            for module in getattr(self, name).modules() if hasattr(self, name) else ():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        if hasattr(self, "far"):
            nn.init.zeros_(self.far)
        if hasattr(self, "pair_gate"):
            nn.init.zeros_(self.pair_gate.weight)
            nn.init.zeros_(self.pair_gate.bias)
        self._cache = self._served = None     # towers of the old parameters

    # --------------------------------------------------------------- forward
    def forward(self, *args: Tensor, mode: str = "pair", **kwargs) -> Tensor:
        r""":class:`LinkModel`'s modes, plus ``mode="tower"`` (the candidate tower,
        keyword ``folds``) and ``mode="all"`` (scores of every user, see
        :meth:`score_all`)."""
        if mode == "tower":
            return self.candidate_embeddings(kwargs["folds"], kwargs.get("draw"))
        if mode == "tower_at":
            return self.tower_at(kwargs["users"], kwargs["fold"], kwargs["draw"])
        if mode == "pair_mlp":
            return self.pair_mlp(args[0]).squeeze(-1)
        if mode != "all":
            return super().forward(*args, mode=mode, **kwargs)
        return self._score_all(*args, **kwargs)

    def _score_all(self, *args: Tensor, center: Tensor, node_ids: Tensor,
                   pair_features: Tensor, candidates: Tensor | None,
                   pair_scores: Tensor | None, prototype: bool,
                   sparse: bool = False, support_mask: Tensor | None = None,
                   item_ids: Tensor | None = None, item_graph: Tensor | None = None,
                   at: Tensor | None = None, scored: dict[str, Tensor] | None = None
                   ) -> Tensor:
        items = (item_ids, item_graph)
        if sparse:
            x, edge_index, hop, support_local, support_label = args
            h = self.embed_sparse(x, edge_index, hop, support_local, support_label, *items)
        else:
            x, adj, mask, hop, support_local, support_label = args
            h = self.embed_dense(x, adj, mask, hop, support_local, support_label, *items)
        q = h[..., 0, :]
        if scored is not None:
            return self._score_scored(h, q, center, node_ids, at, scored, prototype,
                                      support_local, support_label, support_mask)
        score = torch.zeros(self.num_users, dtype=h.dtype, device=h.device)
        if "egonet" in self.parts:
            far, ego = self._egonet_terms(h, prototype, support_local, support_label,
                                          support_mask)
            valid = (node_ids >= 0).to(h.dtype)
            score = score + far + score.scatter_add(0, node_ids.clamp(min=0),
                                                    (ego - far) * valid)
        if "tower" in self.parts:
            # the center's fold of the tower dotted with the user vector, as one product
            # with the folds 0..f (batch_inputs) side by side: [U, (f + 1) H] @
            # [(f + 1) H], the user vector placed in the center's fold's block (a
            # one-hot: no [U, H] gather per task, and under vmap one GEMM with the
            # tasks as columns, no [T, f + 1, U] tensor)
            score = score + _side_by_side(candidates) @ self._fold_user(q, center,
                                                                         candidates.size(0))
        if "pairs" in self.parts:
            phi = pair_features.to(h.dtype)
            if pair_scores is None:   # the batch scored its candidates only: every user
                pair_scores = self.pair_mlp(pair_features).squeeze(-1)
            score = score + pair_scores.to(h.dtype) + matvec(phi, self.pair_gate(q))
        # at M users: every term is still computed over all U candidates (one GEMM per
        # part), then gathered. Gathering rows of the shared tower per task instead
        # makes its gradient a dense [T, F + 1, U, H] under vmap (5x slower at U = 20,000);
        # the batch's scored candidates (``scored``) gather them outside the vmap instead
        return score if at is None else score.index_select(0, at)

    def _egonet_terms(self, h: Tensor, prototype: bool, support_local: Tensor,
                      support_label: Tensor, support_mask: Tensor | None
                      ) -> tuple[Tensor, Tensor]:
        """The ego-net model's pair scores of one task: ``(far, ego)``, the score of
        every user outside the ego-net and ``[N]`` of its slots."""
        n = h.size(-2)
        slots = torch.cat([torch.arange(n, device=h.device),
                           torch.full((1,), -1, device=h.device)])
        if prototype:
            if support_mask is None:
                support_mask = torch.ones_like(support_local, dtype=torch.bool)
            local = self._prototype(h, support_local, support_label, support_mask, slots)
        else:
            local = self._pair_scores(h, slots)
        return local[-1], local[:-1]

    def _fold_user(self, q: Tensor, center: Tensor, folds: int) -> Tensor:
        """``[(f + 1) H]`` (folds ``0..f``): ``fold(q)`` in the center's fold's block,
        zero elsewhere (a one-hot: no gather per task)."""
        pick = (self.fold_of.index_select(0, center.reshape(1))
                == torch.arange(folds, device=q.device)).to(q.dtype)
        return (pick.unsqueeze(-1) * self.fold(q)).reshape(-1)

    def _score_scored(self, h: Tensor, q: Tensor, center: Tensor, node_ids: Tensor,
                      at: Tensor, scored: dict[str, Tensor], prototype: bool,
                      support_local: Tensor, support_label: Tensor,
                      support_mask: Tensor | None) -> Tensor:
        """Scores ``[M]`` at the batch's scored candidates :obj:`at` of one task from
        their gathered tower rows, pair features and pair-MLP scores
        (:meth:`batch_inputs`); equal to :meth:`_score_all` at those users."""
        score = torch.zeros(at.size(0), dtype=h.dtype, device=h.device)
        if "egonet" in self.parts:
            far, ego = self._egonet_terms(h, prototype, support_local, support_label,
                                          support_mask)
            # a task's ego-net ids are distinct: each scored user matches one slot at
            # most, and gets the far score otherwise (as the scatter over all users)
            match = ((at.unsqueeze(-1) == node_ids) & (node_ids >= 0)).to(h.dtype)  # [M, N]
            score = score + far + matvec(match, ego - far)
        if "tower" in self.parts:     # the task's own fold's rows: [M, H]
            score = score + matvec(scored["scored_tower"], self.fold(q))
        if "pairs" in self.parts:
            phi = scored["scored_pair_features"].to(h.dtype)
            score = (score + scored["scored_pair_scores"].to(h.dtype)
                     + matvec(phi, self.pair_gate(q)))
        return score


def _side_by_side(candidates: Tensor) -> Tensor:
    """``[U, (f + 1) H]``: each given fold's tower row of each user, side by side."""
    return candidates.transpose(0, 1).reshape(candidates.size(1), -1)


def whole_graph_loss(scores: Tensor, is_candidate: Tensor, center: Tensor,
                     support_ids: Tensor, support_positive: Tensor, target_ids: Tensor,
                     target_positive: Tensor, side: str) -> Tensor:
    r"""``-mean_p log softmax(scores)[p]`` over one task's positive targets ``p``
    (global user ids), the softmax over every candidate: the training users except
    the center and, for the query side, except the positive support friends (which
    are not candidates at test time either).

    Args:
        scores: ``[U]`` scores of every user.
        is_candidate: ``[U]`` the training users.
        support_positive, target_positive: 0/1 weights (label times validity).
    """
    users = torch.arange(scores.size(-1), device=scores.device)
    candidate = is_candidate & (users != center)
    if side == "query":
        in_support = torch.zeros_like(scores).scatter_add(
            0, support_ids.clamp(min=0), support_positive.to(scores.dtype)) > 0
        candidate = candidate & ~in_support
    log_z = torch.logsumexp(scores.masked_fill(~candidate, float("-inf")), -1)
    picked = scores.gather(0, target_ids.clamp(min=0))
    w = target_positive.to(scores.dtype)
    return ((log_z - picked) * w).sum() / w.sum().clamp(min=1)


def sampled_softmax_loss(target_scores: Tensor, negative_scores: Tensor,
                         negative_logq: Tensor, negative_ids: Tensor, center: Tensor,
                         support_ids: Tensor, support_positive: Tensor, target_ids: Tensor,
                         target_positive: Tensor, side: str) -> Tensor:
    r"""The sampled-softmax estimate of :func:`whole_graph_loss`: for each positive
    target ``p``, ``-log softmax([s_p, s_j - log(S Q(j))])[0]`` over the task's ``S``
    drawn candidates ``j`` (logQ correction), leaving out the draws that are ``p``
    itself, the center or (query side) a positive support friend, which the full
    softmax does not count either. ``sum_j exp(s_j - log(S Q(j)))`` over the kept draws
    is an unbiased estimate of the full softmax's denominator without ``p``, so the
    loss tends to the full one as ``S`` grows.

    Args:
        target_scores: ``[P]`` scores of the targets.
        negative_scores, negative_logq, negative_ids: ``[S]`` the draws' scores,
            ``log(S Q(j))`` and global ids.
        support_positive, target_positive: 0/1 weights (label times validity).
    """
    dropped = (negative_ids == center)
    if side == "query":
        in_support = ((negative_ids.unsqueeze(-1) == support_ids)
                      & (support_positive > 0)).any(-1)
        dropped = dropped | in_support
    corrected = (negative_scores - negative_logq.to(negative_scores.dtype)).masked_fill(
        dropped, float("-inf"))
    # [P, S]: each positive's own draws left out
    others = corrected.masked_fill(negative_ids == target_ids.unsqueeze(-1), float("-inf"))
    log_z = torch.logsumexp(torch.cat([target_scores.unsqueeze(-1), others], -1), -1)
    w = target_positive.to(target_scores.dtype)
    return ((log_z - target_scores) * w).sum() / w.sum().clamp(min=1)


class PairMLP(nn.Sequential):
    r"""``Linear(P, H) -> ReLU -> Linear(H, 1)`` over pair features ``[..., P]`` (the
    learned ranker's form, with the modules, parameters and ``state_dict`` of that
    :class:`~torch.nn.Sequential`), computed on the rows flattened to ``[N, P]`` in
    an order whose backward is cheap at the hybrid scorer's ``N = T x U`` rows
    (64 x 1,892 = 121,088 on lastfm).

    :class:`~torch.nn.Linear` multiplies by ``weight.t()``, a transposed view, and
    autograd returns each weight's gradient in its operand's layout:
    ``grad_out.t() @ input``, a ``[H, N] x [N, P]`` product that reads its left
    side against its strides, and for the last layer the ``[N, 1] x [1, H]`` outer
    product as a matrix product of inner size 1: the two largest ops of a hybrid
    meta-step on lastfm in a profile. Here the first layer multiplies by a
    contiguous copy of ``weight.t()`` (``[P, H]``, a few hundred floats), whose
    gradient is ``input.t() @ grad_out``, the last layer is a matrix-vector
    product, whose input gradient is an outer product by broadcasting, and the ReLU
    is in place (one ``[N, H]`` buffer fewer). Forward and backward at lastfm's
    ``T = 64``: 32.8 ms -> 18.9 ms (``python tools/bench_meta.py --pair-mlp 1892 10
    32 --tasks 64``, docs/performance.md). The rows go through in chunks of
    :attr:`chunk_rows` (``[16,384, H]`` hidden buffers of 2 MiB instead of one
    ``[N, H]`` of 15.5 MiB at lastfm's ``N``): the backward's buffers of one chunk
    are freed before the next chunk's are allocated, so the allocator can hand the
    same memory back instead of fresh pages that the kernel must fault in and zero
    on every step (in a whole hybrid meta-step, docs/performance.md). The same
    function and the same gradient up to float rounding
    (``tests/models/test_hybrid.py``); plain tensor ops, so ``vmap``,
    ``torch.func.grad`` and double backward work as with :class:`~torch.nn.Sequential`."""

    #: rows per chunk (``0``: all rows at once)
    chunk_rows = 16384

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        first, _, last = self
        rows = x.reshape(-1, x.size(-1))
        w1t, w2 = first.weight.t().contiguous(), last.weight.view(-1)
        size = self.chunk_rows or rows.size(0)
        out = [torch.mv(torch.addmm(first.bias, rows[start:start + size], w1t).relu_(), w2)
               for start in range(0, rows.size(0), size)]
        out = out[0] if len(out) == 1 else torch.cat(out)
        return (out + last.bias).view(*x.shape[:-1], 1)


def load_pair_mlp(model: nn.Module, mlp: nn.Sequential, names: Sequence[str]) -> None:
    r"""Copies an MLP over named features (``Linear(C, H) -> ReLU -> Linear(H, 1)``, e.g.
    the learned ranker's) into :obj:`model`'s pair MLP: input column ``names[j]`` goes
    to the model's channel of that name, channels it does not read get zero weight."""
    first, last = model.pair_mlp[0], model.pair_mlp[-1]
    if mlp[0].out_features != first.out_features or len(names) != mlp[0].in_features:
        raise ValueError(f"an MLP of width {mlp[0].out_features} over {mlp[0].in_features} "
                         f"features ({len(names)} names) does not fit the pair MLP "
                         f"(width {first.out_features}, model.pair_hidden)")
    missing = [n for n in names if n not in model.channels]
    if missing:
        raise ValueError(f"the MLP reads {missing}, which this scorer's pair features "
                         f"({model.channels}) lack")
    with torch.no_grad():
        first.weight.zero_()
        for j, name in enumerate(names):
            first.weight[:, model.channels.index(name)] = mlp[0].weight[:, j]
        first.bias.copy_(mlp[0].bias)
        last.weight.copy_(mlp[-1].weight)
        last.bias.copy_(mlp[-1].bias)


class PairFeatureHead(StartsFromFeatures):
    r"""What the hybrid item and interest scorers add to their base model: an MLP over
    the pair (or label) features, computed once per batch by the learner
    (``mode="pair_mlp"`` from ``batch_inputs``) and never adapted, and a gate
    ``pair_gate`` (zero at initialisation) from the model's hidden vector to one
    weight per feature channel, a head every learner adapts. Mixed in before the base
    model class."""

    shared_prefixes = ("pair_mlp.",)

    def _init_pairs(self, hidden: int, channels: int, pair_hidden: int) -> None:
        self.pair_mlp = PairMLP(channels, pair_hidden)
        self.pair_gate = nn.Linear(hidden, channels)
        self._reset_pairs()
        self.head_prefixes = ("head.", "pair_gate.")

    def _reset_pairs(self) -> None:
        for module in self.pair_mlp.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        nn.init.zeros_(self.pair_gate.weight)
        nn.init.zeros_(self.pair_gate.bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, "pair_gate"):   # the base __init__ resets before they exist
            self._reset_pairs()

    def forward(self, *args: Tensor, mode: str | None = None, **kwargs) -> Tensor:
        r"""The base model's forward, plus ``mode="pair_mlp"`` (the MLP of features
        ``[..., P]``)."""
        if mode == "pair_mlp":
            return self.pair_mlp(args[0]).squeeze(-1)
        return super().forward(*args, **kwargs)


class HybridItemModel(PairFeatureHead, ItemModel):
    r"""The hybrid scorer of item tasks: :class:`ItemModel`'s score of every item of
    the catalogue (the center's ego-net vector ``q_u = W h_c`` against the item table,
    which already ranks every item: items are not cold in item tasks, so the table is
    their candidate embedding) plus the item pair features ``φ(u, i)``
    (:class:`~socialmeta.features.ItemPairFeatures`: ItemKNN, UserKNN, popularity,
    social popularity) read by an MLP and re-weighted per user by ``g(q_u)``:

    ``score(u, i) = q_u · e_i + mlp(φ(u, i)) + g(q_u) · φ(u, i)``

    trained with the softmax over the whole catalogue. The pair MLP is computed once
    per batch and never adapted; ``g`` (``pair_gate``, zero at initialisation) is a
    head every learner adapts.

    Args:
        in_channels (int), num_items (int), num_hops (int): As :class:`ItemModel`.
        num_pair_features (int): ``P``, channels of ``TaskBatch.pair_features``.
        pair_hidden (int): Width of the pair-feature MLP. (default: :obj:`32`)
        channels (sequence of str, optional): The channels' names
            (:func:`~socialmeta.features.item_channels`), for :meth:`start_from`.
        **kwargs: :class:`ItemModel`'s options (its ``loss`` is always
            ``"softmax"``).
    """

    per_task_inputs = ("pair_scores",)

    def __init__(self, in_channels: int, num_items: int, num_hops: int,
                 num_pair_features: int, pair_hidden: int = 32,
                 channels: Sequence[str] | None = None, **kwargs) -> None:
        if num_pair_features < 1:
            raise ValueError("the hybrid item scorer needs pair features "
                             "(num_pair_features > 0)")
        if channels is not None and len(channels) != num_pair_features:
            raise ValueError(f"{len(channels)} channel names for {num_pair_features} "
                             "pair features")
        kwargs["loss"] = "softmax"
        super().__init__(in_channels, num_items, num_hops, **kwargs)
        self._init_pairs(self.head.out_features, num_pair_features, pair_hidden)
        self.task_fields = (*self.task_fields, "pair_features")
        self.channels = (list(channels) if channels is not None
                         else [f"pair_{i}" for i in range(num_pair_features)])

    def batch_inputs(self, call, batch) -> dict[str, Tensor]:
        r"""The pair MLP's score of every item for every task of :obj:`batch`
        (``"pair_scores"`` ``[T, num_items]``), computed once per batch."""
        return {"pair_scores": call(batch.pair_features, mode="pair_mlp")}

    def _start_base(self, scale: float, prior: Tensor | None) -> None:
        """:meth:`StartsFromFeatures.start_from`: the user vector ``q_u`` becomes zero
        (so does its score of every item), and with ``heuristics`` the ego-net count
        MLP's output layer and the item bias too."""
        self.head.weight.zero_()
        self.head.bias.zero_()
        if self.heuristics:
            self.heuristic[-1].weight.zero_()
            self.heuristic[-1].bias.zero_()
            self.item_bias.weight.zero_()

    def score_targets(self, call, task: dict[str, Tensor], target_ids: Tensor | None,
                      prototype: bool = False) -> Tensor:
        support = ((task["support_ids"], task["support_label"], task["support_mask"])
                   if prototype else None)
        return call(task["x"], task["adj"], task["hop"], task["item_ids"], task["item_adj"],
                    target_ids, task["node_mask"], support=support, center=task.get("center"),
                    all_items=target_ids is None, pair_features=task["pair_features"],
                    pair_scores=task["pair_scores"])

    def sparse_task_loss(self, call, data, side: str, prototype: bool = False) -> Tensor:
        support = ((data.support_ids, data.support_label,
                    torch.ones_like(data.support_label, dtype=torch.bool)) if prototype else None)
        scores = call(data.x, data.edge_index, data.hop, data.item_ids, data.item_edge_index,
                      None, sparse=True, support=support,
                      center=data.center[0] if self.item_knn else None, all_items=True,
                      pair_features=data.pair_features, pair_scores=data.pair_scores)
        return item_list_loss(scores, data.support_ids, data.support_label,
                              getattr(data, f"{side}_ids"), getattr(data, f"{side}_label"),
                              side)


#: restart weights of the interest pair features' label propagation (the grid of
#: :class:`~socialmeta.baselines.interest.LabelPropagation`)
INTEREST_ALPHAS = (0.5, 0.8, 0.9, 0.99)
#: channels of :func:`interest_pair_features` besides one per restart weight
INTEREST_EXTRA = ("neighbors", "share")


def interest_pair_features(adj: Tensor, labels: Tensor, label_mask: Tensor,
                           alphas: Sequence[float] = INTEREST_ALPHAS,
                           iterations: int = 20) -> Tensor:
    r"""``[..., N, L, P]`` parameter-free label scores of every node of interest tasks
    from the labels of their support members only (``labels`` masked by
    :obj:`label_mask`; a query label never enters): label propagation on the task's
    ego-net at each restart weight of :obj:`alphas` (``F <- a D^-1 A F + (1 - a) Y``,
    :obj:`iterations` steps: the :class:`~socialmeta.baselines.interest.
    LabelPropagation` baseline's scores), the mean labels of each node's labelled
    neighbours (the members-variant neighbour majority) and the share of the task's
    labelled members carrying each label.

    Args:
        adj: ``[..., N, N]`` the tasks' dense adjacency.
        labels: ``[..., N, L]`` in {0, 1}.
        label_mask: ``[..., N]`` the support members.
    """
    mask = label_mask.to(labels.dtype)
    seeds = labels * mask.unsqueeze(-1)
    neighbors = neighbour_labels(adj, seeds, mask)
    share = seeds.sum(-2, keepdim=True) / mask.sum(-1, keepdim=True).unsqueeze(-1).clamp(min=1)
    return torch.cat([label_propagation(adj, seeds, alphas, iterations),
                      torch.stack([neighbors, share.expand_as(seeds)], -1)], -1)


class HybridInterestModel(PairFeatureHead, InterestModel):
    r"""The hybrid scorer of interest tasks: :class:`InterestModel`'s label logits of
    every ego-net node plus the label scores that label propagation and neighbour
    votes give from the support members' labels (:func:`interest_pair_features`),
    read by an MLP and re-weighted per node by ``g(h_v)``:

    ``logit(v, l) = head(h_v)_l + mlp(φ(v, l)) + g(h_v) · φ(v, l)``

    The plain model never sees the support's labels in its input (only who is
    labelled), so it can use them through adaptation alone; label propagation, which
    reads them, led it by 26% on ego-Facebook circles. The features are computed once
    per batch from the dense tasks (``batch_inputs``), the MLP too (never adapted);
    ``g`` (``pair_gate``, zero at initialisation) is a head every learner adapts. On
    a support member's own row the features include its own label (as they would for
    any labelled node in label propagation): the support loss can lean on them, the
    query rows (the center, or the unlabelled members) cannot.

    Args:
        in_channels (int), num_labels (int), num_hops (int): As :class:`InterestModel`.
        alphas (sequence of float): Label propagation restart weights, one channel
            each. (default: :obj:`INTEREST_ALPHAS`)
        pair_hidden (int): Width of the MLP. (default: :obj:`32`)
        **kwargs: :class:`InterestModel`'s options.
    """

    per_task_inputs = ("interest_features", "pair_scores")

    def __init__(self, in_channels: int, num_labels: int, num_hops: int,
                 alphas: Sequence[float] = INTEREST_ALPHAS, pair_hidden: int = 32,
                 **kwargs) -> None:
        super().__init__(in_channels, num_labels, num_hops, **kwargs)
        self.alphas = tuple(float(a) for a in alphas)
        if not self.alphas or not all(0 < a < 1 for a in self.alphas):
            raise ValueError(f"interest alphas must be in (0, 1), got {list(alphas)}")
        self._init_pairs(self.head.in_features, len(self.alphas) + len(INTEREST_EXTRA),
                         pair_hidden)

    @property
    def channels(self) -> list[str]:
        return [f"label_propagation@{a:g}" for a in self.alphas] + list(INTEREST_EXTRA)

    def _start_base(self, scale: float, prior: Tensor | None) -> None:
        """:meth:`StartsFromFeatures.start_from`: the head's logits become the constant
        ``-scale / 2`` plus the label prior's tie-break (``logit = scale (φ - 1/2)``)."""
        self.head.weight.zero_()
        self.head.bias.fill_(-scale / 2)
        if prior is not None:
            self.head.bias.add_(scale * 1e-6 * prior / prior.max().clamp(min=1e-12))

    def batch_inputs(self, call, batch) -> dict[str, Tensor]:
        r"""The label features of every node of every task (``[T, N, L, P]``) and the
        MLP's score of them (``[T, N, L]``), once per batch."""
        phi = interest_pair_features(batch.adj, batch.labels, batch.label_mask, self.alphas)
        return {"interest_features": phi, "pair_scores": call(phi, mode="pair_mlp")}

    def task_logits(self, call, task: dict[str, Tensor], prototype: bool = False) -> Tensor:
        kwargs = {"labels": task["labels"]} if prototype else {}
        if self.num_items:
            kwargs.update(item_ids=task["item_ids"], item_graph=task["item_adj"])
        return call(task["x"], task["adj"], task["hop"], task["label_mask"],
                    task["node_mask"], pair_features=task["interest_features"],
                    pair_scores=task["pair_scores"], **kwargs)

    def sparse_task_loss(self, call, data, side: str, prototype: bool = False) -> Tensor:
        from socialmeta.models.link import masked_bce

        kwargs = {"labels": data.labels} if prototype else {}
        if self.num_items:
            kwargs.update(item_ids=data.item_ids, item_graph=data.item_edge_index)
        n = data.num_nodes   # the dense task's first n rows (the rest is padding)
        logits = call(data.x, data.edge_index, data.hop, data.label_mask, sparse=True,
                      pair_features=data.interest_features[:n],
                      pair_scores=data.pair_scores[:n], **kwargs)
        task = {"labels": data.labels, "label_mask": data.label_mask,
                "query_labels": data.query_labels, "query_node_mask": data.query_node_mask,
                "label_valid": data.label_valid}
        target, mask = self._target(task, side)
        return masked_bce(logits, target, mask)
