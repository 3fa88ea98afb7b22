"""What OpenAPI tools raise when a call fails before any HTTP status came back."""

from __future__ import annotations

from qwen_agent.tools.errors import ToolError


class OpenAPIError(ToolError):
    """An OpenAPI call failed before any HTTP status came back (timeout, refused connection, missing secret)."""


__all__ = ["OpenAPIError"]
