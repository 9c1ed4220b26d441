"""lastfm with ``interactions=tags``: the dated (user, artist) tag pairs as interactions
(issue 21: the loader keeps the tag-assignment dates it used to drop)."""
import datetime as dt
import shutil

import pytest
import torch

from socialmeta.data import GraphValidationError, load_dataset
from socialmeta.data.lastfm import read_lastfm


@pytest.fixture(scope="module")
def tagged(lastfm_root):
    return read_lastfm(lastfm_root, interactions="tags", repair_tags=True)


def _raw_rows(root):
    lines = (root / "user_taggedartists.dat").read_text().splitlines()
    header = lines[0].split("\t")
    return [(n + 2, dict(zip(header, line.split("\t")))) for n, line in enumerate(lines[1:])
            if line.strip()]


def test_tag_pairs_counts_and_first_dates_by_hand(tagged, lastfm_root):
    """Every kept raw row lands in its (user, artist) pair: weight = its rows, time = the
    earliest row's date at midnight UTC; rows of unknown artists or pre-2002 dates are
    dropped and reported with their counts."""
    artists = {line.split("\t")[0] for line in
               (lastfm_root / "artists.dat").read_text(encoding="latin-1").splitlines()[1:]}
    expect: dict[tuple[str, str], list[int]] = {}
    unknown = early = 0
    for _, r in _raw_rows(lastfm_root):
        when = int(dt.datetime(int(r["year"]), int(r["month"]), int(r["day"]),
                               tzinfo=dt.UTC).timestamp())
        if r["artistID"] not in artists:
            unknown += 1
        elif int(r["year"]) < 2002:
            early += 1
        else:
            expect.setdefault((r["userID"], r["artistID"]), []).append(when)
    assert (unknown, early) == (857, 2)
    assert any("dropped 857 tag rows whose artist is missing" in m for m in tagged.repairs)
    assert any("dropped 2 tag rows dated before 2002 (lines 4146, 13131)" in m
               for m in tagged.repairs)
    users, items = tagged.raw_ids["user"], tagged.raw_ids["item"]
    index, weight = tagged.interaction_index, tagged["user", "interacts", "item"].edge_weight
    got = {(users[u], items[i]): (w, t) for u, i, w, t in zip(
        index[0].tolist(), index[1].tolist(), weight.tolist(),
        tagged.interaction_time.tolist())}
    assert len(got) == len(expect) == 40648
    for pair, times in expect.items():
        assert got[pair] == (len(times), min(times)), pair
    assert tagged.has_times and tagged.num_items == 17632


def test_plays_stay_the_default_and_undated(lastfm, tagged):
    assert not lastfm.has_times
    assert lastfm.interaction_index.shape[1] == 92834
    # the same users, friendships and interests whichever interactions are read
    assert torch.equal(lastfm.friend_index, tagged.friend_index)
    assert torch.equal(lastfm["user"].interests, tagged["user"].interests)


def test_bad_tag_rows_name_their_line(lastfm_root, tmp_path):
    with pytest.raises(GraphValidationError, match=r"user_taggedartists.dat, line 241: "
                       r"artistID '14103' \(not in artists.dat\).*repair_tags=true"):
        read_lastfm(lastfm_root, interactions="tags")
    with pytest.raises(ValueError, match="dataset.interactions='listens'"):
        read_lastfm(lastfm_root, interactions="listens")
    root = tmp_path / "lastfm"
    shutil.copytree(lastfm_root, root)
    path = root / "user_taggedartists.dat"
    lines = path.read_text().splitlines()
    assert lines[2].split("\t")[:3] == ["2", "52", "15"]
    lines[2] = "2\t52\t15\t31\t2\t2009"           # 31 February
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GraphValidationError, match=r"line 3: date 2009-2-31.*a calendar date"):
        read_lastfm(root, interactions="tags", repair_tags=True)


def test_temporal_item_tasks_on_tag_dates(lastfm_root, tmp_path):
    """Through the dataset registry and its cache, the tag dates drive the temporal
    protocol: a warm user's support precedes its query, the support precedes the cut
    and an evaluation query follows it."""
    from socialmeta.tasks import TaskConfig, TaskSampler, split_temporal

    g = load_dataset("lastfm", root=lastfm_root, cache_dir=tmp_path, download=False,
                     interactions="tags", repair_tags=True)
    again = load_dataset("lastfm", root=lastfm_root, cache_dir=tmp_path, download=False,
                         interactions="tags", repair_tags=True)
    assert torch.equal(g.interaction_time, again.interaction_time)
    split = split_temporal(g, 0.7, users="warm", seed=0)
    sampler = TaskSampler(g, split, TaskConfig(kind="item", protocol="temporal",
                                               temporal_users="warm",
                                               context=("friends", "history"), seed=0))
    key = g.interaction_index[0] * g.num_items + g.interaction_index[1]
    order = torch.argsort(key)
    key, when = key[order], g.interaction_time[order]

    def dates(center, ids):
        pos = torch.searchsorted(key, center * g.num_items + ids)
        assert torch.equal(key[pos], center * g.num_items + ids)
        return when[pos]

    checked = 0
    for batch, train in [(sampler.train_batch(0, 0, 64), True),
                         (sampler.eval_batch(sampler.eval_centers("test", 3), 3), False)]:
        for t in range(batch.num_tasks):
            sup = batch.support_ids[t][batch.support_mask[t] & (batch.support_label[t] == 1)]
            qry = batch.query_ids[t][batch.query_mask[t] & (batch.query_label[t] == 1)]
            if not sup.numel() or not qry.numel():
                continue
            s, q = dates(batch.center[t], sup), dates(batch.center[t], qry)
            assert s.max() <= q.min() and s.max() < split.cut
            if not train:
                assert q.min() >= split.cut
            checked += 1
    assert checked > 50
