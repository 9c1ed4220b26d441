"""tools/probe_blend.py: the validation-users blend of two baselines."""
import pytest
import torch

from socialmeta.baselines import make_baseline
from socialmeta.data import generate_synthetic
from socialmeta.eval.protocol import evaluate_scorer
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


@pytest.fixture(scope="module")
def sampler():
    graph = generate_synthetic(600, avg_degree=8, seed=0)
    return TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="friend", seed=0))


def _val(scorer, sampler):
    return evaluate_scorer(scorer, sampler, "val", (3,))[3]["recall@20"]["mean"]


def test_the_curve_ends_are_the_baselines_alone(load_tool, sampler):
    tool = load_tool("probe_blend")
    first = make_baseline("friend", "popularity").fit(sampler)
    second = make_baseline("friend", "ppr", alpha=0.15).fit(sampler)
    curve = tool.blend_curve(sampler, first, second, (0.0, 0.5, 1.0))
    assert list(curve) == [0.0, 0.5, 1.0]
    # normalising by the largest candidate score keeps each baseline's ranking
    assert curve[0.0] == pytest.approx(_val(first.scores, sampler), abs=1e-6)
    assert curve[1.0] == pytest.approx(_val(second.scores, sampler), abs=1e-6)
    assert curve[0.0] != pytest.approx(curve[1.0])   # two different rankers


def test_the_middle_of_the_curve_is_the_blend(load_tool, sampler):
    tool = load_tool("probe_blend")
    first = make_baseline("friend", "popularity").fit(sampler)
    second = make_baseline("friend", "common_neighbors").fit(sampler)
    curve = tool.blend_curve(sampler, first, second, (0.3,))

    def by_hand(batch):   # popularity / its top + common neighbours / their top
        candidates = sampler.candidate_mask(batch)
        out = []
        for s, w in ((first.scores(batch), 0.7), (second.scores(batch), 0.3)):
            top = s.masked_fill(~candidates, 0).abs().amax(1, keepdim=True)
            out.append(w * torch.where(top > 0, s / top, torch.zeros_like(s)))
        return out[0] + out[1]

    assert curve[0.3] == pytest.approx(_val(by_hand, sampler), abs=1e-6)


def test_bad_weights_are_refused(load_tool):
    tool = load_tool("probe_blend")
    with pytest.raises(SystemExit):
        tool.main(["--cell", "synthetic:friend", "--first", "ppr", "--second", "lightgcn",
                   "--weights", "1.5"])
