"""``socialmeta-data``: describe datasets.

Examples::

    socialmeta-data info                                  # the synthetic default
    socialmeta-data info dataset=lastfm dataset.root=DIR output=json
    socialmeta-data list
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from socialmeta.cli.common import ConfigError, run_hydra
from socialmeta.data.catalog import DESCRIPTIONS

COMMANDS = ("info", "list")


def format_info(info: dict[str, Any]) -> str:
    """Human-readable ``key: value`` lines (nested dicts on one line)."""
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            value = "  ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        lines.append(f"{key:>26}: {value}")
    return "\n".join(lines)


def data_command(cfg: DictConfig) -> dict[str, Any] | None:
    if cfg.command == "list":
        for name, description in DESCRIPTIONS.items():
            print(f"{name:>14}  {description}")
        return None
    if cfg.command != "info":
        raise ConfigError(f"unknown command {cfg.command!r}; choose one of {list(COMMANDS)}")
    if cfg.output not in ("table", "json"):
        raise ConfigError(f"unknown output {cfg.output!r}; choose one of ['json', 'table']")
    from socialmeta.data import graph_info
    from socialmeta.experiment import dataset_from_config

    info = graph_info(dataset_from_config(cfg.dataset), top_k=cfg.top_k)
    print(json.dumps(info, indent=2) if cfg.output == "json" else format_info(info))
    return info


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``socialmeta-data``."""
    run_hydra(data_command, "data", argv, COMMANDS)


if __name__ == "__main__":
    main()
