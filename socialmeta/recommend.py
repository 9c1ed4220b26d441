"""Recommendations for one user at a time from a trained checkpoint.

Example:
    >>> from socialmeta import Recommender
    >>> rec = Recommender.from_checkpoint("outputs/2026-11-24/19-39-22/best.pt")
    >>> rec.recommend(friends=["u12", "u40", "u7"], k=5)      # a brand-new user
    [Recommendation(id='u13', score=3.91), ...]
    >>> rec.recommend(user="u3", k=5)                         # an existing user
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from socialmeta.data import SocialGraph
from socialmeta.meta import InnerLoop, candidate_scores, interest_logits
from socialmeta.tasks import TaskSampler, UserSplit
from socialmeta.tasks.new_item import ITEM_PREFIX
from socialmeta.tasks.sampler import USER_TARGETS

#: raw id of the placeholder row that stands for a brand-new user
NEW_USER = "<new user>"


@dataclass(frozen=True)
class Recommendation:
    """One recommended user, item or interest (the dataset's own id) and its score."""

    id: str
    score: float


class Recommender:
    r"""Adapts a meta-trained model to one user's links and ranks every candidate.

    The user is either an existing user of the graph (``user=ID``: its own friends
    and items are the support) or a brand-new user described by a few links
    (``friends=[...]``, ``items=[...]``). New-item runs (``task=new_item``) rank users
    for an item instead: an item of the dataset (``item=ID``: its own users are the
    support) or a brand-new item known by its first users (``users=[...]``; its own
    content features are unknown then, zero). Candidates are what the evaluator
    ranks: training users (friend runs), every user (new-item runs), all items (item
    runs) or all interests (interest runs), minus the center and its support links.

    Args:
        model, params: The task model and its meta-parameters.
        graph: The run's graph; split: its user split; sampler settings come from
            :obj:`task`.
        inner: How the learner adapts (as trained).
        device: Where to run. (default: ``"cpu"``)
    """

    def __init__(self, model: nn.Module, params: dict[str, Tensor], graph: SocialGraph,
                 split: UserSplit, task, inner: InnerLoop, device: str | torch.device = "cpu"
                 ) -> None:
        if task.kind == "interest" and task.variant != "center":
            raise ValueError(
                f"this interest run labels an ego's members (task.variant={task.variant}, "
                f"task.label_source={task.label_source}): K labelled members per label "
                "are the support and the other members the query, which a request for "
                "one user does not describe. Recommender serves friend, item, new-item "
                "and task.variant=center interest runs; score this run with "
                "socialmeta-eval")
        self.graph, self.inner, self.kind = graph, inner, task.kind
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.params = {n: p.detach().to(self.device) for n, p in params.items()}
        self.new_user = graph.num_users
        augmented = graph.with_placeholder_users([NEW_USER])
        if self.kind == "new_item":  # the placeholder is a (brand-new) item node
            augmented["user"].x[-1, -1] = 1.0
        test = torch.cat([split.test, torch.tensor([self.new_user])])
        # replace keeps what a split subclass adds (an item split's users)
        self.split = dataclasses.replace(split, test=test, num_users=graph.num_users + 1)
        self.sampler = TaskSampler(augmented, self.split, task)
        if hasattr(model, "for_graph"):  # whole-graph scorers: score the placeholder too
            self.model = model.for_graph(self.sampler.observed, split.train,
                                         self.split.candidate_users).to(self.device)
        if hasattr(self.model, "serve_tower"):  # the tower is fixed between requests
            self.model.serve_tower(self.params)
        self._user_index = {u: i for i, u in enumerate(graph.raw_ids["user"])}
        self._item_index = ({u: i for i, u in enumerate(graph.raw_ids["item"])}
                            if graph.has_items else {})

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str | torch.device = "cpu",
                        allow_other_data: bool = False) -> Recommender:
        """Loads a training checkpoint (``weights_only``), its graph and its split
        (:meth:`socialmeta.Experiment.from_checkpoint`)."""
        from socialmeta.experiment import Experiment

        return Experiment.from_checkpoint(
            checkpoint, allow_other_data=allow_other_data).recommender(device)

    # ------------------------------------------------------------------ API
    def recommend(self, user: str | None = None, friends: Sequence[str] = (),
                  items: Sequence[str] = (), k: int = 10, item: str | None = None,
                  users: Sequence[str] = ()) -> list[Recommendation]:
        r"""The top-:obj:`k` candidates for one user, best first.

        Args:
            user: An existing user's id (its own links are the support), or ``None``
                for a new user described by :obj:`friends` / :obj:`items`.
            friends: Ids of the new user's friends (friend runs: the support; item
                and interest runs: the social context).
            items: Ids of the new user's items (item runs: the support; runs whose
                tasks observe ``items``, e.g. friend runs with ``task.context=[items]``:
                the context).
            k: How many to return.
            item: New-item runs: an item of the dataset (its own users are the
                support).
            users: New-item runs: the first users of a brand-new item.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if self.kind == "new_item":
            if user is not None or friends or items:
                raise ValueError("this is a new-item run: give item=ID (an item of the "
                                 "dataset) or users=[...] (a new item's first users)")
            batch = self._task(None if item is None else ITEM_PREFIX + str(item), users, ())
        elif item is not None or users:
            raise ValueError(f"item=/users= describe a new item (task=new_item runs); this "
                             f"is a {self.kind} run")
        else:
            batch = self._task(user, friends, items)
        with torch.no_grad():
            scores, names = self._scores(batch)
        top = scores.topk(min(k, int(torch.isfinite(scores).sum())))
        return [Recommendation(names[int(i)], float(s))
                for s, i in zip(top.values.tolist(), top.indices.tolist())]

    # ------------------------------------------------------------- internals
    def _task(self, user, friends, items):
        if user is not None:
            if friends or items:
                raise ValueError("give either user=ID or friends=[...]/items=[...], not both")
            if user not in self._user_index:
                what = ("item id " + repr(user[len(ITEM_PREFIX):]) if self.kind == "new_item"
                        else f"user id {user!r}")
                raise ValueError(f"unknown {what} in dataset {self.graph.name!r}")
            center = self._user_index[user]
            return self.sampler.support_batch(torch.tensor([center]))
        observes_items = self.kind == "item" or self.sampler.config.observes("items")
        if items and not observes_items:
            raise ValueError(f"this {self.kind} run's tasks do not observe items "
                             f"(task.context={list(self.sampler.config.context)}): describe "
                             "the new user with friends=[...] only")
        if self.kind == "item" and not items:
            raise ValueError("this is an item-recommendation run: describe the new user "
                             "with items=[...] (and optionally friends=[...])")
        if self.kind == "new_item" and not friends:
            raise ValueError("this is a new-item run: describe the new item with "
                             "users=[...] (its first users)")
        if self.kind != "item" and not friends:
            raise ValueError(f"this is a {self.kind} run: describe the new user with "
                             "friends=[...]")
        for name, given in (("users" if self.kind == "new_item" else "friends", friends),
                            ("items", items)):
            seen: set[str] = set()
            for raw in map(str, given):
                if raw in seen:   # a repeated id would count twice in the support
                    raise ValueError(f"{name}: id {raw!r} is given twice; give each once")
                seen.add(raw)
        friend_ids = torch.tensor([self._lookup(self._user_index, f, "user") for f in friends],
                                  dtype=torch.long)
        item_ids = torch.tensor([self._lookup(self._item_index, i, "item") for i in items],
                                dtype=torch.long)
        return self.sampler.support_batch(torch.tensor([self.new_user]), [friend_ids],
                                          [item_ids] if observes_items else None)

    def _lookup(self, index: dict[str, int], raw: str, what: str) -> int:
        if not index:
            raise ValueError(f"dataset {self.graph.name!r} has no {what}s")
        if str(raw) not in index:
            raise ValueError(f"unknown {what} id {raw!r} in dataset {self.graph.name!r}")
        return index[str(raw)]

    def _scores(self, batch) -> tuple[Tensor, list[str]]:
        batch = batch.to(self.device)
        if self.kind == "interest":
            logits = interest_logits(self.model, self.params, batch, self.inner)[0, 0]
            return logits.cpu(), list(self.graph.interest_names)
        users = self.kind in USER_TARGETS
        scores = candidate_scores(self.model, self.params, batch, self.inner,
                                  self.sampler.num_candidates)
        candidates = self.sampler.candidate_mask(batch.to("cpu"))
        scores = scores.cpu().masked_fill(~candidates, float("-inf"))[0]
        names = self.graph.raw_ids["user" if users else "item"]
        if users:
            scores = scores[:-1]                       # the placeholder is no candidate
        return scores, list(names)
