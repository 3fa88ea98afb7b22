"""The CLI's `serve` command: agent profiles behind an OpenAI-compatible API and a chat page (`qwen_agent.server`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from qwen_agent.cli.observe import add_trace_options

__all__ = ["cmd_serve", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve agents as an OpenAI-compatible API (/v1/chat/completions) and a chat "
                                     "page at /")
    p.add_argument("--config", type=Path, default=None, help="agents.toml: profiles and server limits")
    p.add_argument("--model", "-m", default=None,
                   help="default model spec of the profiles (llamacpp:, openai:URL[#name], transformers:); "
                        "env QWEN_AGENT_MODEL_SPEC; default: the embedded model")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; any other address "
                                                "needs --api-key)")
    p.add_argument("--port", type=int, default=None, help="port (default 8080)")
    p.add_argument("--api-key", action="append", default=None, dest="api_keys",
                   help="a bearer key clients must send (repeatable; env QWEN_AGENT_SERVE_API_KEY)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--docs", type=Path, default=None, help="documents folder for the default `rag` profile")
    src.add_argument("--store", type=Path, default=None, help="index store for the default `rag` profile")
    p.add_argument("--max-sessions", type=int, default=None)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_trace_options(p)
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    from qwen_agent.server import check_exposure, load_config, serve

    overrides = {"host": args.host, "port": args.port, "api_keys": args.api_keys, "max_sessions": args.max_sessions}
    config = load_config(args.config, overrides)
    if args.model is not None:
        config = config.model_copy(update={"model": args.model})
        config = type(config).model_validate(config.model_dump())  # re-checks the spec
    config = config.with_defaults(docs=args.docs, store=args.store)
    check_exposure(config)
    s = config.server
    console.print(f"[green]serving[/] {', '.join(config.profiles)} at http://{escape(s.host)}:{s.port}/v1 "
                  f"(chat page: http://{escape(s.host)}:{s.port}/)"
                  + ("" if s.api_keys else " [dim]no API key: loopback only[/]"), highlight=False)
    serve(config, log_level=args.log_level)
    return 0
