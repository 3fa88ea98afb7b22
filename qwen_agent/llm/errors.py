"""Typed model-layer errors: each says what failed and what to check."""

from __future__ import annotations

from qwen_agent.errors import QwenAgentError

__all__ = [
    "ContextLengthError",
    "ModelAuthError",
    "ModelConnectionError",
    "ModelError",
    "ModelNotFoundError",
    "ModelProtocolError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelServerError",
    "ModelTimeoutError",
]


class ModelError(QwenAgentError):
    """Anything that went wrong asking a model for a reply."""


class ModelConnectionError(ModelError):
    """The model server could not be reached (refused, DNS, TLS). Check the base URL and that the server runs."""


class ModelTimeoutError(ModelError):
    """The server accepted the request but did not answer in time. Raise `timeout` or check the server load."""


class ModelRateLimitError(ModelError):
    """HTTP 429 after all retries. Slow down or raise the server's limits."""


class ModelServerError(ModelError):
    """HTTP 5xx after all retries: the server failed. Its log says why."""


class ModelRequestError(ModelError):
    """HTTP 4xx other than 429: the request itself is wrong (model name, parameters, context length)."""

    def __init__(self, message: str, status_code: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class ModelAuthError(ModelRequestError):
    """HTTP 401/403: the API key is missing or wrong."""


class ModelProtocolError(ModelError):
    """The server's reply broke the protocol: invalid JSON, an SSE stream cut in the middle, a missing field."""


class ModelNotFoundError(ModelError):
    """A model file or model name does not exist. Run `qwen-agent models pull` or check the path/name."""


class ContextLengthError(ModelRequestError):
    """The prompt does not fit the model's context window, even after truncation."""
