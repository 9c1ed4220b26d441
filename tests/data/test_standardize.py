"""Numeric features as users give them: z-scored on the training users by default for
your own data, with the statistics in the export manifest and an opt-out."""
import csv
import json
from pathlib import Path

import pytest
import torch

from socialmeta import Experiment
from socialmeta.data.standardize import FeatureScaling, standardize_features

REPO = Path(__file__).resolve().parents[2]


def _graph_folder(root: Path, prescaled: bool) -> Path:
    """A 300-user CSV graph (the synthetic generator's friendships) with a raw age
    (16-70), years active and a premium flag, or the same columns z-scored over all
    users."""
    from socialmeta.data import generate_synthetic

    g = generate_synthetic(num_users=300, feature_dim=0, seed=3)
    gen = torch.Generator().manual_seed(5)
    age = torch.randint(16, 71, (300,), generator=gen).double()
    years = (age - 16) * torch.rand(300, generator=gen, dtype=torch.float64)
    premium = (torch.rand(300, generator=gen) < 0.3).double()
    cols = torch.stack([age, years, premium], 1)
    if prescaled:
        cols = (cols - cols.mean(0)) / cols.std(0, unbiased=False)
    root.mkdir(parents=True)
    ids = g.raw_ids["user"]
    with open(root / "users.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "age", "years_active", "is_premium"])
        for u, row in zip(ids, cols.tolist()):
            w.writerow([u, *[repr(v) for v in row]])
    src, dst = g.friend_index
    with open(root / "friendships.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["src", "dst"])
        for a, b in zip(src.tolist(), dst.tolist()):
            if a < b:
                w.writerow([ids[a], ids[b]])
    return root


SMALL = ["train.steps=30", "train.eval_every=10", "train.batch_size=8", "train.val_users=30",
         "eval.shots=[3]", "eval.max_users=30", "eval.baselines=null", "task.node_cap=24",
         "task.fanouts=[8,4]", "model.scorer=egonet", "meta=maml", "dataset.cache=false"]


def test_statistics_come_from_the_training_users_only():
    from socialmeta.data import generate_synthetic

    g = generate_synthetic(num_users=200, seed=1)
    train = torch.arange(0, 100)
    out, scaling = standardize_features(g, train)
    x = out["user"].x[train].double()
    assert torch.allclose(x.mean(0), torch.zeros(x.size(1), dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(x.size(1), dtype=torch.float64),
                          atol=1e-4)
    # the other users' values never enter the statistics
    moved = g["user"].x.clone()
    moved[100:] *= 1000
    g2 = generate_synthetic(num_users=200, seed=1)
    g2["user"].x = moved
    _, again = standardize_features(g2, train)
    assert torch.equal(again["user"].mean, scaling["user"].mean)
    assert torch.equal(g["user"].x, generate_synthetic(num_users=200, seed=1)["user"].x)
    # a column without spread is centred, not divided by zero
    flat = FeatureScaling.fit(torch.ones(5, 1), ["c"])
    assert flat.scale.item() == 1 and flat.apply(torch.ones(5, 1)).abs().max() == 0


def test_raw_and_prescaled_features_train_to_the_same_figures(tmp_path):
    """The issue's 300-user graph: raw age/years/premium columns and the same columns
    z-scored give the same validation figures (the model sees the same inputs)."""
    results = {}
    for prescaled in (False, True):
        root = _graph_folder(tmp_path / f"g{int(prescaled)}", prescaled)
        torch.manual_seed(0)
        exp = Experiment.from_config(overrides=["dataset=csv", f"dataset.root={root}",
                                                *SMALL])
        assert set(exp.feature_scaling) == {"user"}
        rows = exp.fit(tmp_path / f"run{int(prescaled)}")
        results[prescaled] = [r["val"] for r in rows if r["val"] == r["val"]]
        assert exp.graph["user"].x[exp.split.train].mean(0).abs().max() < 1e-4
    assert results[False] == pytest.approx(results[True], abs=2e-3)


def test_opt_out_keeps_the_features_and_export_records_the_statistics(tmp_path):
    from socialmeta.cli.export import main as export_main
    from socialmeta.cli.train import main as train_main

    root = _graph_folder(tmp_path / "g", prescaled=False)
    raw = Experiment.from_config(overrides=["dataset=csv", f"dataset.root={root}",
                                            "dataset.standardize=false", *SMALL])
    assert raw.feature_scaling == {} and raw.graph["user"].x[:, 0].max() > 16
    # as given, the raw columns blow the loss up (the symptom); z-scored they
    # do not
    raw_loss = raw.fit(tmp_path / "raw")[0]["loss"]
    torch.manual_seed(0)
    scaled = Experiment.from_config(overrides=["dataset=csv", f"dataset.root={root}", *SMALL])
    assert raw_loss > 1000 > 10 > scaled.fit(tmp_path / "scaled")[0]["loss"]
    run = tmp_path / "run"
    train_main([f"hydra.run.dir={run}", "dataset=csv", f"dataset.root={root}", *SMALL,
                "train.steps=2", "train.eval_every=2"])
    export_main([f"checkpoint={run / 'best.pt'}", f"out={tmp_path / 'e'}"])
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    user = manifest["feature_scaling"]["user"]
    assert user["names"] == ["age", "years_active", "is_premium"]
    assert 16 < user["mean"][0] < 70 and user["scale"][0] > 1
    # the checkpoint rebuilds the same scaling (same data, same split)
    again = Experiment.from_checkpoint(run / "best.pt")
    assert again.feature_scaling["user"].mean.tolist() == user["mean"]
