"""The ``code_interpreter`` Tool: Python in a stateful, sandboxed Jupyter kernel, for data analysis by an agent.

One kernel per tool instance (= per agent session). Each call returns stdout/stderr/value/errors as text shaped for a
small model, figures as PNG files in the work dir (returned as ``ToolOutput.files``), and the files the code wrote.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from qwen_agent.messages import FileRef
from qwen_agent.tools.base import Tool
from qwen_agent.tools.code_interpreter import hostfs
from qwen_agent.tools.code_interpreter.kernel import INTERRUPT_GRACE_S, Kernel
from qwen_agent.tools.code_interpreter.notebook import NotebookRecorder
from qwen_agent.tools.code_interpreter.output import render_text, save_images
from qwen_agent.tools.code_interpreter.pool import KernelPool
from qwen_agent.tools.code_interpreter.sandbox import SandboxConfig
from qwen_agent.tools.output import ToolOutput, file_ref

__all__ = ["CodeArgs", "CodeInterpreter", "changed_files", "snapshot"]

logger = logging.getLogger(__name__)

_MAX_LISTED_FILES = 30


class CodeArgs(BaseModel):
    code: str = Field(description="Python code to run. Variables persist between calls. Use print() to show values.")


class CodeInterpreter(Tool):
    """Run model-written Python in a sandboxed kernel (bubblewrap; no network; only the work dir is writable)."""

    name = "code_interpreter"
    Args = CodeArgs
    parallel_safe = False  # one kernel: calls run one after another
    adopts_unknown_names = True  # {"name": "train_distance", "arguments": {"code": ...}} is code to run all the same
    adoption_hint = ("code_interpreter runs Python code: call code_interpreter with Python code that computes the "
                     "answer and prints it.")

    def __init__(
        self,
        files: Iterable[Path | str] = (),
        *,
        sandbox: Literal["bwrap", "none"] | SandboxConfig = "bwrap",
        work_dir: Path | str | None = None,
        exec_timeout: float = 60.0,
        pool: KernelPool | bool = False,
        preload: bool = True,
        max_output_chars: int = 4000,
        name: str | None = None,
    ) -> None:
        self.config = sandbox if isinstance(sandbox, SandboxConfig) else SandboxConfig(mode=sandbox)
        self.exec_timeout = exec_timeout
        self._files = [Path(f) for f in files]
        self._requested_work_dir = Path(work_dir) if work_dir is not None else None
        self._pool = KernelPool.shared(self.config) if pool is True else (pool or None)
        self._preload = preload
        self.kernel: Kernel | None = None
        self.notebook = NotebookRecorder()
        names = ", ".join(f.name for f in self._files)
        description = (
            "Run Python code in a Jupyter kernel and get its printed output, the value of the last line, errors, "
            "and saved plots. Variables persist between calls. pandas (pd), numpy (np) and matplotlib.pyplot (plt) "
            "are available; plots made with plt are saved automatically. No internet access."
        )
        if names:
            description += f" Files in the current directory: {names}."
        # the kernel interrupts (and if needed restarts) itself at exec_timeout; the base timeout is a safety net
        super().__init__(name=name, description=description, timeout=exec_timeout + INTERRUPT_GRACE_S + 60.0,
                         max_output_chars=None)
        self.max_text_chars = max_output_chars

    @property
    def work_dir(self) -> Path:
        if self.kernel is None:
            raise RuntimeError("the code interpreter has not started yet (await tool.ensure_started())")
        return self.kernel.work_dir

    async def start(self) -> None:
        if self._pool is not None and self._requested_work_dir is None:
            self.kernel = await self._pool.acquire()
        else:
            self.kernel = Kernel(self.config, self._requested_work_dir, preload=self._preload)
            await self.kernel.start()
        self.add_files(self._files)

    async def aclose(self) -> None:
        if self.kernel is not None:
            await self.kernel.shutdown()
            self.kernel = None

    def add_files(self, files: Iterable[Path | str]) -> list[Path]:
        """Copy user files (CSV, XLSX, JSON, images ...) into the work dir under their own names."""
        copied = []
        owner = self.kernel.owner_uid if self.kernel is not None else None
        for src in map(Path, files):
            if not src.is_file():
                raise FileNotFoundError(f"cannot give {src} to the code interpreter: not a file")
            with open(src, "rb") as data:
                copied.append(hostfs.write_atomic(self.work_dir, src.name, data, owner))
        return copied

    async def run(self, args: CodeArgs) -> ToolOutput:
        assert self.kernel is not None
        before = snapshot(self.work_dir)
        result = await self.kernel.execute(args.code, timeout=self.exec_timeout)
        kernel = self.kernel
        images = save_images(result, self.work_dir, f"figure-{result.execution_count or len(self.notebook.cells) + 1}",
                             kernel.owner_uid, kernel.volume.reserve)
        self.notebook.record(args.code, result)
        text = render_text(result, [ref.filename or "" for ref in images], self.max_text_chars)
        image_names = {ref.filename for ref in images}
        written = [p for p in changed_files(before, snapshot(self.work_dir)) if p.name not in image_names]
        if written:
            shown = ", ".join(str(p.relative_to(self.work_dir)) for p in written[:_MAX_LISTED_FILES])
            more = f" (+{len(written) - _MAX_LISTED_FILES} more)" if len(written) > _MAX_LISTED_FILES else ""
            text += f"\n[files written: {shown}{more}]"
        files: list[FileRef] = [*images, *(file_ref(p) for p in written[:_MAX_LISTED_FILES])]
        data: dict[str, Any] = {
            "status": result.status, "execution_count": result.execution_count, "restarted": result.restarted,
            "notice": result.notice, "stdout": result.stdout, "stderr": result.stderr,
            "error": result.error.model_dump() if result.error else None,
        }
        return ToolOutput(text=text, data=data, files=files, is_error=result.status != "ok")

    def save_notebook(self, path: Path | str | None = None) -> Path:
        """Write the session so far as a .ipynb (default: ``session.ipynb`` in the work dir).

        A path inside the work dir is written the sandbox-proof way (a new file renamed into place, never through
        a symlink or a swapped directory the code may have planted there).
        """
        target = Path(path) if path is not None else self.work_dir / "session.ipynb"
        rel = _inside(self.work_dir, target)
        if rel is None:
            return self.notebook.save(target)
        owner = self.kernel.owner_uid if self.kernel is not None else None
        return hostfs.write_atomic(self.work_dir, rel, self.notebook.to_bytes(), owner)


def snapshot(root: Path, limit: int = 5000) -> dict[Path, tuple[int, int]]:
    """(mtime_ns, size) of regular files under ``root`` (walked from directory fds, nothing followed; hidden
    entries skipped)."""
    return {root / rel: (st.st_mtime_ns, st.st_size)
            for rel, st in hostfs.walk(root, limit=limit, skip_hidden=True) if stat.S_ISREG(st.st_mode)}


def changed_files(before: dict[Path, tuple[int, int]], after: dict[Path, tuple[int, int]]) -> list[Path]:
    return sorted(p for p, sig in after.items() if before.get(p) != sig)


def _inside(root: Path, target: Path) -> str | None:
    """``target`` relative to ``root`` when it lies (lexically) inside it, else None."""
    try:
        rel = Path(os.path.abspath(target)).relative_to(root)
    except ValueError:
        return None
    return str(rel) if str(rel) != "." else None
