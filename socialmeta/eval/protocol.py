"""The cold-start protocol: K-shot tasks of held-out users, full ranking, intervals."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from socialmeta import distributed, progress
from socialmeta.eval.metrics import label_f1_counts, macro_f1, mean_ci, ranking_metrics
from socialmeta.meta import InnerLoop, candidate_scores, interest_logits
from socialmeta.tasks import TaskBatch, TaskSampler

REPORTED = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "hr@10", "hr@20", "mrr", "auc",
            "map")
#: cut-offs of interest tasks, which rank a handful of labels: at k >= the label count
#: Recall@k is 1 by construction, so the cut-offs below it are what discriminate
INTEREST_KS = (1, 5, 10, 20)
#: what interest tasks report: the cut-offs above, mAP, R-precision, MRR, AUC, and for
#: center tasks the macro-F1 of predicting each user's top |y| labels (a dataset-level
#: figure: its ``ci95`` is ``nan``)
INTEREST_REPORTED = ("recall@1", "ndcg@1", "recall@5", "ndcg@5", "recall@10", "ndcg@10",
                     "recall@20", "ndcg@20", "map", "rprec", "mrr", "auc")


def reported(sampler: TaskSampler) -> tuple[str, ...]:
    """The metrics :func:`evaluate_scorer` reports for :obj:`sampler`'s tasks."""
    if sampler.config.kind != "interest":
        return REPORTED
    return INTEREST_REPORTED + (("macro_f1",) if sampler.config.variant == "center" else ())


Scorer = Callable[[TaskBatch], Tensor]


def model_scorer(model: nn.Module, params, sampler: TaskSampler, inner: InnerLoop) -> Scorer:
    r"""Scores of a (meta-)trained model after test-time adaptation, as the
    evaluator wants them: ``[T, candidates]`` for link tasks, ``[T, L]`` for the
    center's labels in interest tasks."""
    kind = sampler.config.kind
    device = next(iter(params.values())).device

    def score(batch: TaskBatch) -> Tensor:
        batch = batch.to(device)
        if kind == "interest":
            logits = interest_logits(model, params, batch, inner)
            return (logits[:, 0] if sampler.config.variant == "center" else logits).cpu()
        return candidate_scores(model, params, batch, inner, sampler.num_candidates).cpu()

    return score


def task_metrics(scores: Tensor, sampler: TaskSampler, batch: TaskBatch) -> dict[str, Tensor]:
    """Per-task ranking metrics of :obj:`scores` against the batch's query."""
    if sampler.config.kind == "interest":
        if sampler.config.variant == "center":
            truth = batch.query_labels[:, 0] > 0
            return ranking_metrics(scores, truth, batch.label_valid, ks=INTEREST_KS)
        return member_metrics(scores, batch)
    positives = torch.zeros(scores.shape, dtype=torch.bool)
    positives[batch.query_mask.nonzero()[:, 0], batch.query_ids[batch.query_mask]] = True
    return ranking_metrics(scores, positives, sampler.candidate_mask(batch))


def member_metrics(scores: Tensor, batch: TaskBatch) -> dict[str, Tensor]:
    r"""Metrics of ``members`` interest tasks (e.g. circles): for every task and every
    label that exists in it and has query members, the task's query members (the
    ego-net users whose labels are hidden) are ranked by their score for that label;
    the positives are the members that carry it. One value per (task, label).

    Args:
        scores: ``[T, N, L]`` scores of every node for every label.
    """
    t, n, num_labels = scores.shape
    rows = scores.permute(0, 2, 1).reshape(t * num_labels, n)
    candidates = batch.query_node_mask.unsqueeze(1).expand(t, num_labels, n)
    positives = (batch.query_labels > 0).permute(0, 2, 1) & candidates
    keep = (batch.label_valid & positives.any(-1)).reshape(-1)
    return ranking_metrics(rows[keep], positives.reshape(-1, n)[keep],
                           candidates.reshape(-1, n)[keep], ks=INTEREST_KS)


def evaluate_scorer(scorer: Scorer, sampler: TaskSampler, split: str = "test",
                    shots: Sequence[int] = (1, 3, 5, 10), batch_size: int = 64,
                    max_users: int | None = None) -> dict[int, dict[str, dict[str, float]]]:
    r"""The cold-start protocol for any scorer (a learner through
    :func:`model_scorer`, or a baseline's ``scores``).

    Every val/test user with more than K links is a new user with K support links;
    its query is ranked against all candidates (training users not in its support, or
    all items not in its support, or all labels). For ``members`` interest tasks the
    unit is (task, label): see :func:`member_metrics`. Under torchrun each rank
    evaluates its share of the users (:func:`socialmeta.distributed.shard`) and the
    per-user values are gathered, so every rank returns the whole table.

    Returns:
        ``{K: {metric: {"mean": ..., "ci95": ..., "users": ...}}}`` for the metrics
        of :func:`reported` (interest tasks: cut-offs below the label count, mAP,
        R-precision and, for center tasks, macro-F1).
    """
    out: dict[int, dict[str, dict[str, float]]] = {}
    center_labels = sampler.config.kind == "interest" and sampler.config.variant == "center"
    for k in shots:
        users = sampler.eval_centers(split, k)
        if max_users is not None:
            users = users[:max_users]
        users = users[distributed.shard(users.numel())]  # this rank's share (all of them
        per_task: dict[str, list[Tensor]] = {}          # in one process), gathered below
        counts = None                                   # macro-F1's, of center labels
        for start in range(0, users.numel(), batch_size):
            batch = sampler.eval_batch(users[start:start + batch_size], k)
            scores = scorer(batch).float().cpu()
            for key, value in task_metrics(scores, sampler, batch).items():
                per_task.setdefault(key, []).append(value)
            if center_labels:
                c = label_f1_counts(scores, batch.query_labels[:, 0] > 0, batch.label_valid)
                counts = c if counts is None else counts + c
            progress.tick("  %s users, K=%d: %d/%d evaluated", split, k,
                          min(start + batch_size, users.numel()), users.numel())
        out[k] = {}
        for key in reported(sampler):
            if key == "macro_f1":
                continue
            values = torch.cat(per_task[key]) if key in per_task else torch.zeros(0)
            mean, half, n = mean_ci(distributed.gather(values))
            out[k][key] = {"mean": mean, "ci95": half, "users": n}
        if center_labels:
            width = sampler.graph["user"].interests.size(1)
            mine = counts if counts is not None else torch.zeros(3, width, dtype=torch.long)
            total = distributed.gather(mine.flatten()).view(-1, 3, width).sum(0)
            out[k]["macro_f1"] = {"mean": macro_f1(total), "ci95": float("nan"),
                                  "users": out[k]["map"]["users"]}
    return out


def evaluate_cold_start(model: nn.Module, params, sampler: TaskSampler, inner: InnerLoop,
                        split: str = "test", shots: Sequence[int] = (1, 3, 5, 10),
                        batch_size: int = 64, max_users: int | None = None
                        ) -> dict[int, dict[str, dict[str, float]]]:
    r"""The cold-start protocol (:func:`evaluate_scorer`) for a model and its
    meta-parameters, adapting to every new user as :obj:`inner` says."""
    return evaluate_scorer(model_scorer(model, params, sampler, inner), sampler, split,
                           shots, batch_size, max_users)
