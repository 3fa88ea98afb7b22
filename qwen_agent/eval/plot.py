"""A bar chart of several runs by category (``qwen-agent eval compare --plot out.png``), drawn with matplotlib."""

from __future__ import annotations

from pathlib import Path

from qwen_agent.eval.errors import EvalError
from qwen_agent.eval.records import RunSummary

__all__ = ["plot_runs"]


def plot_runs(summaries: list[RunSummary], path: Path | str) -> Path:
    """Grouped bars: one group per category (and "all"), one bar per run, each labelled with its n."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise EvalError("--plot needs matplotlib: pip install 'qwen-agent[eval]'") from exc
    categories = [*dict.fromkeys(g.name for s in summaries for g in s.categories), "all"]
    width = 0.8 / max(len(summaries), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(categories) * max(1, len(summaries)) ** 0.5), 4.5))
    for k, summary in enumerate(summaries):
        groups = {g.name: g for g in summary.categories} | {"all": summary.overall}
        xs = [i + (k - (len(summaries) - 1) / 2) * width for i in range(len(categories))]
        heights = [groups[c].score if c in groups else 0.0 for c in categories]
        bars = ax.bar(xs, heights, width, label=summary.label)
        for bar, c in zip(bars, categories, strict=True):
            if c in groups:
                ax.annotate(f"n={groups[c].n}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                            textcoords="offset points")
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories, rotation=30, ha="right")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel(summaries[0].primary if summaries else "score")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
