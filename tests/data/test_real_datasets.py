"""The real datasets load with the counts their READMEs state."""
import json

import torch

from socialmeta.cli.data import main as data_main
from socialmeta.data import FRIEND, MEMBER_OF, validate_graph


def _info(capsys, *args):
    data_main(["info", *args, "output=json", "dataset.cache=false"])
    return json.loads(capsys.readouterr().out)


def test_ego_facebook_counts_from_cli(capsys, ego_facebook_root):
    info = _info(capsys, "dataset=ego_facebook", f"dataset.root={ego_facebook_root}")
    assert info["users"] == 4039
    assert info["friendships"] == 88234
    assert info["circles"] == 193
    assert info["circle_egos"] == 10
    assert info["isolated_users"] == 0
    assert info["relations"] == ["friends", "features", "circles"]


def test_lastfm_counts_from_cli(capsys, lastfm_root):
    info = _info(capsys, "dataset=lastfm", f"dataset.root={lastfm_root}")
    assert (info["users"], info["friendships"]) == (1892, 12717)
    assert (info["items"], info["interactions"]) == (17632, 92834)
    assert info["interest_labels"] == 50
    assert info["labelled_users"] == 1116  # users with at least one tag assignment
    assert info["friend_degree"]["q0"] == 1 and info["friend_degree"]["q50"] == 6
    assert info["friend_degree"]["q100"] == 119


def test_ego_facebook_circles_per_ego(ego_facebook):
    g = ego_facebook
    ego_ids = [g.user_id(int(e)) for e in g["circle"].ego]
    per_ego = {e: ego_ids.count(e) for e in dict.fromkeys(ego_ids)}
    assert per_ego == {"0": 24, "107": 9, "348": 14, "414": 7, "686": 14, "698": 13,
                       "1684": 17, "1912": 46, "3437": 32, "3980": 17}
    # circle0 of ego 0 starts "71 215 54 ..." and has 20 members
    c0 = g.raw_ids["circle"].index("0/circle0")
    members = g[MEMBER_OF].edge_index[0, g[MEMBER_OF].edge_index[1] == c0]
    assert {g.user_id(int(u)) for u in members} >= {"71", "215", "54"}
    assert members.numel() == 20


def test_ego_facebook_features_unified_by_name(ego_facebook, ego_facebook_root):
    g = ego_facebook
    names = set()
    for ego in ("0", "107", "348", "414", "686", "698", "1684", "1912", "3437", "3980"):
        lines = (ego_facebook_root / "facebook" / f"{ego}.featnames").read_text().splitlines()
        names |= {line.split(" ", 1)[1] for line in lines if line.strip()}
    assert len(g.feature_names) == len(names) == g["user"].x.size(1)
    # the quirk: 0.featnames has no trailing newline; its last name must be kept
    last = (ego_facebook_root / "facebook" / "0.featnames").read_text().splitlines()[-1]
    assert last.split(" ", 1)[1] in g.feature_names
    # ego 0's own row carries its egofeat bits under the unified columns
    ego_bits = (ego_facebook_root / "facebook" / "0.egofeat").read_text().split()
    feat_names = [ln.split(" ", 1)[1] for ln in
                  (ego_facebook_root / "facebook" / "0.featnames").read_text().splitlines()]
    on = {feat_names[k] for k, b in enumerate(ego_bits) if b == "1"}
    x0 = g["user"].x[g.raw_ids["user"].index("0")]
    assert on and all(x0[g.feature_names.index(n)] == 1 for n in on)


def test_friendships_stored_both_directions_sorted(lastfm):
    ei = lastfm[FRIEND].edge_index
    assert ei.size(1) == 2 * 12717
    key = ei[0] * lastfm.num_users + ei[1]
    assert torch.equal(key, key.sort().values)
    rev = ei[1] * lastfm.num_users + ei[0]
    assert torch.equal(rev.sort().values, key)
    validate_graph(lastfm)


def test_lastfm_play_counts_and_interest_derivation(lastfm, lastfm_root):
    g = lastfm
    uid, aid = g.raw_ids["user"].index("2"), g.raw_ids["item"].index("51")
    ii = g.interaction_index
    k = ((ii[0] == uid) & (ii[1] == aid)).nonzero().item()
    assert g["user", "interacts", "item"].edge_weight[k] == 13883  # first row of the file
    # recompute the interest of one user directly from the raw file
    rows = [ln.split("\t") for ln in (lastfm_root / "user_taggedartists.dat")
            .read_text().splitlines()[1:] if ln.strip()]
    tags = dict(ln.split("\t") for ln in (lastfm_root / "tags.dat")
                .read_text(encoding="latin-1").splitlines()[1:] if ln.strip())
    user2 = {tags[r[2].strip()] for r in rows if r[0] == "2"}
    have = {n for n, on in zip(g.interest_names, g["user"].interests[uid]) if on}
    assert have == user2 & set(g.interest_names)
    assert g.interest_names[0] == "rock"
