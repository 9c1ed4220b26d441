"""train -> export: the exported rows are the encoder's sparse forward for those ids."""
import copy
import json

import numpy as np
import pytest
import torch
from torch_geometric.utils import degree

from socialmeta.cli.export import main as export_main
from socialmeta.cli.train import main as train_main
from socialmeta.experiment import Experiment
from socialmeta.models.link import node_inputs

# the learner and start these tests were written for (the generic recipe's are metasgd,
# starting from the best pair-feature channel: tests/test_recipes.py)
PINNED = ["meta=maml", "model.pair_init=none", "train.eval_at_start=false"]
TINY = ["dataset.num_users=300", "train.steps=4", "train.eval_every=2", "train.batch_size=8",
        "train.val_users=20", "eval.shots=[3]", "eval.max_users=10", "task.node_cap=24",
        "task.fanouts=[8,4]", *PINNED]


def _restore(checkpoint):
    exp = Experiment.from_checkpoint(checkpoint)
    return exp.model, exp.params, exp.graph, exp.config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train_main([f"hydra.run.dir={out}", *TINY])
    return out


def test_export_round_trip(run_dir, tmp_path, capsys):
    export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={tmp_path}"])
    assert "wrote 300 meta-init user embeddings (dim 32" in capsys.readouterr().out
    emb = np.load(tmp_path / "user_embeddings.npy")
    assert emb.dtype == np.float32 and emb.shape == (300, 32)
    model, params, graph, _ = _restore(run_dir / "best.pt")
    ids = (tmp_path / "user_ids.txt").read_text().split()
    assert ids == graph.raw_ids["user"]
    # independent computation: load the weights into the model, run its sparse forward
    model.load_state_dict({n: p for n, p in params.items()})
    n = graph.num_users
    x = torch.cat([graph["user"].x, torch.zeros(n, 1)], 1)  # + "row hidden" flag, unset
    inputs = node_inputs(x, degree(graph.friend_index[0], n),
                         torch.full((n,), -1), torch.zeros(n), model.num_hops)
    with torch.no_grad():
        expected = model.encoder.eval().forward_sparse(inputs, graph.friend_index)
    rows = [ids.index("u7"), ids.index("u123")]
    assert np.allclose(emb[rows], expected[rows].numpy(), atol=1e-6)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["kind"] == "meta-init" and manifest["dimension"] == 32
    assert manifest["normalization"] == "none" and manifest["dataset"] == "synthetic"
    assert len(manifest["model_sha256"]) == 64 and manifest["versions"]["torch"]


def test_export_formats_agree_and_faiss_matches_brute_force(run_dir, tmp_path):
    pytest.importorskip("pyarrow")
    pytest.importorskip("safetensors")
    faiss = pytest.importorskip("faiss")
    import pyarrow.parquet as pq
    from safetensors.torch import load_file

    export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={tmp_path}", "normalize=true",
                 "formats=[npy,parquet,safetensors,faiss]", "chunk_size=37"])
    emb = np.load(tmp_path / "user_embeddings.npy")
    ids = (tmp_path / "user_ids.txt").read_text().split()
    table = pq.read_table(tmp_path / "user_embeddings.parquet")
    assert table.column("id").to_pylist() == ids
    assert np.array_equal(np.array(table.column("embedding").to_pylist(), np.float32), emb)
    assert np.array_equal(load_file(tmp_path / "embeddings.safetensors")["user_embeddings"]
                          .numpy(), emb)
    # chunked inference (37 users per chunk) equals the one-pass export
    export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={tmp_path / 'one'}",
                 "normalize=true", "chunk_size=null"])
    assert np.allclose(np.load(tmp_path / "one" / "user_embeddings.npy"), emb, atol=1e-6)
    # the FAISS index returns the brute-force top-k (row numbers = lines of user_ids.txt)
    index = faiss.read_index(str(tmp_path / "user_index.faiss"))
    queries = emb[[3, 50, 299]]
    _, found = index.search(queries, 10)
    brute = np.argsort(-(queries @ emb.T), axis=1, kind="stable")[:, :10]
    for row_found, row_brute, q in zip(found, brute, queries):
        # equal as sets of scores (ties may be ordered differently)
        assert np.allclose(np.sort(emb[row_found] @ q), np.sort(emb[row_brute] @ q), atol=1e-5)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["faiss_metric"] == "inner_product"
    assert "user_index.faiss" in manifest["files"] and "embeddings.safetensors" in manifest["files"]


def test_unknown_export_format(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={tmp_path}", "formats=[csv]"])
    assert "unknown export formats ['csv']" in capsys.readouterr().err


def test_export_normalized_and_missing_checkpoint(run_dir, tmp_path, capsys):
    export_main([f"checkpoint={run_dir / 'last.pt'}", f"out={tmp_path}", "normalize=true"])
    emb = np.load(tmp_path / "user_embeddings.npy")
    norms = np.linalg.norm(emb, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    with pytest.raises(SystemExit):
        export_main([f"checkpoint={tmp_path / 'nope.pt'}"])
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("heuristics", [False, True])
def test_item_model_exports_item_table(tmp_path, capsys, heuristics):
    run = tmp_path / "run"
    train_main([f"hydra.run.dir={run}", "task=item", *TINY, "model.scorer=egonet",
                f"model.item_heuristics={str(heuristics).lower()}", "task.item_order=shared",
                f"model.item_knn={10 if heuristics else 0}"])
    export_main([f"checkpoint={run / 'best.pt'}", f"out={tmp_path / 'e'}"])
    model, params, graph, _ = _restore(run / "best.pt")
    assert model.heuristics == heuristics
    items = np.load(tmp_path / "e" / "item_embeddings.npy")
    assert items.shape == (graph.num_items, 32)
    assert np.allclose(items, params["item_embedding.weight"].detach().numpy())
    assert (tmp_path / "e" / "item_ids.txt").read_text().split() == graph.raw_ids["item"]
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert ("item_bias.npy" in manifest["files"]) == heuristics
    if heuristics:  # the learned biases moved during training and are exported as such
        bias = np.load(tmp_path / "e" / "item_bias.npy")
        assert np.allclose(bias, params["item_bias.weight"].detach().numpy()[:, 0])
        assert np.abs(bias).max() > 0
        assert "not exported" in manifest["item_score"]
        assert "ItemKNN" in manifest["item_score"]
        assert model.item_knn == 10 and model.knn_weight.sum() > 0
    else:
        assert manifest["item_score"] == "user . item"


def test_eval_reproduces_the_training_run_test_metrics(run_dir, tmp_path, capsys):
    from socialmeta.cli.evaluate import main as eval_main

    eval_main([f"checkpoint={run_dir / 'best.pt'}", "shots=[3]", "max_users=10",
               f"out={tmp_path / 'eval.json'}"])
    assert "| maml | 3 | 10 |" in capsys.readouterr().out
    again = json.loads((tmp_path / "eval.json").read_text())["test"]["maml"]["3"]
    trained = json.loads((run_dir / "metrics.json").read_text())["test"]["maml"]["3"]
    for metric in ("recall@10", "ndcg@20", "mrr"):
        assert again[metric]["mean"] == pytest.approx(trained[metric]["mean"], abs=1e-6)


def test_adapted_export_cli(run_dir, tmp_path, capsys):
    export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={tmp_path}", "kind=adapted"])
    assert "wrote 300 adapted user embeddings (dim 32" in capsys.readouterr().out
    emb = np.load(tmp_path / "user_embeddings.npy")
    assert emb.shape == (300, 32) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert json.loads((tmp_path / "manifest.json").read_text())["kind"] == "adapted"
    with pytest.raises(SystemExit):
        export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={tmp_path}", "kind=nope"])
    assert "unknown kind 'nope'; choose one of ['meta-init', 'adapted']" in (
        capsys.readouterr().err)


def test_adapted_item_vectors_reproduce_the_models_item_scores():
    """Per-user adapted item-model rows: their dot products with the exported item
    rows are exactly the scores the adapted model gives every item (ANN = the model)
    when adaptation leaves the item table alone (adapt_prefixes without it)."""
    from socialmeta.data import generate_synthetic
    from socialmeta.export.embeddings import adapted_user_embeddings, item_embeddings
    from socialmeta.meta import InnerLoop, candidate_scores, meta_parameters
    from socialmeta.models import ItemModel
    from socialmeta.tasks import TaskConfig, TaskSampler, split_users

    graph = generate_synthetic(300, avg_degree=8, num_items=50, seed=3)
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind="item", node_cap=24, item_cap=32, fanouts=(8, 4)))
    torch.manual_seed(0)
    model = ItemModel(sampler.in_channels, graph.num_items, num_hops=2, hidden_channels=8,
                      item_features=torch.randn(graph.num_items, 3))
    users = torch.arange(0, 300, 17)
    rows = {}
    for learner in ("maml", "noadapt"):
        inner = InnerLoop(learner, steps=2, lr=0.5, adapt_prefixes=("encoder.", "head."))
        params = meta_parameters(model, inner)
        rows[learner] = adapted_user_embeddings(model, params, sampler, inner, users,
                                                batch_size=7)
        scores = candidate_scores(model, params, sampler.support_batch(users), inner,
                                  graph.num_items)
        assert torch.allclose(rows[learner] @ item_embeddings(model, params).t(), scores,
                              atol=1e-5)
    assert not torch.allclose(rows["maml"], rows["noadapt"])  # adaptation moved them


def test_adapted_friend_rows_equal_a_per_user_loop():
    from torch.func import functional_call

    from socialmeta.data import generate_synthetic
    from socialmeta.export.embeddings import adapted_user_embeddings
    from socialmeta.meta import InnerLoop, meta_parameters
    from socialmeta.meta.learners import adapt, task_tensors
    from socialmeta.models import LinkModel
    from socialmeta.tasks import TaskConfig, TaskSampler, split_users

    graph = generate_synthetic(300, avg_degree=8, seed=5)
    sampler = TaskSampler(graph, split_users(graph, seed=0),
                          TaskConfig(kind="friend", node_cap=24, fanouts=(8, 4)))
    torch.manual_seed(0)
    model = LinkModel(sampler.in_channels, num_hops=2, hidden_channels=8)
    inner = InnerLoop("maml", steps=1, lr=0.5)
    params = meta_parameters(model, inner)
    users = torch.tensor([3, 40, 77, 150])
    rows = adapted_user_embeddings(model, params, sampler, inner, users, batch_size=3)
    for i, u in enumerate(users.tolist()):
        batch = sampler.support_batch(torch.tensor([u]))
        task = {k: v[0] for k, v in task_tensors(model, batch).items()}
        fast = adapt(model, {n: p.detach() for n, p in params.items()}, task, inner)
        h = functional_call(model, fast, (task["x"], task["adj"], task["node_mask"],
                                          task["hop"], task["support_local"],
                                          task["support_label"], task["support_local"]),
                            {"mode": "embed"})
        assert torch.allclose(rows[i], h, atol=1e-5), u


def test_heuristic_link_model_trains_exports_and_recommends(tmp_path, capsys):
    from socialmeta.recommend import Recommender

    run = tmp_path / "run"
    train_main([f"hydra.run.dir={run}", "model.link_heuristics=true", *TINY])
    model, params, graph, _ = _restore(run / "best.pt")
    assert model.heuristic_channels == 3  # CN, AA, feature cosine
    export_main([f"checkpoint={run / 'best.pt'}", f"out={tmp_path / 'export'}"])
    emb = np.load(tmp_path / "export" / "user_embeddings.npy")
    # the full-graph pass has no center: the heuristic channels are zero
    model.load_state_dict(dict(params))
    n = graph.num_users
    x = torch.cat([graph["user"].x, torch.zeros(n, 1)], 1)
    inputs = torch.cat([node_inputs(x, degree(graph.friend_index[0], n),
                                    torch.full((n,), -1), torch.zeros(n), model.num_hops),
                        torch.zeros(n, 3)], 1)
    with torch.no_grad():
        expected = model.encoder.eval().forward_sparse(inputs, graph.friend_index)
    assert np.allclose(emb, expected.numpy(), atol=1e-5)
    rec = Recommender.from_checkpoint(run / "best.pt")
    top = rec.recommend(friends=["u5", "u17", "u33"], k=5)
    assert len(top) == 5 and not {"u5", "u17", "u33"} & {r.id for r in top}
    assert [r.score for r in top] == sorted((r.score for r in top), reverse=True)


def test_export_replaces_an_earlier_one_whole_and_leaves_no_temp_files(run_dir, tmp_path,
                                                                        monkeypatch):
    import socialmeta.export.embeddings as embeddings

    out = tmp_path / "export"
    export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={out}",
                 "formats=[npy,parquet]"])
    first = sorted(p.name for p in out.iterdir())
    assert "user_embeddings.parquet" in first and "manifest.json" in first
    # a second export with fewer formats: nothing of the first one stays behind
    export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={out}"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(manifest["files"] +
                                                           ["manifest.json"])
    assert "user_embeddings.parquet" not in manifest["files"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    # an export that fails half-way leaves the earlier export whole and no temp folder
    def broken(*args, **kwargs):
        (args[0] / "user_embeddings.npy").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(embeddings, "_write", broken)
    with pytest.raises((OSError, SystemExit)):  # Hydra reports the error and exits
        export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={out}"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    monkeypatch.undo()

    # a killed export's hidden folder (its process is gone) is removed by the next one
    stale = tmp_path / ".export.tmp-999999999-abc"
    (stale / "x").mkdir(parents=True)
    export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={out}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_export_refuses_a_folder_that_is_not_an_earlier_export(run_dir, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit):
        export_main([f"checkpoint={run_dir / 'best.pt'}", f"out={tmp_path}"])
    assert "exists and is not an earlier output (no manifest.json)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_hybrid_export_writes_the_tower_term(tmp_path, capsys):
    """A hybrid model's export adds the candidate tower c_v of every user and fold(q_u):
    their dot product is the tower term of its score. Checked against the model: on a
    test user's task, the score of a tower-only copy of the model equals
    candidate_embeddings @ fold(the task's center vector)."""
    from socialmeta.meta.learners import _call, task_tensors

    run = tmp_path / "run"
    train_main([f"hydra.run.dir={run}", "model.scorer=hybrid", *TINY])
    export_main([f"checkpoint={run / 'best.pt'}", f"out={tmp_path / 'e'}"])
    exp = Experiment.from_checkpoint(run / "best.pt")
    model, params = exp.model, {n: p.detach() for n, p in exp.params.items()}
    out = tmp_path / "e"
    cand = torch.from_numpy(np.load(out / "candidate_embeddings.npy"))
    query = torch.from_numpy(np.load(out / "query_embeddings.npy"))
    users = torch.from_numpy(np.load(out / "user_embeddings.npy"))
    assert cand.shape == (exp.graph.num_users, model.encoder.hidden_channels)
    assert (out / "candidate_ids.txt").read_text().split() == exp.graph.raw_ids["user"]
    with torch.no_grad():
        tower = torch.func.functional_call(model, params, (),
                                           {"mode": "tower", "folds": (model.tower_folds,)})
        assert torch.allclose(cand, tower[model.tower_folds], atol=1e-6)
        fold = torch.nn.functional.linear(users, params["fold.weight"], params["fold.bias"])
        assert torch.allclose(query, fold, atol=1e-6)
        # the tower term of a test user's score, through the model
        batch = exp.sampler.eval_batch(exp.sampler.eval_centers("test", 3)[:1], 3)
        task = {k: v[0] for k, v in task_tensors(model, batch).items()}
        call = _call(model, params)
        q = model.center_embedding(call, task)
        term = cand @ torch.nn.functional.linear(q, params["fold.weight"], params["fold.bias"])
        only = copy.copy(model)   # the same parameters, scoring with the tower alone
        only.parts = ("tower",)
        inputs = only.batch_inputs(_call(only, params), batch)
        task["candidates"] = inputs["candidates"]
        score = only.score_all(_call(only, params), task)
        assert torch.allclose(score, term, atol=1e-5)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "tower term" in manifest["user_score"] and "not exported" in manifest["user_score"]
    assert {"candidate_embeddings.npy", "query_embeddings.npy"} <= set(manifest["files"])
