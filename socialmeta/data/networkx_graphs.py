"""networkx's bundled social graphs as SocialGraphs, and a generic converter."""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import networkx as nx
import numpy as np
import torch

from socialmeta.data.errors import GraphValidationError
from socialmeta.data.graph import SocialGraph


def from_networkx(
    graph: nx.Graph,
    *,
    users: Sequence[Hashable] | None = None,
    interest_attr: str | None = None,
    name: str = "networkx",
    notes: str = "",
) -> SocialGraph:
    r"""Converts an undirected networkx friendship graph into a :class:`SocialGraph`.

    Args:
        graph (nx.Graph): Users are nodes, friendships are edges.
        users (list, optional): Node order (default: ``graph.nodes`` order).
        interest_attr (str, optional): A categorical node attribute turned into one-hot
            interests (e.g. karate's ``"club"``).
        name (str): Name of the graph.
        notes (str): Provenance notes.
    """
    if graph.is_directed():
        raise GraphValidationError(f"graph {name!r} is directed", expected="an undirected graph")
    users = list(graph.nodes) if users is None else list(users)
    index = {u: i for i, u in enumerate(users)}
    loops = [u for u, v in graph.edges if u == v]
    if loops:
        raise GraphValidationError(f"self-loop on user {str(loops[0])!r}",
                                   expected="no self-loops")
    edges = np.asarray([(index[u], index[v]) for u, v in graph.edges], dtype=np.int64)
    parts = {}
    if interest_attr is not None:
        values = [graph.nodes[u].get(interest_attr) for u in users]
        missing = [u for u, v in zip(users, values) if v is None]
        if missing:
            raise GraphValidationError(f"user {str(missing[0])!r} has no {interest_attr!r}",
                                       expected=f"every node to have {interest_attr!r}")
        names = sorted({str(v) for v in values})
        y = torch.zeros(len(users), len(names), dtype=torch.bool)
        y[torch.arange(len(users)), torch.tensor([names.index(str(v)) for v in values])] = True
        parts = {"interests": y, "interest_names": names}
    return SocialGraph.from_parts(
        user_ids=[str(u) for u in users],
        friend_index=torch.from_numpy(edges.reshape(-1, 2).T.copy()),
        name=name, notes=notes, **parts)


def karate() -> SocialGraph:
    """Zachary's karate club: 34 users, 78 friendships, the club split as interest."""
    return from_networkx(nx.karate_club_graph(), interest_attr="club", name="karate",
                         notes="networkx karate_club_graph; interest = club after the split.")


def davis(min_shared_events: int = 3) -> SocialGraph:
    r"""Davis' Southern Women: 18 users, 14 events as items, 89 attendances.

    The dataset has no explicit friendships; two women are friends when they attended
    at least :obj:`min_shared_events` events together (46 friendships at the default 3).
    """
    g = nx.davis_southern_women_graph()
    women, events = list(g.graph["top"]), list(g.graph["bottom"])
    w_index = {w: i for i, w in enumerate(women)}
    e_index = {e: i for i, e in enumerate(events)}
    att = np.zeros((len(women), len(events)), dtype=np.int64)
    for u, v in g.edges:
        w, e = (u, v) if u in w_index else (v, u)
        att[w_index[w], e_index[e]] = 1
    shared = att @ att.T
    src, dst = np.nonzero(np.triu(shared >= min_shared_events, k=1))
    ui, ii = np.nonzero(att)
    return SocialGraph.from_parts(
        user_ids=women, friend_index=torch.from_numpy(np.stack([src, dst])),
        item_ids=events, interaction_index=torch.from_numpy(np.stack([ui, ii])),
        name="davis",
        notes=f"networkx davis_southern_women_graph; friendship = at least "
              f"{min_shared_events} shared events; items = events.")
