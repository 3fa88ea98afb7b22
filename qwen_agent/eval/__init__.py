"""Benchmarks on any backend: BFCL (tool use), RGB (RAG), code-interpreter math, T-Eval-style planning.

    from qwen_agent.eval import EvalSettings, run_eval
    from qwen_agent.eval.bfcl import BfclSuite
    summary = run_eval(BfclSuite(["simple_python"]), EvalSettings(limit=20), out="runs/simple")

Each run writes one JSONL record per item (``items.jsonl``), ``summary.json`` and ``summary.md``; ``resume=True``
continues a killed run; `compare_table` / ``qwen-agent eval compare`` puts runs side by side.
"""

from qwen_agent.eval.errors import EvalDataError, EvalError, EvalRunError, EvalSourceError
from qwen_agent.eval.records import GroupSummary, ItemRecord, MetricValue, RunSummary, load_summary
from qwen_agent.eval.report import compare_table, markdown_summary
from qwen_agent.eval.runner import EvalProgress, arun_eval, run_eval
from qwen_agent.eval.suite import EvalItem, EvalSettings, ItemOutcome, RunContext, Suite

__all__ = [
    "EvalDataError", "EvalError", "EvalItem", "EvalProgress", "EvalRunError", "EvalSettings", "EvalSourceError",
    "GroupSummary", "ItemOutcome", "ItemRecord", "MetricValue", "RunContext", "RunSummary", "Suite", "arun_eval",
    "compare_table", "load_summary", "markdown_summary", "run_eval",
]
