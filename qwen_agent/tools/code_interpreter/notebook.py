"""Export a code-interpreter session as a Jupyter notebook (.ipynb, nbformat v4) with cells, outputs and images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from qwen_agent.tools.code_interpreter.result import ExecutionResult

__all__ = ["NotebookRecorder"]


class NotebookRecorder:
    """Remembers each executed cell and its outputs, in order, so the session can be replayed in Jupyter."""

    def __init__(self) -> None:
        self.cells: list[tuple[str, ExecutionResult]] = []
        self.notes: list[tuple[int, str]] = []  # (position, markdown) e.g. kernel restarts

    def record(self, code: str, result: ExecutionResult) -> None:
        if result.restarted and result.notice:
            self.notes.append((len(self.cells), f"**Kernel restarted:** {result.notice}"))
        self.cells.append((code, result))

    def to_notebook(self) -> nbformat.NotebookNode:
        """A valid nbformat v4 notebook. An output nbformat rejects (the collector should have caught it) is left
        out with a note in its cell, so one bad message cannot stop every later export."""
        try:
            nb = self._build(_output)
            nbformat.validate(nb)
        except (nbformat.ValidationError, KeyError, TypeError, ValueError, RecursionError):
            nb = self._build(_valid_output)  # slower: validates output by output
            nbformat.validate(nb)
        return nb

    def _build(self, convert: Callable[[dict[str, Any]], nbformat.NotebookNode]) -> nbformat.NotebookNode:
        nb: nbformat.NotebookNode = new_notebook(metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        })
        notes = dict(self.notes)
        for i, (code, result) in enumerate(self.cells):
            if i in notes:
                nb.cells.append(new_markdown_cell(notes[i]))
            cell = new_code_cell(source=code, execution_count=result.execution_count)
            cell.outputs = [convert(o) for o in result.outputs]
            nb.cells.append(cell)
        return nb

    def to_bytes(self) -> bytes:
        text: str = nbformat.writes(self.to_notebook())
        return text.encode("utf-8")

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path


def _valid_output(out: dict[str, Any]) -> nbformat.NotebookNode:
    try:
        node = _output(out)
        nbformat.validate(new_notebook(cells=[new_code_cell(outputs=[node])]))
    except (nbformat.ValidationError, KeyError, TypeError, ValueError, RecursionError):
        node = new_output("stream", name="stderr", text="[an output that is not valid nbformat was left out]\n")
    return node


def _output(out: dict[str, Any]) -> nbformat.NotebookNode:
    kind = out["output_type"]
    node: nbformat.NotebookNode
    if kind == "stream":
        node = new_output("stream", name=out["name"], text=out["text"])
    elif kind == "error":
        node = new_output("error", ename=out["ename"], evalue=out["evalue"], traceback=out["traceback"])
    else:
        kwargs: dict[str, Any] = {"data": out.get("data", {}),
                                  "metadata": _jsonable_metadata(out.get("metadata", {}))}
        if kind == "execute_result":
            kwargs["execution_count"] = out.get("execution_count")
        node = new_output(kind, **kwargs)
    return node


def _jsonable_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, dict, list)) or v is None}
