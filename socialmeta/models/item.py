"""Item recommendation inside an ego-net task: a user-item (bipartite + social) model."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from socialmeta.models.encoders import Encoder
from socialmeta.models.link import masked_bce, node_inputs
from socialmeta.models.taste import ItemTasteMixin, center_item_overlap


def _to_items(item_graph: Tensor, values: Tensor, num_items: int, sparse: bool) -> Tensor:
    """``[I, C]``: per task item, the sum of :obj:`values` ``[N, C]`` over its holders."""
    if sparse:
        user, item = item_graph
        out = torch.zeros(num_items, values.size(-1), dtype=values.dtype, device=values.device)
        return out.index_add(0, item, values[user])
    return item_graph.transpose(-1, -2).to(values.dtype) @ values


def _to_users(item_graph: Tensor, values: Tensor, num_users: int, sparse: bool) -> Tensor:
    """``[N, C]``: per task user, the sum of :obj:`values` ``[I, C]`` over its items."""
    if sparse:
        user, item = item_graph
        out = torch.zeros(num_users, values.size(-1), dtype=values.dtype, device=values.device)
        return out.index_add(0, user, values[item])
    return item_graph.to(values.dtype) @ values


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
    """

    head_prefixes = ("head.",)
    task_fields = ("x", "adj", "node_mask", "hop", "item_ids", "item_mask", "item_adj",
                   "support_ids", "support_label", "support_mask", "query_ids",
                   "query_label", "query_mask")

    def __init__(self, in_channels: int, num_items: int, num_hops: int, conv: str = "sage",
                 hidden_channels: int = 32, num_layers: int = 2,
                 item_features: Tensor | None = None, social: bool = True,
                 heuristics: bool = False, **encoder_kwargs) -> None:
        super().__init__()
        self.num_hops, self.social, self.heuristics = num_hops, social, heuristics
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
            self.heuristic = nn.Sequential(nn.Linear(2 * num_hops + 1, 16), nn.ReLU(),
                                           nn.Linear(16, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._reset_items()
        self.encoder.reset_parameters()
        self.head.reset_parameters()
        if self.heuristics:
            nn.init.zeros_(self.item_bias.weight)
            for layer in (self.holder, self.heuristic[0], self.heuristic[2]):
                layer.reset_parameters()

    def _heuristic_scores(self, h: Tensor, hop: Tensor, item_ids: Tensor, item_graph: Tensor,
                          target_ids: Tensor, sparse: bool) -> Tensor:
        r"""Bias plus count-MLP term of :obj:`target_ids` ``[M]``: the MLP runs on the
        task's ``I`` items and is scattered over the item space (an item outside the
        task has all-zero counts, so it gets the MLP's value at zero). Besides the
        per-hop counts, the MLP sees ``log(1 + sum of w_u)`` over the item's holders
        ``u``, with a learned weight ``w_u = softplus(v . h_u) >= 0`` per ego-net user (a
        user-kNN whose similarities the encoder, and adaptation, choose)."""
        num_items = item_ids.size(-1)
        counts = item_heuristics(hop, item_graph, num_items, self.num_hops, sparse, h.dtype)
        weight = nn.functional.softplus(self.holder(h)) * (hop > 0).unsqueeze(-1).to(h.dtype)
        weighted = torch.log1p(_to_items(item_graph, weight, num_items, sparse))
        counts = torch.cat([counts, weighted], -1)
        zero = self.heuristic(torch.zeros_like(counts[..., :1, :]))  # [1, 1]
        term = (self.heuristic(counts) - zero).squeeze(-1) * (item_ids >= 0).to(counts.dtype)
        full = torch.zeros(self.num_items, dtype=term.dtype, device=term.device)
        full = full.scatter_add(0, item_ids.clamp(min=0), term)
        ids = target_ids.clamp(min=0)
        return full[ids] + zero.squeeze(-1) + self.item_bias(ids).squeeze(-1)

    def forward(self, x: Tensor, graph: Tensor, hop: Tensor, item_ids: Tensor,
                item_graph: Tensor, target_ids: Tensor, mask: Tensor | None = None,
                sparse: bool = False, support: tuple[Tensor, Tensor, Tensor] | None = None
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
        With :obj:`target_ids` ``None`` it returns the center's user vector ``W h_c``
        (scores are its dot products with :meth:`items`).
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
        if target_ids is None:  # the center's vector in the item space
            return user.squeeze(-2)
        extra = (self._heuristic_scores(h, hop, item_ids, item_graph, target_ids, sparse)
                 if self.heuristics else 0.0)
        if support is None:
            return (self.items(target_ids) * user).sum(-1) + extra
        ids, label, valid = support
        z, z_support = self.items(target_ids) * user, self.items(ids) * user
        scores = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for value, sign in ((1.0, -1.0), (0.0, 1.0)):
            w = (valid & (label == value)).to(z.dtype)
            proto = (w.unsqueeze(-1) * z_support).sum(-2) / w.sum(-1, keepdim=True).clamp(min=1)
            scores = scores + sign * (z - proto.unsqueeze(-2)).pow(2).sum(-1)
        return scores + extra

    def score_targets(self, call, task: dict[str, Tensor], target_ids: Tensor,
                      prototype: bool = False) -> Tensor:
        """Scores of arbitrary global item ids for the center of one task."""
        support = ((task["support_ids"], task["support_label"], task["support_mask"])
                   if prototype else None)
        return call(task["x"], task["adj"], task["hop"], task["item_ids"], task["item_adj"],
                    target_ids, task["node_mask"], support=support)

    def center_embedding(self, call, task: dict[str, Tensor]) -> Tensor:
        """The center's user vector ``[H]``: its dot product with an item's
        :meth:`items` row is the item's score."""
        return call(task["x"], task["adj"], task["hop"], task["item_ids"], task["item_adj"],
                    None, task["node_mask"])

    def task_loss(self, call, task: dict[str, Tensor], side: str, prototype: bool = False
                  ) -> Tensor:
        scores = self.score_targets(call, task, task[f"{side}_ids"], prototype)
        return masked_bce(scores, task[f"{side}_label"], task[f"{side}_mask"])

    def sparse_task_loss(self, call, data, side: str, prototype: bool = False) -> Tensor:
        support = ((data.support_ids, data.support_label,
                    torch.ones_like(data.support_label, dtype=torch.bool)) if prototype else None)
        scores = call(data.x, data.edge_index, data.hop, data.item_ids, data.item_edge_index,
                      getattr(data, f"{side}_ids"), sparse=True, support=support)
        label = getattr(data, f"{side}_label")
        return masked_bce(scores, label, torch.ones_like(label, dtype=torch.bool))
