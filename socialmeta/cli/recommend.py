"""``socialmeta-recommend``: top-k friends, items or interests for one user.

Examples::

    socialmeta-recommend checkpoint=outputs/<date>/<time>/best.pt user=42
    socialmeta-recommend checkpoint=outputs/<date>/<time>/best.pt 'friends=[12,40,7]' k=5
    socialmeta-recommend checkpoint=<a task=new_item run>/best.pt 'users=[12,40,7]'
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from socialmeta.cli.common import ConfigError, run_hydra


def recommend_command(cfg: DictConfig) -> list[dict[str, Any]]:
    if cfg.output not in ("table", "json"):
        raise ConfigError(f"unknown output {cfg.output!r}; choose one of ['json', 'table']")
    from socialmeta.device import resolve_device
    from socialmeta.recommend import Recommender

    try:
        recommender = Recommender.from_checkpoint(
            cfg.checkpoint, resolve_device(cfg.device),
            allow_other_data=cfg.get("allow_other_data", False))
    except ValueError as e:   # e.g. a run kind that one request cannot describe
        raise ConfigError(f"{cfg.checkpoint}: {e}") from None
    friends = [str(f) for f in OmegaConf.to_container(cfg["friends"])]
    items = [str(i) for i in OmegaConf.to_container(cfg["items"])]
    user = None if cfg.user is None else str(cfg.user)
    users = [str(u) for u in OmegaConf.to_container(cfg.get("users", []))]
    item = cfg.get("item")
    item = None if item is None else str(item)
    start = time.perf_counter()
    try:
        recs = recommender.recommend(user=user, friends=friends, items=items, k=cfg.k,
                                     item=item, users=users)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    elapsed = (time.perf_counter() - start) * 1e3
    rows = [{"rank": r + 1, "id": rec.id, "score": rec.score} for r, rec in enumerate(recs)]
    if cfg.output == "json":
        print(json.dumps(rows, indent=2))
        return rows
    if recommender.kind == "new_item":
        who = f"item {item}" if item is not None else f"a new item with {len(users)} users"
    else:
        who = f"user {user}" if user is not None else (
            f"a new user with {len(friends)} friends and {len(items)} items")
    what = {"friend": "friends", "item": "items", "interest": "interests",
            "new_item": "users"}[recommender.kind]
    print(f"top {len(rows)} {what} for {who} ({elapsed:.1f} ms)")
    print("| rank | id | score |\n|---:|---|---:|")
    for row in rows:
        print(f"| {row['rank']} | {row['id']} | {row['score']:.4f} |")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``socialmeta-recommend``."""
    run_hydra(recommend_command, "recommend", argv)


if __name__ == "__main__":
    main()
