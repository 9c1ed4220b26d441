"""``socialmeta-ablate``: run an ablation sweep, then write its report.

Examples::

    socialmeta-ablate ablation=learner                 # configs/ablation/learner.yaml
    socialmeta-ablate ablation=lastfm_learner_shots dataset.root=../shared/datasets/hetrec-lastfm-2k
    socialmeta-ablate ablation=encoder hydra/launcher=joblib   # parallel (hydra-joblib-launcher)
    socialmeta-ablate --nproc-per-node=2 ablation=learner       # each run under torchrun

With ``--nproc-per-node=N`` every run of the sweep is launched, one after the other,
as ``python -m torch.distributed.run --standalone --nproc_per_node=N -m
socialmeta.cli.train <the run's overrides>`` into the folder the sweep would give it
(the ranks share each meta-batch, see docs/guide.md "Several processes"); a run whose
launch fails gets a ``failed.json`` with torchrun's exit status and its last lines.

An ablation file declares its sweep (``hydra.sweeper.params``) and its folder
(``ablations/<name>``). Runs that already finished are skipped, so re-running a sweep
only does what is missing; a failed run is recorded (``failed.json``) and shows in
the report as failed, with its error. ``tools/ablation_report.py DIR`` writes the
report alone.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir

from socialmeta.ablation import write_report
from socialmeta.cli.common import _is_sweep, config_dir, run_hydra
from socialmeta.cli.train import train_command


def ablations() -> list[str]:
    return sorted(p.stem for p in (Path(config_dir()) / "ablation").glob("*.yaml"))


NPROC_FLAG = "--nproc-per-node"


def _nproc(args: list[str]) -> tuple[int | None, list[str]]:
    """``--nproc-per-node=N`` (or ``--nproc-per-node N``) taken out of :obj:`args`."""
    rest, nproc = [], None
    it = iter(args)
    for a in it:
        if a == NPROC_FLAG or a.startswith(NPROC_FLAG + "="):
            value = a.partition("=")[2] if "=" in a else next(it, "")
            if not value.isdigit() or int(value) < 1:
                print(f"error: {NPROC_FLAG} expects a positive integer, got {value!r}",
                      file=sys.stderr)
                sys.exit(2)
            nproc = int(value)
        else:
            rest.append(a)
    return nproc, rest


def sweep_jobs(overrides: Sequence[str]) -> list[tuple[list[str], Path]]:
    r"""The runs of a sweep as Hydra's basic sweeper would make them: each run's
    overrides (the sweep's ``hydra.sweeper.params`` crossed with the command line's,
    which win on a shared key) and its folder (``hydra.sweep.dir`` /
    ``hydra.sweep.subdir``; the run's number where the subdir is Hydra's default)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    single = [o for o in overrides if not _is_sweep(o)]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=single, return_hydra_config=True)
        given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
        params = dict(cfg.hydra.sweeper.get("params") or {})
        merged = list(overrides) + [f"{k}={v}" for k, v in params.items() if k not in given]
        parsed = OverridesParser.create().parse_overrides(merged)
        jobs = []
        for num, job in enumerate(BasicSweeper.split_arguments(parsed, None)[0]):
            run = compose("train", overrides=job, return_hydra_config=True)
            try:
                subdir = str(run.hydra.sweep.subdir)
            except Exception:   # ${hydra.job.num}: set by Hydra's launcher only
                subdir = str(num)
            jobs.append((list(job), Path(run.hydra.sweep.dir) / subdir))
    return jobs


def launch_torchrun(jobs: list[tuple[list[str], Path]], nproc: int) -> None:
    """Runs every job of :func:`sweep_jobs` under torchrun with :obj:`nproc` processes,
    one job at a time; finished runs (``metrics.json``) are skipped."""
    from socialmeta.data import atomic_write

    for i, (job, folder) in enumerate(jobs, start=1):
        if (folder / "metrics.json").is_file():
            print(f"[{i}/{len(jobs)}] {folder}: done, skipped", flush=True)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={nproc}", "-m", "socialmeta.cli.train", *job,
                   # quoted: a sweep's folder names hold '=' and ','
                   "hydra.mode=RUN", f"hydra.run.dir='{folder}'"]
        print(f"[{i}/{len(jobs)}] {' '.join(job)} -> {folder}", flush=True)
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True)
        sys.stderr.write(done.stderr)
        if done.returncode != 0 and not (folder / "failed.json").is_file():
            lines = [ln for ln in done.stderr.strip().splitlines()
                     if ln.startswith("error")] or done.stderr.strip().splitlines()[-3:]
            with atomic_write(folder / "failed.json", "w") as f:
                json.dump({"error": f"torchrun exited with status {done.returncode}: "
                                    + " ".join(dict.fromkeys(lines))}, f, indent=2)
            recorded = folder / ".hydra" / "overrides.yaml"
            if not recorded.is_file():   # it failed before Hydra wrote it: the report
                recorded.parent.mkdir(exist_ok=True)   # lists the run all the same
                with atomic_write(recorded, "w") as f:
                    f.write("".join(f"- {o}\n" for o in job if not o.startswith("hydra.")))


def _help() -> str:
    """The module's description and every ablation with the first line of its file."""
    lines = [__doc__.strip().replace("``", "`"), "", "Ablations (configs/ablation/):"]
    for name in ablations():
        text = (Path(config_dir()) / "ablation" / f"{name}.yaml").read_text().splitlines()
        about = next((line.lstrip("# ").strip() for line in text
                      if line.startswith("# ") and "@package" not in line), "")
        lines.append(f"  {name:22s} {about}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``socialmeta-ablate``."""
    nproc, args = _nproc(list(sys.argv[1:] if argv is None else argv))
    if any(a in ("-h", "--help") for a in args):
        print(_help())
        return
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
    if nproc is None:
        run_hydra(train_command, "train", overrides)
    else:
        launch_torchrun(sweep_jobs(overrides), nproc)
    report = write_report(sweep_dir)
    runs = report["runs"]
    failed = sum(r.status != "done" for r in runs)
    print(f"{len(runs)} runs ({failed} failed or unfinished); report: "
          + ", ".join(str(f) for f in report["files"]))


if __name__ == "__main__":
    main()
