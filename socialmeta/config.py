"""Run configurations without the command line: the packaged Hydra configs, composed
and checked, and the one error type for a bad configuration value.

Only this module and :mod:`socialmeta.experiment` read a ``DictConfig``; ``models/``,
``meta/``, ``tasks/`` and ``data/`` take plain arguments.

Example:
    >>> from socialmeta.config import compose
    >>> cfg = compose("train", ["meta=anil", "train.steps=20"])
    >>> cfg.meta.learner, cfg.train.steps
    ('anil', 20)
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from socialmeta.errors import InputError

_MISSING = object()


class ConfigError(InputError):
    """A configuration value is invalid (the message names the key and what it takes)."""


def choose(registry: Mapping[str, Any], name: str, what: str) -> Any:
    """``registry[name]``, or a :class:`ConfigError` listing the valid names."""
    if name not in registry:
        raise ConfigError(f"unknown {what} {name!r}; choose one of {sorted(registry)}")
    return registry[name]


def config_dir() -> str:
    """The ``configs/`` folder: inside the installed package, else the source tree."""
    installed = Path(__file__).resolve().parent / "configs"
    if installed.is_dir():
        return str(installed)
    return str(Path(__file__).resolve().parents[1] / "configs")


def _one_line(error: BaseException) -> str:
    """Hydra's multi-line messages as one line: ``In 'train': Could not find
    'meta/mamll'`` plus its "Available options" list, without the search path."""
    text = str(error).split("Config search path")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    head, options = lines[:1], lines[1:]
    if options and options[0].startswith("Available options in"):
        group = options[0].split("'")[1]
        return f"{head[0]}; choose one of the {group} options {options[1:]}"
    return "; ".join(lines)


def _compose_raw(config_name: str, overrides: Sequence[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides))


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, ListConfig)):
        return "a list"
    return type(value).__name__


def _same_type(default: Any, value: Any) -> bool:
    """Whether :obj:`value` may replace :obj:`default` (an int where a float is
    expected is fine; a bool is no number)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, ListConfig)):
        if not isinstance(value, (list, ListConfig)):
            return False
        if len(default) and all(isinstance(d, int) and not isinstance(d, bool)
                                for d in default):
            return all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return True
    return isinstance(value, type(default))


def _plain(value: Any) -> Any:
    """A config value as plain Python (lists as lists), for messages."""
    return OmegaConf.to_container(value) if isinstance(value, ListConfig) else value


def _check_override_types(config_name: str, overrides: Sequence[str], full: DictConfig
                          ) -> None:
    """Each ``key=value`` override must have the type of the packaged default it
    replaces (defaults of ``null`` take anything; a string default is checked against
    its choices where it is used, e.g. ``eval.baselines`` takes ``all`` or a list)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    values = [(o, text) for o, text in zip(parsed, overrides)
              if not o.is_delete() and not o.is_add()
              and not isinstance(OmegaConf.select(full, o.key_or_group, default=None),
                                 DictConfig)]
    if not values:
        return
    base = _compose_raw(config_name, [t for o, t in zip(parsed, overrides)
                                      if all(o is not v for v, _ in values)])
    for override, _ in values:
        key = override.key_or_group
        if key.startswith("hydra."):
            continue
        value = OmegaConf.select(full, key, default=None)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value}")
        default = OmegaConf.select(base, key, default=_MISSING)
        if default is _MISSING or default is None or isinstance(default, str):
            continue  # strings are checked against their choices where they are used
        value = OmegaConf.select(full, key)
        if value is not None and not _same_type(default, value):
            raise ConfigError(f"{key}: expected {_type_name(default)} like the default "
                              f"{_plain(default)!r}, got {_plain(value)!r}")


def _unknown_key_message(config_name: str, overrides: Sequence[str], message: str) -> str:
    match = re.search(r"Could not override '([^']+)'", message)
    if not match:
        return message
    key = match.group(1)
    others = [o for o in overrides if not o.lstrip("~+").startswith(f"{key}=")]
    parent, _, leaf = key.rpartition(".")
    try:
        base = _compose_raw(config_name, others)
    except Exception:  # the other overrides are broken too: report this one plainly
        return f"unknown key {key!r}"
    node = OmegaConf.select(base, parent) if parent else base
    if isinstance(node, DictConfig):
        return (f"unknown key {key!r}; {parent or 'the config'} has keys "
                f"{sorted(str(k) for k in node.keys())}")
    return f"unknown key {key!r}"


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    r"""Composes the packaged config :obj:`config_name` (``train``, ``eval``, ...) with
    command-line style :obj:`overrides`, as the ``socialmeta-*`` commands do.

    Raises:
        ConfigError: One line for an unknown config group option (``meta=mamll``), an
            unknown key (``train.stepz=5``) or a value of the wrong type
            (``train.lr=abc``), naming the choices, the keys or the expected type.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        full = _compose_raw(config_name, overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_unknown_key_message(config_name, overrides, _one_line(e))
                          ) from None
    _check_override_types(config_name, overrides, full)
    missing = sorted(OmegaConf.missing_keys(full))
    if missing:
        raise ConfigError(f"{missing[0]} is required (no default): add {missing[0]}=... to "
                          "the command line")
    return full


def as_config(config: DictConfig | Mapping[str, Any]) -> DictConfig:
    """:obj:`config` as a ``DictConfig`` (a plain mapping is converted)."""
    return config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))
