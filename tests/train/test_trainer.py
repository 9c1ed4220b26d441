"""Training loop: resume equals an uninterrupted run; checkpoints are safe to load."""

import pytest
import torch

from socialmeta.data import generate_synthetic
from socialmeta.meta import InnerLoop
from socialmeta.models import LinkModel
from socialmeta.tasks import TaskConfig, TaskSampler, split_users
from socialmeta.train import CheckpointError, TrainConfig, Trainer, load_checkpoint


@pytest.fixture(scope="module")
def sampler():
    graph = generate_synthetic(300, avg_degree=8, seed=1)
    return TaskSampler(graph, split_users(graph, seed=0),
                       TaskConfig(kind="friend", node_cap=24, fanouts=(8, 4)))


def _trainer(sampler, out, model=None, **overrides):
    torch.manual_seed(0)
    model = LinkModel(17, num_hops=2, hidden_channels=8) if model is None else model()
    config = TrainConfig(**{"steps": 8, "batch_size": 8, "eval_every": 3, "patience": 10,
                            "val_users": 20, **overrides})
    return Trainer(model, InnerLoop("maml", steps=1, lr=0.3), sampler, config, out)


def test_resume_equals_uninterrupted(sampler, tmp_path):
    full = _trainer(sampler, tmp_path / "full")
    full.fit()
    first = _trainer(sampler, tmp_path / "resumed", stop_after=5)
    first.fit()
    assert first.step == 5
    second = _trainer(sampler, tmp_path / "resumed")
    second.fit(resume=True)
    assert second.step == 8
    for name, p in full.params.items():
        assert torch.equal(p, second.params[name]), name
    log = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss,val") and len(log) == 9
    # step 5 ran after the last checkpoint (step 3): its row is replaced, not duplicated
    loss = lambda path: [r.split(",")[:3] for r in path.read_text().splitlines()]  # noqa: E731
    assert loss(tmp_path / "resumed" / "log.csv") == loss(tmp_path / "full" / "log.csv")


def test_resume_equals_uninterrupted_with_the_neighbour_sampled_tower(sampler, tmp_path):
    """The hybrid's tower sample is keyed by the training step (Trainer calls
    ``begin_step``), so a resumed run draws what the uninterrupted one drew."""
    from socialmeta.models import HybridLinkModel

    def model():
        return HybridLinkModel(17, 2, sampler.num_users, parts=("egonet", "tower"),
                               hidden_channels=8, tower_fanout=(3, 3)).set_graph(
            sampler.observed, sampler.split.train)

    full = _trainer(sampler, tmp_path / "full", model, steps=5)
    full.fit()
    first = _trainer(sampler, tmp_path / "resumed", model, steps=5, stop_after=3)
    first.fit()
    second = _trainer(sampler, tmp_path / "resumed", model, steps=5)
    second.fit(resume=True)
    assert second.step == 5
    for name, p in full.params.items():
        assert torch.equal(p, second.params[name]), name


def test_eval_at_start_validates_the_initial_parameters_and_can_keep_them(sampler,
                                                                        tmp_path):
    initial = _trainer(sampler, tmp_path / "x")
    start = {n: p.detach().clone() for n, p in initial.params.items()}
    start_val = initial.validate()
    # lr ~ 0: no later validation beats step 0 (ties do not), so step 0 stays best
    trainer = _trainer(sampler, tmp_path / "kept", eval_at_start=True, lr=1e-30, steps=6)
    rows = trainer.fit()
    assert rows[0]["step"] == 0 and rows[0]["val"] == start_val
    log = (tmp_path / "kept" / "log.csv").read_text().splitlines()
    assert log[1].startswith("0,nan,") and len(log) == 8
    best = load_checkpoint(tmp_path / "kept" / "best.pt")
    assert best["step"] == 0
    for name, p in start.items():
        assert torch.equal(best["params"][name], p), name
    # off by default: the first validation is at eval_every
    plain = _trainer(sampler, tmp_path / "plain", steps=6)
    assert plain.fit()[0]["step"] == 1
    with pytest.raises(ValueError, match="eval_at_start must be true or false"):
        TrainConfig(eval_at_start="yes")


def test_eval_at_start_resumes_to_the_uninterrupted_log(sampler, tmp_path):
    full = _trainer(sampler, tmp_path / "full", eval_at_start=True)
    full.fit()
    first = _trainer(sampler, tmp_path / "resumed", eval_at_start=True, stop_after=2)
    first.fit()
    second = _trainer(sampler, tmp_path / "resumed", eval_at_start=True)
    second.fit(resume=True)   # step 0 is not validated again
    read = lambda path: [r.split(",")[:3] for r in path.read_text().splitlines()]  # noqa: E731
    assert read(tmp_path / "resumed" / "log.csv") == read(tmp_path / "full" / "log.csv")
    assert read(tmp_path / "full" / "log.csv")[1][0] == "0"
    for name, p in full.params.items():
        assert torch.equal(p, second.params[name]), name


def test_tensorboard_logger_writes_scalars(sampler, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from socialmeta.train import CSVLogger, TensorBoardLogger

    trainer = _trainer(sampler, tmp_path)
    trainer.loggers = [CSVLogger(tmp_path), TensorBoardLogger(tmp_path, "recall@20")]
    trainer.fit()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 9))
    assert [e.step for e in events.Scalars("val/recall@20")] == [3, 6, 8]


def test_checkpoints_load_weights_only(sampler, tmp_path):
    trainer = _trainer(sampler, tmp_path)
    trainer.fit()
    for name in ("last.pt", "best.pt"):
        state = torch.load(tmp_path / name, weights_only=True)
        assert set(state["params"]) == set(trainer.params)
        assert state["learner"] == "maml"
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 8


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('pwned').write_text('x')",))


def test_malicious_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"params": _Evil()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused: unpickling it would run"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_early_stopping_and_resuming_a_stopped_run(sampler, tmp_path):
    """With a learning rate too small to move the validation metric, the second
    validation does not improve on the first: patience=1 stops there, and a resumed
    run that has already stopped takes no further step."""
    trainer = _trainer(sampler, tmp_path, eval_every=1, patience=1, lr=1e-12)
    rows = trainer.fit()
    assert [r["step"] for r in rows] == [1, 2] and trainer.bad_evals == 1
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2
    again = _trainer(sampler, tmp_path, eval_every=1, patience=1, lr=1e-12)
    assert again.fit(resume=True) == [] and again.step == 2
