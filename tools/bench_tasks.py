"""Tasks per second of ego-net sampling + dense batching.

    python tools/bench_tasks.py --lastfm-root ../shared/datasets/hetrec-lastfm-2k

Measures friend and item tasks on HetRec LastFM and on a 10^5-user synthetic graph
(default caps: fanouts 20,10; N=64, I=64, S=20, Q=32), batch size 64, after one warm-up
batch. Prints a Markdown table (or JSON lines with --json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from socialmeta.data import generate_synthetic, load_dataset
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


def bench(graph, kind: str, batch_size: int, num_batches: int) -> dict:
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind=kind))
    sampler.train_batch(0, 0, batch_size)  # warm-up
    start = time.perf_counter()
    for b in range(1, num_batches + 1):
        sampler.train_batch(0, b, batch_size)
    seconds = time.perf_counter() - start
    return {"dataset": graph.name, "users": graph.num_users, "kind": kind,
            "batch_size": batch_size, "batches": num_batches,
            "tasks_per_s": round(num_batches * batch_size / seconds, 1),
            "ms_per_batch": round(1000 * seconds / num_batches, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lastfm-root", default="../shared/datasets/hetrec-lastfm-2k")
    parser.add_argument("--synthetic-users", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    graphs = [load_dataset("lastfm", root=args.lastfm_root, download=False),
              generate_synthetic(args.synthetic_users, seed=0)]
    rows = [bench(g, kind, args.batch_size, args.batches)
            for g in graphs for kind in ("friend", "item")]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| dataset | users | kind | batch | tasks/s | ms/batch |")
    print("|---|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['dataset']} | {r['users']:,} | {r['kind']} | {r['batch_size']} | "
              f"{r['tasks_per_s']:,} | {r['ms_per_batch']} |")


if __name__ == "__main__":
    main()
