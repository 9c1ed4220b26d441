"""Item-model heuristics (``ItemModel(heuristics=True)``): ego-net holder counts of
every task item and the scores they add, checked by hand; and ``task.item_order``."""
import math

import pytest
import torch
from torch import Tensor

from socialmeta.data import generate_synthetic
from socialmeta.models.item import ItemModel, item_heuristics, item_neighbours, taste_overlap
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


def _tiny():
    # users: center (hop 0), friends 1, 2 (hop 1), 3 (hop 2), padding 4 (hop -1)
    hop = torch.tensor([0, 1, 1, 2, -1])
    # task items (global ids) 7, 3, 9, then a padding slot
    item_ids = torch.tensor([7, 3, 9, -1])
    adj = torch.tensor([[1.0, 0, 0, 0],    # the center holds its support item 7
                        [1, 1, 0, 0],
                        [0, 1, 0, 0],
                        [1, 1, 1, 0],
                        [0, 0, 0, 0]])
    return hop, item_ids, adj


def test_hand_computed_counts_dense_and_sparse():
    hop, item_ids, adj = _tiny()
    # hop 1 holders: item 7 -> 1 (user 1), item 3 -> 2 (users 1, 2), item 9 -> 0
    # hop 2 holders: one each of items 7, 3, 9; two users at hop 1, one at hop 2
    n1, n2 = torch.tensor([1.0, 2, 0, 0]), torch.tensor([1.0, 1, 1, 0])
    expected = torch.stack([n1.log1p(), n2.log1p(), n1 / 2, n2 / 1], -1)
    dense = item_heuristics(hop, adj, 4, num_hops=2)
    sparse = item_heuristics(hop, adj.nonzero().t(), 4, num_hops=2, sparse=True)
    assert torch.allclose(dense, expected) and torch.allclose(sparse, expected)
    assert dense[:, 0].tolist()[:2] == pytest.approx([math.log(2), math.log(3)])


def test_hand_computed_taste_overlap():
    hop, item_ids, adj = _tiny()
    # the center holds {7}; user 1 {7, 3}; user 2 {3}; user 3 {7, 3, 9}; padding none
    overlap = torch.tensor([1.0, 1, 0, 1, 0])
    cosine = torch.tensor([1.0, 1 / math.sqrt(2), 0, 1 / math.sqrt(3), 0])
    expected = torch.stack([overlap.log1p(), cosine], -1)
    assert torch.allclose(taste_overlap(adj, 5, 4), expected)
    assert torch.allclose(taste_overlap(adj.nonzero().t(), 5, 4, sparse=True), expected)


def test_dense_center_overlap_is_the_elementwise_count_bit_for_bit():
    """The dense path counts the center's items each user holds as one product with the
    center's row: on 0/1 item graphs exactly the sum of the elementwise product, batched
    and under vmap, and it matches the sparse path."""
    from torch.func import vmap

    from socialmeta.models.taste import center_item_overlap

    torch.manual_seed(0)
    adj = (torch.rand(6, 40, 300) < 0.2).float()
    expected = (adj * adj[..., :1, :]).sum(-1)
    overlap, count, center = center_item_overlap(adj, 40, 300, False, torch.float32)
    assert torch.equal(overlap, expected) and expected[:, 1:].sum() > 0
    assert torch.equal(count, adj.sum(-1)) and torch.equal(center, count[:, :1])
    batched = vmap(lambda a: center_item_overlap(a, 40, 300, False, torch.float32)[0])(adj)
    assert torch.equal(batched, expected)
    sparse = center_item_overlap(adj[2].nonzero().t(), 40, 300, True, torch.float32)[0]
    assert torch.equal(sparse, expected[2])


def test_scores_add_bias_and_count_mlp_per_item():
    """score = user . e_item + b_item + MLP(counts, log(1 + sum of holder weights));
    with a constant holder weight w the last input is log(1 + w * holders)."""
    hop, item_ids, adj = _tiny()
    torch.manual_seed(0)
    num_items, n = 12, hop.numel()
    model = ItemModel(0, num_items, num_hops=2, hidden_channels=8, heuristics=True)
    torch.nn.init.normal_(model.item_bias.weight)
    with torch.no_grad():  # every non-center user weighs softplus(0.5)
        model.holder.weight.zero_()
        model.holder.bias.fill_(0.5)
    x, graph = torch.zeros(n, 0), torch.zeros(n, n)
    graph[0, 1] = graph[1, 0] = graph[0, 2] = graph[2, 0] = graph[1, 3] = graph[3, 1] = 1
    mask = hop >= 0
    targets = torch.arange(num_items)
    got = model(x, graph, hop, item_ids, adj, targets, mask)
    user = model(x, graph, hop, item_ids, adj, None, mask)
    holders = torch.tensor([2.0, 3, 1])  # items 7, 3, 9 among users 1-3
    w = torch.nn.functional.softplus(torch.tensor(0.5))
    inputs = torch.zeros(num_items, 5)
    inputs[item_ids[:3], :4] = item_heuristics(hop, adj, 4, num_hops=2)[:3]
    inputs[item_ids[:3], 4] = torch.log1p(w * holders)
    expected = (model.items(targets) @ user + model.item_bias.weight[:, 0]
                + model.heuristic(inputs)[:, 0])
    assert torch.allclose(got, expected, atol=1e-6)
    # items outside the task differ only by their embedding and bias
    outside = torch.tensor([0, 1, 2])
    rest = got[outside] - model.items(outside) @ user - model.item_bias.weight[outside, 0]
    assert torch.allclose(rest, model.heuristic(torch.zeros(1, 5))[0].expand(3), atol=1e-6)


@pytest.fixture(scope="module")
def graph():
    return generate_synthetic(300, avg_degree=8, num_items=120, avg_items=15, seed=5)


def test_shared_item_order_keeps_the_most_held_items(graph):
    split = split_users(graph, seed=0)
    cfg = dict(kind="item", node_cap=24, fanouts=(8, 4))
    full = TaskSampler(graph, split, TaskConfig(**cfg, item_cap=1000)).train_batch(0, 0, 8)
    capped = TaskSampler(graph, split, TaskConfig(**cfg, item_cap=30, item_order="shared")
                         ).train_batch(0, 0, 8)
    for name in ("center", "node_ids", "support_ids", "query_ids"):
        assert torch.equal(getattr(full, name), getattr(capped, name)), name
    truncated = 0
    for t in range(full.num_tasks):
        ids = full.item_ids[t][full.item_mask[t]]
        truncated += ids.numel() > 30
        held = full.item_adj[t, 1:, :ids.numel()].sum(0)  # holders other than the center
        support = set(full.support_ids[t][full.support_label[t] > 0].tolist())
        kept = capped.item_ids[t][capped.item_mask[t]].tolist()
        assert len(kept) == min(30, ids.numel())
        assert set(kept[:len(support)]) == support  # the visible items come first
        count = dict(zip(ids.tolist(), held.tolist()))
        rest = [count[i] for i in kept[len(support):]]
        assert rest == sorted(rest, reverse=True)  # most held first
        left = [count[i] for i in ids.tolist() if i not in kept]
        if left and rest:
            assert max(left) <= min(rest)
        # the adjacency of the kept items is the uncapped one
        local = {i: j for j, i in enumerate(ids.tolist())}
        cols = torch.tensor([local[i] for i in kept])
        assert torch.equal(capped.item_adj[t, :, :len(kept)], full.item_adj[t][:, cols])
    assert truncated >= full.num_tasks // 2  # the cap bites


def test_item_order_validation():
    with pytest.raises(ValueError, match="unknown task item_order 'popular'"):
        TaskConfig(kind="item", item_order="popular")


def _top_cosines(held: Tensor, k: int) -> Tensor:
    r = held.double()
    count = r.sum(0).clamp(min=1)
    cos = (r.t() @ r) / (count[:, None] * count[None, :]).sqrt()
    cos.fill_diagonal_(0)
    return cos


def test_item_neighbours_are_the_top_cosines():
    """``item_neighbours``: every item's k most similar items by cosine between user
    columns, never itself, zero-weight padding, equal for any chunk size; a group's
    table is the one computed without its users."""
    torch.manual_seed(0)
    users, items, k = 40, 15, 4
    held = torch.rand(users, items) < 0.2
    held[:, 14] = False  # an item nobody holds: no neighbours
    pairs = held.nonzero().t()
    pairs = torch.cat([pairs, pairs[:, :5]], 1)  # duplicates count once
    group = torch.arange(users) % 3
    index, weight = item_neighbours(pairs, items, k, group, 3)
    assert index.shape == weight.shape == (4, items, k)
    for g in range(4):
        kept = held & (group != g).unsqueeze(1) if g < 3 else held
        cos = _top_cosines(kept, k)
        assert torch.allclose(weight[g], cos.topk(k, 1).values.float())
        for i in range(items):
            nonzero = weight[g, i] > 0
            assert i not in index[g, i][nonzero].tolist()
            assert torch.allclose(cos[i, index[g, i][nonzero]].float(), weight[g, i][nonzero])
            assert (index[g, i][~nonzero] == 0).all()
        assert weight[g, 14].abs().sum() == 0
    chunked = item_neighbours(pairs, items, k, group, 3, chunk_pairs=10)
    assert torch.equal(chunked[0], index) and torch.equal(chunked[1], weight)
    alone = item_neighbours(pairs, items, k)  # no groups: the table of everyone
    assert torch.equal(alone[0][0], index[3]) and torch.equal(alone[1][0], weight[3])
    with pytest.raises(ValueError, match=r"item ids must lie in \[0, 10\)"):
        item_neighbours(pairs, 10, k)
    with pytest.raises(ValueError, match="k must be >= 1"):
        item_neighbours(pairs, items, 0)


@pytest.mark.parametrize("sparse", [False, True])
def test_knn_input_equals_the_itemknn_baseline(graph, sparse):
    """With every neighbour kept, the model's ItemKNN input of every item outside a
    test user's visible items is the ItemKNN baseline's score on the same tasks (over
    the training users' interactions): the same signal, two implementations."""
    from socialmeta.baselines.item import ItemKNN
    from socialmeta.data import INTERACTS

    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split, TaskConfig(kind="item", node_cap=24, fanouts=(8, 4),
                                                   item_cap=1000, item_order="shared"))
    batch = sampler.eval_batch(split.test[:6], 3)
    baseline = ItemKNN().fit(sampler).scores(batch)
    model = ItemModel(0, graph.num_items, num_hops=2, hidden_channels=8, heuristics=True,
                      item_knn=graph.num_items)
    model.set_item_neighbours(sampler.observed[INTERACTS].edge_index, split.train)
    assert model.knn_index.shape == (6 * graph.num_items, graph.num_items)
    for t in range(batch.num_tasks):
        item_adj = batch.item_adj[t]
        if sparse:
            item_adj = item_adj.nonzero().t()
        got = model._knn_features(batch.item_ids[t], item_adj, sparse, torch.float32,
                                  batch.center[t])
        support = batch.support_ids[t][batch.support_label[t] > 0]
        outside = torch.ones(graph.num_items, dtype=torch.bool)
        outside[support] = False
        assert support.numel() == 3
        assert torch.allclose(got[outside, 0].expm1(), baseline[t, outside], atol=1e-5)
        assert torch.allclose(got[:, 1], got[:, 0].expm1() / 3, atol=1e-5)
        assert baseline[t, outside].max() > 0


def test_a_training_center_never_reads_its_own_items(graph):
    """Leakage: for training tasks, the ItemKNN input is what the table of the other
    training users gives (the center's fold left out), so removing the center's own
    interactions from the data changes nothing; with the all-users table it would."""
    from socialmeta.data import INTERACTS

    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split, TaskConfig(kind="item", node_cap=24, fanouts=(8, 4),
                                                   item_cap=1000, item_order="shared"))
    batch = sampler.train_batch(0, 0, 6)
    pairs = sampler.observed[INTERACTS].edge_index
    model = ItemModel(0, graph.num_items, num_hops=2, hidden_channels=8, heuristics=True,
                      item_knn=graph.num_items)
    model.set_item_neighbours(pairs, split.train, folds=4)
    fold = model.knn_group[split.train]
    assert torch.bincount(fold).tolist() == [split.train.numel() // 4 + (i < split.train.numel() % 4)
                                             for i in range(4)]
    assert (model.knn_group[split.test] == 4).all()
    changed = 0
    for t in range(batch.num_tasks):
        center = batch.center[t]
        args = (batch.item_ids[t], batch.item_adj[t], False, torch.float32)
        got = model._knn_features(*args, center)
        # the center's fold, computed without the center
        same_fold = split.train[fold == model.knn_group[center]]
        mine = torch.isin(pairs[0], same_fold) & (pairs[0] != center)
        other = ItemModel(0, graph.num_items, num_hops=2, hidden_channels=8, heuristics=True,
                          item_knn=graph.num_items)
        other.set_item_neighbours(pairs[:, ~torch.isin(pairs[0], same_fold)])
        assert torch.allclose(got, other._knn_features(*args), atol=1e-6)
        assert mine.any()
        # the table of all training users counts the center's own items
        everyone = model._knn_features(*args)
        query = batch.query_ids[t][batch.query_label[t] > 0]
        changed += bool((everyone[query, 0] > got[query, 0] + 1e-6).any())
    assert changed == batch.num_tasks


def test_item_knn_needs_heuristics():
    with pytest.raises(ValueError, match="only with heuristics=True"):
        ItemModel(0, 10, num_hops=2, item_knn=5)
    with pytest.raises(ValueError, match="no item neighbours"):
        ItemModel(0, 10, num_hops=2, heuristics=True).set_item_neighbours(
            torch.zeros(2, 0, dtype=torch.long))


@pytest.mark.parametrize("heuristics,item_knn,features", [(False, 0, False), (True, 0, False),
                                                          (True, 7, True)])
@pytest.mark.parametrize("prototype", [False, True])
def test_all_items_path_equals_scoring_every_id(graph, heuristics, item_knn, features,
                                                prototype):
    """``all_items=True`` (matrix-vector products with the item table; ProtoNet's
    distances in closed form) gives the scores of ``target_ids = arange(num_items)``
    (a gathered row per item), dense and sparse, with and without the count MLP,
    ItemKNN and item features."""
    from socialmeta.data import INTERACTS

    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split, TaskConfig(kind="item", node_cap=24, fanouts=(8, 4),
                                                   item_cap=40, item_order="shared"))
    batch = sampler.eval_batch(split.test[:4], 3)
    torch.manual_seed(1)
    feats = torch.rand(graph.num_items, 5) if features else None
    model = ItemModel(batch.x.size(-1), graph.num_items, num_hops=2, hidden_channels=8,
                      heuristics=heuristics, item_knn=item_knn, item_features=feats)
    if heuristics:
        torch.nn.init.normal_(model.item_bias.weight)
    if item_knn:
        model.set_item_neighbours(sampler.observed[INTERACTS].edge_index, split.train)
    every = torch.arange(graph.num_items)
    for t in range(batch.num_tasks):
        support = ((batch.support_ids[t], batch.support_label[t], batch.support_mask[t])
                   if prototype else None)
        args = (batch.x[t], batch.adj[t], batch.hop[t], batch.item_ids[t], batch.item_adj[t])
        kwargs = dict(mask=batch.node_mask[t], support=support, center=batch.center[t])
        want = model(*args, every, **kwargs)
        got = model(*args, None, all_items=True, **kwargs)
        assert got.shape == (graph.num_items,)
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
        n = int(batch.node_mask[t].sum())
        sparse = (batch.x[t][:n], batch.adj[t][:n, :n].nonzero().t(), batch.hop[t][:n],
                  batch.item_ids[t], batch.item_adj[t][:n].nonzero().t())
        got_sparse = model(*sparse, None, sparse=True, all_items=True, support=support,
                           center=batch.center[t])
        assert torch.allclose(got_sparse, want, atol=1e-5)
    with pytest.raises(ValueError, match="target_ids=None"):
        model(*args, every, all_items=True, **kwargs)
