"""MAML-family learners as pure functions of ``(params, batch)``, vmapped over tasks,
and the plain per-task reference loop over sparse PyG graphs.

Learners (``InnerLoop.learner``):

* ``maml``: second-order MAML; ``fomaml``: first-order MAML;
* ``anil``: only the head adapts (second order);
* ``metasgd``: MAML with a learned inner learning rate per parameter entry (the
  rates are meta-parameters ``lr::<name>``, see :func:`meta_parameters`);
* ``reptile``: inner SGD on the support, outer step towards the adapted weights
  (its "meta-gradient" is ``params - mean(adapted)``);
* ``protonet``: no inner step; targets are scored by their distance to the
  prototypes (mean embeddings) of the positive and negative support: friends and
  non-friends (friend tasks), liked and other items (item tasks, in the item space
  modulated by the center's embedding), members with and without each label
  (interest tasks);
* ``metanet``: amortised, no inner gradient: a meta-network reads the task's center
  embedding (a pooling of its support) and outputs a low-rank change of the head
  (:mod:`socialmeta.meta.metanet`; its meta-parameters are ``metanet::<...>``);
* ``finetune``: pretrain without adaptation on support and query, fine-tune on the
  support at evaluation time; ``noadapt``: no adaptation anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from socialmeta.meta.metanet import metanet_adapt, metanet_parameters
from socialmeta.tasks import TaskBatch

Params = dict[str, Tensor]
LEARNERS = ("anil", "finetune", "fomaml", "maml", "metanet", "metasgd", "noadapt",
            "protonet", "reptile")
LR_PREFIX = "lr::"
#: the largest learning rate a config may give (larger ones only ever diverge)
MAX_LR = 1e3


@dataclass(frozen=True)
class InnerLoop:
    r"""How a learner adapts to one task.

    Args:
        learner: One of :data:`LEARNERS`. (default: :obj:`"maml"`)
        steps: Inner gradient steps. (default: :obj:`1`)
        lr: Inner learning rate (Meta-SGD: the initial per-entry rate).
            (default: :obj:`0.1`)
        adapt_prefixes: If given, only parameters whose names start with one of these
            adapt in the inner loop (e.g. ``("head.", "encoder.convs.1.")``); ANIL's
            default is ``model.head_prefixes``, the others' all parameters.
    """

    learner: str = "maml"
    steps: int = 1
    lr: float = 0.1
    adapt_prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.learner not in LEARNERS:
            raise ValueError(f"unknown learner {self.learner!r}; choose one of {list(LEARNERS)}")
        if self.steps < 0 or not 0 <= self.lr <= MAX_LR:
            raise ValueError(f"inner steps must be >= 0 and the inner lr a finite number in "
                             f"[0, {MAX_LR:g}], got {self.steps}, {self.lr}")
        object.__setattr__(self, "adapt_prefixes", tuple(self.adapt_prefixes))

    @property
    def first_order(self) -> bool:
        return self.learner in ("fomaml", "reptile", "finetune")

    @property
    def adapts_in_training(self) -> bool:
        return self.learner not in ("noadapt", "protonet", "finetune")

    def adapted_names(self, model: nn.Module, params: Params) -> list[str]:
        shared = tuple(getattr(model, "shared_prefixes", ()))
        names = [n for n in params if "::" not in n
                 and not (shared and n.startswith(shared))]
        if self.learner in ("noadapt", "protonet"):
            return []
        prefixes = tuple(self.adapt_prefixes)
        if not prefixes and self.learner in ("anil", "metanet"):
            prefixes = model.head_prefixes
        return [n for n in names if n.startswith(prefixes)] if prefixes else names


def meta_parameters(model: nn.Module, inner: InnerLoop) -> Params:
    r"""The meta-parameters of :obj:`inner`'s learner: the model's parameters, plus for
    Meta-SGD one learned inner rate per parameter entry (``lr::<name>``, initialised
    to ``inner.lr``). Pass them to an optimiser."""
    params = dict(model.named_parameters())
    if inner.learner == "metasgd":
        for name, p in list(params.items()):
            params[LR_PREFIX + name] = torch.full_like(p, inner.lr, requires_grad=True)
    if inner.learner == "metanet":
        params |= metanet_parameters(model, inner.adapted_names(model, params))
    return params


def _model_params(params: Params) -> Params:
    """The model's own parameters (learner meta-parameters are named ``<kind>::...``)."""
    return {n: p for n, p in params.items() if "::" not in n}


def _call(model: nn.Module, params: Params):
    """The model's forward with :obj:`params` swapped in (``functional_call``)."""
    model_params = _model_params(params)

    def call(*args: Tensor, **kwargs) -> Tensor:
        return functional_call(model, model_params, args, kwargs)
    return call


def _task_loss(model, params, task, side, inner) -> Tensor:
    return model.task_loss(_call(model, params), task, side, inner.learner == "protonet")


def task_tensors(model: nn.Module, batch: TaskBatch) -> dict[str, Tensor]:
    """The ``[T, ...]`` tensors of :obj:`batch` that :obj:`model` needs, for ``vmap``."""
    return {k: getattr(batch, k) for k in model.task_fields}


def shared_inputs(model: nn.Module, params: Params, batch: TaskBatch
                  ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    r"""What the tasks of :obj:`batch` read besides their own tensors, computed once
    per batch from the meta-parameters by a model's ``batch_inputs`` hook (e.g. the
    hybrid scorer's candidate tower): ``(shared, per_task)``, where ``per_task`` holds
    the entries named in the model's ``per_task_inputs`` (``[T, ...]``, vmapped with
    the tasks) and ``shared`` the rest (read by every task). Both are empty for models
    without the hook. Parameters under the model's ``shared_prefixes`` feed only these
    inputs and are never adapted in an inner loop."""
    hook = getattr(model, "batch_inputs", None)
    out = hook(_call(model, params), batch) if hook is not None else {}
    per = set(getattr(model, "per_task_inputs", ()))
    return ({k: v for k, v in out.items() if k not in per},
            {k: v for k, v in out.items() if k in per})


def adapt(model: nn.Module, params: Params, task: dict[str, Tensor], inner: InnerLoop
          ) -> Params:
    r"""Adapted parameters for one (unbatched) task: ``inner.steps`` steps of gradient
    descent on the support loss through ``torch.func.grad`` (differentiable, so the
    outer gradient is second order unless the learner is first order)."""
    names = inner.adapted_names(model, params)
    if inner.learner == "metanet":
        return metanet_adapt(model, _call(model, params), params, names, task, sparse=False)
    fast = dict(params)
    for _ in range(inner.steps if names else 0):
        def support_loss(sub: Params, fast=fast) -> Tensor:
            return _task_loss(model, {**fast, **sub}, task, "support", inner)

        g = grad(support_loss)({n: fast[n] for n in names})
        if inner.first_order:
            g = {n: v.detach() for n, v in g.items()}
        fast = {**fast, **{n: fast[n] - params.get(LR_PREFIX + n, inner.lr) * g[n]
                           for n in names}}
    return fast


def _per_task(model: nn.Module, params: Params, inner: InnerLoop,
              shared: dict[str, Tensor] | None = None):
    def per_task(task: dict[str, Tensor]):
        task = {**task, **shared} if shared else task
        if inner.learner == "finetune":  # pretraining: plain loss on all targets
            return (_task_loss(model, params, task, "support", inner)
                    + _task_loss(model, params, task, "query", inner)) / 2, {}
        fast = adapt(model, params, task, inner) if inner.adapts_in_training else params
        loss = _task_loss(model, fast, task, "query", inner)
        if inner.learner == "reptile":
            return loss, {n: fast[n] for n in inner.adapted_names(model, params)}
        return loss, {}
    return per_task


def outer_loss(model: nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop
               ) -> Tensor:
    r"""Mean query loss after adaptation, vmapped over the tasks of :obj:`batch`.

    Example:
        >>> params = meta_parameters(model, inner)
        >>> meta_grads = torch.func.grad(outer_loss, argnums=1)(model, params, batch, inner)
    """
    shared, per_task = shared_inputs(model, params, batch)
    tasks = {**task_tensors(model, batch), **per_task}
    losses, _ = vmap(_per_task(model, params, inner, shared), randomness="different")(tasks)
    return losses.mean()


def meta_gradient(model: nn.Module, batch: TaskBatch, inner: InnerLoop,
                  params: Params | None = None) -> tuple[Tensor, Params]:
    r"""Outer loss and the meta-gradient w.r.t. every meta-parameter (default:
    :func:`meta_parameters`). For Reptile the "gradient" is ``params - mean(adapted)``,
    so that any optimiser step moves towards the adapted weights."""
    params = meta_parameters(model, inner) if params is None else params
    detached = {n: p.detach() for n, p in params.items()}
    tasks = task_tensors(model, batch)
    if inner.learner == "reptile":
        shared, per_task = shared_inputs(model, detached, batch)
        losses, adapted = vmap(_per_task(model, detached, inner, shared),
                               randomness="different")({**tasks, **per_task})
        grads = {n: detached[n] - adapted[n].mean(0) if n in adapted
                 else torch.zeros_like(p) for n, p in detached.items()}
        return losses.mean().detach(), grads

    def loss_fn(p: Params) -> tuple[Tensor, Tensor]:
        loss = outer_loss(model, p, batch, inner)
        return loss, loss.detach()

    grads, loss = grad(loss_fn, has_aux=True)(detached)
    return loss, grads


# ---------------------------------------------------------------- reference loop
def reference_outer_loss(model: nn.Module, batch: TaskBatch, inner: InnerLoop,
                         params: Params | None = None) -> tuple[Tensor, list[Params]]:
    r"""The same outer loss as :func:`outer_loss`, computed the way one would write it
    by hand with PyG: a Python loop over tasks, each a sparse :class:`Data`, the sparse
    forward, and ``torch.autograd.grad`` for the inner steps. Returns the loss (call
    ``.backward()`` for the meta-gradient) and each task's adapted parameters."""
    params = meta_parameters(model, inner) if params is None else params
    names = inner.adapted_names(model, params)
    losses, adapted = [], []
    prototype = inner.learner == "protonet"
    shared, per_task = shared_inputs(model, params, batch)
    for i, data in enumerate(batch.to_data_list()):
        for key, value in shared.items():
            setattr(data, key, value)
        for key, value in per_task.items():
            setattr(data, key, value[i])
        def task_loss(p: Params, side: str, data=data) -> Tensor:
            return model.sparse_task_loss(_call(model, p), data, side, prototype)

        if inner.learner == "finetune":
            losses.append((task_loss(params, "support") + task_loss(params, "query")) / 2)
            continue
        if inner.learner == "metanet":
            fast = metanet_adapt(model, _call(model, params), params, names, data, sparse=True)
            losses.append(task_loss(fast, "query"))
            adapted.append({n: fast[n] for n in names})
            continue
        fast = dict(params)
        for _ in range(inner.steps if inner.adapts_in_training and names else 0):
            g = torch.autograd.grad(task_loss(fast, "support"), [fast[n] for n in names],
                                    create_graph=not inner.first_order)
            fast = {**fast, **{n: fast[n] - params.get(LR_PREFIX + n, inner.lr) * gi
                               for n, gi in zip(names, g)}}
        losses.append(task_loss(fast, "query"))
        adapted.append({n: fast[n] for n in names})
    return torch.stack(losses).mean(), adapted
