"""Find the documents under the paths a user gave, never following a symlink out of the folder it was given."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qwen_agent.retrieval.loaders import is_supported
from qwen_agent.retrieval.models import FileError

__all__ = ["FoundFile", "discover", "file_sha256"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundFile:
    """A document to index: its resolved path (the store key), its display name, and the folder it came from."""

    path: Path
    source: str
    root: Path


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def discover(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[FoundFile], list[FileError], list[Path]]:
    """Walk the given files and folders.

    Returns the supported documents, per-file errors (missing paths, symlinks leaving their folder) and the
    resolved roots that were walked completely, so the caller may drop indexed files that vanished from them.
    A file named explicitly is taken as given; inside a folder, a symlink (to a file or a folder) whose target
    resolves outside that folder is skipped with an error, and hidden files and folders are ignored.
    """
    found: dict[Path, FoundFile] = {}
    errors: list[FileError] = []
    roots: list[Path] = []
    for raw in paths:
        given = Path(raw).expanduser()
        if not given.exists():
            errors.append(FileError(path=str(given), kind="missing", message=f"{given}: no such file or folder"))
            continue
        if given.is_file():
            resolved = given.resolve()
            if is_supported(resolved):
                found.setdefault(resolved, FoundFile(resolved, given.name, resolved.parent))
            else:
                errors.append(
                    FileError(path=str(given), kind="unsupported", message=f"{given}: unsupported file type")
                )
            continue
        root = given.resolve()
        roots.append(root)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            kept = []
            for name in sorted(dirnames):
                if name.startswith("."):
                    continue
                sub = here / name
                if sub.is_symlink():
                    target = sub.resolve()
                    if not _inside(target, root):
                        errors.append(_outside(sub, target, root))
                    # A link to a folder inside the root is walked through its real path already.
                    continue
                kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                file = here / name
                target = file.resolve()
                if file.is_symlink() and not _inside(target, root):
                    errors.append(_outside(file, target, root))
                    continue
                if not target.is_file() or not is_supported(target):
                    continue
                # A link inside the folder is named after its target, so it and the real file are one document.
                source = (target if file.is_symlink() else file).relative_to(root).as_posix()
                found.setdefault(target, FoundFile(target, source, root))
    return list(found.values()), errors, roots


def _outside(link: Path, target: Path, root: Path) -> FileError:
    return FileError(
        path=str(link),
        kind="outside_folder",
        message=f"{link} is a symlink to {target}, outside {root}; skipped (copy the file into the folder instead)",
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
