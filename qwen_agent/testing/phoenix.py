"""A real trace backend on 127.0.0.1 for tests and local looking: Arize Phoenix in a cached private venv.

Phoenix (~850 MB with its dependencies) receives OTLP over HTTP at ``/v1/traces`` and answers span queries at
``/v1/projects/{project}/spans``, so a test can check what a run sent. It pins its own libraries, so it lives in
its own cached venv (`private_venv`) and only ever runs as a subprocess in its own process group.

    python -m qwen_agent.testing.phoenix --prepare-only   # build the venv (make test does)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import httpx

from qwen_agent.serving.errors import ServerStartError
from qwen_agent.serving.process import GroupProcess, free_port, log_tail
from qwen_agent.testing.private_venv import clean_env, ensure_private_venv, private_venv_dir

__all__ = ["PHOENIX_VERSION", "PhoenixServer", "ensure_phoenix_venv", "phoenix_venv_dir"]

PHOENIX_VERSION = "20.26.1"
_REQUIREMENTS = (f"arize-phoenix=={PHOENIX_VERSION}",)


def phoenix_venv_dir(root: Path | None = None) -> Path:
    return private_venv_dir(f"arize-phoenix-{PHOENIX_VERSION}", root)


def ensure_phoenix_venv(root: Path | None = None) -> Path:
    """The venv with Phoenix installed, built first when needed (a few minutes; pip's cache helps)."""
    return ensure_private_venv(f"arize-phoenix-{PHOENIX_VERSION}", _REQUIREMENTS, verify="import phoenix.server.main",
                               root=root)


# Phoenix binds its OTLP gRPC receiver to every interface ("[::]:PORT", no setting changes it); the tests only use its
# HTTP side on 127.0.0.1, and nothing the tests start may listen beyond loopback: the gRPC address is rewritten.
_LAUNCHER = """
import sys
import grpc.aio

_server = grpc.aio.server


def _loopback_server(*args, **kwargs):
    server = _server(*args, **kwargs)
    add = server.add_insecure_port
    server.add_insecure_port = lambda address: add(address.replace("[::]:", "127.0.0.1:", 1))
    return server


grpc.aio.server = _loopback_server
from phoenix.server.main import main

sys.argv[0] = "phoenix"
sys.exit(main())
"""


class PhoenixServer:
    """``phoenix serve`` on free ports of 127.0.0.1 with a throw-away working dir; a context manager."""

    def __init__(self, venv: Path | None = None, *, ready_timeout: float = 300.0) -> None:
        self.venv = venv or ensure_phoenix_venv()
        self.port = free_port()
        self.grpc_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ready_timeout = ready_timeout
        self._workdir = Path(tempfile.mkdtemp(prefix="qwen-agent-phoenix-"))
        self._process: GroupProcess | None = None

    @property
    def otlp_traces_endpoint(self) -> str:
        return f"{self.base_url}/v1/traces"

    def start(self) -> Self:
        env = clean_env()
        env.update({"PHOENIX_WORKING_DIR": str(self._workdir), "PHOENIX_HOST": "127.0.0.1",
                    "PHOENIX_PORT": str(self.port), "PHOENIX_GRPC_PORT": str(self.grpc_port),
                    "PHOENIX_TELEMETRY_ENABLED": "false", "DO_NOT_TRACK": "1"})
        log = self._workdir / "phoenix.log"
        self._process = GroupProcess([os.fspath(self.venv / "bin" / "python"), "-c", _LAUNCHER, "serve"], env=env,
                                     log_path=log, grace=5.0)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self._process.alive():
                raise ServerStartError(f"Phoenix exited with {self._process.returncode}:\n{log_tail(log)}",
                                       log_tail(log), str(log))
            try:
                if httpx.get(f"{self.base_url}/v1/projects", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerStartError(f"Phoenix was not ready within {self.ready_timeout:.0f} s:\n{log_tail(log)}",
                               log_tail(log), str(log))

    def spans(self, project: str = "default", limit: int = 1000) -> list[dict[str, Any]]:
        """Every span Phoenix holds for ``project`` (its REST API)."""
        r = httpx.get(f"{self.base_url}/v1/projects/{project}/spans", params={"limit": limit}, timeout=10)
        r.raise_for_status()
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    def wait_for_spans(self, count: int, project: str = "default", timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until at least ``count`` spans arrived (Phoenix ingests asynchronously)."""
        deadline = time.monotonic() + timeout
        spans = self.spans(project)
        while len(spans) < count and time.monotonic() < deadline:
            time.sleep(0.3)
            spans = self.spans(project)
        return spans

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare-only", action="store_true", help="build the venv and exit")
    args = ap.parse_args()
    venv = ensure_phoenix_venv()
    print(f"Phoenix venv ready: {venv}", flush=True)
    if args.prepare_only:
        return
    with PhoenixServer(venv) as server:
        print(f"Phoenix at {server.base_url} (OTLP: {server.otlp_traces_endpoint}); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
