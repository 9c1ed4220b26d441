"""How far can an ego-net model reach? Oracle ceilings of the friend-task protocol.

    python tools/egonet_ceiling.py                                  # the benchmark's friend cells
    python tools/egonet_ceiling.py --cells lastfm:friend:items --seeds 0 1 2
    python tools/egonet_ceiling.py --checkpoints results/quality/lastfm-friend/seed0/*/run/best.pt

A meta-learned friend model scores the users of the task's ego-net individually and
gives every user outside it one shared ("far") score. So no such model can rank a query
friend that is outside the ego-net above the other outside users: its Recall@20 is at
most that of an *oracle* which puts every query friend inside the ego-net first and
ties everything else. This tool measures that ceiling with the benchmark's own
protocol (same cells, split, test users, K, tie-breaking) and, for cells whose context
holds the center's items, the ceiling of a ranker restricted to users who share an item
with the center ("taste reach") and of the union of both.

These oracles read the query (that is what makes them ceilings); they are a diagnostic,
never a method.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import bench_quality  # noqa: E402  (the benchmark script beside this one)

FRIEND_CELLS = ("lastfm:friend", "lastfm:friend:items", "ego_facebook:friend",
                "ego_facebook:friend:features", "synthetic:friend")


def sampler_for(cell: str, seed: int):
    """The test-time sampler of a benchmark cell, built as ``socialmeta-train`` does."""
    from socialmeta.config import config_dir
    from socialmeta.experiment import dataset_from_config, split_from_config, task_config
    from socialmeta.tasks import TaskSampler

    overrides = bench_quality._overrides(cell, seed, quick=False, shots=[3])
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    graph = dataset_from_config(cfg.dataset)
    task = task_config(cfg.task, seed)
    return TaskSampler(graph, split_from_config(graph, cfg.split, task), task)


def oracles(sampler) -> dict:
    """Oracle scorers ``batch -> [T, num_users]`` (1 for the query friends they can
    reach, 0 for everyone else)."""
    num_users = sampler.graph.num_users

    def query(batch):
        pos = torch.zeros(batch.num_tasks, num_users, dtype=torch.bool)
        rows = batch.query_mask.nonzero()[:, 0]
        pos[rows, batch.query_ids[batch.query_mask]] = True
        return pos

    def in_egonet(batch):
        inside = torch.zeros(batch.num_tasks, num_users, dtype=torch.bool)
        members = batch.node_mask.clone()
        members[:, 0] = False  # the center itself
        inside[members.nonzero()[:, 0], batch.node_ids[members]] = True
        return inside

    out = {"ego-net ceiling": lambda b: (query(b) & in_egonet(b)).float()}
    if sampler.config.observes("items"):
        pos, item = sampler.context_items(torch.arange(num_users))
        user_items = torch.zeros(num_users, sampler.num_items)
        user_items[pos, item] = 1.0

        def taste(batch):
            return (user_items[batch.center] @ user_items.t()) > 0

        out["taste-reach ceiling"] = lambda b: (query(b) & taste(b)).float()
        out["ego-net or taste ceiling"] = lambda b: (query(b) & (in_egonet(b) | taste(b))
                                                     ).float()
    return out


def outside_share(checkpoint: Path, shots: int = 3, k: int = 20) -> dict:
    r"""For a trained friend model (a ``best.pt``): of the test users' query friends that
    are **outside** their task's ego-net, the share the model ranks in its top
    :obj:`k` candidates; with its Recall@k. Zero by construction for the ego-net
    scorer (every outside user shares one score, ranked below the ego-net or tied)."""
    from socialmeta import Experiment
    from socialmeta.eval.protocol import model_scorer

    exp = Experiment.from_checkpoint(checkpoint)
    sampler, n = exp.sampler, exp.graph.num_users
    scorer = model_scorer(exp.model, exp.params, sampler, exp.inner)
    users = sampler.eval_centers("test", shots)
    hit = total = 0
    recalls = []
    for start in range(0, users.numel(), 64):
        batch = sampler.eval_batch(users[start:start + 64], shots)
        scores = scorer(batch).masked_fill(~sampler.candidate_mask(batch), float("-inf"))
        top = torch.zeros(batch.num_tasks, n, dtype=torch.bool)
        top.scatter_(1, scores.topk(k, dim=1).indices, True)
        inside = torch.zeros(batch.num_tasks, n, dtype=torch.bool)
        inside[batch.node_mask.nonzero()[:, 0], batch.node_ids[batch.node_mask]] = True
        query = torch.zeros(batch.num_tasks, n, dtype=torch.bool)
        query[batch.query_mask.nonzero()[:, 0], batch.query_ids[batch.query_mask]] = True
        outside = query & ~inside
        hit += int((outside & top).sum())
        total += int(outside.sum())
        recalls.append((query & top).sum(1) / query.sum(1).clamp(min=1))
    return {"outside_in_top": hit / max(total, 1), "outside_friends": total,
            "recall": float(torch.cat(recalls).mean()), "users": users.numel()}


def main(argv: list[str] | None = None) -> None:
    from socialmeta.eval.protocol import evaluate_scorer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=list(FRIEND_CELLS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--metric", default="recall@20")
    parser.add_argument("--checkpoints", nargs="+", type=Path, default=[],
                        help="trained friend models (best.pt): instead of the oracles, the "
                             "share of outside-ego-net query friends each ranks in its top 20")
    args = parser.parse_args(argv)
    if args.checkpoints:
        print("| checkpoint | test users | query friends outside the ego-net | share in "
              "the top 20 | recall@20 |")
        print("|---|---:|---:|---:|---:|")
        for path in args.checkpoints:
            r = outside_share(path, args.shots)
            print(f"| {path} | {r['users']} | {r['outside_friends']} | "
                  f"{r['outside_in_top']:.4f} | {r['recall']:.4f} |", flush=True)
        return
    print(f"`python tools/egonet_ceiling.py {' '.join(sys.argv[1:] if argv is None else argv)}`"
          .replace(" `", "`"))
    print(f"\nK={args.shots}, test users, {args.metric}: mean over seeds {args.seeds} "
          "(min-max over seeds)\n")
    print("| cell | oracle | " + args.metric + " | test users per seed |")
    print("|---|---|---|---:|")
    for cell in args.cells:
        values: dict[str, list[float]] = {}
        users: list[int] = []
        for seed in args.seeds:
            sampler = sampler_for(cell, seed)
            for name, scorer in oracles(sampler).items():
                res = evaluate_scorer(scorer, sampler, "test", shots=(args.shots,))
                values.setdefault(name, []).append(res[args.shots][args.metric]["mean"])
                if name == "ego-net ceiling":
                    users.append(res[args.shots][args.metric]["users"])
        for name, v in values.items():
            spread = f" ({min(v):.4f}-{max(v):.4f})" if len(v) > 1 else ""
            print(f"| {cell} | {name} | {statistics.fmean(v):.4f}{spread} | "
                  f"{'/'.join(map(str, users))} |")


if __name__ == "__main__":
    main()
