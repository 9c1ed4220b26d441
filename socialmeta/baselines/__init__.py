r"""Non-meta baselines behind the same cold-start evaluator as the learners.

Example:
    >>> from socialmeta.baselines import make_baseline
    >>> ppr = make_baseline("friend", "ppr", alpha=0.15).fit(sampler)
    >>> evaluate_scorer(ppr.scores, sampler, split="test")
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from socialmeta.baselines.base import Baseline
from socialmeta.baselines.friend import FRIEND_BASELINES, personalized_pagerank
from socialmeta.baselines.interest import INTEREST_BASELINES
from socialmeta.baselines.item import ITEM_BASELINES, ease_weights
from socialmeta.baselines.lightgcn import LightGCN
from socialmeta.baselines.new_item import NEW_ITEM_BASELINES
from socialmeta.baselines.ranker import LearnedRanker
from socialmeta.baselines.tune import tune

if TYPE_CHECKING:
    from socialmeta.tasks import TaskConfig

#: task kind -> baseline name -> class
BASELINES: dict[str, dict[str, type[Baseline]]] = {
    "friend": {**FRIEND_BASELINES, "lightgcn": LightGCN, "learned_ranker": LearnedRanker},
    "item": {**ITEM_BASELINES, "lightgcn": LightGCN, "learned_ranker": LearnedRanker},
    "interest": INTEREST_BASELINES,
    "new_item": {**{name: cls for name, cls in FRIEND_BASELINES.items()
                    if "new_item" in cls.kinds},
                 **NEW_ITEM_BASELINES, "lightgcn": LightGCN, "learned_ranker": LearnedRanker}}


def roster(kind: str, config: TaskConfig | None = None) -> list[str]:
    """The baselines that ``eval.baselines=all`` runs on :obj:`kind` tasks: every one
    of the kind except those with :attr:`~socialmeta.baselines.base.Baseline.in_all`
    false (run only when named) or naming a task flag that :obj:`config` does not set
    (``friends_taste``)."""
    return [name for name, cls in BASELINES[kind].items()
            if cls.in_all is True or (isinstance(cls.in_all, str) and config is not None
                                      and bool(getattr(config, cls.in_all)))]


def make_baseline(kind: str, name: str, **hyper: Any) -> Baseline:
    """The baseline :obj:`name` for :obj:`kind` tasks (unfitted)."""
    if kind not in BASELINES:
        raise ValueError(f"unknown task kind {kind!r}; choose one of {sorted(BASELINES)}")
    if name not in BASELINES[kind]:
        raise ValueError(f"unknown {kind} baseline {name!r}; choose one of "
                         f"{sorted(BASELINES[kind])}")
    return BASELINES[kind][name](**hyper)


__all__ = ["BASELINES", "Baseline", "LearnedRanker", "LightGCN", "ease_weights", "make_baseline", "personalized_pagerank",
           "roster", "tune"]
