"""The eval package's typed errors: bad benchmark data, an output folder that does not fit the run, a missing source."""

from __future__ import annotations

from qwen_agent.errors import QwenAgentError

__all__ = ["EvalDataError", "EvalError", "EvalRunError", "EvalSourceError"]


class EvalError(QwenAgentError):
    """Base class of the evaluation errors."""


class EvalDataError(EvalError, ValueError):
    """A benchmark file is missing or malformed; the message names the file and, where there is one, the line."""


class EvalRunError(EvalError):
    """The output folder does not fit this run (an earlier run without ``--resume``, or a run with other settings)."""


class EvalSourceError(EvalError):
    """A benchmark's data or reference checker could not be fetched or verified (pip, network, hash mismatch)."""
