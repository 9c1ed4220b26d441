r"""Matrix products in the layout that CPU BLAS computes fast under ``vmap``.

``torch.func.vmap`` turns a matrix-vector product ``A @ v`` of each task into one
batched product ``[T, R, C] x [T, C, 1]``: a GEMM with a single output column, which
the CPU BLAS computes several times slower, forward and backward, than the same
product with a single output *row*, ``[T, 1, C] x [T, C, R]``. The functions here
compute the same values in that layout (equal up to float rounding; the tests compare
them with the plain products under ``vmap``, ``torch.func.grad`` and a gradient of a
gradient). ``python tools/bench_meta.py --products`` times both forms at the models'
shapes (docs/performance.md).
"""
from __future__ import annotations

from torch import Tensor


def matvec(matrix: Tensor, vector: Tensor) -> Tensor:
    r"""``matrix @ vector``: ``[..., R, C] x [..., C] -> [..., R]``, computed as the row
    vector times the transposed matrix (``[1, C] x [C, R]``)."""
    return (vector.unsqueeze(-2) @ matrix.transpose(-1, -2)).squeeze(-2)


def t_matmul(matrix: Tensor, values: Tensor) -> Tensor:
    r"""``matrix.transpose(-1, -2) @ values``: ``[..., N, R] x [..., N, C] -> [..., R, C]``
    for few columns ``C`` (per-node values summed into ``R`` rows, e.g. over each
    item's holders), computed as ``(values^T @ matrix)^T`` (``[C, N] x [N, R]``: few
    output rows, the matrix read in its own layout)."""
    return (values.transpose(-1, -2) @ matrix).transpose(-1, -2)
