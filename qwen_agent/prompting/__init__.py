"""Function-calling prompt formats (nous, qwen, react): templates that describe tools, parsers that read calls."""

from __future__ import annotations

import functools

from qwen_agent.prompting.base import FunctionFormat, ParsedReply, StreamDelta, StreamParser
from qwen_agent.prompting.notes import render_note

__all__ = ["FunctionFormat", "ParsedReply", "StreamDelta", "StreamParser", "get_format", "render_note", "FORMATS"]

FORMATS = ("nous", "qwen", "react")


@functools.cache
def get_format(name: str) -> FunctionFormat:
    """The format called ``name`` (one of `FORMATS`). Formats are stateless, so one shared instance each."""
    if name == "nous":
        from qwen_agent.prompting.nous import NousFormat

        return NousFormat()
    if name == "qwen":
        from qwen_agent.prompting.qwen import QwenFormat

        return QwenFormat()
    if name == "react":
        from qwen_agent.prompting.react import ReActFormat

        return ReActFormat()
    raise ValueError(f"unknown function-calling format {name!r}; choose one of {', '.join(FORMATS)}")
