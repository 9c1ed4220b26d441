"""Dense and sparse forwards of every encoder agree on uncapped ego-nets."""
import pytest
import torch

from socialmeta.data import generate_synthetic
from socialmeta.models import ENCODERS, Encoder
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


@pytest.fixture(scope="module")
def batch():
    graph = generate_synthetic(400, avg_degree=8, seed=3)
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind="friend", fanouts=(-1, -1), node_cap=400))
    b = sampler.train_batch(epoch=0, batch_index=0, batch_size=6)
    assert (b.node_mask.sum(1) < 400).all()  # uncapped: no ego-net hit the cap
    return b


@pytest.mark.parametrize("conv", ENCODERS)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_dense_equals_sparse(batch, conv, num_layers):
    torch.manual_seed(0)
    enc = Encoder(conv, in_channels=17, hidden_channels=12, num_layers=num_layers,
                  norm="layer", heads=2 if conv == "gat" else 1).eval()
    dense = enc.forward_dense(batch.x, batch.adj, batch.node_mask)
    for t, data in enumerate(batch.to_data_list()):
        sparse = enc.forward_sparse(data.x, data.edge_index)
        n = data.num_nodes
        assert torch.allclose(dense[t, :n], sparse, atol=1e-5), conv
        assert torch.allclose(dense[t, 0], sparse[0], atol=1e-5)  # the center
        assert dense[t, n:].abs().sum() == 0  # padding stays zero


def test_padding_does_not_change_embeddings(batch):
    enc = Encoder("gat", 17, 8, heads=2).eval()
    t = 0
    n = int(batch.node_mask[t].sum())
    a = enc.forward_dense(batch.x[t:t + 1, :n], batch.adj[t:t + 1, :n, :n],
                          batch.node_mask[t:t + 1, :n])
    b = enc.forward_dense(batch.x[t:t + 1], batch.adj[t:t + 1], batch.node_mask[t:t + 1])
    assert torch.allclose(a[0], b[0, :n], atol=1e-6)


def test_mlp_ignores_the_graph(batch):
    enc = Encoder("mlp", 17, 8).eval()
    h1 = enc.forward_dense(batch.x, batch.adj, batch.node_mask)
    h2 = enc.forward_dense(batch.x, torch.zeros_like(batch.adj), batch.node_mask)
    assert torch.equal(h1, h2)
    gcn = Encoder("gcn", 17, 8).eval()
    assert not torch.allclose(gcn.forward_dense(batch.x, batch.adj, batch.node_mask),
                              gcn.forward_dense(batch.x, torch.zeros_like(batch.adj),
                                                batch.node_mask))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown encoder 'gnn'; choose one of \['gat'"):
        Encoder("gnn", 4)
    with pytest.raises(ValueError, match=r"num_layers must be 1 to 3"):
        Encoder("sage", 4, num_layers=4)


def test_list_loss_by_hand():
    import math

    from socialmeta.models.link import list_loss

    # nodes 0 (center), 1 (support friend), 2, 3 (padding), then the outside slot
    scores = torch.tensor([5.0, 2.0, 1.0, 9.0, 0.5])
    node_mask = torch.tensor([True, True, True, False])
    support_local, support_pos = torch.tensor([1, -1]), torch.tensor([1.0, 0.0])
    # query positives: node 2 and one user outside the ego-net; a padded slot (weight 0)
    target_local, target_pos = torch.tensor([2, -1, 3]), torch.tensor([1.0, 1.0, 0.0])
    log_z = math.log(math.exp(1.0) + math.exp(0.5))   # candidates: node 2 and outside
    expected = ((log_z - 1.0) + (log_z - 0.5)) / 2
    got = list_loss(scores, node_mask, support_local, support_pos, target_local, target_pos,
                    "query")
    assert math.isclose(float(got), expected, rel_tol=1e-6)
    # support side: the support friend is a candidate (and the positive)
    log_z = math.log(math.exp(2.0) + math.exp(1.0) + math.exp(0.5))
    got = list_loss(scores, node_mask, support_local, support_pos, support_local, support_pos,
                    "support")
    assert math.isclose(float(got), log_z - 2.0, rel_tol=1e-6)


@pytest.mark.parametrize("conv", ["sage", "gcn", "gin", "gat", "mlp"])
@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_chunked_inference_equals_full_forward(conv, chunk_size):
    torch.manual_seed(0)
    n = 60
    edge_index = torch.randint(n, (2, 300))
    edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    x = torch.randn(n, 5)
    enc = Encoder(conv, 5, 8, num_layers=3, heads=2 if conv == "gat" else 1).eval()
    with torch.no_grad():
        full = enc.forward_sparse(x, edge_index)
    chunked = enc.forward_chunked(x, edge_index, chunk_size)
    assert torch.allclose(chunked, full, atol=1e-5)


def _directed_graph(n=60, e=400, seed=0):
    gen = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, n, (2, e), generator=gen)
    keep = (edges[0] != edges[1]) & (edges[1] >= 5)   # nodes 0-4 receive nothing
    return edges[:, keep]                                # unsorted, with repeats


@pytest.mark.parametrize("layers", [1, 2])
def test_mean_adjacency_equals_pyg_sage(layers):
    """The CSR fast path gives PyG SAGEConv's embeddings and gradients (w.r.t. the
    input and every parameter), also per-layer graphs and under torch.func.grad,
    second order included."""
    from torch.func import functional_call, grad

    from socialmeta.models.encoders import MeanAdjacency

    n = 60
    graphs = [_directed_graph(n, seed=s) for s in range(layers)]
    torch.manual_seed(0)
    enc = Encoder("sage", 5, 8, num_layers=layers).double()
    x = torch.randn(n, 5, dtype=torch.double, requires_grad=True)
    fast = [MeanAdjacency(g, n, torch.double) for g in graphs]
    a = enc.forward_sparse(x, graphs)
    b = enc.forward_sparse(x, fast)
    assert torch.allclose(a, b, atol=1e-12)
    weight = torch.randn_like(a)
    ga = torch.autograd.grad((a * weight).sum(), [x, *enc.parameters()])
    gb = torch.autograd.grad((b * weight).sum(), [x, *enc.parameters()])
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, atol=1e-12)

    params = {k: v.detach() for k, v in enc.named_parameters()}

    def second_order(graph):
        def loss(p):
            h = functional_call(enc, p, (x.detach(), graph), {})
            inner = grad(lambda w: (h @ w).logsumexp(0))(weight[0])
            return (h @ (weight[0] - 0.5 * inner)).logsumexp(0)
        return grad(loss)(params)

    ga, gb = second_order(graphs), second_order(fast)
    assert set(ga) == set(params)
    for k in ga:
        assert torch.allclose(ga[k], gb[k], atol=1e-10), k


def test_mean_adjacency_copies_and_rejects_misuse():
    import copy

    from socialmeta.models.encoders import MeanAdjacency

    graph = _directed_graph()
    adj = MeanAdjacency(graph, 60)
    x = torch.randn(60, 3)
    assert torch.equal(copy.deepcopy(adj)(x), adj(x))
    with pytest.raises(ValueError, match="built for torch.float32, got torch.float64"):
        adj(x.double())
    with pytest.raises(ValueError, match="serves 'sage' encoders only, not 'gcn'"):
        Encoder("gcn", 3, 4).forward_sparse(x, adj)
