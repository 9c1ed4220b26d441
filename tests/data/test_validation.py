"""Every validation rule: the error type, and a message naming the line or id."""
from pathlib import Path

import pytest
import torch

from socialmeta.data import GraphValidationError, SocialGraph, read_csv_graph, read_lastfm


def write(root: Path, **files: str) -> Path:
    for name, text in files.items():
        (root / f"{name}.csv").write_text(text)
    return root


def test_csv_self_loop_names_line(tmp_path):
    write(tmp_path, friendships="src,dst\na,b\nc,c\n")
    with pytest.raises(GraphValidationError, match=r"friendships\.csv, line 3: self-loop") as e:
        read_csv_graph(tmp_path)
    assert "'c'" in str(e.value)


def test_self_loop_opt_in_repair_is_reported(tmp_path):
    write(tmp_path, friendships="src,dst\na,b\nc,c\nb,c\n")
    g = read_csv_graph(tmp_path, drop_self_loops=True)
    assert g.num_friendships == 2
    assert any("dropped 1 self-loop" in r for r in g.repairs)


def test_duplicate_edge_names_both_lines(tmp_path):
    write(tmp_path, friendships="src,dst\na,b\nb,c\na,b\n")
    with pytest.raises(GraphValidationError, match=r"line 4: duplicate friendship .*line 2"):
        read_csv_graph(tmp_path)


def test_reverse_listing_is_a_duplicate(tmp_path):
    write(tmp_path, friendships="src,dst\na,b\nb,c\nb,a\n")
    with pytest.raises(GraphValidationError, match=r"line 4: duplicate friendship 'b'-'a'"):
        read_csv_graph(tmp_path)
    # ... unless the file declares that it lists both directions
    g = read_csv_graph(tmp_path, symmetric=True)
    assert g.num_friendships == 2


def test_dedupe_reports_dropped_rows(tmp_path, caplog):
    write(tmp_path, friendships="src,dst\na,b\nb,a\na,b\nb,c\n")
    g = read_csv_graph(tmp_path, dedupe=True)
    assert g.num_friendships == 2
    assert g.repairs == [f"{tmp_path / 'friendships.csv'}: dropped 2 duplicate friendship row(s)"]
    assert "dropped 2 duplicate" in caplog.text


def test_unknown_user_id_names_line(tmp_path):
    write(tmp_path, friendships="src,dst\na,b\nb,zed\n", users="user_id,age\na,1\nb,2\n")
    with pytest.raises(GraphValidationError,
                       match=r"friendships\.csv, line 3: unknown user id 'zed' in column 'dst'"):
        read_csv_graph(tmp_path)


def test_out_of_range_index():
    with pytest.raises(GraphValidationError, match=r"user index 5 .*\[0, 3\)"):
        SocialGraph.from_parts(user_ids=["a", "b", "c"], friend_index=torch.tensor([[0], [5]]))
    with pytest.raises(GraphValidationError, match=r"user index -1"):
        SocialGraph.from_parts(user_ids=["a", "b"], friend_index=torch.tensor([[-1], [0]]))


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_feature_names_user_and_line(tmp_path, bad):
    write(tmp_path, friendships="src,dst\na,b\n", users=f"user_id,age,score\na,1,2\nb,3,{bad}\n")
    with pytest.raises(GraphValidationError,
                       match=r"users\.csv, line 3: user_id 'b' has .*inf|nan") as e:
        read_csv_graph(tmp_path)
    assert "'score'" in str(e.value) and "line 3" in str(e.value)


def test_non_finite_tensor_features_name_user():
    with pytest.raises(GraphValidationError, match=r"features of user 'b' has nan in column 1"):
        SocialGraph.from_parts(user_ids=["a", "b"], friend_index=torch.tensor([[0], [1]]),
                               x=torch.tensor([[0.0, 1.0], [2.0, float("nan")]]))


def test_empty_graph(tmp_path):
    write(tmp_path, friendships="src,dst\n")
    with pytest.raises(GraphValidationError, match=r"friendships\.csv: empty graph"):
        read_csv_graph(tmp_path)
    with pytest.raises(GraphValidationError, match=r"empty"):
        SocialGraph.from_parts(user_ids=[], friend_index=torch.zeros(2, 0, dtype=torch.long))
    (tmp_path / "friendships.csv").write_text("")
    with pytest.raises(GraphValidationError, match=r"empty file"):
        read_csv_graph(tmp_path)


def test_label_shape_mismatch():
    with pytest.raises(GraphValidationError, match=r"interest labels have shape \(2, 3\)"):
        SocialGraph.from_parts(user_ids=["a", "b"], friend_index=torch.tensor([[0], [1]]),
                               interests=torch.zeros(2, 3), interest_names=["x", "y"])
    with pytest.raises(GraphValidationError, match=r"interest mask has shape"):
        SocialGraph.from_parts(user_ids=["a", "b"], friend_index=torch.tensor([[0], [1]]),
                               interests=torch.zeros(2, 1), interest_names=["x"],
                               interest_mask=torch.ones(3))


def test_feature_shape_mismatch():
    with pytest.raises(GraphValidationError, match=r"user features have shape \(3, 2\)"):
        SocialGraph.from_parts(user_ids=["a", "b"], friend_index=torch.tensor([[0], [1]]),
                               x=torch.zeros(3, 2))


def test_interaction_with_missing_item(tmp_path):
    write(tmp_path, friendships="src,dst\na,b\n", items="item_id\ni1\ni2\n",
          interactions="user_id,item_id\na,i1\nb,i9\n")
    with pytest.raises(GraphValidationError,
                       match=r"interactions\.csv, line 3: unknown item id 'i9'"):
        read_csv_graph(tmp_path)


def test_lastfm_interaction_with_missing_artist(tmp_path, lastfm_root):
    for f in lastfm_root.iterdir():
        if f.suffix == ".dat":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    plays = tmp_path / "user_artists.dat"
    plays.write_text(plays.read_text() + "2\t999999\t5\n")
    with pytest.raises(GraphValidationError,
                       match=r"user_artists\.dat, line 92836: unknown item id '999999'"):
        read_lastfm(tmp_path)


def test_duplicate_interaction(tmp_path):
    write(tmp_path, friendships="src,dst\na,b\n",
          interactions="user_id,item_id,weight\na,i1,2\nb,i1,1\na,i1,5\n")
    with pytest.raises(GraphValidationError, match=r"line 4: duplicate interaction \('a', 'i1'\)"):
        read_csv_graph(tmp_path)


@pytest.mark.parametrize("text,match", [
    ("src,dst\na,b\nc,d,e\n", r"friendships\.csv, line 3: unparsable row: 3 field"),
    ("src,dst\na,b\nc\n", r"line 3: unparsable row: 1 field"),
    ("from,to\na,b\n", r"line 1: missing column\(s\) \['src', 'dst'\]"),
])
def test_unparsable_rows(tmp_path, text, match):
    write(tmp_path, friendships=text)
    with pytest.raises(GraphValidationError, match=match):
        read_csv_graph(tmp_path)


def test_unparsable_number(tmp_path):
    write(tmp_path, friendships="src,dst\na,b\n",
          interactions="user_id,item_id,weight\na,i1,2\nb,i1,lots\n")
    with pytest.raises(GraphValidationError,
                       match=r"interactions\.csv, line 3: unparsable value 'lots' in column 'weight'"):
        read_csv_graph(tmp_path)


def test_duplicate_user_in_users_csv(tmp_path):
    write(tmp_path, friendships="src,dst\na,b\n", users="user_id\na\nb\na\n")
    with pytest.raises(GraphValidationError, match=r"users\.csv, line 4: duplicate user id 'a'"):
        read_csv_graph(tmp_path)


def test_missing_required_file(tmp_path):
    with pytest.raises(GraphValidationError, match=r"friendships\.csv: file not found"):
        read_csv_graph(tmp_path)
