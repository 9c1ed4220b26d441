"""RecBole atomic files load without conversion to the same SocialGraph as the
equivalent CSV folder; bad headers and types get the CSV format's clear errors."""
import pytest
import torch

from socialmeta.data import GraphValidationError, load_dataset, read_csv_graph, read_recbole

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         "u1\ti1\t5\t978300760\n"
         "u1\ti2\t3\t978302109\n"
         "u2\ti1\t4\t978301968\n"
         "u3\ti3\t1\t978300275\n"
         "u4\ti2\t2.5\t978824291\n")
NET = ("source_id:token\ttarget_id:token\n"
       "u1\tu2\n"
       "u2\tu1\n"          # the same link the other way: one friendship
       "u2\tu3\n"
       "u4\tu1\n")
USER = ("user_id:token\tage:float\tgender:token\n"
        "u1\t24\tF\n"
        "u2\t53\tM\n"
        "u3\t23\tM\n"
        "u4\t33\tF\n")
ITEM = ("item_id:token\tyear:float\tgenre:token_seq\n"
        "i1\t1995\tAnimation Comedy\n"
        "i2\t1995\tAdventure\n"
        "i3\t1996\tComedy Drama\n")


def _recbole(tmp_path, **files):
    root = tmp_path / "rb"
    root.mkdir(exist_ok=True)
    contents = {"inter": INTER, "net": NET, "user": USER, "item": ITEM, **files}
    for suffix, text in contents.items():
        if text is not None:
            (root / f"ml.{suffix}").write_text(text)
    return root


def _csv(tmp_path):
    root = tmp_path / "csv"
    root.mkdir()
    (root / "friendships.csv").write_text("src,dst\nu1,u2\nu2,u3\nu4,u1\n")
    (root / "users.csv").write_text("user_id,age,gender=F,gender=M\n"
                                    "u1,24,1,0\nu2,53,0,1\nu3,23,0,1\nu4,33,1,0\n")
    (root / "items.csv").write_text(
        "item_id,year,genre=Adventure,genre=Animation,genre=Comedy,genre=Drama\n"
        "i1,1995,0,1,1,0\ni2,1995,1,0,0,0\ni3,1996,0,0,1,1\n")
    (root / "interactions.csv").write_text(
        "user_id,item_id,weight,timestamp\n"
        "u1,i1,5,2000-12-31T22:12:40Z\nu1,i2,3,978302109\nu2,i1,4,978301968\n"
        "u3,i3,1,978300275\nu4,i2,2.5,978824291\n")
    return root


def test_recbole_equals_the_equivalent_csv_folder(tmp_path):
    rb = read_recbole(_recbole(tmp_path), name="ml")
    csv = read_csv_graph(_csv(tmp_path), name="ml")
    a, b = rb.to_dict(), csv.to_dict()
    assert a.keys() == b.keys() and "interaction_time" in a
    for key in a:
        if key == "repairs":
            continue
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key
    assert rb.feature_names == ["age", "gender=F", "gender=M"]
    assert rb.num_friendships == 3  # u1-u2 listed both ways is one friendship


def test_recbole_through_the_registry_and_config(tmp_path):
    from socialmeta.config import compose
    from socialmeta.experiment import dataset_from_config

    root = _recbole(tmp_path)
    g = load_dataset("recbole", root=root, name="ml", cache_dir=tmp_path / "cache")
    assert g.name == "ml" and g.num_items == 3
    cfg = compose("train", ["dataset=recbole", f"dataset.root={root}", "dataset.name=ml",
                            "dataset.cache=false"])
    assert torch.equal(dataset_from_config(cfg.dataset).friend_index, g.friend_index)


@pytest.mark.parametrize("files, pattern", [
    ({"inter": INTER.replace("rating:float", "rating")},
     r"ml.inter, line 1: header field 'rating' has no type \(expected name:type with a "
     r"type in \['token', 'token_seq', 'float', 'float_seq'\]\)"),
    ({"inter": INTER.replace("rating:float", "rating:int")},
     r"ml.inter, line 1: header field 'rating:int' has type 'int'"),
    ({"inter": INTER.replace("user_id:token", "uid:token")},
     r"ml.inter, line 1: missing field\(s\) \['user_id:token'\]"),
    ({"inter": INTER.replace("timestamp:float", "timestamp:float\treview:token_seq")
      .replace("\n", "\tnice film\n").replace("timestamp:float\treview:token_seq\tnice film",
                                               "timestamp:float\treview:token_seq")},
     r"ml.inter, line 1: field 'review:token_seq' is not read by socialmeta \(expected only "
     r".* \(or dataset.ignore_columns=\['review:token_seq'\]\)\)"),
    ({"inter": INTER.replace("\t5\t", "\tfive\t")},
     r"ml.inter, line 2: unparsable value 'five' in column 'rating:float'"),
    ({"inter": INTER.replace("978302109", "")},
     r"ml.inter, line 3: missing time '' in column 'timestamp:float'"),
    ({"net": None}, r"ml.net: file not found \(expected ml.inter and ml.net in"),
    ({"net": NET + "u3\tu3\n"}, r"ml.net, line 6: self-loop on user 'u3'"),
    ({"net": NET + "u9\tu1\n"}, r"ml.net, line 6: unknown user id 'u9' in column 'source_id:token'"),
    ({"user": USER.replace("age:float", "age:float_seq")},
     r"ml.user, line 1: field 'age:float_seq' is not read by socialmeta"),
    ({"net": "source_id:token\ttarget_id:token\tweight:float\nu1\tu2\t1\nu2\tu3\t0.5\n"},
     r"ml.net, line 3: weight 0.5 in field 'weight:float' \(expected 1 \(an unweighted "
     r"social link\)\)"),
    ({"inter": INTER.replace("timestamp:float", "timestamp:float\ttimestamp:float")},
     r"ml.inter, line 1: column 'timestamp:float' appears twice in the header"),
])
def test_bad_atomic_files(tmp_path, files, pattern):
    with pytest.raises(GraphValidationError, match=pattern):
        read_recbole(_recbole(tmp_path, **files), name="ml")


def test_ignore_columns_is_explicit(tmp_path):
    inter = INTER.replace("timestamp:float", "timestamp:float\tsrc:token")
    inter = "\n".join(line + ("\tweb" if i else "") for i, line in
                      enumerate(inter.strip().splitlines())) + "\n"
    root = _recbole(tmp_path, inter=inter)
    with pytest.raises(GraphValidationError, match=r"field 'src:token' is not read"):
        read_recbole(root, name="ml")
    g = read_recbole(root, name="ml", ignore_columns=["src:token"])
    assert g.interaction_index.size(1) == 5
