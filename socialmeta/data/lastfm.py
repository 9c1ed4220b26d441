"""HetRec 2011 LastFM-2k: friendships, user→artist plays, interests from tags."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from socialmeta.data.graph import SocialGraph, keep_first_of_duplicates, undirected_from_pairs
from socialmeta.data.readers import IdIndex, read_table

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


def read_lastfm(
    root: str | Path,
    *,
    num_interests: int = 50,
    min_tag_uses: int = 1,
    dedupe: bool = False,
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
    return SocialGraph.from_parts(
        user_ids=users.ids, friend_index=friend_index, item_ids=items.ids,
        interaction_index=torch.from_numpy(np.stack([u[keep], i[keep]])),
        interaction_weight=torch.from_numpy(weight[keep]),
        interests=interests, interest_mask=mask, interest_names=names,
        name="lastfm", repairs=repairs, notes=LASTFM_NOTES)


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
