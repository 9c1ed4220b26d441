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
# the learner and start these tests were written for (the generic recipe's are metasgd,
# starting from the best pair-feature channel: tests/test_recipes.py)
PINNED = ["meta=maml", "model.pair_init=none", "train.eval_at_start=false"]
SMALL = ["dataset.num_users=300", "train.steps=4", "train.eval_every=2", "train.batch_size=4",
         "train.val_users=10", "eval.shots=[3]", "eval.max_users=10", "task.node_cap=24",
         "task.fanouts=[8,4]", *PINNED]


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


def test_hybrid_experiment_trains_evaluates_and_recommends_outside_the_egonet(tmp_path):
    from socialmeta.models import HybridLinkModel

    exp = Experiment.from_config(overrides=[*SMALL, "model.scorer=hybrid"])
    assert isinstance(exp.model, HybridLinkModel)
    assert exp.task.pair_features == ("ppr", "common_neighbors", "adamic_adar",
                                      "resource_allocation", "jaccard", "paths3", "popularity")
    exp.fit(tmp_path)
    results = exp.evaluate()
    assert results["maml"][3]["recall@20"]["users"] == 10
    rec = exp.recommender()
    recs = rec.recommend(friends=["u1", "u2", "u3"], k=40)
    assert len(recs) == 40 and not {"u1", "u2", "u3"} & {r.id for r in recs}
    assert len({round(r.score, 6) for r in recs}) > 30      # whole-graph: distinct scores
    # the recommender computes the tower once (every fold); a tower per request, as
    # meta-training computes it, gives the same rankings for a new, a training and a
    # test user
    assert rec.model._served is not None and rec.model._served.size(0) == 6
    ids = exp.graph.raw_ids["user"]
    known = [ids[int(exp.split.train[0])], ids[int(exp.split.test[0])]]
    served = [rec.recommend(user=u, k=40) for u in known]
    rec.model.serve_tower(None)
    assert rec.model._served is None
    assert rec.recommend(friends=["u1", "u2", "u3"], k=40) == recs
    assert [rec.recommend(user=u, k=40) for u in known] == served
    again = Experiment.from_checkpoint(tmp_path / "best.pt")
    assert again.recommender().recommend(friends=["u1", "u2", "u3"], k=40) == recs


def test_hybrid_config_choices_and_errors():
    ablation = Experiment.from_config(overrides=[
        *SMALL, "model.scorer=hybrid", "model.hybrid_parts=[tower]"])
    assert ablation.model.parts == ("tower",) and ablation.task.pair_features == ()
    chosen = Experiment.from_config(overrides=[
        *SMALL, "model.scorer=hybrid", "model.pair_features=[ppr,adamic_adar]",
        "task.ppr_alphas=[0.1]"])
    assert chosen.sampler.pair_features.channels == ["ppr@0.1", "adamic_adar"]
    sampled = Experiment.from_config(overrides=[*SMALL, "model.scorer=hybrid",
                                                "model.tower_fanout=[4,3]"])
    assert sampled.model.tower_fanout == (4, 3)
    with pytest.raises(ConfigError, match=r"tower_fanout needs one positive fanout per "
                       r"tower layer \(2\), got \[4\]"):
        Experiment.from_config(overrides=[*SMALL, "model.scorer=hybrid",
                                          "model.tower_fanout=[4]"])
    with pytest.raises(ConfigError, match=r"model.scorer 'hybird'.*egonet.*hybrid"):
        Experiment.from_config(overrides=[*SMALL, "model.scorer=hybird"])
    with pytest.raises(ConfigError, match=r"model.hybrid_parts entry 'towr'"):
        Experiment.from_config(overrides=[*SMALL, "model.scorer=hybrid",
                                          "model.hybrid_parts=[towr]"])
    with pytest.raises(ConfigError, match="unknown pair feature 'ppx'"):
        Experiment.from_config(overrides=[*SMALL, "model.scorer=hybrid",
                                          "model.pair_features=[ppx]"])
    with pytest.raises(ConfigError, match="pair feature 'taste' reads the center's items"):
        Experiment.from_config(overrides=[*SMALL, "model.scorer=hybrid",
                                          "model.pair_features=[taste]"])
    with pytest.raises(ConfigError, match="hybrid interest scorer is the interest model"):
        Experiment.from_config(overrides=[*SMALL, "task=interest", "model.scorer=hybrid",
                                          "model.hybrid_parts=[egonet]"])
    with pytest.raises(ConfigError, match="needs 'egonet' and 'pairs'"):
        Experiment.from_config(overrides=[*SMALL, "task=item", "model.scorer=hybrid",
                                          "model.hybrid_parts=[tower,pairs]"])


def test_hybrid_item_experiment_trains_and_evaluates(tmp_path):
    from socialmeta.models import HybridItemModel

    exp = Experiment.from_config(overrides=[*SMALL, "task=item", "model.scorer=hybrid"])
    assert isinstance(exp.model, HybridItemModel)
    assert exp.task.pair_features == ("itemknn", "userknn", "popularity",
                                      "social_popularity")       # context: friends
    none = Experiment.from_config(overrides=[*SMALL, "task=item", "task.context=[]",
                                             "model.scorer=hybrid"])
    assert none.task.pair_features == ("itemknn", "userknn", "popularity")
    exp.fit(tmp_path)
    results = exp.evaluate()
    assert results["maml"][3]["recall@20"]["users"] == 10
    again = Experiment.from_checkpoint(tmp_path / "best.pt")
    assert isinstance(again.model, HybridItemModel)
    assert again.evaluate()["maml"][3]["recall@20"] == results["maml"][3]["recall@20"]


def test_val_metric_auto_is_map_for_interest_tasks():
    """``train.val_metric=auto`` (the default) selects checkpoints and baselines by
    Recall@20 on link tasks and by mAP on interest tasks (a handful of labels, where
    Recall@20 is 1 by construction); a named metric is kept as given."""
    from socialmeta.config import compose
    from socialmeta.experiment import train_config, val_metric

    cfg = compose("train", [])
    assert cfg.train.val_metric == "auto"
    assert train_config(cfg.train, "interest").val_metric == "map"
    assert train_config(cfg.train, "friend").val_metric == "recall@20"
    assert val_metric("ndcg@10", "interest") == "ndcg@10"
    assert [val_metric("auto", k) for k in ("item", "new_item")] == ["recall@20"] * 2


def test_hybrid_interest_experiment_builds_and_evaluates(tmp_path):
    from socialmeta.models import HybridInterestModel

    exp = Experiment.from_config(overrides=[*SMALL, "task=interest", "model.scorer=hybrid",
                                            "train.steps=2"])
    assert isinstance(exp.model, HybridInterestModel) and exp.task.pair_features == ()
    exp.fit(tmp_path)
    assert exp.evaluate()["maml"][3]["map"]["users"] > 0


def test_hybrid_interest_pair_init_starts_from_the_validation_best_label_propagation():
    from socialmeta.baselines import make_baseline
    from socialmeta.baselines.tune import tune

    exp = Experiment.from_config(overrides=[*SMALL, "task=interest", "model.scorer=hybrid",
                                            "model.pair_init=auto"])
    best, trials = tune(make_baseline("interest", "label_propagation"), exp.sampler,
                        shots=3, metric="map", max_users=10)
    chosen = exp.model.channels.index(f"label_propagation@{best.hyper['alpha']:g}")
    gate = exp.params["pair_gate.bias"]
    assert gate[chosen] == 10 and gate.abs().sum() == 10
    assert (exp.params["head.weight"] == 0).all()
    # the meta-init (no adaptation) ranks the validation users' labels as the baseline
    noadapt = Experiment.from_config(overrides=[
        *SMALL, "task=interest", "model.scorer=hybrid", "model.pair_init=auto",
        "meta=noadapt", "eval.shots=[3]"])
    got = noadapt.evaluate("val", with_meta_init=False)["noadapt"][3]["map"]["mean"]
    want = dict((tuple(p.items()), v) for p, v in trials)[(("alpha", best.hyper["alpha"]),)]
    assert got == pytest.approx(want, abs=1e-6)
    # a channel by name; errors name the key
    named = Experiment.from_config(overrides=[*SMALL, "task=interest", "model.scorer=hybrid",
                                              "model.pair_init=label_propagation@0.5"])
    assert named.params["pair_gate.bias"][0] == 10
    with pytest.raises(ConfigError, match="model.pair_init: unknown feature channel 'lp'"):
        Experiment.from_config(overrides=[*SMALL, "task=interest", "model.scorer=hybrid",
                                          "model.pair_init=lp"])
    with pytest.raises(ConfigError, match="model.pair_init='ppr@0.15' is for the hybrid "
                       "scorers"):
        Experiment.from_config(overrides=[*SMALL, "model.scorer=egonet",
                                          "model.pair_init=ppr@0.15"])
    # auto (the default) on a model without pair feature channels: from scratch
    from socialmeta.experiment import start_model

    scratch = Experiment.from_config(overrides=[*SMALL, "model.scorer=egonet",
                                                "model.pair_init=auto"])
    assert start_model(scratch.model, scratch.config.model, scratch.sampler,
                       scratch.train_config) is None
    friend = Experiment.from_config(overrides=[*SMALL, "model.scorer=hybrid",
                                               "model.pair_init=ppr@0.15"])
    gate = friend.params["pair_gate.bias"]
    assert gate[friend.model.channels.index("ppr@0.15")] == 10 and gate.abs().sum() == 10


def test_hybrid_item_pair_init_starts_from_the_validation_best_channel():
    from socialmeta.eval.protocol import evaluate_scorer

    overrides = [*SMALL, "task=item", "task.context=[friends]", "model.scorer=hybrid",
                 "model.pair_init=auto", "train.val_users=30"]
    exp = Experiment.from_config(overrides=overrides)
    channels = exp.model.channels
    assert channels == ["itemknn", "userknn", "popularity", "social_popularity"]
    vals = [evaluate_scorer(lambda b, i=i: b.pair_features[..., i], exp.sampler, "val",
                            (3,), max_users=30)[3]["recall@20"]["mean"]
            for i in range(len(channels))]
    best = max(range(len(channels)), key=lambda i: (vals[i], -i))
    gate = exp.params["pair_gate.bias"]
    assert gate[best] == 10 and gate.abs().sum() == 10
    # the meta-init ranks as that channel: its validation recall is the channel's
    noadapt = Experiment.from_config(overrides=[*overrides, "meta=noadapt"])
    got = noadapt.evaluate("val", with_meta_init=False)["noadapt"][3]["recall@20"]
    want = evaluate_scorer(lambda b: b.pair_features[..., best], exp.sampler, "val", (3,),
                           max_users=10)[3]["recall@20"]        # eval.max_users
    assert got["users"] == want["users"] and got["mean"] == pytest.approx(want["mean"],
                                                                          abs=1e-9)
    with pytest.raises(ConfigError, match=r"model.pair_init: unknown feature channel "
                       r"'recent_popularity@7'; choose one of \['itemknn'"):
        Experiment.from_config(overrides=[*SMALL, "task=item", "model.scorer=hybrid",
                                          "model.pair_init=recent_popularity@7"])


@pytest.mark.parametrize("task", ["friend", "item"])
def test_hybrid_pair_init_learned_ranker_starts_as_the_fitted_ranker(task):
    from socialmeta.baselines import make_baseline
    from socialmeta.meta import candidate_scores

    overrides = [*SMALL, f"task={task}", "model.scorer=hybrid", "meta=noadapt",
                 "model.pair_init=learned_ranker"]
    if task == "item":
        overrides.append("task.context=[friends]")
    exp = Experiment.from_config(overrides=overrides)
    ranker = make_baseline(task, "learned_ranker").fit(exp.sampler)
    assert set(ranker.channels) <= set(exp.model.channels)
    batch = exp.sampler.eval_batch(exp.sampler.eval_centers("test", 3)[:8], 3)
    targets = exp.graph.num_users if task == "friend" else exp.graph.num_items
    got = candidate_scores(exp.model, exp.params, batch, exp.inner, targets)
    want = ranker.scores(batch)
    cand = exp.sampler.candidate_mask(batch)
    assert torch.allclose(got[cand], want[cand], atol=1e-4)
    if task == "item":
        return
    with pytest.raises(ConfigError, match="no learned ranker for interest tasks"):
        Experiment.from_config(overrides=[*SMALL, "task=interest", "model.scorer=hybrid",
                                          "model.pair_init=learned_ranker"])
    with pytest.raises(ConfigError, match=r"learned_ranker: the MLP reads \['ppr@0.05'"):
        Experiment.from_config(overrides=[*SMALL, "model.scorer=hybrid",
                                          "model.pair_features=[adamic_adar]",
                                          "model.pair_init=learned_ranker"])


def test_fallback_trains_from_scratch_and_keeps_the_channel_only_where_it_wins(tmp_path):
    """model.pair_init=fallback: training is the from-scratch run's, step for step (the
    step-0 validation of the channel changes no training state), and the best
    checkpoint is the channel's parameters exactly when no validation beats it."""
    import csv

    from socialmeta.train.checkpoint import load_checkpoint

    common = [*SMALL, "model.scorer=hybrid", "train.steps=6", "train.eval_every=2"]
    torch.manual_seed(0)    # as socialmeta-train seeds the run before building it
    scratch = Experiment.from_config(overrides=[*common, "model.pair_init=none"])
    initial = {n: p.detach().clone() for n, p in scratch.params.items()}
    scratch.fit(tmp_path / "scratch")
    torch.manual_seed(0)
    fallback = Experiment.from_config(overrides=[*common, "model.pair_init=fallback"])
    assert scratch.start_candidate is None and fallback.start_candidate is not None
    for name, p in initial.items():   # the same fresh model ...
        assert torch.equal(p, fallback.params[name]), name
    # ... and a candidate that is the model started as its best channel
    gate = fallback.start_candidate["pair_gate.bias"]
    assert gate.abs().sum() == 10 and (fallback.start_candidate["head.weight"] == 0).all()
    fallback.fit(tmp_path / "fallback")

    def log(run):
        return list(csv.DictReader(open(tmp_path / run / "log.csv")))

    a, b = log("scratch"), log("fallback")
    assert b[0]["step"] == "0" and [r["step"] for r in b[1:]] == [r["step"] for r in a]
    assert [(r["loss"], r["val"]) for r in b[1:]] == [(r["loss"], r["val"]) for r in a]
    start = float(b[0]["val"])
    trained = max(float(r["val"]) for r in a if r["val"] not in ("", "nan"))
    best = load_checkpoint(tmp_path / "fallback" / "best.pt")
    if start >= trained:   # the channel won: best.pt holds it
        assert best["step"] == 0 and torch.equal(best["params"]["pair_gate.bias"], gate)
    else:
        assert best["step"] > 0 and best["best"] == trained
    # training went on from scratch, not from the candidate
    last = load_checkpoint(tmp_path / "fallback" / "last.pt")
    scratch_last = load_checkpoint(tmp_path / "scratch" / "last.pt")
    for name, p in scratch_last["params"].items():
        assert torch.equal(p, last["params"][name]), name
