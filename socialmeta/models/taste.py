"""Items as side information: an item table and each user's mean item embedding."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from socialmeta.models.ops import matvec


def item_table(embedding: Tensor, item_features: Tensor | None = None,
               projection: Tensor | None = None) -> Tensor:
    """Item representations ``[num_items, H]``: the embedding table, plus the projected
    item features when the model has them."""
    if item_features is None:
        return embedding
    return embedding + item_features @ projection.T


class ItemTasteMixin:
    r"""An item table and each user's *taste*, the mean embedding of its observed items.

    Shared by the item model (always) and by friend and interest models whose tasks
    observe ``items`` as context (``task.context``). The parameters are
    ``item_embedding`` (and ``item_proj`` with item features).
    """

    num_items: int

    def _init_items(self, num_items: int, channels: int,
                    item_features: Tensor | None = None) -> None:
        self.num_items = num_items
        self.item_embedding = nn.Embedding(num_items, channels)
        if item_features is not None:
            self.register_buffer("item_features", item_features.float())
            self.item_proj = nn.Linear(item_features.size(1), channels, bias=False)
        else:
            self.item_features = None

    def _reset_items(self) -> None:
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        if self.item_features is not None:
            self.item_proj.reset_parameters()

    def item_weight(self) -> Tensor:
        """The whole item table ``[num_items, H]`` (:func:`item_table`)."""
        return item_table(self.item_embedding.weight, self.item_features,
                          self.item_proj.weight if self.item_features is not None else None)

    def items(self, ids: Tensor) -> Tensor:
        """Embeddings of global item ids (``-1`` gives zeros)."""
        weight = self.item_weight()
        rows = torch.nn.functional.embedding(ids.clamp(min=0), weight)
        return rows * (ids >= 0).unsqueeze(-1).to(weight.dtype)

    def taste(self, item_ids: Tensor, item_graph: Tensor, num_nodes: int,
              sparse: bool = False) -> Tensor:
        r"""Mean item embedding ``[N, H]`` of every task user; dense :obj:`item_graph`
        is ``item_adj [N, I]``, sparse the ``(user, item)`` local pairs."""
        e_items = self.items(item_ids)
        if sparse:
            user, item = item_graph
            return scatter(e_items[item], user, 0, dim_size=num_nodes, reduce="mean")
        count = item_graph.sum(-1, keepdim=True)
        return item_graph @ e_items / count.clamp(min=1)


def center_item_overlap(item_graph: Tensor, num_users: int, num_items: int, sparse: bool,
                        dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    r"""Item overlap of every task user with the center (row 0): ``(overlap [..., N],
    count [..., N], center_count [..., 1])``, the number of the center's visible items
    each user holds, each user's item count and the center's. Dense :obj:`item_graph`
    is ``item_adj [..., N, I]``; sparse, the ``(user, item)`` local pairs."""
    if sparse:
        user, item = item_graph
        ones = torch.ones_like(user, dtype=dtype)
        centers = torch.zeros(num_items, dtype=dtype, device=user.device).index_add(
            0, item[user == 0], ones[user == 0])
        count = torch.zeros(num_users, dtype=dtype, device=user.device).index_add(
            0, user, ones)
        overlap = torch.zeros(num_users, dtype=dtype, device=user.device).index_add(
            0, user, centers[item])
        return overlap, count, count[:1]
    count = item_graph.sum(-1)
    # one product with the center's row (no [..., N, I] temporary): on a 0/1 item graph
    # the sums are counts, exact in float in any order, so the same values bit for bit
    # as summing the elementwise product
    return matvec(item_graph, item_graph[..., 0, :]), count, count[..., :1]
