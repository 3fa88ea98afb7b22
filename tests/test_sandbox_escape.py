"""Escape attempts against the code-interpreter sandbox: each must fail inside AND leave the host unharmed.

Only 127.0.0.1 is ever contacted (a listener this test runs on the host), as the project's test rules require.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from qwen_agent.sync import run_sync
from qwen_agent.tools.code_interpreter import Kernel, SandboxConfig, SandboxLimits
from qwen_agent.tools.code_interpreter.hostfs import usage

PROJECT = Path(__file__).resolve().parent.parent  # this checkout, wherever it is (CI clones elsewhere)
SECRET_ENV = "QWEN_AGENT_TEST_SECRET_TOKEN"
SECRET_VALUE = "sk-do-not-leak-0123456789"
_MiB = 1024 * 1024
LIMITS = SandboxLimits(memory_bytes=2048 * _MiB, max_processes=64, max_file_bytes=32 * _MiB,
                       tmp_bytes=64 * _MiB, work_dir_bytes=128 * _MiB)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    os.environ[SECRET_ENV] = SECRET_VALUE  # set in the parent before the sandbox starts
    k = Kernel(SandboxConfig(limits=LIMITS), tmp_path_factory.mktemp("work"), preload=False, flood_chars=3_000_000)
    run_sync(k.start())
    yield k
    run_sync(k.shutdown())
    os.environ.pop(SECRET_ENV, None)


async def py(kernel: Kernel, code: str, timeout: float = 20.0):
    res = await kernel.execute(code, timeout=timeout)
    return res


async def value(kernel: Kernel, code: str):
    """Run code whose last line prints JSON; return the parsed value."""
    res = await py(kernel, code)
    assert res.status == "ok", (res.error, res.notice, res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


async def test_cannot_reach_a_host_tcp_listener(kernel):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        got = await value(kernel, f"""
import socket, json
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2); r = "connected"
except OSError as e:
    r = type(e).__name__
print(json.dumps(r))""")
        assert got in ("ConnectionRefusedError", "TimeoutError", "OSError")
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever arrived on the host side
    finally:
        server.close()


async def test_only_loopback_interface(kernel):
    names = await value(kernel, "import socket, json; print(json.dumps([n for _, n in socket.if_nameindex()]))")
    assert names == ["lo"]
    host = [n for _, n in socket.if_nameindex()]
    assert host  # the host still has its interfaces


async def test_host_files_are_invisible(kernel, tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")
    targets = [str(secret), "/root/.bashrc", "/root/.cache", str(PROJECT / "qwen_agent" / "messages.py"),
               str(PROJECT / "pyproject.toml"), str(PROJECT.parent / "shared" / "DESIGN.md"), "/etc/shadow",
               "/etc/hostname"]
    got = await value(kernel, f"""
import json, os
out = {{}}
for p in {targets!r}:
    try:
        open(p).read(); out[p] = "READ"
    except OSError as e:
        out[p] = type(e).__name__
out["/root"] = sorted(os.listdir("/root")) if os.path.isdir("/root") else []
out["project"] = sorted(os.listdir({str(PROJECT)!r})) if os.path.isdir({str(PROJECT)!r}) else []
print(json.dumps(out))""")
    assert all(got[p] != "READ" for p in targets), got
    # only the interpreter's own directories are bound in (e.g. /root/.pyenv, <project>/.venv)
    assert got["/root"] == _visible_children(Path("/root"))
    assert got["project"] == _visible_children(PROJECT)
    assert secret.read_text() == "host only"


def _visible_children(parent: Path) -> list[str]:
    """Names under ``parent`` that the sandbox may see: first components of the Python roots bound into it."""
    from qwen_agent.tools.code_interpreter.bwrap import python_roots

    names = set()
    for root in python_roots(sys.executable):
        try:
            names.add(Path(root).relative_to(parent).parts[0])
        except (ValueError, IndexError):
            continue
    return sorted(names)


async def test_secret_env_var_does_not_leak(kernel):
    got = await value(kernel, f"""
import os, json, glob
seen = [k for k in os.environ if "SECRET" in k or "TOKEN" in k or "KEY" in k]
leaks = []
for f in glob.glob("/proc/*/environ"):
    try:
        if b"{SECRET_VALUE}" in open(f, "rb").read(): leaks.append(f)
    except OSError:
        pass
print(json.dumps([seen, leaks, sorted(os.environ)]))""")
    seen, leaks, env = got
    assert seen == [] and leaks == []
    assert "PATH" in env and "HOME" in env
    assert os.environ[SECRET_ENV] == SECRET_VALUE


async def test_writes_outside_the_work_dir_fail(kernel):
    targets = ["/etc/evil", "/usr/evil", "/root/evil", "/evil", str(PROJECT / "evil"), "/home/evil",
               "/proc/sys/kernel/hostname"]
    got = await value(kernel, f"""
import json
out = {{}}
for p in {targets!r}:
    try:
        open(p, "w").write("x"); out[p] = "WROTE"
    except OSError as e:
        out[p] = type(e).__name__
open("inside.txt", "w").write("ok")
print(json.dumps(out))""")
    assert all(v != "WROTE" for v in got.values()), got
    for p in ("/etc/evil", "/usr/evil", "/root/evil", "/evil", str(PROJECT / "evil"), "/home/evil"):
        assert not os.path.exists(p)
    assert (kernel.work_dir / "inside.txt").read_text() == "ok"


async def test_python_environment_is_read_only(kernel):
    site = Path(json.__file__).parent.parent  # stdlib of the base interpreter
    venv_site = Path(psutil.__file__).parent.parent
    before = {p: sorted(os.listdir(p)) for p in (site, venv_site)}
    got = await value(kernel, f"""
import json
out = []
for p in ["{venv_site}/evil.pth", "{site}/json/__init__.py", "{venv_site}/psutil/__init__.py"]:
    try:
        open(p, "a").write("import os; os.system('touch /tmp/pwned')"); out.append("WROTE")
    except OSError as e:
        out.append(type(e).__name__)
print(json.dumps(out))""")
    assert got == ["OSError", "OSError", "OSError"] or all(g != "WROTE" for g in got)
    assert {p: sorted(os.listdir(p)) for p in before} == before
    assert "os.system" not in Path(json.__file__).read_text()


async def test_fork_bomb_is_contained(kernel):
    got = await value(kernel, """
import os, time, json
pids, err = [], None
try:
    for _ in range(10000):
        pid = os.fork()
        if pid == 0:
            time.sleep(3); os._exit(0)
        pids.append(pid)
except OSError as e:
    err = type(e).__name__
for p in pids:
    os.kill(p, 9); os.waitpid(p, 0)
print(json.dumps([len(pids), err]))""")
    forked, err = got
    assert err == "BlockingIOError" and forked < LIMITS.max_processes
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes
    assert (await py(kernel, "print('alive')")).stdout == "alive\n"


async def test_memory_bomb_is_contained(kernel):
    host_before = psutil.virtual_memory().available
    res = await py(kernel, "x = bytearray(8 * 1024**3)")
    assert res.status == "error" and res.error.ename == "MemoryError"
    assert psutil.virtual_memory().available > host_before - 512 * _MiB
    assert (await py(kernel, "print('alive')")).stdout == "alive\n"


async def test_infinite_loop_is_interrupted(kernel):
    await py(kernel, "state = 'kept'")
    t0 = time.monotonic()
    res = await py(kernel, "while True:\n    pass", timeout=1.5)
    assert res.status == "timeout" and time.monotonic() - t0 < 60  # an infinite loop: any bound shows the interrupt
    assert (await py(kernel, "print(state)")).stdout == "kept\n"


async def test_huge_output_is_cut_and_bounded(kernel):
    rss_before = psutil.Process().memory_info().rss
    res = await py(kernel, "while True:\n    print('x' * 100000)", timeout=30)
    assert res.status == "timeout" and "more than" in (res.notice or "")
    kept = sum(len(o.get("text", "")) for o in res.outputs)
    assert kept < 1_000_000 and res.dropped_chars > 0
    assert psutil.Process().memory_info().rss - rss_before < 200 * _MiB


async def test_disk_fill_is_contained(kernel, tmp_path):
    # A fresh kernel: what the output flood before it left in the kernel's memory (up to RLIMIT_AS) must not turn
    # this test's 1 MiB buffer into a MemoryError (seen once in CI).
    await kernel.restart()
    # one huge file: RLIMIT_FSIZE
    # (written in 1 MiB chunks so the test does not depend on a 64 MiB allocation under RLIMIT_AS)
    res = await py(kernel, "chunk = b'0' * 1024**2\nwith open('big.bin', 'wb') as f:\n"
                           "    for _ in range(64): f.write(chunk)")
    assert res.status == "error" and "File too large" in res.error.evalue, res.error
    # private /tmp: a size-capped tmpfs, not the host's disk
    res = await py(kernel, "chunk = b'0' * 1024**2\nfor i in range(3):\n    with open(f'/tmp/fill{i}', 'wb') as f:\n"
                           "        for _ in range(30): f.write(chunk)")
    assert res.status == "error" and "No space left" in res.error.evalue
    # many files in the work dir: as root a capped tmpfs refuses the write that does not fit
    res = await py(kernel, """
i = 0
while True:
    with open(f'chunk{i}.bin', 'wb') as f:
        f.write(b'0' * (8 * 1024**2))
    i += 1
""", timeout=60)
    if kernel.volume.kind == "tmpfs":
        assert res.status == "error" and "No space left" in res.error.evalue, (res.status, res.error, res.notice)
        assert usage(kernel.work_dir)[0] <= LIMITS.work_dir_bytes
    else:  # not root: the watchdog stops the kernel, after an overshoot bounded by its scan interval
        assert res.status == "timeout" and "disk quota" in (res.notice or ""), (res.status, res.error, res.notice)
        assert usage(kernel.work_dir)[0] < LIMITS.work_dir_bytes + 128 * _MiB
    await py(kernel, "import glob, os\nfor f in glob.glob('chunk*.bin') + glob.glob('big.bin'): os.remove(f)")


async def test_cannot_signal_host_processes(kernel):
    sentinel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        res = await py(kernel, f"""
import os, json, signal
out = []
for pid in ({os.getpid()}, {sentinel.pid}, {os.getppid()}):
    try:
        os.kill(pid, signal.SIGKILL); out.append("KILLED")
    except OSError as e:
        out.append(type(e).__name__)
child = os.fork()
if child == 0:
    try:
        os.kill(-1, signal.SIGKILL)  # everything this uid may signal
    finally:
        os._exit(0)
os.waitpid(child, 0)
print(json.dumps(out))""")
        if res.status == "ok":
            assert "KILLED" not in res.stdout
        else:  # kill(-1) took the kernel itself down: it must only have hit the sandbox
            assert res.status == "died" and res.restarted
        time.sleep(0.2)
        assert sentinel.poll() is None and psutil.pid_exists(os.getpid())
        assert (await py(kernel, "print('alive')")).stdout == "alive\n"
    finally:
        sentinel.kill()
        sentinel.wait()


async def test_proc_does_not_lead_out(kernel, tmp_path):
    secret = tmp_path / "proc-secret.txt"
    secret.write_text("host only")
    got = await value(kernel, f"""
import os, json
out = {{}}
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
for p in ["/proc/1/root{secret}", "/proc/self/root{secret}", "/proc/1/root/root/.bashrc",
          "/proc/{os.getpid()}/environ", "/proc/{os.getpid()}/cmdline"]:
    try:
        open(p).read(); out[p] = "READ"
    except OSError as e:
        out[p] = type(e).__name__
try:
    open("/proc/sysrq-trigger", "w").write("h"); out["sysrq"] = "WROTE"
except OSError as e:
    out["sysrq"] = type(e).__name__
print(json.dumps(out))""")
    pids = got.pop("pids")
    assert max(pids) < 200 and os.getpid() not in pids  # its own pid namespace: host pids do not exist there
    assert all(v != "READ" and v != "WROTE" for v in got.values()), got


async def test_cannot_become_root_or_gain_capabilities(kernel):
    got = await value(kernel, """
import os, json
out = [os.getuid(), os.geteuid()]
for fn in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.chroot("/")):
    try:
        fn(); out.append("OK")
    except OSError as e:
        out.append(type(e).__name__)
status = open("/proc/self/status").read()
out.append([l.split()[1] for l in status.splitlines() if l.startswith(("CapEff", "CapPrm", "CapBnd", "NoNewPrivs"))])
print(json.dumps(out))""")
    uid, euid, *attempts, caps = got
    assert uid == euid == 1000
    # EPERM; or, without root, EINVAL for setuid/setgid: uid 0 does not even exist in the sandbox's namespace
    assert all(a in ("PermissionError", "OSError") for a in attempts) and attempts[2] == "PermissionError", attempts
    assert caps[:3] == ["0000000000000000"] * 3 and caps[3] == "1"


# ---- privileged start-up: nothing the sandbox wrote may run before (or with) privileges -------------------------

# A module planted in the work dir: it logs who imported it, then hands over to the real module so that the kernel
# keeps working if an unprivileged import picks it up (IPython puts the cwd on sys.path for user code).
HIJACK = '''
import os, sys
status = open("/proc/self/status").read()
caps = [l.split()[1] for l in status.splitlines() if l.startswith(("CapEff", "CapPrm"))]
with open("/home/sandbox/work/hijack.log", "a") as log:
    log.write(f"{__name__} uid={os.getuid()} euid={os.geteuid()} caps={','.join(caps)}\\n")
try:  # what the original exploit did next: remount the read-only binds writable
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    for target in (b"/usr", sys.prefix.encode()):
        if libc.mount(None, target, None, 0x20 | 0x1000, None) == 0:  # MS_REMOUNT | MS_BIND (read-write)
            with open("/home/sandbox/work/hijack.log", "a") as log:
                log.write(f"REMOUNTED {target!r}\\n")
except Exception:
    pass
name = __name__
del sys.modules[name]
saved = sys.path[:]
sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd(), "/home/sandbox/work")]
try:
    import importlib
    real = importlib.import_module(name)
finally:
    sys.path[:] = saved
sys.modules[name] = real
globals().update({k: v for k, v in vars(real).items() if not k.startswith("__")})
'''
# stdlib modules the launcher, setpriv's successors or Python's start-up could import
HIJACK_NAMES = ["resource", "ctypes", "runpy", "site", "sitecustomize", "usercustomize", "json", "pkgutil",
                "importlib_metadata", "ipykernel_launcher", "encodings_hijack", "signal_hijack", "traceback"]


async def test_modules_planted_in_the_work_dir_never_run_privileged(tmp_path):
    """The reported escape: plant stdlib-named modules, crash the kernel, let the tool restart it by itself."""
    from qwen_agent.tools.code_interpreter import CodeInterpreter
    from qwen_agent.tools.output import ToolOutput

    venv_site = Path(psutil.__file__).parent.parent
    before = sorted(os.listdir(venv_site)), sorted(os.listdir("/usr/lib"))
    work = tmp_path / "work"
    tool = CodeInterpreter(sandbox=SandboxConfig(limits=LIMITS), work_dir=work, preload=False)
    try:
        await tool.ensure_started()
        plant = await _attempt(tool, f"""
import os
os.chmod(".", 0o777)
open("hijack.log", "w").close()
os.chmod("hijack.log", 0o666)
for name in {HIJACK_NAMES!r}:
    open(name + ".py", "w").write({HIJACK!r})
os.makedirs("encodings", exist_ok=True)
open("encodings/__init__.py", "w").write({HIJACK!r})
os._exit(1)""")
        # the next call is served by a fresh kernel started on the same work dir
        after = await _attempt(tool, "import os; print(os.getuid())")
        log = (work / "hijack.log").read_text()
        for line in log.splitlines():  # an unprivileged import by the kernel itself is harmless; nothing else
            assert "uid=1000 euid=1000 caps=0000000000000000,0000000000000000" in line, log
            assert "REMOUNTED" not in line, log
        assert isinstance(plant, ToolOutput) and plant.data["status"] == "died" and plant.data["restarted"], plant
        assert isinstance(after, ToolOutput) and after.data["stdout"] == "1000\n", after
    finally:
        await tool.aclose()
    assert (sorted(os.listdir(venv_site)), sorted(os.listdir("/usr/lib"))) == before


async def _attempt(tool, code: str) -> object:
    """The tool's output, or the exception a hijacked kernel start-up raised (the planted log says what ran)."""
    try:
        return await tool.execute({"code": code})
    except Exception as exc:  # noqa: BLE001
        return exc


async def test_the_kernel_starts_isolated_from_its_work_dir(kernel):
    got = await value(kernel, """
import json, sys, os
print(json.dumps([sys.flags.isolated, sys.flags.ignore_environment, [p for p in sys.path if p in ("", ".")],
                  os.getcwd(), sorted(os.listdir("/run/kernel"))]))""")
    isolated, ignore_env, _cwd_entries, cwd, run_dir = got
    assert isolated == 1 and ignore_env == 1  # python -I: no cwd/script dir, no user site, no PYTHON* variables
    assert cwd == "/home/sandbox/work"
    # the socket dir holds the kernel's sockets only: the connection file, log and identity files stay host-side
    assert run_dir and all(name.startswith("k-") for name in run_dir), run_dir


async def test_limits_hold_from_the_first_instruction(kernel):
    """rlimits are set on the blocked sandbox by the host (prlimit), so even the first process has them."""
    got = await value(kernel, """
import json
lim = {l[:26].strip(): l[26:].split()[:2] for l in open("/proc/1/limits").read().splitlines()[1:]}
print(json.dumps([lim["Max processes"], lim["Max address space"], lim["Max open files"]]))""")
    nproc, as_, nofile = got
    assert nproc == [str(LIMITS.max_processes)] * 2
    assert as_ == [str(LIMITS.memory_bytes)] * 2
    assert nofile == [str(LIMITS.max_open_files)] * 2


# ---- seccomp: syscalls that only serve escapes and kernel exploits ---------------------------------------------

SYSCALLS = '''
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
NR = {"unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "bpf": 321, "keyctl": 250,
      "add_key": 248, "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425, "ptrace": 101,
      "kexec_load": 246, "init_module": 175, "open_tree": 428, "fsopen": 430, "move_mount": 429,
      "process_vm_readv": 310, "clone3": 435}
out = {}
for name, nr in NR.items():
    ctypes.set_errno(0)
    rc = libc.syscall(nr, 0, 0, 0, 0, 0)
    out[name] = errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno())) if rc == -1 else f"rc={rc}"
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x20000, 0x40000000, 17
for flag, label in ((CLONE_NEWUSER, "clone_newuser"), (CLONE_NEWNS, "clone_newns"), (CLONE_NEWNET, "clone_newnet")):
    ctypes.set_errno(0)
    rc = libc.syscall(56, flag | SIGCHLD, 0, 0, 0, 0)
    if rc == 0:
        os._exit(0)
    out[label] = errno.errorcode.get(ctypes.get_errno(), "?") if rc == -1 else "CREATED"
    if rc > 0:
        os.waitpid(rc, 0)
libc.personality.argtypes = [ctypes.c_ulong]
ctypes.set_errno(0)
out["personality_set"] = errno.errorcode.get(ctypes.get_errno(), "?") if libc.personality(0x0040000) == -1 else "SET"
out["personality_query"] = libc.personality(0xFFFFFFFF) != -1
out["seccomp"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0]
print(json.dumps(out))
'''


async def test_seccomp_refuses_escape_and_exploit_syscalls(kernel):
    got = await value(kernel, SYSCALLS)
    assert got.pop("seccomp") == "2"  # filter mode
    assert got.pop("clone3") == "ENOSYS"  # so glibc falls back to clone, whose flags the filter can read
    assert got.pop("personality_query") is True
    refused = {name: result for name, result in got.items() if result != "EPERM"}
    assert refused == {}, refused


async def test_nested_user_namespaces_cannot_lift_the_limits(kernel):
    """The reported bypass: ``unshare -Ur --mount`` and a fresh, unlimited tmpfs inside it."""
    res = await py(kernel, """
import subprocess
r = subprocess.run(["unshare", "-Ur", "--mount", "sh", "-c",
                    "mount -t tmpfs none /tmp && head -c 100000000 /dev/zero > /tmp/big && echo WROTE"],
                   capture_output=True, text=True)
print(r.returncode, r.stdout.strip(), r.stderr.strip()[:200])""")
    assert res.status == "ok", res.error
    assert "WROTE" not in res.stdout and not res.stdout.startswith("0 "), res.stdout


async def test_ordinary_work_still_runs_under_the_filter(kernel):
    """The filter must not break what data analysis needs: threads, processes, shared-memory locks, subprocesses."""
    got = await value(kernel, """
import json, subprocess, threading, multiprocessing as mp
box = []
t = threading.Thread(target=lambda: box.append(1)); t.start(); t.join()
ctx = mp.get_context("fork")
lock = ctx.Lock()
with ctx.Pool(2) as pool:
    squares = pool.map(abs, [-1, -2, -3])
print(json.dumps([box, squares, subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout]))""")
    assert got == [[1], [1, 2, 3], "hi\n"]


async def test_mountinfo_shows_no_host_file_of_ours(kernel):
    """The reported leak: /proc/self/mountinfo showed the host paths behind the sandbox's files. Identity and
    connection files are now copies; as root the work dir is a tmpfs; only the interpreter's own paths (which
    ``sys.prefix`` shows anyway) and the random name of the socket dir remain."""
    info = await value(kernel, "import json; print(json.dumps(open('/proc/self/mountinfo').read()))")
    private = str(kernel._files.dirs.private)
    assert f"{private}/passwd" not in info and f"{private}/kernel.json" not in info
    if kernel.volume.kind == "tmpfs":
        assert str(kernel.work_dir) not in info
