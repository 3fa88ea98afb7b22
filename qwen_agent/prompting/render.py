"""Rendering a tool-use history into plain system/user/assistant messages, shared by the three formats.

The wording lives in ``templates/*.j2`` as macros (compiled once, `jinja.macros`); this module does the structural
work: find or create the system message, turn calls into text, place tool results (as a user message for ``nous``,
inside the assistant turn for ``qwen``/``react``) and keep images and files as content parts.
"""

from __future__ import annotations

from typing import Any

from qwen_agent.messages import ContentPart, Message, TextPart, ToolCall, ToolSchema
from qwen_agent.prompting.jinja import macros

__all__ = [
    "Draft",
    "call_dicts",
    "default_system",
    "non_text_parts",
    "parts_of",
    "render_inline",
    "text",
    "tool_dicts",
]

def default_system() -> str:
    return str(macros("system.j2").default())


def tool_dicts(tools: list[ToolSchema]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]


def call_dicts(calls: list[ToolCall] | None) -> list[dict[str, Any]]:
    return [{"name": c.function.name, "arguments": c.function.arguments} for c in calls or []]


def parts_of(content: str | list[ContentPart] | None) -> list[ContentPart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(text=content)] if content else []
    return list(content)


def non_text_parts(msg: Message) -> list[ContentPart]:
    return [p for p in parts_of(msg.content) if not isinstance(p, TextPart)]


class Draft:
    """Output messages under construction, each a role plus content parts (merged into strings at the end)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, list[ContentPart]]] = []
        #: The last item was made from tool results (nous) or ended with them (qwen/react).
        self.after_results = False

    def add(self, role: str, parts: list[ContentPart]) -> None:
        self.items.append((role, parts))
        self.after_results = False

    def extend_last(self, parts: list[ContentPart]) -> None:
        self.items[-1][1].extend(parts)

    @property
    def last_role(self) -> str | None:
        return self.items[-1][0] if self.items else None

    def build(self, system_addition: str) -> list[Message]:
        """Messages with the tool description added to (or forming) the system message."""
        items = self.items
        if items and items[0][0] == "system":
            if system_addition:
                first = items[0][1]
                first.append(TextPart(text=("\n\n" if first else "") + system_addition))
        else:
            head = default_system() + ("\n\n" + system_addition if system_addition else "")
            items = [("system", [TextPart(text=head)]), *items]
        return [Message(role=role, content=_collapse(parts)) for role, parts in items]  # type: ignore[arg-type]


def _collapse(parts: list[ContentPart]) -> str | list[ContentPart]:
    """Join adjacent text parts; a message that is only text becomes a plain string."""
    out: list[ContentPart] = []
    for p in parts:
        if isinstance(p, TextPart) and out and isinstance(out[-1], TextPart):
            out[-1] = TextPart(text=out[-1].text + p.text)
        else:
            out.append(p)
    if all(isinstance(p, TextPart) for p in out):
        return "".join(p.text for p in out)  # type: ignore[union-attr]
    return out


def text(s: Any) -> list[ContentPart]:
    s = str(s)
    return [TextPart(text=s)] if s else []


def render_inline(messages: list[Message], tools: list[ToolSchema], parallel: bool, template: str) -> list[Message]:
    """qwen / react: calls and results become text inside the assistant turn, which the model then continues."""
    t = macros(template)
    draft = Draft()
    for msg in messages:
        if msg.role in ("system", "user"):
            draft.add(msg.role, parts_of(msg.content))
        elif msg.role == "assistant":
            thought = msg.reasoning_content or ""
            if draft.after_results and draft.last_role == "assistant":
                draft.extend_last(text(t.after_results(msg.text, call_dicts(msg.tool_calls), thought)))
                draft.extend_last(non_text_parts(msg))
                draft.after_results = False
            elif msg.tool_calls:
                draft.add("assistant", text(t.turn(msg.text, call_dicts(msg.tool_calls), thought)))
                draft.extend_last(non_text_parts(msg))
            else:
                draft.add("assistant", parts_of(msg.content))
        else:  # a tool result
            if draft.last_role != "assistant":  # a result without its call: still show it to the model
                draft.add("assistant", [])
            draft.extend_last(text(t.result_open()) + parts_of(msg.content))
            draft.after_results = True
    if draft.after_results and draft.last_role == "assistant":
        draft.extend_last(text(t.resume()))
    section = str(t.system(tool_dicts(tools), parallel)) if tools else ""
    return draft.build(section)
