"""Device selection, and the README's Python examples run as written."""
import re
import shlex
from pathlib import Path

import pytest
import torch

from socialmeta.device import resolve_device

REPO = Path(__file__).resolve().parents[1]


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; choose one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"sees no CUDA device"):
            resolve_device("cuda")


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_readme_python_example_runs(monkeypatch, tmp_path):
    blocks = _python_blocks(REPO / "README.md")
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOCIALMETA_CACHE", str(tmp_path / "cache"))
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert (tmp_path / "runs" / "readme" / "best.pt").is_file()
    table = namespace["table"]
    assert list(table)[:2] == ["metasgd", "metasgd without test-time adaptation"]
    assert any(m.startswith("baseline: ppr") for m in table)
    # the comment in the README states the number of test users
    users = table["metasgd"][3]["recall@20"]["users"]
    assert f"'users': {users}}}" in blocks[0]
    assert len(namespace["rec"].recommend(friends=["u5", "u17", "u33"], k=5)) == 5


def test_guide_python_examples_run(lastfm_root, monkeypatch, tmp_path):
    guide = REPO / "docs" / "guide.md"
    blocks = _python_blocks(guide)
    assert len(blocks) >= 5
    monkeypatch.chdir(REPO)  # the examples name ../shared/datasets relative to the repo
    monkeypatch.setenv("SOCIALMETA_CACHE", str(tmp_path))
    # the Recommender example loads a run's checkpoint: a tiny run stands in for it
    from socialmeta.cli.train import main as train_main

    run = tmp_path / "run"
    train_main([f"hydra.run.dir={run}", "dataset.num_users=300", "train.steps=2",
                "train.eval_every=2", "train.batch_size=4", "train.val_users=10",
                "eval.shots=[3]", "eval.max_users=5", "eval.baselines=null"])
    code = re.sub(r"outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d/best\.pt", str(run / "best.pt"),
                  "\n".join(blocks))
    assert str(run / "best.pt") in code and '"runs/guide' in code
    code = code.replace('"runs/guide', f'"{tmp_path}/guide')
    namespace: dict = {}
    exec(compile(code, "docs/guide.md", "exec"), namespace)
    assert (tmp_path / "guide" / "best.pt").is_file()
    assert "metasgd" in namespace["table"]
    assert namespace["same"].graph.num_users == 500
    assert namespace["graph"].num_users == 1892
    assert namespace["batch"].adj.shape == (64, 64, 64)
    assert torch.isfinite(namespace["loss"])
    assert len(namespace["rec"].recommend(user="u42", k=10)) == 10
    assert namespace["ppr"].name == "ppr" and len(namespace["trials"]) == 4
    assert namespace["dated"].eval_centers("test", 3).numel() > 50


def _commands(path: Path) -> list[list[str]]:
    """``socialmeta-*`` command lines of the bash blocks of :obj:`path`."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part.split(" #")[0].strip())
                if words and words[0].startswith("socialmeta-"):
                    out.append(words)
    return out


@pytest.mark.parametrize("doc", ["README.md", "docs/guide.md", "docs/data-format.md"])
def test_documented_commands_are_valid(doc):
    """Every ``socialmeta-*`` command in the docs names a real tool and overrides that
    compose (keys, group options and types), as its tool checks them before running."""
    from socialmeta.cli.ablate import ablations
    from socialmeta.cli.data import COMMANDS
    from socialmeta.config import compose

    configs = {"socialmeta-train": "train", "socialmeta-eval": "eval",
               "socialmeta-export": "export", "socialmeta-recommend": "recommend",
               "socialmeta-data": "data", "socialmeta-ablate": "train"}
    commands = _commands(REPO / doc)
    assert commands
    for words in commands:
        tool, args = words[0], words[1:]
        assert tool in configs, words
        if tool == "socialmeta-data" and args and args[0] in COMMANDS:
            args = [f"command={args[0]}"] + args[1:]
        if tool == "socialmeta-ablate":
            names = [a.split("=", 1)[1] for a in args if a.startswith("ablation=")]
            assert names and names[0] in ablations(), words
            from socialmeta.cli.ablate import _nproc

            args = [f"+ablation={names[0]}"] + [a for a in _nproc(args)[1]
                                                if "ablation=" not in a]
        compose(configs[tool], [a.replace("<date>/<time>", "2026-01-01/00-00-00")
                                for a in args])
