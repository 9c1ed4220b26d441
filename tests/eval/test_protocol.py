"""The cold-start protocol's reported metrics: interest tasks report cut-offs below the
label count, mAP, R-precision and macro-F1, each equal to a direct computation."""
import pytest
import torch

from socialmeta.data import generate_synthetic
from socialmeta.eval.metrics import label_f1_counts, macro_f1, ranking_metrics
from socialmeta.eval.protocol import INTEREST_REPORTED, REPORTED, evaluate_scorer, reported
from socialmeta.eval.report import format_results, table_metrics
from socialmeta.tasks import TaskConfig, TaskSampler, split_users


@pytest.fixture(scope="module")
def interest_sampler():
    graph = generate_synthetic(300, avg_degree=6, num_interests=8, seed=4)
    return TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="interest"))


def _scorer(batch):
    # a seeded random scorer (any scorer: the point is the bookkeeping)
    gen = torch.Generator().manual_seed(int(batch.center.sum()))
    return torch.rand(batch.num_tasks, batch.label_valid.size(1), generator=gen)


def test_interest_metrics_equal_a_direct_computation(interest_sampler):
    sampler = interest_sampler
    assert set(reported(sampler)) == set(INTEREST_REPORTED) | {"macro_f1"}
    table = evaluate_scorer(_scorer, sampler, "test", shots=(3,), batch_size=16)[3]
    assert set(table) == set(INTEREST_REPORTED) | {"macro_f1"}
    users = sampler.eval_centers("test", 3)
    per_task, counts = {}, torch.zeros(3, sampler.graph["user"].interests.size(1),
                                        dtype=torch.long)
    for start in range(0, users.numel(), 16):
        batch = sampler.eval_batch(users[start:start + 16], 3)
        scores, truth = _scorer(batch), batch.query_labels[:, 0] > 0
        for key, value in ranking_metrics(scores, truth, batch.label_valid,
                                          ks=(1, 5, 10, 20)).items():
            per_task.setdefault(key, []).append(value)
        counts += label_f1_counts(scores, truth, batch.label_valid)
    for key in ("recall@1", "ndcg@5", "map", "rprec"):
        values = torch.cat(per_task[key])
        assert table[key]["mean"] == pytest.approx(float(values.nanmean()), abs=1e-6)
    assert table["macro_f1"]["mean"] == pytest.approx(macro_f1(counts))
    assert 0.0 < table["map"]["mean"] < 1.0
    # 8 labels: Recall@20 is 1 by construction, which is why the table leaves it out
    assert table["recall@20"]["mean"] == pytest.approx(1.0)
    text = format_results({"random": {3: table}})
    assert "map" in text.splitlines()[0] and "recall@20" not in text.splitlines()[0]
    assert table_metrics({"random": {3: table}}) == ("recall@1", "ndcg@5", "map", "rprec",
                                                     "macro_f1")


def test_link_tasks_keep_their_table():
    graph = generate_synthetic(200, seed=1)
    sampler = TaskSampler(graph, split_users(graph, seed=0), TaskConfig(kind="friend"))
    assert reported(sampler) == REPORTED and "map" in REPORTED
    table = evaluate_scorer(lambda b: torch.rand(b.num_tasks, graph.num_users), sampler,
                            "test", shots=(3,))
    assert table_metrics({"x": table})[0] == "recall@10"
