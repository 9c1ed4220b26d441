"""Multi-label interest prediction inside an ego-net task."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from socialmeta.models.encoders import Encoder
from socialmeta.models.link import masked_bce, node_inputs
from socialmeta.models.taste import ItemTasteMixin


def label_prototype_logits(h: Tensor, labels: Tensor, labelled: Tensor) -> Tensor:
    r"""ProtoNet logits for multi-label node classification.

    For every label :math:`l` the prototypes :math:`c^+_l` and :math:`c^-_l` are the mean
    embeddings of the labelled nodes with and without :math:`l`; a node's logit is
    :math:`-\lVert z - c^+_l \rVert^2 + \lVert z - c^-_l \rVert^2`. An empty class
    has the zero vector as prototype.

    Args:
        h (Tensor): Node embeddings ``[..., N, H]``.
        labels (Tensor): ``[..., N, L]`` in {0, 1}; only the labelled rows are read.
        labelled (Tensor): ``[..., N]`` boolean, the support members.
    """
    logits = torch.zeros(*h.shape[:-1], labels.size(-1), dtype=h.dtype, device=h.device)
    for value, sign in ((1.0, -1.0), (0.0, 1.0)):
        w = ((labels == value) & labelled.unsqueeze(-1).bool()).to(h.dtype)  # [..., N, L]
        proto = (w.transpose(-1, -2) @ h) / w.sum(-2).unsqueeze(-1).clamp(min=1)  # [..., L, H]
        logits = logits + sign * (h.unsqueeze(-2) - proto.unsqueeze(-3)).pow(2).sum(-1)
    return logits


class InterestModel(ItemTasteMixin, nn.Module):
    r"""Predicts the labels (interests, circles) of ego-net members.

    The encoder embeds the ego-net (features, hop one-hot, is-labelled flag, task
    degree); a linear multi-label head maps every node to ``num_labels`` logits. Labels
    themselves never enter the input: a new user's labelled neighbours inform the
    prediction only through adaptation (the support loss), which is what
    meta-learning is for.

    Args:
        in_channels (int): User feature size ``F`` (may be 0).
        num_labels (int): ``L``, labels per task (the widest task for circles).
        num_hops (int): Hops of the ego-nets.
        conv (str): Encoder type. (default: :obj:`"sage"`)
        hidden_channels (int): Embedding size. (default: :obj:`32`)
        num_layers (int): Encoder layers. (default: :obj:`2`)
        num_items (int): Size of an item table, for tasks whose context holds
            ``items``: every task user's input gets its taste (mean item embedding).
            (default: :obj:`0`, no items)
    """

    head_prefixes = ("head.",)
    task_fields = ("x", "adj", "node_mask", "hop", "labels", "label_mask",
                   "query_node_mask", "query_labels", "label_valid")

    def __init__(self, in_channels: int, num_labels: int, num_hops: int, conv: str = "sage",
                 hidden_channels: int = 32, num_layers: int = 2, num_items: int = 0,
                 **encoder_kwargs) -> None:
        super().__init__()
        self.num_hops, self.num_labels, self.num_items = num_hops, num_labels, num_items
        if num_items:
            self._init_items(num_items, hidden_channels)
            self.task_fields = (*type(self).task_fields, "item_ids", "item_adj")
        self.encoder = Encoder(conv, in_channels + num_hops + 3
                               + (hidden_channels if num_items else 0), hidden_channels,
                               num_layers, **encoder_kwargs)
        self.head = nn.Linear(hidden_channels, num_labels)

    def reset_parameters(self) -> None:
        if self.num_items:
            self._reset_items()
        self.encoder.reset_parameters()
        self.head.reset_parameters()

    def forward(self, x: Tensor, graph: Tensor, hop: Tensor, labelled: Tensor,
                mask: Tensor | None = None, sparse: bool = False,
                labels: Tensor | None = None, item_ids: Tensor | None = None,
                item_graph: Tensor | None = None, embed: bool = False,
                pair_features: Tensor | None = None, pair_scores: Tensor | None = None
                ) -> Tensor:
        r"""Label logits ``[N, L]`` of every node of one task. Dense: :obj:`graph` is
        ``adj [N, N]`` and :obj:`mask` the node mask; sparse: :obj:`graph` is an
        ``edge_index``. With :obj:`labels` (``[N, L]``, read on the :obj:`labelled`
        rows only) the logits are ProtoNet's instead of the head's (see
        :func:`label_prototype_logits`). Models with items take the task's
        :obj:`item_ids` and :obj:`item_graph` (``item_adj`` dense, local pairs sparse).
        :obj:`embed` returns the center's embedding instead. :obj:`pair_features`
        ``[N, L, P]`` and :obj:`pair_scores` ``[N, L]`` (the hybrid interest scorer,
        :class:`~socialmeta.models.HybridInterestModel`) add
        ``pair_scores + pair_gate(h_v) . pair_features[v, l]`` to every logit."""
        degree = (torch.bincount(graph[0], minlength=x.size(0)).to(x.dtype) if sparse
                  else graph.sum(-1))
        inputs = node_inputs(x, degree, hop, labelled.to(x.dtype), self.num_hops)
        if self.num_items:
            if item_ids is None or item_graph is None:
                raise ValueError("this model reads items (num_items > 0): pass item_ids "
                                 "and item_graph of a task that observes items")
            inputs = torch.cat([inputs, self.taste(item_ids, item_graph, x.size(-2), sparse)],
                               -1)
        if sparse:
            h = self.encoder.forward_sparse(inputs, graph)
        else:
            h = self.encoder.forward_dense(inputs, graph, mask)
        if embed:
            return h[..., 0, :]
        logits = self.head(h) if labels is None else label_prototype_logits(h, labels, labelled)
        if pair_features is not None:
            gate = self.pair_gate(h).unsqueeze(-2)                        # [N, 1, P]
            logits = (logits + pair_scores.to(h.dtype)
                      + (pair_features.to(h.dtype) * gate).sum(-1))
        return logits

    def center_embedding(self, call, task: dict[str, Tensor]) -> Tensor:
        """The center's embedding ``[H]`` in one dense task."""
        kwargs = {"embed": True}
        if self.num_items:
            kwargs.update(item_ids=task["item_ids"], item_graph=task["item_adj"])
        return call(task["x"], task["adj"], task["hop"], task["label_mask"],
                    task["node_mask"], **kwargs)

    def task_logits(self, call, task: dict[str, Tensor], prototype: bool = False) -> Tensor:
        """Logits ``[N, L]`` of one (dense) task; ProtoNet's when :obj:`prototype`."""
        kwargs = {"labels": task["labels"]} if prototype else {}
        if self.num_items:
            kwargs.update(item_ids=task["item_ids"], item_graph=task["item_adj"])
        return call(task["x"], task["adj"], task["hop"], task["label_mask"],
                    task["node_mask"], **kwargs)

    @staticmethod
    def _target(task, side: str) -> tuple[Tensor, Tensor]:
        valid = task["label_valid"].unsqueeze(-2)
        if side == "support":
            return task["labels"], task["label_mask"].unsqueeze(-1) & valid
        return task["query_labels"], task["query_node_mask"].unsqueeze(-1) & valid

    def task_loss(self, call, task: dict[str, Tensor], side: str, prototype: bool = False
                  ) -> Tensor:
        """Mean BCE over the support members' (or the query's) valid labels."""
        logits = self.task_logits(call, task, prototype)
        target, mask = self._target(task, side)
        return masked_bce(logits, target, mask)

    @property
    def support_channels(self) -> int:
        """Width of :meth:`support_vector` (what ``meta=metanet`` pools of the support)."""
        return self.num_labels

    @staticmethod
    def support_vector(task) -> Tensor:
        r"""The mean label vector ``[L]`` of the task's labelled members (dense task dict
        or sparse PyG task): the support's labels pooled, which the encoder's input
        does not carry (it marks who is labelled, not with what)."""
        mask = task["label_mask"].to(task["labels"].dtype)
        return (task["labels"] * mask.unsqueeze(-1)).sum(-2) / mask.sum(-1).clamp(min=1)

    def sparse_center_embedding(self, call, data) -> Tensor:
        """The center's embedding ``[H]`` from one sparse PyG task."""
        kwargs = {"embed": True}
        if self.num_items:
            kwargs.update(item_ids=data.item_ids, item_graph=data.item_edge_index)
        return call(data.x, data.edge_index, data.hop, data.label_mask, sparse=True, **kwargs)

    def sparse_task_loss(self, call, data, side: str, prototype: bool = False) -> Tensor:
        kwargs = {"labels": data.labels} if prototype else {}
        if self.num_items:
            kwargs.update(item_ids=data.item_ids, item_graph=data.item_edge_index)
        logits = call(data.x, data.edge_index, data.hop, data.label_mask, sparse=True, **kwargs)
        task = {"labels": data.labels, "label_mask": data.label_mask,
                "query_labels": data.query_labels, "query_node_mask": data.query_node_mask,
                "label_valid": data.label_valid}
        target, mask = self._target(task, side)
        return masked_bce(logits, target, mask)
