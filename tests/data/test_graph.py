"""SocialGraph construction, serialisation, transforms and the networkx graphs."""
import math

import pytest
import torch

from socialmeta.data import (
    GraphValidationError,
    SocialGraph,
    StructuralFeatures,
    davis,
    generate_synthetic,
    graph_info,
    karate,
    structural_features,
)
from socialmeta.data.graph import symmetrize


def test_symmetrize_dedupes_and_sorts():
    ei = symmetrize(torch.tensor([[2, 0, 1, 1], [0, 2, 0, 2]]), 3)
    assert ei.tolist() == [[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]]


def test_link_times_follow_their_links():
    """Times given with links (one way or both, any order) land on both directions of
    their link after symmetrisation; a link given twice with two times is an error
    naming it; the times survive the dict round trip."""
    ids = ["a", "b", "c"]
    g = SocialGraph.from_parts(user_ids=ids, friend_index=torch.tensor([[2, 0, 1], [0, 1, 2]]),
                               friend_time=torch.tensor([30, 10, 20]))
    assert g.has_link_times
    when = {tuple(e): int(t) for e, t in zip(g.friend_index.t().tolist(), g.link_time)}
    assert when == {(0, 1): 10, (1, 0): 10, (1, 2): 20, (2, 1): 20, (0, 2): 30, (2, 0): 30}
    both = SocialGraph.from_parts(user_ids=ids, friend_index=torch.tensor([[0, 1], [1, 0]]),
                                  friend_time=torch.tensor([5, 5]))
    assert both.link_time.tolist() == [5, 5]
    with pytest.raises(GraphValidationError, match=r"link \('a', 'b'\) is given twice"):
        SocialGraph.from_parts(user_ids=ids, friend_index=torch.tensor([[0, 1], [1, 0]]),
                               friend_time=torch.tensor([5, 6]))
    with pytest.raises(GraphValidationError, match="int64 Unix seconds of shape"):
        SocialGraph.from_parts(user_ids=ids, friend_index=torch.tensor([[0], [1]]),
                               friend_time=torch.tensor([5.0]))
    h = SocialGraph.from_dict(g.to_dict())
    assert torch.equal(h.link_time, g.link_time)
    assert not generate_synthetic(50, seed=0).has_link_times


def test_dict_round_trip_is_exact():
    g = generate_synthetic(300, seed=5)
    h = SocialGraph.from_dict(g.to_dict())
    for key in ("friend_index", "x"):
        assert torch.equal(g.to_dict()[key], h.to_dict()[key])
    assert torch.equal(g["user", "interacts", "item"].edge_weight,
                       h["user", "interacts", "item"].edge_weight)
    assert h.raw_ids == g.raw_ids and h.interest_names == g.interest_names


def test_structural_features_by_hand():
    # path 0-1-2 plus edge 1-3: degrees 1, 3, 1, 1
    ei = symmetrize(torch.tensor([[0, 1, 1], [1, 2, 3]]), 4)
    x = structural_features(ei, 4)
    expected = torch.tensor([
        [1, 3, 3, 3],          # node 0: neighbour 1 has degree 3
        [3, 1, 1, 3],          # node 1: neighbours of degree 1; 3 two-hop walks
        [1, 3, 3, 3],
        [1, 3, 3, 3],
    ], dtype=torch.float).log1p()
    assert torch.allclose(x, expected)


def test_structural_transform_does_not_mutate():
    g = karate()
    out = StructuralFeatures()(g)
    assert g["user"].x.shape == (34, 0) and out["user"].x.shape == (34, 4)
    assert math.isclose(float(out["user"].x[33, 0]), math.log1p(17), rel_tol=1e-6)


def test_karate_and_davis():
    k = karate()
    assert (k.num_users, k.num_friendships) == (34, 78)
    assert k.interest_names == ["Mr. Hi", "Officer"]
    assert k["user"].interests.sum(1).eq(1).all()
    d = davis()
    assert (d.num_users, d.num_items, d.interaction_index.size(1)) == (18, 14, 89)
    assert d.num_friendships == 46
    info = graph_info(d)
    assert info["relations"] == ["friends", "items"] and info["interactions"] == 89
