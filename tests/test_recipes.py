"""The presets are the recipes: each ``experiment=<cell>`` preset is the socialmeta
model the leaderboard chose on validation users for that cell, the benchmark runs the
presets, and a run with no preset gets the generic recipe."""
from __future__ import annotations

from pathlib import Path

import pytest

from socialmeta.config import compose, config_dir

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.stem for p in (Path(config_dir()) / "experiment").glob("*.yaml"))
#: the settings a recipe names (besides its dataset and task)
RECIPE_KEYS = ("model.scorer", "meta.learner", "train.steps", "model.pair_init",
               "train.eval_at_start", "train.patience", "train.eval_every")


def _recipe(cfg) -> dict:
    from omegaconf import OmegaConf

    return {key: OmegaConf.select(cfg, key) for key in RECIPE_KEYS}


@pytest.fixture(scope="module")
def leaderboard(load_tool):
    """Per cell: socialmeta's model chosen on validation users (K=3, the cell's verdict
    metric), from the benchmark's recorded runs."""
    tool = load_tool("bench_quality")
    summary = tool.summarise(tool.collect(REPO / "results" / "quality"))
    chosen = {}
    for cell in tool.CELLS:
        pair = tool.best_pair(summary, cell, 3, tool.verdict_metric(cell, summary, 3),
                              by="val", side=tool._is_model)
        if pair is not None:
            chosen[cell] = pair[0][0]
    return chosen


def test_every_preset_is_its_cells_recipe(leaderboard):
    assert len(PRESETS) >= 15
    for name in PRESETS:
        cfg = compose("train", [f"experiment={name}"])
        cell = cfg.recipe
        assert cell.replace(":", "_") == name
        assert [cfg.dataset.name, cfg.task.kind] == cell.split(":")[:2]
        # the leaderboard's validation choice is this preset's scorer and learner
        assert leaderboard[cell] == f"hybrid-{cfg.meta.learner}", cell
        assert cfg.model.scorer == "hybrid" and cfg.train.steps == 1000
        # a start from the best channel is kept only when step 0 is validated too
        assert (cfg.model.pair_init == "auto") == cfg.train.eval_at_start, name


def test_presets_start_as_their_leaderboard_rows_were_run():
    """Interest cells and the drift cell start from the best pair-feature channel on
    validation users; the others from scratch."""
    auto = {name for name in PRESETS
            if compose("train", [f"experiment={name}"]).model.pair_init == "auto"}
    assert auto == {"ego_facebook_interest", "lastfm_interest", "synthetic_interest",
                    "ciaodvd_item_temporal"}


def test_no_argument_and_own_data_run_the_generic_recipe():
    """The generic recipe, the embedded graph's friend recipe: the hybrid, learner
    metasgd, 1000 steps, from scratch with its best pair-feature channel on validation
    users as the step-0 checkpoint (so never below that channel on them)."""
    default = compose("train", [])
    assert default.recipe is None
    assert _recipe(default) == _recipe(compose("train", ["experiment=synthetic_friend"]))
    assert default.model.pair_init == "fallback" and default.meta.learner == "metasgd"
    assert (default.dataset.name, default.task.kind) == ("synthetic", "friend")
    for dataset in ("csv", "recbole"):
        own = compose("train", [f"dataset={dataset}", "dataset.root=somewhere",
                                "dataset.name=x"] if dataset == "recbole"
                      else [f"dataset={dataset}", "dataset.root=somewhere"])
        assert _recipe(own) == _recipe(default)
        assert own.model.scorer == "hybrid" and own.model.pair_init == "fallback"


def test_the_bench_composes_each_cell_to_its_preset(load_tool):
    tool = load_tool("bench_quality")
    for cell in tool.CELLS:
        name = tool.preset(cell)
        if name != cell.replace(":", "_"):
            continue
        over = tool._overrides(cell, 1, False, [3])
        assert over[0] == f"experiment={name}" and not any(
            o.startswith(("task.context=", "model.", "meta=", "train.")) for o in over), cell


def test_model_configs_differ_from_sage_only_in_the_convolution():
    sage = compose("train", [])
    for conv in ("gat", "gcn", "gin", "mlp"):
        cfg = compose("train", [f"model={conv}"])
        assert cfg.model.conv == conv
        assert {k: v for k, v in cfg.model.items() if k != "conv"} == {
            k: v for k, v in sage.model.items() if k != "conv"}


def test_the_guides_recipe_table_is_the_presets():
    import re

    rows = re.findall(r"^\| `(\w+)` \| ([\w:]+) \| (\w+) \| ([\w ]+) \|$",
                      (REPO / "docs" / "guide.md").read_text(), re.M)
    assert sorted(r[0] for r in rows) == PRESETS
    start = {("none", False): "scratch", ("auto", True): "best channel",
             ("fallback", False): "fallback"}
    for name, cell, learner, how in rows:
        cfg = compose("train", [f"experiment={name}"])
        assert (cfg.recipe, cfg.meta.learner) == (cell, learner), name
        assert start[cfg.model.pair_init, cfg.train.eval_at_start] == how, name
