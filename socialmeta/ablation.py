r"""Ablation reports: every run of a sweep folder in one table and a few plots.

A sweep folder (``socialmeta-ablate`` or ``socialmeta-train -m``) holds one folder per
run with Hydra's ``.hydra/overrides.yaml`` (what the run changed) and either
``metrics.json`` (done), ``failed.json`` (failed, with its error) or neither (not
finished). :func:`write_report` writes

* ``ablation.csv``: one row per configuration x K with mean, 95% interval and number
  of seeds for every metric, and the status of its runs;
* ``ablation.md``: the same as Markdown tables (one per K, best mean per column in
  bold); for runs that also scored their checkpoint without test-time adaptation, what
  adaptation changes (adapted, unadapted, gain); then the failed and unfinished runs
  with their errors;
* ``metric_vs_shots.png``: the metric against K, one line per configuration;
* ``factor_<name>.png``: one bar chart per swept factor (mean over the other factors
  and seeds, at the K given by ``shots_for_bars``).

Example:
    >>> from socialmeta.ablation import write_report
    >>> write_report("ablations/learner")
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from socialmeta.data import atomic_write

METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
#: overrides that are not factors of the ablation
_IGNORED = ("ablation", "+ablation", "hydra.", "skip_done")
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262}


@dataclass
class Run:
    folder: Path
    factors: dict[str, str]
    seed: str
    status: str                               # done | failed | unfinished
    error: str = ""
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    #: the same checkpoint's test metrics without test-time adaptation, where recorded
    unadapted: dict[int, dict[str, float]] = field(default_factory=dict)

    @property
    def config(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.factors.items()) or "(base)"


def _factors(overrides: list[str]) -> tuple[dict[str, str], str]:
    factors, seed = {}, "0"
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "seed":
            seed = value
        elif not key.startswith(_IGNORED):
            factors[key.lstrip("+")] = value
    return factors, seed


def collect_runs(sweep_dir: str | Path) -> list[Run]:
    """Every run folder under :obj:`sweep_dir` (one with ``.hydra/overrides.yaml``)."""
    runs = []
    for overrides in sorted(Path(sweep_dir).glob("**/.hydra/overrides.yaml")):
        folder = overrides.parent.parent
        factors, seed = _factors(yaml.safe_load(overrides.read_text()) or [])
        run = Run(folder, factors, seed, "unfinished", "no metrics.json or failed.json")
        if (folder / "metrics.json").is_file():
            data = json.loads((folder / "metrics.json").read_text())
            run.status, run.error = "done", ""
            run.metrics, run.unadapted = (
                {int(k): {m: v[m]["mean"] for m in METRICS} for k, v in per_k.items()}
                for per_k in (data["test"][data["learner"]], data["test"].get(
                    f"{data['learner']} without test-time adaptation", {})))
        elif (folder / "failed.json").is_file():
            run.status = "failed"
            run.error = json.loads((folder / "failed.json").read_text())["error"]
        runs.append(run)
    # a factor with one value in every run (e.g. a dataset root) is a setting, not a factor
    for key in {k for r in runs for k in r.factors}:
        if len({r.factors.get(key) for r in runs}) == 1:
            for r in runs:
                r.factors.pop(key, None)
    return runs


def mean_ci_over_seeds(values: list[float]) -> tuple[float, float, int]:
    """``(mean, half-width of the 95% Student t interval, count)`` of the non-NaN
    :obj:`values`, one per seed (the interval is NaN for fewer than two). Over test
    users, :func:`socialmeta.eval.mean_ci` uses the normal interval instead."""
    values = [v for v in values if not math.isnan(v)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan, 1
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, T95.get(n - 1, 1.96) * sd / math.sqrt(n), n


def gain_cells(pairs: list[tuple[float, float]]) -> str:
    """The Markdown cells ``adapted | unadapted | gain [lowest, highest]`` of a
    test-time adaptation table, from one ``(adapted, unadapted)`` pair per seed."""
    gains = [a - u for a, u in pairs]
    return (f"{sum(a for a, _ in pairs) / len(pairs):.4f} | "
            f"{sum(u for _, u in pairs) / len(pairs):.4f} | "
            f"{sum(gains) / len(gains):+.4f} [{min(gains):+.4f}, {max(gains):+.4f}]")


def summarise(runs: list[Run]) -> list[dict]:
    """One row per (configuration, K): mean/ci95/seeds per metric over the seeds."""
    configs: dict[str, list[Run]] = {}
    for run in runs:
        configs.setdefault(run.config, []).append(run)
    rows = []
    for config, group in configs.items():
        done = [r for r in group if r.status == "done"]
        status = (f"{len(done)}/{len(group)} done"
                  + (f", {sum(r.status == 'failed' for r in group)} failed"
                     if any(r.status == "failed" for r in group) else ""))
        ks = sorted({k for r in done for k in r.metrics}) or [None]
        for k in ks:
            row = {"config": config, **group[0].factors, "K": k, "status": status}
            for m in METRICS:
                mean, half, n = mean_ci_over_seeds([r.metrics[k][m] for r in done if k in r.metrics])
                row[m], row[f"{m}_ci95"], row["seeds"] = mean, half, n
            rows.append(row)
    return rows


def _adaptation_lines(runs: list[Run], metric: str) -> list[str]:
    """What test-time adaptation changes, per configuration and K, over the runs that
    recorded their checkpoint's scores without it."""
    groups: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for run in runs:
        for k, values in sorted(run.unadapted.items()):
            groups.setdefault((run.config, k), []).append(
                (run.metrics[k][metric], values[metric]))
    if not groups:
        return []
    lines = ["## Test-time adaptation", "",
             f"The same checkpoint's test {metric} with and without the inner loop on the "
             "support; `gain` is adapted minus unadapted, mean over seeds [lowest, highest].",
             "", "| configuration | K | seeds | adapted | unadapted | gain |",
             "|---|---:|---:|---:|---:|---|"]
    for (config, k), pairs in groups.items():
        lines.append(f"| {config} | {k} | {len(pairs)} | {gain_cells(pairs)} |")
    return [*lines, ""]


def _markdown(rows: list[dict], runs: list[Run], title: str, metric: str = "recall@20"
              ) -> str:
    lines = [f"# Ablation: {title}", "",
             "Mean over seeds of the test-user mean ± 95% interval over seeds (Student t); "
             "`seeds` counts finished runs (with 1 seed there is no interval and the value "
             "stands alone). Best mean per column in bold.", ""]
    for k in sorted({r["K"] for r in rows if r["K"] is not None}):
        block = [r for r in rows if r["K"] == k]
        best = {m: max((r[m] for r in block if not math.isnan(r[m])), default=math.nan)
                for m in METRICS}
        lines += [f"## K = {k}", "", "| configuration | seeds | " + " | ".join(METRICS) + " |",
                  "|---|---:|" + "---|" * len(METRICS)]
        for r in sorted(block, key=lambda r: -r["recall@20"] if not math.isnan(r["recall@20"])
                        else math.inf):
            cells = []
            for m in METRICS:
                # one seed has no interval: the value alone (the seeds column says 1)
                text = (f"{r[m]:.4f}" if math.isnan(r[m + "_ci95"])
                        else f"{r[m]:.4f} ± {r[m + '_ci95']:.4f}")
                cells.append(f"**{text}**" if r[m] == best[m] else text)
            lines.append(f"| {r['config']} | {r['seeds']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _adaptation_lines(runs, metric)
    bad = [r for r in runs if r.status != "done"]
    if bad:
        lines += ["## Failed or unfinished runs", "", "| configuration | seed | status | error |",
                  "|---|---:|---|---|"]
        lines += [f"| {r.config} | {r.seed} | {r.status} | {r.error} |" for r in bad]
        lines.append("")
    return "\n".join(lines)


def _plots(rows: list[dict], runs: list[Run], out: Path, metric: str,
           shots_for_bars: int | None) -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plots (pip install 'socialmeta[plots]')")
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for config in dict.fromkeys(r["config"] for r in rows):
        pts = sorted((r["K"], r[metric], r[metric + "_ci95"]) for r in rows
                     if r["config"] == config and r["K"] is not None)
        if pts:
            ks, means, cis = zip(*pts)
            ax.errorbar(ks, means, yerr=[0 if math.isnan(c) else c for c in cis],
                        marker="o", capsize=3, label=config)
    ax.set_xticks(sorted({r["K"] for r in rows if r["K"] is not None}))
    ax.set_xlabel("K (support links of the new user)")
    ax.set_ylabel(f"test {metric}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written.append(out / "metric_vs_shots.png")
    _save(fig, written[-1])
    plt.close(fig)
    done = [r for r in runs if r.status == "done"]
    ks = sorted({k for r in done for k in r.metrics})
    if not ks:
        return written
    k = shots_for_bars if shots_for_bars in ks else ks[len(ks) // 2]
    for factor in dict.fromkeys(f for r in runs for f in r.factors):
        levels = list(dict.fromkeys(r.factors.get(factor, "") for r in runs))
        stats = [mean_ci_over_seeds([r.metrics[k][metric] for r in done
                           if r.factors.get(factor, "") == level and k in r.metrics])
                 for level in levels]
        fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(levels) + 2), 3.6))
        ax.bar(range(len(levels)), [s[0] for s in stats],
               yerr=[0 if math.isnan(s[1]) else s[1] for s in stats], capsize=3)
        ax.set_xticks(range(len(levels)), levels, rotation=30, ha="right")
        ax.set_ylabel(f"test {metric} at K={k}")
        ax.set_title(f"{factor} (mean over the other factors and seeds)")
        fig.tight_layout()
        written.append(out / f"factor_{factor.replace('/', '_').replace('.', '_')}.png")
        _save(fig, written[-1])
        plt.close(fig)
    return written


def _save(fig, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)


def write_report(sweep_dir: str | Path, metric: str = "recall@20",
                 shots_for_bars: int | None = 3, out_dir: str | Path | None = None
                 ) -> dict[str, object]:
    """Writes ``ablation.csv``, ``ablation.md`` and the PNG plots into :obj:`out_dir`
    (default: :obj:`sweep_dir`); returns ``{"rows": ..., "runs": ..., "files": ...}``."""
    runs = collect_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(f"no runs (.hydra/overrides.yaml) under {str(sweep_dir)!r}")
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(runs)
    factor_names = list(dict.fromkeys(f for r in runs for f in r.factors))
    fields = ["config", *factor_names, "K", "seeds", "status"]
    fields += [x for m in METRICS for x in (m, f"{m}_ci95")]
    with atomic_write(out / "ablation.csv", "w") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with atomic_write(out / "ablation.md", "w") as f:
        f.write(_markdown(rows, runs, Path(sweep_dir).name, metric) + "\n")
    files = [out / "ablation.csv", out / "ablation.md",
             *_plots(rows, runs, out, metric, shots_for_bars)]
    return {"rows": rows, "runs": runs, "files": files}
