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
    namespace: dict = {}
    exec(compile("\n".join(blocks), "README.md", "exec"), namespace)
    assert namespace["graph"].num_users == 1892
    assert namespace["batch"].adj.shape == (64, 64, 64)
    assert torch.isfinite(namespace["loss"])
