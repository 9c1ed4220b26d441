"""``socialmeta-export``: embeddings, id maps and a manifest from a checkpoint.

Example::

    socialmeta-export checkpoint=outputs/2026-11-24/18-47-04/best.pt normalize=true
    socialmeta-export checkpoint=... kind=adapted   # each user adapted on its own links
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from socialmeta.cli.common import ConfigError, run_hydra


def export_command(cfg: DictConfig) -> dict[str, Any]:
    from socialmeta.experiment import Experiment
    from socialmeta.export import export_embeddings
    from socialmeta.export.embeddings import KINDS, adapted_user_embeddings

    if cfg.kind not in KINDS:
        raise ConfigError(f"unknown kind {cfg.kind!r}; choose one of {list(KINDS)}")
    exp = Experiment.from_checkpoint(cfg.checkpoint,
                                     allow_other_data=cfg.get("allow_other_data", False))
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).parent / "export"
    users = None
    if cfg.kind == "adapted":
        users = adapted_user_embeddings(exp.model, exp.params, exp.sampler, exp.inner)
    try:
        manifest = export_embeddings(exp.model, exp.params, exp.graph, out,
                                     normalize=cfg.normalize, checkpoint=str(cfg.checkpoint),
                                     formats=list(cfg.formats), chunk_size=cfg.chunk_size,
                                     users=users, kind=cfg.kind,
                                     feature_scaling=exp.feature_scaling)
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
