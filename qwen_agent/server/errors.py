"""API errors in OpenAI's error JSON with the status a client can act on, and the mapping from model errors."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from qwen_agent.llm import errors as model_errors

__all__ = ["APIError", "from_model_error"]


class APIError(Exception):
    """An error sent to the client as ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(max(1, round(self.retry_after)))} if self.retry_after is not None else {}

    def response(self) -> Response:
        return Response(json.dumps(self.body()), status_code=self.status, media_type="application/json",
                        headers=self.headers())

    # ---- the usual ones ------------------------------------------------------------------------------------
    @classmethod
    def bad_request(cls, message: str, param: str | None = None) -> APIError:
        return cls(400, message, param=param, code="invalid_value" if param else None)

    @classmethod
    def unauthorized(cls) -> APIError:
        return cls(401, "Incorrect or missing API key: send `Authorization: Bearer <key>` with a key this server "
                        "was started with.", type="authentication_error", code="invalid_api_key")

    @classmethod
    def not_found(cls, message: str, param: str | None = None, code: str = "not_found") -> APIError:
        return cls(404, message, param=param, code=code)

    @classmethod
    def too_large(cls, limit: int) -> APIError:
        return cls(413, f"Request body larger than this server's limit of {limit:,} bytes.", code="request_too_large")

    @classmethod
    def busy(cls, status: int, message: str, retry_after: float = 1.0) -> APIError:
        return cls(status, message, type="server_busy" if status == 503 else "rate_limit_error",
                   code="server_busy" if status == 503 else "rate_limit_exceeded", retry_after=retry_after)


#: What each model-layer failure means for the client (checked in order: subclasses first).
_MODEL_STATUS: list[tuple[type[Exception], int, str]] = [
    (model_errors.ModelTimeoutError, 504, "backend_timeout"),
    (model_errors.ContextLengthError, 400, "context_length_exceeded"),
    (model_errors.ModelAuthError, 502, "backend_auth_failed"),
    (model_errors.ModelRateLimitError, 503, "backend_busy"),
    (model_errors.ModelConnectionError, 502, "backend_unreachable"),
    (model_errors.ModelServerError, 502, "backend_error"),
    (model_errors.ModelProtocolError, 502, "backend_protocol_error"),
    (model_errors.ModelNotFoundError, 502, "backend_model_not_found"),
    (model_errors.ModelRequestError, 502, "backend_rejected_request"),
]


def from_model_error(error_type: str | None, message: str) -> APIError:
    """The API error for a failed model call, from the error's class name (as `AgentResult.error_type` holds it)."""
    cls = getattr(model_errors, error_type or "", None)
    for kind, status, code in _MODEL_STATUS:
        if isinstance(cls, type) and issubclass(cls, kind):
            retry = 5.0 if status == 503 else None
            kind_name = "invalid_request_error" if status == 400 else "backend_error"
            return APIError(status, f"The model backend failed: {message}", type=kind_name, code=code,
                            retry_after=retry)
    return APIError(502, f"The model backend failed: {message}", type="backend_error", code="backend_error")
