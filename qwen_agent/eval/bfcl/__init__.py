"""BFCL v4 (Berkeley Function Calling Leaderboard): data from the pinned bfcl-eval wheel, BFCL's AST rules, and the
release's tool-use metrics."""

from qwen_agent.eval.bfcl.checker import CheckResult, check_prediction
from qwen_agent.eval.bfcl.dataset import (
    AST_CATEGORIES,
    CATEGORIES,
    DEFAULT_CATEGORIES,
    RELEVANCE_CATEGORIES,
    BfclEntry,
    bfcl_wheel,
    load_category,
    to_tool_schemas,
)
from qwen_agent.eval.bfcl.metrics import tool_metrics
from qwen_agent.eval.bfcl.suite import BfclOptions, BfclSuite

__all__ = [
    "AST_CATEGORIES", "CATEGORIES", "DEFAULT_CATEGORIES", "RELEVANCE_CATEGORIES", "BfclEntry", "BfclOptions",
    "BfclSuite", "CheckResult", "bfcl_wheel", "check_prediction", "load_category", "to_tool_schemas", "tool_metrics",
]
