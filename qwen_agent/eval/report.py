"""Markdown views of run summaries: one run's table (`summary.md`) and several runs side by side (`compare`)."""

from __future__ import annotations

from qwen_agent.eval.records import GroupSummary, MetricValue, RunSummary

__all__ = ["compare_table", "markdown_summary"]


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _metric(m: MetricValue | None) -> str:
    if m is None or m.value is None:
        return "–"
    return f"{m.value:.3f} (n={m.n})"


def _describe(summary: RunSummary) -> str:
    s = summary.settings
    model = s.get("model") or "embedded default"
    mode = f"{s.get('mode')}/{s.get('format')}" + (" constrained" if s.get("constrained") else "")
    return f"{summary.suite} · {model} · {mode} · temperature {s.get('temperature')} · seed {s.get('seed')}"


def markdown_summary(summary: RunSummary) -> str:
    """One run: a row per category and one for all items, with every metric and its n."""
    keys = list(dict.fromkeys(k for g in [summary.overall, *summary.categories] for k in g.metrics))
    head = ["category", "n", summary.primary, *keys, "errors"]
    lines = [f"# {summary.label}", "", _describe(summary), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups: list[GroupSummary] = [*summary.categories, summary.overall] if len(summary.categories) > 1 \
        else [summary.overall]
    for g in groups:
        cells = [g.name, str(g.n), _num(g.score), *(_metric(g.metrics.get(k)) for k in keys), str(g.errors)]
        lines.append("| " + " | ".join(cells) + " |")
    tokens = summary.prompt_tokens + summary.completion_tokens
    median = f"{summary.latency_median_s:.2f} s" if summary.latency_median_s is not None else "–"
    totals = (f"{summary.overall.n} items in {summary.elapsed_s:.0f} s (median {median} per item), "
              f"{tokens} tokens ({summary.prompt_tokens} prompt, {summary.completion_tokens} completion)")
    lines += ["", totals, ""]
    return "\n".join(lines)


def compare_table(summaries: list[RunSummary]) -> str:
    """Several runs side by side: a row per category (primary score with its n), then the overall metrics."""
    head = ["", *(s.label for s in summaries)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    categories = list(dict.fromkeys(g.name for s in summaries for g in s.categories))
    for name in [*categories, "all"]:
        cells = []
        for s in summaries:
            g = s.overall if name == "all" else next((c for c in s.categories if c.name == name), None)
            cells.append("–" if g is None else f"{g.score:.3f} (n={g.n})")
        lines.append("| " + " | ".join([f"**{name}**" if name == "all" else name, *cells]) + " |")
    keys = list(dict.fromkeys(k for s in summaries for k in s.overall.metrics))
    for key in keys:
        lines.append("| " + " | ".join([key, *(_metric(s.overall.metrics.get(key)) for s in summaries)]) + " |")
    lines.append("| median s/item | " + " | ".join(
        "–" if s.latency_median_s is None else f"{s.latency_median_s:.2f}" for s in summaries) + " |")
    legend = [f"- **{s.label}**: {_describe(s)}" for s in summaries]
    return "\n".join([*lines, "", *legend, ""])
