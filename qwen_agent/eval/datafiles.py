"""Reading user-supplied benchmark files (JSONL, JSON, JSON-per-line) with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from qwen_agent.eval.errors import EvalDataError

__all__ = ["iter_json_lines", "load_json_or_lines", "load_records", "validate"]

M = TypeVar("M", bound=BaseModel)


def _open_text(path: Path) -> str:
    if not path.exists():
        raise EvalDataError(f"{path}: no such file; pass the benchmark's data file with --data")
    if path.is_dir():
        raise EvalDataError(f"{path} is a folder; pass the data file itself with --data")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"{path}: not UTF-8 text ({exc}); benchmark files are JSON or JSON Lines") from exc


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every non-blank line of a JSON Lines file."""
    for number, line in enumerate(_open_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); each line "
                                "must be one JSON object") from exc


def load_records(path: Path, model: type[M]) -> list[tuple[int, M]]:
    """Validate every line of a JSON Lines file as ``model``; a bad line raises `EvalDataError` naming it."""
    out = []
    for number, value in iter_json_lines(path):
        out.append((number, validate(value, model, f"{path}:{number}")))
    if not out:
        raise EvalDataError(f"{path}: no items (the file is empty)")
    return out


def load_json_or_lines(path: Path) -> list[tuple[str, Any]]:
    """A file that is either one JSON document (an object of items or a list) or JSON Lines: (where, value) pairs,
    ``where`` being ``file:line`` or ``file[key]`` for error messages."""
    text = _open_text(path)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # JSON Lines whose first line is an object
        if isinstance(whole, dict) and not _looks_like_item(whole):
            return [(f"{path}[{key!r}]", {"id": key, **value} if isinstance(value, dict) else value)
                    for key, value in whole.items()]
        if isinstance(whole, list):
            return [(f"{path}[{i}]", value) for i, value in enumerate(whole)]
    return [(f"{path}:{number}", value) for number, value in iter_json_lines(path)]


def _looks_like_item(value: dict[str, Any]) -> bool:
    """One JSON object on one line is a JSON Lines file with one item, not a mapping of items."""
    return not all(isinstance(v, dict) for v in value.values())


def validate(value: Any, model: type[M], where: str) -> M:
    """``model.model_validate(value)`` with an error that says where and what is wrong."""
    if not isinstance(value, dict):
        raise EvalDataError(f"{where}: expected a JSON object, got {type(value).__name__}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors()[:5])
        raise EvalDataError(f"{where}: {problems}") from exc
