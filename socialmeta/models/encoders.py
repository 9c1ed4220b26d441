"""GNN encoders with a dense (batched ego-nets) and a sparse (PyG) forward that share
one set of parameters."""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, GINConv, SAGEConv


def _self_loops(adj: Tensor) -> Tensor:
    eye = torch.eye(adj.size(-1), dtype=adj.dtype, device=adj.device)
    return adj + eye


def dense_sage(conv: SAGEConv, x: Tensor, adj: Tensor) -> Tensor:
    """Mean aggregation: ``lin_l(mean_j x_j) + lin_r(x_i)`` (PyG's SAGEConv)."""
    agg = adj @ x / adj.sum(-1, keepdim=True).clamp(min=1)
    return conv.lin_l(agg) + conv.lin_r(x)


def dense_gcn(conv: GCNConv, x: Tensor, adj: Tensor) -> Tensor:
    r"""``D^{-1/2} (A + I) D^{-1/2} X W + b`` (PyG's GCNConv with self-loops)."""
    a = _self_loops(adj)
    dinv = a.sum(-1).pow(-0.5)
    norm = dinv.unsqueeze(-1) * a * dinv.unsqueeze(-2)
    return norm @ conv.lin(x) + conv.bias


def dense_gin(conv: GINConv, x: Tensor, adj: Tensor) -> Tensor:
    """``nn((1 + eps) x_i + sum_j x_j)`` (PyG's GINConv)."""
    return conv.nn((1 + conv.eps) * x + adj @ x)


def dense_gat(conv: GATConv, x: Tensor, adj: Tensor) -> Tensor:
    """Masked attention over neighbours and self (PyG's GATConv, concat heads)."""
    heads, channels = conv.heads, conv.out_channels
    h = conv.lin(x).unflatten(-1, (heads, channels))              # [.., N, H, C]
    a_src = (h * conv.att_src).sum(-1)                             # [.., N, H]
    a_dst = (h * conv.att_dst).sum(-1)
    logits = a_dst.unsqueeze(-2) + a_src.unsqueeze(-3)             # [.., Ni, Nj, H]
    logits = F.leaky_relu(logits, conv.negative_slope)
    edge = _self_loops(adj).unsqueeze(-1) > 0
    logits = logits.masked_fill(~edge, float("-inf"))
    alpha = torch.softmax(logits, dim=-2)
    out = torch.einsum("...ijh,...jhc->...ihc", alpha, h)
    out = out.flatten(-2) if conv.concat else out.mean(-2)
    return out + conv.bias


def _make_conv(name: str, in_channels: int, out_channels: int, heads: int) -> nn.Module:
    if name == "sage":
        return SAGEConv(in_channels, out_channels)
    if name == "gcn":
        return GCNConv(in_channels, out_channels)
    if name == "gin":
        return GINConv(nn.Sequential(nn.Linear(in_channels, out_channels), nn.ReLU(),
                                     nn.Linear(out_channels, out_channels)))
    if name == "gat":
        if out_channels % heads:
            raise ValueError(f"GAT: {out_channels} channels are not divisible by {heads} heads")
        return GATConv(in_channels, out_channels // heads, heads=heads)
    if name == "mlp":
        return nn.Linear(in_channels, out_channels)
    raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")


class MeanAdjacency:
    r"""A graph as the row-normalised sparse matrix of mean aggregation, for the fast
    path of :meth:`Encoder.forward_sparse` with ``"sage"`` convolutions: ``A[i, j] =
    1 / in_degree(i)`` for every edge ``j -> i`` of :obj:`edge_index` (PyG's
    convention: ``edge_index[0]`` sends, ``edge_index[1]`` receives), stored as a CSR
    matrix and its transpose (for the backward). One CSR product per layer replaces
    PyG's gather of ``[E, F]`` messages and their scatter-mean; the result equals
    PyG's ``SAGEConv`` up to float rounding (the mean is taken as a weighted sum).

    The product runs inside a :class:`torch.autograd.Function` whose backward is the
    same Function on the transpose, so it is differentiable any number of times and
    works under ``torch.func.grad`` (which cannot wrap sparse tensors: they are held
    by this object, never passed as tensor arguments). Not under ``vmap``.

    Args:
        edge_index (Tensor): ``[2, E]``.
        num_nodes (int): ``N``, the sending nodes.
        dtype (torch.dtype): The dtype of the features it will multiply.
        num_dst (int, optional): Receiving nodes when they are another (bipartite)
            set, indexed ``0..num_dst-1`` in ``edge_index[1]``, as in a sampled
            neighbourhood's layer (:meth:`Encoder.forward_bipartite`); the matrix is
            then ``[num_dst, num_nodes]``. (default: :obj:`num_nodes`)
    """

    def __init__(self, edge_index: Tensor, num_nodes: int,
                 dtype: torch.dtype = torch.float32, num_dst: int | None = None) -> None:
        src, dst = edge_index[0], edge_index[1]
        num_dst = num_nodes if num_dst is None else num_dst
        degree = torch.bincount(dst, minlength=num_dst).clamp(min=1).to(dtype)
        weight = degree.reciprocal()[dst]
        self.num_nodes, self.num_dst = num_nodes, num_dst
        self.dtype, self.device = dtype, edge_index.device
        # the CSR parts as dense tensors (copyable, unlike sparse CSR tensors); the
        # sparse views are made per product, which copies nothing
        self._parts = (self._csr(dst, src, weight, num_dst),
                       self._csr(src, dst, weight, num_nodes))

    @staticmethod
    def _csr(row: Tensor, col: Tensor, value: Tensor, rows: int
             ) -> tuple[Tensor, Tensor, Tensor]:
        if row.numel() > 1 and bool((row[1:] < row[:-1]).any()):
            order = torch.argsort(row, stable=True)
            row, col, value = row[order], col[order], value[order]
        crow = torch.zeros(rows + 1, dtype=torch.long, device=row.device)
        crow[1:] = torch.bincount(row, minlength=rows).cumsum(0)
        return crow, col, value

    def matrix(self, transposed: bool = False) -> Tensor:
        """The sparse CSR matrix ``A`` ``[num_dst, num_nodes]`` (or ``A^T``)."""
        crow, col, value = self._parts[int(transposed)]
        shape = ((self.num_nodes, self.num_dst) if transposed
                 else (self.num_dst, self.num_nodes))
        with warnings.catch_warnings():   # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(crow, col, value, shape, check_invariants=False)

    def __call__(self, x: Tensor) -> Tensor:
        """``A x``: the mean of every node's in-neighbours' rows of :obj:`x` ``[N, F]``
        (zero for nodes without in-edges)."""
        if x.dtype != self.dtype:
            raise ValueError(f"MeanAdjacency built for {self.dtype}, got {x.dtype} features")
        return _MeanAggregate.apply(x, self, False)


class _MeanAggregate(torch.autograd.Function):
    """``A x`` (or ``A^T x``) for :class:`MeanAdjacency`."""

    @staticmethod
    def forward(x: Tensor, adjacency: MeanAdjacency, transposed: bool) -> Tensor:
        return torch.sparse.mm(adjacency.matrix(transposed), x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.adjacency, ctx.transposed = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _MeanAggregate.apply(grad, ctx.adjacency, not ctx.transposed), None, None


_DENSE = {SAGEConv: dense_sage, GCNConv: dense_gcn, GINConv: dense_gin, GATConv: dense_gat}
ENCODERS = ("gat", "gcn", "gin", "mlp", "sage")


class Encoder(nn.Module):
    r"""A stack of graph convolutions with two forwards over one set of parameters.

    * :meth:`forward_dense`: ``x [T, N, F]``, ``adj [T, N, N]``, ``mask [T, N]`` for
      batched, padded ego-nets (vmap-friendly: only batched matrix products).
    * :meth:`forward_sparse`: ``x [N, F]``, ``edge_index [2, E]`` through PyG message
      passing, for full-graph inference and the per-task reference loop.

    On the same (unpadded) graph both give the same node embeddings.

    Args:
        conv (str): ``"sage"``, ``"gcn"``, ``"gin"``, ``"gat"`` or ``"mlp"`` (no graph).
        in_channels (int): Input feature size.
        hidden_channels (int): Hidden and output size. (default: :obj:`64`)
        num_layers (int): 1 to 3. (default: :obj:`2`)
        dropout (float): Dropout between layers. (default: :obj:`0.0`)
        norm (str, optional): ``"layer"`` for LayerNorm between layers, or :obj:`None`.
        heads (int): Attention heads (GAT only). (default: :obj:`1`)

    Example:
        >>> enc = Encoder("sage", in_channels=8, hidden_channels=32)
        >>> h = enc.forward_dense(batch_x, batch.adj, batch.node_mask)  # [T, N, 32]
    """

    def __init__(self, conv: str, in_channels: int, hidden_channels: int = 64,
                 num_layers: int = 2, dropout: float = 0.0, norm: str | None = None,
                 heads: int = 1) -> None:
        super().__init__()
        if conv not in ENCODERS:
            raise ValueError(f"unknown encoder {conv!r}; choose one of {list(ENCODERS)}")
        if not 1 <= num_layers <= 3:
            raise ValueError(f"num_layers must be 1 to 3, got {num_layers}")
        if norm not in (None, "layer"):
            raise ValueError(f"unknown norm {norm!r}; choose one of [None, 'layer']")
        self.conv_name, self.in_channels = conv, in_channels
        self.hidden_channels, self.num_layers = hidden_channels, num_layers
        self.dropout, self.norm_name, self.heads = dropout, norm, heads
        sizes = [in_channels] + [hidden_channels] * num_layers
        self.convs = nn.ModuleList(_make_conv(conv, a, b, heads)
                                   for a, b in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_channels) if norm == "layer"
                                   else nn.Identity() for _ in range(num_layers - 1))

    @property
    def out_channels(self) -> int:
        return self.hidden_channels

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def _between(self, i: int, h: Tensor) -> Tensor:
        if i == self.num_layers - 1:
            return h
        h = self.norms[i](F.relu(h))
        return F.dropout(h, self.dropout, self.training)

    def forward_dense(self, x: Tensor, adj: Tensor, mask: Tensor) -> Tensor:
        """Node embeddings ``[T, N, hidden]`` (zero on padding)."""
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h) if self.conv_name == "mlp" else _DENSE[type(conv)](conv, h, adj)
            h = self._between(i, h)
        return h * mask.unsqueeze(-1).to(h.dtype)

    def forward_sparse(self, x: Tensor, edge_index: Tensor | MeanAdjacency
                       | Sequence[Tensor | MeanAdjacency]) -> Tensor:
        """Node embeddings ``[N, hidden]`` by PyG message passing; :obj:`edge_index`
        may be one graph per layer (a sequence of ``num_layers`` edge indices, e.g.
        neighbour samples drawn per layer). A :class:`MeanAdjacency` instead of an
        edge index takes the CSR fast path (``"sage"`` only): same embeddings, one
        sparse product per layer."""
        if isinstance(edge_index, (Tensor, MeanAdjacency)):
            edge_index = [edge_index] * self.num_layers
        elif len(edge_index) != self.num_layers:
            raise ValueError(f"{len(edge_index)} edge indices for {self.num_layers} layers")
        h = x
        for i, conv in enumerate(self.convs):
            if self.conv_name == "mlp":
                h = conv(h)
            elif isinstance(edge_index[i], MeanAdjacency):
                if self.conv_name != "sage":
                    raise ValueError(f"a MeanAdjacency serves 'sage' encoders only, not "
                                     f"{self.conv_name!r}: pass an edge index")
                h = conv.lin_l(edge_index[i](h)) + conv.lin_r(h)   # = SAGEConv(h, edges)
            else:
                h = conv(h, edge_index[i])
            h = self._between(i, h)
        return h

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.forward_sparse(x, edge_index)

    def forward_bipartite(self, x: Tensor, adjacencies: Sequence[MeanAdjacency],
                          roots: Sequence[Tensor]) -> Tensor:
        r"""A ``"sage"`` stack on a sampled neighbourhood, layer by layer (PyG's
        ``NeighborLoader`` form): layer ``l`` maps the rows of its sending node set to
        its receiving set through :obj:`adjacencies[l]` (``[N_{l+1}, N_l]``), with
        each receiving node's own row of the layer's input at ``roots[l]`` (``[N_{l+1}]``
        positions in the sending set) as the root term. On the receiving nodes it
        equals :meth:`forward_sparse` over any graph holding the same in-edges of
        those nodes at each layer."""
        if self.conv_name != "sage":
            raise ValueError(f"forward_bipartite serves 'sage' encoders only, not "
                             f"{self.conv_name!r}")
        if len(adjacencies) != self.num_layers or len(roots) != self.num_layers:
            raise ValueError(f"{len(adjacencies)} layers of neighbourhood for "
                             f"{self.num_layers} layers")
        h = x
        for i, conv in enumerate(self.convs):
            h = conv.lin_l(adjacencies[i](h)) + conv.lin_r(h.index_select(0, roots[i]))
            h = self._between(i, h)
        return h

    @torch.no_grad()
    def forward_chunked(self, x: Tensor, edge_index: Tensor, chunk_size: int = 65536) -> Tensor:
        r""":meth:`forward_sparse` layer by layer over chunks of :obj:`chunk_size`
        destination nodes, for inference on large graphs: each step runs the layer on
        the chunk's in-edges only, so peak memory is ``O(N · hidden)`` plus one
        chunk's edges instead of ``O(E · hidden)`` messages. The result equals
        :meth:`forward_sparse` (GCN's symmetric normalisation uses full-graph degrees).
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        n = x.size(0)
        order = torch.argsort(edge_index[1], stable=True)
        src, dst = edge_index[0, order], edge_index[1, order]
        ptr = torch.searchsorted(dst, torch.arange(0, n + 1, device=dst.device))
        in_degree = (ptr[1:] - ptr[:-1]).to(x.dtype)
        h = x
        for i, conv in enumerate(self.convs):
            outs = []
            for start in range(0, n, chunk_size):
                end = min(n, start + chunk_size)
                if self.conv_name == "mlp":
                    outs.append(conv(h[start:end]))
                    continue
                e_src, e_dst = src[ptr[start]:ptr[end]], dst[ptr[start]:ptr[end]]
                chunk = torch.arange(start, end, device=x.device)
                nodes, inverse = torch.unique(torch.cat([chunk, e_src]), return_inverse=True)
                local_dst = inverse[:end - start]
                local = torch.stack([inverse[end - start:], local_dst[e_dst - start]])
                out = self._local_layer(conv, h[nodes], local, e_src, e_dst, chunk,
                                        local_dst, in_degree)
                outs.append(out[local_dst])
            h = self._between(i, torch.cat(outs))
        return h

    @staticmethod
    def _local_layer(conv, x: Tensor, local: Tensor, e_src: Tensor, e_dst: Tensor,
                     chunk: Tensor, local_dst: Tensor, in_degree: Tensor) -> Tensor:
        """One layer on a chunk's local graph (its in-edges, relabelled)."""
        if not isinstance(conv, GCNConv):
            return conv(x, local)
        # full-graph normalisation D^-1/2 (A + I) D^-1/2, self-loops on the chunk only
        deg = in_degree + 1.0
        weight = torch.cat([(deg[e_src] * deg[e_dst]).rsqrt(), 1.0 / deg[chunk]])
        edges = torch.cat([local, torch.stack([local_dst, local_dst])], 1)
        normalize = conv.normalize
        conv.normalize = False
        try:
            return conv(x, edges, weight)
        finally:
            conv.normalize = normalize

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.conv_name}, {self.in_channels}, "
                f"{self.hidden_channels}, num_layers={self.num_layers}, "
                f"dropout={self.dropout}, norm={self.norm_name})")
