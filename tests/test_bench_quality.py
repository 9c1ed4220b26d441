"""tools/bench_quality.py --quick: the benchmark's smoke run and its report."""
import csv
import json


def test_quick_run_writes_csv_and_report(tmp_path, load_tool):
    tool = load_tool("bench_quality")
    out, md = tmp_path / "q", tmp_path / "results.md"
    tool.main(["--quick", "--out", str(out), "--md", str(md)])
    rows = list(csv.DictReader(open(out / "results.csv")))
    methods = {r["method"] for r in rows}
    assert {"hybrid-maml", "hybrid-noadapt", "baseline-ppr", "baseline-adamic_adar"} <= methods
    assert all(r["K"] == "3" and r["cell"] == "synthetic:friend" for r in rows)
    assert all(0 <= float(r["recall@20"]) <= 1 for r in rows)
    report = md.read_text()
    assert "## synthetic:friend" in report and "| ppr | 30 |" in report
    assert "| hybrid-noadapt (non-meta GNN) | 30 |" in report
    assert "`lastfm:friend`: not run yet." in report
    # maml adapts: its run records the unadapted scores too; noadapt does not
    maml = json.loads((out / "synthetic-friend" / "seed0" / "hybrid-maml" / "metrics.json").read_text())
    assert set(maml["unadapted"]["3"]) >= {"recall@20"}
    noadapt = out / "synthetic-friend" / "seed0" / "hybrid-noadapt" / "metrics.json"
    assert "unadapted" not in json.loads(noadapt.read_text())
    gain = maml["test"]["3"]["recall@20"]["mean"] - maml["unadapted"]["3"]["recall@20"]["mean"]
    assert "| synthetic:friend | hybrid-maml | recall@20 | 1 |" in report and f"{gain:+.4f} [" in report
    assert "| synthetic:friend | hybrid-noadapt |" not in report
    # a second run skips every finished run and reproduces the same table
    mtime = (out / "synthetic-friend" / "seed0" / "hybrid-maml" / "metrics.json").stat().st_mtime
    tool.main(["--quick", "--out", str(out), "--md", str(md)])
    assert (out / "synthetic-friend" / "seed0" / "hybrid-maml" / "metrics.json").stat().st_mtime == mtime
    assert md.read_text() == report


def test_summary_interval_and_verdict(load_tool):
    tool = load_tool("bench_quality")
    rows = [{"cell": "lastfm:friend", "seed": s, "method": m, "K": 3, "users": 100,
             "error": "", "recall@10": v, "ndcg@10": v, "recall@20": v, "ndcg@20": v}
            for s, (a, b) in enumerate([(0.30, 0.20), (0.32, 0.22), (0.34, 0.24)])
            for m, v in (("maml", a), ("baseline-ppr", b))]
    summary = tool.summarise(rows)
    mean, half, n = summary[("lastfm:friend", "maml", 3)]["recall@20"]
    # mean 0.32, sd 0.02, t(2) = 4.303: half-width 4.303 * 0.02 / sqrt(3)
    assert abs(mean - 0.32) < 1e-12 and n == 3
    assert abs(half - 4.303 * 0.02 / 3 ** 0.5) < 1e-9
    (line,) = tool.verdicts(summary, ["lastfm:friend"])
    assert "+45.5% relative" in line and "**met**" in line
    assert "`maml` 0.3200 (3 seeds)" in line and "`ppr` 0.2200 (3 seeds)" in line
    rows.append({"cell": "lastfm:friend", "seed": 0, "method": "metasgd", "K": None,
                 "error": "RuntimeError: boom"})
    assert "| lastfm:friend | 0 | metasgd | RuntimeError: boom |" in tool.markdown(rows, "cmd", "m")


def test_verdict_also_chooses_each_side_on_validation_users(load_tool, tmp_path):
    tool = load_tool("bench_quality")
    # maml is best on test, anil on validation; ppr is best on test, a non-meta GNN
    # (which counts as a baseline) on validation
    runs = {"maml": (0.30, 0.20), "anil": (0.25, 0.22), "baseline-ppr": (0.28, None),
            "noadapt": (0.20, 0.21)}
    for seed in range(2):
        for method, (test, val) in runs.items():
            data = {"test": {"3": {m: {"mean": test, "ci95": 0.0, "users": 10}
                                   for m in tool.METRICS}}}
            data |= ({"best_val": val} if val is not None
                     else {"val_trials": [[{"a": 1}, 0.10], [{"a": 2}, 0.19 + seed * 0.02]]})
            path = tmp_path / "lastfm-friend" / f"seed{seed}" / method / "metrics.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(data))
    summary = tool.summarise(tool.collect(tmp_path))
    assert abs(summary[("lastfm:friend", "baseline-ppr", 3)]["val"] - 0.20) < 1e-12
    (line,) = tool.verdicts(summary, ["lastfm:friend"])
    assert "best meta-learner `maml` 0.3000" in line and "best baseline `ppr` 0.2800" in line
    assert ("Each side chosen on validation users instead: `anil` 0.2500 vs "
            "`noadapt (non-meta GNN)` 0.2000 (+25.0%).") in line


def test_plain_summary_sorts_cells_into_ahead_level_behind(load_tool):
    tool = load_tool("bench_quality")

    def rows(cell, meta, base):
        return [{"cell": cell, "seed": s, "method": m, "K": 3, "users": 50, "error": "",
                 "recall@10": v, "ndcg@10": v, "recall@20": v, "ndcg@20": v}
                for s, (a, b) in enumerate(zip(meta, base))
                for m, v in (("protonet", a), ("finetune", b))]

    summary = tool.summarise(rows("a:friend", [0.50, 0.52, 0.54], [0.30, 0.31, 0.32])
                             + rows("b:item", [0.20, 0.30, 0.25], [0.26, 0.24, 0.28])
                             + rows("c:interest", [0.40], [0.40]))
    text = "\n".join(tool.plain_summary(summary, ["a:friend", "b:item", "c:interest"]))
    assert "ahead in 1 of 3 cells, level in 1 and behind in 1" in text
    ahead, level, behind = (text.split("* Ahead:")[1].split("* Level:")[0],
                            text.split("* Level:")[1].split("* Behind:")[0],
                            text.split("* Behind:")[1])
    # finetune is the non-meta GNN: the baseline side
    assert "`a:friend` (recall@20): `protonet` 0.5200 vs `finetune (non-meta GNN)` " \
           "0.3100 (+67.7%, beyond the intervals)" in ahead
    # an interest cell whose runs predate mAP is judged on Recall@20
    assert "`c:interest` (recall@20)" in level and "one seed on a side" in level
    assert "`b:item` (recall@20): `protonet` 0.2500 vs `finetune (non-meta GNN)` 0.2600 " \
           "(-3.8%, within the intervals over seeds)" in behind


def test_interest_cells_are_judged_on_map(load_tool, tmp_path):
    """Interest cells report cut-offs below the label count, mAP and R-precision; their
    verdict compares mAP (Recall@20 is 1 by construction below 20 labels)."""
    tool = load_tool("bench_quality")
    runs = {"maml": 0.60, "baseline-label_propagation": 0.50}
    for method, value in runs.items():
        metrics = {m: {"mean": 1.0, "ci95": 0.0, "users": 10} for m in tool.METRICS}
        metrics |= {m: {"mean": value, "ci95": 0.0, "users": 10}
                    for m in tool.INTEREST_METRICS}
        path = tmp_path / "x-interest" / "seed0" / method / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"test": {"3": metrics}, "best_val": 0.5}))
    summary = tool.summarise(tool.collect(tmp_path))
    assert tool.verdict_metric("x:interest", summary) == "map"
    assert tool.verdict_metric("x:friend", summary) == "recall@20"
    (line,) = tool.verdicts(summary, ["x:interest"])
    assert "K=3 map: best meta-learner `maml` 0.6000" in line and "+20.0%" in line
    # the adaptation row of an interest cell compares mAP too
    maml = tmp_path / "x-interest" / "seed0" / "maml" / "metrics.json"
    data = json.loads(maml.read_text())
    data["unadapted"] = {"3": {m: {"mean": 0.55, "ci95": 0.0, "users": 10}
                               for m in (*tool.METRICS, *tool.INTEREST_METRICS)}}
    maml.write_text(json.dumps(data))
    text = tool.markdown(tool.collect(tmp_path), "cmd", "m")
    assert "| method | users | recall@1 | ndcg@1 | recall@5 | ndcg@5 | map | rprec | " \
           "recall@20 |" in text
    assert "| x:interest | maml | map | 1 | 0.6000 | 0.5500 | +0.0500" in text


def test_learner_tuning_never_evaluates_test_users(tmp_path, load_tool):
    tool = load_tool("tune_learners")
    assert tool.grid_points(["a=1,2", "b=x"]) == [["a=1", "b=x"], ["a=2", "b=x"]]
    out, md = tmp_path / "t", tmp_path / "tuning.md"
    tool.main(["--quick", "--cells", "synthetic:friend", "--learners", "maml", "--seeds", "0",
               "1", "--grid", "meta.inner_lr=0.01,0.1", "--out", str(out), "--md", str(md)])
    rows = tool.collect(out)
    assert len(rows) == 4 and all(0 <= r["best_val"] <= 1 for r in rows)
    assert sorted((r["seed"], r["point"][0]) for r in rows) == [
        (0, "meta.inner_lr=0.01"), (0, "meta.inner_lr=0.1"),
        (1, "meta.inner_lr=0.01"), (1, "meta.inner_lr=0.1")]
    for r in rows:  # the training runs' own metrics hold no test numbers
        run = (out / f"seed{r['seed']}" / "synthetic-friend" / "maml"
               / tool.point_dir(r["point"]) / "run")
        assert json.loads((run / "metrics.json").read_text())["test"] == {}
    merged = tool.points(rows)
    assert len(merged) == 2
    for m in merged:  # the mean over the two seeds
        values = [r["best_val"] for r in rows if r["point"] == m["point"]]
        assert abs(m["best_val"] - sum(values) / 2) < 1e-12
    report = md.read_text()
    best = max(merged, key=lambda r: r["best_val"])["point"][0].split("=")[1]
    assert "## synthetic:friend · maml" in report and f"  inner_lr: {best}" in report


def test_adaptation_table_by_hand(load_tool):
    tool = load_tool("bench_quality")
    rows = [{"cell": "lastfm:item", "seed": s, "method": "maml", "K": 3, "recall@20": a,
             "adapted": a, "unadapted": u, "adapt_metric": "recall@20"}
            for s, (a, u) in enumerate([(0.17, 0.16), (0.18, 0.19)])]
    rows += [{"cell": "lastfm:item", "seed": 0, "method": "noadapt", "K": 3,
              "recall@20": 0.2},
             {"cell": "lastfm:item", "seed": 0, "method": "maml", "K": 1, "recall@20": 0.1,
              "adapted": 0.1, "unadapted": 0.0, "adapt_metric": "recall@20"}]
    lines = tool.adaptation_table(rows)
    (row,) = [line for line in lines if line.startswith("| lastfm:item")]
    # gains +0.01 and -0.01: mean 0, range [-0.01, +0.01]; K=1 and noadapt left out
    assert row == ("| lastfm:item | maml | recall@20 | 2 | 0.1750 | 0.1750 | "
                   "+0.0000 [-0.0100, +0.0100] |")
    assert tool.adaptation_table(rows[2:3]) == []


def test_meta_objective_table_pairs_seeds_within_a_scorer(load_tool):
    """The meta-objective's worth: per scorer, the validation-best meta-learner minus the
    validation-best non-meta twin of the same scorer, per seed; test scores never choose."""
    tool = load_tool("bench_quality")
    # (method, val, test per seed): maml wins on validation, anil on test; finetune wins
    # on validation. The hybrid has only a meta side, so it gets no row.
    runs = [("maml", 0.30, [0.20, 0.22, 0.24]), ("anil", 0.10, [0.50, 0.50, 0.50]),
            ("finetune", 0.25, [0.18, 0.21, 0.21]), ("noadapt", 0.20, [0.90, 0.90, 0.90]),
            ("hybrid-maml", 0.40, [0.30, 0.30, 0.30]),
            ("baseline-ppr", 0.99, [0.99, 0.99, 0.99])]
    rows = [{"cell": "lastfm:friend", "seed": s, "method": m, "K": 3, "users": 10,
             "val": val, "error": "", **{x: t for x in tool.ALL_METRICS}}
            for m, val, tests in runs for s, t in enumerate(tests)]
    # finetune lacks seed 2 on K=3: the difference uses the seeds both ran
    rows = [r for r in rows if not (r["method"] == "finetune" and r["seed"] == 2)]
    summary = tool.summarise(rows)
    lines = tool.meta_objective_table(rows, summary, ["lastfm:friend"])
    (row,) = [line for line in lines if line.startswith("| lastfm:friend")]
    # differences 0.02 and 0.01: mean 0.015, t(1) = 12.706 * sd 0.00707 / sqrt(2) = 0.0635
    assert row.startswith("| lastfm:friend | egonet | recall@20 | `maml` | 0.2200 | "
                          "`finetune` | 0.1950 | +0.0150 [-0.0485, +0.0785] | 2 |")
    rows += [{**r, "method": "hybrid-noadapt", "val": 0.1, "recall@20": 0.28}
             for r in rows if r["method"] == "hybrid-maml"]
    lines = tool.meta_objective_table(rows, tool.summarise(rows), ["lastfm:friend"])
    (hybrid,) = [line for line in lines if "| hybrid |" in line]
    assert "`hybrid-maml` | 0.3000 | `hybrid-noadapt` | 0.2800 | +0.0200 [+0.0200, +0.0200] | 3" \
        in hybrid
    assert tool.meta_objective_table(rows, summary, ["ego_facebook:friend"]) == []


def test_scorer_cells_and_overrides(tmp_path, load_tool):
    tool = load_tool("bench_quality")
    root = tmp_path / "mycsv"
    root.mkdir()
    docs = tool.REPO / "docs" / "results.md"
    before = docs.stat().st_mtime
    # no --md: only the CSV is written, docs/results.md is left alone
    tool.main(["--report-only", "--out", str(tmp_path / "q"), "--cell-root", f"csv={root}",
               "--override", "train.steps=7"])
    assert (tmp_path / "q" / "results.csv").is_file() and docs.stat().st_mtime == before
    over = tool._overrides("csv:friend", 2, False, [3])
    assert over[:2] == ["dataset=csv", "task=friend"] and f"dataset.root={root}" in over
    assert over[-1] == "train.steps=7" and "split.seed=2" in over
    assert tool._overrides("lastfm:friend", 0, False, [3])[0] == "experiment=lastfm_friend"
    tool.EXTRA.update(roots={}, overrides=[])
    assert tool.method_name("maml", "hybrid") == "hybrid-maml"
    assert tool.method_name("maml") == "maml"
    assert tool._is_meta("hybrid-maml") and not tool._is_meta("hybrid-noadapt")
    assert tool._name("hybrid-finetune") == "hybrid-finetune (non-meta GNN)"


def test_ciaodvd_cells_compose_to_their_protocols(load_tool, ciaodvd_root, ciaodvd):
    """The new cells build the runs they name: new users with trust as context, the
    temporal (drift) protocol with the history as context, and new movies by date."""
    from socialmeta.config import compose
    from socialmeta.experiment import graph_for_task, split_from_config, task_config
    from socialmeta.tasks import ItemSplit, TemporalSplit

    tool = load_tool("bench_quality")
    tool.EXTRA["roots"] = {"ciaodvd": ciaodvd_root}
    try:
        plain = compose("train", tool._overrides("ciaodvd:item", 1, False, [3]))
        drift = compose("train", tool._overrides("ciaodvd:item:temporal", 1, False, [3]))
    finally:
        tool.EXTRA["roots"] = {}
    assert plain.task.protocol == "random" and list(plain.task.context) == ["friends"]
    assert drift.task.protocol == "temporal" and drift.task.temporal_users == "warm"
    assert list(drift.task.context) == ["friends", "history"] == tool.cell_context(
        "ciaodvd:item:temporal")
    assert drift.dataset.name == "ciaodvd" and drift.seed == drift.split.seed == 1
    task = task_config(drift.task, drift.seed)
    split = split_from_config(ciaodvd, drift.split, task)
    assert isinstance(split, TemporalSplit) and split.mode == "warm"
    # the new-item cell by date: the same cut, the new item's content as its context
    tool.EXTRA["roots"] = {"ciaodvd": ciaodvd_root}
    try:
        dated = compose("train", tool._overrides("ciaodvd:new_item:temporal", 1, False, [3]))
    finally:
        tool.EXTRA["roots"] = {}
    assert dated.task.kind == "new_item" and dated.task.protocol == "temporal"
    assert list(dated.task.context) == ["features"] == tool.cell_context(
        "ciaodvd:new_item:temporal")
    task = task_config(dated.task, dated.seed)
    view = graph_for_task(ciaodvd, task)
    items = split_from_config(view, dated.split, task)
    assert isinstance(items, ItemSplit) and items.cut == split.cut


def test_new_item_cells_build_item_tasks_on_the_adoption_graph(load_tool, ciaodvd_root,
                                                                lastfm_root):
    from socialmeta.config import compose
    from socialmeta.experiment import (
        dataset_from_config,
        graph_for_task,
        split_from_config,
        task_config,
    )
    from socialmeta.tasks import ItemSplit, item_nodes

    tool = load_tool("bench_quality")
    assert {"ciaodvd:new_item", "lastfm:new_item"} <= set(tool.CELLS)
    tool.EXTRA["roots"] = {"ciaodvd": ciaodvd_root, "lastfm": lastfm_root}
    try:
        cfg = compose("train", tool._overrides("lastfm:new_item", 2, False, [3]))
    finally:
        tool.EXTRA["roots"] = {}
    assert cfg.task.kind == "new_item" and list(cfg.task.context) == ["features"]
    assert tool.cell_context("lastfm:new_item") == ["features"]
    cfg.dataset.cache = False
    task = task_config(cfg.task, cfg.seed)
    graph = graph_for_task(dataset_from_config(cfg.dataset), task)
    split = split_from_config(graph, cfg.split, task)
    assert isinstance(split, ItemSplit) and split.people.numel() == 1892
    assert item_nodes(graph)[split.test].all()


def test_the_bench_runs_each_cells_preset_and_the_egonet_ablation(load_tool):
    tool = load_tool("bench_quality")
    for cell in ("ego_facebook:interest", "lastfm:friend:items", "ciaodvd:item:temporal"):
        assert tool.scorer_overrides("hybrid", cell) == (), cell
        egonet = tool.scorer_overrides("egonet", cell)
        assert "model.scorer=egonet" in egonet and "model.pair_init=none" in egonet
    assert tool.preset("lastfm:friend:items") == "lastfm_friend_items"
    assert tool.preset("ciaodvd:new_item:temporal") == "ciaodvd_new_item"
    assert tool.preset("csv:friend") is None
    assert "train.steps=300" in tool.scorer_overrides("egonet", "ciaodvd:item:temporal")


def _fake_run(tool, root, cell, seed, method, test, val, error=None):
    path = root / cell.replace(":", "-") / f"seed{seed}" / method / "metrics.json"
    path.parent.mkdir(parents=True)
    if error:
        path.write_text(json.dumps({"error": error}))
        return
    data = {"test": {"3": {m: {"mean": test, "ci95": 0.0, "users": 10} for m in tool.METRICS}}}
    data |= ({"val_trials": [[{"a": 1}, val]]} if method.startswith("baseline-")
             else {"best_val": val})
    path.write_text(json.dumps(data))


def test_model_verdict_counts_the_non_meta_gnn_as_the_model_side(load_tool, tmp_path):
    tool = load_tool("bench_quality")
    # the non-meta GNN is best on validation and test; ppr is the best baseline on
    # validation, adamic_adar on test
    runs = {"maml": (0.26, 0.20), "hybrid-noadapt": (0.30, 0.25), "baseline-ppr": (0.24, 0.22),
            "baseline-adamic_adar": (0.25, 0.21)}
    for seed in range(2):
        for method, (test, val) in runs.items():
            _fake_run(tool, tmp_path, "lastfm:friend", seed, method, test, val)
    summary = tool.summarise(tool.collect(tmp_path))
    (line,) = tool.model_verdicts(summary, ["lastfm:friend"])
    assert ("chosen on validation users: `hybrid-noadapt (non-meta GNN)` 0.3000 (2 seeds) "
            "vs `ppr` 0.2400 (2 seeds): +25.0% (target +10%: **met**)") in line
    assert "By test mean: `hybrid-noadapt (non-meta GNN)` 0.3000 vs `adamic_adar` 0.2500" in line
    # the meta-learner verdict still puts the non-meta GNN on the baseline side
    (meta_line,) = tool.verdicts(summary, ["lastfm:friend"])
    assert "best baseline `hybrid-noadapt (non-meta GNN)` 0.3000" in meta_line


def test_coverage_counts_finished_seeds_per_learner_and_scorer(load_tool, tmp_path):
    tool = load_tool("bench_quality")
    for seed in (0, 1, 2):
        _fake_run(tool, tmp_path, "lastfm:friend:items", seed, "maml", 0.3, 0.3)
        _fake_run(tool, tmp_path, "lastfm:friend:items", seed, "baseline-ppr", 0.2, 0.2)
    _fake_run(tool, tmp_path, "lastfm:friend:items", 0, "hybrid-maml", 0.35, 0.31)
    _fake_run(tool, tmp_path, "lastfm:friend:items", 1, "hybrid-anil", 0, 0, error="KeyError")
    rows = tool.collect(tmp_path)
    table = tool.coverage_table(rows, ["lastfm:friend:items"])
    assert table[2] == "| cell | " + " | ".join(f"`{x}`" for x in tool.LEARNERS) + " |"
    entries = dict(zip(tool.LEARNERS, table[-1].strip("| ").split(" | ")[1:]))
    # three ego-net MAML seeds, one hybrid; the failed hybrid ANIL run does not count
    assert entries["maml"] == "3 / 1" and entries["anil"] == "0 / 0"
    assert all(entries[x] == "0 / 0" for x in tool.LEARNERS if x != "maml")
    # the context cells are judged by issue 20's model-vs-baseline target too
    report = tool.markdown(rows, "cmd", "machine")
    section = report.split("## socialmeta's best model")[1].split("## ")[0]
    assert ("`lastfm:friend:items` K=3 recall@20, chosen on validation users: "
            "`hybrid-maml` 0.3500 (1 seeds) vs `ppr` 0.2000 (3 seeds)") in section
    assert "| lastfm:friend:items | 3 / 1 |" in report
