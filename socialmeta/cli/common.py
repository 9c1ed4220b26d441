"""Shared plumbing of the Hydra entry points."""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

import socialmeta
from socialmeta.data import DATASETS, GraphValidationError, SocialGraph, load_dataset


def config_dir() -> str:
    """The ``configs/`` folder: inside the installed package, else the source tree."""
    installed = Path(socialmeta.__file__).resolve().parent / "configs"
    if installed.is_dir():
        return str(installed)
    return str(Path(__file__).resolve().parents[2] / "configs")


class ConfigError(ValueError):
    """A configuration value is invalid (the message lists the valid choices)."""


def choose(registry: dict[str, Any], name: str, what: str) -> Any:
    """``registry[name]``, or a :class:`ConfigError` listing the valid names."""
    if name not in registry:
        raise ConfigError(f"unknown {what} {name!r}; choose one of {sorted(registry)}")
    return registry[name]


def dataset_from_config(cfg: DictConfig) -> SocialGraph:
    r"""Loads the graph that a ``dataset`` config group entry describes."""
    options = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(options, dict)
    name = options.pop("name")
    use_features = options.pop("features", True)
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
    graph = load_dataset(name, **kwargs, **options)
    if not use_features:  # the ablation "without user features"
        graph["user"].x = graph["user"].x[:, :0]
        graph.feature_names = []
    return graph


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _record_failure(error: BaseException) -> None:
    """Writes ``failed.json`` (error type, message, traceback) into the run's folder."""
    import json
    import traceback

    from hydra.core.hydra_config import HydraConfig

    from socialmeta.data import atomic_write

    out = Path(HydraConfig.get().runtime.output_dir)
    message = f"{type(error).__name__}: {error}"
    print(f"error in {out}: {message}", file=sys.stderr)
    with atomic_write(out / "failed.json", "w") as f:
        json.dump({"error": message, "traceback": traceback.format_exc()}, f, indent=2)


def run_hydra(task: Callable[[DictConfig], Any], config_name: str,
              argv: Sequence[str] | None, commands: Sequence[str] = ()) -> None:
    r"""Runs :obj:`task` as a Hydra app with :obj:`argv` as overrides.

    A leading word that is one of :obj:`commands` becomes ``command=<word>``. Errors in
    the user's input (:class:`GraphValidationError`, :class:`ConfigError`) print one
    clear line and exit with status 2 instead of a traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in commands:
        args = [f"command={args[0]}"] + args[1:]

    @functools.wraps(task)
    def guarded(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as e:
            if _in_sweep():  # one failed run of a sweep: record it, go on with the rest
                _record_failure(e)
                return None
            if isinstance(e, (GraphValidationError, ConfigError)):
                print(f"error: {e}", file=sys.stderr)
                sys.exit(2)
            raise

    app = hydra.main(config_path=config_dir(), config_name=config_name,
                     version_base="1.3")(guarded)
    saved = sys.argv
    sys.argv = [saved[0]] + args
    try:
        app()
    finally:
        sys.argv = saved
