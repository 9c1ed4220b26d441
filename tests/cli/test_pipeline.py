"""The whole tool chain on a small graph: train -> eval -> export -> recommend."""
import json

import numpy as np

from socialmeta.cli.evaluate import main as eval_main
from socialmeta.cli.export import main as export_main
from socialmeta.cli.recommend import main as recommend_main
from socialmeta.cli.train import main as train_main


def test_train_eval_export_recommend(tmp_path, capsys):
    run = tmp_path / "run"
    train_main([f"hydra.run.dir={run}", "dataset.num_users=400", "train.steps=20",
                "train.eval_every=10", "train.batch_size=16", "train.val_users=30",
                "eval.shots=[3]", "eval.max_users=30", "eval.baselines=[ppr]"])
    trained = json.loads((run / "metrics.json").read_text())
    eval_main([f"checkpoint={run / 'best.pt'}", "shots=[3]", "max_users=30"])
    evaluated = json.loads((run / "eval-test.json").read_text())
    assert evaluated["test"]["metasgd"]["3"] == trained["test"]["metasgd"]["3"]
    export_main([f"checkpoint={run / 'best.pt'}", f"out={tmp_path / 'export'}"])
    emb = np.load(tmp_path / "export" / "user_embeddings.npy")
    assert emb.shape == (400, 32) and np.isfinite(emb).all()
    capsys.readouterr()
    recommend_main([f"checkpoint={run / 'best.pt'}", "friends=[u1,u2,u3]", "k=5",
                    "output=json"])
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and not {"u1", "u2", "u3"} & {r["id"] for r in rows}
