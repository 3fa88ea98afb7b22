"""One recorded run as one training record, in the shape each trainer reads.

* ``openai`` — ``{"messages": [...], "tools": [...]}`` in OpenAI's chat format (arguments as JSON strings): the
  canonical form, the one the other two are derived from and the one `read_openai_record` reads back.
* ``llamafactory`` — LLaMA-Factory's ShareGPT layout: ``conversations`` of ``{"from", "value"}`` with ``human`` /
  ``observation`` at odd positions (1st, 3rd ...) and ``gpt`` / ``function_call`` at even ones, ending on an even
  one; ``system`` and ``tools`` (a JSON string of function definitions) beside it. Its converter
  (``SharegptDatasetConverter``) drops any record breaking that order, so runs are made to fit: parallel calls of
  one reply are one ``function_call`` whose value is a JSON list of ``{"name", "arguments"}`` (a single call is one
  object), their results one ``observation`` joined with ``\\n</tool_response>\\n<tool_response>\\n`` (what
  LLaMA-Factory's own OpenAI-format converter does, so the Qwen template shows one ``<tool_response>`` per result);
  consecutive messages of one side are merged; a run that ends on a user turn or an observation (max_steps, model
  error) is cut back to its last model turn. The text an assistant wrote beside its calls is not kept: the
  ``function_call`` slot holds only the calls.
* ``axolotl`` — Axolotl's ``type: chat_template`` rows: ``messages`` with assistant ``tool_calls`` whose
  ``arguments`` are JSON objects (the chat template iterates them), ``role: tool`` results with ``tool_call_id``
  and ``name``, and ``tools``; like the ShareGPT export, a run is cut back to its last assistant turn (Axolotl warns
  that a last turn it cannot train on misplaces the end-of-turn label).
"""

from __future__ import annotations

import json
from typing import Any

from qwen_agent.messages import Message, ToolCall, ToolSchema
from qwen_agent.trajectories.record import Trajectory

__all__ = ["OBSERVATION_JOIN", "axolotl_record", "llamafactory_record", "openai_record", "read_openai_record"]

#: How LLaMA-Factory joins the results of parallel calls into one observation.
OBSERVATION_JOIN = "\n</tool_response>\n<tool_response>\n"


def _text(message: Message) -> str:
    return message.text


def _clean(message: Message) -> dict[str, Any]:
    """An OpenAI message with text content and only the keys a chat template reads."""
    d: dict[str, Any] = {"role": message.role, "content": _text(message)}
    if message.tool_calls:
        d["tool_calls"] = [c.to_openai() for c in message.tool_calls]
        d["content"] = d["content"] or None
    if message.role == "tool":
        d["tool_call_id"] = message.tool_call_id
        if message.name:
            d["name"] = message.name
    return d


def _tool_names(messages: list[Message]) -> dict[str, str]:
    """call id -> function name, so tool results can carry the name (templates and Axolotl show it)."""
    return {c.id: c.name for m in messages for c in (m.tool_calls or [])}


def openai_record(run: Trajectory) -> dict[str, Any] | None:
    messages = run.typed_messages()
    if not any(m.role == "assistant" for m in messages):
        return None
    names = _tool_names(messages)
    out = []
    for m in messages:
        d = _clean(m)
        if m.role == "tool" and "name" not in d and m.tool_call_id in names:
            d["name"] = names[m.tool_call_id or ""]
        out.append(d)
    return {"messages": out, "tools": [t.to_openai() for t in run.typed_tools()]}


def read_openai_record(record: dict[str, Any]) -> tuple[list[Message], list[ToolSchema]]:
    """The typed messages and tools of an ``openai`` record (round trips and re-imports)."""
    return ([Message.from_openai(m) for m in record["messages"]],
            [ToolSchema.from_openai(t) for t in record.get("tools") or []])


def _call_value(calls: list[ToolCall]) -> str:
    items = [{"name": c.name, "arguments": c.arguments} for c in calls]
    return json.dumps(items[0] if len(items) == 1 else items, ensure_ascii=False)


_SIDE = {"human": 0, "observation": 0, "gpt": 1, "function_call": 1}


def llamafactory_record(run: Trajectory) -> dict[str, Any] | None:
    """The ShareGPT record, or None when no model turn is left after fitting LLaMA-Factory's order."""
    messages = run.typed_messages()
    system = "\n\n".join(_text(m) for m in messages if m.role == "system")
    turns: list[dict[str, str]] = []

    def add(tag: str, value: str, join: str = "\n\n") -> None:
        if turns and turns[-1]["from"] == tag:  # two turns of one side in a row: one turn
            turns[-1]["value"] += join + value
        elif turns and _SIDE[turns[-1]["from"]] == _SIDE[tag]:
            # e.g. gpt then function_call (an answer, then calls): the order rules allow one per side; keep the later
            turns[-1] = {"from": tag, "value": value}
        else:
            turns.append({"from": tag, "value": value})

    for m in messages:
        if m.role == "system":
            continue
        if m.role == "user":
            add("human", _text(m))
        elif m.role == "tool":
            add("observation", _text(m), OBSERVATION_JOIN)
        elif m.tool_calls:
            add("function_call", _call_value(m.tool_calls))
        else:
            add("gpt", _text(m))
    while turns and _SIDE[turns[-1]["from"]] == 0:
        turns.pop()
    if not turns or _SIDE[turns[0]["from"]] != 0:
        return None
    tools = [t.model_dump(exclude_none=True) for t in run.typed_tools()]
    return {"conversations": turns, "system": system, "tools": json.dumps(tools, ensure_ascii=False)}


def axolotl_record(run: Trajectory) -> dict[str, Any] | None:
    messages = run.typed_messages()
    if not any(m.role == "assistant" for m in messages):
        return None
    names = _tool_names(messages)
    out: list[dict[str, Any]] = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": _text(m)}
        if m.tool_calls:
            d["tool_calls"] = [{"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls]
        if m.role == "tool":
            d["tool_call_id"] = m.tool_call_id
            d["name"] = m.name or names.get(m.tool_call_id or "", "")
        out.append(d)
    while out[-1]["role"] != "assistant":  # the any() above guarantees one
        out.pop()
    return {"messages": out, "tools": [t.to_openai() for t in run.typed_tools()]}
