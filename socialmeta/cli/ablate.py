"""``socialmeta-ablate``: run an ablation sweep, then write its report.

Examples::

    socialmeta-ablate ablation=learner                 # configs/ablation/learner.yaml
    socialmeta-ablate ablation=lastfm_learner_shots dataset.root=../shared/datasets/hetrec-lastfm-2k
    socialmeta-ablate ablation=encoder hydra/launcher=joblib   # parallel (hydra-joblib-launcher)

An ablation file declares its sweep (``hydra.sweeper.params``) and its folder
(``ablations/<name>``). Runs that already finished are skipped, so re-running a sweep
only does what is missing; a failed run is recorded (``failed.json``) and shows in
the report as failed, with its error. ``tools/ablation_report.py DIR`` writes the
report alone.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir

from socialmeta.ablation import write_report
from socialmeta.cli.common import _is_sweep, config_dir, run_hydra
from socialmeta.cli.train import train_command


def ablations() -> list[str]:
    return sorted(p.stem for p in (Path(config_dir()) / "ablation").glob("*.yaml"))


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``socialmeta-ablate``."""
    args = list(sys.argv[1:] if argv is None else argv)
    names = [a.split("=", 1)[1] for a in args if a.startswith("ablation=")]
    if len(names) != 1 or names[0] not in ablations():
        given = names[0] if names else None
        print(f"error: unknown ablation {given!r}; choose one of {ablations()} "
              "(socialmeta-ablate ablation=NAME [overrides...])", file=sys.stderr)
        sys.exit(2)
    overrides = [f"+ablation={names[0]}"] + [a for a in args if not a.startswith("ablation=")]
    # the sweep folder, from the overrides that are not sweeps themselves
    single = [o for o in overrides if not _is_sweep(o)]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=single, return_hydra_config=True)
    sweep_dir = Path(cfg.hydra.sweep.dir)
    run_hydra(train_command, "train", overrides)
    report = write_report(sweep_dir)
    runs = report["runs"]
    failed = sum(r.status != "done" for r in runs)
    print(f"{len(runs)} runs ({failed} failed or unfinished); report: "
          + ", ".join(str(f) for f in report["files"]))


if __name__ == "__main__":
    main()
