"""The synthetic generator: deterministic, and its planted structure is there."""
import torch

from socialmeta.data import generate_synthetic


def _same(a, b) -> bool:
    return (torch.equal(a.friend_index, b.friend_index)
            and torch.equal(a.interaction_index, b.interaction_index)
            and torch.equal(a["user"].x, b["user"].x)
            and torch.equal(a["user"].interests, b["user"].interests))


def test_same_seed_same_graph_other_seed_other_graph():
    assert _same(generate_synthetic(500, seed=3), generate_synthetic(500, seed=3))
    assert not _same(generate_synthetic(500, seed=3), generate_synthetic(500, seed=4))


def test_sizes_and_relations():
    g = generate_synthetic(1000, avg_degree=12, avg_items=5, seed=0)
    assert g.num_users == 1000 and g.num_friendships == 6000
    assert g.interaction_index.size(1) == 5000 and g.num_items == 100
    assert g.relations == ["friends", "items", "features", "interests"]
    assert g["user"].x.shape == (1000, 16) and g["user"].interests.shape == (1000, 20)


def test_heavy_tailed_degrees():
    g = generate_synthetic(5000, seed=1)
    deg = torch.bincount(g.friend_index[0], minlength=g.num_users).float()
    assert deg.max() > 8 * deg.median()


def _pair_rate(labels: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> float:
    """Mean Jaccard similarity of the label sets of the pairs (src, dst)."""
    a, b = labels[src].float(), labels[dst].float()
    inter = (a * b).sum(1)
    union = ((a + b) > 0).float().sum(1).clamp(min=1)
    return float((inter / union).mean())


def test_homophily_of_interests_items_and_features():
    g = generate_synthetic(3000, seed=2)
    src, dst = g.friend_index
    gen = torch.Generator().manual_seed(0)
    rs = torch.randint(0, g.num_users, (src.numel(),), generator=gen)
    rd = torch.randint(0, g.num_users, (src.numel(),), generator=gen)
    y = g["user"].interests
    assert _pair_rate(y, src, dst) > 2 * _pair_rate(y, rs, rd)
    items = torch.zeros(g.num_users, g.num_items, dtype=torch.bool)
    items[g.interaction_index[0], g.interaction_index[1]] = True
    assert _pair_rate(items, src, dst) > 2 * _pair_rate(items, rs, rd)
    x = torch.nn.functional.normalize(g["user"].x, dim=1)
    assert (x[src] * x[dst]).sum(1).mean() > (x[rs] * x[rd]).sum(1).mean() + 0.2
