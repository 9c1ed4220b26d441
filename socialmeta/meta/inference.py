"""Adapt to new users and score every candidate (the cold-start evaluation path)."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import vmap

from socialmeta.meta.learners import InnerLoop, Params, _call, adapt, task_tensors
from socialmeta.tasks import TaskBatch


def global_to_local(batch: TaskBatch, num_targets: int) -> Tensor:
    """``[T, num_targets]``: local index of every global user in each task, or -1."""
    local = torch.full((batch.num_tasks, num_targets), -1, dtype=torch.long,
                       device=batch.node_ids.device)
    t, j = batch.node_mask.nonzero(as_tuple=True)
    local[t, batch.node_ids[t, j]] = j
    return local


def candidate_scores(model: nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop,
                     num_targets: int) -> Tensor:
    r"""Scores ``[T, num_targets]`` of every user as a friend of each task's center,
    after adapting on the task's support (learners that adapt; ``finetune`` too).

    Users outside a task's ego-net all get the learned ``far`` embedding (one score).

    Example:
        >>> scores = candidate_scores(model, params, test_batch, inner, graph.num_users)
        >>> ranking_metrics(scores, positives, sampler.candidate_mask(test_batch))
    """
    tasks = task_tensors(model, batch)
    params = {n: p.detach() for n, p in params.items()}
    adapts = inner.learner not in ("noadapt", "protonet")
    eval_inner = InnerLoop("fomaml", inner.steps, inner.lr) if inner.learner in (
        "finetune", "reptile") else inner

    def per_task(task: dict[str, Tensor], target_local: Tensor) -> Tensor:
        fast = adapt(model, params, task, eval_inner) if adapts else params
        kwargs = ({"mode": "prototype", "support_mask": task["support_mask"]}
                  if inner.learner == "protonet" else {})
        return _call(model, fast)(task["x"], task["adj"], task["node_mask"], task["hop"],
                                  task["support_local"], task["support_label"],
                                  target_local, **kwargs)

    with torch.no_grad():
        return vmap(per_task, randomness="different")(tasks,
                                                     global_to_local(batch, num_targets))


def interest_logits(model: nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop
                    ) -> Tensor:
    r"""Label logits ``[T, N, L]`` of every ego-net node after adapting on the task's
    labelled members (row 0 is the center). ``noadapt`` skips adaptation."""
    tasks = task_tensors(model, batch)
    params = {n: p.detach() for n, p in params.items()}
    eval_inner = InnerLoop("fomaml", inner.steps, inner.lr) if inner.learner in (
        "finetune", "reptile") else inner

    def per_task(task: dict[str, Tensor]) -> Tensor:
        fast = adapt(model, params, task, eval_inner) if inner.learner != "noadapt" else params
        return _call(model, fast)(task["x"], task["adj"], task["hop"], task["label_mask"],
                                  task["node_mask"])

    with torch.no_grad():
        return vmap(per_task, randomness="different")(tasks)
