"""What every baseline is: fitted on training users, scored on the evaluator's tasks."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from socialmeta.data import FRIEND, INTERACTS
from socialmeta.features.sparse import (  # noqa: F401  (re-exported for baselines)
    Sparse,
    candidate_normalized,
    cosine_rows,
    indicator,
    sparse_matrix,
    support_matrix,
)
from socialmeta.tasks import TaskBatch, TaskSampler


class Baseline:
    r"""A non-meta-learned scorer that the cold-start evaluator runs on exactly the
    tasks the learners get (same support, same query, same candidates).

    Subclasses set :attr:`name`, :attr:`kinds` (the task kinds they score), optionally
    :attr:`grid` (hyper-parameters searched on validation users, see
    :func:`socialmeta.baselines.tune`), :attr:`requires` (relations of the center
    it reads, which the task must observe as ``task.context``) and :attr:`in_all`
    (``False``: left out of ``eval.baselines=all``, run only when named; the name of a
    :class:`~socialmeta.tasks.TaskConfig` flag: in it only where the task sets that
    flag), and implement
    :meth:`fit` (training users only: it reads ``sampler.observed``) and
    :meth:`scores`.
    """

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    grid: ClassVar[Mapping[str, Sequence[Any]]] = {}
    requires: ClassVar[tuple[str, ...]] = ()
    in_all: ClassVar[bool | str] = True

    def __init__(self, **hyper: Any) -> None:
        unknown = set(hyper) - set(self.grid)
        if unknown:
            raise ValueError(f"baseline {self.name!r} has no hyper-parameter "
                             f"{sorted(unknown)}; it has {sorted(self.grid)}")
        self.hyper = {k: v[0] for k, v in self.grid.items()} | hyper
        self.sampler: TaskSampler | None = None

    def fit(self, sampler: TaskSampler) -> Baseline:
        """Precomputes what :meth:`scores` needs from the training users' data."""
        if sampler.config.kind not in self.kinds:
            raise ValueError(f"baseline {self.name!r} scores {list(self.kinds)} tasks, "
                             f"not {sampler.config.kind!r}")
        missing = [r for r in self.requires if not sampler.config.observes(r)]
        if missing:
            context = list(sampler.config.context)
            raise ValueError(f"baseline {self.name!r} needs the new user's "
                             f"{' and '.join(missing)}, which these tasks hide "
                             f"(task.context={context}); it runs with "
                             f"task.context={context + missing}")
        self.sampler = sampler
        self._fit(sampler)
        return self

    def _fit(self, sampler: TaskSampler) -> None:
        """Subclass hook of :meth:`fit`."""

    def scores(self, batch: TaskBatch) -> Tensor:
        r"""``[T, num_users]`` (friend), ``[T, num_items]`` (item) or ``[T, L]``
        (interest: label scores of each task's center); higher is better."""
        raise NotImplementedError

    def with_hyper(self, **hyper: Any) -> Baseline:
        """A copy with other hyper-parameters, fitted on the same sampler."""
        other = type(self)(**(self.hyper | hyper))
        return other.fit(self.sampler) if self.sampler is not None else other

    def label(self) -> str:
        """Row name in result tables, e.g. ``ppr(alpha=0.2)``."""
        if not self.hyper:
            return self.name
        inner = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{self.name}({inner})"

    def grid_points(self) -> Iterator[dict[str, Any]]:
        keys = list(self.grid)
        for values in itertools.product(*(self.grid[k] for k in keys)):
            yield dict(zip(keys, values))


# ------------------------------------------------------------------ helpers
def friend_matrix(sampler: TaskSampler) -> Sparse:
    """The observed (training users') friendship adjacency ``[U, U]``."""
    n = sampler.num_users
    return Sparse(sampler.observed[FRIEND].edge_index, (n, n))


def interaction_index(sampler: TaskSampler) -> Tensor:
    """Training users' interactions ``[2, E]`` (user, item), duplicates removed."""
    u, i = sampler.observed[INTERACTS].edge_index
    key = torch.unique(u * sampler.num_items + i)
    return torch.stack([key // sampler.num_items, key % sampler.num_items])


def context_friends(sampler: TaskSampler, batch: TaskBatch) -> Tensor:
    r"""``[T, U]`` indicator of each center's friends among training users: the
    ``friends`` context of item and interest tasks (friend tasks never observe it: the
    friends are their query)."""
    if not sampler.config.observes("friends"):
        raise ValueError("the center's friends are not context of these tasks")
    return indicator(*sampler.context_friends(batch.center), batch.num_tasks,
                      sampler.num_users)


def center_items(sampler: TaskSampler, batch: TaskBatch) -> Tensor:
    r"""``[T, num_items]`` indicator of each center's own items: the ``items`` context
    (item tasks never observe it: the items are their query)."""
    if not sampler.config.observes("items"):
        raise ValueError("the center's items are not context of these tasks")
    return indicator(*sampler.context_items(batch.center), batch.num_tasks,
                      sampler.num_items)


def center_features(sampler: TaskSampler, batch: TaskBatch) -> Tensor:
    """``[T, F]`` the centers' own feature rows: the ``features`` context."""
    if not sampler.config.observes("features"):
        raise ValueError("the center's features are not context of these tasks")
    return sampler.graph["user"].x[batch.center].float()


class Blend(Baseline):
    r"""``(1 - weight) · a + weight · b`` of two baselines' scores, each normalised by
    its largest candidate score (:func:`candidate_normalized`); :attr:`parts` names the
    two classes, whose hyper-parameters are part of this grid."""

    parts: ClassVar[tuple[type[Baseline], type[Baseline]]]

    def _fit(self, sampler: TaskSampler) -> None:
        self.components = [cls(**{k: v for k, v in self.hyper.items() if k in cls.grid}
                               ).fit(sampler) for cls in self.parts]

    def scores(self, batch: TaskBatch) -> Tensor:
        candidates = self.sampler.candidate_mask(batch)
        a, b = (candidate_normalized(c.scores(batch), candidates) for c in self.components)
        w = float(self.hyper["weight"])
        return (1 - w) * a + w * b


Factory = Callable[..., Baseline]
