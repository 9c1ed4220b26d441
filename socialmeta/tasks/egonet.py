"""Vectorised ego-network extraction for many centers at once.

Everything here works on *flat* lists of ``(task, node)`` pairs: no Python loop over
nodes or edges, only over hops.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from socialmeta.features.sparse import CSR
from socialmeta.tasks.random import priority


def rank_in_group(group: Tensor, priority: Tensor) -> Tensor:
    r"""Rank of every element inside its :obj:`group`, ordered by :obj:`priority`
    (ascending; ties by position)."""
    if group.numel() == 0:
        return group.clone()
    order = torch.argsort(priority, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    g = group[order]
    first = torch.ones_like(g, dtype=torch.bool)
    first[1:] = g[1:] != g[:-1]
    start = torch.cummax(torch.where(first, torch.arange(g.numel()), 0), 0).values
    rank = torch.empty_like(group)
    rank[order] = torch.arange(g.numel()) - start
    return rank


def member_index(sorted_keys: Tensor, keys: Tensor) -> Tensor:
    """Position of each of :obj:`keys` in :obj:`sorted_keys`, or -1 if absent."""
    if sorted_keys.numel() == 0:
        return torch.full_like(keys, -1)
    pos = torch.searchsorted(sorted_keys, keys).clamp(max=sorted_keys.numel() - 1)
    return torch.where(sorted_keys[pos] == keys, pos, torch.full_like(pos, -1))


@dataclass
class EgoNets:
    r"""Flat ego-net nodes of many tasks.

    ``task[i]``, ``node[i]``, ``hop[i]``, ``local[i]``: node ``node[i]`` (global id) is
    local node ``local[i]`` of task ``task[i]`` at hop distance ``hop[i]``. Local 0 is the
    center. Sorted by (task, local).
    """

    task: Tensor
    node: Tensor
    hop: Tensor
    local: Tensor
    num_tasks: int
    num_nodes: int  # of the global graph

    def keys(self) -> Tensor:
        return self.task * self.num_nodes + self.node


def sample_egonets(
    background: CSR,
    centers: Tensor,
    task_keys: Tensor,
    first_task: Tensor,
    first_node: Tensor,
    first_priority: Tensor,
    fanouts: Sequence[int],
    node_cap: int,
    second: tuple[Tensor, Tensor, Tensor] | None = None,
) -> EgoNets:
    r"""Ego-nets around :obj:`centers` with per-hop fan-out caps.

    Hop 1 is given explicitly (the center's *visible* friends, ``first_task`` /
    ``first_node``, kept in order of :obj:`first_priority`, capped at ``fanouts[0]``),
    because the center's own edges differ per task (support only, or all). Later hops
    expand through :obj:`background`, each node keeping at most ``fanouts[h]``
    neighbours chosen by a hash of (task key, node, neighbour). A fan-out of ``-1``
    keeps all. The center is never re-entered. At most :obj:`node_cap` nodes per task
    are kept, by hop and then by priority.

    :obj:`second` (``(task, node, priority)``) adds nodes at hop 2 besides those
    reached through hop 1, e.g. users two steps away over an item; a node reached both
    ways keeps its :obj:`second` priority, and hop 3 expands from all hop-2 nodes.
    """
    num_tasks, n = centers.numel(), background.num_src
    tasks = torch.arange(num_tasks)
    if fanouts and fanouts[0] >= 0:
        keep = rank_in_group(first_task, first_priority) < fanouts[0]
        first_task, first_node, first_priority = (
            first_task[keep], first_node[keep], first_priority[keep])
    hops_task, hops_node = [tasks, first_task], [centers, first_node]
    hops_hop = [torch.zeros(num_tasks, dtype=torch.long),
                torch.ones(first_task.numel(), dtype=torch.long)]
    hops_prio = [torch.full((num_tasks,), -1), first_priority]
    seen = torch.unique(torch.cat([tasks * n + centers, first_task * n + first_node]))
    front_task, front_node = first_task, first_node
    for hop, fanout in enumerate(fanouts[1:], start=2):
        pos, nbr = background.gather(front_node)
        t = front_task[pos]
        prio = priority(task_keys[t], front_node[pos], nbr)
        if fanout >= 0:
            keep = rank_in_group(t * n + front_node[pos], prio) < fanout
            t, nbr, prio = t[keep], nbr[keep], prio[keep]
        if hop == 2 and second is not None:
            t, nbr, prio = (torch.cat([a, b]) for a, b in zip(second, (t, nbr, prio)))
        key = t * n + nbr
        new = member_index(seen, key) < 0
        t, nbr, prio, key = t[new], nbr[new], prio[new], key[new]
        key, first = _unique_first(key)
        t, nbr, prio = t[first], nbr[first], prio[first]
        hops_task.append(t)
        hops_node.append(nbr)
        hops_hop.append(torch.full_like(t, hop))
        hops_prio.append(prio)
        seen = torch.unique(torch.cat([seen, key]))
        front_task, front_node = t, nbr
    task = torch.cat(hops_task)
    node, hop_t, prio = torch.cat(hops_node), torch.cat(hops_hop), torch.cat(hops_prio)
    # order inside a task: by hop, then priority; keep the first node_cap
    rank = rank_in_group(task, _lex(hop_t, prio))
    keep = rank < node_cap
    task, node, hop_t, local = task[keep], node[keep], hop_t[keep], rank[keep]
    order = torch.argsort(task * node_cap + local)
    return EgoNets(task[order], node[order], hop_t[order], local[order], num_tasks, n)


def _lex(major: Tensor, minor: Tensor) -> Tensor:
    """A float key ordering by :obj:`major`, then :obj:`minor` (ranks, exact)."""
    minor_rank = torch.empty_like(minor)
    minor_rank[torch.argsort(minor, stable=True)] = torch.arange(minor.numel())
    return major * (minor.numel() + 1) + minor_rank


def _unique_first(key: Tensor) -> tuple[Tensor, Tensor]:
    """Sorted unique keys and the index of the first occurrence of each."""
    uniq, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((uniq.numel(),), key.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(key.numel()), reduce="amin")
    return uniq, first


def induced_edges(
    egonets: EgoNets,
    background: CSR,
    center_edges_task: Tensor,
    center_edges_node: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Edges of the induced subgraph of every ego-net, as ``(task, local_i, local_j)``.

    Background edges incident to the center are dropped; the center's *visible*
    edges (:obj:`center_edges_task`, :obj:`center_edges_node`) are added instead. Both
    directions are returned.
    """
    n = egonets.num_nodes
    keys = egonets.keys()
    order = torch.argsort(keys)
    sorted_keys = keys[order]
    pos, nbr = background.gather(egonets.node)
    t = egonets.task[pos]
    j = member_index(sorted_keys, t * n + nbr)
    ok = (j >= 0) & (egonets.local[pos] != 0)
    j_local = egonets.local[order][j.clamp(min=0)]
    ok &= j_local != 0
    src_t, src_l, dst_l = t[ok], egonets.local[pos][ok], j_local[ok]
    cj = member_index(sorted_keys, center_edges_task * n + center_edges_node)
    present = cj >= 0
    c_t, c_l = center_edges_task[present], egonets.local[order][cj[present]]
    zeros = torch.zeros_like(c_l)
    return (torch.cat([src_t, c_t, c_t]), torch.cat([src_l, zeros, c_l]),
            torch.cat([dst_l, c_l, zeros]))
