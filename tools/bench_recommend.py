"""Latency of one recommendation after loading (socialmeta.Recommender).

    python tools/bench_recommend.py outputs/<date>/<time>/best.pt [--n 200] [--k 20]

Times ``recommend(user=ID)`` for random users of the graph and
``recommend(friends=[...])`` / ``recommend(items=[...])`` for new users described by
3 random links; prints median, p95 and max in milliseconds (one request at a time,
after 10 warm-up requests).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from socialmeta import Recommender


def _time(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (1 when other processes share the "
                             "cores: a parallel region waits for its busiest core)")
    parser.add_argument("--no-tower-cache", action="store_true",
                        help="hybrid runs: compute the candidate tower per request (as "
                             "before the Recommender cached it), for a side-by-side")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rec = Recommender.from_checkpoint(args.checkpoint, args.device)
    load = time.perf_counter() - start
    if args.no_tower_cache and hasattr(rec.model, "serve_tower"):
        rec.model.serve_tower(None)
    gen = torch.Generator().manual_seed(0)
    users = rec.graph.raw_ids["user"]
    train = rec.split.train
    pick = lambda: [users[int(u)] for u in train[torch.randperm(train.numel(), generator=gen)[:3]]]  # noqa: E731
    items = rec.graph.raw_ids.get("item", [])
    new = [pick() for _ in range(args.n + 10)]
    new_items = [[items[int(i)] for i in torch.randperm(len(items), generator=gen)[:3]]
                 for _ in range(args.n + 10)] if items else []
    existing = [users[int(u)] for u in torch.randint(len(users), (args.n + 10,), generator=gen)]

    def by_user(i):
        rec.recommend(user=existing[i], k=args.k)

    def by_links(i):
        if rec.kind == "item":
            rec.recommend(items=new_items[i], friends=new[i], k=args.k)
        else:
            rec.recommend(friends=new[i], k=args.k)

    scorer = type(rec.model).__name__ + (" (tower per request)" if args.no_tower_cache
                                          and hasattr(rec.model, "serve_tower") else "")
    print(f"{rec.graph.name} · {rec.kind} · {scorer} · {rec.inner.learner} · "
          f"{rec.graph.num_users} users"
          f" · device {args.device} · {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads · load {load:.2f} s")
    print("| request | n | median ms | p95 ms | max ms |\n|---|---:|---:|---:|---:|")
    for name, fn in (("user=ID", by_user), ("new user, 3 links", by_links)):
        _time(fn, 10)                                        # warm-up
        ms = sorted(_time(lambda i, fn=fn: fn(i + 10), args.n))
        p95 = ms[int(0.95 * (len(ms) - 1))]
        print(f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p95:.1f} | {ms[-1]:.1f} |")


if __name__ == "__main__":
    main()
