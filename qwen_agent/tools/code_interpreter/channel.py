"""The host's line to one kernel start: its private files, the pinned ZMQ ipc sockets, and the jupyter client.

The sandbox has its own network namespace, so the usual ZMQ-over-TCP on 127.0.0.1 cannot reach it; the kernel
binds ZMQ ``ipc`` (Unix) sockets in a directory bound into the sandbox. That directory is writable from inside, so
the host never connects by its paths: once the sockets exist (before any user code runs) they are hard-linked into
the host-only private dir and checked to be sockets of the sandbox uid, and the client (and ZMQ's reconnects) use
only those links. Every message is hostile input: one the client cannot decode or verify is dropped, and a message
over the size budget is refused by ZMQ before it is held in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo

from qwen_agent.tools.code_interpreter.bwrap import SANDBOX_CONNECTION_FILE, SANDBOX_RUN_DIR
from qwen_agent.tools.code_interpreter.sandbox import SandboxDirs, write_identity_files
from qwen_agent.tools.errors import SandboxError

__all__ = [
    "PORTS",
    "SOCKET_NAMES",
    "UNDECODABLE",
    "Channel",
    "StartFiles",
    "pin_sockets",
    "prepare_start",
    "sockets_ready",
]

PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
SOCKET_NAMES = [f"k-{port}" for port in PORTS.values()]
# what jupyter-client raises for a message it cannot decode or verify: the sandbox sent it, so it is dropped
UNDECODABLE = (ValueError, TypeError, KeyError, RecursionError, UnicodeError)


@dataclass(frozen=True)
class StartFiles:
    """What one kernel start needs on the host: its dirs, the kernel's argv and the host's connection info."""

    dirs: SandboxDirs
    argv: list[str]
    host_conn: KernelConnectionInfo

    @property
    def log_path(self) -> Path:
        return self.dirs.private / "kernel.log"


def prepare_start(sandboxed: bool, sandbox_uid: int) -> StartFiles:
    """A fresh private dir (short path: Unix socket paths are limited to ~107 bytes) with the connection file."""
    dirs = SandboxDirs.create(Path(tempfile.mkdtemp(prefix="qa-k-")))
    write_identity_files(dirs.private, sandbox_uid)
    conn = {**PORTS, "transport": "ipc", "ip": f"{SANDBOX_RUN_DIR if sandboxed else dirs.sockets}/k",
            "key": secrets.token_hex(32), "signature_scheme": "hmac-sha256", "kernel_name": "python3"}
    (dirs.private / "kernel.json").write_text(json.dumps(conn))
    conn_path = SANDBOX_CONNECTION_FILE if sandboxed else str(dirs.private / "kernel.json")
    argv = ["ipykernel_launcher", "-f", conn_path, "--HistoryManager.enabled=False",
            "--InteractiveShell.colors=nocolor"]
    host_conn = cast("KernelConnectionInfo", {**conn, "ip": f"{dirs.private}/k"})  # jupyter_client's typed shape
    return StartFiles(dirs, argv, host_conn)


def sockets_ready(dirs: SandboxDirs) -> bool:
    return all((dirs.sockets / name).exists() for name in SOCKET_NAMES)


def pin_sockets(dirs: SandboxDirs, expected_uid: int) -> None:
    """Hard-link the kernel's sockets into the private dir and check each is a socket owned by ``expected_uid``."""
    src_fd = os.open(dirs.sockets, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    dst_fd = os.open(dirs.private, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in SOCKET_NAMES:
            os.link(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
            st = os.stat(name, dir_fd=dst_fd, follow_symlinks=False)
            if not stat.S_ISSOCK(st.st_mode) or st.st_uid != expected_uid:
                raise SandboxError(f"the kernel's {name} is not a socket it created; refusing to connect")
    finally:
        os.close(src_fd)
        os.close(dst_fd)


class Channel:
    """A jupyter client on the running event loop, with its own ZMQ context and a per-message size limit."""

    def __init__(self, host_conn: KernelConnectionInfo, max_message_bytes: int) -> None:
        self.context = zmq.asyncio.Context()
        # Larger messages make ZMQ drop the connection (it reconnects) instead of handing them to us.
        self.context.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        self.client = AsyncKernelClient(context=self.context)
        self.client.load_connection_info(host_conn)
        self.client.start_channels()
        self.loop = asyncio.get_running_loop()

    async def iopub(self, timeout: float) -> dict[str, Any] | None:
        """The next iopub message, or None on timeout. Raises ``UNDECODABLE`` errors for a message it dropped."""
        try:
            msg = await self.client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None
        return msg if isinstance(msg, dict) else None

    async def await_idle(self, msg_id: str, timeout: float) -> bool:
        """Whether the kernel reported idle for ``msg_id`` within ``timeout`` (other messages are skipped)."""
        end = self.loop.time() + timeout
        while (left := end - self.loop.time()) > 0:
            try:
                msg = await self.iopub(left)
            except UNDECODABLE:
                continue
            if msg is None:
                return False
            try:
                if msg["parent_header"].get("msg_id") == msg_id and msg["header"]["msg_type"] == "status" and \
                        msg["content"].get("execution_state") == "idle":
                    return True
            except (KeyError, TypeError, AttributeError):
                continue
        return False

    async def drain_shell(self) -> None:
        """Discard the shell replies already received (we read results from iopub). Never waits: a reply still on
        its way is discarded by the next drain, so the queue stays at most one reply long."""
        while True:
            try:
                await self.client.get_shell_msg(timeout=0)
            except queue.Empty:
                return
            except UNDECODABLE:
                continue

    def close(self) -> None:
        self.client.stop_channels()
        self.context.destroy(linger=0)
