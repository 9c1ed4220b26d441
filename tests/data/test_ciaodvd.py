"""CiaoDVD: the counts its README states, the reported repairs, dated ratings, and the
same clear errors as every loader."""
import datetime as dt
import shutil

import numpy as np
import pytest
import torch

from socialmeta.data import GraphValidationError, read_ciaodvd


def _raw(root):
    ratings = np.loadtxt(root / "movie-ratings.txt", delimiter=",", dtype=str)
    trusts = np.loadtxt(root / "trusts.txt", delimiter=",", dtype=str)
    return ratings, trusts


def test_counts_equal_the_readme(ciaodvd, ciaodvd_root):
    g = ciaodvd
    ratings, trusts = _raw(ciaodvd_root)
    assert len(ratings) == 72_665 and len(trusts) == 40_133
    raters = set(ratings[:, 0])
    trusters = set(trusts[:, 0]) | set(trusts[:, 1])
    assert len(raters) == 17_615 and len(trusters) == 4_658 and len(raters & trusters) == 2_740
    assert g.num_users == 17_615 + 4_658 - 2_740
    assert g.num_items == 16_121 and g["item"].x.shape == (16_121, 17)
    assert g.num_friendships == 33_116            # trust made undirected
    assert g.interaction_index.size(1) == 72_665 - 320
    first, last = (dt.datetime.fromtimestamp(int(t), dt.UTC).date().isoformat()
                   for t in (g.interaction_time.min(), g.interaction_time.max()))
    assert (first, last) == ("2000-05-31", "2013-11-28")
    w = g["user", "interacts", "item"].edge_weight
    assert set(w.unique().tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert (g["item"].x.sum(1) == 1).all()       # one genre per movie
    assert "undirected" in g.notes


def test_repeated_ratings_error_or_keep_the_latest(ciaodvd, ciaodvd_root):
    with pytest.raises(GraphValidationError, match=r"movie-ratings.txt, line \d+: duplicate "
                       r"rating \(user '\d+', movie '\d+'\) \(first listed on line \d+\)"):
        read_ciaodvd(ciaodvd_root)
    g = ciaodvd
    assert g.repairs == [f"{ciaodvd_root / 'movie-ratings.txt'}: dropped 320 repeated "
                         "rating row(s) of 303 (user, movie) pairs, keeping the latest by "
                         "date (on a tie, the later line)"]
    # brute force: the kept rating of each pair is its latest row (later line on a tie)
    ratings, _ = _raw(ciaodvd_root)
    latest = {}
    for u, m, _, _, r, d in ratings:
        if (u, m) not in latest or d >= latest[(u, m)][0]:
            latest[(u, m)] = (d, float(r))
    users, items = g.raw_ids["user"], g.raw_ids["item"]
    w = g["user", "interacts", "item"].edge_weight
    day = {int(t): dt.datetime.fromtimestamp(int(t), dt.UTC).date().isoformat()
           for t in g.interaction_time.unique()}
    got = {(users[a], items[b]): (day[int(t)], float(r)) for (a, b), t, r in
           zip(g.interaction_index.T.tolist(), g.interaction_time, w)}
    assert got == latest


def test_genre_clash_and_bad_values_name_the_line(ciaodvd_root, tmp_path):
    def copy_with(file, line_no, new):
        shutil.rmtree(tmp_path / "c", ignore_errors=True)
        shutil.copytree(ciaodvd_root, tmp_path / "c")
        path = tmp_path / "c" / file
        path.chmod(0o644)
        lines = path.read_text().splitlines()
        lines[line_no - 1] = new
        path.write_text("\n".join(lines) + "\n")
        return tmp_path / "c"

    ratings, _ = _raw(ciaodvd_root)
    u, m, g, r, _, d = ratings[0]
    other = "2" if g != "2" else "3"
    root = copy_with("movie-ratings.txt", 1, f"{u},{m},{other},{r},5,{d}")
    with pytest.raises(GraphValidationError, match=rf"movie-ratings.txt, line \d+: movie "
                       rf"'{m}' has genre '{g}', but genre '{other}' on line 1"):
        read_ciaodvd(root, dedupe=True)
    root = copy_with("movie-ratings.txt", 5, "5,9,1,5,5,2000-13-40")
    with pytest.raises(GraphValidationError, match=r"line 5: unparsable time '2000-13-40' "
                       r"in column 'date'"):
        read_ciaodvd(root, dedupe=True)
    root = copy_with("movie-ratings.txt", 7, "5,9,1,5,7,2000-01-01")
    with pytest.raises(GraphValidationError, match=r"line 7: movieRating 7"):
        read_ciaodvd(root, dedupe=True)
    root = copy_with("trusts.txt", 3, "1,2,-1")
    with pytest.raises(GraphValidationError, match=r"trusts.txt, line 3: trustValue -1 "
                       r"\(expected 1 \(trust; distrust is not supported\)\)"):
        read_ciaodvd(root, dedupe=True)


def test_times_survive_the_cache_and_the_observed_graph(ciaodvd_root, tmp_path):
    from socialmeta.data import load_dataset
    from socialmeta.tasks import split_users
    from socialmeta.tasks.split import observed_graph

    a = load_dataset("ciaodvd", root=ciaodvd_root, cache_dir=tmp_path, dedupe=True)
    b = load_dataset("ciaodvd", root=ciaodvd_root, cache_dir=tmp_path, dedupe=True)
    assert torch.equal(a.interaction_time, b.interaction_time)
    split = split_users(a, seed=0)
    obs = observed_graph(a, split)
    keep = torch.isin(a.interaction_index[0], split.train)
    assert torch.equal(obs["user", "interacts", "item"].time, a.interaction_time[keep])
