"""The seccomp filter of the sandbox: syscalls that only serve to escape or attack the kernel are refused.

Namespaces and capabilities already keep model-written code away from the host, but they leave the kernel's attack
surface open: a process can still create a nested user namespace (in which it is root again and can mount a fresh,
unlimited tmpfs), or reach rarely audited interfaces (``bpf``, ``io_uring``, ``userfaultfd``, ``keyctl`` ...) that
keep appearing in kernel exploits. Nothing a data-analysis kernel does needs any of them, so they fail with
``EPERM`` (``clone3`` with ``ENOSYS``: its flags live in memory a filter cannot read, and glibc falls back to
``clone``, whose flags it can). Syscalls of a foreign ABI (i386 ``int 0x80``, x32) kill the process.

The program is compiled by libseccomp (through its ctypes binding ``pyseccomp``) and handed to bwrap as BPF
(``--seccomp FD``), which installs it right before the sandboxed program starts.
"""

from __future__ import annotations

import errno
import functools
import os

from qwen_agent.tools.code_interpreter.bwrap import data_fd
from qwen_agent.tools.errors import SandboxError

__all__ = [
    "CLONE_NAMESPACE_FLAGS",
    "DENIED",
    "DENIED_IOCTLS",
    "PERSONALITY_QUERY",
    "compile_filter",
    "describe_policy",
    "filter_fd",
]

# Refused outright. Grouped by what they would give an attacker.
DENIED: dict[str, tuple[str, ...]] = {
    "namespaces and mounts": (
        "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr",
        "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    ),
    "other processes' memory": ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    "kernel attack surface": (
        "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
        "keyctl", "add_key", "request_key", "lookup_dcookie", "uselib",
    ),
    "host administration": (
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
        "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup", "iopl", "ioperm", "settimeofday",
        "clock_settime", "clock_adjtime", "adjtimex", "open_by_handle_at", "name_to_handle_at", "nfsservctl",
    ),
}

# clone(2)'s first argument: any of these flags creates a namespace. (CLONE_NEWTIME is 0x80, inside clone's
# exit-signal byte, so it cannot be passed to clone at all: only to clone3/unshare, which are refused.)
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
# ioctls that push input into the controlling terminal (TIOCSTI) or reach the console (TIOCLINUX)
DENIED_IOCTLS = (0x5412, 0x541C)
PERSONALITY_QUERY = 0xFFFFFFFF


def describe_policy() -> str:
    """The policy in words (for docs, logs and the test that pins it)."""
    lines = [f"{group}: {', '.join(names)}" for group, names in DENIED.items()]
    lines.append("clone with any CLONE_NEW* flag: EPERM; clone3: ENOSYS (glibc falls back to clone)")
    lines.append("ioctl TIOCSTI/TIOCLINUX: EPERM; personality other than the query: EPERM")
    lines.append("foreign ABIs (i386 int 0x80, x32): the process is killed")
    return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def compile_filter() -> bytes:
    """The BPF program (bytes, as bwrap's ``--seccomp`` reads it). Compiled once per process."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError, RuntimeError) as exc:  # pyseccomp raises when libseccomp.so is missing
        raise SandboxError(
            f"The sandbox's seccomp filter needs libseccomp and its binding ({exc}). Install them "
            "(`pip install pyseccomp`; libseccomp2 comes with every systemd-based distribution: "
            "`apt-get install libseccomp2`), or pass SandboxConfig(seccomp=False) to run without the filter."
        ) from exc
    filt = sc.SyscallFilter(sc.ALLOW)
    filt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    eperm = sc.ERRNO(errno.EPERM)
    for names in DENIED.values():
        for name in names:
            _add(filt, eperm, name)
    _add(filt, sc.ERRNO(errno.ENOSYS), "clone3")
    for bit in _bits(CLONE_NAMESPACE_FLAGS):
        _add(filt, eperm, "clone", sc.Arg(0, sc.MASKED_EQ, bit, bit))
    for request in DENIED_IOCTLS:
        _add(filt, eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    # personality: only the query; setting flags such as ADDR_NO_RANDOMIZE (no ASLR) or READ_IMPLIES_EXEC is refused
    _add(filt, eperm, "personality", sc.Arg(0, sc.NE, PERSONALITY_QUERY))
    with os.fdopen(os.memfd_create("qwen-agent-seccomp-build", os.MFD_CLOEXEC), "w+b") as buf:
        filt.export_bpf(buf)
        buf.seek(0)
        return buf.read()


def _add(filt: object, action: int, name: str, *args: object) -> None:
    """Add a rule; a syscall this ABI does not have (``resolve_syscall`` < 0) is skipped: nothing to refuse."""
    import pyseccomp as sc

    if sc.resolve_syscall(sc.Arch.NATIVE, name) < 0:
        return
    filt.add_rule(action, name, *args)  # type: ignore[attr-defined]


def _bits(mask: int) -> list[int]:
    return [1 << i for i in range(mask.bit_length()) if mask >> i & 1]


def filter_fd() -> int:
    """A fresh readable fd holding the compiled program (the caller passes it to bwrap and closes it)."""
    return data_fd(compile_filter(), "qwen-agent-seccomp")
