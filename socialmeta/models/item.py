"""Item recommendation inside an ego-net task: a user-item (bipartite + social) model."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from socialmeta.models.encoders import Encoder
from socialmeta.models.link import masked_bce, node_inputs
from socialmeta.models.ops import matvec, t_matmul
from socialmeta.models.taste import ItemTasteMixin, center_item_overlap


def _to_items(item_graph: Tensor, values: Tensor, num_items: int, sparse: bool) -> Tensor:
    """``[I, C]``: per task item, the sum of :obj:`values` ``[N, C]`` over its holders."""
    if sparse:
        user, item = item_graph
        out = torch.zeros(num_items, values.size(-1), dtype=values.dtype, device=values.device)
        return out.index_add(0, item, values[user])
    return t_matmul(item_graph.to(values.dtype), values)


def item_heuristics(hop: Tensor, item_graph: Tensor, num_items: int, num_hops: int,
                    sparse: bool = False, dtype: torch.dtype | None = None) -> Tensor:
    r"""Parameter-free ego-net counts of every task item ``[I, 2 * num_hops]``: for
    each hop ``d`` the number ``n_d`` of the task's users at hop ``d`` who hold the
    item, as ``log(1 + n_d)`` and ``n_d / (users at hop d)`` (the center, hop 0,
    holds only its visible items and is left out). Dense :obj:`item_graph` is
    ``item_adj [N, I]``; sparse, the ``(user, item)`` local pairs (then the counts
    have :obj:`dtype`, by default the default dtype)."""
    dtype = item_graph.dtype if not sparse else dtype or torch.get_default_dtype()
    at_hop = torch.stack([hop == d for d in range(1, num_hops + 1)], -1).to(dtype)  # [N, D]
    held = _to_items(item_graph, at_hop, num_items, sparse)
    users = at_hop.sum(-2).clamp(min=1)
    return torch.cat([torch.log1p(held), held / users], -1)


def _co_occurrences(user: Tensor, item: Tensor, group: Tensor, num_items: int,
                    num_groups: int, chunk_pairs: int) -> tuple[Tensor, Tensor]:
    r"""Distinct item pairs ``i != j`` held by a common user, as keys ``i * num_items
    + j`` ``[P]``, and their co-occurrence counts per user group ``[P, num_groups + 1]``
    (:obj:`group` ``[num_users]`` in ``0..num_groups``, the last: users of no group).
    :obj:`user` is sorted; pairs are made user by user in chunks of about
    :obj:`chunk_pairs` and merged."""
    num_users = int(user.max()) + 1
    degree = torch.bincount(user, minlength=num_users)
    ptr = torch.cat([degree.new_zeros(1), degree.cumsum(0)])
    keys = torch.zeros(0, dtype=torch.long)
    counts = torch.zeros(0, num_groups + 1)
    load = (degree ** 2).cumsum(0)
    start = 0
    while start < num_users:
        stop = max(start + 1, int(torch.searchsorted(load, load[start] - degree[start] ** 2
                                                     + chunk_pairs, right=True)))
        stop = min(stop, num_users)
        edges = torch.arange(int(ptr[start]), int(ptr[stop]))
        deg = degree[user[edges]]
        first = torch.repeat_interleave(edges, deg)                       # pair (e, e')
        offset = torch.arange(first.numel()) - torch.repeat_interleave(deg.cumsum(0) - deg,
                                                                       deg)
        second = ptr[user[first]] + offset
        ok = item[first] != item[second]
        new = item[first][ok] * num_items + item[second][ok]
        g = group[user[first][ok]]
        keys, inverse = torch.unique(torch.cat([keys, new]), return_inverse=True)
        merged = torch.zeros(keys.numel(), num_groups + 1)
        merged.index_add_(0, inverse[:counts.size(0)], counts)
        merged.index_put_((inverse[counts.size(0):], g), torch.ones(new.numel()),
                          accumulate=True)
        counts, start = merged, stop
    return keys, counts


def item_neighbours(interactions: Tensor, num_items: int, k: int,
                    user_group: Tensor | None = None, num_groups: int = 0,
                    chunk_pairs: int = 1 << 24) -> tuple[Tensor, Tensor]:
    r"""The :obj:`k` nearest items of every item by cosine between their user columns
    in :obj:`interactions` ``[2, E]`` (user, item; duplicates count once):
    ``cos(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|)``, an item never its own neighbour;
    an item with fewer than :obj:`k` co-occurring items pads with weight 0 (index 0).
    Ties keep the smaller item id first.

    Returns ``(index, weight)``, each ``[num_groups + 1, num_items, k]``: table ``g <
    num_groups`` leaves out the users whose :obj:`user_group` ``[num_users]`` is ``g``
    (a user's own items never count in its group's table: simulated cold start for
    training users), the last table uses every user. Works on the sparse co-occurrence
    pairs (made user by user in chunks of about :obj:`chunk_pairs`), never the dense
    ``[num_items, num_items]`` matrix.

    Pass the *training* users' interactions only: these are the item-item statistics
    of the ItemKNN baseline (:class:`socialmeta.baselines.item.ItemKNN`), truncated to
    each item's :obj:`k` nearest."""
    if k < 1:
        raise ValueError(f"item neighbours: k must be >= 1, got {k}")
    user, item = interactions
    if user.numel() and (item.min() < 0 or item.max() >= num_items):
        raise ValueError(f"item neighbours: item ids must lie in [0, {num_items}), got "
                         f"[{int(item.min())}, {int(item.max())}]")
    index = torch.zeros(num_groups + 1, num_items, k, dtype=torch.long)
    weight = torch.zeros(num_groups + 1, num_items, k)
    if not user.numel():
        return index, weight
    key = torch.unique(user * num_items + item)                    # sorted by user
    user, item = key // num_items, key % num_items
    num_users = int(user.max()) + 1
    group = torch.full((num_users,), -1, dtype=torch.long)
    if user_group is not None:
        group = user_group[:num_users].long()
    group = torch.where(group < 0, num_groups, group)
    held = torch.zeros(num_items, num_groups + 1)                 # item counts per group
    held.index_put_((item, group[user]), torch.ones(item.numel()), accumulate=True)
    pairs, co = _co_occurrences(user, item, group, num_items, num_groups, chunk_pairs)
    first, second = pairs // num_items, pairs % num_items
    for g in range(num_groups + 1):
        if g < num_groups:  # without group g's users
            together, count = co.sum(1) - co[:, g], held.sum(1) - held[:, g]
        else:
            together, count = co.sum(1), held.sum(1)
        cos = together / (count[first] * count[second]).clamp(min=1).sqrt()
        keep = cos > 0
        rows, cols, cos = first[keep], second[keep], cos[keep]
        order = torch.argsort(cos, descending=True, stable=True)
        order = order[torch.argsort(rows[order], stable=True)]   # by row, best first
        rows, cols, cos = rows[order], cols[order], cos[order]
        starts = torch.cat([rows.new_zeros(1), torch.bincount(rows, minlength=num_items)
                            .cumsum(0)[:-1]])
        rank = torch.arange(rows.numel()) - starts[rows]
        top = rank < k
        index[g, rows[top], rank[top]] = cols[top]
        weight[g, rows[top], rank[top]] = cos[top]
    return index, weight


def taste_overlap(item_graph: Tensor, num_users: int, num_items: int, sparse: bool = False,
                  dtype: torch.dtype | None = None) -> Tensor:
    r"""``[N, 2]`` per task user: how many of the center's visible items (row 0 of the
    item graph) it holds, as ``log(1 + overlap)`` and as the cosine
    ``overlap / sqrt(|user's items| |center's items|)``."""
    dtype = item_graph.dtype if not sparse else dtype or torch.get_default_dtype()
    overlap, count, center = center_item_overlap(item_graph, num_users, num_items, sparse,
                                                 dtype)
    cosine = overlap / (count * center).sqrt().clamp(min=1)
    return torch.stack([torch.log1p(overlap), cosine], -1)


class ItemModel(ItemTasteMixin, nn.Module):
    r"""Scores items for the center user of an item task.

    Every user first gathers the mean embedding of its observed items (bipartite
    relation; the center sees only its support items), then the social encoder runs
    over the friendships of the ego-net (set :obj:`social=False` to ignore them, an
    ablation: no edges, no degree, no hop distances). An item is an embedding-table row (items are not cold; users are),
    optionally plus a projection of item features. Score: ``(W h_center) · e_item``.

    With :obj:`heuristics=True` the score also takes, per candidate item, a learned
    item bias (its popularity) and a small MLP over parameter-free ego-net counts
    (:func:`item_heuristics`: how many of the task's users at each hop hold the item,
    as ``log(1 + n)`` and as a fraction of that hop's users; and a sum over the item's
    holders of learned per-user weights): the social popularity and user-kNN signals
    of the ego-net, which a low-dimensional dot product cannot express. Each user's
    overlap with the center's visible items (:func:`taste_overlap`) joins the
    encoder's inputs. Items outside the task's items count zero. The counts only see the
    task's items, so pair it with a large ``task.item_cap`` and
    ``task.item_order=shared``.

    Args:
        in_channels (int): User feature size ``F`` (may be 0).
        num_items (int): Size of the item table.
        num_hops (int): Hops of the ego-nets.
        conv (str): Encoder type. (default: :obj:`"sage"`)
        hidden_channels (int): Embedding size. (default: :obj:`32`)
        num_layers (int): Encoder layers. (default: :obj:`2`)
        item_features (Tensor, optional): ``[num_items, D]`` item features.
        social (bool): Use the friendships of the ego-net. (default: :obj:`True`)
        heuristics (bool): Add the item bias and the ego-net count MLP to the
            score. (default: :obj:`False`)
        item_knn (int): With :obj:`heuristics`, also feed the count MLP each
            candidate's ItemKNN score from the center's visible items over the
            :obj:`item_knn` nearest items of each (:func:`item_neighbours`, a global
            item-item signal the ego-net's counts lack). The neighbour table is a
            buffer of zeros until :meth:`set_item_neighbours` fills it from the
            training users' interactions. (default: :obj:`0`, off)
        loss (str): ``"bce"`` over the task's targets (positives and sampled
            negatives) or ``"softmax"``, a list loss over the whole catalogue
            (:func:`item_list_loss`), as the evaluator ranks it. (default: :obj:`"bce"`)
    """

    head_prefixes = ("head.",)
    LOSSES = ("bce", "softmax")
    task_fields = ("x", "adj", "node_mask", "hop", "item_ids", "item_mask", "item_adj",
                   "support_ids", "support_label", "support_mask", "query_ids",
                   "query_label", "query_mask")

    def __init__(self, in_channels: int, num_items: int, num_hops: int, conv: str = "sage",
                 hidden_channels: int = 32, num_layers: int = 2,
                 item_features: Tensor | None = None, social: bool = True,
                 heuristics: bool = False, item_knn: int = 0, loss: str = "bce",
                 **encoder_kwargs) -> None:
        super().__init__()
        if loss not in self.LOSSES:
            raise ValueError(f"unknown item loss {loss!r}; choose one of {list(self.LOSSES)}")
        self.loss = loss
        if item_knn < 0 or (item_knn and not heuristics):
            raise ValueError(f"item_knn={item_knn}: must be >= 0, and > 0 only with "
                             "heuristics=True (it is an input of the heuristic score)")
        self.num_hops, self.social, self.heuristics = num_hops, social, heuristics
        self.item_knn = item_knn
        self._init_items(num_items, hidden_channels, item_features)
        #: width of the overlap-with-the-center inputs (zero without ``heuristics``)
        self.heuristic_channels = 2 if heuristics else 0
        self.encoder = Encoder(conv, in_channels + num_hops + 3 + hidden_channels
                               + self.heuristic_channels, hidden_channels, num_layers,
                               **encoder_kwargs)
        self.head = nn.Linear(hidden_channels, hidden_channels)
        if heuristics:
            self.item_bias = nn.Embedding(num_items, 1)
            self.holder = nn.Linear(hidden_channels, 1)
            self.heuristic = nn.Sequential(
                nn.Linear(2 * num_hops + 1 + 2 * (item_knn > 0), 16), nn.ReLU(),
                nn.Linear(16, 1))
        if item_knn:  # [tables * num_items, k], and each user's table ([num_users])
            self.task_fields = (*type(self).task_fields, "center")
            self.register_buffer("knn_index", torch.zeros(num_items, item_knn, dtype=torch.long))
            self.register_buffer("knn_weight", torch.zeros(num_items, item_knn))
            self.register_buffer("knn_group", torch.zeros(0, dtype=torch.long))
        self.reset_parameters()

    def set_item_neighbours(self, interactions: Tensor, train_users: Tensor | None = None,
                            folds: int = 5, seed: int = 0) -> None:
        r"""Fills the ItemKNN neighbour table (``item_knn > 0``) from the (user, item)
        pairs :obj:`interactions` ``[2, E]``: pass the training users' only.

        With :obj:`train_users`, these are dealt at random (:obj:`seed`) into
        :obj:`folds` folds, and a task whose center is a training user reads the table
        built without its fold: its own items (support and query) never count, as for
        a new user at test time. Every other center (validation, test, new users)
        reads the table of all training users."""
        if not self.item_knn:
            raise ValueError("this ItemModel has no item neighbours (item_knn=0)")
        interactions = interactions.cpu()
        groups = 0 if train_users is None else folds
        num_users = int(interactions[0].max()) + 1 if interactions.numel() else 0
        if train_users is not None:
            if folds < 2:
                raise ValueError(f"item neighbours: folds must be >= 2, got {folds}")
            train_users = train_users.cpu().long()
            if train_users.numel():
                num_users = max(num_users, int(train_users.max()) + 1)
        user_group = torch.full((num_users,), groups, dtype=torch.long)
        if train_users is not None:
            order = torch.randperm(train_users.numel(),
                                   generator=torch.Generator().manual_seed(seed))
            user_group[train_users[order]] = torch.arange(train_users.numel()) % folds
        index, weight = item_neighbours(interactions, self.num_items, self.item_knn,
                                        user_group, groups)
        device = self.item_embedding.weight.device
        self.knn_index = index.reshape(-1, self.item_knn).to(device)
        self.knn_weight = weight.reshape(-1, self.item_knn).to(device)
        self.knn_group = (user_group if groups else user_group[:0]).to(device)

    def _knn_features(self, item_ids: Tensor, item_graph: Tensor, sparse: bool,
                      dtype: torch.dtype, center: Tensor | None = None) -> Tensor:
        r"""``[num_items, 2]``: every item's ItemKNN score ``s`` from the center's visible
        items (row 0 of the item graph) over their nearest items, as ``log(1 + s)`` and
        ``s / (number of visible items)``. :obj:`center` (global id) picks the table:
        a training user's leaves out its fold; anyone else reads the last (all
        training users)."""
        if sparse:
            user, item = item_graph
            held = (user == 0).to(dtype)
            rows = item_ids[item]
        else:
            held = item_graph[..., 0, :].to(dtype) * (item_ids >= 0).to(dtype)
            rows = item_ids.clamp(min=0)
        last = self.knn_index.size(0) // self.num_items - 1
        if center is not None and self.knn_group.numel():
            n = self.knn_group.numel()
            known = self.knn_group.index_select(0, center.clamp(max=n - 1).reshape(1))[0]
            table = torch.where(center < n, known, last)
            rows = rows + table * self.num_items
        else:
            rows = rows + last * self.num_items
        nbr = self.knn_index[rows]                                        # [., k]
        weight = self.knn_weight[rows].to(dtype) * held.unsqueeze(-1)
        score = torch.zeros(self.num_items, dtype=dtype, device=weight.device)
        score = score.scatter_add(0, nbr.reshape(-1), weight.reshape(-1))
        return torch.stack([torch.log1p(score), score / held.sum().clamp(min=1)], -1)

    def reset_parameters(self) -> None:
        self._reset_items()
        self.encoder.reset_parameters()
        self.head.reset_parameters()
        if self.heuristics:
            nn.init.zeros_(self.item_bias.weight)
            for layer in (self.holder, self.heuristic[0], self.heuristic[2]):
                layer.reset_parameters()

    def _heuristic_scores(self, h: Tensor, hop: Tensor, item_ids: Tensor, item_graph: Tensor,
                          target_ids: Tensor | None, sparse: bool,
                          center: Tensor | None = None) -> Tensor:
        r"""Bias plus count-MLP term of :obj:`target_ids` ``[M]``: the MLP runs on the
        task's ``I`` items and is scattered over the item space (an item outside the
        task has all-zero counts, so it gets the MLP's value at zero). Besides the
        per-hop counts, the MLP sees ``log(1 + sum of w_u)`` over the item's holders
        ``u``, with a learned weight ``w_u = softplus(v . h_u) >= 0`` per ego-net user (a
        user-kNN whose similarities the encoder, and adaptation, choose). With
        ``item_knn`` it also sees the target's ItemKNN score (:meth:`_knn_features`),
        and runs on the targets themselves (their task counts, zero outside the task).
        :obj:`target_ids` ``None`` stands for every item of the catalogue, in order."""
        num_items = item_ids.size(-1)
        counts = item_heuristics(hop, item_graph, num_items, self.num_hops, sparse, h.dtype)
        weight = nn.functional.softplus(self.holder(h)) * (hop > 0).unsqueeze(-1).to(h.dtype)
        weighted = torch.log1p(_to_items(item_graph, weight, num_items, sparse))
        counts = torch.cat([counts, weighted], -1)
        if self.item_knn:  # features of every target: the task's counts, zero outside
            valid = (item_ids >= 0).to(counts.dtype).unsqueeze(-1)
            full = torch.zeros(self.num_items, counts.size(-1), dtype=counts.dtype,
                               device=counts.device)
            full = full.scatter_add(0, item_ids.clamp(min=0).unsqueeze(-1).expand_as(counts),
                                    counts * valid)
            full = torch.cat([full, self._knn_features(item_ids, item_graph, sparse,
                                                        counts.dtype, center)], -1)
            if target_ids is None:
                return self.heuristic(full).squeeze(-1) + self.item_bias.weight.squeeze(-1)
            ids = target_ids.clamp(min=0)
            return self.heuristic(full[ids]).squeeze(-1) + self.item_bias(ids).squeeze(-1)
        zero = self.heuristic(torch.zeros_like(counts[..., :1, :]))  # [1, 1]
        term = (self.heuristic(counts) - zero).squeeze(-1) * (item_ids >= 0).to(counts.dtype)
        full = torch.zeros(self.num_items, dtype=term.dtype, device=term.device)
        full = full.scatter_add(0, item_ids.clamp(min=0), term)
        if target_ids is None:
            return full + zero.squeeze(-1) + self.item_bias.weight.squeeze(-1)
        ids = target_ids.clamp(min=0)
        return full[ids] + zero.squeeze(-1) + self.item_bias(ids).squeeze(-1)

    def forward(self, x: Tensor, graph: Tensor, hop: Tensor, item_ids: Tensor,
                item_graph: Tensor, target_ids: Tensor, mask: Tensor | None = None,
                sparse: bool = False, support: tuple[Tensor, Tensor, Tensor] | None = None,
                center: Tensor | None = None, all_items: bool = False,
                pair_features: Tensor | None = None, pair_scores: Tensor | None = None
                ) -> Tensor:
        r"""Scores of :obj:`target_ids` (global item ids) for the center of one task.

        Dense: :obj:`graph` is ``adj [N, N]``, :obj:`item_graph` ``item_adj [N, I]``
        over the task's :obj:`item_ids` ``[I]``, :obj:`mask` the node mask. Sparse:
        :obj:`graph` is an ``edge_index``, :obj:`item_graph` the ``(user, item)``
        local pairs of :meth:`TaskBatch.to_data_list`.

        With :obj:`support` ``(ids, label, mask)`` the scores are ProtoNet's: items are
        embedded as ``e_item * (W h_center)`` (the item table modulated by the center's
        ego-net embedding), and a target scores ``-|z - c_liked|^2 + |z - c_other|^2``
        against the mean embeddings of the support's liked and other items.
        With :obj:`all_items` (and :obj:`target_ids` ``None``) it scores every item of
        the catalogue, ``[num_items]`` in item order, as matrix-vector products with the
        item table: the same scores as ``target_ids = arange(num_items)`` without
        gathering a copy of the table per task (the list loss's and the evaluator's
        path). With :obj:`target_ids` ``None`` otherwise it returns the center's user
        vector ``W h_c`` (scores are its dot products with :meth:`items`). :obj:`center`, the center's
        global user id, picks the ItemKNN table (``item_knn > 0``, see
        :meth:`set_item_neighbours`; without it, the table of all training users).
        :obj:`pair_features` ``[num_items, P]`` and :obj:`pair_scores` ``[num_items]``
        (the hybrid item scorer, :class:`~socialmeta.models.HybridItemModel`) add
        ``pair_scores + pair_features @ pair_gate(W h_c)`` to every score.
        """
        n = x.size(-2)
        taste = self.taste(item_ids, item_graph, n, sparse)
        if sparse:
            degree = torch.bincount(graph[0], minlength=n).to(x.dtype)
            edge_index = graph if self.social else graph[:, :0]
        else:
            degree = graph.sum(-1)
            adj = graph if self.social else torch.zeros_like(graph)
        if not self.social:  # no social information at all: no degree, no hop distance
            degree = torch.zeros_like(degree)
            hop = torch.where(hop == 0, hop, torch.full_like(hop, -1))
        zeros = torch.zeros_like(hop, dtype=x.dtype)
        inputs = [node_inputs(x, degree, hop, zeros, self.num_hops), taste]
        if self.heuristics:
            inputs.append(taste_overlap(item_graph, n, item_ids.size(-1), sparse, x.dtype))
        inputs = torch.cat(inputs, -1)
        if sparse:
            h = self.encoder.forward_sparse(inputs, edge_index)
        else:
            h = self.encoder.forward_dense(inputs, adj, mask)
        user = self.head(h[..., 0, :]).unsqueeze(-2)
        if target_ids is None and not all_items:  # the center's vector in the item space
            return user.squeeze(-2)
        if all_items and target_ids is not None:
            raise ValueError("all_items=True scores every item: pass target_ids=None")
        extra = (self._heuristic_scores(h, hop, item_ids, item_graph, target_ids, sparse,
                                        center) if self.heuristics else 0.0)
        if pair_features is not None:
            phi, base = pair_features.to(user.dtype), pair_scores.to(user.dtype)
            if not all_items:
                ids = target_ids.clamp(min=0)
                phi, base = phi[ids], base[ids]
            extra = extra + base + matvec(phi, self.pair_gate(user.squeeze(-2)))
        if all_items:
            return self._score_all(user.squeeze(-2), support) + extra
        if support is None:
            return (self.items(target_ids) * user).sum(-1) + extra
        z = self.items(target_ids) * user
        scores = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for proto, sign in zip(self._prototypes(user, support), (-1.0, 1.0)):
            scores = scores + sign * (z - proto.unsqueeze(-2)).pow(2).sum(-1)
        return scores + extra

    def _prototypes(self, user: Tensor, support: tuple[Tensor, Tensor, Tensor]
                    ) -> tuple[Tensor, Tensor]:
        r"""ProtoNet's prototypes ``(c_liked, c_other)``, each ``[H]``: the mean
        embedding ``e_item * user`` of the support's valid items labelled 1 and 0."""
        ids, label, valid = support
        z_support = self.items(ids) * user
        protos = []
        for value in (1.0, 0.0):
            w = (valid & (label == value)).to(z_support.dtype)
            protos.append((w.unsqueeze(-1) * z_support).sum(-2)
                          / w.sum(-1, keepdim=True).clamp(min=1))
        return protos[0], protos[1]

    def _score_all(self, user: Tensor, support: tuple[Tensor, Tensor, Tensor] | None
                   ) -> Tensor:
        r"""Dot-product (or ProtoNet) scores ``[num_items]`` of every item for the
        center's vector :obj:`user` ``[H]``. ProtoNet's
        ``-|z - c_1|^2 + |z - c_0|^2`` with ``z = e * u`` is linear in ``e``:
        ``e . 2u(c_1 - c_0) + |c_0|^2 - |c_1|^2``."""
        table = self.item_weight()
        if support is None:
            return matvec(table, user)
        liked, other = self._prototypes(user, support)
        return (matvec(table, 2 * user * (liked - other)) + other.pow(2).sum()
                - liked.pow(2).sum())

    def score_targets(self, call, task: dict[str, Tensor], target_ids: Tensor | None,
                      prototype: bool = False) -> Tensor:
        """Scores of arbitrary global item ids for the center of one task;
        :obj:`target_ids` ``None``: of every item of the catalogue (``[num_items]``)."""
        support = ((task["support_ids"], task["support_label"], task["support_mask"])
                   if prototype else None)
        return call(task["x"], task["adj"], task["hop"], task["item_ids"], task["item_adj"],
                    target_ids, task["node_mask"], support=support, center=task.get("center"),
                    all_items=target_ids is None)

    def center_embedding(self, call, task: dict[str, Tensor]) -> Tensor:
        """The center's user vector ``[H]``: its dot product with an item's
        :meth:`items` row is the item's score."""
        return call(task["x"], task["adj"], task["hop"], task["item_ids"], task["item_adj"],
                    None, task["node_mask"])

    def task_loss(self, call, task: dict[str, Tensor], side: str, prototype: bool = False
                  ) -> Tensor:
        if self.loss == "softmax":
            return item_list_loss(self.score_targets(call, task, None, prototype),
                                  task["support_ids"],
                                  task["support_label"] * task["support_mask"],
                                  task[f"{side}_ids"],
                                  task[f"{side}_label"] * task[f"{side}_mask"], side)
        scores = self.score_targets(call, task, task[f"{side}_ids"], prototype)
        return masked_bce(scores, task[f"{side}_label"], task[f"{side}_mask"])

    def sparse_center_embedding(self, call, data) -> Tensor:
        """The center's user vector ``[H]`` from one sparse PyG task."""
        return call(data.x, data.edge_index, data.hop, data.item_ids, data.item_edge_index,
                    None, sparse=True)

    def sparse_task_loss(self, call, data, side: str, prototype: bool = False) -> Tensor:
        support = ((data.support_ids, data.support_label,
                    torch.ones_like(data.support_label, dtype=torch.bool)) if prototype else None)
        every = self.loss == "softmax"
        targets = None if every else getattr(data, f"{side}_ids")
        scores = call(data.x, data.edge_index, data.hop, data.item_ids, data.item_edge_index,
                      targets, sparse=True, support=support,
                      center=data.center[0] if self.item_knn else None, all_items=every)
        label = getattr(data, f"{side}_label")
        if self.loss == "softmax":
            return item_list_loss(scores, data.support_ids, data.support_label,
                                  getattr(data, f"{side}_ids"), label, side)
        return masked_bce(scores, label, torch.ones_like(label, dtype=torch.bool))


def item_list_loss(scores: Tensor, support_ids: Tensor, support_positive: Tensor,
                   target_ids: Tensor, target_positive: Tensor, side: str) -> Tensor:
    r"""Softmax list loss of one item task: ``-mean_p log softmax(scores)[p]`` over the
    positive targets ``p``, the softmax over every item of the catalogue except, for
    the query side, the positive support items (the evaluator does not rank them).
    A sampled negative of the task plays no part.

    Args:
        scores: ``[num_items]`` scores of every item.
        support_ids, target_ids: Global item ids (``-1`` padding).
        support_positive, target_positive: 0/1 weights of the positives (label times
            validity).
    """
    candidate = torch.ones_like(scores, dtype=torch.bool)
    if side == "query":
        known = torch.zeros_like(scores).scatter_add(0, support_ids.clamp(min=0),
                                                     support_positive.to(scores.dtype))
        candidate = known == 0
    log_z = torch.logsumexp(scores.masked_fill(~candidate, float("-inf")), -1)
    picked = scores.gather(0, target_ids.clamp(min=0))
    w = target_positive.to(scores.dtype)
    return ((log_z - picked) * w).sum() / w.sum().clamp(min=1)
