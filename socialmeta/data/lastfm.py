"""HetRec 2011 LastFM-2k: friendships, user→artist plays, interests from tags."""
from __future__ import annotations

import datetime as dt
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

LASTFM_URL = "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip"
LASTFM_FILES = ("user_friends.dat", "user_artists.dat", "artists.dat", "tags.dat",
                "user_taggedartists.dat")

LASTFM_NOTES = (
    "Interests are derived from the users' own tag assignments (user_taggedartists.dat): "
    "the vocabulary is the `num_interests` tags used by the most distinct users (ties "
    "broken by tag id); a user has interest t if they assigned t to at least "
    "`min_tag_uses` artists. Users with no tag assignment at all are unlabelled "
    "(interest_mask false). User features: none (structural features are computed on the "
    "observed graph)."
)
LASTFM_TAG_NOTES = (
    " Interactions (interactions=tags): the (user, artist) pairs of "
    "user_taggedartists.dat instead of the undated plays; edge_weight = the number of tags "
    "the user gave the artist, time = the date of the first (midnight UTC). The raw dates "
    "have month resolution in practice (the day is 1 on 98% of rows), so the temporal "
    "protocol orders a user's artists of one month by its seeded hash. Interests come from "
    "the same file: do not give item tasks the interests as context."
)
#: Last.fm launched in 2002: an earlier tag date is a corrupt row
LASTFM_FIRST_YEAR = 2002


def read_lastfm(
    root: str | Path,
    *,
    num_interests: int = 50,
    min_tag_uses: int = 1,
    dedupe: bool = False,
    interactions: str = "plays",
    repair_tags: bool = False,
) -> SocialGraph:
    r"""Reads HetRec 2011 LastFM-2k from its raw ``.dat`` files in :obj:`root`.

    Users are the 1,892 users of ``user_friends.dat`` and ``user_artists.dat``; items
    are the 17,632 artists of ``artists.dat`` (an interaction with an artist missing
    from it is an error); ``edge_weight`` holds play counts. Friendships are listed in
    both directions in the raw file and stored once per direction. See
    :data:`LASTFM_NOTES` for how interests are derived.

    Args:
        root (str or Path): Folder with the five ``.dat`` files.
        num_interests (int): Size of the interest vocabulary. (default: :obj:`50`)
        min_tag_uses (int): Assignments of a tag a user needs to hold that interest.
            (default: :obj:`1`)
        dedupe (bool): Drop repeated rows (reported) instead of failing.
        interactions (str): ``"plays"``: the undated play counts of
            ``user_artists.dat``; ``"tags"``: the dated (user, artist) pairs of
            ``user_taggedartists.dat`` (see :data:`LASTFM_TAG_NOTES`), which the
            temporal protocol (``task.protocol=temporal``) can order.
            (default: :obj:`"plays"`)
        repair_tags (bool): With ``interactions="tags"``, drop (reported) the tag rows
            whose artist is missing from ``artists.dat`` (857 rows of the shared copy)
            or whose date precedes Last.fm (two rows dated 1956 and 1957) instead of
            failing on the first. (default: :obj:`False`)
    """
    root = Path(root)
    repairs: list[str] = []
    friends = read_table(root / "user_friends.dat", sep="\t", required=["userID", "friendID"])
    plays = read_table(root / "user_artists.dat", sep="\t",
                       required=["userID", "artistID", "weight"])
    artists = read_table(root / "artists.dat", sep="\t", required=["id", "name"])
    users = IdIndex.from_values(friends.strings("userID"), friends.strings("friendID"),
                                plays.strings("userID"), kind="user")
    items = IdIndex(artists.strings("id").tolist(), kind="item")

    src = users.lookup(friends.strings("userID"), friends, "userID")
    dst = users.lookup(friends.strings("friendID"), friends, "friendID")
    friend_index = undirected_from_pairs(
        src, dst, lines=friends.lines, path=friends.path, ids=users.ids, listing="both",
        dedupe=dedupe, repairs=repairs)

    u = users.lookup(plays.strings("userID"), plays, "userID")
    i = items.lookup(plays.strings("artistID"), plays, "artistID")
    weight = plays.floats("weight")
    keep = keep_first_of_duplicates(
        u * len(items) + i, plays.lines, plays.path, dedupe, repairs, "interaction",
        lambda r: f"({users.ids[u[r]]!r}, {items.ids[i[r]]!r})", "each (user, artist) once")

    interests, mask, names = _tag_interests(root, users, num_interests, min_tag_uses)
    if interactions == "plays":
        index = np.stack([u[keep], i[keep]])
        weight, time, notes = weight[keep], None, LASTFM_NOTES
    elif interactions == "tags":
        index, weight, time = _tag_interactions(root, users, items, repair_tags, repairs)
        notes = LASTFM_NOTES + LASTFM_TAG_NOTES
    else:
        raise ValueError(f"dataset.interactions={interactions!r}: expected 'plays' (the "
                         f"play counts) or 'tags' (the dated tag assignments)")
    return SocialGraph.from_parts(
        user_ids=users.ids, friend_index=friend_index, item_ids=items.ids,
        interaction_index=torch.from_numpy(index),
        interaction_weight=torch.from_numpy(weight),
        interaction_time=None if time is None else torch.from_numpy(time),
        interests=interests, interest_mask=mask, interest_names=names,
        name="lastfm", repairs=repairs, notes=notes)


def _tag_interactions(root: Path, users: IdIndex, items: IdIndex, repair: bool,
                      repairs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``([2, E] (user, artist) pairs sorted by pair, [E] tag counts, [E] int64 Unix
    seconds of each pair's first tag)`` from ``user_taggedartists.dat``."""
    rows = read_table(root / "user_taggedartists.dat", sep="\t",
                      required=["userID", "artistID", "tagID", "day", "month", "year"])
    time = _tag_dates(rows)
    known = np.isin(rows.strings("artistID"), np.asarray(items.ids))
    early = time < _unix_day(LASTFM_FIRST_YEAR, 1, 1)
    drop = ~known | early
    if drop.any():
        first = int(np.flatnonzero(drop)[0])
        what = (f"artistID {str(rows.strings('artistID')[first])!r} (not in artists.dat)"
                if not known[first] else
                f"a tag dated {_date_text(rows, first)}")
        if not repair:
            raise GraphValidationError(
                what, file=rows.path, line=int(rows.lines[first]),
                expected=f"an artist of artists.dat and a date from {LASTFM_FIRST_YEAR} on "
                         f"(dataset.repair_tags=true drops such rows, reported)")
        for mask, reason in ((~known, "whose artist is missing from artists.dat"),
                             (known & early, f"dated before {LASTFM_FIRST_YEAR}")):
            if mask.any():
                lines = rows.lines[mask]
                _report(repairs, f"{rows.path}: dropped {int(mask.sum())} tag rows {reason} "
                                 f"(lines {', '.join(map(str, lines[:5]))}"
                                 f"{', ...' if len(lines) > 5 else ''})")
    keep = ~drop
    u = users.lookup(rows.strings("userID")[keep], _rows_subset(rows, keep), "userID")
    i = items.lookup(rows.strings("artistID")[keep], _rows_subset(rows, keep), "artistID")
    pair, of_pair, count = np.unique(u * len(items) + i, return_inverse=True,
                                     return_counts=True)
    first_time = np.full(len(pair), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_time, of_pair, time[keep])
    index = np.stack([pair // len(items), pair % len(items)])
    return index, count.astype(np.float32), first_time


def _rows_subset(rows: Table, keep: np.ndarray) -> Table:
    """:obj:`rows` restricted to :obj:`keep` (line numbers follow, for the errors)."""
    return Table(rows.path, {k: [v for v, kept in zip(values, keep) if kept]
                             for k, values in rows.columns.items()},
                 rows.lines[keep], rows.labels)


def _unix_day(year: int, month: int, day: int) -> int:
    return int(dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp())


def _date_text(rows: Table, r: int) -> str:
    return "-".join(rows.strings(c)[r] for c in ("year", "month", "day"))


def _tag_dates(rows: Table) -> np.ndarray:
    """Each tag row's ``day month year`` as int64 Unix seconds (midnight UTC); an
    impossible date names its line."""
    day, month, year = rows.ints("day"), rows.ints("month"), rows.ints("year")
    out = np.empty(len(day), dtype=np.int64)
    seen: dict[tuple[int, int, int], int] = {}
    for r, key in enumerate(zip(year.tolist(), month.tolist(), day.tolist())):
        if key not in seen:
            try:
                seen[key] = _unix_day(*key)
            except (ValueError, OverflowError):
                raise GraphValidationError(
                    f"date {_date_text(rows, r)} (year-month-day)", file=rows.path,
                    line=int(rows.lines[r]), expected="a calendar date") from None
        out[r] = seen[key]
    return out


def _tag_interests(root: Path, users: IdIndex, num_interests: int, min_tag_uses: int):
    tags = read_table(root / "tags.dat", sep="\t", required=["tagID", "tagValue"],
                      encoding="latin-1")
    tag_name = dict(zip(tags.strings("tagID").tolist(), tags.strings("tagValue").tolist()))
    assigned = read_table(root / "user_taggedartists.dat", sep="\t",
                          required=["userID", "artistID", "tagID"])
    u = users.lookup(assigned.strings("userID"), assigned, "userID")
    tag_index = IdIndex(sorted(tag_name, key=int), kind="tag")
    t = tag_index.lookup(assigned.strings("tagID"), assigned, "tagID")
    # uses[user, tag] = number of artists the user tagged with it
    pair, uses = np.unique(u * len(tag_index) + t, return_counts=True)
    pu, pt = pair // len(tag_index), pair % len(tag_index)
    held = uses >= min_tag_uses
    users_per_tag = np.bincount(pt[held], minlength=len(tag_index))
    order = np.lexsort((np.arange(len(tag_index)), -users_per_tag))[:num_interests]
    column = np.full(len(tag_index), -1)
    column[order] = np.arange(len(order))
    sel = held & (column[pt] >= 0)
    y = torch.zeros(len(users), len(order), dtype=torch.bool)
    y[torch.from_numpy(pu[sel]), torch.from_numpy(column[pt[sel]])] = True
    mask = torch.zeros(len(users), dtype=torch.bool)
    mask[torch.from_numpy(np.unique(u))] = True
    names = [tag_name[tag_index.ids[k]] for k in order]
    return y, mask, names
