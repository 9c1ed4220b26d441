"""Sparse-dense products over whole batches of tasks (no Python loop over tasks)."""
from __future__ import annotations

import torch
from torch import Tensor


def sparse_matrix(index: Tensor, shape: tuple[int, int], values: Tensor | None = None
                  ) -> Tensor:
    """A coalesced sparse COO matrix from ``[2, E]`` coordinates (duplicates summed)."""
    if values is None:
        values = torch.ones(index.size(1))
    return torch.sparse_coo_tensor(index, values.float(), shape,
                                   check_invariants=False).coalesce()


class Sparse:
    r"""A sparse matrix ``M [n, m]`` that multiplies dense row blocks from the right:
    ``Sparse(M).rmul(rows)`` is ``rows @ M`` for ``rows [T, n]`` (stored as ``Mᵀ`` in
    COO, one sparse-dense product per call)."""

    def __init__(self, index: Tensor, shape: tuple[int, int], values: Tensor | None = None
                 ) -> None:
        self.shape = shape
        self.t = sparse_matrix(index.flip(0), (shape[1], shape[0]), values)

    def rmul(self, rows: Tensor) -> Tensor:
        return (self.t @ rows.t().contiguous()).t()


def cosine_rows(query: Tensor, table: Tensor | Sparse, table_norm: Tensor) -> Tensor:
    r"""Cosine of every row of :obj:`query` ``[T, D]`` with every row of a table
    ``[M, D]`` given as dense or as :class:`Sparse` ``[D, M]`` (its transpose), with
    the table rows' norms ``[M]`` (or ``[T, M]``, one set per query row); zero where a
    vector is zero."""
    dots = table.rmul(query) if isinstance(table, Sparse) else query @ table.t()
    norms = query.norm(dim=1, keepdim=True) * (table_norm if table_norm.dim() == 2
                                               else table_norm.view(1, -1))
    return torch.where(norms > 0, dots / norms.clamp(min=1e-12), 0.0)


def candidate_normalized(scores: Tensor, candidates: Tensor) -> Tensor:
    r"""Scores divided by each row's largest absolute score among its candidates (so
    two scorers blend on the same scale); rows without signal stay zero."""
    top = scores.abs().masked_fill(~candidates, 0.0).amax(1, keepdim=True)
    return torch.where(top > 0, scores / top.clamp(min=1e-12), 0.0)


def indicator(row: Tensor, col: Tensor, num_rows: int, num_cols: int) -> Tensor:
    """``[num_rows, num_cols]`` 0/1 float matrix with ones at ``(row, col)``."""
    out = torch.zeros(num_rows, num_cols)
    out[row, col] = 1.0
    return out


class Rows:
    r"""Dense 0/1 rows of a relation ``src -> dst`` (``[2, E]``) for a few sources at
    a time: ``Rows(index, num_src, num_dst)(nodes)`` is ``[len(nodes), num_dst]``."""

    def __init__(self, index: Tensor, num_src: int, num_dst: int) -> None:
        src, dst = index
        order = torch.argsort(src, stable=True)
        self.dst, self.num_dst = dst[order], num_dst
        self.rowptr = torch.zeros(num_src + 1, dtype=torch.long)
        self.rowptr[1:] = torch.bincount(src, minlength=num_src).cumsum(0)

    def __call__(self, nodes: Tensor) -> Tensor:
        deg = self.rowptr[nodes + 1] - self.rowptr[nodes]
        pos = torch.repeat_interleave(torch.arange(nodes.numel()), deg)
        start = torch.repeat_interleave(self.rowptr[nodes], deg)
        offset = torch.arange(pos.numel()) - torch.repeat_interleave(deg.cumsum(0) - deg, deg)
        return indicator(pos, self.dst[start + offset], nodes.numel(), self.num_dst)
