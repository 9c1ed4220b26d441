"""Feature transforms over a SocialGraph (they never mutate their input)."""
from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch_geometric.utils import degree, scatter

from socialmeta.data.graph import USER, SocialGraph


def structural_features(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""Per-node structural features of an undirected graph, ``float32 [N, 4]``:

    ``log(1 + degree)``, ``log(1 + mean neighbour degree)``,
    ``log(1 + max neighbour degree)`` and ``log(1 + number of 2-hop walks)``.

    They depend only on :obj:`edge_index` and cost ``O(E)``, so computing them on the
    *observed* graph of a cold-start protocol leaks nothing of held-out links.

    Example:
        >>> x = structural_features(graph.friend_index, graph.num_users)
    """
    src, dst = edge_index
    deg = degree(src, num_nodes)
    walks2 = scatter(deg[dst], src, 0, dim_size=num_nodes, reduce="sum")
    nbr_max = scatter(deg[dst], src, 0, dim_size=num_nodes, reduce="max")
    nbr_mean = walks2 / deg.clamp(min=1)
    return torch.stack([deg, nbr_mean, nbr_max, walks2], 1).log1p().float()


class StructuralFeatures:
    r"""Appends :func:`structural_features` of the friendship graph to ``graph["user"].x``
    (or replaces it with :obj:`replace=True`). Returns a new graph; the input is not
    modified.

    Args:
        replace (bool): Replace the profile features instead of appending.
            (default: :obj:`False`)

    Example:
        >>> observed = StructuralFeatures()(train_graph)
    """

    def __init__(self, replace: bool = False) -> None:
        self.replace = replace

    def __call__(self, graph: SocialGraph) -> SocialGraph:
        out = copy.copy(graph)
        feats = structural_features(graph.friend_index, graph.num_users)
        out[USER].x = feats if self.replace else torch.cat([graph[USER].x, feats], 1)
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(replace={self.replace})"
