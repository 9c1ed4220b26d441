"""Names and one-line descriptions of the datasets, without importing torch
(``socialmeta-data list``). :data:`socialmeta.data.DATASETS` has the same keys."""
from __future__ import annotations

DESCRIPTIONS: dict[str, str] = {
    "synthetic": "seeded social graph with communities, interests, items and features",
    "karate": "Zachary's karate club (networkx); club as interest",
    "davis": "Davis Southern Women (networkx); events as items",
    "ego_facebook": "SNAP ego-Facebook: 4,039 users, features, 193 circles",
    "lastfm": "HetRec 2011 LastFM-2k: 1,892 users, 17,632 artists, tag interests",
    "ciaodvd": "CiaoDVD: 19,533 users, 16,121 movies, dated ratings, trust network",
    "csv": "your own graph: a folder of CSV files (docs/data-format.md)",
    "recbole": "your own graph as RecBole atomic files: NAME.inter, NAME.net (+ .user/.item)",
}
