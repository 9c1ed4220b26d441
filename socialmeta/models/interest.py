"""Multi-label interest prediction inside an ego-net task."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from socialmeta.models.encoders import Encoder
from socialmeta.models.link import masked_bce, node_inputs


class InterestModel(nn.Module):
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
    """

    head_prefixes = ("head.",)
    task_fields = ("x", "adj", "node_mask", "hop", "labels", "label_mask",
                   "query_node_mask", "query_labels", "label_valid")

    def __init__(self, in_channels: int, num_labels: int, num_hops: int, conv: str = "sage",
                 hidden_channels: int = 32, num_layers: int = 2, **encoder_kwargs) -> None:
        super().__init__()
        self.num_hops, self.num_labels = num_hops, num_labels
        self.encoder = Encoder(conv, in_channels + num_hops + 3, hidden_channels,
                               num_layers, **encoder_kwargs)
        self.head = nn.Linear(hidden_channels, num_labels)

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        self.head.reset_parameters()

    def forward(self, x: Tensor, graph: Tensor, hop: Tensor, labelled: Tensor,
                mask: Tensor | None = None, sparse: bool = False) -> Tensor:
        r"""Label logits ``[N, L]`` of every node of one task. Dense: :obj:`graph` is
        ``adj [N, N]`` and :obj:`mask` the node mask; sparse: :obj:`graph` is an
        ``edge_index``."""
        if sparse:
            degree = torch.bincount(graph[0], minlength=x.size(0)).to(x.dtype)
            inputs = node_inputs(x, degree, hop, labelled.to(x.dtype), self.num_hops)
            return self.head(self.encoder.forward_sparse(inputs, graph))
        inputs = node_inputs(x, graph.sum(-1), hop, labelled.to(x.dtype), self.num_hops)
        return self.head(self.encoder.forward_dense(inputs, graph, mask))

    @staticmethod
    def _target(task, side: str) -> tuple[Tensor, Tensor]:
        valid = task["label_valid"].unsqueeze(-2)
        if side == "support":
            return task["labels"], task["label_mask"].unsqueeze(-1) & valid
        return task["query_labels"], task["query_node_mask"].unsqueeze(-1) & valid

    def task_loss(self, call, task: dict[str, Tensor], side: str, prototype: bool = False
                  ) -> Tensor:
        """Mean BCE over the support members' (or the query's) valid labels."""
        if prototype:
            raise ValueError("protonet is implemented for friend tasks only")
        logits = call(task["x"], task["adj"], task["hop"], task["label_mask"],
                      task["node_mask"])
        target, mask = self._target(task, side)
        return masked_bce(logits, target, mask)

    def sparse_task_loss(self, call, data, side: str, prototype: bool = False) -> Tensor:
        if prototype:
            raise ValueError("protonet is implemented for friend tasks only")
        logits = call(data.x, data.edge_index, data.hop, data.label_mask, sparse=True)
        task = {"labels": data.labels, "label_mask": data.label_mask,
                "query_labels": data.query_labels, "query_node_mask": data.query_node_mask,
                "label_valid": data.label_valid}
        target, mask = self._target(task, side)
        return masked_bce(logits, target, mask)
