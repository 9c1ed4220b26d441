"""``socialmeta-train``: meta-train, early-stop on validation users, test cold-start.

Examples::

    socialmeta-train                                   # synthetic, friend, SAGE, MAML
    socialmeta-train task=interest meta=anil train.steps=500
    socialmeta-train dataset=lastfm dataset.root=../shared/datasets/hetrec-lastfm-2k task=item
    socialmeta-train hydra.run.dir=runs/a resume=auto  # continue an interrupted run
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch import nn

from socialmeta.baselines import BASELINES, tune
from socialmeta.cli.common import ConfigError, choose, dataset_from_config, run_hydra
from socialmeta.data import INTERACTS, SocialGraph, atomic_write
from socialmeta.device import resolve_device
from socialmeta.eval.protocol import evaluate_cold_start, evaluate_scorer
from socialmeta.meta import LEARNERS, InnerLoop
from socialmeta.models import ENCODERS, InterestModel, ItemModel, LinkModel
from socialmeta.tasks import (
    KINDS,
    TaskConfig,
    TaskSampler,
    UserSplit,
    split_users,
    task_feature_channels,
)
from socialmeta.tasks.split import observed_graph
from socialmeta.train import LOGGERS, TrainConfig, Trainer, load_checkpoint

TABLE_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")


def task_config(cfg: DictConfig, seed: int) -> TaskConfig:
    choose(dict.fromkeys(KINDS), cfg.kind, "task kind")
    options = OmegaConf.to_container(cfg, resolve=True)
    try:
        return TaskConfig(**options, seed=seed)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"task: {e}") from None


def build_model(cfg: DictConfig, graph: SocialGraph, task: TaskConfig,
                split: UserSplit | None = None) -> nn.Module:
    """The task model for ``task.kind`` from the ``model`` config group. An item model
    with ``model.item_knn > 0`` takes its item neighbours from the interactions of the
    training users of :obj:`split` (required then)."""
    choose(dict.fromkeys(ENCODERS), cfg.conv, "encoder")
    common = {"conv": cfg.conv, "hidden_channels": cfg.hidden_channels,
              "num_layers": cfg.num_layers, "dropout": cfg.dropout, "norm": cfg.norm,
              "heads": cfg.heads}
    num_hops, features = len(task.fanouts), task_feature_channels(graph)
    context_items = graph.num_items if task.observes("items") and graph.has_items else 0
    if task.kind == "friend":
        choose(dict.fromkeys(LinkModel.HEADS), cfg.link_head, "link head")
        choose(dict.fromkeys(LinkModel.LOSSES), cfg.link_loss, "link loss")
        return LinkModel(features, num_hops, head=cfg.link_head, loss=cfg.link_loss,
                         num_users=graph.num_users, num_items=context_items,
                         heuristics=bool(cfg.get("link_heuristics", False)), **common)
    if task.kind == "item":
        item_x = graph["item"].x if "x" in graph["item"] else None
        item_knn = int(cfg.get("item_knn", 0))
        try:
            model = ItemModel(features, graph.num_items, num_hops, item_features=item_x,
                              social=cfg.social, item_knn=item_knn,
                              loss=cfg.get("item_loss", "bce"),
                              heuristics=bool(cfg.get("item_heuristics", False)), **common)
        except ValueError as e:
            raise ConfigError(f"model: {e} (model.item_knn, model.item_heuristics, "
                              "model.item_loss)") from None
        if item_knn:
            if split is None:
                raise ValueError("model.item_knn > 0 needs the user split (training users' "
                                 "interactions)")
            model.set_item_neighbours(observed_graph(graph, split)[INTERACTS].edge_index,
                                      split.train, folds=int(cfg.get("item_knn_folds", 5)))
        return model
    num_labels = (graph["user"].interests.size(1) if task.label_source == "interests"
                  else int(torch.bincount(graph["circle"].ego).max()))
    return InterestModel(features, num_labels, num_hops, num_items=context_items, **common)


def inner_loop(cfg: DictConfig) -> InnerLoop:
    choose(dict.fromkeys(LEARNERS), cfg.learner, "learner")
    return InnerLoop(cfg.learner, cfg.inner_steps, cfg.inner_lr, tuple(cfg.adapt_prefixes))


def split_from_config(graph: SocialGraph, cfg: DictConfig) -> UserSplit:
    """The user split that the ``split`` section of a run config describes."""
    pool = cfg.get("eval_pool")
    if pool not in (None, "egos"):
        raise ConfigError(f"unknown split.eval_pool {pool!r}; choose one of [null, 'egos']")
    eval_pool = None
    if pool == "egos":
        if not graph.has_circles:
            raise ConfigError(f"split.eval_pool=egos needs circles; dataset {graph.name!r} "
                              f"has {graph.relations}")
        eval_pool = torch.unique(graph["circle"].ego)
    try:
        return split_users(graph, val_fraction=cfg.val_fraction,
                           test_fraction=cfg.test_fraction, seed=cfg.seed,
                           test_max_degree=cfg.test_max_degree, eval_pool=eval_pool)
    except ValueError as e:
        raise ConfigError(f"split: {e}") from None


def cold_start_results(model: nn.Module, params, inner: InnerLoop, with_meta_init: bool,
                       **settings: Any) -> dict[str, dict[int, dict]]:
    r"""The cold-start protocol for the trained learner and, with
    :obj:`with_meta_init`, for the same meta-parameters without test-time adaptation.
    :obj:`settings` go to :func:`evaluate_cold_start`."""
    results = {inner.learner: evaluate_cold_start(model, params, inner=inner, **settings)}
    if with_meta_init and inner.learner != "noadapt":
        results[f"{inner.learner} without test-time adaptation"] = evaluate_cold_start(
            model, params, inner=InnerLoop("noadapt"), **settings)
    return results


def baseline_results(names: Sequence[str] | str | None, tune_shots: int, val_metric: str, *,
                     sampler: TaskSampler, **settings: Any) -> dict[str, dict[int, dict]]:
    r"""The cold-start table rows of the baselines :obj:`names` (``"all"``: every
    baseline of the task kind that the dataset supports), each tuned on validation
    users at K = :obj:`tune_shots` on :obj:`val_metric`; test results come from
    :func:`evaluate_scorer` with :obj:`settings`."""
    kind = sampler.config.kind
    available = BASELINES[kind]
    if names is None:
        return {}
    if names == "all":
        names = list(available)
    names = list(names)
    results = {}
    for name in names:
        choose(available, name, f"{kind} baseline")
        try:
            best, _ = tune(available[name](), sampler, tune_shots, val_metric,
                           max_users=settings.get("max_users"))
        except ValueError as e:  # e.g. a feature baseline on a featureless dataset
            if len(names) > 1 and names == list(available):
                continue
            raise ConfigError(str(e)) from None
        results[f"baseline: {best.label()}"] = evaluate_scorer(best.scores, sampler, **settings)
    return results


def results_json(results: dict[str, dict[int, dict]]) -> dict[str, dict[str, dict]]:
    """:func:`cold_start_results` with string keys for K, as written to JSON."""
    return {method: {str(k): v for k, v in per_k.items()} for method, per_k in results.items()}


def format_results(results: dict[str, dict[int, dict]]) -> str:
    """A Markdown table: one row per (method, K), mean ± 95% interval per metric."""
    lines = ["| method | K | users | " + " | ".join(TABLE_METRICS) + " |",
             "|---|---:|---:|" + "---|" * len(TABLE_METRICS)]
    for method, per_k in results.items():
        for k, metrics in per_k.items():
            cells = [f"{metrics[m]['mean']:.4f} ± {metrics[m]['ci95']:.4f}"
                     for m in TABLE_METRICS]
            users = metrics[TABLE_METRICS[0]]["users"]
            lines.append(f"| {method} | {k} | {users} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def train_command(cfg: DictConfig) -> dict[str, Any]:
    if cfg.resume not in (None, "auto"):
        raise ConfigError(f"unknown resume {cfg.resume!r}; choose one of [null, 'auto']")
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.skip_done and (out_dir / "metrics.json").is_file():
        print(f"already complete, skipped: {out_dir}")
        return json.loads((out_dir / "metrics.json").read_text())
    (out_dir / "failed.json").unlink(missing_ok=True)  # a re-run replaces an old failure
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    if cfg.dataset.get("root"):  # checkpoints name the data absolutely (eval/export anywhere)
        cfg.dataset.root = str(Path(cfg.dataset.root).expanduser().resolve())
    graph = dataset_from_config(cfg.dataset)
    task = task_config(cfg.task, cfg.seed)
    split = split_from_config(graph, cfg.split)
    try:
        sampler = TaskSampler(graph, split, task)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    model, inner = build_model(cfg.model, graph, task, split), inner_loop(cfg.meta)
    train_cfg = TrainConfig(**OmegaConf.to_container(cfg.train, resolve=True))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    loggers = []
    for name in cfg.logger.names:
        logger_cls = choose(LOGGERS, name, "logger")
        try:
            loggers.append(logger_cls(out_dir, train_cfg.val_metric) if name == "tensorboard"
                           else logger_cls(out_dir))
        except ImportError as e:
            raise ConfigError(str(e)) from None
    trainer = Trainer(model, inner, sampler, train_cfg, out_dir, device, resolved, loggers)
    trainer.fit(resume=cfg.resume == "auto")
    steps_run = trainer.step
    best = out_dir / "best.pt"
    if best.is_file():
        trainer.load_state(load_checkpoint(best))
    evaluate = dict(sampler=sampler, split="test", shots=tuple(cfg.eval.shots),
                    batch_size=cfg.eval.batch_size, max_users=cfg.eval.max_users)
    results = {}
    if cfg.eval.get("test", True):  # false: a hyper-parameter search never sees test users
        results = cold_start_results(model, trainer.params, inner, True, **evaluate)
        results |= baseline_results(cfg.eval.baselines, train_cfg.val_shots,
                                    train_cfg.val_metric, **evaluate)
    metrics = {"test": results_json(results),
               "best_val": trainer.best, "val_metric": train_cfg.val_metric,
               "steps": steps_run, "best_step": trainer.step, "dataset": graph.name, "task": task.kind,
               "learner": inner.learner, "encoder": cfg.model.conv}
    with atomic_write(out_dir / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"{graph.name} · {task.kind} · {cfg.model.conv} · {inner.learner} · "
          f"{steps_run} steps · best val {train_cfg.val_metric} {trainer.best:.4f}")
    print(format_results(results) if results else "test users not evaluated (eval.test=false)")
    print(f"outputs: {out_dir}")
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``socialmeta-train``."""
    run_hydra(train_command, "train", argv)


if __name__ == "__main__":
    main()
