"""The `qwen-agent` command line: chat, one-shot runs, and managing the embedded models."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from rich.console import Console

from qwen_agent.cli import commands, knowledge, observe, serve
from qwen_agent.cli import eval as eval_cmd
from qwen_agent.cli.render import EventPrinter

__all__ = ["EventPrinter", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen-agent", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    commands.register(sub)
    knowledge.register(sub)
    serve.register(sub)
    eval_cmd.register(sub)
    observe.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    console = Console(stderr=False)
    try:
        with observe.tracing_for(args):
            return int(args.handler(args, console) or 0)
    except KeyboardInterrupt:
        console.print("\n[dim]interrupted[/]")
        return 130
    except Exception as exc:
        from qwen_agent.errors import QwenAgentError

        if isinstance(exc, QwenAgentError):
            Console(stderr=True).print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
