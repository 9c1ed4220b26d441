"""The cold-start protocol: K-shot tasks of held-out users, full ranking, intervals."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from socialmeta.eval.metrics import mean_ci, ranking_metrics
from socialmeta.meta import InnerLoop, candidate_scores, interest_logits
from socialmeta.tasks import TaskBatch, TaskSampler

REPORTED = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "hr@10", "hr@20", "mrr", "auc")


def _task_metrics(model: nn.Module, params, sampler: TaskSampler, batch: TaskBatch,
                  inner: InnerLoop) -> dict[str, Tensor]:
    kind = sampler.config.kind
    device = next(iter(params.values())).device
    batch = batch.to(device)
    if kind == "interest":
        logits = interest_logits(model, params, batch, inner)[:, 0].cpu()
        truth = batch.query_labels[:, 0].cpu() > 0
        return ranking_metrics(logits, truth, torch.ones_like(truth))
    size = sampler.num_users if kind == "friend" else sampler.num_items
    scores = candidate_scores(model, params, batch, inner, size).cpu()
    batch = batch.to("cpu")
    positives = torch.zeros(batch.num_tasks, size, dtype=torch.bool)
    positives[batch.query_mask.nonzero()[:, 0], batch.query_ids[batch.query_mask]] = True
    return ranking_metrics(scores, positives, sampler.candidate_mask(batch))


def evaluate_cold_start(model: nn.Module, params, sampler: TaskSampler, inner: InnerLoop,
                        split: str = "test", shots: Sequence[int] = (1, 3, 5, 10),
                        batch_size: int = 64, max_users: int | None = None
                        ) -> dict[int, dict[str, dict[str, float]]]:
    r"""Mean, 95% interval and user count of every metric, per shot count K.

    Every val/test user with more than K links is a new user with K support links;
    its query is ranked against all candidates (training users not in its support, or
    all items not in its support, or all labels).

    Returns:
        ``{K: {metric: {"mean": ..., "ci95": ..., "users": ...}}}``
    """
    out: dict[int, dict[str, dict[str, float]]] = {}
    for k in shots:
        users = sampler.eval_centers(split, k)
        if max_users is not None:
            users = users[:max_users]
        per_task: dict[str, list[Tensor]] = {}
        for start in range(0, users.numel(), batch_size):
            batch = sampler.eval_batch(users[start:start + batch_size], k)
            for key, value in _task_metrics(model, params, sampler, batch, inner).items():
                per_task.setdefault(key, []).append(value)
        out[k] = {}
        for key in REPORTED:
            values = torch.cat(per_task[key]) if key in per_task else torch.zeros(0)
            mean, half, n = mean_ci(values)
            out[k][key] = {"mean": mean, "ci95": half, "users": n}
    return out
