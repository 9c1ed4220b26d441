"""Result tables: the full Markdown table, its JSON form, and a one-screen summary."""
from __future__ import annotations

TABLE_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
#: the table of interest tasks (few labels: Recall@20 is 1 by construction below 20)
INTEREST_TABLE_METRICS = ("recall@1", "ndcg@5", "map", "rprec")

#: ``{method: {K: {metric: {"mean", "ci95", "users"}}}}``
Results = dict[str, dict[int, dict]]

BASELINE_PREFIX = "baseline: "


def results_json(results: Results) -> dict[str, dict[str, dict]]:
    """:obj:`results` with string keys for K, as written to JSON."""
    return {method: {str(k): v for k, v in per_k.items()} for method, per_k in results.items()}


def _cells(metrics: dict, names: tuple[str, ...]) -> str:
    return " | ".join(f"{metrics[m]['mean']:.4f} ± {metrics[m]['ci95']:.4f}" for m in names)


def table_metrics(results: Results) -> tuple[str, ...]:
    """The columns for :obj:`results`: :data:`TABLE_METRICS`, or for interest tasks
    (which report ``recall@1``) :data:`INTEREST_TABLE_METRICS` and macro-F1 where
    recorded."""
    first = next((v for per_k in results.values() for v in per_k.values()), {})
    if "recall@1" not in first:
        return TABLE_METRICS
    return INTEREST_TABLE_METRICS + (("macro_f1",) if "macro_f1" in first else ())


def format_results(results: Results, metrics: tuple[str, ...] | None = None) -> str:
    """A Markdown table: one row per (method, K), mean ± 95% interval per metric
    (default: :func:`table_metrics`)."""
    metrics = metrics or table_metrics(results)
    lines = ["| method | K | users | " + " | ".join(metrics) + " |",
             "|---|---:|---:|" + "---|" * len(metrics)]
    for method, per_k in results.items():
        for k, values in per_k.items():
            users = values[metrics[0]]["users"]
            lines.append(f"| {method} | {k} | {users} | {_cells(values, metrics)} |")
    return "\n".join(lines)


def format_summary(results: Results, shots: int = 3, metric: str = "recall@20",
                   baselines: int = 3) -> str:
    r"""The rows at K = :obj:`shots` (the first K evaluated if it was not) of every
    method that is not a baseline, then the best :obj:`baselines` baselines by
    :obj:`metric`: a table that fits one screen (at most ``4 + methods + baselines``
    lines). The full table is :func:`format_results`."""
    if not results:
        return ""
    available = list(next(iter(results.values())))
    k = shots if shots in available else available[0]
    learners = [m for m in results if not m.startswith(BASELINE_PREFIX)]
    ranked = sorted((m for m in results if m.startswith(BASELINE_PREFIX) and k in results[m]),
                    key=lambda m: -results[m][k][metric]["mean"])
    others = (("ndcg@20", "recall@10", "ndcg@10") if "recall@1" not in results[
        next(iter(results))][k] else table_metrics(results))
    shown = tuple(dict.fromkeys((metric, *others)))
    users = results[learners[0] if learners else ranked[0]][k][metric]["users"]
    lines = [f"test users at K={k} ({users} users; mean ± 95% interval):",
             "| method | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for method in learners + ranked[:baselines]:
        lines.append(f"| {method} | {_cells(results[method][k], shown)} |")
    if len(ranked) > baselines:
        lines.append(f"({len(ranked) - baselines} more baselines in the full table)")
    return "\n".join(lines)
