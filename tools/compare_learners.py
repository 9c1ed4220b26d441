"""Meta-train several learners on the same synthetic tasks and compare them on
held-out (test) users with the cold-start protocol.

    python tools/compare_learners.py --kind friend --learners noadapt maml fomaml
    python tools/compare_learners.py --kind interest --seeds 0 1 2

friend: full ranking of all training users from K support friends (1,000 users with
features). interest: the 20 interests of a new user ranked from K labelled neighbours,
on a featureless graph (communities prefer random interests, so the neighbours' labels,
which reach the model only through adaptation, are the signal).

A quick check of whether adaptation helps, not the quality benchmark: one graph, one
seed, no early stopping.
"""
from __future__ import annotations

import argparse
import time

import torch

from socialmeta.data import generate_synthetic
from socialmeta.eval import mean_ci, ranking_metrics
from socialmeta.meta import (
    InnerLoop,
    candidate_scores,
    interest_logits,
    meta_gradient,
    meta_parameters,
)
from socialmeta.models import InterestModel, LinkModel
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


def _friend_run(args, seed: int, learner: str) -> dict:
    graph = generate_synthetic(args.users, avg_degree=10, p_in=0.9, seed=seed)
    sampler = TaskSampler(graph, split_users(graph, seed=seed), TaskConfig(
        kind="friend", shots=(3, 5), node_cap=48, fanouts=(10, 5), negatives=2,
        context=("features",), seed=seed))
    test = sampler.eval_batch(sampler.eval_centers("test", args.shots), args.shots)
    positives = torch.zeros(test.num_tasks, graph.num_users, dtype=torch.bool)
    positives[test.query_mask.nonzero()[:, 0], test.query_ids[test.query_mask]] = True
    model = LinkModel(sampler.in_channels, num_hops=2, hidden_channels=32)
    inner, params = _train(args, seed, learner, model, sampler)
    scores = candidate_scores(model, params, test, inner, graph.num_users)
    return {"test users": test.num_tasks,
            **ranking_metrics(scores, positives, sampler.candidate_mask(test))}


def _interest_run(args, seed: int, learner: str) -> dict:
    graph = generate_synthetic(args.users, avg_degree=10, feature_dim=0, seed=seed)
    sampler = TaskSampler(graph, split_users(graph, seed=seed), TaskConfig(
        kind="interest", variant="center", shots=(5, 10), node_cap=32, fanouts=(10, 5),
        seed=seed))
    test = sampler.eval_batch(sampler.eval_centers("test", args.shots), args.shots)
    model = InterestModel(0, graph["user"].interests.size(1), num_hops=2,
                          hidden_channels=32)
    inner, params = _train(args, seed, learner, model, sampler)
    detached = {n: p.detach() for n, p in params.items()}
    logits = interest_logits(model, detached, test, inner)[:, 0]
    truth = test.query_labels[:, 0] > 0
    per_task_loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, truth.float(), reduction="none").mean(1)
    return {"test users": test.num_tasks, "query loss": per_task_loss,
            **ranking_metrics(logits, truth, torch.ones_like(truth))}


def _train(args, seed, learner, model, sampler):
    torch.manual_seed(seed)
    model.reset_parameters()
    inner = InnerLoop(learner, steps=1, lr=args.inner_lr)
    params = meta_parameters(model, inner)
    opt = torch.optim.Adam(params.values(), lr=3e-3)
    for step in range(args.steps):
        _, grads = meta_gradient(model, sampler.train_batch(0, step, args.tasks), inner, params)
        for name, p in params.items():
            p.grad = grads[name]
        opt.step()
    return inner, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["friend", "interest"], default="friend")
    parser.add_argument("--learners", nargs="+", default=["noadapt", "maml", "fomaml"])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--shots", type=int, default=None,
                        help="K at test time (default: 3 friends, 5 labelled neighbours)")
    parser.add_argument("--inner-lr", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    args.shots = args.shots or (3 if args.kind == "friend" else 5)
    run = _friend_run if args.kind == "friend" else _interest_run
    keys = (["recall@10", "ndcg@10", "recall@20", "mrr"] if args.kind == "friend"
            else ["query loss", "recall@10", "ndcg@10", "mrr"])
    print(f"{args.kind} tasks, synthetic {args.users} users, K={args.shots}, "
          f"{args.steps} meta-steps of {args.tasks} tasks, seeds {args.seeds}")
    print("| seed | learner | test users | " + " | ".join(keys) + " | seconds |")
    print("|---|---|---:|" + "---|" * len(keys) + "---:|")
    for seed in args.seeds:
        for learner in args.learners:
            start = time.perf_counter()
            result = run(args, seed, learner)
            cells = []
            for key in keys:
                mean, half, _ = mean_ci(result[key])
                cells.append(f"{mean:.4f} ± {half:.4f}")
            print(f"| {seed} | {learner} | {result['test users']} | " + " | ".join(cells)
                  + f" | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
