"""train.precision=bf16 (the batched meta-gradient under bfloat16 autocast stays within
a tolerance of float32 on CPU; training with it runs end to end) and train.num_workers
(background batch building changes nothing)."""
import pytest
import torch

from socialmeta.data import generate_synthetic
from socialmeta.meta import InnerLoop, meta_gradient, meta_parameters
from socialmeta.models import InterestModel, ItemModel, LinkModel
from socialmeta.tasks import TaskConfig, TaskSampler, split_users
from socialmeta.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def graph():
    return generate_synthetic(num_users=400, seed=0)


def _model(kind, sampler, graph):
    torch.manual_seed(0)
    if kind == "friend":
        return LinkModel(sampler.in_channels, 2, hidden_channels=32)
    if kind == "item":
        return ItemModel(sampler.in_channels, graph.num_items, 2, hidden_channels=32)
    return InterestModel(sampler.in_channels, graph["user"].interests.size(1), 2,
                         hidden_channels=32)


@pytest.mark.parametrize("kind", ["friend", "item", "interest"])
@pytest.mark.parametrize("learner", ["maml", "anil", "protonet"])
def test_bf16_meta_gradient_within_tolerance_of_fp32(graph, kind, learner):
    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split, TaskConfig(kind=kind, fanouts=(8, 4), node_cap=24))
    batch = sampler.train_batch(0, 0, 16)
    model = _model(kind, sampler, graph)
    inner = InnerLoop(learner, 1, 0.01)
    params = meta_parameters(model, inner)
    loss32, grads32 = meta_gradient(model, batch, inner, params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16, grads16 = meta_gradient(model, batch, inner, params)
    assert abs(float(loss16) - float(loss32)) <= 2e-2 * max(1.0, abs(float(loss32)))
    diff = sum(float((grads32[n] - grads16[n].float()).pow(2).sum()) for n in grads32)
    norm = sum(float(g.pow(2).sum()) for g in grads32.values())
    rel = (diff / norm) ** 0.5
    assert rel < 5e-2, rel
    assert rel > 1e-5, "autocast changed nothing: the products did not run in bf16"


def test_training_in_bf16_keeps_float32_state(graph, tmp_path):
    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split, TaskConfig(kind="friend", fanouts=(8, 4),
                                                   node_cap=24))
    model = _model("friend", sampler, graph)
    trainer = Trainer(model, InnerLoop("maml", 1, 0.01), sampler,
                      TrainConfig(steps=4, batch_size=8, eval_every=2, val_users=20,
                                  precision="bf16"), tmp_path)
    before = {n: p.detach().clone() for n, p in trainer.params.items()}
    rows = trainer.fit()
    assert len(rows) == 4 and all(r["loss"] == r["loss"] for r in rows)
    for name, p in trainer.params.items():
        assert p.dtype == torch.float32 and torch.isfinite(p).all(), name
    assert any(not torch.equal(before[n], p) for n, p in trainer.params.items())
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'; choose one of"):
        TrainConfig(precision="fp16")


def test_background_workers_give_the_same_training(graph, tmp_path):
    split = split_users(graph, seed=0)
    sampler = TaskSampler(graph, split, TaskConfig(kind="friend", fanouts=(8, 4),
                                                   node_cap=24))
    ends = []
    for workers in (0, 1):
        model = _model("friend", sampler, graph)
        trainer = Trainer(model, InnerLoop("maml", 1, 0.01), sampler,
                          TrainConfig(steps=5, batch_size=8, eval_every=5, val_users=20,
                                      num_workers=workers), tmp_path / str(workers))
        trainer.fit()
        ends.append({n: p.detach().clone() for n, p in trainer.params.items()})
    for name in ends[0]:
        assert torch.equal(ends[0][name], ends[1][name]), name
