"""The CLI's sub-commands: `run`, `chat`, `analyze`, `models pull|list|convert`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qwen_agent.cli.backend import add_model_options, build_model
from qwen_agent.cli.observe import add_record_option, add_trace_options
from qwen_agent.cli.render import EventPrinter

if TYPE_CHECKING:
    from qwen_agent.agents import Agent

__all__ = ["cmd_analyze", "cmd_chat", "cmd_models_convert", "cmd_models_list", "cmd_models_pull", "cmd_run", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run one task with the agent and print the answer")
    run.add_argument("task", help="what to do")
    _agent_options(run)
    run.add_argument("--json", action="store_true", help="print the transcript as OpenAI-style JSON messages")
    run.set_defaults(handler=cmd_run)

    chat = sub.add_parser("chat", help="interactive chat with tools (streams; /reset, /exit)")
    _agent_options(chat)
    chat.set_defaults(handler=cmd_chat)

    analyze = sub.add_parser("analyze", help="answer a question about a CSV/Excel file with the sandboxed code "
                                             "interpreter (figures are saved as PNG files)")
    analyze.add_argument("data", type=Path, nargs="?", default=None,
                         help="a .csv or .xlsx file (default: a generated sample sales CSV)")
    analyze.add_argument("question", nargs="?", default="Which region has the highest total revenue? "
                                                        "Make a bar chart of total revenue per region.")
    analyze.add_argument("--max-steps", type=int, default=5)
    analyze.add_argument("--sandbox", choices=["bwrap", "none"], default="bwrap",
                         help="'none' runs model-written code unsandboxed on this machine: only for trusted setups")
    add_model_options(analyze)
    add_trace_options(analyze)
    add_record_option(analyze)
    analyze.set_defaults(handler=cmd_analyze)

    models = sub.add_parser("models", help="download and list the embedded models")
    msub = models.add_subparsers(dest="models_command", required=True)
    pull = msub.add_parser("pull", help="download, assemble and verify a model (hash-checked)")
    pull.add_argument("names", nargs="*", help="catalogue names (default: the default model)")
    pull.add_argument("--verify", action="store_true", help="re-hash a model that is already present")
    pull.set_defaults(handler=cmd_models_pull)
    lst = msub.add_parser("list", help="show the catalogue and what is present")
    lst.set_defaults(handler=cmd_models_list)
    convert = msub.add_parser("convert", help="convert a model to a bf16 Hugging Face folder (Transformers, vLLM) "
                                              "once, verify it, and print its path")
    convert.add_argument("name", nargs="?", default=None, help="catalogue name (default: the default model)")
    convert.set_defaults(handler=cmd_models_convert)


def _agent_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tool", "-t", action="append", default=[], dest="tools",
                   help="a built-in tool to enable (repeatable), e.g. calculator, current_time")
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument("--max-steps", type=int, default=8)
    p.add_argument("--show-reasoning", action="store_true", help="show <think> text")
    add_model_options(p)
    add_trace_options(p)
    add_record_option(p)


def _make_agent(args: argparse.Namespace) -> Agent:  # Agent is imported lazily: keeps `models list` fast
    from qwen_agent.agents import Agent

    return Agent(build_model(args), tools=args.tools, system=args.system, max_steps=args.max_steps,
                 record=args.record)


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    agent = _make_agent(args)
    printer = EventPrinter(console, show_reasoning=args.show_reasoning)
    try:
        result = printer.follow(agent, args.task, show=not args.json)
    finally:
        agent.close()
    if args.json:
        # Plain stdout, not rich: rich would wrap long lines inside JSON strings.
        sys.stdout.write(json.dumps(result.to_openai(), ensure_ascii=False, indent=2) + "\n")
    return 1 if result.stop_reason == "model_error" else 0


def cmd_chat(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.messages import Message

    agent = _make_agent(args)
    printer = EventPrinter(console, show_reasoning=args.show_reasoning)
    history: list[Message] = []
    tools = ", ".join(args.tools) or "none"
    console.print(f"[dim]qwen-agent chat — tools: {escape(tools)} — /reset clears, /exit or Ctrl-D quits[/]")
    try:
        while True:
            try:
                line = console.input("[bold]you> [/]").strip()
            except EOFError:
                console.print()
                return 0
            if not line:
                continue
            if line in ("/exit", "/quit"):
                return 0
            if line == "/reset":
                history = []
                console.print("[dim]history cleared[/]")
                continue
            console.print("[bold magenta]agent>[/] ", end="")
            result = printer.follow(agent, [*history, Message.user(line)])
            # On a model error the user turn stays out of history; the user can simply retry.
            if result.stop_reason != "model_error":
                history = result.messages
    finally:
        agent.close()


def cmd_analyze(args: argparse.Namespace, console: Console) -> int:
    import tempfile

    from qwen_agent.agents.analyst import analyst_agent
    from qwen_agent.tools.code_interpreter import write_sample_csv

    data = args.data or write_sample_csv(Path(tempfile.mkdtemp(prefix="qwen-agent-sample-")) / "sales.csv")
    agent, interpreter = analyst_agent(data, build_model(args), max_steps=args.max_steps, sandbox=args.sandbox)
    if args.record is not None:
        from qwen_agent.trajectories import TrajectoryRecorder

        agent.recorder = TrajectoryRecorder(args.record)
    printer = EventPrinter(console)
    result = None
    work_dir: Path | None = None
    try:
        result = printer.follow(agent, args.question)
        if interpreter.kernel is not None:
            # Read the work dir while the kernel is up: once the agent is closed the interpreter has no kernel and
            # `interpreter.work_dir` raises. The folder itself stays on disk.
            work_dir = interpreter.work_dir
            notebook = interpreter.save_notebook()
            console.print(f"[dim]notebook: {escape(str(notebook))}[/]", highlight=False)
    finally:
        agent.close()
    for figure in sorted(work_dir.glob("figure-*.png")) if work_dir is not None else []:
        console.print(f"figure: {escape(str(figure))}", highlight=False)
    return 0 if result is not None and result.stop_reason == "answer" else 1


def cmd_models_pull(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    from qwen_agent.llm.distribution import store

    names = args.names or [store.DEFAULT_MODEL]
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True) as progress:
        for name in names:
            task = progress.add_task(f"{name}", total=None)

            def report(p: store.PullProgress, _task: TaskID = task, _name: str = name) -> None:
                progress.update(_task, completed=p.done, total=p.total, description=f"{_name}: {p.stage} {p.item}")

            path = store.pull(name, progress=report, verify=args.verify)
            console.print(f"[green]✓[/] {escape(name)} → {escape(str(path))}", highlight=False)
    return 0


def cmd_models_list(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.llm.distribution import store

    table = Table("name", "present", "size", "path", title="embedded models")
    for info in store.list_models():
        size = f"{info.size / 1e6:,.0f} MB" if info.size else "-"
        name = f"{info.name} (default)" if info.default else info.name
        table.add_row(name, ("verified" if info.verified else "yes") if info.present else "no", size, str(info.path))
    console.print(table, soft_wrap=True)
    for info in store.list_models():
        console.print(f"[dim]{escape(info.name)}: {escape(info.description)}[/]", highlight=False)
    return 0


def cmd_models_convert(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.llm.distribution import hf_convert, store

    name = args.name or store.DEFAULT_MODEL
    with console.status(f"{name}: checking the converted folder (a first conversion takes a minute or two)") as status:
        path = hf_convert.ensure_hf_model(name, progress=lambda p: status.update(f"{name}: {p.stage} {p.detail}"))
    sys.stdout.write(f"{path}\n")  # plain stdout: scripts read the path
    return 0
