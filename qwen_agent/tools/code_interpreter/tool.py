"""The ``code_interpreter`` Tool: Python in a stateful, sandboxed Jupyter kernel, for data analysis by an agent.

One kernel per tool instance (= per agent session). Each call returns stdout/stderr/value/errors as text shaped for a
small model, figures as PNG files in the work dir (returned as ``ToolOutput.files``), and the files the code wrote.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from qwen_agent.messages import FileRef
from qwen_agent.tools.base import Tool
from qwen_agent.tools.code_interpreter.kernel import INTERRUPT_GRACE_S, Kernel
from qwen_agent.tools.code_interpreter.notebook import NotebookRecorder
from qwen_agent.tools.code_interpreter.output import render_text, save_images
from qwen_agent.tools.code_interpreter.pool import KernelPool
from qwen_agent.tools.code_interpreter.sandbox import SandboxConfig
from qwen_agent.tools.output import ToolOutput, file_ref

logger = logging.getLogger(__name__)

_MAX_LISTED_FILES = 30


class CodeArgs(BaseModel):
    code: str = Field(description="Python code to run. Variables persist between calls. Use print() to show values.")


class CodeInterpreter(Tool):
    """Run model-written Python in a sandboxed kernel (bubblewrap; no network; only the work dir is writable)."""

    name = "code_interpreter"
    Args = CodeArgs
    parallel_safe = False  # one kernel: calls run one after another

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
        for src in map(Path, files):
            if not src.is_file():
                raise FileNotFoundError(f"cannot give {src} to the code interpreter: not a file")
            owner = self.config.host_uid if os.geteuid() == 0 and self.config.mode != "none" else None
            copied.append(copy_into(src, self.work_dir, owner))
        return copied

    async def run(self, args: CodeArgs) -> ToolOutput:
        assert self.kernel is not None
        before = snapshot(self.work_dir)
        result = await self.kernel.execute(args.code, timeout=self.exec_timeout)
        owner = self.config.host_uid if os.geteuid() == 0 and self.config.mode != "none" else None
        images = save_images(result, self.work_dir, f"figure-{result.execution_count or len(self.notebook.cells) + 1}",
                             owner)
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
        """Write the session so far as a .ipynb (default: ``session.ipynb`` in the work dir)."""
        return self.notebook.save(path or self.work_dir / "session.ipynb")


def copy_into(src: Path, work_dir: Path, owner_uid: int | None) -> Path:
    """Copy ``src`` into ``work_dir`` by name, replacing (not following) anything the sandbox put there."""
    name = src.name
    tmp = f".incoming-{os.getpid()}-{name}"
    dir_fd = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
            if owner_uid is not None:
                os.fchown(out.fileno(), owner_uid, owner_uid)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return work_dir / name


def snapshot(root: Path, limit: int = 5000) -> dict[Path, tuple[int, int]]:
    """(mtime_ns, size) of regular files under ``root`` (symlinks not followed; hidden dirs skipped)."""
    out: dict[Path, tuple[int, int]] = {}
    stack = [root]
    while stack and len(out) < limit:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                elif e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    out[Path(e.path)] = (st.st_mtime_ns, st.st_size)
            except OSError:
                continue
    return out


def changed_files(before: dict[Path, tuple[int, int]], after: dict[Path, tuple[int, int]]) -> list[Path]:
    return sorted(p for p, sig in after.items() if before.get(p) != sig)
