"""CiaoDVD (Guo et al., ASONAM 2014): dated movie ratings and a trust network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from socialmeta.data.errors import GraphValidationError
from socialmeta.data.graph import (
    SocialGraph,
    _report,
    keep_first_of_duplicates,
    undirected_from_pairs,
)
from socialmeta.data.readers import IdIndex, Table, read_table

CIAODVD_URL = "https://guoguibing.github.io/librec/datasets/CiaoDVD.zip"
CIAODVD_FILES = ("movie-ratings.txt", "trusts.txt")
RATING_COLUMNS = ["userID", "movieID", "genreID", "reviewID", "movieRating", "date"]
TRUST_COLUMNS = ["trustorID", "trusteeID", "trustValue"]

CIAODVD_NOTES = (
    "Trust is directed in trusts.txt (trustor -> trustee, often one-way); it is stored as "
    "an undirected friendship between the two users (a pair listed both ways is one "
    "friendship). Users are everyone who rates or trusts. Each rating is an interaction "
    "with the rating (1-5) as edge_weight and its date (midnight UTC) as time. Item "
    "features: a one-hot of the movie's genre (genreID, checked to be the same on every "
    "row of a movie), columns in increasing genreID order. No user features."
)


def read_ciaodvd(root: str | Path, *, dedupe: bool = False) -> SocialGraph:
    r"""Reads CiaoDVD from ``movie-ratings.txt`` and ``trusts.txt`` in :obj:`root`
    (comma-separated, no header; see :data:`CIAODVD_NOTES` for the conversion).

    The raw ratings repeat 320 (user, movie) rows (the same user reviewing a movie
    again): an error by default; with :obj:`dedupe` each pair keeps its latest rating
    by date (on a tie, the one on the later line), reported in ``graph.repairs``.

    Args:
        root (str or Path): Folder with the two files.
        dedupe (bool): Keep the latest of repeated (user, movie) ratings (reported)
            instead of failing. (default: :obj:`False`)

    Example:
        >>> graph = read_ciaodvd("../shared/datasets/ciaodvd", dedupe=True)
        >>> graph.num_items, graph.has_times
        (16121, True)
    """
    root = Path(root)
    repairs: list[str] = []
    ratings = read_table(root / "movie-ratings.txt", header=RATING_COLUMNS)
    trusts = read_table(root / "trusts.txt", header=TRUST_COLUMNS)
    values = trusts.floats("trustValue")
    if (values != 1).any():
        r = int(np.flatnonzero(values != 1)[0])
        raise GraphValidationError(f"trustValue {values[r]:g}", file=trusts.path,
                                   line=int(trusts.lines[r]),
                                   expected="1 (trust; distrust is not supported)")
    users = IdIndex.from_values(ratings.ids("userID", "user"), trusts.ids("trustorID", "user"),
                                trusts.ids("trusteeID", "user"), kind="user")
    src = users.lookup(trusts.ids("trustorID", "user"), trusts, "trustorID")
    dst = users.lookup(trusts.ids("trusteeID", "user"), trusts, "trusteeID")
    friend_index = undirected_from_pairs(src, dst, lines=trusts.lines, path=trusts.path,
                                         ids=users.ids, listing="both", repairs=repairs)
    items = IdIndex.from_values(ratings.ids("movieID", "movie"), kind="movie")
    u = users.lookup(ratings.ids("userID", "user"), ratings, "userID")
    i = items.lookup(ratings.ids("movieID", "movie"), ratings, "movieID")
    rating, time = ratings.floats("movieRating"), ratings.times("date")
    bad = (rating < 1) | (rating > 5)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise GraphValidationError(f"movieRating {rating[r]:g}", file=ratings.path,
                                   line=int(ratings.lines[r]), expected="a rating in 1..5")
    key = u * len(items) + i
    if not dedupe:  # an error naming both lines of the first repeated pair, if any
        keep_first_of_duplicates(
            key, ratings.lines, ratings.path, False, repairs, "rating",
            lambda r: f"(user {users.ids[u[r]]!r}, movie {items.ids[i[r]]!r})",
            "each (user, movie) once (or dataset.dedupe=true: keep the latest by date)")
    # latest first (on equal dates the later line): the first row of a pair in this
    # order is its latest rating
    order = np.lexsort((-ratings.lines, -time))
    _, first = np.unique(key[order], return_index=True)
    keep = np.zeros(len(ratings), dtype=bool)
    keep[order[first]] = True
    if not keep.all():
        _report(repairs, f"{ratings.path}: dropped {int((~keep).sum())} repeated rating "
                f"row(s) of {len(np.unique(key[~keep]))} (user, movie) pairs, keeping the "
                "latest by date (on a tie, the later line)")
    item_x = _genres(ratings, i, len(items))
    keep_rows = np.flatnonzero(keep)
    return SocialGraph.from_parts(
        user_ids=users.ids, friend_index=friend_index, item_ids=items.ids, item_x=item_x,
        interaction_index=torch.from_numpy(np.stack([u[keep_rows], i[keep_rows]])),
        interaction_weight=torch.from_numpy(rating[keep_rows]),
        interaction_time=torch.from_numpy(time[keep_rows]),
        name="ciaodvd", repairs=repairs, notes=CIAODVD_NOTES)


def _genres(ratings: Table, item: np.ndarray, num_items: int) -> torch.Tensor:
    """One-hot genre per movie ``[num_items, num_genres]``; a movie whose rows give two
    genres is an error naming both lines."""
    genre_ids = IdIndex.from_values(ratings.ids("genreID", "genre"), kind="genre")
    genre = genre_ids.lookup(ratings.ids("genreID", "genre"), ratings, "genreID")
    first = np.full(num_items, -1)
    first[item[::-1]] = np.arange(len(item))[::-1]  # the first row of every movie
    clash = genre != genre[first[item]]
    if clash.any():
        r = int(np.flatnonzero(clash)[0])
        f = int(first[item[r]])
        raise GraphValidationError(
            f"movie {str(ratings.ids('movieID', 'movie')[r])!r} has genre "
            f"{genre_ids.ids[genre[r]]!r}, but genre {genre_ids.ids[genre[f]]!r} on line "
            f"{int(ratings.lines[f])}", file=ratings.path, line=int(ratings.lines[r]),
            expected="one genre per movie")
    x = torch.zeros(num_items, len(genre_ids))
    x[torch.from_numpy(item), torch.from_numpy(genre)] = 1.0
    return x
