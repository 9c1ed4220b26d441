"""Item-model heuristics (``ItemModel(heuristics=True)``): ego-net holder counts of
every task item and the scores they add, checked by hand; and ``task.item_order``."""
import math

import pytest
import torch

from socialmeta.data import generate_synthetic
from socialmeta.models.item import ItemModel, item_heuristics, taste_overlap
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
