"""Does a second baseline's score add anything to a first's? A validation-users probe.

    python tools/probe_blend.py --cell lastfm:friend --first learned_ranker --second lightgcn
    python tools/probe_blend.py --cell lastfm:item --first learned_ranker --second ease --seeds 0

Before a signal becomes a pair-feature channel of the hybrid scorer (DESIGN §11) it is
worth knowing whether it carries anything the model's inputs lack. This tool asks it
of two baselines on a benchmark cell (built as ``tools/bench_quality.py`` builds it):
each is tuned on the cell's **validation** users (its grid, :func:`socialmeta.baselines.tune`),
then the blend ``(1 - w) · a + w · b`` of their scores, each normalised by its largest
candidate score, is evaluated on the same validation users at K=3 for every ``w`` of
``--weights``. A blend that beats both ends at some ``w`` (the last column) says the
two baselines hold signal the other does not use; ``w = 0`` and ``w = 1`` are the two
baselines alone. Test users are never read: the figures are for design decisions, not results.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from egonet_ceiling import sampler_for  # noqa: E402  (the tool beside this one)

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)


def blend_curve(sampler, first, second, weights=WEIGHTS, shots: int = 3,
                metric: str = "recall@20", max_users: int | None = None) -> dict[float, float]:
    r"""Validation :obj:`metric` at K = :obj:`shots` of ``(1 - w) a + w b`` for each
    ``w`` of :obj:`weights` (:obj:`first` and :obj:`second`: fitted baselines; the
    form of :class:`socialmeta.baselines.base.Blend`'s score). Each validation batch is
    scored by the two baselines once; the weights reuse those scores."""
    from socialmeta.eval.protocol import evaluate_scorer
    from socialmeta.features.sparse import candidate_normalized

    scored: dict[bytes, tuple] = {}   # each batch's two normalised scores, by its centers

    def pair(batch):   # scored once per batch, reused by every weight
        key = batch.center.numpy().tobytes()
        if key not in scored:
            candidates = sampler.candidate_mask(batch)
            scored[key] = (candidate_normalized(first.scores(batch), candidates),
                           candidate_normalized(second.scores(batch), candidates))
        return scored[key]

    out = {}
    for w in weights:
        def score(batch, w=float(w)):
            a, b = pair(batch)
            return (1 - w) * a + w * b

        out[float(w)] = evaluate_scorer(score, sampler, "val", (shots,),
                                        max_users=max_users)[shots][metric]["mean"]
    return out


def main(argv: list[str] | None = None) -> None:
    from socialmeta.baselines import make_baseline, tune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", required=True, help="a tools/bench_quality.py cell")
    parser.add_argument("--first", required=True, help="a baseline name of the cell's kind")
    parser.add_argument("--second", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    args = parser.parse_args(argv)
    if any(not 0.0 <= w <= 1.0 for w in args.weights):
        parser.error(f"--weights must lie in [0, 1], got {args.weights}")
    weights = sorted({0.0, 1.0, *args.weights})   # the two baselines alone, always
    print(f"cell {args.cell}; {args.first} (a) blended with {args.second} (b); validation "
          f"users, K=3, Recall@20; torch {torch.__version__}, {torch.get_num_threads()} "
          "threads")
    print("| seed | a alone | b alone | best w | best blend | vs a | vs the better alone |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    gains = []   # the best blend against the better of the two baselines alone
    for seed in args.seeds:
        sampler = sampler_for(args.cell, seed)
        kind = sampler.config.kind
        first = tune(make_baseline(kind, args.first), sampler)[0]
        second = tune(make_baseline(kind, args.second), sampler)[0]
        curve = blend_curve(sampler, first, second, weights)
        best = max(curve, key=lambda w: (curve[w], -w))   # ties: the smaller weight
        a, b = curve[0.0], curve[1.0]
        gains.append(curve[best] / max(a, b) - 1)
        print(f"| {seed} | {a:.4f} | {b:.4f} | {best:g} | {curve[best]:.4f} | "
              f"{curve[best] / a - 1:+.1%} | {gains[-1]:+.1%} |", flush=True)
    if len(gains) > 1:
        print(f"\nbest blend vs the better alone, mean over seeds: {statistics.mean(gains):+.1%} "
              f"(range {min(gains):+.1%} to {max(gains):+.1%}); the weight is chosen on "
              "the same validation users, so this is an upper bound on what the blend adds")


if __name__ == "__main__":
    main()
