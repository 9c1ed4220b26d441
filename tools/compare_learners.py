"""Meta-train several learners on the same synthetic friend tasks and compare them on
held-out (test) users with the cold-start protocol (full ranking, K support friends).

    python tools/compare_learners.py --learners noadapt maml fomaml --steps 150

A quick check of whether adaptation helps, not the quality benchmark: one graph, one
seed, no early stopping.
"""
from __future__ import annotations

import argparse
import time

import torch

from socialmeta.data import generate_synthetic
from socialmeta.eval import mean_ci, ranking_metrics
from socialmeta.meta import InnerLoop, candidate_scores, meta_gradient, meta_parameters
from socialmeta.models.link import LinkModel
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", nargs="+", default=["noadapt", "maml", "fomaml"])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--inner-lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    graph = generate_synthetic(args.users, avg_degree=10, p_in=0.9, seed=args.seed)
    sampler = TaskSampler(graph, split_users(graph, seed=args.seed), TaskConfig(
        kind="friend", shots=(3, 5), node_cap=48, fanouts=(10, 5), negatives=2,
        seed=args.seed))
    test = sampler.eval_batch(sampler.eval_centers("test", args.shots), args.shots)
    positives = torch.zeros(test.num_tasks, graph.num_users, dtype=torch.bool)
    positives[test.query_mask.nonzero()[:, 0], test.query_ids[test.query_mask]] = True
    candidates = sampler.candidate_mask(test)
    print(f"synthetic {args.users} users, {test.num_tasks} test users, K={args.shots}, "
          f"{args.steps} meta-steps of {args.tasks} tasks")
    print("| learner | recall@10 | ndcg@10 | recall@20 | mrr | seconds |")
    print("|---|---|---|---|---|---:|")
    for learner in args.learners:
        torch.manual_seed(args.seed)
        model = LinkModel(graph["user"].x.size(1), num_hops=2, hidden_channels=32)
        inner = InnerLoop(learner, steps=1, lr=args.inner_lr)
        params = meta_parameters(model, inner)
        opt = torch.optim.Adam(params.values(), lr=3e-3)
        start = time.perf_counter()
        for step in range(args.steps):
            _, grads = meta_gradient(model, sampler.train_batch(0, step, args.tasks), inner,
                                     params)
            for name, p in params.items():
                p.grad = grads[name]
            opt.step()
        scores = candidate_scores(model, params, test, inner, graph.num_users)
        m = ranking_metrics(scores, positives, candidates)
        cells = []
        for key in ("recall@10", "ndcg@10", "recall@20", "mrr"):
            mean, half, _ = mean_ci(m[key])
            cells.append(f"{mean:.4f} ± {half:.4f}")
        print(f"| {learner} | " + " | ".join(cells)
              + f" | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
