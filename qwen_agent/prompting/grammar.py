"""GBNF grammars for llama.cpp constrained decoding: a reply is either a plain answer or valid calls of the tools.

The argument rules come from llama-cpp-python's own JSON-schema converter (``SchemaConverter``), one instance for
all tools so shared rules (``string``, ``number``, ...) are emitted once and each tool's rules get their own prefix.
The plain-answer branch may not begin with a character that starts call syntax, so the model has to choose between
answering and calling at its first token instead of drifting into half a call.
"""

from __future__ import annotations

import copy
from typing import Any

from qwen_agent.errors import QwenAgentError
from qwen_agent.messages import ToolSchema

__all__ = ["GrammarError", "argument_rules", "literal", "nous_grammar", "qwen_grammar", "react_grammar"]


class GrammarError(QwenAgentError):
    """A grammar could not be built (llama-cpp-python missing, or a tool schema the converter cannot express)."""


def literal(s: str) -> str:
    """A GBNF string literal."""
    escaped = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def argument_rules(tools: list[ToolSchema]) -> tuple[str, list[str]]:
    """The converter's rules for every tool's argument schema, and the rule name of each tool's arguments."""
    if not tools:
        raise GrammarError("a tool-call grammar needs at least one tool; pass tools or turn constrained decoding off")
    try:
        from llama_cpp.llama_grammar import SchemaConverter  # heavy and optional: imported only when needed
    except ImportError as exc:
        raise GrammarError(
            "constrained decoding needs llama-cpp-python (pip install 'llama-cpp-python==0.3.36')"
        ) from exc
    conv = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    names: list[str] = []
    for i, tool in enumerate(tools):
        schema: dict[str, Any] = copy.deepcopy(tool.parameters) or {"type": "object"}
        schema.setdefault("type", "object")
        try:
            schema = conv.resolve_refs(schema, f"tool{i}")
            names.append(conv.visit(schema, f"tool{i}-args"))
        except Exception as exc:  # the converter signals unsupported schemas with assorted exceptions
            raise GrammarError(
                f"cannot turn the parameters of tool {tool.name!r} into a grammar ({exc}); "
                "simplify its schema or turn constrained decoding off"
            ) from exc
    return conv.format_grammar(), names


def _answer(forbidden_first: str) -> str:
    # Any text, as long as its first character cannot begin call syntax (or be whitespace hiding such a start).
    return f"fc-answer ::= [^{forbidden_first} \\t\\r\\n] [^\\x00]*"


def _repeat(rule: str, parallel: bool, sep: str = '"\\n"') -> str:
    return f"{rule} ({sep} {rule})*" if parallel else rule


def nous_grammar(tools: list[ToolSchema], *, parallel: bool = True) -> str:
    """An answer, or bare ``{"name": ..., "arguments": ...}`` object(s), optionally inside ``<tool_call>`` tags."""
    rules, args = argument_rules(tools)
    alts = " | ".join(f"fc-tool-{i}" for i in range(len(tools)))
    lines = [
        "root ::= fc-answer | fc-calls",
        _answer("{<`"),
        f"fc-calls ::= {_repeat('fc-call', parallel)}",
        'fc-call ::= fc-obj | "<tool_call>\\n" fc-obj "\\n</tool_call>"',
        f'fc-obj ::= "{{" space "\\"name\\"" space ":" space ({alts}) "}}"',
    ]
    for i, (tool, arg) in enumerate(zip(tools, args, strict=True)):
        name = literal(f'"{tool.name}"')
        lines.append(f'fc-tool-{i} ::= {name} space "," space "\\"arguments\\"" space ":" space {arg}')
    return "\n".join([*lines, rules]) + "\n"


def qwen_grammar(tools: list[ToolSchema], *, parallel: bool = True) -> str:
    """An answer, or ``✿FUNCTION✿: name`` / ``✿ARGS✿: {json}`` block(s)."""
    rules, args = argument_rules(tools)
    alts = " | ".join(f"fc-tool-{i}" for i in range(len(tools)))
    lines = [
        "root ::= fc-answer | fc-calls",
        _answer("✿{<`"),
        f"fc-calls ::= {_repeat('fc-call', parallel)}",
        f'fc-call ::= "✿FUNCTION✿: " ({alts})',
    ]
    for i, (tool, arg) in enumerate(zip(tools, args, strict=True)):
        lines.append(f"fc-tool-{i} ::= {literal(tool.name + chr(10) + '✿ARGS✿: ')} {arg}")
    return "\n".join([*lines, rules]) + "\n"


def react_grammar(tools: list[ToolSchema], *, parallel: bool = True) -> str:
    """An optional thought line, then ``Action``/``Action Input`` pair(s) or ``Final Answer: ...``."""
    rules, args = argument_rules(tools)
    alts = " | ".join(f"fc-tool-{i}" for i in range(len(tools)))
    lines = [
        "root ::= fc-thought? (fc-calls | fc-final)",
        # The rendered history may already end with "Thought:", so the label itself is optional.
        'fc-thought ::= "Thought:"? [^\\n]* "\\n"',
        'fc-final ::= "Final Answer: " [^\\x00]*',
        f"fc-calls ::= {_repeat('fc-call', parallel)}",
        f'fc-call ::= "Action: " ({alts})',
    ]
    for i, (tool, arg) in enumerate(zip(tools, args, strict=True)):
        lines.append(f"fc-tool-{i} ::= {literal(tool.name + chr(10) + 'Action Input: ')} {arg}")
    return "\n".join([*lines, rules]) + "\n"
