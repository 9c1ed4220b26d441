"""Scaling benchmarks (issue 22): graph size x phase, and 1 vs N processes.

    python tools/bench_scale.py users --users 10000 100000 1000000   # one process each
    python tools/bench_scale.py users --scorer hybrid --users 20000 100000 --steps 3 --threads 1
    python tools/bench_scale.py users --scorer hybrid --users 100000 --steps 3 --threads 1 \
        --override "model.tower_fanout=[10,10]"
    python tools/bench_scale.py users --scorer hybrid --users 1000000 --steps 5 --batch 8 \
        --threads 1 --override "model.tower_fanout=[5,5]" --override task.pair_local=true
    python tools/bench_scale.py processes                       # lastfm friend, T=256
    python tools/bench_scale.py processes --cell synthetic --batch 512 --nproc 1 2

``users``: for each size a fresh process builds the synthetic graph (average degree
40: 2 x 10^7 friendships at 10^6 users) and runs the phases of a run on friend tasks
(SAGE, MAML, T=64): generate; first batch (split, task sampler, model, the first
batch); meta-training (steps/s, and the share of step time spent building task
batches); evaluation of a sample of test users at K=3; export of every user's
meta-init embedding to ``.npy`` and Parquet in chunks. Each phase reports wall time
and the process's peak RSS so far (``ru_maxrss``).

``users --scorer hybrid``: the whole-graph hybrid friend scorer on the same graphs,
meta-training only (batch build, which computes the pair features over the whole
graph or, with ``task.pair_local=true``, from each support's neighbourhood, and the
meta-gradient step, timed apart).

``sampling``: the share of step time spent building task batches for a benchmark
cell (``--cell lastfm``: ``experiment=lastfm_friend``), in the training loop.

``processes``:
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


def _phase_clock(num_users: int, rows: list):
    """``phase(name, note)``: appends (name, seconds since the last call, peak RSS in
    GiB, note) to :obj:`rows` and prints it."""
    import resource
    import time

    clock = time.perf_counter()

    def phase(name: str, note: str = "") -> None:
        nonlocal clock
        now = time.perf_counter()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB
        rows.append((name, now - clock, rss, note))
        print(f"  {num_users:>9,} {name:<14} {now - clock:8.1f} s  {rss:6.2f} GiB  {note}",
              flush=True)
        clock = time.perf_counter()
    return phase


def users_phases(num_users: int, steps: int, batch: int, eval_users: int,
                 out: Path, workers: int = 0) -> list[tuple[str, float, float, str]]:
    """The phases of one run at :obj:`num_users` in this process (see the docstring)."""
    import time

    import torch

    from socialmeta.data import generate_synthetic
    from socialmeta.eval.protocol import evaluate_cold_start
    from socialmeta.export import export_embeddings
    from socialmeta.meta import InnerLoop, meta_gradient, meta_parameters
    from socialmeta.models import LinkModel
    from socialmeta.tasks import TaskConfig, TaskSampler, split_users
    from socialmeta.tasks.loader import step_batches

    rows: list[tuple[str, float, float, str]] = []
    phase = _phase_clock(num_users, rows)

    graph = generate_synthetic(num_users=num_users, avg_degree=40.0, seed=0)
    phase("generate", f"{graph.num_friendships:,} friendships")
    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split, TaskConfig(kind="friend"))
    torch.manual_seed(0)
    model = LinkModel(sampler.in_channels, 3, hidden_channels=32)
    inner = InnerLoop("maml", 1, 0.01)
    params = meta_parameters(model, inner)
    optimizer = torch.optim.Adam(params.values(), lr=3e-3)
    sampler.train_batch(0, 0, batch)
    phase("first batch")
    sampling = total = 0.0
    batches = step_batches(sampler, 0, steps, torch.arange(batch), num_workers=workers)
    t0 = time.perf_counter()
    for _, tasks in batches:  # with workers: the wait for a batch built ahead
        t1 = time.perf_counter()
        _, grads = meta_gradient(model, tasks, inner, params)
        for name, p in params.items():
            p.grad = grads[name]
        optimizer.step()
        now = time.perf_counter()
        sampling, total, t0 = sampling + t1 - t0, total + now - t0, now
    where = f"{workers} background worker(s)" if workers else "in the loop"
    phase("meta-training", f"{steps / total:.2f} steps/s at T={batch}; task sampling "
          f"({where}) {100 * sampling / total:.0f}% of step time")
    result = evaluate_cold_start(model, params, sampler, inner, "test", (3,),
                                 max_users=eval_users)
    r = result[3]["recall@20"]
    phase("evaluation", f"{r['users']} test users at K=3, recall@20 {r['mean']:.4f}")
    manifest = export_embeddings(model, params, graph, out / "export",
                                 formats=["npy", "parquet"], chunk_size=65536)
    size = sum(f.stat().st_size for f in (out / "export").iterdir()) / 2**20
    phase("export", f"{manifest['users']:,} users, npy + parquet, {size:.0f} MiB")
    return rows


def hybrid_phases(num_users: int, steps: int, batch: int, out: Path, workers: int = 0,
                  overrides: tuple[str, ...] = ()) -> list[tuple[str, float, float, str]]:
    """``users --scorer hybrid``: the whole-graph hybrid friend scorer
    (``model.scorer=hybrid``, built as ``socialmeta-train`` builds it) on the same
    synthetic graph: generate + build, then :obj:`steps` meta-steps, each timed as
    batch build (the pair features over the whole graph) and meta-gradient step;
    :obj:`overrides` are added to the run config (e.g. ``model.tower_fanout=[10,10]``)."""
    import torch

    from socialmeta.experiment import Experiment

    rows: list[tuple[str, float, float, str]] = []
    phase = _phase_clock(num_users, rows)

    exp = Experiment.from_config(overrides=[
        f"dataset.num_users={num_users}", "dataset.avg_degree=40", "model.scorer=hybrid",
        "model.hidden_channels=32", f"train.batch_size={batch}", *overrides])
    phase("generate + build", f"{exp.graph.num_friendships:,} friendships, "
          f"sampled softmax {'on' if exp.model.sampled else 'off'}")
    optimizer = torch.optim.Adam(exp.params.values(), lr=3e-3)
    building = stepping = 0.0
    for step in range(steps):
        exp.model.begin_step(step)
        build, meta = _timed_step(exp, optimizer, 0, step, batch)
        building, stepping = building + build, stepping + meta
    phase("meta-training", f"{steps} steps at T={batch}: batch build {building / steps:.2f} s"
          f" + step {stepping / steps:.2f} s per step")
    return rows


def _timed_step(exp, optimizer, epoch: int, batch_index: int, batch: int
                ) -> tuple[float, float]:
    """One meta-training step of :obj:`exp` on ``train_batch(epoch, batch_index,
    batch)``: ``(seconds building the batch, seconds of meta-gradient + update)``."""
    import time

    from socialmeta.meta import meta_gradient

    t0 = time.perf_counter()
    tasks = exp.sampler.train_batch(epoch, batch_index, batch)
    t1 = time.perf_counter()
    _, grads = meta_gradient(exp.model, tasks, exp.inner, exp.params)
    for name, p in exp.params.items():
        p.grad = grads[name]
    optimizer.step()
    return t1 - t0, time.perf_counter() - t1


def sampling_share(cell: str, batch: int, steps: int) -> str:
    """In-loop share of step time spent building task batches for a benchmark cell,
    the run built exactly as ``socialmeta-train`` builds it."""

    from socialmeta.experiment import Experiment

    exp = Experiment.from_config(overrides=[*CELLS[cell], f"train.batch_size={batch}"])
    optimizer = __import__("torch").optim.Adam(exp.params.values(), lr=3e-3)
    exp.sampler.train_batch(0, 0, batch)
    sampling = total = 0.0
    for step in range(1, steps + 1):
        build, meta = _timed_step(exp, optimizer, step, 0, batch)
        sampling, total = sampling + build, total + build + meta
    return (f"{cell} friend tasks ({' '.join(CELLS[cell][:1]) or 'defaults'}), T={batch}, "
            f"{steps} steps: {steps / total:.2f} steps/s, task sampling "
            f"{100 * sampling / total:.0f}% of step time ({1000 * sampling / steps:.0f} ms "
            f"of {1000 * total / steps:.0f} ms per step)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["processes", "users", "sampling"])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--eval-users", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0,
                        help="users: background processes building the meta-batches")
    parser.add_argument("--cell", choices=sorted(CELLS), default="lastfm")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2],
                        help="process counts run with one intra-op thread each (one "
                        "process with torch's default threads always runs first)")
    parser.add_argument("--scorer", choices=["egonet", "hybrid"], default="egonet",
                        help="users: the friend scorer (hybrid: meta-training phases only)")
    parser.add_argument("--threads", type=int, default=None,
                        help="users: torch intra-op threads of each run")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="users --scorer hybrid: a Hydra override of the runs")
    parser.add_argument("--md", type=Path)
    args = parser.parse_args()
    if args.what == "users":
        return users_table(args)
    if args.what == "sampling":
        print(sampling_share(args.cell, args.batch, args.steps))
        return None
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


def users_table(args) -> None:
    """Runs :func:`users_phases` for each size in a fresh process; prints the table."""
    import json

    lines = ["| users | phase | seconds | peak RSS (GiB) | notes |",
             "|---:|---|---:|---:|---|"]
    for n in args.users:
        with tempfile.TemporaryDirectory() as tmp:
            call = (f"b.hybrid_phases({n}, {args.steps}, {args.batch}, Path({tmp!r}), "
                    f"overrides={tuple(args.override)!r})"
                    if args.scorer == "hybrid" else
                    f"b.users_phases({n}, {args.steps}, {args.batch}, "
                    f"{args.eval_users}, Path({tmp!r}), {args.workers})")
            threads = (f"import torch; torch.set_num_threads({args.threads}); "
                       if args.threads else "")
            code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                    f"{threads}import bench_scale as b; from pathlib import Path; "
                    f"rows = {call}; print('ROWS', json.dumps(rows))")
            proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                    text=True)
            rows = None
            for line in proc.stdout:  # phases as they end; the rows at the end
                if line.startswith("ROWS "):
                    rows = json.loads(line[5:])
                else:
                    print(line, end="", flush=True)
            if proc.wait() != 0 or rows is None:
                print(f"  {n:,} users: the run ended with status {proc.returncode} "
                      "(-9: killed, e.g. out of memory)", flush=True)
                continue
        for name, seconds, rss, note in rows:
            lines.append(f"| {n:,} | {name} | {seconds:.1f} | {rss:.2f} | {note} |")
    extra = f" ({' '.join(args.override)})" if args.override else ""
    text = (f"synthetic friend tasks (avg degree 40), {args.scorer} scorer{extra}, {args.steps} "
            f"meta-steps at T={args.batch}, {args.workers} sampling workers, "
            f"{args.threads or 'default'} intra-op threads, {os.cpu_count()} CPU "
            "cores\n\n" + "\n".join(lines) + "\n")
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
