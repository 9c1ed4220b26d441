r"""The meta-network learner ``metanet`` (DESIGN §12): amortised adaptation, no inner
gradient.

A small hypernetwork reads a task's support and outputs how to change the task
network, in one forward pass:

1. **Set encoding.** The task's ego-net is embedded with the meta-parameters; the
   center's vector ``e`` is a permutation-invariant function of the support and
   context (the labeling trick marks the support friends, item tasks read the support
   items as the center's taste, interest tasks the labelled members; the encoder's
   aggregation pools them). Models whose input does not carry the support's labels add
   a pooled vector of them (``model.support_vector``: interest tasks, the mean label
   vector of the labelled members). ``z = tanh(W_2 relu(W_1 [e, s] + b_1) + b_2)``
   (``r`` numbers).
2. **Low-rank head delta.** Every adapted weight ``W [o, i]`` (the model's head by
   default, as ANIL's; ``meta.adapt_prefixes`` to choose) becomes
   ``W + A diag(z) B`` with meta-parameters ``A [o, r]`` (zero at start) and
   ``B [r, i]``; a bias ``b [o]`` becomes ``b + C z``, ``C`` zero at start. So an
   untrained meta-network is the unadapted model, and training learns what to change
   per user.

Its meta-parameters are named ``metanet::<...>``; the outer gradient reaches them and
the model through the query loss of the modulated network (first order: there is no
inner loop to differentiate). The conditioning on the support is the published form of
TaNP (Lin et al., WWW 2021) and PAML's preference adapter (Wang et al., IJCAI 2021)
reduced to a head modulation; no code of theirs is used.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]
PREFIX = "metanet::"
#: width of the task code ``z`` (the rank of the head delta)
RANK = 8


def _safe(name: str) -> str:
    return name.replace(".", "/")


def metanet_parameters(model: nn.Module, names: list[str], rank: int = RANK,
                       generator: torch.Generator | None = None) -> Params:
    r"""Fresh meta-network parameters for adapting the model parameters :obj:`names`
    (seeded by :obj:`generator`; the delta factors ``A``/``C`` start at zero)."""
    hidden = model.encoder.hidden_channels
    width = hidden + getattr(model, "support_channels", 0)
    params = dict(model.named_parameters())
    dtype = next(iter(params.values())).dtype

    def uniform(*shape: int) -> Tensor:
        bound = 1.0 / math.sqrt(shape[-1])
        return (torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * bound

    out = {f"{PREFIX}enc.w1": uniform(hidden, width), f"{PREFIX}enc.b1": torch.zeros(hidden,
                                                                                      dtype=dtype),
           f"{PREFIX}enc.w2": uniform(rank, hidden), f"{PREFIX}enc.b2": torch.zeros(rank,
                                                                                    dtype=dtype)}
    for name in names:
        p = params[name]
        if p.dim() == 2:
            out[f"{PREFIX}A:{_safe(name)}"] = torch.zeros(p.size(0), rank, dtype=dtype)
            out[f"{PREFIX}B:{_safe(name)}"] = uniform(rank, p.size(1))
        elif p.dim() == 1:
            out[f"{PREFIX}C:{_safe(name)}"] = torch.zeros(p.numel(), rank, dtype=dtype)
        else:
            raise ValueError(f"metanet adapts vectors and matrices, not {name!r} of shape "
                             f"{tuple(p.shape)}")
    device = next(iter(params.values())).device
    return {n: v.to(device).requires_grad_() for n, v in out.items()}


def task_code(params: Params, embedding: Tensor) -> Tensor:
    """The task code ``z [r]`` of a center embedding ``e [H]``."""
    h = torch.relu(params[f"{PREFIX}enc.w1"] @ embedding + params[f"{PREFIX}enc.b1"])
    return torch.tanh(params[f"{PREFIX}enc.w2"] @ h + params[f"{PREFIX}enc.b2"])


def modulated(params: Params, names: list[str], code: Tensor) -> Params:
    r"""The task's parameters: :obj:`params` with the low-rank deltas of :obj:`names`
    for the task code :obj:`code`."""
    fast = dict(params)
    for name in names:
        key = _safe(name)
        if f"{PREFIX}A:{key}" in params:
            a, b = params[f"{PREFIX}A:{key}"], params[f"{PREFIX}B:{key}"]
            fast[name] = params[name] + (a * code) @ b
        else:
            fast[name] = params[name] + params[f"{PREFIX}C:{key}"] @ code
    return fast


def metanet_adapt(model: nn.Module, call, params: Params, names: list[str], task,
                  sparse: bool) -> Params:
    r"""Adapted parameters of one task in one forward pass: the center embedding with
    the meta-parameters (:obj:`call`: the model's forward with them; dense task dict,
    or a sparse PyG task with :obj:`sparse`), its code, the modulated head."""
    embedding = (model.sparse_center_embedding(call, task) if sparse
                 else model.center_embedding(call, task))
    if hasattr(model, "support_vector"):
        embedding = torch.cat([embedding, model.support_vector(task)], -1)
    return modulated(params, names, task_code(params, embedding))
