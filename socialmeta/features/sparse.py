"""Sparse-dense products over whole batches of tasks (no Python loop over tasks)."""
from __future__ import annotations

from dataclasses import dataclass

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


def support_matrix(batch, size: int, dtype=torch.float32) -> Tensor:
    """``[T, size]`` 0/1 indicator of each task's positive support targets (any object
    with ``num_tasks``, ``support_ids``, ``support_mask``, ``support_label``)."""
    s = torch.zeros(batch.num_tasks, size, dtype=dtype)
    ok = batch.support_mask & (batch.support_label > 0)
    s[ok.nonzero()[:, 0], batch.support_ids[ok]] = 1.0
    return s


@dataclass(frozen=True)
class CSR:
    r"""Compressed sparse rows of a (bipartite or square) relation ``src -> dst``."""

    rowptr: Tensor
    col: Tensor
    num_src: int
    num_dst: int

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_src: int, num_dst: int) -> CSR:
        return cls.with_values(edge_index, num_src, num_dst)[0]

    @classmethod
    def with_values(cls, edge_index: Tensor, num_src: int, num_dst: int,
                    values: Tensor | None = None) -> tuple[CSR, Tensor | None]:
        r"""The CSR of :obj:`edge_index` and, when given, the per-edge :obj:`values`
        in its column order (``values[k]`` belongs to ``col[k]``)."""
        src, dst = edge_index
        order = torch.argsort(src * num_dst + dst)
        counts = torch.bincount(src, minlength=num_src)
        rowptr = torch.zeros(num_src + 1, dtype=torch.long)
        rowptr[1:] = counts.cumsum(0)
        csr = cls(rowptr, dst[order].contiguous(), num_src, num_dst)
        return csr, (values[order].contiguous() if values is not None else None)

    def degree(self, nodes: Tensor) -> Tensor:
        return self.rowptr[nodes + 1] - self.rowptr[nodes]

    def gather(self, nodes: Tensor) -> tuple[Tensor, Tensor]:
        r"""All neighbours of :obj:`nodes`: ``(position in nodes, neighbour)`` pairs."""
        pos, slot = self.slots(nodes)
        return pos, self.col[slot]

    def slots(self, nodes: Tensor) -> tuple[Tensor, Tensor]:
        r"""Like :meth:`gather`, with each neighbour's slot in :attr:`col` (to read
        per-edge values stored in column order, see :meth:`with_values`)."""
        deg = self.degree(nodes)
        pos = torch.repeat_interleave(torch.arange(nodes.numel()), deg)
        start = torch.repeat_interleave(self.rowptr[nodes], deg)
        offset = torch.arange(pos.numel()) - torch.repeat_interleave(deg.cumsum(0) - deg, deg)
        return pos, start + offset

    def dense_rows(self, nodes: Tensor) -> Tensor:
        """``[len(nodes), num_dst]`` 0/1 rows of :obj:`nodes`."""
        return indicator(*self.gather(nodes), nodes.numel(), self.num_dst)
