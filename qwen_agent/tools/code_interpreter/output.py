"""Turning an ExecutionResult into what a model reads: ANSI-free, trimmed tracebacks, a size budget, PNG files.

Small models drown in 60-frame pandas tracebacks and megabytes of printed rows, so the text is shaped here: the
cell's own frames and the last library frame are kept, the middle is summarised, and long text keeps its head and
tail around a marker that says how much was cut. Images are written into the work dir (never following symlinks the
sandboxed code may have planted there) and handed back as file references.
"""

from __future__ import annotations

import base64
import binascii
import errno
import re
from collections.abc import Callable
from pathlib import Path

from qwen_agent.messages import FileRef
from qwen_agent.tools.code_interpreter import hostfs
from qwen_agent.tools.code_interpreter.result import ErrorInfo, ExecutionResult

__all__ = ["collapse_carriage_returns", "render_text", "save_images", "strip_ansi", "trim_traceback", "truncate_middle"]

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CELL_FRAME = re.compile(r"^(Cell In\[\d+\]|File <ipython-input|Input In \[)")
_HEAD_SHARE = 0.6
_IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}


def strip_ansi(text: str) -> str:
    """Remove colour and cursor escape sequences (IPython colours tracebacks; tqdm moves the cursor)."""
    return _ANSI.sub("", text)


def collapse_carriage_returns(text: str) -> str:
    """Keep only the final state of lines rewritten with ``\\r`` (progress bars)."""
    if "\r" not in text:
        return text
    return "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r")
                     for line in text.split("\n"))


def trim_traceback(error: ErrorInfo, keep_library_frames: int = 1) -> str:
    """The traceback as plain text with the user's cell frames, the last ``keep_library_frames`` others, and the
    final ``Name: message`` line; skipped frames are counted in a one-line note."""
    parts = [strip_ansi(p).rstrip("\n") for p in error.traceback]
    if not parts:
        return f"{error.ename}: {error.evalue}"
    frames = parts[:]
    header: list[str] = []
    if frames and set(frames[0].strip()) <= {"-"}:
        frames = frames[1:]
    if frames and "Traceback (most recent call last)" in frames[0]:
        header, frames = [frames[0]], frames[1:]
    last = frames[-1] if frames else f"{error.ename}: {error.evalue}"
    frames = frames[:-1]
    kept: list[str] = []
    skipped = 0
    library = [i for i, f in enumerate(frames) if not _CELL_FRAME.match(f)]
    keep_lib = set(library[-keep_library_frames:]) if keep_library_frames > 0 else set()
    for i, frame in enumerate(frames):
        if i in keep_lib or _CELL_FRAME.match(frame):
            if skipped:
                kept.append(f"[... {skipped} library frame{'s' if skipped > 1 else ''} omitted ...]")
                skipped = 0
            kept.append(frame)
        else:
            skipped += 1
    if skipped:
        kept.append(f"[... {skipped} library frame{'s' if skipped > 1 else ''} omitted ...]")
    return "\n".join([*header, *kept, last])


def truncate_middle(text: str, budget: int) -> str:
    """Fit ``text`` into ``budget`` characters, keeping head and tail and saying how much was cut."""
    if len(text) <= budget:
        return text
    lines_total = text.count("\n") + 1
    marker_len = 80
    keep = max(budget - marker_len, 0)
    head, tail = text[: int(keep * _HEAD_SHARE)], text[len(text) - (keep - int(keep * _HEAD_SHARE)):]
    cut = len(text) - len(head) - len(tail)
    cut_lines = lines_total - head.count("\n") - tail.count("\n") - 1
    return f"{head}\n[... output truncated: {cut:,} characters ({max(cut_lines, 0):,} lines) cut ...]\n{tail}"


def save_images(result: ExecutionResult, work_dir: Path, prefix: str, owner_uid: int | None = None,
                room_for: Callable[[int], bool] = lambda n: True) -> list[FileRef]:
    """Write every image in the result's outputs as a file in ``work_dir`` (``prefix-N.png``) and reference it.

    The file is created with ``O_EXCL | O_NOFOLLOW`` relative to the work dir's fd: the sandboxed code can write in
    that directory, and a planted symlink must not make the host (maybe root) write somewhere else. Images that do
    not fit the work dir's quota (``room_for``, or ``ENOSPC`` from a capped tmpfs) are not written, and their output
    says so.
    """
    refs: list[FileRef] = []
    with hostfs.opened_dir(work_dir) as dir_fd:
        n = 0
        for out in result.outputs:
            data = out.get("data") or {}
            for mime, ext in _IMAGE_TYPES.items():
                if mime not in data:
                    continue
                try:
                    raw = base64.b64decode(data[mime], validate=False)
                except (binascii.Error, TypeError, ValueError):
                    continue
                n += 1
                name = _write_new(dir_fd, f"{prefix}-{n}", ext, raw, owner_uid) if room_for(len(raw)) else None
                if name is None:
                    out.setdefault("metadata", {})["not_saved"] = "work dir quota"
                    break
                out.setdefault("metadata", {})["filename"] = name
                refs.append(FileRef(filename=name, path=str(work_dir / name), mime_type=mime))
                break
    return refs


def _write_new(dir_fd: int, stem: str, ext: str, raw: bytes, owner_uid: int | None) -> str | None:
    """A new file for ``raw`` (``stem.ext``, or ``stem-N.ext`` if taken); None when the work dir is full."""
    for attempt in range(100):
        name = f"{stem}.{ext}" if attempt == 0 else f"{stem}-{attempt}.{ext}"
        try:
            hostfs.create_new(dir_fd, name, raw, owner_uid)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                return None
            raise
        return name
    raise FileExistsError(f"could not find a free file name for {stem}.{ext}")


def render_text(result: ExecutionResult, image_names: list[str], budget: int) -> str:
    """The observation text: stdout, stderr, the value, displays, the trimmed error and any kernel notice."""
    sections: list[str] = []
    image_iter = iter(image_names)
    for out in result.outputs:
        kind = out["output_type"]
        if kind == "stream":
            text = collapse_carriage_returns(strip_ansi(out["text"]))
            sections.append(text if out["name"] == "stdout" else f"[stderr]\n{text}")
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if any(m in data for m in _IMAGE_TYPES):
                if out.get("metadata", {}).get("not_saved"):
                    sections.append("[image not saved: the work directory is full]")
                else:
                    sections.append(f"[image saved: {next(image_iter, 'image')}]")
            elif "text/markdown" in data:  # before text/plain, which is then just "<...Markdown object>"
                sections.append(data["text/markdown"])
            elif "text/plain" in data:
                sections.append(strip_ansi(data["text/plain"]))
            elif "text/html" in data:
                sections.append("[html output]")
        elif kind == "error" and result.error is not None:
            sections.append(trim_traceback(result.error))
    if result.dropped_outputs:
        sections.append(f"[{result.dropped_outputs} rich output(s) (images, HTML, JSON) dropped: over the output "
                        "budget or malformed]")
    text = "\n".join(s.rstrip("\n") for s in sections if s.strip())
    if result.notice:
        text = f"{text}\n[{result.notice}]" if text else f"[{result.notice}]"
    return truncate_middle(text, budget) if text else "(no output)"
