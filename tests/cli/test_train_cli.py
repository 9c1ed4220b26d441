"""socialmeta-train: every config composes; a tiny end-to-end run writes its outputs."""
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from socialmeta.cli.train import main
from socialmeta.config import ConfigError, config_dir
from socialmeta.experiment import (
    build_model,
    dataset_from_config,
    graph_for_task,
    inner_loop,
    split_from_config,
    task_config,
)

CONFIGS = Path(config_dir())


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("task", _options("task"))
@pytest.mark.parametrize("model", _options("model"))
def test_task_and_model_configs_compose_and_build(task, model):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"task={task}", f"model={model}",
                                          "dataset.num_users=200"])
    tc = task_config(cfg.task, cfg.seed, cfg.model)
    graph = graph_for_task(dataset_from_config(cfg.dataset), tc)
    net = build_model(cfg.model, graph, tc, split_from_config(graph, cfg.split, tc))
    assert tc.kind == cfg.task.kind and net.encoder.conv_name == cfg.model.conv


@pytest.mark.parametrize("meta", _options("meta"))
def test_meta_configs_compose(meta):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"meta={meta}"])
    assert inner_loop(cfg.meta).learner == meta


@pytest.mark.parametrize("logger", _options("logger"))
def test_logger_configs_compose_and_run(logger, tmp_path):
    pytest.importorskip("tensorboard")
    main([f"hydra.run.dir={tmp_path}", f"logger={logger}", "dataset.num_users=200",
          "train.steps=2", "train.eval_every=2", "train.batch_size=4", "train.val_users=10",
          "eval.shots=[3]", "eval.max_users=5", "eval.baselines=null", "task.node_cap=16",
          "task.fanouts=[4,4]"])
    assert (tmp_path / "log.csv").is_file()
    assert (tmp_path / "tensorboard").is_dir() == (logger == "tensorboard")


def test_bad_choice_lists_valid_ones():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=["model.conv=transformer"])
    with pytest.raises(ConfigError, match=r"unknown encoder 'transformer'; choose one of"):
        build_model(cfg.model, None, None)


def test_item_knn_without_item_heuristics_is_a_config_error():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=["task=item", "model.item_knn=10",
                                          "dataset.num_users=100"])
    graph = dataset_from_config(cfg.dataset)
    task = task_config(cfg.task, 0, cfg.model)
    with pytest.raises(ConfigError, match=r"item_knn=10: .*only with heuristics=True"):
        build_model(cfg.model, graph, task, split_from_config(graph, cfg.split, task))


def test_end_to_end_tiny_run(tmp_path, capsys):
    main([f"hydra.run.dir={tmp_path}", "dataset.num_users=300", "train.steps=6",
          "train.eval_every=3", "train.batch_size=8", "train.val_users=20",
          "eval.shots=[1,3]", "eval.max_users=20", "task.node_cap=24",
          "task.fanouts=[8,4]"])
    out = capsys.readouterr().out
    # the printed summary: K=3, the learner, its unadapted twin and the best baselines
    assert "test users at K=3 (20 users" in out and "| metasgd | " in out
    assert "| metasgd without test-time adaptation | " in out and "| baseline: " in out
    table = (tmp_path / "results.md").read_text()  # the full table
    assert "| metasgd | 3 |" in table and "| metasgd | 1 |" in table
    assert "| baseline: ppr(alpha=" in table and "| baseline: adamic_adar | 3 |" in table
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["test"]["metasgd"]) == {"1", "3"}
    assert metrics["test"]["baseline: popularity"]["3"]["recall@20"]["users"] == 20
    assert metrics["test"]["metasgd"]["3"]["recall@20"]["users"] == 20
    assert metrics["steps"] == 6
    for name in ("config.yaml", "log.csv", "last.pt", "best.pt"):
        assert (tmp_path / name).is_file(), name
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 6


def test_unknown_learner_exits_with_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([f"hydra.run.dir={tmp_path}", "meta.learner=maml2"])
    assert e.value.code == 2
    assert "unknown learner 'maml2'; choose one of" in capsys.readouterr().err


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiment_configs_compose_and_build(experiment, monkeypatch, lastfm_root,
                                              ego_facebook_root, ciaodvd_root):
    monkeypatch.setenv("SOCIALMETA_CACHE", "/nonexistent-never-written")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    dataset, kind = cfg.recipe.split(":")[:2]
    assert cfg.dataset.name == dataset and cfg.task.kind == kind
    roots = {"lastfm": lastfm_root, "ego_facebook": ego_facebook_root,
             "ciaodvd": ciaodvd_root}
    if dataset in roots:
        cfg.dataset.root, cfg.dataset.cache = str(roots[dataset]), False
    else:
        cfg.dataset.num_users = 300
    task = task_config(cfg.task, cfg.seed, cfg.model)
    graph = graph_for_task(dataset_from_config(cfg.dataset), task)
    build_model(cfg.model, graph, task, split_from_config(graph, cfg.split, task))
    inner_loop(cfg.meta)


@pytest.mark.parametrize("preset", _options("eval"))
def test_eval_configs_compose(preset):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"eval={preset}"])
    assert list(cfg.eval.shots) and cfg.eval.batch_size > 0


@pytest.mark.parametrize("preset", _options("export"))
def test_export_presets_compose(preset):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("export", overrides=["checkpoint=x.pt", f"export={preset}"])
    from socialmeta.export.embeddings import FORMATS

    assert "npy" in cfg.formats and set(cfg.formats) <= set(FORMATS)
    assert cfg.normalize == (preset == "ann")


def test_unknown_baseline_lists_valid_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([f"hydra.run.dir={tmp_path}", "dataset.num_users=200", "train.steps=1",
              "train.eval_every=1", "train.batch_size=4", "train.val_users=5",
              "eval.shots=[3]", "eval.max_users=5", "eval.baselines=[pagerank]",
              "task.node_cap=16", "task.fanouts=[4,4]"])
    assert "unknown friend baseline 'pagerank'; choose one of" in capsys.readouterr().err
    assert not (tmp_path / "last.pt").exists()   # refused before any training


def test_help_says_what_the_command_does_in_a_screen():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "socialmeta", "train", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("socialmeta-train: train socialmeta's model")
    assert len(lines) < 40   # not the 146-line config dump
    text = out.stdout
    for key in ("experiment=NAME", "dataset=NAME", "meta=LEARNER", "train.steps=N",
                "Examples:", "socialmeta-train experiment=lastfm_item"):
        assert key in text, key
