"""socialmeta-ablate: a 2 x 2 sweep on a tiny graph, its report, skips and failures."""
import csv
import json

import pytest

from socialmeta.ablation import collect_runs, write_report
from socialmeta.cli.ablate import _is_sweep, ablations
from socialmeta.cli.ablate import main as ablate_main

PNG = b"\x89PNG\r\n\x1a\n"


def test_two_by_two_sweep_report_and_rerun(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    sweep = tmp_path / "tiny"
    ablate_main(["ablation=tiny", f"hydra.sweep.dir={sweep}"])
    runs = collect_runs(sweep)
    assert sorted((r.config, r.seed, r.status) for r in runs) == [
        ("meta=maml", "0", "done"), ("meta=maml", "1", "done"),
        ("meta=noadapt", "0", "done"), ("meta=noadapt", "1", "done")]
    rows = list(csv.DictReader(open(sweep / "ablation.csv")))
    assert [(r["config"], r["K"], r["seeds"]) for r in rows] == [
        ("meta=maml", "1", "2"), ("meta=maml", "3", "2"),
        ("meta=noadapt", "1", "2"), ("meta=noadapt", "3", "2")]
    # the csv's mean is the mean of the two seeds' test means
    per_seed = [json.loads((sweep / f"meta=maml,seed={s}" / "metrics.json").read_text())
                ["test"]["maml"]["3"]["recall@20"]["mean"] for s in (0, 1)]
    assert float(rows[1]["recall@20"]) == pytest.approx(sum(per_seed) / 2)
    for name in ("metric_vs_shots.png", "factor_meta.png"):
        assert (sweep / name).read_bytes()[:8] == PNG
    report = (sweep / "ablation.md").read_text()
    assert "## K = 3" in report and "| meta=noadapt | 2 |" in report and "**" in report
    # maml's runs also scored their checkpoint unadapted: the gain row is exact
    tests = [json.loads((sweep / f"meta=maml,seed={s}" / "metrics.json").read_text())["test"]
             for s in (0, 1)]
    gains = [t["maml"]["3"]["recall@20"]["mean"]
             - t["maml without test-time adaptation"]["3"]["recall@20"]["mean"] for t in tests]
    row = next(line for line in report.splitlines() if line.startswith("| meta=maml | 3 | 2 |"))
    assert row.endswith(f"| {sum(gains) / 2:+.4f} [{min(gains):+.4f}, {max(gains):+.4f}] |")
    assert "| meta=noadapt | 3 |" not in report.split("## Test-time adaptation")[1]
    # re-running the sweep skips the finished runs
    stamp = (sweep / "meta=maml,seed=0" / "metrics.json").stat().st_mtime_ns
    ablate_main(["ablation=tiny", f"hydra.sweep.dir={sweep}"])
    assert "already complete, skipped" in capsys.readouterr().out
    assert (sweep / "meta=maml,seed=0" / "metrics.json").stat().st_mtime_ns == stamp


def test_failed_runs_are_reported_not_dropped(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    sweep = tmp_path / "bad"
    ablate_main(["ablation=tiny", f"hydra.sweep.dir={sweep}", "meta=noadapt", "seed=0",
                 "meta.learner=noadapt,maml2"])
    runs = {r.factors["meta.learner"]: r for r in collect_runs(sweep)}
    assert runs["noadapt"].status == "done"
    assert runs["maml2"].status == "failed"
    assert "unknown learner 'maml2'" in runs["maml2"].error
    label = runs["maml2"].config
    report = (sweep / "ablation.md").read_text()
    assert f"| {label} | 0 | failed | ConfigError: unknown learner 'maml2'" in report
    rows = list(csv.DictReader(open(sweep / "ablation.csv")))
    assert {r["config"]: r["status"] for r in rows}[label] == "0/1 done, 1 failed"
    assert "2 runs (1 failed or unfinished)" in capsys.readouterr().out


def test_unknown_ablation_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        ablate_main(["ablation=nope"])
    err = capsys.readouterr().err
    assert "unknown ablation 'nope'" in err and "'tiny'" in err
    assert {"learner", "encoder", "lastfm_learner_shots"} <= set(ablations())


@pytest.mark.parametrize("override,sweep", [
    ("meta=maml,anil", True), ("seed=0", False), ("task.context=[],[items]", True),
    ("task.context=[friends,features]", False), ("task.context=[]", False),
    ("seed=range(3)", True), ("name='a,b'", False), ("x={a:1,b:2}", False),
    ("x={a:1},{a:2}", True), ('name="a,b",c', True)])
def test_is_sweep_finds_top_level_commas(override, sweep):
    """The sweep folder is composed from the overrides that are not sweeps: a list
    value is one value, a comma between lists is a sweep over them."""
    assert _is_sweep(override) is sweep


def test_report_of_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no runs"):
        write_report(tmp_path)


@pytest.mark.parametrize("name", ablations())
def test_every_ablation_composes_with_a_sweep(name):
    from hydra import compose, initialize_config_dir

    from socialmeta.cli.common import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"+ablation={name}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert cfg.skip_done and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweep.dir == f"ablations/{name}" and len(params) >= 2
    assert "seed" in params or name == "tiny"
    if name == "social":
        assert cfg.task.kind == "item"
    if name == "context":  # learner x context on lastfm friend tasks
        assert cfg.dataset.name == "lastfm" and cfg.task.kind == "friend"
        assert params["task.context"] == "[],[items]" and "protonet" in params.meta
    if name == "support_input":  # the support in the input or in the inner loop only
        assert cfg.task.kind == "item" and cfg.task.support_input is True
        assert params["task.support_input"] == "true,false" and "metasgd" in params.meta
    if name == "hybrid":  # the hybrid scorer's parts: each alone, each left out, all
        assert cfg.model.scorer == "hybrid" and cfg.dataset.name == "lastfm"
        parts = params["model.hybrid_parts"].split("],[")
        assert len(parts) == 7 and len(set(parts)) == 7
        assert params.meta == "maml,noadapt"
    if name == "lastfm_learner_shots":
        assert cfg.dataset.name == "lastfm" and "reptile" in params.meta


def test_sweep_runs_under_torchrun(tmp_path, capsys):
    """``--nproc-per-node=2``: each run of the sweep is a 2-process torchrun job in the
    folder the in-process sweep gives it (same names, so the report and the skips work
    alike); a run that fails to launch is recorded with torchrun's status."""
    pytest.importorskip("matplotlib")
    sweep = tmp_path / "tr"
    argv = ["--nproc-per-node=2", "ablation=tiny", f"hydra.sweep.dir={sweep}", "seed=0",
            "meta=maml", "meta.inner_steps=1,x"]
    ablate_main(argv)
    runs = {r.factors["meta.inner_steps"]: r for r in collect_runs(sweep)}
    assert runs["1"].status == "done" and runs["1"].folder.name == \
        "meta.inner_steps=1,meta=maml,seed=0"
    assert "rank 0 of 2 processes" in "".join(
        p.read_text() for p in runs["1"].folder.glob("*.log"))
    assert runs["x"].status == "failed" and "torchrun exited with status 1" in runs["x"].error
    assert "meta.inner_steps: expected an integer" in runs["x"].error   # the ranks' error
    assert "2 runs (1 failed or unfinished)" in capsys.readouterr().out
    ablate_main(argv)   # the finished run is skipped
    assert "done, skipped" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        ablate_main(["--nproc-per-node=0", "ablation=tiny"])


def test_ablate_help_lists_every_ablation(capsys):
    from socialmeta.cli.ablate import ablations
    from socialmeta.cli.ablate import main as ablate_main

    ablate_main(["--help"])   # returns: exit status 0
    out = capsys.readouterr().out
    assert out.startswith("`socialmeta-ablate`: run an ablation sweep")
    for name in ablations():
        assert f"\n  {name} " in out, name
    assert "recorded" not in ablations()   # the shared include is not an ablation


def test_a_one_seed_report_has_no_nan_intervals():
    import math

    from socialmeta.ablation import METRICS, _markdown

    row = {"config": "meta=maml", "K": 3, "seeds": 1,
           **{m: 0.25 for m in METRICS}, **{f"{m}_ci95": math.nan for m in METRICS}}
    two = {**row, "config": "meta=anil", "seeds": 2, **{f"{m}_ci95": 0.01 for m in METRICS}}
    report = _markdown([row, two], [], "tiny")
    assert "nan" not in report
    assert "| meta=maml | 1 | **0.2500** |" in report
    assert "| meta=anil | 2 | **0.2500 ± 0.0100** |" in report
