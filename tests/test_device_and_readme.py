"""Device selection, and the README's Python examples run as written."""
import re
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


def test_readme_python_examples_run(lastfm_root, monkeypatch, tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert len(blocks) >= 3
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
    assert str(run / "best.pt") in code
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["graph"].num_users == 1892
    assert namespace["batch"].adj.shape == (64, 64, 64)
    assert torch.isfinite(namespace["loss"])
    assert len(namespace["rec"].recommend(user="u42", k=10)) == 10
    assert namespace["ppr"].name == "ppr" and len(namespace["trials"]) == 4
