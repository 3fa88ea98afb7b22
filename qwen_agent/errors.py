"""The root of the framework's typed errors; each concept defines its own subclasses next to its code."""

__all__ = ["QwenAgentError"]


class QwenAgentError(Exception):
    """Base class of every error the framework raises on purpose. Messages say what to check or do next."""
