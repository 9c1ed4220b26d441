"""Time and peak memory of the synthetic generator.

    python tools/bench_synthetic.py --users 10000 100000 1000000 --avg-degree 40

Each size runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time


def measure(num_users: int, avg_degree: float, seed: int) -> dict:
    import torch

    from socialmeta.data import generate_synthetic

    torch.set_num_threads(torch.get_num_threads())
    start = time.perf_counter()
    graph = generate_synthetic(num_users, avg_degree=avg_degree, seed=seed)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"users": num_users, "friendships": graph.num_friendships,
            "interactions": int(graph.interaction_index.size(1)),
            "seconds": round(seconds, 2), "peak_rss_gib": round(peak_kib / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--avg-degree", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object per size")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.avg_degree, args.seed)))
        return
    rows = []
    for n in args.users:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--avg-degree",
                              str(args.avg_degree), "--seed", str(args.seed)],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    if not args.json:
        print(f"machine: {platform.processor() or platform.machine()}, "
              f"{__import__('os').cpu_count()} cores, python {platform.python_version()}")
        print("| users | friendships | interactions | seconds | peak RSS (GiB) |")
        print("|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['users']:,} | {r['friendships']:,} | {r['interactions']:,} | "
                  f"{r['seconds']} | {r['peak_rss_gib']} |")


if __name__ == "__main__":
    main()
