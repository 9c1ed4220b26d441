"""Scaling benchmarks (issue 22). So far: meta-training throughput of 1 vs N processes
on the same global batch, side by side in one run.

    python tools/bench_scale.py processes                       # lastfm friend, T=256
    python tools/bench_scale.py processes --cell synthetic --batch 512 --nproc 1 2

Each configuration runs ``socialmeta-train`` (torchrun for N > 1, gloo): one process
with torch's default intra-op threads (all cores), then 1, 2, ... processes with one
thread each (what torchrun sets),
for ``--steps`` meta-steps with validation only at the end, and reads the per-step wall
time from the run's ``log.csv``: tasks/s = T / median step time (the first step, which
builds caches, is left out). Writes a Markdown table to stdout and, with ``--md``, into
that file.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CELLS = {
    "lastfm": ["experiment=lastfm_friend", "dataset.root=" + str(
        REPO.parent / "shared" / "datasets" / "hetrec-lastfm-2k")],
    "synthetic": [],
}


def run(cell: str, nproc: int, batch: int, steps: int, out: Path,
        threads: int | None = None) -> list[float]:
    overrides = [*CELLS[cell], f"hydra.run.dir={out}", f"train.batch_size={batch}",
                 f"train.steps={steps}", f"train.eval_every={steps}", "train.val_users=20",
                 "eval.test=false", "train.patience=100"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    if nproc == 1:
        cmd = [sys.executable, "-m", "socialmeta", "train", *overrides]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "socialmeta", "train", *overrides]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(out / "log.csv", newline="") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
    steps_times = [b - a for a, b in zip(seconds, seconds[1:])]
    return steps_times[:-1]  # the last step also validates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["processes"])
    parser.add_argument("--cell", choices=sorted(CELLS), default="lastfm")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2],
                        help="process counts run with one intra-op thread each (one "
                        "process with torch's default threads always runs first)")
    parser.add_argument("--md", type=Path)
    args = parser.parse_args()
    rows = ["| processes | intra-op threads each | T | median step (s) | tasks/s | "
            "vs 1 process (default threads) | vs 1 process, 1 thread |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    configs = [(1, None)] + [(n, 1) for n in args.nproc]
    rates: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, threads in configs:
            times = run(args.cell, n, args.batch, args.steps,
                        Path(tmp) / f"p{n}-{threads}", threads)
            step = statistics.median(times)
            rates[n, threads] = rate = args.batch / step
            shown = threads or os.cpu_count()
            rows.append(f"| {n} | {shown} | {args.batch} | {step:.3f} | {rate:.1f} | "
                        f"{rate / rates[1, None]:.2f}x | "
                        f"{rate / rates.get((1, 1), rate):.2f}x |")
            print(rows[-1], flush=True)
    text = (f"{args.cell} friend tasks, {args.steps} steps per configuration, "
            f"{os.cpu_count()} CPU cores\n\n" + "\n".join(rows) + "\n")
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
