"""`LocalPostgres`: a private PostgreSQL with pgvector for tests and benchmarks, from the ``pgserver`` wheel.

Its own data directory, a Unix socket inside it and no TCP listener at all (``listen_addresses=''``), stopped on
exit from the ``with`` block: nothing outside this machine can reach it, and it never touches a system server.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Self

__all__ = ["LocalPostgres"]

logger = logging.getLogger(__name__)


class LocalPostgres:
    """``with LocalPostgres() as pg: PgVectorStore(pg.dsn, ...)``; ``folder``: the data directory (default: temp)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="qwen-agent-pg-") if folder is None else None
        self.folder = Path(folder) if folder is not None else Path(self._tmp.name) / "pgdata"  # type: ignore[union-attr]
        self._server: Any = None

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalPostgres is not started")
        return str(self._server.get_uri())

    def start(self) -> LocalPostgres:
        try:
            import pgserver
        except ImportError as exc:
            raise RuntimeError("LocalPostgres needs the pgserver wheel: pip install 'qwen-agent[pgvector,dev]'") \
                from exc
        try:
            self._server = pgserver.get_server(str(self.folder), cleanup_mode="stop")  # type: ignore[attr-defined]
        except subprocess.CalledProcessError as exc:
            # initdb failed once in ~10 runs on a loaded machine; a second try from an empty folder has held.
            logger.warning("starting PostgreSQL in %s failed (%s); trying once more", self.folder, exc)
            shutil.rmtree(self.folder, ignore_errors=True)
            self._server = pgserver.get_server(str(self.folder), cleanup_mode="stop")  # type: ignore[attr-defined]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
