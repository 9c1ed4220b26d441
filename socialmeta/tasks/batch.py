"""A batch of T ego-net tasks as a few dense, padded tensors ``[T, ...]``."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data


@dataclass
class TaskBatch:
    r"""T tasks padded to fixed caps (nodes N, items I, support S, query Q, labels L).

    Local node 0 of every task is its center user. Padding has ``*_mask == False`` and
    ids ``-1``. Targets (``support_*``/``query_*``) are *global* ids (users for friend
    tasks, items for item tasks) with their local index in the task (``-1`` when the
    target is not part of the ego-net) and a 0/1 label (positive link or negative).

    Attributes:
        kind: ``"friend"``, ``"item"`` or ``"interest"``.
        center: ``[T]`` global id of each center user.
        task_index: ``[T]`` the task's index (with seed and epoch it fixes the task).
        num_shots: ``[T]`` K, the number of positive support links (or labelled
            members for interest tasks).
        node_ids, node_mask, hop: ``[T, N]`` global user id, validity and hop
            distance from the center (0 for the center, -1 for padding).
        x: ``[T, N, F]`` user features (``F`` may be 0).
        adj: ``[T, N, N]`` 0/1 symmetric adjacency of the task's observed graph.
        item_ids, item_mask: ``[T, I]``; item_adj: ``[T, N, I]`` observed user-item
            links (item tasks only; otherwise ``I == 0``).
        support_ids, support_local, support_label, support_mask: ``[T, S]``.
        query_ids, query_local, query_label, query_mask: ``[T, Q]``.
        labels: ``[T, N, L]`` visible member labels (interest tasks; zero rows for
            hidden members); label_mask: ``[T, N]`` members whose labels are support;
            query_node_mask: ``[T, N]`` members to predict; query_labels:
            ``[T, N, L]`` their true labels; label_valid: ``[T, L]`` labels that exist
            in the task (circles differ per ego).
        pair_features: ``[T, C, P]`` parameter-free scores of every candidate (all
            users for friend tasks) towards the center over the whole observed graph
            (:mod:`socialmeta.features`), when the task config asks for them
            (``TaskConfig.pair_features``); otherwise ``[T, 0, 0]`` (the sampler's
            batches) or ``[0, 0, 0]`` (the default of a hand-made batch).
        seen_ids: ``[T, H]`` global ids (padding ``-1``) of what the center already
            has besides its support and that is neither input-capped nor a target: a
            warm user's older history under the temporal protocol. They are not
            candidates (:meth:`~socialmeta.tasks.TaskSampler.candidate_mask`).
            ``[T, 0]`` when there is none.
    """

    kind: str
    center: Tensor
    task_index: Tensor
    num_shots: Tensor
    node_ids: Tensor
    node_mask: Tensor
    hop: Tensor
    x: Tensor
    adj: Tensor
    item_ids: Tensor
    item_mask: Tensor
    item_adj: Tensor
    support_ids: Tensor
    support_local: Tensor
    support_label: Tensor
    support_mask: Tensor
    query_ids: Tensor
    query_local: Tensor
    query_label: Tensor
    query_mask: Tensor
    labels: Tensor
    label_mask: Tensor
    query_node_mask: Tensor
    query_labels: Tensor
    label_valid: Tensor
    pair_features: Tensor = field(default_factory=lambda: torch.zeros(0, 0, 0))  # [T, 0, 0]
    seen_ids: Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))

    @property
    def num_tasks(self) -> int:
        return int(self.center.numel())

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "kind"}

    def apply(self, fn) -> TaskBatch:
        """A new batch with :obj:`fn` applied to every tensor."""
        return replace(self, **{k: fn(v) for k, v in self.tensors().items()})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TaskBatch:
        """Moves every tensor to :obj:`device` (one call per tensor, no Python loop
        over tasks)."""
        return self.apply(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> TaskBatch:
        return self.apply(lambda t: t.pin_memory())

    def task(self, i: int) -> TaskBatch:
        """Task :obj:`i` alone, as a batch of one."""
        return self.apply(lambda t: t[i:i + 1])

    def to_data_list(self) -> list[Data]:
        r"""Each task as a sparse PyG :class:`Data` (padding removed), for the
        per-task reference path: ``x``, ``edge_index``, ``node_ids``, ``hop``, targets.
        """
        out = []
        for i in range(self.num_tasks):
            n = int(self.node_mask[i].sum())
            adj = self.adj[i, :n, :n]
            data = Data(x=self.x[i, :n], edge_index=adj.nonzero().t().contiguous(),
                        num_nodes=n)
            data.node_ids, data.hop = self.node_ids[i, :n], self.hop[i, :n]
            data.center = self.center[i:i + 1]
            for side in ("support", "query"):
                m = getattr(self, f"{side}_mask")[i]
                for name in ("ids", "local", "label"):
                    setattr(data, f"{side}_{name}", getattr(self, f"{side}_{name}")[i][m])
            if self.item_ids.size(1):
                k = int(self.item_mask[i].sum())
                data.item_ids = self.item_ids[i, :k]
                data.item_edge_index = self.item_adj[i, :n, :k].nonzero().t().contiguous()
            if self.labels.size(2):
                data.labels, data.label_mask = self.labels[i, :n], self.label_mask[i, :n]
                data.query_node_mask = self.query_node_mask[i, :n]
                data.query_labels = self.query_labels[i, :n]
                data.label_valid = self.label_valid[i]
            if self.pair_features.numel():
                data.pair_features = self.pair_features[i]
            if self.seen_ids.numel():
                data.seen_ids = self.seen_ids[i][self.seen_ids[i] >= 0]
            out.append(data)
        return out

    def to_pyg_batch(self) -> Batch:
        """The tasks as one PyG :class:`Batch` of disjoint sparse subgraphs."""
        return Batch.from_data_list(self.to_data_list())

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={list(v.shape)}" for k, v in self.tensors().items()
                           if k in ("x", "adj", "item_adj", "support_ids", "query_ids",
                                    "labels"))
        return f"{self.__class__.__name__}(kind={self.kind!r}, T={self.num_tasks}, {shapes})"


def dense(task: Tensor, pos: Tensor, values: Tensor, num_tasks: int, cap: int,
          fill: float | int | bool = 0) -> Tensor:
    """Scatters flat ``(task, pos) -> values`` into a ``[T, cap, ...]`` tensor."""
    out = torch.full((num_tasks, cap, *values.shape[1:]), fill, dtype=values.dtype)
    keep = pos < cap
    out[task[keep], pos[keep]] = values[keep]
    return out
