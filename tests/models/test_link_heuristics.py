"""Heuristic input channels of the friend model (common neighbours and Adamic-Adar
through the support, feature and item-set cosine with the center)."""
import math

import torch

from socialmeta.data import generate_synthetic
from socialmeta.models.link import LinkModel, heuristic_inputs
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


def _tiny():
    # center 0 with support friends 1 and 2; 3 ~ {1, 2}; 4 ~ {1}; 5 ~ {3}
    edges = [(0, 1), (0, 2), (1, 3), (2, 3), (1, 4), (3, 5)]
    adj = torch.zeros(6, 6)
    for a, b in edges:
        adj[a, b] = adj[b, a] = 1.0
    is_support = torch.tensor([0.0, 1, 1, 0, 0, 0])
    x = torch.tensor([[1.0, 0], [1, 1], [0, 1], [2, 0], [0, 0], [-1, 0]])
    return adj, is_support, x


def test_hand_computed_channels():
    adj, is_support, x = _tiny()
    degree = adj.sum(-1)  # 2, 3, 2, 3, 1, 1
    # center items {a, b}; node 3 items {b, c}: overlap 1, cosine 1 / sqrt(2 * 2)
    overlap = torch.tensor([2.0, 0, 0, 1, 0, 0])
    count = torch.tensor([2.0, 0, 0, 2, 1, 0])
    out = heuristic_inputs(x, degree, is_support, lambda v: adj @ v,
                           (overlap, count, count[:1]))
    cn, aa, feat, taste = out.unbind(-1)
    assert torch.allclose(cn, torch.tensor([2.0, 0, 0, 2, 1, 0]).log1p())
    w1, w2 = 1 / math.log1p(3), 1 / math.log1p(2)  # 1/log(1 + deg) of friends 1 and 2
    assert torch.allclose(aa, torch.tensor([w1 + w2, 0, 0, w1 + w2, w1, 0]))
    assert torch.allclose(feat, torch.tensor([1.0, 1 / math.sqrt(2), 0, 1, 0, -1]))
    assert torch.allclose(taste, torch.tensor([1.0, 0, 0, 0.5, 0, 0]))
    # a hidden center row (zeros) gives zero feature cosine everywhere
    hidden = x.clone()
    hidden[0] = 0
    assert heuristic_inputs(hidden, degree, is_support, lambda v: adj @ v)[:, 2].abs().sum() == 0


def test_dense_equals_sparse_with_items():
    graph = generate_synthetic(300, avg_degree=8, num_items=60, seed=1)
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(
        kind="friend", node_cap=32, fanouts=(10, 5), item_cap=40,
        context=("items", "features"), seed=0))
    batch = sampler.eval_batch(sampler.eval_centers("test", 3)[:5], 3).apply(
        lambda t: t.double() if t.is_floating_point() else t)
    torch.manual_seed(0)
    model = LinkModel(sampler.in_channels, num_hops=2, hidden_channels=8,
                      num_items=graph.num_items, heuristics=True).double()
    dense = model.embed_dense(batch.x, batch.adj, batch.node_mask, batch.hop,
                              batch.support_local, batch.support_label, batch.item_ids,
                              batch.item_adj)
    checked = 0
    for t, data in enumerate(batch.to_data_list()):
        sparse = model.embed_sparse(data.x, data.edge_index, data.hop, data.support_local,
                                    data.support_label, data.item_ids, data.item_edge_index)
        n = data.num_nodes
        assert torch.allclose(dense[t, :n], sparse, atol=1e-10)
        checked += int(data.item_edge_index.size(1) > 0)
    assert checked > 0  # the item channel was exercised

