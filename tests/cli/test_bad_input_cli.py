"""Bad configuration values and bad checkpoints end in one line naming what is wrong
(exit status 2), never a traceback, and write nothing."""
import re
import subprocess
import sys
import warnings

import pytest
import torch

from socialmeta.cli.evaluate import main as eval_main
from socialmeta.cli.export import main as export_main
from socialmeta.cli.recommend import main as recommend_main
from socialmeta.cli.train import main as train_main

TINY = ["dataset.num_users=300", "train.steps=2", "train.eval_every=2", "train.batch_size=4",
        "train.val_users=10", "eval.shots=[3]", "eval.max_users=5", "eval.baselines=null",
        "task.node_cap=24", "task.fanouts=[8,4]"]


def _error_line(capsys, run, argv) -> str:
    with pytest.raises(SystemExit) as info:
        run(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    # progress lines ("[12:00:00] loading dataset ...") may come first; then one error line
    errors = [line for line in err if not line.startswith("[")]
    assert len(errors) == 1 and errors[0] == err[-1] and err[-1].startswith("error: "), err
    return err[-1]


@pytest.mark.parametrize("override, message", [
    ("meta=mamll", r"Could not find 'meta/mamll'; choose one of the meta options "
                   r"\['anil', 'finetune', 'fomaml', 'maml', 'metanet', 'metasgd'"),
    ("train.stepz=5", r"unknown key 'train.stepz'; train has keys \['batch_size', "),
    ("train.lr=abc", r"train.lr: expected a number like the default 0.003, got 'abc'"),
    ("train.steps=2.5", r"train.steps: expected an integer like the default 1000, got 2.5"),
    ("meta.inner_lr=nan", r"meta.inner_lr: expected a finite number, got nan"),
    ("model.hidden_channels=0", r"model.hidden_channels: expected a positive integer, got 0"),
    ("model.dropout=1.5", r"model.dropout: expected a probability in \[0, 1\), got 1.5"),
    ("model.num_layers=10", r"model: num_layers must be 1 to 3, got 10"),
    ("dataset.num_users=1", r"dataset: num_users must be at least 2, got 1"),
    ("eval.baselines=ppr", r"eval.baselines: expected all, null or a list of names, got 'ppr'"),
    ("train.lr=inf", r"train.lr: expected a finite number, got inf"),
    ("meta.inner_lr=1e30", r"meta.inner_lr: expected a finite number in \[0, 1000\], got 1e\+30"),
    ("train.lr=1e6", r"train: lr must be a positive number of at most 1000, got 1000000.0"),
    ("model.dropout=[1]", r"model.dropout: expected a number like the default 0.0"),
    ("task.shots=[1,x]", r"task.shots: expected a list like the default \[1, 3, 5, 10\]"),
    ("eval.shots=[-1]", r"eval.shots: K must be a positive integer, got -1"),
    ("eval.shots=[0,3]", r"eval.shots: K must be a positive integer, got 0"),
    ("eval.shots=[500]", r"eval.shots: K=500 leaves no test user with links left to predict "
                         r"\(the largest K with test users is \d+\)"),
    ("train.val_shots=500", r"train.val_shots: K=500 leaves no val user"),
    ("task.context=[items,features]", None),  # fine on synthetic: a control
    ("dataset.nusers=5", r"unknown key 'dataset.nusers'; dataset has keys \["),
])
def test_config_errors_are_one_line(tmp_path, capsys, override, message):
    argv = [f"hydra.run.dir={tmp_path}", *TINY, override]
    if message is None:
        train_main(argv)
        assert (tmp_path / "metrics.json").is_file()
        return
    line = _error_line(capsys, train_main, argv)
    assert re.search(message, line), line
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "metrics.json").exists()


def test_context_the_dataset_lacks(tmp_path, capsys):
    line = _error_line(capsys, train_main, [f"hydra.run.dir={tmp_path}", "dataset=karate",
                                            "task.context=[items]"])
    assert "task context 'items' is not available: dataset 'karate' has only" in line
    line = _error_line(capsys, train_main, [f"hydra.run.dir={tmp_path}", "dataset=csv"])
    assert line == ("error: dataset.root is required (no default): add dataset.root=... to "
                    "the command line")


def test_bad_type_under_plain_python():
    from socialmeta.train import TrainConfig

    with pytest.raises(ValueError, match=r"lr must be a positive number of at most 1000, got 'abc'"):
        TrainConfig(lr="abc")
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, got 0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"val_batch_size must be an integer >= 1, got 0"):
        TrainConfig(val_batch_size=0)


# ------------------------------------------------------------- checkpoints
class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train_main([f"hydra.run.dir={run}", *TINY])
    return run / "best.pt"


def _bad_checkpoints(trained, folder):
    good = trained.read_bytes()
    state = torch.load(trained, weights_only=True)
    files = {"empty": (b"", r"the file is empty"),
             "random": (bytes(range(256)) * 8, r"not a torch checkpoint"),
             "truncated": (good[: len(good) // 3], r"unreadable, truncated or damaged")}
    for name, (data, _) in files.items():
        (folder / f"{name}.pt").write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({**state, "params": _Evil()}, folder / "malicious.pt")
    torch.save({k: v for k, v in state.items() if k != "params"}, folder / "nokey.pt")
    other = dict(state, config=dict(state["config"],
                                    dataset=dict(state["config"]["dataset"], seed=7)))
    torch.save(other, folder / "otherdata.pt")
    torch.save(dict(state, config={k: v for k, v in state["config"].items() if k != "model"}),
               folder / "nomodel.pt")
    return {**{k: m for k, (_, m) in files.items()},
            "nomodel": r"its config lacks the 'model' section that a socialmeta-train run "
                       r"writes",
            "malicious": r"refused: unpickling it would run code",
            "nokey": r"missing key\(s\) \['params'\]: not a socialmeta training checkpoint",
            "otherdata": r"was trained on other data than dataset 'synthetic' now loads "
                         r"\(data hash [0-9a-f]{12} vs [0-9a-f]{12}\); pass "
                         r"allow_other_data=true",
            "missing": r"does not exist"}


@pytest.mark.parametrize("tool", ["eval", "export", "recommend"])
def test_bad_checkpoints_are_one_line(trained, tmp_path, capsys, tool):
    run = {"eval": eval_main, "export": export_main, "recommend": recommend_main}[tool]
    extra = {"eval": ["shots=[3]", "max_users=5", f"out={tmp_path / 'm.json'}"],
             "export": [f"out={tmp_path / 'export'}"],
             "recommend": ["friends=[u1,u2]"]}[tool]
    for name, message in _bad_checkpoints(trained, tmp_path).items():
        path = tmp_path / f"{name}.pt"
        line = _error_line(capsys, run, [f"checkpoint={path}", *extra])
        assert f"checkpoint {path}: " in line, line
        assert re.search(message, line), (name, line)
        assert "this must never run" not in capsys.readouterr().out
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "export").exists()
    # the explicit flag takes a checkpoint made on other data
    run([f"checkpoint={tmp_path / 'otherdata.pt'}", "allow_other_data=true", *extra])


def test_checkpoint_records_the_data_hash(trained):
    from socialmeta.data.cache import graph_digest
    from socialmeta.experiment import Experiment

    state = torch.load(trained, weights_only=True)
    exp = Experiment.from_checkpoint(trained)
    assert state["data_sha256"] == graph_digest(exp.graph)


def test_data_list_does_not_import_torch():
    code = ("import sys; from socialmeta.cli.data import main; main(['list']); "
            "assert 'torch' not in sys.modules and 'torch_geometric' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    from socialmeta.data import DATASETS

    assert [line.split()[0] for line in out.strip().splitlines()] == list(DATASETS)
    for name, spec in DATASETS.items():
        assert spec.description in out, name


def test_divergence_stops_with_exit_2_and_keeps_the_last_finite_checkpoint(
        tmp_path, capsys, monkeypatch):
    """A loss that becomes NaN at step 5 stops the run there: exit 2, one line naming
    the step and what to lower, and last.pt/best.pt are the finite ones of step 4."""
    import socialmeta.train.loop as loop
    from socialmeta.train import load_checkpoint

    real = loop.meta_gradient
    calls = []

    def diverging(model, batch, inner, params):
        loss, grads = real(model, batch, inner, params)
        calls.append(1)
        if len(calls) >= 5:
            loss = loss * float("nan")
        return loss, grads

    monkeypatch.setattr(loop, "meta_gradient", diverging)
    argv = [f"hydra.run.dir={tmp_path}", *TINY, "train.steps=8"]
    line = _error_line(capsys, train_main, argv)
    assert re.search(r"meta-training diverged at step 5: the loss is nan; lower train.lr "
                     r"\(now 0.003\) or meta.inner_lr \(now 0.01\)", line), line
    for name in ("last.pt", "best.pt"):
        state = load_checkpoint(tmp_path / name)   # refuses non-finite parameters
        assert state["step"] <= 4
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 4
    assert not (tmp_path / "metrics.json").exists()


def test_a_checkpoint_with_nan_parameters_is_refused(tmp_path, capsys):
    train_main([f"hydra.run.dir={tmp_path / 'run'}", *TINY])
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    name = next(iter(state["params"]))
    state["params"][name] = torch.full_like(state["params"][name], float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    capsys.readouterr()
    for run in (eval_main, export_main):
        argv = [f"checkpoint={tmp_path / 'nan.pt'}"] + (
            [f"out={tmp_path / 'e'}"] if run is export_main else [])
        line = _error_line(capsys, run, argv)
        assert f"parameter {name!r} holds NaN or infinite values" in line, line
    assert not (tmp_path / "e").exists()


def test_device_cuda_without_cuda_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = _error_line(capsys, train_main, [f"hydra.run.dir={tmp_path}", *TINY, "device=cuda"])
    assert "error: device: device 'cuda' was asked for, but torch" in line
    assert "sees no CUDA device; use device=cpu or device=auto" in line


def test_resume_checks_the_run_it_continues(tmp_path, capsys):
    """resume=auto onto a run folder of another model or other data is refused with a
    line naming the difference, and config.yaml is left as the first run wrote it."""
    train_main([f"hydra.run.dir={tmp_path}", *TINY, "train.steps=4", "train.stop_after=2"])
    written = (tmp_path / "config.yaml").read_text()
    capsys.readouterr()
    line = _error_line(capsys, train_main, [f"hydra.run.dir={tmp_path}", *TINY,
                                            "train.steps=4", "resume=auto",
                                            "model.hidden_channels=16"])
    assert re.search(r"last.pt: was written by a run with model.hidden_channels=32, this "
                     r"run has 16; resume=auto continues the same run", line), line
    line = _error_line(capsys, train_main, [f"hydra.run.dir={tmp_path}", *TINY,
                                            "train.steps=4", "resume=auto",
                                            "dataset.seed=1"])
    assert re.search(r"last.pt: was written on other data \(data hash \w+ vs \w+ now\)",
                     line), line
    assert (tmp_path / "config.yaml").read_text() == written
    # the failed run's error is in its train.log too
    assert "error: checkpoint " in (tmp_path / "train.log").read_text()
    # the same run resumes
    train_main([f"hydra.run.dir={tmp_path}", *TINY, "train.steps=4", "resume=auto"])
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 4


def test_degenerate_tasks_are_config_errors(tmp_path, capsys):
    """Interests where every labelled user has the same one (nothing to rank), and
    new-item tasks reading item features a CSV graph does not have."""
    import shutil
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "graphs" / "example"
    one_label = tmp_path / "one_label"
    shutil.copytree(example, one_label)
    users = [line.split(",")[0] for line in
             (example / "users.csv").read_text().splitlines()[1:] if line]
    (one_label / "interests.csv").write_text(
        "user_id,interest\n" + "".join(f"{u},music\n" for u in users))
    line = _error_line(capsys, train_main, [f"hydra.run.dir={tmp_path / 'a'}", "dataset=csv",
                                            f"dataset.root={one_label}", "task=interest"])
    assert "every labelled user of dataset 'csv' has the same one ['music']: there is " \
           "nothing to rank" in line, line
    no_items = tmp_path / "no_item_features"
    shutil.copytree(example, no_items)
    (no_items / "items.csv").unlink()
    with pytest.raises(SystemExit):   # the example is too small for new items; the
        train_main([f"hydra.run.dir={tmp_path / 'b'}", "dataset=csv",   # note comes first
                    f"dataset.root={no_items}", "task=new_item"])
    assert ("note: task.context has 'features', but dataset csv has no item features: a "
            "new item's feature row holds only its is-item flag") in capsys.readouterr().err


def test_unwritable_outputs_are_one_line_and_leave_nothing_behind(tmp_path, capsys,
                                                                   monkeypatch):
    """A folder the user may not write, a read-only mount point, a full disk: one line
    naming the file and the reason (exit 2); the earlier outputs stay whole and no
    temporary folder is left (tests run as root, so the OS errors are injected)."""
    import errno
    import os

    import socialmeta.data.cache as cache

    run = tmp_path / "run"
    train_main([f"hydra.run.dir={run}", *TINY])
    best = (run / "best.pt").read_bytes()
    out = tmp_path / "export"
    export_main([f"checkpoint={run / 'best.pt'}", f"out={out}"])
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    real_replace = os.replace

    def busy(src, dst):   # a mount point cannot be renamed away
        if str(src) == str(out):
            raise OSError(errno.EROFS, "Read-only file system", str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(cache.os, "replace", busy)
    line = _error_line(capsys, export_main, [f"checkpoint={run / 'best.pt'}", f"out={out}"])
    assert line == f"error: cannot write {out}: Read-only file system"
    assert sorted(p.name for p in out.iterdir()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export.tmp-")]
    monkeypatch.setattr(cache.os, "replace", real_replace)

    def full(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", f.name)

    monkeypatch.setattr(cache.torch, "save", full)
    line = _error_line(capsys, train_main, [f"hydra.run.dir={run}", *TINY, "train.steps=4",
                                            "resume=auto"])
    assert line == f"error: cannot write {run / 'last.pt'}: No space left on device"
    assert (run / "best.pt").read_bytes() == best
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
