"""Hyper-parameter search of baselines on validation users (never test users)."""
from __future__ import annotations

from typing import Any

from socialmeta import progress
from socialmeta.baselines.base import Baseline
from socialmeta.tasks import TaskSampler


def tune(baseline: Baseline, sampler: TaskSampler, shots: int = 3,
         metric: str = "recall@20", max_users: int | None = None
         ) -> tuple[Baseline, list[tuple[dict[str, Any], float]]]:
    r"""Evaluates every point of ``baseline.grid`` on the **validation** users at
    K = :obj:`shots` and returns the best (fitted) baseline and all
    ``(hyper-parameters, validation metric)`` pairs. The first grid point wins ties.
    """
    from socialmeta.eval.protocol import evaluate_scorer

    trials: list[tuple[dict[str, Any], float]] = []
    best, best_value = None, float("-inf")
    points = list(baseline.grid_points()) if baseline.grid else [{}]
    for i, point in enumerate(points):
        progress.tick("  %s: grid point %d/%d", baseline.name, i + 1, len(points))
        candidate = type(baseline)(**point).fit(sampler)
        value = evaluate_scorer(candidate.scores, sampler, "val", (shots,),
                                max_users=max_users)[shots][metric]["mean"]
        trials.append((point, value))
        if value > best_value:
            best, best_value = candidate, value
    assert best is not None
    return best, trials
