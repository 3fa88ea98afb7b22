"""The CLI's observability options: ``--trace otlp|FILE.jsonl``, ``--trace-content``, ``--record DIR``, and the
`export` command that turns recorded runs into fine-tuning data."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape

__all__ = ["add_record_option", "add_trace_options", "cmd_export", "register", "tracing_for"]


def add_trace_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("observability")
    g.add_argument("--trace", default=None, metavar="otlp|FILE.jsonl",
                   help="OpenTelemetry spans of every run: 'otlp' sends them to a collector (the standard "
                        "OTEL_EXPORTER_OTLP_* variables), a file path writes one span per JSON line "
                        "(needs the [trace] extra)")
    g.add_argument("--trace-content", action="store_true",
                   help="put messages, tool arguments and results on the spans (they may be private)")


def add_record_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record", type=Path, default=None, metavar="DIR",
                   help="record every run (messages, tools, model, outcome) as JSON lines in DIR, for "
                        "`qwen-agent export`")


@contextmanager
def tracing_for(args: argparse.Namespace) -> Iterator[None]:
    """Tracing for the command's lifetime when ``--trace`` was given; every span is flushed at the end."""
    target = getattr(args, "trace", None)
    if not target:
        yield
        return
    from qwen_agent.tracing import configure_tracing

    session = configure_tracing(target, capture_content=bool(getattr(args, "trace_content", False)) or None)
    try:
        yield
    finally:
        session.shutdown()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ex = sub.add_parser("export", help="recorded runs (--record) -> fine-tuning data: openai, llamafactory "
                                       "(ShareGPT + dataset_info.json), axolotl (chat_template + YAML)")
    ex.add_argument("runs", nargs="+", type=Path, help="run files or folders written by --record / Agent(record=)")
    ex.add_argument("--format", "-f", dest="export_format", choices=["openai", "llamafactory", "axolotl"],
                    default="openai")
    ex.add_argument("--min-score", type=float, default=None,
                    help="only runs with an eval score at least this (unscored runs are left out)")
    ex.add_argument("-o", "--output", type=Path, required=True, help="the JSONL file to write")
    ex.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.trajectories.export import export_trajectories

    report = export_trajectories(args.runs, args.output, args.export_format, min_score=args.min_score)
    left = [f"{n} {why}" for n, why in ((report.below_score, "below --min-score"), (report.unscored, "unscored"),
                                        (report.no_model_turn, "without a model turn")) if n]
    console.print(f"[green]✓[/] {report.written} runs → {escape(report.output)} ({report.format})"
                  + (f"; left out: {', '.join(left)}" if left else ""), highlight=False)
    if report.config_file:
        console.print(f"[dim]trainer config: {escape(report.config_file)}[/]", highlight=False)
    return 0 if report.written else 1
