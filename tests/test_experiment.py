"""The library layer that builds a run: socialmeta.Experiment, without Hydra on the
command line, and the rule that the library never imports the CLI."""
import ast
from pathlib import Path

import pytest
import torch

from socialmeta import Experiment
from socialmeta.config import ConfigError, compose
from socialmeta.eval.report import format_summary

PACKAGE = Path(__file__).resolve().parents[1] / "socialmeta"
SMALL = ["dataset.num_users=300", "train.steps=4", "train.eval_every=2", "train.batch_size=4",
         "train.val_users=10", "eval.shots=[3]", "eval.max_users=10", "task.node_cap=24",
         "task.fanouts=[8,4]"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_no_library_module_imports_the_cli():
    modules = [p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts]
    assert len(modules) > 40
    offenders = {str(p.relative_to(PACKAGE)): sorted(n for n in _imports(p)
                                                     if n.startswith("socialmeta.cli"))
                 for p in modules}
    assert not {k: v for k, v in offenders.items() if v}
    # the check can fail: the CLI modules themselves do import socialmeta.cli
    assert any(n.startswith("socialmeta.cli") for n in _imports(PACKAGE / "cli" / "train.py"))


def test_experiment_builds_trains_evaluates_recommends(tmp_path):
    exp = Experiment.from_config(overrides=SMALL)
    assert repr(exp) == "Experiment(synthetic, friend, sage, maml, users=300)"
    before = {n: p.detach().clone() for n, p in exp.params.items()}
    rows = exp.fit(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert (tmp_path / "best.pt").is_file()
    assert any(not torch.equal(before[n], p) for n, p in exp.params.items())
    results = exp.evaluate(baselines=["ppr"])
    assert list(results)[:2] == ["maml", "maml without test-time adaptation"]
    assert len(results) == 3 and list(results)[2].startswith("baseline: ppr(alpha=")
    assert results["maml"][3]["recall@20"]["users"] == 10
    assert "| maml |" in format_summary(results)
    recs = exp.recommender().recommend(friends=["u1", "u2", "u3"], k=5)
    assert len(recs) == 5 and not {"u1", "u2", "u3"} & {r.id for r in recs}
    # a checkpoint gives back the same run: same parameters, same scores
    again = Experiment.from_checkpoint(tmp_path / "best.pt")
    for name, p in exp.params.items():
        assert torch.equal(p.detach(), again.params[name].detach()), name
    assert again.recommender().recommend(friends=["u1", "u2", "u3"], k=5) == recs


def test_experiment_from_a_plain_config_equals_the_composed_one():
    cfg = compose("train", SMALL)
    a = Experiment.from_config(cfg)
    from omegaconf import OmegaConf

    b = Experiment.from_config(OmegaConf.to_container(cfg, resolve=True))
    assert torch.equal(a.split.test, b.split.test)
    for name, p in a.params.items():
        assert p.shape == b.params[name].shape


def test_experiment_config_errors():
    with pytest.raises(ConfigError, match=r"unknown key 'train.stepz'"):
        Experiment.from_config(overrides=["train.stepz=1"])
    with pytest.raises(ValueError, match="either a config or overrides"):
        Experiment.from_config(compose("train"), overrides=["train.steps=1"])
