"""Item recommendation inside an ego-net task: a user-item (bipartite + social) model."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from socialmeta.models.encoders import Encoder
from socialmeta.models.link import masked_bce, node_inputs
from socialmeta.models.taste import ItemTasteMixin


class ItemModel(ItemTasteMixin, nn.Module):
    r"""Scores items for the center user of an item task.

    Every user first gathers the mean embedding of its observed items (bipartite
    relation; the center sees only its support items), then the social encoder runs
    over the friendships of the ego-net (set :obj:`social=False` to ignore them, an
    ablation: no edges, no degree, no hop distances). An item is an embedding-table row (items are not cold; users are),
    optionally plus a projection of item features. Score: ``(W h_center) · e_item + b``.

    Args:
        in_channels (int): User feature size ``F`` (may be 0).
        num_items (int): Size of the item table.
        num_hops (int): Hops of the ego-nets.
        conv (str): Encoder type. (default: :obj:`"sage"`)
        hidden_channels (int): Embedding size. (default: :obj:`32`)
        num_layers (int): Encoder layers. (default: :obj:`2`)
        item_features (Tensor, optional): ``[num_items, D]`` item features.
        social (bool): Use the friendships of the ego-net. (default: :obj:`True`)
    """

    head_prefixes = ("head.",)
    task_fields = ("x", "adj", "node_mask", "hop", "item_ids", "item_mask", "item_adj",
                   "support_ids", "support_label", "support_mask", "query_ids",
                   "query_label", "query_mask")

    def __init__(self, in_channels: int, num_items: int, num_hops: int, conv: str = "sage",
                 hidden_channels: int = 32, num_layers: int = 2,
                 item_features: Tensor | None = None, social: bool = True,
                 **encoder_kwargs) -> None:
        super().__init__()
        self.num_hops, self.social = num_hops, social
        self._init_items(num_items, hidden_channels, item_features)
        self.encoder = Encoder(conv, in_channels + num_hops + 3 + hidden_channels,
                               hidden_channels, num_layers, **encoder_kwargs)
        self.head = nn.Linear(hidden_channels, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._reset_items()
        self.encoder.reset_parameters()
        self.head.reset_parameters()

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
        inputs = torch.cat([node_inputs(x, degree, hop, zeros, self.num_hops), taste], -1)
        if sparse:
            h = self.encoder.forward_sparse(inputs, edge_index)
        else:
            h = self.encoder.forward_dense(inputs, adj, mask)
        user = self.head(h[..., 0, :]).unsqueeze(-2)
        if target_ids is None:  # the center's vector in the item space
            return user.squeeze(-2)
        if support is None:
            return (self.items(target_ids) * user).sum(-1)
        ids, label, valid = support
        z, z_support = self.items(target_ids) * user, self.items(ids) * user
        scores = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for value, sign in ((1.0, -1.0), (0.0, 1.0)):
            w = (valid & (label == value)).to(z.dtype)
            proto = (w.unsqueeze(-1) * z_support).sum(-2) / w.sum(-1, keepdim=True).clamp(min=1)
            scores = scores + sign * (z - proto.unsqueeze(-2)).pow(2).sum(-1)
        return scores

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
