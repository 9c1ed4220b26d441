r"""LightGCN (He et al., 2020) with fold-in of new users, for friend and item tasks.

Trained with BPR on the observed graph (training users' friendships, or the
user-item bipartite graph of training users). A new user is not re-trained: it is
*folded in* as the mean of its support neighbours' final embeddings (its support
friends, or its support items), i.e. one propagation step from its links, and scores
every candidate by dot product.
"""
from __future__ import annotations

import torch
from torch import Tensor

from socialmeta import progress
from socialmeta.baselines.base import Baseline, Sparse, interaction_index, support_matrix
from socialmeta.data import FRIEND
from socialmeta.tasks import TaskBatch, TaskSampler


def normalized_adjacency(index: Tensor, num_nodes: int) -> Sparse:
    r"""``D^{-1/2} A D^{-1/2}`` of a symmetric edge list (both directions given)."""
    deg = torch.bincount(index[0], minlength=num_nodes).float().clamp(min=1)
    values = (deg[index[0]] * deg[index[1]]).rsqrt()
    return Sparse(index, (num_nodes, num_nodes), values)


def propagate(adj: Sparse, emb: Tensor, num_layers: int) -> Tensor:
    r"""LightGCN's final embeddings ``mean_{l=0..L} Â^l E`` (rows of :obj:`emb`)."""
    out, h = emb, emb
    for _ in range(num_layers):
        h = adj.rmul(h.t()).t()   # Â h (Â symmetric)
        out = out + h
    return out / (num_layers + 1)


class LightGCN(Baseline):
    r"""LightGCN + fold-in. ``layers`` and the L2 weight are tuned on validation users;
    the embedding size, epochs and learning rate are fixed."""

    name = "lightgcn"
    kinds = ("friend", "item", "new_item")
    grid = {"layers": (2, 1, 3), "l2": (1e-4,), "dim": (64,), "epochs": (30,),
            "lr": (0.01,), "batch": (4096,)}

    def _fit(self, sampler: TaskSampler) -> None:
        kind = sampler.config.kind
        u_count = sampler.num_users
        if kind != "item":  # friend, and new-item tasks on the adoption graph
            edges = sampler.observed[FRIEND].edge_index
            n = u_count
        else:
            u, i = interaction_index(sampler)
            n = u_count + sampler.num_items
            edges = torch.stack([torch.cat([u, i + u_count]), torch.cat([i + u_count, u])])
        self.adj = normalized_adjacency(edges, n)
        gen = torch.Generator().manual_seed(sampler.config.seed)
        emb = (torch.randn(n, int(self.hyper["dim"]), generator=gen) * 0.1).requires_grad_()
        opt = torch.optim.Adam([emb], lr=float(self.hyper["lr"]))
        src, dst = edges if kind != "item" else (edges[0, :edges.size(1) // 2],
                                                   edges[1, :edges.size(1) // 2])
        targets = (torch.arange(u_count) if kind != "item"
                   else torch.arange(u_count, n))        # what negatives are drawn from
        layers, l2, batch = int(self.hyper["layers"]), float(self.hyper["l2"]), int(
            self.hyper["batch"])
        epochs = int(self.hyper["epochs"])
        for epoch in range(epochs):
            progress.tick("  lightgcn: epoch %d/%d", epoch + 1, epochs)
            order = torch.randperm(src.numel(), generator=gen)
            for start in range(0, order.numel(), batch):
                idx = order[start:start + batch]
                neg = targets[torch.randint(targets.numel(), (idx.numel(),), generator=gen)]
                final = propagate(self.adj, emb, layers)
                a, p, q = final[src[idx]], final[dst[idx]], final[neg]
                bpr = -torch.nn.functional.logsigmoid((a * p).sum(1) - (a * q).sum(1)).mean()
                reg = l2 * (emb[src[idx]].pow(2).sum() + emb[dst[idx]].pow(2).sum()
                            + emb[neg].pow(2).sum()) / idx.numel()
                opt.zero_grad()
                (bpr + reg).backward()
                opt.step()
        with torch.no_grad():
            final = propagate(self.adj, emb, layers)
        self.users = final[:u_count]
        self.candidates = final[:u_count] if kind != "item" else final[u_count:]

    def fold_in(self, batch: TaskBatch) -> Tensor:
        """``[T, dim]`` new users' embeddings: the mean of their support neighbours'."""
        s = support_matrix(batch, self.candidates.size(0))
        return s @ self.candidates / s.sum(1, keepdim=True).clamp(min=1)

    def scores(self, batch: TaskBatch) -> Tensor:
        return self.fold_in(batch) @ self.candidates.t()
