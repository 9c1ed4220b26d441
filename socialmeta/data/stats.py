"""Summary statistics of a SocialGraph (``socialmeta-data info``)."""
from __future__ import annotations

from typing import Any

import torch
from torch_geometric.utils import degree

from socialmeta.data.graph import CIRCLE, INTERACTS, MEMBER_OF, USER, SocialGraph

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def _quantiles(values: torch.Tensor) -> dict[str, float]:
    q = torch.quantile(values.double(), torch.tensor(QUANTILES, dtype=torch.double))
    return {f"q{int(p * 100)}": round(float(v), 3) for p, v in zip(QUANTILES, q)}


def _top(counts: torch.Tensor, names: list[str], k: int) -> dict[str, int]:
    order = counts.argsort(descending=True, stable=True)[:k]
    return {names[int(i)]: int(counts[i]) for i in order}


def graph_info(graph: SocialGraph, top_k: int = 10) -> dict[str, Any]:
    r"""Counts, degree quantiles, isolated users and label frequencies of a graph.

    Returns a JSON-serialisable dict; ``socialmeta-data info`` prints it.
    """
    deg = degree(graph.friend_index[0], graph.num_users)
    info: dict[str, Any] = {
        "name": graph.name,
        "relations": graph.relations,
        "users": graph.num_users,
        "friendships": graph.num_friendships,
        "isolated_users": int((deg == 0).sum()),
        "friend_degree": {"mean": round(float(deg.mean()), 3), **_quantiles(deg)},
        "feature_dim": int(graph[USER].x.size(1)),
        "items": graph.num_items,
        "interactions": int(graph.interaction_index.size(1)) if graph.has_items else 0,
    }
    if graph.has_items:
        user_items = degree(graph.interaction_index[0], graph.num_users)
        item_users = degree(graph.interaction_index[1], graph.num_items)
        info["items_per_user"] = {"mean": round(float(user_items.mean()), 3),
                                  **_quantiles(user_items)}
        info["users_per_item"] = {"mean": round(float(item_users.mean()), 3),
                                  **_quantiles(item_users)}
        info["interaction_weights"] = "edge_weight" in graph[INTERACTS]
        if graph.has_times:
            import datetime as dt

            t = graph.interaction_time
            day = [dt.datetime.fromtimestamp(int(v), dt.UTC).date().isoformat()
                   for v in (t.min(), t.max())]
            info["interaction_times"] = f"{day[0]} .. {day[1]} (UTC)"
    if graph.has_interests:
        y, mask = graph[USER].interests, graph[USER].interest_mask
        info["interest_labels"] = int(y.size(1))
        info["labelled_users"] = int(mask.sum())
        info["labels_per_labelled_user"] = round(float(y[mask].sum(1).float().mean()), 3)
        info["top_interests"] = _top(y.sum(0), graph.interest_names, top_k)
    if graph.has_circles:
        sizes = degree(graph[MEMBER_OF].edge_index[1], graph[CIRCLE].num_nodes)
        egos = graph[CIRCLE].ego
        info["circles"] = int(sizes.numel())
        info["circle_egos"] = int(egos.unique().numel())
        info["circle_size"] = {"mean": round(float(sizes.mean()), 3), **_quantiles(sizes)}
    info["repairs"] = list(graph.repairs)
    return info
