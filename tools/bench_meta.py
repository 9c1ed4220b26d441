"""Meta-training steps/s of the batched (vmap) learners vs the per-task reference loop.

    python tools/bench_meta.py --tasks 16 64 256 --steps 1 5 --learners maml fomaml anil
    python tools/bench_meta.py --cell lastfm:friend --scorers egonet hybrid --tasks 64
    python tools/bench_meta.py --cell lastfm:friend --scorers egonet hybrid+model.tower_refresh=4
    python tools/bench_meta.py --pair-mlp 1892 10 32 --tasks 64 --repeats 60
    python tools/bench_meta.py --products --tasks 16 64 --repeats 20
    python tools/bench_meta.py --tower lastfm:friend --repeats 40

Both paths compute the same outer loss and meta-gradient (tests/meta) on the same task
batch (synthetic graph, friend tasks, N=32 users per task, 2-layer SAGE, hidden 32).
A step = outer loss + meta-gradient + Adam update. Peak memory is the process's peak
RSS on CPU (ru_maxrss, cumulative) or torch.cuda.max_memory_allocated on CUDA.

With ``--cell`` it times instead one meta-training step of each ``--scorers`` entry
(``model.scorer``: the ego-net model or the whole-graph hybrid) on a benchmark cell's
tasks, built exactly as ``socialmeta-train`` builds them (the cell's experiment
preset), side by side in one process: building the batch (task sampling, with the
hybrid's pair features) and the batched meta-gradient step, separately.

With ``--pair-mlp USERS FEATURES HIDDEN`` it times the hybrid scorer's pair MLP alone
(:class:`socialmeta.models.hybrid.PairMLP` against the ``nn.Sequential`` it replaced).

With ``--tower CELL`` it times the hybrid scorer's candidate tower alone on a cell's
graph: forward and backward (``torch.func.grad``) of every training fold, one forward
per fold against the folds as one block-diagonal graph (the form training uses).

With ``--products`` it times the matrix-vector products of the models in the form of
:mod:`socialmeta.models.ops` against the plain ``A @ v`` they replaced.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import torch

from socialmeta.data import generate_synthetic
from socialmeta.device import resolve_device
from socialmeta.meta import InnerLoop, meta_gradient, reference_outer_loss
from socialmeta.models.link import LinkModel
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(sampler, learner: str, num_tasks: int, steps: int, device, repeats: int) -> dict:
    torch.manual_seed(0)
    batch = sampler.train_batch(0, 0, num_tasks)
    model = LinkModel(batch.x.size(-1), num_hops=2, hidden_channels=32).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    inner = InnerLoop(learner, steps=steps, lr=0.1)
    dense = batch.to(device)

    def batched() -> None:
        _, grads = meta_gradient(model, dense, inner)
        for n, p in model.named_parameters():
            p.grad = grads[n]
        opt.step()

    def reference() -> None:
        opt.zero_grad()
        reference_outer_loss(model, dense, inner)[0].backward()
        opt.step()

    t_batched = _time(batched, repeats, device)
    t_ref = _time(reference, max(1, repeats // 2), device)
    return {"device": str(device), "learner": learner, "tasks": num_tasks,
            "inner_steps": steps, "batched_steps_per_s": round(1 / t_batched, 3),
            "batched_tasks_per_s": round(num_tasks / t_batched, 1),
            "reference_steps_per_s": round(1 / t_ref, 3),
            "reference_tasks_per_s": round(num_tasks / t_ref, 1),
            "speedup": round(t_ref / t_batched, 2),
            "peak_mem_mib": round(_peak_mib(device), 1)}


def compare_scorers(cell: str, scorers, learners, tasks, device, repeats: int) -> None:
    """Step time of each scorer on a benchmark cell's tasks (see the module docstring):
    the scorers' steps are interleaved, repeat by repeat, so a busy machine slows them
    alike; medians over the repeats."""
    import statistics
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_quality

    from socialmeta import Experiment

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}; cell {cell}; median of "
          f"{repeats} interleaved repeats after a warm-up")
    print("| scorer | learner | T | batch build (s) | meta-gradient step (s) | step vs "
          f"{scorers[0]} | mean step (s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    exps = {}
    for spec in scorers:  # "hybrid" or "hybrid+model.tower_refresh=4" (extra overrides)
        scorer, *extra = spec.split("+")
        exps[spec] = Experiment.from_config(overrides=[
            *bench_quality._overrides(cell, 0, False, [3]), f"model.scorer={scorer}", *extra])
    for learner in learners:
        for num_tasks in tasks:
            runs = {}
            for spec, exp in exps.items():
                inner = InnerLoop(learner, exp.inner.steps, exp.inner.lr)
                params = {n: p.detach().clone().to(device).requires_grad_()
                          for n, p in exp.params.items()}
                runs[spec] = (exp, inner, exp.model.to(device), params,
                              torch.optim.Adam(params.values(), lr=1e-3))
            build = {spec: [] for spec in exps}
            step = {spec: [] for spec in exps}
            for r in range(repeats + 1):
                for spec, (exp, inner, model, params, opt) in runs.items():
                    t0 = time.perf_counter()
                    batch = exp.sampler.train_batch(0, r, num_tasks).to(device)
                    t1 = time.perf_counter()
                    _, grads = meta_gradient(model, batch, inner, params)
                    for n, p in params.items():
                        p.grad = grads[n]
                    opt.step()
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    if r:  # the first round is the warm-up
                        build[spec].append(t1 - t0)
                        step[spec].append(time.perf_counter() - t1)
            first = statistics.median(step[scorers[0]])
            for spec in exps:
                t_step = statistics.median(step[spec])
                print(f"| {spec} | {learner} | {num_tasks} | "
                      f"{statistics.median(build[spec]):.3f} | {t_step:.3f} | "
                      f"{t_step / first:.2f}x | {statistics.mean(step[spec]):.3f} |",
                      flush=True)


def compare_pair_mlp(tasks, users: int, features: int, hidden: int, repeats: int) -> None:
    """Forward and backward (``torch.func.grad``, as in a meta-step) of the hybrid
    scorer's pair MLP over ``[T, users, features]`` pair features: the
    ``nn.Sequential(Linear, ReLU, Linear)`` it was against :class:`PairMLP` (the same
    parameters), interleaved repeat by repeat; medians and quartiles."""
    from torch import nn
    from torch.func import functional_call, grad

    from socialmeta.models.hybrid import PairMLP

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {repeats} interleaved repeats after 3 warm-ups")
    print("| T | rows | module | forward + backward (ms), median | quartiles |")
    print("|---:|---:|---|---:|---|")
    torch.manual_seed(0)
    new = PairMLP(features, hidden)
    modules = {"nn.Sequential": nn.Sequential(*new), "PairMLP": new}
    params = {n: p.detach() for n, p in new.named_parameters()}
    for num_tasks in tasks:
        x = torch.rand(num_tasks, users, features)
        weights = torch.randn(num_tasks, users)

        def loss(p, module, x=x, weights=weights):
            return (functional_call(module, p, (x,)).squeeze(-1) * weights).sum()

        times = _interleaved({name: lambda module=module: grad(loss)(params, module)
                              for name, module in modules.items()}, repeats)
        for name, (median, q1, q3) in times.items():
            print(f"| {num_tasks} | {num_tasks * users:,} | {name} | {median:.1f} | "
                  f"{q1:.1f}-{q3:.1f} |", flush=True)


def compare_tower(cell: str, repeats: int) -> None:
    """Forward and backward of the hybrid tower over the training folds of
    :obj:`cell`'s graph: a forward per fold against the stacked block-diagonal one
    (``HybridLinkModel.candidate_embeddings``), interleaved; medians and quartiles."""
    import sys
    from pathlib import Path

    from torch.func import functional_call, grad

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_quality

    from socialmeta import Experiment

    exp = Experiment.from_config(overrides=[*bench_quality._overrides(cell, 0, False, [3]),
                                            "model.scorer=hybrid"])
    model = exp.model
    folds = tuple(range(model.tower_folds))
    params = {n: p.detach() for n, p in model.named_parameters()}
    tower = {n: p for n, p in params.items() if n.startswith("tower.")}
    weight = torch.randn(model.tower_folds + 1, model.num_users, model.encoder.hidden_channels)

    def loss(p, stacked):
        call = {**params, **p}
        if stacked:
            out = functional_call(model, call, (), {"mode": "tower", "folds": folds})
        else:   # the per-fold forwards the code before ran, on the kept fold graphs
            own = {n[len("tower."):]: v for n, v in call.items() if n.startswith("tower.")}
            out = torch.stack([functional_call(model.tower, own, (
                model._fold_graph(f, "inputs"), model._fold_graph(f, "graph")))
                for f in folds])
        return (out * weight[:out.size(0)]).sum()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; cell {cell}, {model.num_users:,} users, "
          f"{len(folds)} folds; {repeats} interleaved repeats after 3 warm-ups")
    print("| tower | forward + backward (ms), median | quartiles |")
    print("|---|---:|---|")
    times = _interleaved({"one forward per fold": lambda: grad(loss)(tower, False),
                          "folds as one graph": lambda: grad(loss)(tower, True)}, repeats)
    for name, (median, q1, q3) in times.items():
        print(f"| {name} | {median:.1f} | {q1:.1f}-{q3:.1f} |", flush=True)


def _interleaved(calls: dict, repeats: int) -> dict[str, tuple[float, float, float]]:
    """Milliseconds per call of each of :obj:`calls`, run in turn, repeat by repeat,
    after 3 warm-up rounds: ``{name: (median, first quartile, third quartile)}``."""
    import statistics

    times = {name: [] for name in calls}
    for r in range(repeats + 3):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            if r >= 3:
                times[name].append(1e3 * (time.perf_counter() - t0))
    out = {}
    for name, t in times.items():
        q1, _, q3 = statistics.quantiles(t, n=4)
        out[name] = (statistics.median(t), q1, q3)
    return out


#: ``--products``: (what it is, a task's matrix shape [rows, columns], the
#: socialmeta.models.ops function that computes it)
PRODUCTS = (
    ("hybrid gate: pair features [U, P] @ gate [P] (lastfm friend)", (1892, 10), "matvec"),
    ("ego-net heuristics: adj [N, N] @ v [N] (lastfm friend tasks)", (128, 128), "matvec"),
    ("item scores: adapted item table [I, H] @ user [H] (lastfm items)", (17632, 32),
     "matvec"),
    ("item holders: item_adj [N, I]^T @ weights [N, 1] (lastfm item tasks)", (96, 2048),
     "t_matmul"),
)


def compare_products(tasks, repeats: int) -> None:
    """Forward and backward of the products :mod:`socialmeta.models.ops` computes, in
    the plain form (``A @ v``, ``A.transpose(-1, -2) @ V``) and in its form, per task
    under ``vmap`` and differentiated with ``torch.func.grad`` in both inputs (as in a
    meta-step, where the matrix and the vector may both be per task and adapted),
    interleaved repeat by repeat; medians and quartiles."""
    from torch.func import grad, vmap

    from socialmeta.models.ops import matvec, t_matmul

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {repeats} interleaved repeats after 3 warm-ups")
    print("| product | T | form | forward + backward (ms), median | quartiles |")
    print("|---|---:|---|---:|---|")
    forms = {"matvec": (lambda a, v: a @ v, matvec),
             "t_matmul": (lambda a, v: a.transpose(-1, -2) @ v, t_matmul)}
    torch.manual_seed(0)
    for name, (rows, cols), kind in PRODUCTS:
        plain, fast = forms[kind]
        for num_tasks in tasks:
            matrix = torch.rand(num_tasks, rows, cols)
            other = (torch.randn(num_tasks, cols) if kind == "matvec"
                     else torch.randn(num_tasks, rows, 1))
            weights = torch.randn_like(vmap(plain)(matrix, other))

            def loss(a, v, form, weights=weights):
                return (vmap(form)(a, v) * weights).sum()

            times = _interleaved(
                {label: lambda form=form, a=matrix, v=other: grad(loss, (0, 1))(a, v, form)
                 for label, form in (("plain", plain), (kind, fast))}, repeats)
            for label, (median, q1, q3) in times.items():
                print(f"| {name} | {num_tasks} | {label} | {median:.1f} | {q1:.1f}-{q3:.1f} |",
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--learners", nargs="+", default=["maml", "fomaml", "anil"])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cell", help="time a benchmark cell's real tasks per scorer "
                        "(e.g. lastfm:friend) instead of the synthetic batched-vs-loop table")
    parser.add_argument("--scorers", nargs="+", default=["egonet", "hybrid"])
    parser.add_argument("--pair-mlp", type=int, nargs=3, metavar=("USERS", "FEATURES", "HIDDEN"),
                        help="time the hybrid scorer's pair MLP alone at [T, USERS, FEATURES] "
                        "(CPU; lastfm friend: 1892 10 32) against the nn.Sequential it "
                        "replaced")
    parser.add_argument("--tower", metavar="CELL",
                        help="time the hybrid scorer's candidate tower alone on a cell's "
                        "graph (e.g. lastfm:friend): a forward per fold against the "
                        "folds as one graph")
    parser.add_argument("--products", action="store_true",
                        help="time the models' matrix-vector products in the form of "
                        "socialmeta.models.ops against the plain ones (CPU, per --tasks)")
    args = parser.parse_args()
    if args.pair_mlp:
        compare_pair_mlp(args.tasks, *args.pair_mlp, args.repeats)
        return
    if args.products:
        compare_products(args.tasks, args.repeats)
        return
    if args.tower:
        compare_tower(args.tower, args.repeats)
        return
    device = resolve_device(args.device)
    if args.cell:
        compare_scorers(args.cell, args.scorers, args.learners, args.tasks, device,
                        args.repeats)
        return
    graph = generate_synthetic(5000, seed=0)
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind="friend", node_cap=32, fanouts=(10, 5)))
    if not args.json:
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads, device {device}")
        print("| learner | T | inner steps | batched steps/s | batched tasks/s | "
              "reference steps/s | speedup | peak mem (MiB) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for learner in args.learners:
        for steps in args.steps:
            for num_tasks in args.tasks:
                r = run(sampler, learner, num_tasks, steps, device, args.repeats)
                if args.json:
                    print(json.dumps(r), flush=True)
                else:
                    print(f"| {learner} | {num_tasks} | {steps} | {r['batched_steps_per_s']} | "
                          f"{r['batched_tasks_per_s']} | {r['reference_steps_per_s']} | "
                          f"{r['speedup']}x | {r['peak_mem_mib']} |", flush=True)


if __name__ == "__main__":
    main()
