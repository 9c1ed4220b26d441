r"""Personalised PageRank by local push, batched over tasks and restart probabilities.

The power walk of :class:`~socialmeta.features.FriendPairFeatures` costs ``O(E)`` per
step and column whatever the support: at 10^6 users and 4·10^7 directed edges it is
most of a batch's build. The push algorithm (Andersen, Chung and Lang, FOCS 2006)
touches only the nodes whose residual mass exceeds ``ε`` times their degree, so its
work is bounded by ``1 / (α ε)`` edge visits per column, independent of the graph's
size. It returns ``p̂`` with ``0 ≤ p(v) - p̂(v) ≤ ε d(v)`` on an undirected graph,
where ``p`` is the converged PageRank (the power walk's limit).

Here every (restart probability, task) pair is a column of one flat residual vector,
and every round pushes all of its active entries at once (a synchronous push: each
push reads its own residual only, so the invariant ``p = p̂ + PPR(r)`` holds after
each round as after each single push). The entries of a round are kept in increasing
flat order, so a column's arithmetic, and hence its result, does not depend on the
other columns: a task's feature is the same whatever batch it is built in.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from socialmeta.features.sparse import CSR

#: default ``ε`` (residual per unit of degree below which a node is not pushed)
DEFAULT_EPSILON = 1e-6


def push_pagerank(csr: CSR, degree: Tensor, restart: Tensor, alphas: Sequence[float],
                  epsilon: float = DEFAULT_EPSILON, center: Tensor | None = None
                  ) -> list[Tensor]:
    r"""Personalised PageRank ``[T, U]`` per restart probability, by local push.

    Args:
        csr: The symmetric adjacency (both directions of every friendship).
        degree: ``[U]`` float degrees of :obj:`csr`.
        restart: ``[T, U]`` restart distributions (rows sum to 1, or 0 for no support).
        alphas: Restart probabilities (one output each).
        epsilon: ``ε > 0``: a node is pushed while its residual exceeds ``ε`` times
            its degree (a node without edges: while it holds any).
        center: ``[T]`` optional node removed from each task's graph with its links
            (a training task's center): it neither receives nor sends mass, and its
            neighbours' degrees are one lower in that task.

    Mass reaching a node without edges is kept as its PageRank's restart share and
    the rest is dropped, as in the power walk.
    """
    if epsilon <= 0:
        raise ValueError(f"push PageRank needs epsilon > 0, got {epsilon}")
    num_tasks, num_users = restart.shape
    alphas_t = torch.tensor([float(a) for a in alphas], dtype=restart.dtype)
    cols = len(alphas) * num_tasks
    # column c = (alpha index) * T + task; flat entry = c * U + node
    r = restart.new_zeros(cols * num_users)
    p = restart.new_zeros(cols * num_users)
    task, node = restart.nonzero(as_tuple=True)
    start = torch.cat([(a * num_tasks + task) * num_users + node for a in range(len(alphas))])
    frontier, order = torch.sort(start)
    r[frontier] = restart[task, node].repeat(len(alphas))[order]
    own = None
    if center is not None:   # sorted keys task * U + neighbour of the task's center
        pos, nbr = csr.gather(center)
        own = torch.sort(pos * num_users + nbr).values
    while frontier.numel():
        c, v = frontier // num_users, frontier % num_users
        t = c % num_tasks
        d = degree[v]
        if own is not None and own.numel():
            key = t * num_users + v
            at = torch.searchsorted(own, key).clamp(max=own.numel() - 1)
            d = d - (own[at] == key).to(d.dtype)
        value = r[frontier]
        active = value > epsilon * d
        if not bool(active.any()):
            break
        frontier, c, v, t, d, value = (x[active] for x in (frontier, c, v, t, d, value))
        alpha = alphas_t[c // num_tasks]
        p.index_add_(0, frontier, alpha * value)
        r[frontier] = 0.0
        sends = d > 0
        frontier, c, v, t, d, value, alpha = (x[sends] for x in (frontier, c, v, t, d,
                                                                    value, alpha))
        src, w = csr.gather(v)
        if center is not None:
            keep = w != center[t[src]]
            src, w = src[keep], w[keep]
        target = c[src] * num_users + w
        r.index_add_(0, target, ((1 - alpha) * value / d)[src])
        frontier = torch.unique(target)
    return [p[a * num_tasks * num_users:(a + 1) * num_tasks * num_users].view(num_tasks, -1)
            for a in range(len(alphas))]
