"""The CLI's document commands: `index DIR` builds or updates an index store, `ask` answers from documents."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from qwen_agent.cli.backend import add_model_options, build_model
from qwen_agent.cli.render import EventPrinter
from qwen_agent.paths import default_index_dir

if TYPE_CHECKING:
    from qwen_agent.retrieval import IndexReport, KnowledgeBase

__all__ = ["cmd_ask", "cmd_index", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    index = sub.add_parser("index", help="index a folder of documents (txt, md, html, pdf, docx, pptx, csv, xlsx)")
    index.add_argument("docs", type=Path, help="the folder (or one file) to index")
    index.add_argument("--store", type=Path, default=None, help="index folder (default: in the user cache)")
    index.add_argument("--embedding-model", default=None, help="a sentence-transformers model path or name")
    index.set_defaults(handler=cmd_index)

    ask = sub.add_parser("ask", help="answer a question from your documents, with citations")
    ask.add_argument("question")
    src = ask.add_mutually_exclusive_group(required=True)
    src.add_argument("--docs", type=Path, help="a documents folder (indexed or updated first)")
    src.add_argument("--store", type=Path, help="an index folder made by `qwen-agent index`")
    ask.add_argument("--embedding-model", default=None)
    ask.add_argument("--token-budget", type=int, default=1500, help="prompt tokens for passages")
    ask.add_argument("--show-passages", action="store_true", help="print the passages given to the model")
    add_model_options(ask)
    ask.set_defaults(handler=cmd_ask)


def _build(docs: Path, store: Path, model: str | None, console: Console) -> KnowledgeBase:
    from qwen_agent.retrieval import KnowledgeBase

    kb = KnowledgeBase.build(docs, store, model=model, progress=console.is_terminal)
    report = kb.last_report
    if report is not None:
        console.print(f"[dim]{escape(_summary(report))}[/]", highlight=False)
        for err in report.errors:
            console.print(f"[yellow]skipped[/] {escape(str(err.path))}: {escape(err.message)}", highlight=False)
    return kb


def _summary(report: IndexReport) -> str:
    return (f"{len(report.added)} new, {len(report.updated)} changed, {len(report.removed)} removed, "
            f"{len(report.unchanged)} unchanged files; {report.total_chunks} chunks ({report.seconds:.1f} s)")


def cmd_index(args: argparse.Namespace, console: Console) -> int:
    store = args.store or default_index_dir(args.docs)
    kb = _build(args.docs, store, args.embedding_model, console)
    stats = kb.stats()
    kb.close()
    console.print(f"[green]✓[/] {stats['documents']} documents, {stats['chunks']} chunks ({stats['index_kind']}) "
                  f"in {escape(str(store))}", highlight=False)
    return 1 if kb.last_report is not None and not kb.last_report.ok else 0


def cmd_ask(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.agents import Assistant
    from qwen_agent.retrieval import KnowledgeBase

    if args.docs is not None:
        kb = _build(args.docs, default_index_dir(args.docs), args.embedding_model, console)
    else:
        kb = KnowledgeBase.open(args.store, model=args.embedding_model)
    agent = Assistant(build_model(args), knowledge=kb, token_budget=args.token_budget)
    if args.show_passages:
        console.print(f"[dim]{escape(agent.knowledge_note(agent.passages(args.question)))}[/]", highlight=False)
    result = None
    try:
        result = EventPrinter(console).follow(agent, args.question)
    finally:
        agent.close()
    return 0 if result is not None and result.stop_reason == "answer" else 1
