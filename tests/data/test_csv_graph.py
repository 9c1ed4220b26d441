"""The bring-your-own-graph CSV format keeps the dataset's own ids."""
from pathlib import Path

import torch

from socialmeta.data import INTERACTS, load_dataset, read_csv_graph

EXAMPLE = Path(__file__).resolve().parents[2] / "graphs" / "example"


def test_example_graph_ids_features_items_interests():
    g = read_csv_graph(EXAMPLE)
    assert g.num_users == 10 and g.num_friendships == 12
    assert g.raw_ids["user"][:3] == ["alice", "bob", "carol"]  # users.csv order
    assert g.feature_names == ["age", "years_active"]
    assert g["user"].x[g.raw_ids["user"].index("frank")].tolist() == [52.0, 11.0]
    assert g.raw_ids["item"] == ["jazz-101", "rock-7", "folk-3", "pop-55", "techno-2"]
    assert g["item"].x[:, 0].tolist() == [9.5, 12.0, 7.25, 10.0, 8.0]
    ii, w = g.interaction_index, g[INTERACTS].edge_weight
    carol, folk = g.raw_ids["user"].index("carol"), g.raw_ids["item"].index("folk-3")
    assert w[(ii[0] == carol) & (ii[1] == folk)].item() == 22
    assert g.interest_names == ["music", "hiking", "books"]
    mask = g["user"].interest_mask
    assert int(mask.sum()) == 8
    assert not mask[g.raw_ids["user"].index("ivan")] and not mask[g.raw_ids["user"].index("judy")]
    alice = g.raw_ids["user"].index("alice")
    assert g["user"].interests[alice].tolist() == [True, True, False]


def test_integer_ids_sorted_numerically_without_users_csv(tmp_path):
    (tmp_path / "friendships.csv").write_text("src,dst\n10,2\n2,9\n")
    g = read_csv_graph(tmp_path)
    assert g.raw_ids["user"] == ["2", "9", "10"]
    assert g.relations == ["friends"]


def test_load_dataset_csv_uses_registry(tmp_path):
    g = load_dataset("csv", root=EXAMPLE, cache_dir=tmp_path)
    assert torch.equal(g.friend_index, read_csv_graph(EXAMPLE).friend_index)
