"""What the offered-function check alone changes on a recorded BFCL run: the same predictions, repaired and refused
as the model layer now does (`qwen_agent.prompting.call_check`), scored again with the same checker. BFCL is one
request per item with no agent loop, so this is exact, and it needs no model.

    python benchmarks/rescore_call_check.py RUN_DIR      # a folder written by `qwen-agent eval bfcl --out`
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

from qwen_agent.eval.bfcl import BfclSuite
from qwen_agent.eval.bfcl.dataset import to_tool_schemas
from qwen_agent.messages import ToolCall
from qwen_agent.prompting.call_check import check_calls


def main(run: Path) -> None:
    records = [json.loads(line) for line in (run / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    categories = list(dict.fromkeys(r["category"] for r in records))
    suite = BfclSuite(categories)
    items = {i.id: i for i in suite.items(None)}
    before: dict[str, list[float]] = collections.defaultdict(list)
    after: dict[str, list[float]] = collections.defaultdict(list)
    refused: collections.Counter[str] = collections.Counter()
    for r in records:
        item = items[r["id"]]
        calls = [ToolCall.make(name, args) for c in r["prediction"] or [] for name, args in c.items()]
        checked = check_calls(calls, to_tool_schemas(item.data.functions))
        refused[r["category"]] += len(checked.errors)
        before[r["category"]].append(r["score"])
        after[r["category"]].append(suite.rescore(item, [{c.name: dict(c.arguments)} for c in checked.calls]).score)
    print(f"{'category':<20}{'n':>4}{'before':>8}{'after':>8}{'refused calls':>15}")
    rows = [(c, before[c], after[c], refused[c]) for c in categories]
    rows.append(("all", [x for c in categories for x in before[c]], [x for c in categories for x in after[c]],
                 sum(refused.values())))
    for name, b, a, n_refused in rows:
        print(f"{name:<20}{len(b):>4}{sum(b) / len(b):>8.3f}{sum(a) / len(a):>8.3f}{n_refused:>15}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
