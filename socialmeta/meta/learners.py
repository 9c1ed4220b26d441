"""MAML-family learners as pure functions of ``(params, batch)``, vmapped over tasks,
and the plain per-task reference loop over sparse PyG graphs."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from socialmeta.models.link import masked_bce
from socialmeta.tasks import TaskBatch

Params = dict[str, Tensor]
TASK_FIELDS = ("x", "adj", "node_mask", "hop", "support_local", "support_label",
               "support_mask", "query_local", "query_label", "query_mask")
LEARNERS = ("anil", "fomaml", "maml", "noadapt")


@dataclass(frozen=True)
class InnerLoop:
    r"""How a learner adapts to one task.

    Args:
        learner: ``"maml"`` (second order), ``"fomaml"`` (first order), ``"anil"``
            (head-only adaptation, second order) or ``"noadapt"`` (no inner step).
        steps: Inner gradient steps. (default: :obj:`1`)
        lr: Inner learning rate. (default: :obj:`0.1`)
    """

    learner: str = "maml"
    steps: int = 1
    lr: float = 0.1

    def __post_init__(self) -> None:
        if self.learner not in LEARNERS:
            raise ValueError(f"unknown learner {self.learner!r}; choose one of {list(LEARNERS)}")

    @property
    def first_order(self) -> bool:
        return self.learner == "fomaml"

    def adapted_names(self, model: nn.Module, params: Params) -> list[str]:
        if self.learner == "noadapt":
            return []
        if self.learner == "anil":
            return [n for n in params if n.startswith(model.head_prefixes)]
        return list(params)


def _task_loss(model: nn.Module, params: Params, task: dict[str, Tensor], side: str) -> Tensor:
    scores = functional_call(model, params, (
        task["x"], task["adj"], task["node_mask"], task["hop"], task["support_local"],
        task["support_label"], task[f"{side}_local"]))
    return masked_bce(scores, task[f"{side}_label"], task[f"{side}_mask"])


def adapt(model: nn.Module, params: Params, task: dict[str, Tensor], inner: InnerLoop
          ) -> Params:
    r"""Adapted parameters for one (unbatched) task: ``inner.steps`` steps of gradient
    descent on the support loss, through ``torch.func.grad`` (differentiable, so the
    outer gradient is second order unless ``inner.first_order``)."""
    names = inner.adapted_names(model, params)
    fast = dict(params)
    for _ in range(inner.steps if names else 0):
        def support_loss(sub: Params, fast=fast) -> Tensor:
            return _task_loss(model, {**fast, **sub}, task, "support")

        g = grad(support_loss)({n: fast[n] for n in names})
        if inner.first_order:
            g = {n: v.detach() for n, v in g.items()}
        fast = {**fast, **{n: fast[n] - inner.lr * g[n] for n in names}}
    return fast


def outer_loss(model: nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop
               ) -> Tensor:
    r"""Mean query loss after adaptation, vmapped over the tasks of :obj:`batch`.

    Example:
        >>> params = dict(model.named_parameters())
        >>> meta_grads = torch.func.grad(outer_loss, argnums=1)(model, params, batch, inner)
    """
    tasks = {k: getattr(batch, k) for k in TASK_FIELDS}

    def per_task(task: dict[str, Tensor]) -> Tensor:
        return _task_loss(model, adapt(model, params, task, inner), task, "query")

    return vmap(per_task, randomness="different")(tasks).mean()


def meta_gradient(model: nn.Module, batch: TaskBatch, inner: InnerLoop
                  ) -> tuple[Tensor, Params]:
    """Outer loss and its gradient w.r.t. every parameter of :obj:`model`."""
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss_fn(p: Params) -> tuple[Tensor, Tensor]:
        loss = outer_loss(model, p, batch, inner)
        return loss, loss.detach()

    grads, loss = grad(loss_fn, has_aux=True)(params)
    return loss, grads


# ---------------------------------------------------------------- reference loop
def reference_outer_loss(model: nn.Module, batch: TaskBatch, inner: InnerLoop) -> Tensor:
    r"""The same outer loss as :func:`outer_loss`, computed the way one would write it by
    hand with PyG: a Python loop over tasks, each a sparse :class:`Data`, the sparse
    forward, and ``torch.autograd.grad`` for the inner steps. Call ``.backward()`` on
    the result for the meta-gradient."""
    params = dict(model.named_parameters())
    names = inner.adapted_names(model, params)
    losses = []
    for data in batch.to_data_list():
        def task_loss(p: Params, side: str, data=data) -> Tensor:
            scores = functional_call(model, p, (
                data.x, data.edge_index, data.hop, data.support_local, data.support_label,
                getattr(data, f"{side}_local")), {"sparse": True})
            label = getattr(data, f"{side}_label")
            return masked_bce(scores, label, torch.ones_like(label, dtype=torch.bool))

        fast = dict(params)
        for _ in range(inner.steps if names else 0):
            g = torch.autograd.grad(task_loss(fast, "support"), [fast[n] for n in names],
                                    create_graph=not inner.first_order)
            fast = {**fast, **{n: fast[n] - inner.lr * gi for n, gi in zip(names, g)}}
        losses.append(task_loss(fast, "query"))
    return torch.stack(losses).mean()

