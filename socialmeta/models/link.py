"""Link prediction inside an ego-net task (friend recommendation)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from socialmeta.models.encoders import Encoder
from socialmeta.models.ops import matvec
from socialmeta.models.taste import ItemTasteMixin, center_item_overlap

#: largest (targets x nodes) one-hot that target gathers build instead of indexing
_ONEHOT_LIMIT = 1 << 16


def _onehot(index: Tensor, size: int, dtype: torch.dtype) -> Tensor:
    """One-hot rows, all-zero for negative (padding) indices; vmap-safe."""
    return (index.unsqueeze(-1) == torch.arange(size, device=index.device)).to(dtype)


def node_inputs(x: Tensor, degree: Tensor, hop: Tensor, is_support: Tensor,
                num_hops: int) -> Tensor:
    r"""Labeling-trick node inputs: features, one-hot hop distance from the center
    (``0..num_hops``; padding all-zero), is-a-support-friend flag, ``log(1 + degree)``
    in the task graph. Works on one task ``[N, ...]`` or a batch ``[T, N, ...]``."""
    hop_onehot = _onehot(hop, num_hops + 1, x.dtype)
    return torch.cat([x, hop_onehot, is_support.unsqueeze(-1).to(x.dtype),
                      degree.log1p().unsqueeze(-1).to(x.dtype)], dim=-1)


def _center_cosine(rows: Tensor, center: Tensor) -> Tensor:
    """Cosine of every row ``[..., N, D]`` with the center's ``[..., 1, D]``; zero where
    either is zero."""
    dots = (rows * center).sum(-1)
    norms = rows.norm(dim=-1) * center.norm(dim=-1)
    return torch.where(norms > 0, dots / norms.clamp(min=1e-12), torch.zeros_like(dots))


def heuristic_inputs(x: Tensor, degree: Tensor, is_support: Tensor,
                     neighbor_sum: Callable[[Tensor], Tensor],
                     center_items: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
    r"""Parameter-free link heuristics of every task node towards the new user, as
    input channels ``[..., N, C]``: ``log(1 + common neighbours)`` and Adamic-Adar
    through the visible support friends (``∑ 1/log(1 + deg)`` over the support friends
    adjacent to the node, degrees in the task graph), the cosine of the node's features
    with the center's (zero while the center's row is hidden, omitted when ``F = 0``)
    and, given :obj:`center_items` (the node's item overlap with the center and both
    item counts), the cosine of their item sets.

    :obj:`neighbor_sum` maps a node vector ``[..., N]`` to the sum over each node's
    neighbours (``adj @ v`` dense, a scatter over edges sparse), so the dense and the
    sparse path give the same numbers."""
    aa_weight = is_support / degree.clamp(min=1).log1p()
    out = [neighbor_sum(is_support).log1p(), neighbor_sum(aa_weight)]
    if x.size(-1):
        out.append(_center_cosine(x, x[..., :1, :]))
    if center_items is not None:
        overlap, count, center_count = center_items
        norms = (count * center_count).sqrt()
        out.append(torch.where(norms > 0, overlap / norms.clamp(min=1e-12),
                               torch.zeros_like(overlap)))
    return torch.stack(out, -1).to(x.dtype)


class LinkModel(ItemTasteMixin, nn.Module):
    r"""Scores ``(center, target)`` pairs of a friend task.

    The encoder embeds the ego-net (labeling-trick inputs, see :func:`node_inputs`);
    a target outside the ego-net gets a learned ``far`` embedding. The head scores
    ``(W h_center) · h_target + b``. All of it is written for *one* task so that a
    learner can ``vmap`` it over a batch; :meth:`forward` computes the same scores from
    a dense and from a sparse task graph (``sparse=True``), or ProtoNet scores
    (``mode="prototype"``).

    Args:
        in_channels (int): User feature size ``F`` (may be 0).
        num_hops (int): Hops of the ego-nets.
        conv (str): Encoder type. (default: :obj:`"sage"`)
        hidden_channels (int): Embedding size. (default: :obj:`32`)
        num_layers (int): Encoder layers. (default: :obj:`2`)
        head (str): ``"bilinear"`` (``(W h_c) · h_t + b``), ``"dot"`` (``s · h_c · h_t``
            with a learned scale ``s``) or ``"mlp"`` (an MLP over ``[h_c, h_t, h_c ∘ h_t]``).
            (default: :obj:`"bilinear"`)
        loss (str): ``"bce"`` on the task's sampled positive/negative targets, or
            ``"softmax"``: a list loss over every user of the ego-net plus one slot for
            all users outside it (the ``far`` score), the training-time image of
            full-list ranking (DESIGN §10). (default: :obj:`"bce"`)
        num_users (int, optional): Users in the graph. With the softmax loss the
            outside slot scores ``far + log(num_users - N)``, i.e. ``far`` is the score
            of *each* user outside the ego-net, as in evaluation. (default: ``None``:
            the slot scores ``far``)
        num_items (int): Size of an item table; with it every task user's input gets
            its taste (mean embedding of its observed items, see
            :class:`~socialmeta.models.item.ItemTasteMixin`), for friend tasks whose
            context holds ``items``. (default: :obj:`0`, no items)
        heuristics (bool): Add parameter-free link heuristics towards the new user to
            every node's input (common neighbours and Adamic-Adar through the support,
            feature and item-set cosine with the center; see :func:`heuristic_inputs`).
            (default: :obj:`False`)
    """

    HEADS = ("bilinear", "dot", "mlp")
    LOSSES = ("bce", "softmax")

    def __init__(self, in_channels: int, num_hops: int, conv: str = "sage",
                 hidden_channels: int = 32, num_layers: int = 2, head: str = "bilinear",
                 loss: str = "bce", num_users: int | None = None, num_items: int = 0,
                 heuristics: bool = False, **encoder_kwargs) -> None:
        super().__init__()
        if head not in self.HEADS:
            raise ValueError(f"unknown link head {head!r}; choose one of {list(self.HEADS)}")
        if loss not in self.LOSSES:
            raise ValueError(f"unknown link loss {loss!r}; choose one of {list(self.LOSSES)}")
        self.num_hops, self.head_name, self.loss = num_hops, head, loss
        self.num_users, self.num_items = num_users, num_items
        if num_items:
            self._init_items(num_items, hidden_channels)
            self.task_fields = (*type(self).task_fields, "item_ids", "item_adj")
        taste = hidden_channels if num_items else 0
        #: width of the heuristic input channels (zero without ``heuristics``)
        self.heuristic_channels = (2 + (in_channels > 0) + (num_items > 0)) if heuristics else 0
        self.encoder = Encoder(conv, in_channels + num_hops + 3 + taste + self.heuristic_channels,
                               hidden_channels, num_layers, **encoder_kwargs)
        self.far = nn.Parameter(torch.zeros(hidden_channels))
        if head == "bilinear":
            self.head = nn.Linear(hidden_channels, hidden_channels)
        elif head == "dot":
            self.head = _Scale()
        else:
            self.head = nn.Sequential(nn.Linear(3 * hidden_channels, hidden_channels),
                                      nn.ReLU(), nn.Linear(hidden_channels, 1))

    #: names of the parameters that ANIL adapts
    head_prefixes = ("head.",)
    #: the TaskBatch fields one task needs
    task_fields = ("x", "adj", "node_mask", "hop", "support_local", "support_label",
                   "support_mask", "query_local", "query_label", "query_mask")

    def task_loss(self, call, task: dict[str, Tensor], side: str, prototype: bool = False
                  ) -> Tensor:
        r"""Loss of one dense task's :obj:`side` (``"support"``/``"query"``) targets;
        :obj:`call` is the model's forward (e.g. through ``functional_call``)."""
        if self.loss == "softmax":
            n = task["node_mask"].size(-1)
            local = torch.cat([torch.arange(n, device=task["hop"].device),
                               torch.full((1,), -1, device=task["hop"].device)])
            scores = self._outside_offset(self.score_targets(call, task, local, prototype),
                                          task["node_mask"].sum(-1))
            return list_loss(scores, task["node_mask"], task["support_local"],
                             task["support_label"] * task["support_mask"],
                             task[f"{side}_local"], task[f"{side}_label"] * task[f"{side}_mask"],
                             side)
        scores = self.score_targets(call, task, task[f"{side}_local"], prototype)
        return masked_bce(scores, task[f"{side}_label"], task[f"{side}_mask"])

    def score_targets(self, call, task: dict[str, Tensor], target_local: Tensor,
                      prototype: bool = False) -> Tensor:
        """Scores of arbitrary targets (local indices, ``-1`` outside) of one task."""
        kwargs = {"mode": "prototype", "support_mask": task["support_mask"]} if prototype else {}
        if self.num_items:
            kwargs.update(item_ids=task["item_ids"], item_graph=task["item_adj"])
        return call(task["x"], task["adj"], task["node_mask"], task["hop"],
                    task["support_local"], task["support_label"], target_local, **kwargs)

    def center_embedding(self, call, task: dict[str, Tensor]) -> Tensor:
        """The center's embedding ``[H]`` in one dense task (what adapted export writes)."""
        kwargs = {"mode": "embed"}
        if self.num_items:
            kwargs.update(item_ids=task["item_ids"], item_graph=task["item_adj"])
        return call(task["x"], task["adj"], task["node_mask"], task["hop"],
                    task["support_local"], task["support_label"], task["support_local"],
                    **kwargs)

    def sparse_center_embedding(self, call, data) -> Tensor:
        """The center's embedding ``[H]`` from one sparse PyG task."""
        kwargs = {"sparse": True, "mode": "embed"}
        if self.num_items:
            kwargs.update(item_ids=data.item_ids, item_graph=data.item_edge_index)
        return call(data.x, data.edge_index, data.hop, data.support_local, data.support_label,
                    data.support_local, **kwargs)

    def sparse_task_loss(self, call, data, side: str, prototype: bool = False) -> Tensor:
        """The same loss from one sparse PyG task (:meth:`TaskBatch.to_data_list`)."""
        kwargs = {"sparse": True, **({"mode": "prototype"} if prototype else {})}
        if self.num_items:
            kwargs.update(item_ids=data.item_ids, item_graph=data.item_edge_index)
        label = getattr(data, f"{side}_label")
        if self.loss == "softmax":
            n = data.x.size(0)
            local = torch.cat([torch.arange(n), torch.full((1,), -1)])
            scores = self._outside_offset(call(data.x, data.edge_index, data.hop,
                                               data.support_local, data.support_label, local,
                                               **kwargs), torch.tensor(n))
            return list_loss(scores, torch.ones(n, dtype=torch.bool), data.support_local,
                             data.support_label, getattr(data, f"{side}_local"), label, side)
        scores = call(data.x, data.edge_index, data.hop, data.support_local,
                      data.support_label, getattr(data, f"{side}_local"), **kwargs)
        return masked_bce(scores, label, torch.ones_like(label, dtype=torch.bool))

    def _outside_offset(self, scores: Tensor, num_nodes: Tensor) -> Tensor:
        """Adds ``log(num_users - num_nodes)`` to the last (outside) slot."""
        if self.num_users is None:
            return scores
        outside = (self.num_users - num_nodes).clamp(min=1).to(scores.dtype).log()
        offset = torch.zeros_like(scores)
        offset[..., -1] = 1.0
        return scores + offset * outside

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        if self.num_items:
            self._reset_items()
        for module in self.head.modules():
            if hasattr(module, "reset_parameters") and module is not self:
                module.reset_parameters()
        nn.init.zeros_(self.far)

    def _targets(self, h: Tensor, target_local: Tensor) -> Tensor:
        """Embeddings of targets by local index; ``far`` for targets outside."""
        present = (target_local >= 0).unsqueeze(-1).to(h.dtype)
        if target_local.size(-1) * h.size(-2) <= _ONEHOT_LIMIT:
            # few targets (training tasks): a one-hot matmul is faster under vmap + grad
            rows = _onehot(target_local, h.size(-2), h.dtype) @ h
        else:  # every user of the graph (evaluation): gather, memory O(targets)
            rows = h.index_select(-2, target_local.clamp(min=0))
        return rows * present + self.far * (1 - present)

    def _pair_scores(self, h: Tensor, target_local: Tensor) -> Tensor:
        h_t = self._targets(h, target_local)
        h_c = h[..., 0, :].unsqueeze(-2)
        if self.head_name == "bilinear":
            return (self.head(h_c) * h_t).sum(-1)
        if self.head_name == "dot":
            return self.head((h_c * h_t).sum(-1))
        h_c = h_c.expand_as(h_t)
        return self.head(torch.cat([h_c, h_t, h_c * h_t], -1)).squeeze(-1)

    def _prototype(self, h: Tensor, support_local: Tensor, support_label: Tensor,
                   support_mask: Tensor, target_local: Tensor) -> Tensor:
        """ProtoNet logits: ``-|z - c_friend|^2 + |z - c_other|^2`` where the prototypes
        are the mean support embeddings of each class."""
        z_support = self._targets(h, support_local)
        z = self._targets(h, target_local)
        logits = torch.zeros(z.shape[:-1], dtype=h.dtype, device=h.device)
        for label, sign in ((1.0, -1.0), (0.0, 1.0)):
            w = (support_mask & (support_label == label)).to(h.dtype)
            proto = (w.unsqueeze(-1) * z_support).sum(-2) / w.sum(-1, keepdim=True).clamp(min=1)
            logits = logits + sign * (z - proto.unsqueeze(-2)).pow(2).sum(-1)
        return logits

    def forward(self, *args: Tensor, sparse: bool = False, mode: str = "pair",
                support_mask: Tensor | None = None, item_ids: Tensor | None = None,
                item_graph: Tensor | None = None) -> Tensor:
        r"""Scores of the targets of one task.

        Dense: ``(x, adj, mask, hop, support_local, support_label, target_local)``;
        sparse (:obj:`sparse=True`): ``(x, edge_index, hop, support_local,
        support_label, target_local)``. :obj:`mode` is ``"pair"`` (the link head) or
        ``"prototype"`` (ProtoNet; :obj:`support_mask` marks valid support targets);
        ``"embed"`` returns the center's embedding instead of scores. Models with items take the task's :obj:`item_ids` and :obj:`item_graph`
        (``item_adj`` dense, ``(user, item)`` local pairs sparse).
        """
        if mode not in ("pair", "prototype", "embed"):
            raise ValueError(f"unknown mode {mode!r}; choose one of ['embed', 'pair', "
                             "'prototype']")
        items = (item_ids, item_graph)
        if sparse:
            x, edge_index, hop, support_local, support_label, target_local = args
            h = self.embed_sparse(x, edge_index, hop, support_local, support_label, *items)
        else:
            x, adj, mask, hop, support_local, support_label, target_local = args
            h = self.embed_dense(x, adj, mask, hop, support_local, support_label, *items)
        if mode == "embed":
            return h[..., 0, :]
        if mode == "pair":
            return self._pair_scores(h, target_local)
        if support_mask is None:
            support_mask = torch.ones_like(support_local, dtype=torch.bool)
        return self._prototype(h, support_local, support_label, support_mask, target_local)

    def _with_taste(self, inputs: Tensor, item_ids: Tensor | None, item_graph: Tensor | None,
                    sparse: bool) -> Tensor:
        if not self.num_items:
            return inputs
        if item_ids is None or item_graph is None:
            raise ValueError("this model reads items (num_items > 0): pass item_ids and "
                             "item_graph of a task that observes items")
        return torch.cat([inputs, self.taste(item_ids, item_graph, inputs.size(-2), sparse)],
                         -1)

    def embed_dense(self, x: Tensor, adj: Tensor, mask: Tensor, hop: Tensor,
                    support_local: Tensor, support_label: Tensor,
                    item_ids: Tensor | None = None, item_adj: Tensor | None = None) -> Tensor:
        """Node embeddings of one padded task (``x [N, F]``, ``adj [N, N]``, ...)."""
        positive = (support_label > 0) & (support_local >= 0)
        is_support = torch.zeros_like(hop, dtype=x.dtype).scatter_add(
            -1, support_local.clamp(min=0), positive.to(x.dtype)).clamp(max=1)
        degree = adj.sum(-1)
        inputs = node_inputs(x, degree, hop, is_support, self.num_hops)
        inputs = self._with_taste(inputs, item_ids, item_adj, sparse=False)
        if self.heuristic_channels:
            items = None
            if self.num_items:
                items = center_item_overlap(item_adj, x.size(-2), item_ids.size(-1), False,
                                            x.dtype)
            inputs = torch.cat([inputs, heuristic_inputs(
                x, degree, is_support,
                lambda v: matvec(adj, v), items)], -1)
        return self.encoder.forward_dense(inputs, adj, mask)

    def embed_sparse(self, x: Tensor, edge_index: Tensor, hop: Tensor,
                     support_local: Tensor, support_label: Tensor,
                     item_ids: Tensor | None = None, item_pairs: Tensor | None = None
                     ) -> Tensor:
        """The same node embeddings from a sparse task graph (PyG message passing)."""
        n = x.size(0)
        is_support = torch.zeros(n, dtype=x.dtype)
        is_support[support_local[(support_label > 0) & (support_local >= 0)]] = 1.0
        degree = torch.bincount(edge_index[0], minlength=n).to(x.dtype)
        inputs = node_inputs(x, degree, hop, is_support, self.num_hops)
        inputs = self._with_taste(inputs, item_ids, item_pairs, sparse=True)
        if self.heuristic_channels:
            items = None
            if self.num_items:
                items = center_item_overlap(item_pairs, n, item_ids.size(-1), True, x.dtype)
            row, col = edge_index
            inputs = torch.cat([inputs, heuristic_inputs(
                x, degree, is_support,
                lambda v: torch.zeros(n, dtype=x.dtype).index_add(0, row, v[col]), items)],
                -1)
        return self.encoder.forward_sparse(inputs, edge_index)


class _Scale(nn.Module):
    """A learned scalar scale (the "head" of the dot-product link head)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x


def list_loss(scores: Tensor, node_mask: Tensor, support_local: Tensor, support_positive: Tensor,
              target_local: Tensor, target_positive: Tensor, side: str) -> Tensor:
    r"""Softmax list loss of one task: ``-mean_p log softmax(scores)[p]`` over the
    positive targets ``p``, where the softmax runs over every ego-net user except the
    center (and, for the query side, except the positive support friends, which are
    not candidates at test time) plus one last slot that stands for all users outside
    the ego-net (a positive outside the ego-net counts as that slot).

    Args:
        scores: ``[N + 1]`` scores of local nodes ``0..N-1`` and of the outside slot.
        node_mask: ``[N]`` valid nodes.
        support_positive, target_positive: 0/1 weights of the positive targets
            (label times validity).
    """
    n = node_mask.size(-1)
    positions = torch.arange(n + 1, device=scores.device)
    candidate = torch.cat([node_mask, node_mask.new_ones(1)]) & (positions != 0)
    if side == "query":
        support_slots = torch.where(support_local >= 0, support_local, n)
        is_support = (_onehot(support_slots, n + 1, scores.dtype)
                      * support_positive.unsqueeze(-1)).sum(-2) > 0
        candidate = candidate & ~(is_support & (positions < n))
    log_z = torch.logsumexp(scores.masked_fill(~candidate, float("-inf")), -1)
    slots = torch.where(target_local >= 0, target_local, n)
    picked = matvec(_onehot(slots, n + 1, scores.dtype), scores)
    w = target_positive.to(scores.dtype)
    return ((log_z - picked) * w).sum() / w.sum().clamp(min=1)


def masked_bce(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Mean binary cross-entropy over the valid targets."""
    loss = F.binary_cross_entropy_with_logits(scores, labels, reduction="none")
    m = mask.to(scores.dtype)
    return (loss * m).sum() / m.sum().clamp(min=1)
