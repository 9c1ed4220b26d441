"""Label propagation of a task's support labels, the interest tasks' parameter-free
label scores (the :class:`~socialmeta.baselines.interest.LabelPropagation` baseline
and the hybrid interest scorer's features, DESIGN §11)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def neighbour_labels(adj: Tensor, seeds: Tensor, mask: Tensor) -> Tensor:
    r"""``[..., N, L]``: each node's mean label vector over its labelled neighbours
    (the members variant of the :class:`~socialmeta.baselines.interest.NeighborMajority`
    baseline, and a hybrid interest feature).

    Args:
        adj: ``[..., N, N]`` the tasks' dense adjacency.
        seeds: ``[..., N, L]`` the labels of the support members, zero elsewhere.
        mask: ``[..., N]`` the support members, in :obj:`seeds`' dtype.
    """
    return (adj @ seeds) / (adj @ mask.unsqueeze(-1)).clamp(min=1)


def label_propagation(adj: Tensor, seeds: Tensor, alphas: Sequence[float],
                      iterations: int = 20) -> Tensor:
    r"""``[..., N, L, A]``: label propagation (Zhou et al., 2004) of :obj:`seeds` on
    each task's graph at every restart weight ``a`` of :obj:`alphas`,
    ``F <- a D^-1 A F + (1 - a) Y`` for :obj:`iterations` steps from ``F = Y``.

    The restart weights run side by side: every step is one ``[N, N] x [N, A L]``
    product, so the dense walk matrix (``[T, 1100, 1100]`` on ego-Facebook's circle
    tasks, larger than the caches) is read once per step rather than once per weight
    and step (``tests/features/test_interest.py`` checks the result against the
    recursion run one weight at a time).

    Args:
        adj: ``[..., N, N]`` the tasks' dense adjacency (a row with no edge, such as
            padding, ends at its restart term ``(1 - a) Y``).
        seeds: ``[..., N, L]`` the labels of the support members, zero elsewhere.
        alphas: the restart weights ``a``, each in ``[0, 1)``.
        iterations: the number of steps.
    """
    walk = adj / adj.sum(-1, keepdim=True).clamp(min=1)
    labels = seeds.size(-1)
    a = torch.tensor(list(alphas), dtype=seeds.dtype, device=seeds.device)
    a = a.repeat_interleave(labels)                                     # [A L]
    y = seeds.repeat(*([1] * (seeds.dim() - 1)), len(alphas))           # [..., N, A L]
    restart = (1 - a) * y
    f = y
    for _ in range(iterations):
        f = a * (walk @ f) + restart
    return f.unflatten(-1, (len(alphas), labels)).transpose(-1, -2)
