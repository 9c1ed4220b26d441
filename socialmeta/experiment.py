"""Building a run: dataset -> user split -> task sampler -> model -> learner.

The one place where a run configuration becomes objects. ``socialmeta-train``,
``-eval``, ``-export``, ``-recommend``, :class:`~socialmeta.Recommender` and the tools
all go through it, so a Python user gets exactly the run the command line would build.

Example:
    >>> from socialmeta import Experiment
    >>> exp = Experiment.from_config(overrides=["train.steps=20", "dataset.num_users=300"])
    >>> exp.fit("runs/demo")                    # meta-train, checkpoints in runs/demo
    >>> table = exp.evaluate(shots=[3])         # the cold-start protocol on test users
    >>> exp.recommender().recommend(friends=["3", "17", "40"], k=5)
    >>> again = Experiment.from_checkpoint("runs/demo/best.pt")
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from socialmeta import distributed, progress
from socialmeta.config import ConfigError, as_config, choose, compose
from socialmeta.data import DATASETS, INTERACTS, SocialGraph, load_dataset
from socialmeta.data.cache import graph_digest
from socialmeta.data.standardize import FeatureScaling, standardize_features
from socialmeta.errors import InputError
from socialmeta.eval.report import Results
from socialmeta.features import (
    allowed_friend_features,
    allowed_item_features,
    friend_channels,
    item_channels,
)
from socialmeta.meta import LEARNERS, InnerLoop, meta_parameters
from socialmeta.meta.learners import MAX_LR
from socialmeta.models import (
    ENCODERS,
    HybridInterestModel,
    HybridItemModel,
    HybridLinkModel,
    InterestModel,
    ItemModel,
    LinkModel,
)
from socialmeta.models.hybrid import PARTS as HYBRID_PARTS
from socialmeta.tasks import (
    KINDS,
    TaskConfig,
    TaskSampler,
    UserSplit,
    adoption_graph,
    is_adoption_graph,
    split_items,
    split_temporal,
    split_users,
    task_feature_channels,
)
from socialmeta.tasks.new_item import ITEM_PREFIX
from socialmeta.tasks.sampler import USER_TARGETS
from socialmeta.tasks.split import observed_graph
from socialmeta.train import TrainConfig, Trainer
from socialmeta.train.checkpoint import CheckpointError, load_checkpoint

#: ``model.scorer`` choices: the ego-net-only friend scorer, or the whole-graph hybrid
SCORERS = ("egonet", "hybrid")


#: the config sections a run is rebuilt from (a checkpoint must hold them)
RUN_CONFIG_SECTIONS = ("dataset", "task", "model", "meta", "train", "split")


# ------------------------------------------------------------ config -> parts
def dataset_from_config(cfg: DictConfig) -> SocialGraph:
    r"""Loads the graph that a ``dataset`` config group entry describes."""
    options = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(options, dict)
    # "loader" picks the registry entry where "name" is the loader's own option
    # (dataset=recbole dataset.name=NAME: the atomic files' stem)
    name = options.pop("loader") if "loader" in options else options.pop("name")
    use_features = options.pop("features", True)
    options.pop("standardize", None)   # applied by Experiment once the split is known
    spec = choose(DATASETS, name, "dataset")
    kwargs: dict[str, Any] = {}
    if spec.takes_root:
        kwargs["root"] = options.pop("root", None)
        kwargs["download"] = options.pop("download", True)
        kwargs["cache_dir"] = True if options.pop("cache", True) else None
    try:
        spec.check_options(name, options)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:
        graph = load_dataset(name, **kwargs, **options)
    except InputError:
        raise
    except ValueError as e:
        if spec.takes_root:   # a loader's own failure, not a config value's
            raise
        raise ConfigError(f"dataset: {e}") from None   # generated from the options alone
    if not use_features:  # the ablation "without user features"
        graph["user"].x = graph["user"].x[:, :0]
        graph.feature_names = []
    return graph


def graph_for_task(graph: SocialGraph, task: TaskConfig) -> SocialGraph:
    r"""The graph the tasks run on: :obj:`graph` itself, or for ``task=new_item`` its
    :func:`~socialmeta.tasks.adoption_graph` (users and items as nodes)."""
    if task.kind != "new_item" or is_adoption_graph(graph):
        return graph
    try:
        return adoption_graph(graph)
    except ValueError as e:
        raise ConfigError(f"task=new_item: {e}") from None


def task_config(cfg: DictConfig, seed: int, model: DictConfig | None = None) -> TaskConfig:
    r"""The :class:`TaskConfig` of a ``task`` config group entry; with the run's
    :obj:`model` config, the pair features its hybrid scorer reads
    (:func:`hybrid_pair_features`)."""
    choose(dict.fromkeys(KINDS), cfg.kind, "task kind")
    options = OmegaConf.to_container(cfg, resolve=True)
    try:
        task = TaskConfig(**options, seed=seed)
        if model is not None:
            task = dataclasses.replace(task, pair_features=hybrid_pair_features(model, task))
        return task
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"task: {e}") from None


def hybrid_pair_features(model: DictConfig, task: TaskConfig) -> tuple[str, ...]:
    r"""The pair features of a hybrid scorer (``model.scorer=hybrid`` with the
    ``pairs`` part): ``model.pair_features``, where ``auto`` is every one the task's
    context allows; none for other scorers."""
    scorer = model.get("scorer", "egonet")
    choose(dict.fromkeys(SCORERS), scorer, "model.scorer")
    if scorer != "hybrid":
        return ()
    parts = list(model.get("hybrid_parts", HYBRID_PARTS))
    if task.kind in ("item", "interest") and not {"egonet", "pairs"} <= set(parts):
        raise ConfigError(f"model.hybrid_parts={parts}: the hybrid {task.kind} scorer is "
                          f"the {task.kind} model plus the pair features, so it needs "
                          f"'egonet' and 'pairs' (the {task.kind} model alone is "
                          "model.scorer=egonet)")
    if task.kind == "interest":   # label features computed by the model from each task
        return ()
    if "pairs" not in parts:
        return ()
    names = model.get("pair_features", "auto")
    if names == "auto" and task.kind == "item":   # recency where there is a time cut
        return tuple(allowed_item_features(task.context,
                                           dated=task.protocol == "temporal"))
    if names == "auto":
        names = allowed_friend_features(task.context, friends_taste=task.friends_taste)
        if task.kind == "new_item":  # an item's and a user's feature blocks never overlap
            names = [n for n in names if n != "feature_similarity"]
        return tuple(names)
    if isinstance(names, str):
        raise ConfigError(f"model.pair_features must be 'auto' or a list, got {names!r}")
    return tuple(names)


def check_model_config(cfg: DictConfig) -> None:
    """The ``model`` group's sizes and rates, checked before anything is built."""
    for key in ("hidden_channels", "num_layers", "heads"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"model.{key}: expected a positive integer, got {value!r}")
    if not 0 <= cfg.dropout < 1:
        raise ConfigError(f"model.dropout: expected a probability in [0, 1), got "
                          f"{cfg.dropout}")


def build_model(cfg: DictConfig, graph: SocialGraph, task: TaskConfig,
                split: UserSplit | None = None) -> nn.Module:
    """The task model for ``task.kind`` from the ``model`` config group. An item model
    with ``model.item_knn > 0`` takes its item neighbours from the interactions of the
    training users of :obj:`split` (required then)."""
    choose(dict.fromkeys(ENCODERS), cfg.conv, "encoder")
    check_model_config(cfg)
    common = {"conv": cfg.conv, "hidden_channels": cfg.hidden_channels,
              "num_layers": cfg.num_layers, "dropout": cfg.dropout, "norm": cfg.norm,
              "heads": cfg.heads}
    num_hops, features = len(task.fanouts), task_feature_channels(graph)
    context_items = graph.num_items if task.observes("items") and graph.has_items else 0
    if task.kind in USER_TARGETS and cfg.get("scorer", "egonet") == "hybrid":
        return _hybrid_model(cfg, graph, task, split, features, context_items, common)
    if task.kind in USER_TARGETS:
        choose(dict.fromkeys(LinkModel.HEADS), cfg.link_head, "link head")
        choose(dict.fromkeys(LinkModel.LOSSES), cfg.link_loss, "link loss")
        return LinkModel(features, num_hops, head=cfg.link_head, loss=cfg.link_loss,
                         num_users=graph.num_users, num_items=context_items,
                         heuristics=bool(cfg.get("link_heuristics", False)), **common)
    if task.kind == "item":
        item_x = graph["item"].x if "x" in graph["item"] else None
        item_knn = int(cfg.get("item_knn", 0))
        options = dict(item_features=item_x, social=cfg.social, item_knn=item_knn,
                       loss=cfg.get("item_loss", "bce"),
                       heuristics=bool(cfg.get("item_heuristics", False)), **common)
        try:
            if cfg.get("scorer", "egonet") == "hybrid":   # softmax over the catalogue
                channels = item_channels(task.pair_features)
                model = HybridItemModel(features, graph.num_items, num_hops,
                                        num_pair_features=len(channels),
                                        channels=channels, **options)
            else:
                model = ItemModel(features, graph.num_items, num_hops, **options)
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
    if cfg.get("scorer", "egonet") == "hybrid":
        return HybridInterestModel(features, num_labels, num_hops, num_items=context_items,
                                   **common)
    return InterestModel(features, num_labels, num_hops, num_items=context_items, **common)


def _hybrid_model(cfg: DictConfig, graph: SocialGraph, task: TaskConfig,
                  split: UserSplit | None, features: int, context_items: int,
                  common: dict[str, Any]) -> HybridLinkModel:
    """The whole-graph friend scorer of ``model.scorer=hybrid`` (its tower reads the
    observed graph of :obj:`split`)."""
    if split is None:
        raise ValueError("model.scorer=hybrid needs the user split (its tower reads the "
                         "training users' graph)")
    choose(dict.fromkeys(LinkModel.HEADS), cfg.link_head, "link head")
    parts = list(cfg.get("hybrid_parts", HYBRID_PARTS))
    for part in parts:
        choose(dict.fromkeys(HYBRID_PARTS), part, "model.hybrid_parts entry")
    try:
        channels = friend_channels(task.pair_features, task.ppr_alphas)
        model = HybridLinkModel(
            features, len(task.fanouts), graph.num_users, num_pair_features=len(channels),
            channels=channels,
            parts=parts, tower_layers=int(cfg.get("tower_layers", 2)),
            tower_folds=int(cfg.get("tower_folds", 5)),
            tower_refresh=int(cfg.get("tower_refresh", 1)),
            tower_fanout=(None if cfg.get("tower_fanout") is None
                          else list(cfg.tower_fanout)),
            softmax_samples=int(cfg.get("softmax_samples", 1024)),
            sampled_above=int(cfg.get("sampled_softmax_above", 100_000)),
            proposal=str(cfg.get("softmax_proposal", "uniform")), head=cfg.link_head,
            num_items=context_items, heuristics=bool(cfg.get("link_heuristics", False)),
            **common)
    except ValueError as e:
        raise ConfigError(f"model: {e}") from None
    return model.set_graph(observed_graph(graph, split), split.train, seed=task.seed,
                           candidates=split.candidate_users)


def start_model(model: nn.Module, cfg: DictConfig, sampler: TaskSampler,
                train: TrainConfig, choice: str | None = None) -> str | None:
    r"""Applies ``model.pair_init`` (the hybrid scorers, ``model.scorer=hybrid``):
    ``none``, a pair feature channel the model starts as (e.g. ``ppr@0.15``,
    ``recent_popularity@30``, ``label_propagation@0.9``;
    :meth:`~socialmeta.models.HybridInterestModel.start_from`), or ``auto``: the
    channel that ranks best on **validation** users (never test users) at
    ``train.val_shots`` by ``train.val_metric`` — for interest tasks the label
    propagation restart weight the baseline's own tuning picks, for friend, new-item
    and item tasks each channel scored as a ranking (a model without pair feature
    channels, the ego-net scorer among them, then starts from scratch); ``fallback``
    (:func:`fallback_start`): from scratch, with that channel as the step-0 checkpoint;
    or ``learned_ranker``: the
    learned ranker baseline, fitted on training users, copied into the pair MLP
    (friend and item tasks). Returns the channel, or :obj:`None`."""
    choice = cfg.get("pair_init", "none") if choice is None else choice
    if choice in (None, "none"):
        return None
    hybrid = isinstance(model, (HybridInterestModel, HybridItemModel, HybridLinkModel))
    if choice == "auto" and (not hybrid or (not isinstance(model, HybridInterestModel)
                                            and not model.channels)):
        return None   # auto: a model without pair feature channels starts from scratch
    if not hybrid:
        raise ConfigError(f"model.pair_init={choice!r} is for the hybrid scorers "
                          "(model.scorer=hybrid); use none here")
    if choice == "learned_ranker":
        return _start_from_ranker(model, sampler)
    prior = None
    if isinstance(model, HybridInterestModel):
        from socialmeta.baselines import make_baseline

        lp = make_baseline("interest", "label_propagation")
        if choice == "auto":
            from socialmeta.baselines.tune import tune

            lp, _ = tune(lp, sampler, shots=train.val_shots, metric=train.val_metric,
                         max_users=train.val_users)
            choice = f"label_propagation@{float(lp.hyper['alpha']):g}"
        else:
            lp.fit(sampler)
        prior = lp.prior   # the baseline's tie-break: training users' label frequencies
    elif choice == "auto":
        choice = best_channel(model.channels, sampler, train)
    if cfg.get("pair_init") == "auto":
        progress.info("model.pair_init=auto: starting from %s (best on validation users)",
                      choice)
    elif cfg.get("pair_init") == "fallback":
        progress.info("model.pair_init=fallback: %s (best on validation users) is the "
                      "step-0 checkpoint that training from scratch must beat", choice)
    try:
        model.start_from(str(choice), prior=prior)
    except ValueError as e:
        raise ConfigError(f"model.pair_init: {e}") from None
    return str(choice)


def fallback_start(model: nn.Module, cfg: DictConfig, sampler: TaskSampler,
                   train: TrainConfig) -> dict[str, Tensor] | None:
    r"""``model.pair_init=fallback``: the model's parameters as its best pair feature
    channel on validation users (as ``auto`` would start it), while the model itself
    keeps its fresh initialisation: training starts from scratch, and the Trainer
    validates these parameters at step 0 as the checkpoint training must beat
    (``Trainer(start_candidate=...)``). :obj:`None` for a model without channels."""
    scratch = {n: p.detach().clone() for n, p in model.named_parameters()}
    if start_model(model, cfg, sampler, train, choice="auto") is None:
        return None
    candidate = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(scratch[name])
    return candidate


def _start_from_ranker(model: nn.Module, sampler: TaskSampler) -> str:
    """``model.pair_init=learned_ranker``: fits the learned ranker baseline (on training
    users only) and starts the hybrid as that ranker (its MLP in the pair MLP)."""
    from socialmeta.baselines import make_baseline

    if isinstance(model, HybridInterestModel):
        raise ConfigError("model.pair_init=learned_ranker: there is no learned ranker for "
                          "interest tasks (choose a channel or auto)")
    progress.info("model.pair_init=learned_ranker: fitting the learned ranker")
    ranker = make_baseline(sampler.config.kind, "learned_ranker").fit(sampler)
    try:
        model.start_from_mlp(ranker.mlp, ranker.channels)
    except ValueError as e:
        raise ConfigError(f"model.pair_init=learned_ranker: {e}") from None
    return "learned_ranker"


def best_channel(channels: Sequence[str], sampler: TaskSampler, train: TrainConfig) -> str:
    """The pair feature channel (of ``TaskBatch.pair_features``) that, as a ranking of
    the task's targets, scores best on validation users (the first on ties)."""
    from socialmeta.eval.protocol import evaluate_scorer

    best, best_value = channels[0], float("-inf")
    for i, name in enumerate(channels):
        value = evaluate_scorer(lambda batch, i=i: batch.pair_features[..., i], sampler,
                                "val", (train.val_shots,), max_users=train.val_users
                                )[train.val_shots][train.val_metric]["mean"]
        if value > best_value:
            best, best_value = name, value
    return best


def inner_loop(cfg: DictConfig) -> InnerLoop:
    """The learner of a ``meta`` config group entry."""
    choose(dict.fromkeys(LEARNERS), cfg.learner, "learner")
    if cfg.inner_steps < 0:
        raise ConfigError(f"meta.inner_steps must be >= 0, got {cfg.inner_steps}")
    if not 0 <= cfg.inner_lr <= MAX_LR:
        raise ConfigError(f"meta.inner_lr: expected a finite number in [0, {MAX_LR:g}], got "
                          f"{cfg.inner_lr}")
    return InnerLoop(cfg.learner, cfg.inner_steps, cfg.inner_lr, tuple(cfg.adapt_prefixes))


def split_from_config(graph: SocialGraph, cfg: DictConfig,
                      task: TaskConfig | None = None) -> UserSplit:
    """The user split that the ``split`` section of a run config describes; under
    ``task.protocol=temporal`` the :func:`~socialmeta.tasks.split_temporal` of the
    task's ``time_cut`` and ``temporal_users`` (``split.val_fraction`` and
    ``test_fraction`` then only set the val : test ratio: every eligible user is one
    or the other); for ``task=new_item`` the :func:`~socialmeta.tasks.split_items`
    of the adoption graph :obj:`graph` (by date at ``task.time_cut`` under the
    temporal protocol)."""
    if task is not None and task.kind == "new_item":
        for key in ("test_max_degree", "eval_pool"):
            if cfg.get(key) is not None:
                raise ConfigError(f"split.{key} is not used by task=new_item (it splits "
                                  "items, not users): set it to null")
        try:
            return split_items(graph, val_fraction=cfg.val_fraction,
                               test_fraction=cfg.test_fraction, seed=cfg.seed,
                               cut=task.time_cut if task.protocol == "temporal" else None)
        except ValueError as e:
            raise ConfigError(f"split: {e}") from None
    if task is not None and task.protocol == "temporal":
        for key in ("test_max_degree", "eval_pool"):
            if cfg.get(key) is not None:
                raise ConfigError(f"split.{key} is not used by task.protocol=temporal "
                                  "(its val/test users are fixed by the time cut): "
                                  f"set it to null")
        try:
            return split_temporal(graph, task.time_cut, users=task.temporal_users,
                                  val_fraction=cfg.val_fraction,
                                  test_fraction=cfg.test_fraction, seed=cfg.seed)
        except ValueError as e:
            raise ConfigError(f"split: {e}") from None
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


#: ``train.val_metric=auto``: per task kind (interest tasks rank a handful of labels,
#: where Recall@20 is 1 by construction below 20 labels)
AUTO_VAL_METRIC = {"friend": "recall@20", "item": "recall@20", "new_item": "recall@20",
                   "interest": "map"}


def val_metric(name: str, kind: str) -> str:
    """The validation metric :obj:`name` means for :obj:`kind` tasks (``auto``:
    :data:`AUTO_VAL_METRIC`)."""
    return AUTO_VAL_METRIC[kind] if name == "auto" else name


def train_config(cfg: DictConfig, kind: str = "friend") -> TrainConfig:
    """The :class:`TrainConfig` of the ``train`` section, with its values checked
    (``val_metric: auto`` resolved for :obj:`kind` tasks)."""
    values = OmegaConf.to_container(cfg, resolve=True)
    values["val_metric"] = val_metric(values.get("val_metric", "auto"), kind)
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"train: {e}") from None


def check_shots(sampler: TaskSampler, shots: Sequence[int], split: str, what: str) -> None:
    """Every K of :obj:`shots` must be positive and leave at least one :obj:`split` user
    with a query (more than K links); else a :class:`ConfigError` naming the largest K
    that does."""
    for k in shots:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"{what}: K must be a positive integer, got {k!r}")
        if sampler.eval_centers(split, k).numel() == 0:
            largest = max((j for j in range(1, k) if sampler.eval_centers(split, j).numel()),
                          default=None)
            hint = (f"the largest K with {split} users is {largest}" if largest
                    else f"no {split} user has a query even at K=1")
            raise ConfigError(f"{what}: K={k} leaves no {split} user with links left to "
                              f"predict ({hint})")


# --------------------------------------------------------------- evaluation
def cold_start_results(model: nn.Module, params, inner: InnerLoop, with_meta_init: bool,
                       **settings: Any) -> Results:
    r"""The cold-start protocol for the trained learner and, with
    :obj:`with_meta_init`, for the same meta-parameters without test-time adaptation.
    :obj:`settings` go to :func:`~socialmeta.eval.protocol.evaluate_cold_start`."""
    from socialmeta.eval.protocol import evaluate_cold_start

    split, shots = settings.pop("split", "test"), tuple(settings.pop("shots", (1, 3, 5, 10)))
    methods = {inner.learner: inner}
    if with_meta_init and inner.learner != "noadapt":
        methods[f"{inner.learner} without test-time adaptation"] = InnerLoop("noadapt")
    results: Results = {}
    for method, how in methods.items():
        results[method] = {}
        for k in shots:  # a line per K: each K evaluates every user with more than K links
            progress.info("evaluating %s on %s users, K=%d", method, split, k)
            results[method] |= evaluate_cold_start(model, params, inner=how, split=split,
                                                   shots=(k,), **settings)
    return results


def check_baseline_names(names: Sequence[str] | str | None, kind: str) -> None:
    """``eval.baselines``: ``all``, ``null`` or a list of :obj:`kind`'s baseline names
    (checked before anything is trained: a :class:`ConfigError` otherwise)."""
    from socialmeta.baselines import BASELINES

    if names is None or names == "all":
        return
    if isinstance(names, str):
        raise ConfigError(f"eval.baselines: expected all, null or a list of names, got "
                          f"{names!r}")
    for name in names:
        choose(BASELINES[kind], name, f"{kind} baseline")


def baseline_results(names: Sequence[str] | str | None, tune_shots: int, val_metric: str, *,
                     sampler: TaskSampler, **settings: Any) -> Results:
    r"""The cold-start table rows of the baselines :obj:`names` (``"all"``: every
    baseline of the task kind that the dataset supports, except those with
    :attr:`~socialmeta.baselines.base.Baseline.in_all` false), each tuned on validation
    users at K = :obj:`tune_shots` on :obj:`val_metric`; test results come from
    :func:`~socialmeta.eval.protocol.evaluate_scorer` with :obj:`settings`."""
    from socialmeta.baselines import BASELINES, roster, tune
    from socialmeta.eval.protocol import evaluate_scorer

    kind = sampler.config.kind
    available = BASELINES[kind]
    if names is None:
        return {}
    everything = names == "all"
    if not everything:
        check_baseline_names(names, kind)
    names = roster(kind, sampler.config) if everything else list(names)
    results = {}
    for i, name in enumerate(names, start=1):
        progress.info("baseline %d/%d %s: tuning on validation users at K=%d", i, len(names),
                 name, tune_shots)
        try:
            best, _ = tune(available[name](), sampler, tune_shots, val_metric,
                           max_users=settings.get("max_users"))
        except ValueError as e:  # e.g. a feature baseline on a featureless dataset
            if everything:
                progress.info("baseline %s skipped: %s", name, e)
                continue
            raise ConfigError(str(e)) from None
        progress.info("baseline %s: evaluating %s on %s users", name, best.label(),
                 settings.get("split"))
        results[f"baseline: {best.label()}"] = evaluate_scorer(best.scores, sampler, **settings)
    return results


# --------------------------------------------------------------- experiment
class Experiment:
    r"""One run: its graph, user split, task sampler, model, learner and
    meta-parameters, built from a run config.

    Args:
        config: The run config (the composed ``train`` config: ``dataset``, ``task``,
            ``model``, ``meta``, ``train``, ``split``, ``eval``, ``seed``).
        graph: An already loaded graph for ``config.dataset`` (loaded if omitted).
        params: Meta-parameters to start from (fresh from the model if omitted).

    Use :meth:`from_config` and :meth:`from_checkpoint` rather than the constructor.
    """

    def __init__(self, config: DictConfig | Mapping[str, Any],
                 graph: SocialGraph | None = None,
                 params: dict[str, Tensor] | None = None) -> None:
        self.config = cfg = as_config(config)
        # the config's values are checked before any data is loaded
        self.task = task_config(cfg.task, cfg.seed, cfg.model)
        self.train_config = train_config(cfg.train, self.task.kind)
        self.inner = inner_loop(cfg.meta)
        check_model_config(cfg.model)
        progress.info("loading dataset %s", cfg.dataset.name)
        graph = graph if graph is not None else dataset_from_config(cfg.dataset)
        self.graph = graph_for_task(graph, self.task)
        self.split = split_from_config(self.graph, cfg.split, self.task)
        #: per node type, the z-scoring of its features (``dataset.standardize``)
        self.feature_scaling: dict[str, FeatureScaling] = {}
        if cfg.dataset.get("standardize", False):
            self._standardize()
        try:
            self.sampler = TaskSampler(self.graph, self.split, self.task)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.task.kind == "new_item" and self.task.observes("features") and not any(
                f.startswith(ITEM_PREFIX) for f in self.graph.feature_names):
            progress.info("note: task.context has 'features', but dataset %s has no item "
                          "features: a new item's feature row holds only its is-item flag",
                          graph.name)
        check_shots(self.sampler, (self.train_config.val_shots,), "val", "train.val_shots")
        if cfg.get("eval") is not None and cfg.eval.get("test", True):
            check_shots(self.sampler, tuple(cfg.eval.shots), "test", "eval.shots")
        self.model = build_model(cfg.model, self.graph, self.task, self.split)
        candidate = None   # model.pair_init=fallback: the step-0 checkpoint to beat
        if params is None and cfg.model.get("pair_init") == "fallback":
            candidate = fallback_start(self.model, cfg.model, self.sampler, self.train_config)
        elif params is None:   # a checkpoint's parameters replace any starting point
            start_model(self.model, cfg.model, self.sampler, self.train_config)
        self.params = meta_parameters(self.model, self.inner)
        #: meta-parameters validated at step 0 as the checkpoint training must beat
        self.start_candidate = None if candidate is None else {
            n: candidate.get(n, p).detach().clone() for n, p in self.params.items()}
        if params is not None:
            self.load_params(params)
        self.trainer: Trainer | None = None

    def _standardize(self) -> None:
        """``dataset.standardize``: user features z-scored on the training users, item
        features on the catalogue (:func:`~socialmeta.data.standardize.standardize_features`);
        new-item runs read the features as given (their nodes mix users and items)."""
        if self.task.kind == "new_item":
            progress.info("dataset.standardize: new-item runs read the features as given")
            return
        self.graph, self.feature_scaling = standardize_features(self.graph, self.split.train)
        for kind, scaling in self.feature_scaling.items():
            progress.info("dataset.standardize: %d %s feature column(s) z-scored on %s",
                          len(scaling.names), kind,
                          f"the {self.split.train.numel()} training users" if kind == "user"
                          else "the catalogue")

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.graph.name}, {self.task.kind}, "
                f"{self.config.model.conv}, {self.inner.learner}, "
                f"users={self.graph.num_users})")

    # ---------------------------------------------------------- constructors
    @classmethod
    def from_config(cls, config: DictConfig | Mapping[str, Any] | None = None,
                    overrides: Sequence[str] = ()) -> Experiment:
        r"""Builds a run from :obj:`config`, or from the packaged ``train`` config with
        command-line style :obj:`overrides` (``["dataset=lastfm", "meta=anil"]``)."""
        if config is None:
            config = compose("train", overrides)
        elif overrides:
            raise ValueError("give either a config or overrides of the packaged one")
        return cls(config)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, *, allow_other_data: bool = False
                        ) -> Experiment:
        r"""Rebuilds the run of a training checkpoint (loaded with
        ``weights_only=True``) with its meta-parameters.

        Raises:
            CheckpointError: One line naming the file if it is missing, unreadable,
                not a socialmeta checkpoint, made for another model, or made on other
                data than the dataset now loads (unless :obj:`allow_other_data`).
        """
        state = load_checkpoint(checkpoint)
        missing = [k for k in RUN_CONFIG_SECTIONS if k not in state["config"]]
        if missing:
            raise CheckpointError(checkpoint, f"its config lacks the {missing[0]!r} section "
                                  "that a socialmeta-train run writes (written by another "
                                  "tool or version?)")
        exp = cls(state["config"])
        saved = state.get("data_sha256")
        if saved is not None and not allow_other_data:
            now = graph_digest(exp.graph)
            if now != saved:
                raise CheckpointError(
                    checkpoint, f"was trained on other data than dataset "
                    f"{exp.graph.name!r} now loads (data hash {saved[:12]} vs "
                    f"{now[:12]}); pass allow_other_data=true to use it anyway")
        try:
            exp.load_params(state["params"])
        except ValueError as e:
            raise CheckpointError(checkpoint, str(e)) from None
        return exp

    def load_params(self, params: Mapping[str, Tensor]) -> None:
        """Copies :obj:`params` into the meta-parameters (names and shapes must match)."""
        missing = sorted(set(self.params) - set(params))
        if missing:
            raise ValueError(f"has no parameter {missing[0]!r} that this "
                             f"{self.inner.learner} model needs (made for another model?)")
        with torch.no_grad():
            for name, p in self.params.items():
                if params[name].shape != p.shape:
                    raise ValueError(f"parameter {name!r} has shape "
                                     f"{tuple(params[name].shape)}, the model expects "
                                     f"{tuple(p.shape)} (made for another model or dataset?)")
                p.copy_(params[name])

    # ---------------------------------------------------------------- verbs
    def fit(self, out_dir: str | Path, resume: bool = False, device: str | torch.device = "cpu",
            loggers: Sequence[Any] | None = None) -> list[dict[str, float]]:
        r"""Meta-trains with early stopping on validation users; checkpoints go to
        :obj:`out_dir` (``resume``: continue from its ``last.pt``). The meta-parameters
        are the best checkpoint's afterwards. Returns the logged rows."""
        from socialmeta.train.lock import run_lock

        resolved = OmegaConf.to_container(self.config, resolve=True)
        self.trainer = Trainer(self.model, self.inner, self.sampler, self.train_config,
                               out_dir, device, resolved, loggers,
                               data_sha256=graph_digest(self.graph),
                               start_candidate=self.start_candidate)
        self.params = self.trainer.params
        with run_lock(out_dir) if distributed.is_main() else contextlib.nullcontext():
            rows = self.trainer.fit(resume=resume)
        best = Path(out_dir) / "best.pt"
        if best.is_file():
            self.trainer.load_state(load_checkpoint(best))
        return rows

    def evaluation_settings(self, split: str = "test", shots: Sequence[int] | None = None
                            ) -> dict[str, Any]:
        """What :meth:`evaluate` passes to the protocol, from ``config.eval``."""
        ev = self.config.eval
        shots = tuple(ev.shots if shots is None else shots)
        check_shots(self.sampler, shots, split, "eval.shots")
        return dict(sampler=self.sampler, split=split, shots=shots,
                    batch_size=ev.batch_size, max_users=ev.max_users)

    def evaluate(self, split: str = "test", shots: Sequence[int] | None = None,
                 with_meta_init: bool = True, baselines: Sequence[str] | str | None = None
                 ) -> Results:
        r"""The cold-start protocol on :obj:`split` users for the learner (and, with
        :obj:`with_meta_init`, its unadapted twin) and the :obj:`baselines` (names or
        ``"all"``, each tuned on validation users). ``{method: {K: {metric: {...}}}}``."""
        settings = self.evaluation_settings(split, shots)
        results = cold_start_results(self.model, self.params, self.inner, with_meta_init,
                                     **settings)
        tc = self.train_config
        return results | baseline_results(baselines, tc.val_shots, tc.val_metric, **settings)

    def recommender(self, device: str | torch.device = "cpu"):
        """A :class:`~socialmeta.Recommender` over this run's model and parameters."""
        from socialmeta.recommend import Recommender

        return Recommender(self.model, self.params, self.graph, self.split, self.task,
                           self.inner, device)
