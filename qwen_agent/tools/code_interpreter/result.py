"""What one cell execution produced, collected from Jupyter iopub messages in order (nbformat-shaped outputs).

The collector caps what it keeps on the host: a runaway ``while True: print(...)`` must not grow the host's memory
without bound, so beyond ``keep_chars`` per stream only a rolling tail is kept and the rest is counted as dropped;
rich outputs (images, HTML, JSON) share one byte budget and images have a size cap, beyond which they are dropped
and counted. Messages come from the sandbox and are hostile input: one whose fields do not have the types nbformat
requires is dropped (and counted) before anything records it, so it cannot break the notebook export later.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["ErrorInfo", "ExecutionResult", "OutputCollector", "Status"]

Status = Literal["ok", "error", "timeout", "died"]


class ErrorInfo(BaseModel):
    """An exception raised by the user's code (``traceback`` still raw: ANSI codes, all frames)."""

    ename: str
    evalue: str
    traceback: list[str] = Field(default_factory=list)


class ExecutionResult(BaseModel):
    """One execution. ``outputs`` are nbformat v4 output dicts in arrival order (used for notebook export)."""

    status: Status
    execution_count: int | None = None
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    error: ErrorInfo | None = None
    dropped_chars: int = Field(0, description="stream characters received but not kept (flood protection)")
    dropped_outputs: int = Field(0, description="rich outputs not kept: over the output budget or malformed")
    restarted: bool = False
    notice: str | None = Field(None, description="what happened to the kernel (interrupt, restart, state lost)")
    elapsed_s: float = 0.0

    def stream(self, name: Literal["stdout", "stderr"]) -> str:
        return "".join(o["text"] for o in self.outputs if o["output_type"] == "stream" and o["name"] == name)

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    @property
    def result(self) -> dict[str, Any] | None:
        """The mime bundle of the last expression's value (``execute_result``), if any."""
        for out in reversed(self.outputs):
            if out["output_type"] == "execute_result":
                data: dict[str, Any] = out["data"]
                return data
        return None

    @property
    def displays(self) -> list[dict[str, Any]]:
        return [o["data"] for o in self.outputs if o["output_type"] == "display_data"]


class OutputCollector:
    """Turns iopub messages of one execution into nbformat outputs, keeping at most ``keep_chars`` per stream,
    ``rich_bytes`` of rich output in all and no image over ``image_bytes`` (decoded)."""

    def __init__(self, keep_chars: int = 200_000, rich_bytes: int = 32 * 1024 * 1024,
                 image_bytes: int = 8 * 1024 * 1024) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.error: ErrorInfo | None = None
        self.execution_count: int | None = None
        self.received_chars = 0
        self.dropped_chars = 0
        self.dropped_outputs = 0
        self._keep = keep_chars
        self._rich_left = rich_bytes
        self._image_b64 = image_bytes * 4 // 3 + 4
        self._kept: dict[str, int] = {}
        self._tails: dict[str, deque[str]] = {}
        self._tail_len: dict[str, int] = {}
        self.idle = False

    def add(self, msg: dict[str, Any]) -> None:
        """Record one iopub message; a malformed one is dropped and counted, never raised."""
        try:
            kind = msg["header"]["msg_type"]
            content = msg["content"]
            if not isinstance(content, dict):
                raise TypeError("content is not an object")
            self._add(kind, content)
        except (KeyError, TypeError, ValueError, RecursionError):
            self.dropped_outputs += 1

    def _add(self, kind: str, content: dict[str, Any]) -> None:
        if kind == "status":
            self.idle = content.get("execution_state") == "idle"
        elif kind == "stream":
            name, text = content["name"], content["text"]
            if name not in ("stdout", "stderr") or not isinstance(text, str):
                raise TypeError("bad stream")
            self._add_stream(name, text)
        elif kind in ("execute_result", "display_data"):
            self._add_rich(kind, content)
        elif kind == "update_display_data":
            pass  # progress widgets re-rendering in place; the final state arrives as display_data/stream anyway
        elif kind == "clear_output":
            self.outputs = [o for o in self.outputs if o["output_type"] == "error"]
        elif kind == "error":
            ename, evalue, tb = content["ename"], content["evalue"], content["traceback"]
            if not isinstance(ename, str) or not isinstance(evalue, str) or not isinstance(tb, list):
                raise TypeError("bad error")
            self.error = ErrorInfo(ename=ename, evalue=evalue, traceback=[t for t in tb if isinstance(t, str)])
            self.outputs.append({"output_type": "error", **self.error.model_dump()})
        elif kind == "execute_input":
            count = content.get("execution_count")
            self.execution_count = count if isinstance(count, int) and not isinstance(count, bool) else None

    def _add_rich(self, kind: str, content: dict[str, Any]) -> None:
        data, metadata = content.get("data", {}), content.get("metadata", {})
        if not isinstance(data, dict) or not isinstance(metadata, dict):
            raise TypeError("bad mime bundle")
        size = 0
        for mime, value in data.items():
            if not isinstance(mime, str) or "/" not in mime:
                raise TypeError("bad mime type")
            if isinstance(value, str):
                if mime.startswith("image/") and len(value) > self._image_b64:
                    raise ValueError("image over the size cap")
                size += len(value)
            elif mime.endswith("json") and isinstance(value, (dict, list)):
                size += len(json.dumps(value))
            else:
                raise TypeError("bad mime value")
        self.received_chars += size
        if size > self._rich_left:
            raise ValueError("over the rich output budget")
        self._rich_left -= size
        out: dict[str, Any] = {"output_type": kind, "data": data, "metadata": _jsonable(metadata)}
        if kind == "execute_result":
            count = content.get("execution_count")
            out["execution_count"] = count if isinstance(count, int) and not isinstance(count, bool) else None
        self.outputs.append(out)

    def _add_stream(self, name: str, text: str) -> None:
        self.received_chars += len(text)
        kept = self._kept.get(name, 0)
        if kept < self._keep:
            head = text[: self._keep - kept]
            self._kept[name] = kept + len(head)
            self._append_stream(name, head)
            text = text[len(head):]
        if text:  # over budget: keep a rolling tail of the same size, count what falls out
            tail = self._tails.setdefault(name, deque())
            tail.append(text)
            self._tail_len[name] = self._tail_len.get(name, 0) + len(text)
            limit = max(self._keep // 4, 1)
            while self._tail_len[name] > limit:
                excess = self._tail_len[name] - limit
                if len(tail[0]) <= excess:
                    dropped = len(tail.popleft())
                else:
                    tail[0] = tail[0][excess:]
                    dropped = excess
                self._tail_len[name] -= dropped
                self.dropped_chars += dropped

    def _append_stream(self, name: str, text: str) -> None:
        if self.outputs and self.outputs[-1]["output_type"] == "stream" and self.outputs[-1]["name"] == name:
            self.outputs[-1]["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def finish(self) -> list[dict[str, Any]]:
        """Flush the kept tails (after a marker saying how much was dropped) and return the outputs."""
        for name, tail in self._tails.items():
            marker = f"\n[... {self.dropped_chars:,} characters of {name} dropped ...]\n" if self.dropped_chars else ""
            self._append_stream(name, marker + "".join(tail))
        self._tails.clear()
        return self.outputs


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items()
            if isinstance(k, str) and (isinstance(v, (str, int, float, bool, dict, list)) or v is None)}
