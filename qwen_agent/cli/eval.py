"""The CLI's `eval` command: run a benchmark suite against any model spec, resume it, compare runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from qwen_agent.cli.backend import add_next_call_option
from qwen_agent.cli.observe import add_record_option, add_trace_options

if TYPE_CHECKING:
    from qwen_agent.eval import EvalSettings, RunSummary, Suite

__all__ = ["cmd_bfcl", "cmd_code", "cmd_compare", "cmd_plan", "cmd_rag", "cmd_rescore", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser("eval", help="benchmarks on any backend: bfcl, rag (RGB), code, plan (T-Eval); compare runs")
    esub = ev.add_subparsers(dest="eval_command", required=True)

    bfcl = esub.add_parser("bfcl", help="BFCL v4 function calling (data from the pinned bfcl-eval wheel)")
    bfcl.add_argument("--category", "-c", action="append", default=[],
                      help="a category, or several comma-separated (repeatable; default: simple_python, multiple, "
                           "parallel, parallel_multiple, irrelevance, live_simple, live_multiple, live_parallel, "
                           "live_irrelevance)")
    _common(bfcl, "first N items of each category")
    bfcl.set_defaults(handler=cmd_bfcl)

    rag = esub.add_parser("rag", help="RAG robustness on RGB's data format, through the Assistant")
    rag.add_argument("--suite", choices=["rgb"], default="rgb", dest="rag_suite")
    rag.add_argument("--data", type=Path, required=True, help="an RGB file: en.json, en_int.json or en_fact.json")
    rag.add_argument("--noise-rate", type=float, default=0.0, help="share of noise documents (1.0: rejection test)")
    rag.add_argument("--passage-num", type=int, default=5, help="documents per question")
    rag.add_argument("--correct-rate", type=float, default=0.0, help="_fact files: share of correct documents")
    _common(rag, "first N items")
    rag.set_defaults(handler=cmd_rag)

    code = esub.add_parser("code", help="math (and figures) solved through the sandboxed code interpreter")
    code.add_argument("--data", type=Path, required=True, help="JSONL: {id, question, answer} or {id, question, "
                                                               "figure: true, judge: ...}")
    code.add_argument("--judge", default=None, help="model spec of a judge for figure items (optional)")
    code.add_argument("--max-steps", type=int, default=5)
    code.add_argument("--sandbox", choices=["bwrap", "none"], default="bwrap")
    _common(code, "first N items")
    code.set_defaults(handler=cmd_code)

    plan = esub.add_parser("plan", help="T-Eval-style planning: the plan against the gold plan")
    plan.add_argument("--data", type=Path, required=True, help="a T-Eval plan file (plan_json_v1.json format)")
    _common(plan, "first N items")
    plan.set_defaults(handler=cmd_plan)

    rescore = esub.add_parser("rescore", help="score a bfcl run's recorded predictions again with the current "
                                               "checker (no model needed)")
    rescore.add_argument("run", type=Path, help="a run folder")
    rescore.set_defaults(handler=cmd_rescore)

    compare = esub.add_parser("compare", help="print runs side by side (and draw them with --plot)")
    compare.add_argument("runs", nargs="+", type=Path, help="run folders (each with a summary.json)")
    compare.add_argument("--plot", type=Path, default=None, help="write a bar chart (PNG) of the runs by category")
    compare.set_defaults(handler=cmd_compare)


def _common(p: argparse.ArgumentParser, limit_help: str) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default=None, help="model spec: llamacpp:[NAME|FILE.gguf], openai:URL[#name], "
                                                       "transformers:[DIR|NAME] (default: the embedded model)")
    g.add_argument("--mode", choices=["prompted", "native"], default="prompted")
    g.add_argument("--format", dest="fc_format", choices=["nous", "qwen", "react"], default="nous")
    g.add_argument("--constrained", action="store_true", help="grammar-constrained decoding (answer or valid call)")
    add_next_call_option(g)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--max-tokens", type=int, default=None, help="tokens per reply (default: the suite's)")
    g.add_argument("--n-ctx", type=int, default=8192, help="context window of an embedded model")
    r = p.add_argument_group("run")
    r.add_argument("--limit", type=_positive, default=None, help=limit_help)
    r.add_argument("--workers", type=_positive, default=1, help="items in flight (for servers that batch, e.g. vLLM); "
                                                          "with --ray: Ray actors, each with its own model")
    r.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run items on Ray actors: a private local cluster on 127.0.0.1 (no ADDRESS), or a running "
                        "cluster ('auto', 'ray://head:10001'); records still go to --out in order, --resume works")
    r.add_argument("--out", type=Path, default=None, help="output folder (default: eval-runs/<suite>-<time>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out without redoing its items")
    r.add_argument("--label", default=None, help="name of the run in summaries (default: the folder's name)")
    r.add_argument("--fail-under", type=float, default=None, help="exit 1 when the overall score is below this")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_trace_options(p)
    add_record_option(p)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _settings(args: argparse.Namespace) -> EvalSettings:
    from qwen_agent.eval import EvalSettings

    return EvalSettings(model=args.model, mode=args.mode, format=args.fc_format, constrained=args.constrained,
                        next_call_threshold=args.next_call_threshold,
                        limit=args.limit, workers=args.workers, seed=args.seed, temperature=args.temperature,
                        max_tokens=args.max_tokens, n_ctx=args.n_ctx, label=args.label)


def _run(suite: Suite, args: argparse.Namespace, console: Console) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from qwen_agent.eval import EvalProgress, markdown_summary, run_eval

    out = args.out or Path("eval-runs") / f"{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    settings = _settings(args)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("score {task.fields[score]}"), TextColumn("errors {task.fields[errors]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=args.no_progress or not console.is_terminal) as bar:
        task = bar.add_task(suite.name, total=None, score="–", errors=0)

        def progress(p: EvalProgress) -> None:
            bar.update(task, completed=p.done, total=p.total, score=f"{p.score:.3f}", errors=p.errors)
            if not console.is_terminal and p.done % 10 == 0:
                console.print(f"{p.done}/{p.total} score {p.score:.3f} errors {p.errors}", highlight=False)

        recorder = None
        if args.record is not None:
            from qwen_agent.trajectories import TrajectoryRecorder

            recorder = TrajectoryRecorder(args.record)
        ray = None
        if args.ray is not None:
            from qwen_agent.batch import RayOptions

            ray = RayOptions(address=args.ray, workers=args.workers)
        summary: RunSummary = run_eval(suite, settings, out, resume=args.resume, progress=progress, ray=ray,
                                       recorder=recorder)
    console.print(markdown_summary(summary), highlight=False, markup=False, soft_wrap=True)
    console.print(f"[dim]records, summary.json and summary.md in {escape(str(out))}[/]", highlight=False)
    if args.fail_under is not None and summary.overall.score < args.fail_under:
        console.print(f"[bold red]score {summary.overall.score:.3f} is under --fail-under {args.fail_under}[/]")
        return 1
    return 0


def cmd_bfcl(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.eval.bfcl import BfclSuite

    categories = [c.strip() for arg in args.category for c in arg.split(",") if c.strip()] or None
    return _run(BfclSuite(categories), args, console)


def cmd_rag(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.eval.rag import RgbSuite

    suite = RgbSuite(args.data, noise_rate=args.noise_rate, passage_num=args.passage_num,
                     correct_rate=args.correct_rate)
    return _run(suite, args, console)


def cmd_code(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.eval.code import CodeSuite

    suite = CodeSuite(args.data, judge=args.judge, max_steps=args.max_steps, sandbox=args.sandbox)
    return _run(suite, args, console)


def cmd_plan(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.eval.plan import PlanSuite

    return _run(PlanSuite(args.data), args, console)


def cmd_rescore(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.eval import EvalRunError, markdown_summary
    from qwen_agent.eval.runner import read_settings, rescore_run

    stored = read_settings(args.run)
    if stored.get("suite") != "bfcl":
        raise EvalRunError(f"only bfcl runs can be scored again without the model; {args.run} holds a "
                           f"{stored.get('suite')} run")
    from qwen_agent.eval.bfcl import BfclSuite

    summary = rescore_run(BfclSuite(stored["options"]["categories"]), args.run)
    console.print(markdown_summary(summary), highlight=False, markup=False, soft_wrap=True)
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.eval import compare_table, load_summary

    summaries = [load_summary(folder) for folder in args.runs]
    console.print(compare_table(summaries), highlight=False, markup=False, soft_wrap=True)
    if args.plot is not None:
        from qwen_agent.eval.plot import plot_runs

        plot_runs(summaries, args.plot)
        console.print(f"[dim]chart written to {escape(str(args.plot))}[/]", highlight=False)
    return 0
