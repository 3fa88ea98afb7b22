"""How often our BFCL checker agrees with bfcl-eval's own (run in its private venv): on the predictions of
`qwen-agent eval bfcl` runs and on one-change variations of every possible answer. Figures are printed.

    python benchmarks/bench_bfcl_agreement.py [RUN_DIR ...] [--no-variations] [--show 10]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from qwen_agent.eval.bfcl import CATEGORIES, load_category
from qwen_agent.eval.bfcl.agreement import cases_from_runs, compare_with_reference, variation_cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="*", type=Path, help="folders of `qwen-agent eval bfcl` runs")
    ap.add_argument("--no-variations", action="store_true", help="only the runs' predictions")
    ap.add_argument("--show", type=int, default=10, help="disagreements to print")
    a = ap.parse_args()
    cases = cases_from_runs(a.runs)
    n_runs = len(cases)
    if not a.no_variations:
        cases += [c for category in CATEGORIES for c in variation_cases(load_category(category))]
    started = time.perf_counter()
    report = compare_with_reference(cases)
    print(f"{report.n} predictions ({n_runs} from {len(a.runs)} runs, {report.n - n_runs} variations of the answers); "
          f"bfcl-eval judged {report.reference_valid} valid")
    print(f"agreement: {report.agree}/{report.n} ({report.rate:.4%}) in {time.perf_counter() - started:.0f} s")
    runs = {k: v for k, v in report.by_source.items() if k.startswith("run:")}
    for source, count in sorted(runs.items()):
        bad = sum(1 for d in report.disagreements if any(c is d.case for s, c in cases if s == source))
        print(f"  {source}: {count} predictions, {bad} disagreements")
    kinds = Counter(d.detail for d in report.disagreements)
    for detail, count in kinds.most_common(a.show):
        print(f"  {count} x {detail}")


if __name__ == "__main__":
    main()
