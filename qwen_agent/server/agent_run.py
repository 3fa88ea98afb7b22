"""A profile's own agent run as OpenAI chunks: answer text as ``content``; each server-side tool step as a
trace line in ``reasoning_content`` and ``reasoning`` plus a structured ``x_agent_event`` (never as
``tool_calls``: a client would try to run them); figures as markdown images; RAG sources as annotations."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from qwen_agent.agents import (
    Agent,
    FinalAnswer,
    ReasoningDelta,
    StepFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from qwen_agent.messages import Message
from qwen_agent.server.citations import annotations_for
from qwen_agent.server.errors import from_model_error
from qwen_agent.server.profiles import ProfileRuntime
from qwen_agent.server.protocol import Completion
from qwen_agent.server.sessions import Session

if TYPE_CHECKING:
    from qwen_agent.retrieval import Hit

__all__ = ["agent_chunks"]

_ARGS_SHOWN = 300
_RESULT_SHOWN = 2000


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reasoning(text: str) -> dict[str, Any]:
    return {"reasoning_content": text, "reasoning": text}


async def agent_chunks(runtime: ProfileRuntime, agent: Agent, messages: list[Message], completion: Completion,
                       session: Session | None, base_url: str) -> AsyncIterator[dict[str, Any]]:
    """Yield chunk bodies (without the opening role chunk); the usage chunk comes last. A model failure raises
    the matching `APIError` (502/504)."""
    content: list[str] = []
    finish = "stop"
    async for event in agent.astream(messages):
        if isinstance(event, TextDelta):
            if event.content:
                content.append(event.content)
                yield completion.chunk({"content": event.content})
        elif isinstance(event, ReasoningDelta):
            if event.content:
                yield completion.chunk(_reasoning(event.content))
        elif isinstance(event, ToolCallStarted):
            args = json.dumps(event.call.arguments, ensure_ascii=False)
            line = f"→ {event.call.name}({_one_line(args, _ARGS_SHOWN)})\n"
            yield completion.chunk(_reasoning(line), event={
                "type": "tool_call", "step": event.step, "call_id": event.call.id, "tool": event.call.name,
                "arguments": event.call.arguments})
        elif isinstance(event, ToolCallFinished):
            figures = _figures(event, session, base_url)
            out = event.output
            status = "error" if out.is_error else "ok"
            line = f"← {event.call.name} {status} in {event.elapsed_s:.2f} s: {_one_line(out.text, 200)}\n"
            yield completion.chunk(_reasoning(line), event={
                "type": "tool_result", "step": event.step, "call_id": event.call.id, "tool": event.call.name,
                "arguments": event.call.arguments, "result": _clip(out.text, _RESULT_SHOWN),
                "is_error": out.is_error, "elapsed_s": round(event.elapsed_s, 4),
                "figures": [f["url"] for f in figures], "files": figures})
            images = "".join(f"\n\n![{f['name']}]({f['url']})\n\n" for f in figures if f["image"])
            if images:
                content.append(images)
                yield completion.chunk({"content": images})
        elif isinstance(event, StepFinished):
            finish = "length" if event.response.finish_reason == "length" else "stop"
        elif isinstance(event, FinalAnswer):
            result = event.result
            if result.stop_reason == "model_error":
                raise from_model_error(result.error_type, result.error or "model error")
            if result.stop_reason == "max_steps":
                finish = "length"
            hits = getattr(agent, "hits", None)
            if hits:
                notes = annotations_for("".join(content), hits, base_url, runtime.name, runtime.sources,
                                        _upload_url(session, base_url))
                if notes:
                    yield completion.chunk({"annotations": notes})
            yield completion.chunk({}, finish_reason=finish)
            yield completion.usage_chunk(result.usage)


def _upload_url(session: Session | None, base_url: str) -> Callable[[Hit], str | None]:
    """The session file URL of a passage that came from the session's uploads, else None."""
    def url(hit: Hit) -> str | None:
        if session is None or session.uploads_dir is None or Path(hit.path).parent != session.uploads_dir.resolve():
            return None
        name = Path(hit.path).name
        return f"{base_url}/v1/files/{session.token}/{quote(name)}" if name in session.uploads else None
    return url


def _figures(event: ToolCallFinished, session: Session | None, base_url: str) -> list[dict[str, Any]]:
    """The files a tool call reported inside the session's work dir, registered and given their URLs."""
    if session is None or session.interpreter is None or session.interpreter.kernel is None:
        return []
    root = str(session.interpreter.work_dir)
    out = []
    for ref in event.output.files:
        if not ref.path:
            continue
        rel = os.path.relpath(os.path.abspath(ref.path), root)
        if rel.startswith("..") or os.path.isabs(rel):
            continue
        name = session.register_file(rel)
        image = (ref.mime_type or "") in ("image/png", "image/jpeg")
        out.append({"name": name, "url": f"{base_url}/v1/files/{session.token}/{quote(name)}", "image": image,
                    "mime_type": ref.mime_type})
    return out
