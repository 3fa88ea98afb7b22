"""Typed errors of the local model servers: installing their runtime and starting them."""

from __future__ import annotations

from qwen_agent.errors import QwenAgentError

__all__ = ["ServerStartError", "ServingError", "VenvInstallError"]


class ServingError(QwenAgentError):
    """Anything that went wrong preparing or running a local model server."""


class VenvInstallError(ServingError):
    """The server's private virtualenv could not be created, installed or verified. The message holds the tail of
    pip's (or the import check's) output; fix what it says (network, index, disk space) and call again: a failed
    install is discarded and started from scratch next time."""

    def __init__(self, message: str, output_tail: str = "") -> None:
        super().__init__(message)
        self.output_tail = output_tail


class ServerStartError(ServingError):
    """The server process exited or did not become ready in time. The message ends with the last lines of its
    log; ``log_path`` points at the whole log."""

    def __init__(self, message: str, log_tail: str = "", log_path: str | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail
        self.log_path = log_path
