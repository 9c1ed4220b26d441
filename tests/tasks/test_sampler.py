"""Determinism, equivalence with k_hop_subgraph, batching and PyG conversion."""
import pytest
import torch
from torch_geometric.utils import k_hop_subgraph

from socialmeta.data import generate_synthetic
from socialmeta.tasks import TaskConfig, TaskSampler, split_users, task_batches
from socialmeta.tasks.egonet import rank_in_group
from socialmeta.tasks.random import priority


@pytest.fixture(scope="module")
def graph():
    return generate_synthetic(600, avg_degree=10, seed=7)


def _equal(a, b):
    assert a.kind == b.kind
    for k, v in a.tensors().items():
        assert torch.equal(v, b.tensors()[k]), k


@pytest.mark.parametrize("kind", ["friend", "item", "interest"])
def test_task_independent_of_batch_size(graph, kind):
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind=kind, seed=5))
    whole = sampler.train_batch(epoch=2, batch_index=0, batch_size=12)
    halves = [sampler.train_batch(epoch=2, batch_index=i, batch_size=4) for i in range(3)]
    for i, half in enumerate(halves):
        _equal(half, whole.apply(lambda t, i=i: t[4 * i:4 * i + 4]))
    # any grouping of indices, in any order
    shuffled = sampler.train_tasks(2, torch.tensor([7, 3, 11]))
    _equal(shuffled, whole.apply(lambda t: t[[7, 3, 11]]))
    assert not torch.equal(sampler.train_batch(3, 0, 12).center, whole.center) or \
        not torch.equal(sampler.train_batch(3, 0, 12).support_ids, whole.support_ids)


def test_same_batches_whatever_the_number_of_workers(graph):
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="friend"))
    serial = list(task_batches(sampler, epoch=1, batch_size=8, num_batches=4))
    parallel = list(task_batches(sampler, epoch=1, batch_size=8, num_batches=4, num_workers=2))
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel):
        _equal(a, b)
    resumed = list(task_batches(sampler, epoch=1, batch_size=8, num_batches=4, start=2))
    _equal(resumed[0], serial[2])


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_uncapped_egonet_equals_k_hop_subgraph(graph, hops):
    split = split_users(graph, seed=0)
    # interest tasks see all of the center's (training) friendships
    sampler = TaskSampler(graph, split, TaskConfig(kind="interest", fanouts=(-1,) * hops,
                                                   node_cap=graph.num_users))
    observed = sampler.observed.friend_index
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=6)
    for t in range(batch.num_tasks):
        center = int(batch.center[t])
        subset, edge_index, _, _ = k_hop_subgraph(center, hops, observed, relabel_nodes=False,
                                                  num_nodes=graph.num_users)
        ids = batch.node_ids[t][batch.node_mask[t]]
        assert sorted(ids.tolist()) == sorted(subset.tolist())
        assert int(ids[0]) == center
        i, j = batch.adj[t].nonzero().t()
        mine = set(zip(batch.node_ids[t][i].tolist(), batch.node_ids[t][j].tolist()))
        assert mine == set(zip(*edge_index.tolist()))
        # hop distances are the BFS distances
        hop = batch.hop[t][batch.node_mask[t]]
        for h in range(hops + 1):
            within, _, _, _ = k_hop_subgraph(center, h, observed, num_nodes=graph.num_users)
            assert set(ids[hop <= h].tolist()) == set(within.tolist())


def test_uncapped_friend_task_equals_k_hop_without_query_edges(graph):
    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split, TaskConfig(kind="friend", fanouts=(-1, -1),
                                                   node_cap=graph.num_users))
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=6)
    src, dst = sampler.observed.friend_index
    for t in range(batch.num_tasks):
        c = int(batch.center[t])
        support = batch.support_ids[t][batch.support_mask[t] & (batch.support_label[t] == 1)]
        keep = ((src != c) & (dst != c)) | torch.isin(torch.where(src == c, dst, src), support)
        subset, edge_index, _, _ = k_hop_subgraph(c, 2, torch.stack([src[keep], dst[keep]]),
                                                  num_nodes=graph.num_users)
        ids = batch.node_ids[t][batch.node_mask[t]]
        assert sorted(ids.tolist()) == sorted(subset.tolist())
        i, j = batch.adj[t].nonzero().t()
        assert set(zip(ids[i].tolist(), ids[j].tolist())) == set(zip(*edge_index.tolist()))


def test_fanout_caps_and_node_cap(graph):
    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split, TaskConfig(kind="interest", fanouts=(3, 2),
                                                   node_cap=8))
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=32)
    assert (batch.node_mask.sum(1) <= 8).all()
    assert ((batch.hop == 1).sum(1) <= 3).all()
    # without the node cap: hop 2 has at most 3 * 2 nodes
    wide = TaskSampler(graph, split, TaskConfig(kind="interest", fanouts=(3, 2), node_cap=64))
    b = wide.train_batch(epoch=0, batch_index=0, batch_size=32)
    assert ((b.hop == 2).sum(1) <= 6).all() and ((b.hop == 2).sum(1) > 0).any()
    assert torch.equal(b.adj, b.adj.transpose(1, 2)) and b.adj.diagonal(0, 1, 2).eq(0).all()


def test_to_data_list_matches_dense(graph):
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="item"))
    batch = sampler.train_batch(epoch=0, batch_index=0, batch_size=5)
    data = batch.to_data_list()
    pyg = batch.to_pyg_batch()
    assert pyg.num_graphs == 5
    for t, d in enumerate(data):
        n = d.num_nodes
        assert n == int(batch.node_mask[t].sum())
        adj = torch.zeros(n, n)
        adj[d.edge_index[0], d.edge_index[1]] = 1
        assert torch.equal(adj, batch.adj[t, :n, :n])
        assert torch.equal(d.support_ids, batch.support_ids[t][batch.support_mask[t]])
        assert d.item_edge_index.size(1) == int(batch.item_adj[t].sum())


def test_rank_in_group():
    group = torch.tensor([1, 0, 1, 1, 0])
    prio = torch.tensor([5, 2, 1, 9, 1])
    assert rank_in_group(group, prio).tolist() == [1, 1, 0, 2, 0]


def test_batch_moves_in_one_call(graph):
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="friend"))
    batch = sampler.train_batch(0, 0, 4)
    moved = batch.to("cpu")
    _equal(batch, moved)
    assert moved.adj.shape == (4, 64, 64) and moved.support_ids.shape == (4, 20)


@pytest.mark.parametrize("val,test", [(-0.1, 0.1), (0.1, -0.1), (0.5, 0.5), (0.7, 0.4)])
def test_split_rejects_bad_fractions(graph, val, test):
    with pytest.raises(ValueError, match=r"must be >= 0 and sum to < 1"):
        split_users(graph, val_fraction=val, test_fraction=test)


def test_step_batches_in_workers_map_shared_tensors_and_equal_serial(graph):
    from socialmeta.tasks.loader import step_batches

    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="item"))
    index = torch.arange(3, 9)
    serial = list(step_batches(sampler, 5, 9, index))
    assert [s for s, _ in serial] == [5, 6, 7, 8]
    _equal(serial[1][1], sampler.train_tasks(6, index))
    tensors = list(sampler._tensors())
    assert len(tensors) > 10 and not any(t.is_shared() for t in tensors)
    parallel = list(step_batches(sampler, 5, 9, index, num_workers=2))
    assert all(t.is_shared() for t in sampler._tensors())  # workers map, not copy
    assert [s for s, _ in parallel] == [5, 6, 7, 8]
    for (_, a), (_, b) in zip(serial, parallel):
        _equal(a, b)


def test_partial_epoch_selection_equals_the_full_permutation(graph):
    """train_tasks picks the first positions of an epoch's permutation with topk when
    they are few; the centers equal those of the full sort."""
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="friend"))
    centers = sampler.train_centers()
    for epoch in (0, 3, 11):
        prio = priority(sampler.config.seed, epoch, centers)
        full = centers[torch.argsort(prio)]
        index = torch.tensor([5, 0, 17, 3])
        assert torch.equal(sampler._epoch_centers(epoch, index), full[index])
        assert sampler._epoch_cache is None or sampler._epoch_cache[0] != epoch  # no sort
        many = torch.arange(centers.numel() + 7)  # wraps around: the full sort
        assert torch.equal(sampler._epoch_centers(epoch, many), full[many % centers.numel()])
