"""Function-calling prompt formats (nous, qwen, react): templates that describe tools, parsers that read calls.

The path of a prompted tool call, in order: ``plan_prompted`` (llm/planning.py) renders the history with a
format's ``render`` (``render.py`` + ``templates/*.j2``); the reply goes to the format's ``parse`` / ``stream_parser``,
which every format gets from ``reader.ReplyReader``; that runs ``scan.Scanner`` over the text with the format's
recognizers (the format module's own, plus the shared tags, fences and bare JSON of ``syntax.py``); bracket spans come
from ``spans.py``, values are decoded by ``lenient_json.py`` within a repair budget, and ``call_shapes.py`` turns
what was decoded into ``ToolCall``s. Native calls (the server's own tool parser) are read in
``llm/backends/openai_wire.py`` instead.
"""

from __future__ import annotations

import functools

from qwen_agent.prompting.base import FunctionFormat, ParsedReply, StreamDelta, StreamParser
from qwen_agent.prompting.notes import render_note

__all__ = ["FORMATS", "FunctionFormat", "ParsedReply", "StreamDelta", "StreamParser", "get_format", "render_note"]

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
