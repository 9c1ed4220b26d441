"""Adapt to new users and score every candidate (the cold-start evaluation path)."""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.func import vmap

from socialmeta.meta.learners import (
    InnerLoop,
    Params,
    _call,
    adapt,
    shared_inputs,
    task_tensors,
)
from socialmeta.models.item import ItemModel
from socialmeta.tasks import TaskBatch


def inner_for_new_users(inner: InnerLoop) -> InnerLoop:
    r"""How a learner adapts to a new user: as trained, except that ``finetune`` and
    ``reptile`` (trained without a differentiable inner loop) fine-tune with plain
    first-order steps. ``noadapt`` and ``protonet`` adapt no parameter, so
    :func:`adapt` returns their parameters unchanged."""
    if inner.learner in ("finetune", "reptile"):
        return dataclasses.replace(inner, learner="fomaml")
    return inner


def global_to_local(batch: TaskBatch, num_targets: int) -> Tensor:
    """``[T, num_targets]``: local index of every global user in each task, or -1."""
    local = torch.full((batch.num_tasks, num_targets), -1, dtype=torch.long,
                       device=batch.node_ids.device)
    t, j = batch.node_mask.nonzero(as_tuple=True)
    local[t, batch.node_ids[t, j]] = j
    return local


def candidate_scores(model: nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop,
                     num_targets: int) -> Tensor:
    r"""Scores ``[T, num_targets]`` of every candidate of each task after adapting on
    its support (learners that adapt; ``finetune`` too): every user as a friend
    (:class:`LinkModel`) or every item (:class:`ItemModel`).

    For friend tasks, users outside a task's ego-net all get the learned ``far``
    embedding (one score).

    Example:
        >>> scores = candidate_scores(model, params, test_batch, inner, graph.num_users)
        >>> ranking_metrics(scores, positives, sampler.candidate_mask(test_batch))
    """
    tasks = task_tensors(model, batch)
    params = {n: p.detach() for n, p in params.items()}
    eval_inner = inner_for_new_users(inner)
    prototype = inner.learner == "protonet"
    if hasattr(model, "score_all"):  # whole-graph scorers: every user, in user order
        if num_targets != model.num_users:
            raise ValueError(f"friend tasks rank all {model.num_users} users of the model, "
                             f"not {num_targets}")
        with torch.no_grad():
            shared, per_task = shared_inputs(model, params, batch)

            def per_user_task(task: dict[str, Tensor]) -> Tensor:
                task = {**task, **shared}
                fast = adapt(model, params, task, eval_inner)
                return model.score_all(_call(model, fast), task, prototype)

            return vmap(per_user_task, randomness="different")({**tasks, **per_task})
    if isinstance(model, ItemModel):  # every item of the catalogue, in item order
        if num_targets != model.num_items:
            raise ValueError(f"item tasks rank all {model.num_items} items of the model, "
                             f"not {num_targets}")

        with torch.no_grad():   # the hybrid item scorer's pair MLP, once per batch
            shared, per_task = shared_inputs(model, params, batch)

            def per_item_task(task: dict[str, Tensor]) -> Tensor:
                task = {**task, **shared}
                fast = adapt(model, params, task, eval_inner)
                return model.score_targets(_call(model, fast), task, None, prototype)

            return vmap(per_item_task, randomness="different")({**tasks, **per_task})
    # score the N ego-net slots and the one shared outside slot, then spread them over
    # all candidates: memory O(T * num_targets), not O(T * num_targets * hidden)
    n = batch.node_ids.size(1)
    slots = torch.cat([torch.arange(n), torch.full((1,), -1)]).to(batch.node_ids.device)

    def per_task(task: dict[str, Tensor]) -> Tensor:
        fast = adapt(model, params, task, eval_inner)
        return model.score_targets(_call(model, fast), task, slots, prototype)

    with torch.no_grad():
        local = vmap(per_task, randomness="different")(tasks)   # [T, N + 1]
    out = local[:, n:].expand(-1, num_targets).clone()
    t, j = batch.node_mask.nonzero(as_tuple=True)
    out[t, batch.node_ids[t, j]] = local[t, j]
    return out


def interest_logits(model: nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop
                    ) -> Tensor:
    r"""Label logits ``[T, N, L]`` of every ego-net node after adapting on the task's
    labelled members (row 0 is the center). ``noadapt`` skips adaptation; ``protonet``
    gives the prototype logits."""
    tasks = task_tensors(model, batch)
    params = {n: p.detach() for n, p in params.items()}
    eval_inner = inner_for_new_users(inner)

    with torch.no_grad():   # the hybrid interest scorer's features, once per batch
        shared, per_task_inputs = shared_inputs(model, params, batch)

        def per_task(task: dict[str, Tensor]) -> Tensor:
            task = {**task, **shared}
            fast = adapt(model, params, task, eval_inner)
            return model.task_logits(_call(model, fast), task, inner.learner == "protonet")

        return vmap(per_task, randomness="different")({**tasks, **per_task_inputs})
