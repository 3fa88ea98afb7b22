"""One recorded run (`Trajectory`), the recorder that appends runs to a folder, and the reader that loads them back.

A run is what fine-tuning needs and what selecting good runs needs: the messages (OpenAI shape, the system prompt
included), the tool schemas offered, the model, backend and function-calling format used, and the outcome (stop
reason, steps, usage, an eval score when there is one). Each process appends to its own
``<folder>/runs-<time>-<pid>.jsonl`` (one JSON line per run, written with one ``write`` and flushed), so several
processes can record into one folder and a crash loses at most the line being written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from qwen_agent.errors import QwenAgentError
from qwen_agent.messages import Message, ToolSchema

__all__ = ["RUN_FILE_GLOB", "Trajectory", "TrajectoryFormatError", "TrajectoryRecorder", "read_trajectories"]

RUN_FILE_GLOB = "*.jsonl"


class TrajectoryFormatError(QwenAgentError):
    """A run file is not what `TrajectoryRecorder` writes (corrupt line, wrong schema); says which file and line."""


class Trajectory(BaseModel):
    """One agent run as recorded for training data. ``messages`` and ``tools`` are OpenAI-shaped dicts."""

    schema_version: Literal[1] = 1
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    agent: str = "Agent"
    model: str = ""
    provider: str = ""
    #: The function-calling format (``nous`` / ``qwen`` / ``react``) and mode (``prompted`` / ``native``) used.
    format: str = ""
    mode: str = ""
    tools: list[dict[str, Any]] = Field(default_factory=list)
    messages: list[dict[str, Any]]
    stop_reason: str | None = None
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    #: Set by `qwen-agent eval --record` (the item's score, 0..1) and the item id.
    score: float | None = None
    task_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def build(cls, messages: Iterable[Message], tools: Iterable[ToolSchema], **fields: Any) -> Trajectory:
        return cls(messages=[m.to_openai() for m in messages], tools=[t.to_openai() for t in tools], **fields)

    def typed_messages(self) -> list[Message]:
        return [Message.from_openai(m) for m in self.messages]

    def typed_tools(self) -> list[ToolSchema]:
        return [ToolSchema.from_openai(t) for t in self.tools]


class TrajectoryRecorder:
    """Append `Trajectory` lines to a file of its own in ``folder`` (created on first write). Thread-safe."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        self.path = self.folder / f"runs-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def write(self, trajectory: Trajectory) -> None:
        line = trajectory.model_dump_json() + "\n"
        with self._lock:
            if self._file is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.rglob(RUN_FILE_GLOB))
            if not found:
                raise TrajectoryFormatError(f"{path} holds no recorded runs (*.jsonl); record with "
                                            "Agent(record=FOLDER) or --record FOLDER")
            yield from found
        elif path.is_file():
            yield path
        else:
            raise TrajectoryFormatError(f"{path} does not exist")


def read_trajectories(paths: Iterable[str | Path]) -> Iterator[Trajectory]:
    """Every run in ``paths`` (run files, or folders searched for ``*.jsonl``), in file and line order."""
    for path in _files(paths):
        with path.open(encoding="utf-8", errors="strict") as f:
            try:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        yield Trajectory.model_validate(json.loads(line))
                    except (ValueError, ValidationError) as exc:
                        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                        raise TrajectoryFormatError(f"{path}:{number}: not a recorded run ({first}); was the file "
                                                    "written by qwen-agent's recorder?") from exc
            except UnicodeDecodeError as exc:
                raise TrajectoryFormatError(f"{path}: not UTF-8 text ({exc.reason}); not a recorded run") from exc
