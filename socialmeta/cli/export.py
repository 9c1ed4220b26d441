"""``socialmeta-export``: embeddings, id maps and a manifest from a checkpoint.

Example::

    socialmeta-export checkpoint=outputs/2026-11-24/18-47-04/best.pt normalize=true
    socialmeta-export checkpoint=... kind=adapted   # each user adapted on its own links
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from socialmeta.cli.common import ConfigError, dataset_from_config, run_hydra
from socialmeta.cli.train import build_model, inner_loop, split_from_config, task_config
from socialmeta.data import SocialGraph
from socialmeta.export import export_embeddings
from socialmeta.export.embeddings import KINDS, adapted_user_embeddings
from socialmeta.meta import meta_parameters
from socialmeta.train import load_checkpoint


def restore(checkpoint: str | Path) -> tuple[nn.Module, dict[str, torch.Tensor], SocialGraph,
                                              DictConfig]:
    r"""Rebuilds the graph, the model and its meta-parameters from a training
    checkpoint (loaded with ``weights_only=True``)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist")
    state = load_checkpoint(path)
    cfg = OmegaConf.create(state["config"])
    graph = dataset_from_config(cfg.dataset)
    model = build_model(cfg.model, graph, task_config(cfg.task, cfg.seed),
                        split_from_config(graph, cfg.split))
    params = meta_parameters(model, inner_loop(cfg.meta))
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state["params"][name])
    return model, params, graph, cfg


def export_command(cfg: DictConfig) -> dict[str, Any]:
    if cfg.kind not in KINDS:
        raise ConfigError(f"unknown kind {cfg.kind!r}; choose one of {list(KINDS)}")
    model, params, graph, run_cfg = restore(cfg.checkpoint)
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).parent / "export"
    users = None
    if cfg.kind == "adapted":
        from socialmeta.tasks import TaskSampler

        sampler = TaskSampler(graph, split_from_config(graph, run_cfg.split),
                              task_config(run_cfg.task, run_cfg.seed))
        users = adapted_user_embeddings(model, params, sampler, inner_loop(run_cfg.meta))
    try:
        manifest = export_embeddings(model, params, graph, out, normalize=cfg.normalize,
                                     checkpoint=str(cfg.checkpoint),
                                     formats=list(cfg.formats), chunk_size=cfg.chunk_size,
                                     users=users, kind=cfg.kind)
    except (ValueError, ImportError) as e:
        raise ConfigError(str(e)) from None
    print(f"wrote {manifest['users']} {manifest['kind']} user embeddings "
          f"(dim {manifest['dimension']}, "
          f"{manifest['normalization']}) and {manifest['items']} item embeddings to {out}: "
          + ", ".join(manifest["files"]))
    return manifest


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``socialmeta-export``."""
    run_hydra(export_command, "export", argv)


if __name__ == "__main__":
    main()
