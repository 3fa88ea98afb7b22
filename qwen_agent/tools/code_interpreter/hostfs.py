"""Host-side file operations inside a sandbox's work dir that cannot be redirected by what the sandbox put there.

The sandboxed code can create, rename and replace anything in its work dir at any moment, including symlinks to
host files, FIFOs and directories swapped for links between two of our calls. So the host (maybe root) never opens a
work-dir path by name: every operation walks from a directory fd, one component at a time, with ``O_NOFOLLOW``,
checks what it got with ``fstat`` on the fd it will use, and writes by creating a new file (``O_EXCL``) and renaming
it into place (a rename replaces a planted symlink instead of writing through it). Checking with ``resolve()`` and
opening later would be a race; this is not.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import BinaryIO

__all__ = [
    "UnsafePathError",
    "copy_tree",
    "create_new",
    "open_regular",
    "opened_dir",
    "parent_dir",
    "read_bytes",
    "relative_parts",
    "usage",
    "walk",
    "write_atomic",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePathError(OSError):
    """A work-dir path that is absolute, climbs out (``..``), or meets a symlink or a non-regular file."""


def relative_parts(rel: str | os.PathLike[str]) -> list[str]:
    """The components of a path relative to the work dir; refuses absolute paths and ``..``."""
    path = PurePosixPath(os.fspath(rel))
    if path.is_absolute():
        raise UnsafePathError(errno.EPERM, f"absolute path not allowed inside the work dir: {path}")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise UnsafePathError(errno.EPERM, f"path must name something inside the work dir: {rel}")
    return parts


@contextmanager
def opened_dir(path: Path | str) -> Iterator[int]:
    """An fd of a directory the host itself chose (the work dir root), closed on exit."""
    fd = os.open(path, _DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def parent_dir(root_fd: int, parts: list[str]) -> Iterator[int]:
    """The fd of the directory holding ``parts[-1]``, reached without following any symlink."""
    fd = os.dup(root_fd)
    try:
        for name in parts[:-1]:
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError(exc.errno, f"{name} in the work dir is not a plain directory") from exc
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


@contextmanager
def open_regular(root: Path | str, rel: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A regular file under ``root``, opened for reading; symlinks, FIFOs and devices are refused."""
    parts = relative_parts(rel)
    with opened_dir(root) as root_fd, parent_dir(root_fd, parts) as dir_fd:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError(exc.errno, f"{rel} is a symlink") from exc
            raise
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise UnsafePathError(errno.EPERM, f"{rel} is not a regular file")
        yield fh


def read_bytes(root: Path | str, rel: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The content of a regular file under ``root``; refuses symlinks, FIFOs, devices and files over ``max_bytes``."""
    with open_regular(root, rel) as fh:
        if os.fstat(fh.fileno()).st_size > max_bytes:
            raise UnsafePathError(errno.EFBIG, f"{rel} is larger than {max_bytes:,} bytes")
        return fh.read(max_bytes + 1)[:max_bytes]


def write_atomic(root: Path | str, rel: str | os.PathLike[str], data: bytes | BinaryIO,
                 owner_uid: int | None = None) -> Path:
    """Create or replace ``rel`` under ``root`` with ``data`` (bytes or a file to copy): a new file renamed into
    place, so a symlink planted at ``rel`` is replaced, never written through."""
    parts = relative_parts(rel)
    with opened_dir(root) as root_fd, parent_dir(root_fd, parts) as dir_fd:
        tmp = f".{parts[-1]}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as fh:
                if isinstance(data, bytes):
                    fh.write(data)
                else:
                    shutil.copyfileobj(data, fh, 1024 * 1024)
                if owner_uid is not None:
                    os.fchown(fh.fileno(), owner_uid, owner_uid)
            os.rename(tmp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    return Path(root, *parts)


def create_new(dir_fd: int, name: str, data: bytes, owner_uid: int | None = None) -> None:
    """Create ``name`` in ``dir_fd`` (must not exist: ``FileExistsError``) and write ``data`` to it."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as fh:
            if owner_uid is not None:  # so the sandboxed code may overwrite or delete it like its own files
                os.fchown(fh.fileno(), owner_uid, owner_uid)
            fh.write(data)
    except BaseException:
        with suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        raise


def walk(root: Path | str, *, limit: int = 100_000, skip_hidden: bool = False) -> Iterator[tuple[str, os.stat_result]]:
    """``(relative path, lstat)`` of every entry under ``root`` (directories too), depth first, from directory fds.

    Stops after ``limit`` entries. A directory swapped for a symlink mid-walk is not entered (``O_NOFOLLOW``).
    """
    seen = 0
    with opened_dir(root) as root_fd:
        stack: list[tuple[int, str]] = [(os.dup(root_fd), "")]
        try:
            while stack:
                dir_fd, prefix = stack.pop()
                try:
                    with os.scandir(dir_fd) as entries:
                        listed = list(entries)
                except OSError:
                    os.close(dir_fd)
                    continue
                for entry in listed:
                    if skip_hidden and entry.name.startswith("."):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    rel = f"{prefix}{entry.name}"
                    yield rel, st
                    seen += 1
                    if seen >= limit:
                        os.close(dir_fd)
                        return
                    if stat.S_ISDIR(st.st_mode):
                        try:
                            stack.append((os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd), f"{rel}/"))
                        except OSError:
                            continue
                os.close(dir_fd)
        finally:
            for fd, _ in stack:
                os.close(fd)


def usage(root: Path | str, *, stop_bytes: int | None = None, stop_entries: int | None = None) -> tuple[int, int]:
    """(bytes allocated, entries) under ``root``; stops counting early once either budget is exceeded."""
    total = entries = 0
    limit = stop_entries + 1 if stop_entries is not None else 10**12
    for _, st in walk(root, limit=limit):
        entries += 1
        total += st.st_blocks * 512
        if stop_bytes is not None and total > stop_bytes:
            break
    return total, entries


def copy_tree(src_root: Path | str, dst_root: Path | str, owner_uid: int | None = None) -> int:
    """Copy the directories and regular files under ``src_root`` into ``dst_root`` (symlinks, FIFOs, sockets and
    devices are skipped; nothing is followed). Existing files in ``dst_root`` are replaced. Returns files copied."""
    copied = 0
    for rel, st in walk(src_root):
        if stat.S_ISDIR(st.st_mode):
            parts = relative_parts(rel)
            with opened_dir(dst_root) as root_fd, parent_dir(root_fd, parts) as dir_fd:
                with suppress(FileExistsError):
                    os.mkdir(parts[-1], 0o755, dir_fd=dir_fd)
                if owner_uid is not None:
                    os.chown(parts[-1], owner_uid, owner_uid, dir_fd=dir_fd, follow_symlinks=False)
        elif stat.S_ISREG(st.st_mode):
            try:
                with open_regular(src_root, rel) as src:
                    write_atomic(dst_root, rel, src, owner_uid)
            except (UnsafePathError, FileNotFoundError):
                continue  # replaced or removed while we walked
            copied += 1
    return copied
